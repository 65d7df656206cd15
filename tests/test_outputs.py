"""Any output node (issue 17): classifying ComfyUI's output entries (core/outputs.py), placing temp files and
texts in the batch folder, the per-cell record resume reads (core/saved_cells.py), and the typed outputs in
the records and batch.json (core/batch_outputs.py, core/manifest.py).

The ui dicts below are what ComfyUI 0.3.64 / 0.8.0 / 0.38 report (comfy_api/latest/_ui.py, nodes.py).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from comfyui_workflow_iterator.core import manifest, outputs, paths, saved_cells
from comfyui_workflow_iterator.core.batch_outputs import batch_record
from comfyui_workflow_iterator.core.iteration_state import IterationStateManager
from comfyui_workflow_iterator.core.records import CellRecord, OutputRecord
from test_saved_cells import BATCH, SUBFOLDER, make_plan

#: One history ``outputs`` of a cell with every kind of output node.
HISTORY = {
    "9": {"images": [{"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"}]},                # SaveImage
    "10": {"images": [{"filename": "ComfyUI_temp_abcde_00001_.png", "subfolder": "", "type": "temp"}]},     # PreviewImage
    "11": {"images": [{"filename": "ComfyUI_00001_.webp", "subfolder": "", "type": "output"}], "animated": (True,)},
    "12": {"images": [{"filename": "video/ComfyUI_00001_.mp4", "subfolder": "video", "type": "output"}], "animated": (True,)},
    "13": {"audio": [{"filename": "ComfyUI_00001_.flac", "subfolder": "audio", "type": "output"}]},
    "14": {"text": ("hello world",)},
    "15": {"gifs": [{"filename": "AnimateDiff_00001.mp4", "subfolder": "", "type": "output", "format": "video/h264-mp4"}]},
    "16": {"images": [{"filename": "ComfyUI_temp_x_00001_.png", "subfolder": "", "type": "temp"}], "animated": (False,)},
}


def test_every_output_node_kind_is_classified_with_node_and_media_type() -> None:
    found = outputs.classify(HISTORY)
    got = [(o.node_id, o.kind, o.media_type, o.type) for o in found]
    assert got == [
        ("9", "image", "image/png", "output"),
        ("10", "image", "image/png", "temp"),
        ("11", "animated", "image/webp", "output"),
        ("12", "video", "video/mp4", "output"),
        ("13", "audio", "audio/flac", "output"),
        ("14", "text", "text/plain", "text"),
        ("15", "video", "video/mp4", "output"),
        ("16", "image", "image/png", "temp"),  # V3 PreviewImage says animated (False,)
    ]
    assert found[5].text == "hello world"


def test_the_packs_save_nodes_come_first_then_nodes_in_numeric_id_order() -> None:
    found = outputs.classify({"10": HISTORY["9"], "9": HISTORY["13"], "2": HISTORY["11"]}, prefer_nodes=["10"])
    assert [o.node_id for o in found] == ["10", "2", "9"]


@pytest.mark.parametrize("bad", [None, [], "x", {"1": None}, {"1": {"images": "nope"}}, {"1": {"images": [{"subfolder": ""}]}},
                                 {"1": {"text": [3]}}])
def test_malformed_results_give_no_outputs_and_never_raise(bad) -> None:
    assert outputs.classify(bad) == []


def test_an_unknown_kind_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="output kind must be one of .*'hologram'"):
        outputs.origin("1", "hologram", "x/y")


def test_temp_files_and_texts_get_batch_folder_names_from_the_naming_rule() -> None:
    values = {"width": 8}
    placed = outputs.place(outputs.classify(HISTORY), subfolder=SUBFOLDER, index=3, values=values)
    by_node = {o.node_id: o for o in placed}
    assert by_node["9"].filename == "ComfyUI_00001_.png" and by_node["9"].subfolder == ""  # saved: left where it is
    assert by_node["10"] == outputs.CellOutput(paths.cell_filename(3, values, 0, node_id="10"), SUBFOLDER, "output",
                                               "10", "image", "image/png", 0)
    assert by_node["14"].filename == paths.cell_filename(3, values, 0, node_id="14", extension="txt")
    assert by_node["14"].text == "hello world" and by_node["14"].type == "output"


def test_a_typed_ref_keeps_its_origin_through_the_manager_and_its_journal_form() -> None:
    mgr = IterationStateManager()
    plan = make_plan({"5": ("WISaveImage", "WI")})
    batch = mgr.create_batch(batch_name="t", mode="matrix", combinations=plan.combinations, axes=plan.axes)
    ref = outputs.classify(HISTORY)[2].ref()
    mgr.register_result(batch.batch_id, 0, [ref])
    (stored,) = mgr.get_status(batch.batch_id)["cells"][0]["files"]
    assert stored == ref
    snap = mgr.snapshot(batch.batch_id)
    assert snap.cells[0].files[0].origin is outputs.origin("11", "animated", "image/webp")  # shared, not copied


# ------------------------------------------------------------------------------------------- storing and resume
def _history_files(output: Path, temp: Path) -> None:
    Image.new("RGB", (8, 8), "red").save(output / "ComfyUI_00001_.png")
    Image.new("RGB", (8, 8), "blue").save(temp / "ComfyUI_temp_abcde_00001_.png")
    (output / "audio").mkdir()
    (output / "audio" / "ComfyUI_00001_.flac").write_bytes(b"fLaC" + b"\0" * 60)


def _store(output: Path, temp: Path, index: int = 1) -> tuple[list[outputs.CellOutput], list[str]]:
    plan = make_plan({"5": ("WISaveImage", "WI")})
    values = saved_cells.cell_values(plan, index)
    history = {k: HISTORY[k] for k in ("9", "10", "13", "14")}
    found = outputs.classify(history)
    placed = outputs.place(found, subfolder=SUBFOLDER, index=index, values=values)
    problems = saved_cells.store_outputs(str(output), str(temp), found, placed, batch_id=BATCH, index=index,
                                         values=values, subfolder=SUBFOLDER)
    return placed, problems


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    output, temp = tmp_path / "output", tmp_path / "temp"
    output.mkdir()
    temp.mkdir()
    _history_files(output, temp)
    return output, temp


def test_a_preview_is_copied_out_of_temp_and_a_text_written_into_the_batch_folder(folders) -> None:
    output, temp = folders
    placed, problems = _store(output, temp)
    assert problems == []
    copied = output / SUBFOLDER / next(o.filename for o in placed if o.node_id == "10")
    assert copied.read_bytes() == (temp / "ComfyUI_temp_abcde_00001_.png").read_bytes()
    text = output / SUBFOLDER / next(o.filename for o in placed if o.node_id == "14")
    assert text.read_text(encoding="utf-8") == "hello world"


def test_resume_takes_a_cell_from_its_record_whichever_nodes_saved_it(folders) -> None:
    output, temp = folders
    placed, _ = _store(output, temp, index=1)
    (temp / "ComfyUI_temp_abcde_00001_.png").unlink()  # ComfyUI wipes temp when it starts again
    found = saved_cells.find_saved_cells(str(output), make_plan({"5": ("WISaveImage", "WI")}), batch_id=BATCH,
                                         subfolder=SUBFOLDER, indices=[0, 1, 2])
    assert found == {1: [o.ref() for o in placed]}


def test_resume_runs_again_a_cell_whose_recorded_file_was_cut_short(folders) -> None:
    output, temp = folders
    _store(output, temp, index=1)
    flac = output / "audio" / "ComfyUI_00001_.flac"
    flac.write_bytes(flac.read_bytes()[:10])
    found = saved_cells.find_saved_cells(str(output), make_plan({"5": ("WISaveImage", "WI")}), batch_id=BATCH,
                                         subfolder=SUBFOLDER, indices=[1])
    assert found == {}


def test_resume_ignores_a_record_naming_another_batch_or_cell(folders) -> None:
    output, temp = folders
    _store(output, temp, index=1)
    plan = make_plan({"5": ("WISaveImage", "WI")})
    name = output / SUBFOLDER / paths.cell_record_filename(1, saved_cells.cell_values(plan, 1))
    body = json.loads(name.read_text(encoding="utf-8"))
    body["wi_cell"]["batch_id"] = "other_00000000"
    name.write_text(json.dumps(body), encoding="utf-8")
    assert saved_cells.find_saved_cells(str(output), plan, batch_id=BATCH, subfolder=SUBFOLDER, indices=[1]) == {}


def test_no_record_is_written_when_an_output_could_not_be_stored(folders) -> None:
    output, temp = folders
    (temp / "ComfyUI_temp_abcde_00001_.png").unlink()  # gone before the copy
    placed, problems = _store(output, temp, index=1)
    assert len(problems) == 1 and "node 10" in problems[0]
    assert not [n for n in os.listdir(output / SUBFOLDER) if n.endswith("_ncell.json")]


def test_a_temp_file_outside_the_temp_folder_is_not_copied(folders) -> None:
    output, temp = folders
    evil = outputs.CellOutput("../../secret.png", "", "temp", "10", "image", "image/png")
    placed = outputs.place([evil], subfolder=SUBFOLDER, index=0, values={"width": 8})
    problems = saved_cells.store_outputs(str(output), str(temp), [evil], placed, batch_id=BATCH, index=0,
                                         values={"width": 8}, subfolder=SUBFOLDER)
    assert problems and "leaves its root" in problems[0]


# ------------------------------------------------------------------------------------------- records, batch.json
def test_batch_json_cells_list_typed_outputs_and_keep_their_files(folders) -> None:
    output, temp = folders
    placed, _ = _store(output, temp, index=0)
    mgr = IterationStateManager()
    plan = make_plan({"5": ("WISaveImage", "WI")})
    batch = mgr.create_batch(batch_name="t", mode="matrix", combinations=plan.combinations, axes=plan.axes)
    mgr.register_result(batch.batch_id, 0, [o.ref() for o in placed])
    record = batch_record(mgr.snapshot(batch.batch_id), str(output))
    folder = output / SUBFOLDER
    doc = manifest.manifest_document(record, root=str(folder))
    cell = doc["cells"][0]
    preview = paths.cell_filename(0, {"width": 8}, 0, node_id="10")
    assert cell["outputs"] == [
        {"path": "../../ComfyUI_00001_.png", "kind": "image", "node_id": "9", "media_type": "image/png"},
        {"path": preview, "kind": "image", "node_id": "10", "media_type": "image/png"},
        {"path": "../../audio/ComfyUI_00001_.flac", "kind": "audio", "node_id": "13", "media_type": "audio/flac"},
        {"text": "hello world", "kind": "text", "node_id": "14", "media_type": "text/plain"},
    ]
    assert cell["files"] == ["../../ComfyUI_00001_.png", preview, "../../audio/ComfyUI_00001_.flac"]
    assert manifest.viewer_data(record, root=str(folder))["cells"][0]["outputs"] == cell["outputs"]


def test_the_grid_tile_of_a_cell_is_its_first_still_image_else_its_animation_else_its_audio() -> None:
    audio = OutputRecord("/a.flac", "audio")
    video = OutputRecord("/v.mp4", "video")
    still = OutputRecord("/s.png", "image")
    assert CellRecord(0, (0,), outputs=(audio, video, still)).tile_output() is still
    assert CellRecord(0, (0,), outputs=(audio, video)).tile_output() is video
    assert CellRecord(0, (0,), outputs=(OutputRecord("/t.txt", "text", text="x"), audio)).tile_output() is audio
    assert CellRecord(0, (0,), outputs=(OutputRecord("/t.txt", "text", text="x"),)).tile_output() is None


def test_once_a_batch_has_cell_records_a_cell_without_one_runs_again(folders, monkeypatch) -> None:
    """Cells of one batch share their output nodes: a cell whose WISaveImage file is on disk but whose record
    was never written (killed before the background store) lacks its other outputs and must run again."""
    from comfyui_workflow_iterator.nodes import _comfy
    from comfyui_workflow_iterator.nodes.save_node import WISaveImage
    from test_saved_cells import cell_extra, pixels

    output, temp = folders
    _store(output, temp, index=1)
    plan = make_plan({"5": ("WISaveImage", "WI")})
    monkeypatch.setattr(_comfy, "output_directory", lambda: str(output))
    monkeypatch.setattr(_comfy, "metadata_disabled", lambda: False)
    WISaveImage().save(pixels(), "WI", prompt={}, extra_pnginfo=cell_extra(plan, 2), unique_id="5")
    found = saved_cells.find_saved_cells(str(output), plan, batch_id=BATCH, subfolder=SUBFOLDER, indices=[1, 2])
    assert set(found) == {1}
    (output / SUBFOLDER / paths.cell_record_filename(1, saved_cells.cell_values(plan, 1))).unlink()
    assert set(saved_cells.find_saved_cells(str(output), plan, batch_id=BATCH, subfolder=SUBFOLDER, indices=[1, 2])) == {2}


# ------------------------------------------------------------------------------------------- through the service
def test_the_sweep_captures_a_preview_and_a_text_of_every_cell_from_comfyuis_results(monkeypatch, tmp_path) -> None:
    from test_sweep_service import Harness, only_batch, sweep_prompt

    h = Harness(monkeypatch, tmp_path)
    temp = tmp_path / "temp"
    temp.mkdir()

    def execute(prompt: dict, item: tuple) -> tuple[str, list, dict]:
        name = f"ComfyUI_temp_{item[1][:8]}_00001_.png"
        Image.new("RGB", (8, 8), "green").save(temp / name)
        return "success", [], {"7": {"images": [{"filename": name, "subfolder": "", "type": "temp"}]},
                               "8": {"text": (f"cell of {item[1]}",)}}

    try:
        prompt = sweep_prompt("1, 2", "10")
        # No WISaveImage: node 7 reports a temp image like PreviewImage (the stand-in validates only the node
        # types it knows, so it is declared a SaveImage) and node 8 a text like PreviewAny.
        del prompt["5"]
        prompt["7"] = {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "p"}}
        status, answer = h.post({"prompt": prompt})
        assert status == 200, answer
        h.run_all(execute)
        batch = only_batch(h)
        folder = tmp_path / "output" / batch["meta"]["subfolder"]
        for cell in batch["cells"]:
            assert cell["status"] == "done"
            preview, text = cell["files"]
            assert (preview["node_id"], preview["kind"], preview["type"]) == ("7", "image", "output")
            assert (text["node_id"], text["kind"], text["media_type"]) == ("8", "text", "text/plain")
            assert (folder / preview["filename"]).is_file()
            assert (folder / text["filename"]).read_text(encoding="utf-8") == f"cell of {cell['prompt_id']}"
        assert len(list(folder.glob("*" + paths.CELL_RECORD_SUFFIX))) == 2
    finally:
        h.close()
