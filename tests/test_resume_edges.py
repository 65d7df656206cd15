"""Resume after a restart, through the routes over the stand-in: edges a mutation run (tools/mutation.py)
showed no other test pinned. Each test fails under the one-line bug named in its docstring."""
from __future__ import annotations

import pytest
from PIL import Image

from comfyui_workflow_iterator.core import paths
from comfyui_workflow_iterator.core.journal import BatchJournal
from test_routes import RouteHarness, assert_error, plain_prompt, sweep_prompt


@pytest.fixture
def journal(tmp_path):
    j = BatchJournal(tmp_path / "journal.sqlite")
    yield j
    j.close()


def save_whole_png(folder, cell) -> None:
    """The image WISaveImage (node "5" of sweep_prompt) saves for ``cell``, whole, without metadata."""
    Image.new("RGB", (4, 4)).save(folder / paths.cell_filename(cell["index"], cell["values"], 0, node_id="5"))


def interrupted_batch(monkeypatch, tmp_path, journal, *, cancel: bool = False) -> tuple[str, dict]:
    """A 3-cell batch whose first cell ended before ComfyUI "died" (or that was cancelled)."""
    first = RouteHarness(monkeypatch, tmp_path, journal=journal)
    try:
        first.post_prompt({"prompt": sweep_prompt("1, 2, 3", "10"), "extra_data": {"keep": 1}})
        batch_id = first.only_batch_id()
        first.server.run_next()
        first.settle()
        if cancel:
            assert first.post(f"/wi/cancel_batch/{batch_id}")[0] == 200
        status = first.manager.get_status(batch_id)
        journal.flush()
    finally:
        first.close()
    return batch_id, status


def test_restore_puts_the_interrupted_batch_back_in_memory(monkeypatch, tmp_path, journal):
    """``restore_interrupted`` calls ``manager.restore_batch`` for each journaled batch (not only lists it)."""
    batch_id, _ = interrupted_batch(monkeypatch, tmp_path, journal)
    second = RouteHarness(monkeypatch, tmp_path, journal=journal)
    try:
        assert second.service.restore_interrupted() == [batch_id]
        assert second.manager.state_of(batch_id) == "interrupted"
    finally:
        second.close()


def test_resumed_cells_keep_the_extra_data_and_queue_behind_earlier_prompts(monkeypatch, tmp_path, journal):
    """The template keeps the journaled ``extra_data`` (``or {}``, not ``and``) and resumed cells take a normal,
    back-of-the-queue number (``allocate_number(False)``, not ``True``)."""
    batch_id, _ = interrupted_batch(monkeypatch, tmp_path, journal)
    second = RouteHarness(monkeypatch, tmp_path, journal=journal)
    try:
        second.service.restore_interrupted()
        second.post_prompt({"prompt": plain_prompt(), "client_id": "someone-else"})
        status, body, _ = second.post(f"/wi/resume/{batch_id}")
        assert status == 200 and body["queued"] == 2, body
        ran = second.run_all()
        assert ["wi" in item[3] for item in ran] == [False, True, True]  # the earlier prompt first
        assert [item[3]["keep"] for item in ran[1:]] == [1, 1]
    finally:
        second.close()


def test_resume_of_a_batch_cancelled_before_the_restart_is_refused(monkeypatch, tmp_path, journal):
    """A journaled terminal state (``in ("complete", "cancelled", "expired")``, not ``not in``) is a 409."""
    batch_id, _ = interrupted_batch(monkeypatch, tmp_path, journal, cancel=True)
    second = RouteHarness(monkeypatch, tmp_path, journal=journal)
    try:
        assert second.service.restore_interrupted() == []
        status, body, _ = second.post(f"/wi/resume/{batch_id}")
        assert_error(status, body, 409)
        assert "cancelled" in body["error"] + body.get("detail", "")
    finally:
        second.close()


def test_a_cell_whose_image_is_on_disk_is_not_run_again_and_the_grid_follows(monkeypatch, tmp_path, journal):
    """Resume counts saved cells (``len(todo) - len(remaining)``), reads the batch's subfolder from its meta
    (``or ""``, not ``and``) and schedules the grid when nothing is left to run."""
    batch_id, status = interrupted_batch(monkeypatch, tmp_path, journal)
    subfolder = status["meta"]["subfolder"]
    for cell in status["cells"][1:]:  # both unfinished cells saved their image before the "crash"
        folder = tmp_path / "output" / subfolder
        folder.mkdir(parents=True, exist_ok=True)
        save_whole_png(folder, cell)
    second = RouteHarness(monkeypatch, tmp_path, journal=journal)
    try:
        second.service.restore_interrupted()
        status, body, _ = second.post(f"/wi/resume/{batch_id}")
        assert status == 200, body
        assert (body["queued"], body["already_saved"], body["state"]) == (0, 2, "collecting")
        assert second.run_all() == []
        assert second.grids == [batch_id]
        cells = second.manager.get_status(batch_id)["cells"]
        assert [c["status"] for c in cells] == ["done", "done", "done"]
    finally:
        second.close()


def test_resume_counts_saved_and_queued_cells_apart(monkeypatch, tmp_path, journal):
    """``already_saved`` is ``len(todo) - len(remaining)``: one cell saved, one left to run."""
    batch_id, status = interrupted_batch(monkeypatch, tmp_path, journal)
    cell = status["cells"][2]
    folder = tmp_path / "output" / status["meta"]["subfolder"]
    folder.mkdir(parents=True, exist_ok=True)
    save_whole_png(folder, cell)
    second = RouteHarness(monkeypatch, tmp_path, journal=journal)
    try:
        # No restore_interrupted first: resume restores an unknown batch from its journal record itself.
        status, body, _ = second.post(f"/wi/resume/{batch_id}")
        assert status == 200, body
        assert (body["queued"], body["already_saved"], body["state"]) == (1, 1, "active")
        assert [item[3]["wi"]["index"] for item in second.run_all()] == [1]
    finally:
        second.close()


def test_resume_of_a_batch_whose_cells_all_ended_builds_the_grid(monkeypatch, tmp_path, journal):
    """Nothing to run (``if not todo``): the grid the crash prevented is scheduled."""
    first = RouteHarness(monkeypatch, tmp_path, journal=journal)
    try:
        first.post_prompt({"prompt": sweep_prompt("1, 2", "10")})
        batch_id = first.only_batch_id()
        first.run_all()
        journal.flush()
    finally:
        first.close()
    second = RouteHarness(monkeypatch, tmp_path, journal=journal)
    try:
        assert second.service.restore_interrupted() == [batch_id]
        status, body, _ = second.post(f"/wi/resume/{batch_id}")
        assert status == 200 and (body["queued"], body["already_saved"]) == (0, 0), body
        assert second.grids == [batch_id]
    finally:
        second.close()
