"""Resume's file recognition (core/saved_cells.py), alone and through SweepService.resume after a restart.

Every case puts a cell's image on disk whose end never reached the journal (a SIGKILL within the journal's
0.25 s burst window) and checks that resume counts it exactly when it is whole and belongs to that cell.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from comfyui_workflow_iterator.core import parameter_parser, paths, prompt_graph, saved_cells
from comfyui_workflow_iterator.core.journal import BatchJournal
from comfyui_workflow_iterator.core.prompt_graph import CELL_INFO_KEY
from comfyui_workflow_iterator.nodes import _comfy
from comfyui_workflow_iterator.nodes.save_node import WISaveImage
from test_routes import RouteHarness

BATCH = "t_0123abcd"
SUBFOLDER = f"WI/{BATCH}"


def sweep(savers: dict[str, dict]) -> dict:
    prompt = {
        "1": {"class_type": "WIParameterInt", "inputs": {"name": "width", "values": "8, 9, 10"}},
        "3": {"class_type": "WIIterator", "inputs": {"parameters": ["1", 0], "enabled": True, "mode": "matrix", "batch_name": "t"}},
        "4": {"class_type": "EmptyImage", "inputs": {"width": ["1", 1], "height": 8, "batch_size": 1, "color": 0}},
    }
    for node_id, (class_type, prefix) in savers.items():
        prompt[node_id] = {"class_type": class_type, "inputs": {"images": ["4", 0], "filename_prefix": prefix}}
    return prompt


def make_plan(savers: dict) -> prompt_graph.SweepPlan:
    return prompt_graph.plan_sweep(sweep(savers), "3", parse=parameter_parser.parse)


def cell_extra(plan: prompt_graph.SweepPlan, index: int, batch_id: str = BATCH) -> dict:
    info = plan.cell_info(batch_id, plan.combinations[index], {**plan.batch_info(batch_id), "subfolder": f"WI/{batch_id}"})
    return {"workflow": {"nodes": []}, CELL_INFO_KEY: info}


def pixels(count: int = 1) -> list[np.ndarray]:
    return [np.full((8, 8, 3), 0.25 * (k + 1), dtype=np.float32) for k in range(count)]


@pytest.fixture
def output(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(_comfy, "output_directory", lambda: str(tmp_path))
    monkeypatch.setattr(_comfy, "metadata_disabled", lambda: False)
    return tmp_path


def wi_save(plan, index: int, node_id: str = "5", *, batch_id: str = BATCH, images: int = 1) -> list[str]:
    result = WISaveImage().save(pixels(images), "WI", prompt={}, extra_pnginfo=cell_extra(plan, index, batch_id), unique_id=node_id)
    return [ref["filename"] for ref in result["ui"]["images"]]


def stock_save(folder: Path, name: str, extra: dict | None) -> Path:
    """What core SaveImage writes: one tEXt chunk per extra_pnginfo key, JSON-encoded."""
    folder.mkdir(parents=True, exist_ok=True)
    info = PngInfo()
    info.add_text("prompt", "{}")
    for key, value in (extra or {}).items():
        info.add_text(key, json.dumps(value))
    Image.new("RGB", (8, 8), (9, 9, 9)).save(folder / name, pnginfo=info)
    return folder / name


def find(output: Path, plan, indices=(0, 1, 2), **kwargs) -> dict:
    return saved_cells.find_saved_cells(str(output), plan, batch_id=BATCH, subfolder=SUBFOLDER, indices=indices, **kwargs)


# ------------------------------------------------------------------------------------------------ WISaveImage files


def test_a_whole_file_naming_its_cell_is_recognised_with_its_ref(output) -> None:
    plan = make_plan({"5": ("WISaveImage", "WI")})
    (name,) = wi_save(plan, 1)
    assert find(output, plan) == {1: [{"filename": name, "subfolder": SUBFOLDER, "type": "output"}]}


def test_a_truncated_file_is_not_a_saved_cell(output) -> None:
    plan = make_plan({"5": ("WISaveImage", "WI")})
    (name,) = wi_save(plan, 1)
    path = output / SUBFOLDER / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # what a kill in the middle of a write leaves
    assert find(output, plan) == {}


def test_a_file_under_this_cells_name_that_names_another_batch_is_not_taken(output) -> None:
    plan = make_plan({"5": ("WISaveImage", "WI")})
    (name,) = wi_save(plan, 1, batch_id="other_89abcdef")
    (output / SUBFOLDER).mkdir(parents=True)
    (output / "WI" / "other_89abcdef" / name).rename(output / SUBFOLDER / name)
    assert find(output, plan) == {}


def test_without_metadata_the_name_of_the_rule_identifies_the_cell(output, monkeypatch) -> None:
    monkeypatch.setattr(_comfy, "metadata_disabled", lambda: True)
    plan = make_plan({"5": ("WISaveImage", "WI")})
    (name,) = wi_save(plan, 2)
    assert find(output, plan) == {2: [{"filename": name, "subfolder": SUBFOLDER, "type": "output"}]}


def test_a_cell_is_saved_only_when_each_of_its_save_nodes_saved_it(output) -> None:
    plan = make_plan({"5": ("WISaveImage", "WI"), "6": ("WISaveImage", "WI")})
    wi_save(plan, 0, "5")
    wi_save(plan, 0, "6")
    wi_save(plan, 1, "5")  # killed before node 6 ran
    found = find(output, plan)
    assert list(found) == [0] and len(found[0]) == 2


def test_a_cell_is_saved_only_when_its_save_node_wrote_every_image(output) -> None:
    plan = make_plan({"5": ("WISaveImage", "WI")})
    names = wi_save(plan, 0, images=2)
    (output / SUBFOLDER / names[1]).unlink()  # killed between the two images
    assert find(output, plan) == {}


def test_partial_execution_targets_limit_the_save_nodes_a_cell_needs(output) -> None:
    plan = make_plan({"5": ("WISaveImage", "WI"), "6": ("WISaveImage", "WI")})
    wi_save(plan, 0, "5")
    assert list(find(output, plan, partial_targets=["5"])) == [0]


def test_leftover_temporary_files_are_removed(output) -> None:
    (output / SUBFOLDER).mkdir(parents=True)
    (output / SUBFOLDER / ".c00000_width-8_n5_0.png.abc.part").write_bytes(b"half")
    (output / SUBFOLDER / "keep.png").write_bytes(b"x")
    assert saved_cells.remove_leftovers(str(output), SUBFOLDER) == 1
    assert [p.name for p in (output / SUBFOLDER).iterdir()] == ["keep.png"]


# ------------------------------------------------------------------------------------------------ other savers


def test_a_stock_saveimage_file_is_recognised_by_its_wi_cell_block(output) -> None:
    plan = make_plan({"7": ("SaveImage", "shots/plain")})
    path = stock_save(output / "shots", "plain_00007_.png", cell_extra(plan, 2))
    stock_save(output / "shots", "plain_00008_.png", cell_extra(plan, 1, batch_id="other_89abcdef"))
    stock_save(output / "shots", "plain_00009_.png", None)  # the user's own image, no wi_cell
    assert find(output, plan) == {2: [{"filename": path.name, "subfolder": "shots", "type": "output"}]}


def test_a_stock_file_older_than_the_batch_is_not_read(output) -> None:
    plan = make_plan({"7": ("SaveImage", "plain")})
    stock_save(output, "plain_00001_.png", cell_extra(plan, 0))
    assert list(find(output, plan, since=time.time() - 1)) == [0]
    assert find(output, plan, since=time.time() + 3600) == {}


def test_with_both_savers_a_cell_needs_both_files(output) -> None:
    plan = make_plan({"5": ("WISaveImage", "WI"), "7": ("SaveImage", "plain")})
    wi_save(plan, 0)
    stock_save(output, "plain_00001_.png", cell_extra(plan, 0))
    wi_save(plan, 1)  # killed before SaveImage of cell 1 ran
    found = find(output, plan)
    assert list(found) == [0]  # both savers finished cell 0; cell 1 lacks its SaveImage file
    assert [ref["filename"] for ref in found[0]] == [paths.cell_filename(0, {"width": 8}, 0, node_id="5")]


# ------------------------------------------------------------------------------------------------ through resume


def _run_and_die(monkeypatch, tmp_path, journal, prompt: dict, save_on_disk) -> str:
    """Cell 0 ends (journaled); cell 1's images reach the disk but its end never reaches the journal."""
    first = RouteHarness(monkeypatch, tmp_path, journal=journal)
    try:
        first.post_prompt({"prompt": prompt})
        batch_id = first.only_batch_id()
        first.server.run_next()
        first.settle()
        item = next(i for i in first.server.prompt_queue.queue if i[3]["wi"]["index"] == 1)
        save_on_disk(item)
        journal.flush()
    finally:
        first.close()
    return batch_id


def _resume(monkeypatch, tmp_path, journal, batch_id: str) -> tuple[dict, list, dict]:
    second = RouteHarness(monkeypatch, tmp_path, journal=journal)
    try:
        assert second.service.restore_interrupted() == [batch_id]
        code, body, _ = second.post(f"/wi/resume/{batch_id}")
        assert code == 200, body
        ran = second.run_all()
        return body, sorted(i[3]["wi"]["index"] for i in ran), second.get(f"/wi/status/{batch_id}")[1]
    finally:
        second.close()


@pytest.fixture
def journal(tmp_path):
    j = BatchJournal(tmp_path / "journal.sqlite")
    yield j
    j.close()


def test_resume_marks_done_a_cell_whose_wisaveimage_file_is_on_disk_but_not_in_the_journal(monkeypatch, tmp_path, journal) -> None:
    prompt = sweep({"5": ("WISaveImage", "WI")})

    def save(item):
        WISaveImage().save(pixels(), "WI", prompt=item[2], extra_pnginfo=item[3]["extra_pnginfo"], unique_id="5")

    batch_id = _run_and_die(monkeypatch, tmp_path, journal, prompt, save)
    body, ran, status = _resume(monkeypatch, tmp_path, journal, batch_id)
    assert (body["queued"], body["already_saved"]) == (1, 1)
    assert ran == [2]  # cell 1 is never run again
    cell = status["cells"][1]
    assert cell["status"] == "done" and cell["files"][0]["filename"] == paths.cell_filename(1, {"width": 9}, 0, node_id="5")
    assert status["counts"]["done"] == 3


def test_resume_marks_done_a_cell_saved_by_core_saveimage(monkeypatch, tmp_path, journal) -> None:
    prompt = sweep({"7": ("SaveImage", "plain/shot")})

    def save(item):
        stock_save(tmp_path / "output" / "plain", "shot_00002_.png", item[3]["extra_pnginfo"])

    batch_id = _run_and_die(monkeypatch, tmp_path, journal, prompt, save)
    body, ran, status = _resume(monkeypatch, tmp_path, journal, batch_id)
    assert (body["queued"], body["already_saved"]) == (1, 1)
    assert ran == [2]
    assert status["cells"][1]["files"] == [{"filename": "shot_00002_.png", "subfolder": "plain", "type": "output"}]


def test_resume_runs_again_a_cell_whose_file_was_cut_short(monkeypatch, tmp_path, journal) -> None:
    prompt = sweep({"5": ("WISaveImage", "WI")})

    def save(item):
        (name,) = [r["filename"] for r in WISaveImage().save(pixels(), "WI", prompt=item[2], extra_pnginfo=item[3]["extra_pnginfo"],
                                                             unique_id="5")["ui"]["images"]]
        path = tmp_path / "output" / item[3]["extra_pnginfo"][CELL_INFO_KEY]["subfolder"] / name
        path.write_bytes(path.read_bytes()[:60])

    batch_id = _run_and_die(monkeypatch, tmp_path, journal, prompt, save)
    body, ran, _ = _resume(monkeypatch, tmp_path, journal, batch_id)
    assert (body["queued"], body["already_saved"]) == (2, 0)
    assert ran == [1, 2]
