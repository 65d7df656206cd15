"""Durable files against a real ComfyUI killed with SIGKILL: no half-written image is ever taken for a finished
cell, a cell saved by core SaveImage is recognised on resume and never runs twice, and text a user can send
(a lone UTF-16 surrogate) reaches the journal. Each test starts its own servers on one base directory."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import pytest
from PIL import Image

from tools.comfy_harness import ComfyServer, cell_values, locate_comfyui

from .test_real_comfyui import sweep

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
PACKS = {"wi_test_nodes": HERE / "fixture_nodes", "wi_test_file_nodes": HERE / "fixture_nodes_files"}


@pytest.fixture
def base_dir():
    found = locate_comfyui()
    if isinstance(found, str):
        pytest.skip(f"integration test skipped: {found}")
    path = Path(tempfile.mkdtemp(prefix="wi-files-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def server(base_dir: Path) -> ComfyServer:
    return ComfyServer(extra_packs=PACKS, base_dir=base_dir).start()


def journal_path(base_dir: Path) -> Path:
    return base_dir / "user" / "workflow_iterator" / "batches.sqlite3"


def whole_png_info(path: Path) -> dict | None:
    """The PNG's text chunks if the file is a whole image (decodes to the end), else None."""
    try:
        with Image.open(path) as image:
            info = dict(image.info)
            image.load()
        return info
    except (OSError, SyntaxError, ValueError):
        return None


def forget_cell_end(base_dir: Path, batch_id: str) -> int:
    """Undo the journal's record of the last cell that ended done, as if the kill had come within the
    journal's burst window (0.25 s) after that cell's save. Returns the cell's index."""
    with sqlite3.connect(journal_path(base_dir)) as conn:
        (rowid,) = conn.execute("SELECT id FROM wi_batch WHERE batch_id = ?", (batch_id,)).fetchone()
        row = conn.execute("SELECT idx FROM wi_cell WHERE batch = ? AND status = 'done' ORDER BY ended_at DESC, idx DESC LIMIT 1",
                           (rowid,)).fetchone()
        assert row is not None, "no cell end was journaled before the kill"
        conn.execute("UPDATE wi_cell SET status = 'queued', error = NULL, files = '[]', ended_at = NULL WHERE batch = ? AND idx = ?",
                     (rowid, row[0]))
        conn.execute("UPDATE wi_batch SET n_done = n_done - 1 WHERE id = ?", (rowid,))
    return int(row[0])


def test_a_kill_in_the_middle_of_a_save_leaves_nothing_resume_takes_for_a_finished_cell(base_dir):
    prompt = {
        "1": {"class_type": "WIParameterInt", "inputs": {"name": "seed", "values": "1, 2"}},
        "3": {"class_type": "WIIterator", "inputs": {"parameters": ["1", 0], "enabled": True, "mode": "matrix", "batch_name": "midwrite"}},
        "10": {"class_type": "WITestNoise", "inputs": {"size": 3072, "seed": ["1", 1]}},
        "20": {"class_type": "WISaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "WI"}},
    }
    first = server(base_dir)
    try:
        code, answer = first.queue_prompt(prompt)
        assert code == 200, answer
        batch_id = first.batch_for_prompt(answer["prompt_id"])["batch_id"]
        folder = first.output_dir / "WI" / batch_id
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the first sign of a save (its temporary file, or the image itself)
            if folder.is_dir() and os.listdir(folder):
                break
            time.sleep(0.002)
        first.process.kill()  # SIGKILL while the PNG of a 3072x3072 noise image is being written
        first.stop(kill=True)
    finally:
        first.stop(kill=True)
    left = sorted(os.listdir(folder))
    cells = [n for n in left if n.startswith("c") and n.endswith(".png")]
    whole = [n for n in cells if whole_png_info(folder / n) is not None]
    assert len(whole) < len(left), f"the kill did not land during a write: {left}"

    second = server(base_dir)
    try:
        code, resumed = second.post(f"/wi/resume/{batch_id}", {})
        assert code == 200, resumed
        # Only a whole image may count; a half-written one (whatever its name) must run again.
        assert resumed["already_saved"] == len(whole)
        assert resumed["queued"] == 2 - len(whole)
        final = second.wait_batch(batch_id, timeout=180)
        assert final["state"] == "complete" and final["counts"]["done"] == 2
        names = sorted(os.listdir(folder))
        assert not [n for n in names if n.startswith(".")], names  # no temporary file left behind
        cell_files = [n for n in names if n.startswith("c") and n.endswith(".png")]
        assert len(cell_files) == 2
        for cell in final["cells"]:
            (ref,) = cell["files"]
            info = whole_png_info(second.output_dir / ref["subfolder"] / ref["filename"])
            assert info is not None, ref
            assert json.loads(info["wi_cell"])["index"] == cell["index"]
    finally:
        second.cleanup()


def test_cells_saved_by_core_saveimage_run_exactly_once_across_a_kill_and_resume(base_dir):
    total = 16
    prompt = {
        "1": {"class_type": "WIParameterInt", "inputs": {"name": "color", "values": f"1-{total}"}},
        "3": {"class_type": "WIIterator", "inputs": {"parameters": ["1", 0], "enabled": True, "mode": "matrix", "batch_name": "stock"}},
        "10": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": ["1", 1]}},
        "14": {"class_type": "WITestSleep", "inputs": {"image": ["10", 0], "seconds": 0.25}},
        "20": {"class_type": "SaveImage", "inputs": {"images": ["14", 0], "filename_prefix": "stock/cell"}},
    }
    first = server(base_dir)
    stock = first.output_dir / "stock"
    try:
        code, answer = first.queue_prompt(prompt)
        assert code == 200, answer
        batch_id = first.batch_for_prompt(answer["prompt_id"])["batch_id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(stock.glob("cell_*.png"))) < 5:
            time.sleep(0.005)
        time.sleep(0.06)  # shortly after a save: that cell's end may or may not be journaled yet
    finally:
        first.stop(kill=True)
    forgotten = forget_cell_end(base_dir, batch_id)  # make sure at least one saved cell is known by its file only
    before = {p.name: p.stat().st_mtime_ns for p in stock.glob("cell_*.png")}

    second = server(base_dir)
    try:
        status = second.get(f"/wi/status/{batch_id}")[1]
        ended = {c["index"] for c in status["cells"] if c["status"] == "done"}
        assert forgotten not in ended
        on_disk_only = [n for n in before if json.loads(whole_png_info(stock / n)["wi_cell"])["index"] not in ended]
        code, resumed = second.post(f"/wi/resume/{batch_id}", {})
        assert code == 200, resumed
        assert resumed["already_saved"] == len(on_disk_only) >= 1
        assert resumed["queued"] == total - len(ended) - len(on_disk_only)
        final = second.wait_batch(batch_id, timeout=180)
        assert final["state"] == "complete" and final["counts"]["done"] == total
        files = sorted(stock.glob("cell_*.png"))
        assert len(files) == total, [p.name for p in files]
        owners = [json.loads(whole_png_info(p)["wi_cell"]) for p in files]
        assert {o["batch_id"] for o in owners} == {batch_id}
        assert sorted(o["index"] for o in owners) == list(range(total))  # each cell exactly once
        for name, mtime in before.items():
            assert (stock / name).stat().st_mtime_ns == mtime  # nothing saved before the kill was redone
        by_index = {c["index"]: c for c in final["cells"]}
        ref = by_index[forgotten]["files"][0]
        assert json.loads(whole_png_info(second.output_dir / ref["subfolder"] / ref["filename"])["wi_cell"])["index"] == forgotten
    finally:
        second.cleanup()


def test_a_lone_surrogate_in_a_string_value_is_journaled_and_survives_a_restart(base_dir):
    broken = "broken emoji \ud83d end"
    prompt = {
        "1": {"class_type": "WIParameterString", "inputs": {"name": "text", "values": f"{broken}\nfine"}},
        "3": {"class_type": "WIIterator", "inputs": {"parameters": ["1", 0], "enabled": True, "mode": "matrix", "batch_name": "emoji"}},
        "10": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 5}},
        "11": {"class_type": "WITestText", "inputs": {"image": ["10", 0], "text": ["1", 1]}},
        "20": {"class_type": "WISaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "WI"}},
    }
    other = sweep("1, 2", "1", name="neighbour", grid=False)
    first = server(base_dir)
    try:
        code, answer = first.queue_prompt(prompt)
        assert code == 200, answer
        code, other_answer = first.queue_prompt(other)
        assert code == 200, other_answer
        batch_id = first.batch_for_prompt(answer["prompt_id"])["batch_id"]
        other_id = first.batch_for_prompt(other_answer["prompt_id"])["batch_id"]
        status = first.wait_batch(batch_id, states=("complete", "collecting", "cancelled"), timeout=120)
        assert status["counts"]["done"] == 2, status
        first.wait_batch(other_id, timeout=120)
        time.sleep(0.5)  # the journal's burst window
        assert "writes lost" not in first.log_tail(400)
    finally:
        first.stop(kill=True)
    second = server(base_dir)
    try:
        code, body = second.get(f"/wi/status/{batch_id}")
        assert code == 200, body
        assert body.get("source") == "journal"  # a finished batch is read back from the journal after a restart
        # journal cells: values by axis, each stored once and read back unchanged
        assert [cell_values(body, c) for c in body["cells"]] == [{"text": broken}, {"text": "fine"}]
        assert [c["status"] for c in body["cells"]] == ["done", "done"]
        code, neighbour = second.get(f"/wi/status/{other_id}")
        assert code == 200 and neighbour["counts"]["done"] == 2
    finally:
        second.cleanup()
