"""A batch journaled without per-cell rows (how the sweep records it): O(1) to record, a value stored once.

Issue 11, defect 7: one 100,000-character STRING value swept over 300 cells wrote 63 MB of journal, because every
cell row copied its values.
"""
from __future__ import annotations

import os

from comfyui_workflow_iterator.core.journal import BatchJournal


def sparse_batch(batch_id: str = "b1", total: int = 6, huge: str = "v") -> dict:
    return {
        "batch_id": batch_id, "batch_name": "sparse", "mode": "matrix", "client_id": None,
        "created_at": 1_700_000_000.0, "total": total,
        "axes": [{"name": "n", "type": "INT", "values": list(range(total))}, {"name": "text", "type": "STRING", "values": [huge]}],
        "meta": {}, "plan": {"sweep": {"axes": []}},
    }


def end(journal, index, status="done", error=None, files=()):
    journal.record_cell_end("b1", index, status=status, error=error, prompt_id=None, files=list(files), ended_at=None)


def test_a_huge_value_is_stored_once_not_once_per_cell(tmp_path):
    path = tmp_path / "j.sqlite3"
    journal = BatchJournal(str(path))
    journal.record_batch(sparse_batch(total=300, huge="x" * 100_000))
    for index in range(300):
        end(journal, index, files=[{"filename": f"c{index}.png", "subfolder": "WI/b1", "type": "output"}])
    assert journal.flush()
    record = journal.get_batch("b1")
    journal.close()
    assert record["counts"]["done"] == 300 and len(record["cells"]) == 300
    size = sum(os.path.getsize(p) for p in tmp_path.iterdir())
    assert size < 2_000_000, f"journal is {size} bytes"


def test_cells_without_a_row_are_queued_and_a_cancel_counts_them_cancelled_except_the_running_ones(tmp_path):
    journal = BatchJournal(str(tmp_path / "j.sqlite3"))
    journal.record_batch(sparse_batch(total=6))
    end(journal, 0)
    end(journal, 1, "failed", "boom")
    assert journal.flush()
    record = journal.get_batch("b1")
    assert record["sparse"] and [c["index"] for c in record["cells"]] == [0, 1]
    assert record["counts"] == {"total": 6, "done": 1, "failed": 1, "cancelled": 0, "pending": 4}
    journal.record_cells_cancelled("b1", "batch cancelled", keep=[2])
    journal.record_state("b1", "cancelled")
    assert journal.flush()
    record = journal.get_batch("b1")
    assert record["counts"] == {"total": 6, "done": 1, "failed": 1, "cancelled": 3, "pending": 1}
    end(journal, 2)  # the cell ComfyUI was running finished after the cancel
    assert journal.flush()
    record = journal.get_batch("b1")
    journal.close()
    assert record["counts"] == {"total": 6, "done": 2, "failed": 1, "cancelled": 3, "pending": 0}
    assert {c["index"]: c["status"] for c in record["cells"]} == {0: "done", 1: "failed", 2: "done"}


def test_a_cell_end_past_the_batch_is_ignored(tmp_path):
    journal = BatchJournal(str(tmp_path / "j.sqlite3"))
    journal.record_batch(sparse_batch(total=2))
    end(journal, 5)
    assert journal.flush()
    record = journal.get_batch("b1")
    journal.close()
    assert record["cells"] == [] and record["counts"]["done"] == 0


def test_a_sweep_of_a_huge_value_journals_it_once(monkeypatch, tmp_path):
    """The sweep itself records batches without per-cell rows (the defect was in what it handed the journal)."""
    import asyncio

    import comfy_standin
    from comfyui_workflow_iterator.core.iteration_state import IterationStateManager
    from comfyui_workflow_iterator.core.sweep import SweepService
    from comfyui_workflow_iterator.nodes import _comfy

    loop = asyncio.new_event_loop()
    server = comfy_standin.install(monkeypatch, loop, tmp_path=tmp_path)
    host = _comfy.ComfyHost(server)
    host.run_background = lambda fn, *a: fn(*a)
    journal = BatchJournal(str(tmp_path / "journal" / "j.sqlite3"))
    service = SweepService(IterationStateManager(), host, journal=journal, window=4)
    host.install(service)
    prompt = {
        "1": {"class_type": "WIParameterInt", "inputs": {"name": "width", "values": "1-300"}},
        "2": {"class_type": "WIParameter", "inputs": {"name": "text", "type": "STRING", "values": "x" * 100_000,
                                                      "target": "5.filename_prefix", "previous": ["1", 0]}},
        "3": {"class_type": "WIIterator", "inputs": {"parameters": ["2", 0], "enabled": True, "mode": "matrix", "batch_name": "huge"}},
        "4": {"class_type": "EmptyImage", "inputs": {"width": ["1", 1], "height": 8, "batch_size": 1, "color": 0}},
        "5": {"class_type": "WISaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "WI"}},
    }
    try:
        status, answer = loop.run_until_complete(server.post_prompt({"prompt": prompt}))
        assert status == 200, answer
        for _ in range(50):
            loop.run_until_complete(asyncio.sleep(0))
        assert journal.flush()
        (summary,) = journal.list_batches()
        assert summary["counts"]["total"] == 300
        size = sum(os.path.getsize(p) for p in (tmp_path / "journal").iterdir())
        assert size < 2_000_000, f"journal is {size} bytes"
    finally:
        journal.close()
        comfy_standin.close_loop(loop)


def test_a_batch_read_back_from_the_journal_has_every_cell_with_its_coordinates(monkeypatch, tmp_path):
    import asyncio

    import comfy_standin
    from comfyui_workflow_iterator.core.iteration_state import IterationStateManager
    from comfyui_workflow_iterator.core.sweep import SweepService
    from comfyui_workflow_iterator.nodes import _comfy

    loop = asyncio.new_event_loop()
    server = comfy_standin.install(monkeypatch, loop, tmp_path=tmp_path)
    host = _comfy.ComfyHost(server)
    host.run_background = lambda fn, *a: fn(*a)
    journal = BatchJournal(str(tmp_path / "j.sqlite3"))
    manager = IterationStateManager()
    service = SweepService(manager, host, journal=journal, window=4)
    host.install(service)
    prompt = {
        "1": {"class_type": "WIParameterInt", "inputs": {"name": "width", "values": "1, 2"}},
        "2": {"class_type": "WIParameter", "inputs": {"name": "height", "type": "INT", "values": "10, 20, 30", "previous": ["1", 0]}},
        "3": {"class_type": "WIIterator", "inputs": {"parameters": ["2", 0], "enabled": True, "mode": "matrix", "batch_name": "back"}},
        "4": {"class_type": "EmptyImage", "inputs": {"width": ["1", 1], "height": ["2", 1], "batch_size": 1, "color": 0}},
        "5": {"class_type": "WISaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "WI"}},
    }
    try:
        status, answer = loop.run_until_complete(server.post_prompt({"prompt": prompt}))
        assert status == 200, answer
        for _ in range(3):  # three of the six cells run, then the batch is forgotten by the manager
            for _ in range(30):
                loop.run_until_complete(asyncio.sleep(0))
            server.run_next()
        for _ in range(30):
            loop.run_until_complete(asyncio.sleep(0))
        batch_id = manager.list_batches()[0]["batch_id"]
        assert journal.flush()
        manager.cleanup_batch(batch_id)
        body = service.status(batch_id, with_values=False)
        assert body["source"] == "journal"
        assert [c["coords"] for c in body["cells"]] == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
        assert [c["status"] for c in body["cells"]][:3] == ["done"] * 3
        assert body["cell_statuses"] == "dddqqq" and "values" not in body["cells"][0]
        with_values = service.status(batch_id, offset=4, limit=1)
        assert [c["values"] for c in with_values["cells"]] == [{"width": 2, "height": 20}]
    finally:
        journal.close()
        comfy_standin.close_loop(loop)
