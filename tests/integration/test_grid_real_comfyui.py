"""The grid, batch.json and viewer of sweeps run by a real ComfyUI (CPU, model-free core nodes)."""
from __future__ import annotations

import json

import pytest

from tools.comfy_harness import cell_values

pytestmark = pytest.mark.integration


def _sweep(*, y_axis: str = "", broken: bool = True) -> dict:
    """EmptyImage colour x blur sigma, plus (optionally) a parameter with a bad value that gets skipped."""
    prompt = {
        "1": {"class_type": "WIParameterInt", "inputs": {"name": "color", "values": "10, 200"}},
        "3": {"class_type": "WIParameterFloat", "inputs": {"name": "sigma", "values": "0.5, 1.5", "previous": ["1", 0]}},
        "4": {"class_type": "WIIterator", "inputs": {"parameters": ["3", 0], "enabled": True, "mode": "matrix",
                                                     "batch_name": "gridfallback"}},
        "10": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": ["1", 1]}},
        "13": {"class_type": "ImageBlur", "inputs": {"image": ["10", 0], "blur_radius": 2, "sigma": ["3", 1]}},
        "20": {"class_type": "WISaveImage", "inputs": {"images": ["13", 0], "filename_prefix": "WI"}},
        "21": {"class_type": "WIGridCompositor", "inputs": {"x_axis": "", "y_axis": y_axis, "multi_axis": "pages",
                                                            "format": "png", "label_font_size": 20, "cell_gap": 4,
                                                            "margin": 8, "background": "#ffffff", "images_only": False}},
    }
    if broken:
        # Its value cannot be parsed: the parameter is skipped and reported, the sweep runs with the rest.
        prompt["2"] = {"class_type": "WIParameterInt", "inputs": {"name": "broken", "values": "1-x",
                                                                  "target": "13.blur_radius", "previous": ["1", 0]}}
        prompt["3"]["inputs"]["previous"] = ["2", 0]
    return prompt


def test_y_axis_naming_a_skipped_parameter_still_draws_the_grid_with_a_warning(comfy):
    code, answer = comfy.queue_prompt(_sweep(y_axis="broken"))
    assert code == 200, answer
    batch = comfy.batch_for_prompt(answer["prompt_id"])
    status = comfy.wait_batch(batch["batch_id"], need_grid=True)
    assert status["state"] == "complete" and status["counts"]["done"] == 4
    assert "error" not in status["grid"], status["grid"]
    grid_path = comfy.output_dir / status["grid"]["subfolder"] / status["grid"]["filename"]
    assert grid_path.is_file()
    warnings = [w for w in status["warnings"] if "'broken'" in w]
    assert warnings and all("placed automatically" in w for w in warnings), status["warnings"]
    assert len(warnings) == 1  # reported at queue time, not again when the grid is built
    assert "placed automatically" in comfy.log_path.read_text(encoding="utf-8", errors="replace")
    doc = json.loads((grid_path.parent / "batch.json").read_text(encoding="utf-8"))
    assert warnings[0] in doc["warnings"]


def test_batch_json_of_a_real_sweep_types_axis_values_and_points_cells_at_them(comfy):
    code, answer = comfy.queue_prompt(_sweep(broken=False))
    assert code == 200, answer
    status = comfy.wait_batch(comfy.batch_for_prompt(answer["prompt_id"])["batch_id"], need_grid=True)
    assert status["state"] == "complete"
    folder = comfy.output_dir / status["grid"]["subfolder"]
    doc = json.loads((folder / "batch.json").read_text(encoding="utf-8"))
    axes = {a["name"]: a for a in doc["axes"]}
    assert axes["color"]["values"] == [10, 200] and axes["sigma"]["values"] == [0.5, 1.5]
    assert axes["sigma"]["labels"] == ["0.5", "1.5"]
    for cell in status["cells"]:
        (entry,) = [c for c in doc["cells"] if c["index"] == cell["index"]]
        assert "values" not in entry
        assert {a["name"]: a["values"][k] for a, k in zip(doc["axes"], entry["coords"])} == cell_values(status, cell)
