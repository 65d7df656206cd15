"""Tests for core/batch_outputs.py: the grid, manifest and viewer of a finished batch, built from the manager.

These go through the real batch manager (its snapshot is what the outputs read), so they cover the path a
sweep takes in ComfyUI: planner axes -> manager -> grid / batch.json / viewer.html.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from comfyui_workflow_iterator.core import batch_outputs, combination_engine, grid
from comfyui_workflow_iterator.core.combination_engine import Axis
from comfyui_workflow_iterator.core.iteration_state import IterationStateManager


def _finished_batch(root: Path, axes: list[Axis], *, grid_options: dict[str, Any] | None = None,
                    size: tuple[int, int] = (16, 16)) -> tuple[IterationStateManager, str]:
    """A batch whose every cell saved a small image under ``root``; state ``collecting``."""
    mgr = IterationStateManager()
    combos = combination_engine.cartesian(axes)
    meta: dict[str, Any] = {"subfolder": "WI/b"}
    if grid_options is not None:
        meta.update(grid_node_id="9", grid_options=grid_options)
    bid = mgr.create_batch(batch_name="b", mode="matrix", combinations=combos, axes=axes, meta=meta).batch_id
    folder = root / "WI" / "b"
    folder.mkdir(parents=True)
    for c in combos:
        name = f"c{c.index:05d}.png"
        Image.new("RGB", size, (c.index % 250, 80, 120)).save(folder / name)
        mgr.register_result(bid, c.index, [{"filename": name, "subfolder": "WI/b", "type": "output"}], {})
    assert mgr.state_of(bid) == "collecting"
    return mgr, bid


def _outputs(mgr: IterationStateManager, root: Path) -> batch_outputs.BatchOutputs:
    return batch_outputs.BatchOutputs(mgr, output_dir=lambda: str(root), notify=lambda *a: None)


def _embedded(page: str) -> Any:
    m = re.search(r'<script type="application/json" id="wi-data">(.*?)</script>', page, re.S)
    assert m is not None
    return json.loads(m.group(1))


# ------------------------------------------------------------------------------ 11.6: one formatter
def test_grid_labels_of_a_finished_batch_use_the_planners_formatter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    axes = [Axis("cfg", (0.1 + 0.2, 1.5), "FLOAT"), Axis("steps", (10, 20), "INT")]
    mgr, bid = _finished_batch(tmp_path, axes, grid_options={})
    plans: list[grid.GridPlan] = []
    real_plan = grid.plan_grid

    def spy(*args: Any, **kwargs: Any) -> grid.GridPlan:
        plans.append(real_plan(*args, **kwargs))
        return plans[-1]

    monkeypatch.setattr(grid, "plan_grid", spy)
    _outputs(mgr, tmp_path).build(bid)
    (plan,) = plans
    headers = {line for t in plan.pages[0].texts for line in t.lines}
    assert "cfg: 0.3" in headers and "cfg: 1.5" in headers
    assert not any("0.30000000000000004" in h for h in headers)
    assert mgr.state_of(bid) == "complete"


def test_status_axis_labels_use_the_one_formatter(tmp_path: Path) -> None:
    axes = [Axis("cfg", (0.1 + 0.2, 7.0), "FLOAT"), Axis("ckpt", ("sdxl/juggernaut_v9.safetensors",), "COMBO")]
    mgr, bid = _finished_batch(tmp_path, axes)
    status_axes = mgr.get_status(bid)["axes"]
    assert status_axes[0]["labels"] == ["0.3", "7.0"] and status_axes[0]["values"] == [0.1 + 0.2, 7.0]
    assert status_axes[1]["labels"] == ["juggernaut_v9"]


def test_batch_json_axis_values_keep_their_type_like_cell_values(tmp_path: Path) -> None:
    axes = [Axis("cfg", (0.1 + 0.2, 7.0), "FLOAT"), Axis("steps", (10, 20), "INT"), Axis("hires", (True,), "BOOLEAN")]
    mgr, bid = _finished_batch(tmp_path, axes)
    cell_values = mgr.get_status(bid)["cells"][1]["values"]
    _outputs(mgr, tmp_path).build(bid)
    doc = json.loads((tmp_path / "WI" / "b" / "batch.json").read_text(encoding="utf-8"))
    assert [a["values"] for a in doc["axes"]] == [[0.1 + 0.2, 7.0], [10, 20], [True]]
    assert [a["labels"] for a in doc["axes"]] == [["0.3", "7.0"], ["10", "20"], ["true"]]
    cell = doc["cells"][1]
    from_axes = {a["name"]: a["values"][k] for a, k in zip(doc["axes"], cell["coords"])}
    assert from_axes == cell_values  # same values, same JSON types as the status path's cell values
    assert all(type(from_axes[k]) is type(v) for k, v in cell_values.items())


# ------------------------------------------------------------------ 11.7: values live once, on the axis
def test_long_value_over_300_cells_keeps_batch_json_and_viewer_small(tmp_path: Path) -> None:
    prompt = "a castle " * 11_112  # 100,008 characters
    axes = [Axis("prompt", (prompt[:100_000],), "STRING"), Axis("seed", tuple(range(300)), "SEED")]
    mgr, bid = _finished_batch(tmp_path, axes, size=(4, 4))
    _outputs(mgr, tmp_path).build(bid)
    folder = tmp_path / "WI" / "b"
    json_size = (folder / "batch.json").stat().st_size
    viewer_size = (folder / "viewer.html").stat().st_size
    assert json_size < 1_000_000, json_size
    assert viewer_size < 1_000_000, viewer_size
    doc = json.loads((folder / "batch.json").read_text(encoding="utf-8"))
    assert len(doc["cells"]) == 300 and doc["axes"][0]["values"] == [prompt[:100_000]]
    data = _embedded((folder / "viewer.html").read_text(encoding="utf-8"))
    assert len(data["cells"]) == 300 and data["axes"][0]["values"] == [prompt[:100_000]]
    assert data["cells"][299]["coords"] == [0, 299] and data["cells"][299]["seed"] == 299
    # the CSV stands alone per row and may repeat values
    assert (folder / "batch.csv").read_text(encoding="utf-8").count(prompt[:100_000]) == 300


# ------------------------------------------------------- 11.5: an axis option naming a skipped parameter
def test_y_axis_naming_no_parameter_falls_back_to_automatic_axes_with_a_batch_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    axes = [Axis("radius", (1, 2, 3), "INT"), Axis("sigma", (0.5, 1.0), "FLOAT")]
    mgr, bid = _finished_batch(tmp_path, axes, grid_options={"y_axis": "broken"})
    with caplog.at_level(logging.WARNING):
        _outputs(mgr, tmp_path).build(bid)
    status = mgr.get_status(bid)
    assert status["state"] == "complete"
    assert status["grid"]["filename"] == "grid.png" and (tmp_path / "WI" / "b" / "grid.png").exists()
    (warning,) = [w for w in status["warnings"] if "broken" in w]
    assert "y_axis" in warning and "placed automatically" in warning
    assert warning in caplog.text
    doc = json.loads((tmp_path / "WI" / "b" / "batch.json").read_text(encoding="utf-8"))
    assert warning in doc["warnings"]


def test_grid_warning_already_reported_at_queue_time_is_not_repeated(tmp_path: Path) -> None:
    axes = [Axis("radius", (1, 2), "INT"), Axis("sigma", (0.5, 1.0), "FLOAT")]
    mgr, bid = _finished_batch(tmp_path, axes, grid_options={"x_axis": "gone"})
    for warning in batch_outputs.preflight_warnings(axes, "matrix", 4, None, {"x_axis": "gone"}):
        mgr.add_warning(bid, warning)
    _outputs(mgr, tmp_path).build(bid)
    assert len([w for w in mgr.get_status(bid)["warnings"] if "gone" in w]) == 1


def test_queue_time_check_reports_an_axis_option_naming_no_parameter_without_an_image_size() -> None:
    axes = [Axis("radius", (1, 2), "INT"), Axis("sigma", (0.5, 1.0), "FLOAT")]
    (warning,) = batch_outputs.preflight_warnings(axes, "matrix", 4, None, {"y_axis": "broken"})
    assert "y_axis 'broken'" in warning
    assert batch_outputs.preflight_warnings(axes, "matrix", 4, None, {"y_axis": "radius"}) == []


# ------------------------------------------------------------------------------ every write is atomic
def test_grid_manifest_and_viewer_are_all_written_through_atomic_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from comfyui_workflow_iterator.core import atomic_files

    axes = [Axis("prompt", ("x" * 70_000,), "STRING"), Axis("steps", (1, 2), "INT")]
    mgr, bid = _finished_batch(tmp_path, axes, grid_options={"format": "jpeg"})  # JPEG: a .json sidecar too
    folder = tmp_path / "WI" / "b"
    cells = set(folder.iterdir())
    written: list[Path] = []
    real_open = atomic_files.open_atomic

    def spy(path: Any, *args: Any, **kwargs: Any) -> Any:
        written.append(Path(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(atomic_files, "open_atomic", spy)
    _outputs(mgr, tmp_path).build(bid)
    new_files = set(folder.iterdir()) - cells
    assert {p.name for p in new_files} == {"grid.jpg", "grid.json", "batch.json", "batch.csv", "viewer.html"}
    assert set(written) == new_files


def test_bad_grid_option_costs_the_grid_only_not_the_manifest_and_viewer(tmp_path: Path) -> None:
    axes = [Axis("radius", (1, 2), "INT")]
    mgr, bid = _finished_batch(tmp_path, axes, grid_options={"cell_gap": 5000})
    _outputs(mgr, tmp_path).build(bid)
    status = mgr.get_status(bid)
    assert status["state"] == "complete"
    folder = tmp_path / "WI" / "b"
    assert (folder / "batch.json").is_file() and (folder / "viewer.html").is_file()
    assert not (folder / "grid.png").exists()
    (warning,) = [w for w in status["warnings"] if "grid not drawn" in w]
    assert "cell_gap" in warning


def test_the_grid_shown_in_its_node_names_the_workflow_that_queued_it(tmp_path: Path) -> None:
    """Issue 13.7: newer frontends file node outputs under a workflow id; the grid's executed message had none."""
    axes = [Axis("cfg", (4.0, 6.0), "FLOAT")]
    mgr, bid = _finished_batch(tmp_path, axes, grid_options={})
    mgr.set_meta(bid, workflow_id="wf-123")
    sent: list[tuple[Any, ...]] = []
    batch_outputs.BatchOutputs(mgr, output_dir=lambda: str(tmp_path), notify=lambda *a: sent.append(a)).build(bid)
    executed = [a for a in sent if a[0] == "executed"]
    assert len(executed) == 1 and executed[0][1]["node"] == "9"
    assert executed[0][1]["workflow_id"] == "wf-123" and executed[0][1]["output"]["images"]
