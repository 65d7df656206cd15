"""Issue 13.6 on a real ComfyUI: a target naming a V3 dynamic input (``resize_type.multiplier``).

Needs a ComfyUI with the V3 ``ResizeImageMaskNode`` (0.8.0: comfy_extras/nodes_post_processing.py, a
DynamicCombo ``resize_type``); skipped with the reason on versions without it (0.3.64).
"""
from __future__ import annotations

import pytest

import ran_registry

pytestmark = pytest.mark.integration


def resize_sweep(target: str, values: str) -> dict:
    return {
        "1": {"class_type": "WIParameterFloat", "inputs": {"name": "multiplier", "values": values, "target": target}},
        "2": {"class_type": "WIIterator", "inputs": {"parameters": ["1", 0], "enabled": True, "mode": "matrix", "batch_name": "dotted"}},
        "3": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 0}},
        "4": {"class_type": "ResizeImageMaskNode", "_meta": {"title": "resize"},
              "inputs": {"input": ["3", 0], "resize_type": "scale by multiplier", "resize_type.multiplier": 1.0,
                         "scale_method": "nearest-exact"}},
        "5": {"class_type": "WISaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "dotted"}},
    }


@pytest.fixture
def resize_node(comfy):
    code, info = comfy.get("/object_info/ResizeImageMaskNode")
    if code != 200 or "ResizeImageMaskNode" not in (info or {}):
        ran_registry.not_applicable("this ComfyUI has no V3 ResizeImageMaskNode (it arrived after 0.3.64)")
    return info["ResizeImageMaskNode"]


@pytest.mark.parametrize("target", ["ResizeImageMaskNode.resize_type.multiplier", "resize.resize_type.multiplier"])
def test_a_sweep_over_a_dynamic_combos_nested_input_runs_each_value(comfy, resize_node, target):
    code, answer = comfy.queue_prompt(resize_sweep(target, "1, 2, 3"))
    assert code == 200, answer
    batch = comfy.batch_for_prompt(answer["prompt_id"], timeout=30)
    status = comfy.wait_batch(batch["batch_id"], states=("collecting", "complete"), timeout=180)
    assert status["counts"]["done"] == 3 and not status.get("warnings"), status
    sizes = []
    for cell in sorted(status["cells"], key=lambda c: c["index"]):
        history = comfy.wait_history(cell["prompt_id"])
        prompt = history["prompt"][2]
        sizes.append(prompt["4"]["inputs"]["resize_type.multiplier"])
    assert sizes == [1.0, 2.0, 3.0]
    from PIL import Image

    widths = []
    for cell in sorted(status["cells"], key=lambda c: c["index"]):
        ref = cell["files"][0]
        with Image.open(comfy.output_dir / ref["subfolder"] / ref["filename"]) as image:
            widths.append(image.size[0])
    assert widths == [16, 32, 48]
