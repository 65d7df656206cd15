"""Issue 16 on a real ComfyUI (both backends): one sweep combining a prompt search/replace linked with a
colour list, crossed with a width x height bundle, and a skip rule, on a model-free workflow
(StringConcatenate -> PreviewAny for the text, EmptyImage -> WISaveImage for the images)."""
from __future__ import annotations

import pytest
from PIL import Image

pytestmark = pytest.mark.integration


def richer_sweep() -> dict:
    return {
        "1": {"class_type": "StringConcatenate", "_meta": {"title": "words"},
              "inputs": {"string_a": "a photo of a cat", "string_b": "at noon", "delimiter": " "}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
        "3": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 4, "batch_size": 1, "color": 0}},
        "4": {"class_type": "WISaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "richer"}},
        "10": {"class_type": "WIParameterPromptSR",
               "inputs": {"name": "animal", "values": "cat, dog, {owl|bat}", "target": "words.string_a", "link": "pair"}},
        "11": {"class_type": "WIParameterInt",
               "inputs": {"name": "color", "values": "16711680, 65280, 255", "target": "3.color", "link": "pair",
                          "previous": ["10", 0]}},
        "12": {"class_type": "WIParameterBundle",
               "inputs": {"name": "size", "values": "small: width=16, height=8; tall: width=8, height=24",
                          "target": "EmptyImage.width; EmptyImage.height", "previous": ["11", 0]}},
        "20": {"class_type": "WIIterator", "inputs": {"parameters": ["12", 0], "enabled": True, "mode": "matrix",
                                                       "batch_name": "richer", "skip": "animal=bat & size=tall"}},
    }


def test_search_replace_a_linked_group_and_a_bundle_run_every_cell_with_its_values(comfy):
    code, answer = comfy.queue_prompt(richer_sweep())
    assert code == 200, answer
    batch = comfy.batch_for_prompt(answer["prompt_id"], timeout=30)
    status = comfy.wait_batch(batch["batch_id"], states=("collecting", "complete"), timeout=180)
    # (animal / color) x size = 4 x 2 cells, one skipped by the rule
    assert status["counts"]["total"] == 8 and status["counts"]["skipped"] == 1 and status["counts"]["done"] == 7, status
    cells = sorted(status["cells"], key=lambda c: c["index"])
    assert [c["status"] for c in cells] == ["done"] * 7 + ["skipped"]
    assert [a["name"] for a in status["axes"]] == ["animal / color", "size"]
    assert status["axes"][0]["labels"] == ["cat / 16711680", "dog / 65280", "owl / 255", "bat / 16711680"]
    assert status["axes"][1]["labels"] == ["small", "tall"]

    seen = []
    for cell in cells[:7]:
        history = comfy.wait_history(cell["prompt_id"])
        prompt = history["prompt"][2]
        (text,) = history["outputs"]["2"]["text"]
        ref = cell["files"][0]
        with Image.open(comfy.output_dir / ref["subfolder"] / ref["filename"]) as image:
            size, pixel = image.size, image.convert("RGB").getpixel((0, 0))
        seen.append((text, prompt["3"]["inputs"]["color"], size, pixel))
    red, green, blue = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    assert seen == [
        ("a photo of a cat at noon", 16711680, (16, 8), red), ("a photo of a cat at noon", 16711680, (8, 24), red),
        ("a photo of a dog at noon", 65280, (16, 8), green), ("a photo of a dog at noon", 65280, (8, 24), green),
        ("a photo of a owl at noon", 255, (16, 8), blue), ("a photo of a owl at noon", 255, (8, 24), blue),
        ("a photo of a bat at noon", 16711680, (16, 8), red),
    ]


def test_a_search_text_missing_from_the_prompt_is_refused_before_anything_runs(comfy):
    sweep = richer_sweep()
    sweep["10"]["inputs"].update(values="horse, dog", link="")
    sweep["20"]["inputs"].update(parameters=["10", 0], skip="")
    code, answer = comfy.queue_prompt(sweep)
    assert code == 400, answer
    (error,) = answer["node_errors"]["20"]["errors"]
    assert error["details"].endswith('no valid parameter remains: parameter "animal": search text "horse" is not in the text of '
                                '1.string_a ("a photo of a cat"); the first value must appear in the target text'), error
