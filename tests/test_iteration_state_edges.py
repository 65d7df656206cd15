"""Edges of core.iteration_state that a mutation run (tools/mutation.py) showed no other test pinned: each
test here fails under the one-line bug named in its docstring."""
from __future__ import annotations

import pytest

from comfyui_workflow_iterator.core import iteration_state as ist
from comfyui_workflow_iterator.core.iteration_state import IterationStateManager
from test_iteration_state import FakeClock, make_batch, new_batch


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mgr(clock: FakeClock) -> IterationStateManager:
    return IterationStateManager(clock=clock, wall_clock=lambda: 1_700_000_000.0, max_age_s=100.0)


@pytest.mark.parametrize(("state", "finished"), [("pending", False), ("active", False), ("collecting", True),
                                                 ("complete", True), ("cancelled", True)])
def test_snapshot_finished_flag_follows_the_state(mgr, clock, state, finished):
    """``finished`` is ``state not in _RUNNING_STATES`` (not ``in``)."""
    assert mgr.snapshot(make_batch(mgr, clock, state)).finished is finished


def test_error_text_of_exactly_the_limit_is_kept_and_one_more_is_cut(mgr):
    """``_short_str`` keeps ``len <= _MAX_TEXT`` whole (not ``<``) and cuts longer text to the limit with an ellipsis."""
    bid = new_batch(mgr, 2)
    for index, length in ((0, ist._MAX_TEXT), (1, ist._MAX_TEXT + 1)):
        mgr.attach_prompt(bid, index, f"p{index}")
        mgr.register_failure(bid, index, "e" * length)
    errors = [c["error"] for c in mgr.get_status(bid)["cells"]]
    assert errors[0] == "e" * ist._MAX_TEXT
    assert errors[1] == "e" * (ist._MAX_TEXT - 1) + "\u2026" and len(errors[1]) == ist._MAX_TEXT


def test_metadata_nested_past_the_depth_limit_becomes_text(mgr):
    """``_json_ready`` recurses with ``_depth + 1`` (not ``- 1``) into mappings and lists, so deep nesting stops."""
    deep: dict = {}
    node = deep
    for _ in range(ist._MAX_DEPTH + 5):
        node["k"] = {}
        node = node["k"]
    bid = new_batch(mgr, 1)
    mgr.attach_prompt(bid, 0, "p0")
    mgr.register_result(bid, 0, [{"filename": "a.png", "subfolder": "", "type": "output"}], {"deep": deep, "list": [[[[1]]]]})
    stored = mgr.get_status(bid)["cells"][0]["metadata"]
    depth, node = 0, stored
    while isinstance(node, dict):
        node = node.get("deep", node.get("k"))
        depth += 1
    assert isinstance(node, str) and depth == ist._MAX_DEPTH
    assert stored["list"] == [[[[1]]]]


@pytest.mark.parametrize("prompt_id", [123, None, b"p", ""])
def test_attach_prompt_refuses_a_prompt_id_that_is_not_a_non_empty_string(mgr, prompt_id):
    """``not isinstance(prompt_id, str) or not prompt_id`` (not ``and``)."""
    bid = new_batch(mgr, 1)
    with pytest.raises(ValueError, match="prompt_id"):
        mgr.attach_prompt(bid, 0, prompt_id)


def test_change_count_rises_with_every_change_including_cancel(mgr, clock):
    """Readers cache on ``change_count()``: creating (``+=``, not ``-=``) and cancelling (its ``_touch_locked``)
    must each move it forward, never back to a value a reader already saw."""
    seen = [mgr.change_count()]
    bid = new_batch(mgr, 2)
    seen.append(mgr.change_count())
    mgr.attach_prompt(bid, 0, "p0")
    seen.append(mgr.change_count())
    mgr.cancel_batch(bid)
    seen.append(mgr.change_count())
    assert seen == sorted(set(seen)), seen


def test_restored_batch_keeps_its_journaled_creation_time(mgr):
    """``record.get("created_at") or wall_clock()`` (not ``and``): a restart must not re-date the batch."""
    record = {
        "batch_id": "old_1234abcd", "batch_name": "old", "mode": "matrix", "client_id": None, "created_at": 1234.5,
        "axes": [{"name": "steps", "type": "INT", "values": [10, 20]}],
        "cells": [{"index": 0, "coords": [0], "values": [10], "status": "done", "error": None,
                   "files": [{"filename": "c0.png", "subfolder": "WI/old", "type": "output"}]},
                  {"index": 1, "coords": [1], "values": [20], "status": "queued", "error": None, "files": []}],
        "meta": {}, "warnings": [],
    }
    state = mgr.restore_batch(record)
    assert state.created_at == 1234.5
    assert mgr.get_status("old_1234abcd")["created_at"] == 1234.5
    record2 = dict(record, batch_id="new_1234abcd", created_at=None)
    assert mgr.restore_batch(record2).created_at == 1_700_000_000.0  # no journaled time: now


def _record(batch_id: str, **extra):
    record = {
        "batch_id": batch_id, "batch_name": "old", "mode": "matrix", "client_id": None, "created_at": 1234.5,
        "axes": [{"name": "steps", "type": "INT", "values": [10]}],
        "cells": [{"index": 0, "coords": [0], "values": [10], "status": "queued", "error": None, "files": []}],
        "meta": {}, "warnings": [],
    }
    record.update(extra)
    return record


def test_restored_batch_keeps_warnings_out_of_its_meta(mgr):
    """``meta_ready.pop("warnings")``: the journal keeps warnings apart; they must not come back inside meta."""
    state = mgr.restore_batch(_record("old_00000001", meta={"subfolder": "WI/x", "warnings": ["stale copy"]},
                                      warnings=["grid failed"]))
    status = mgr.get_status(state.batch_id)
    assert status["meta"] == {"subfolder": "WI/x"}
    assert status["warnings"] == ["grid failed"]


def test_batches_list_in_creation_order_restored_ones_included(mgr):
    """Each new or restored batch takes the next sequence number (``_seq += 1``, not ``-=``)."""
    first = new_batch(mgr, 1)
    mgr.restore_batch(_record("old_00000001"))
    mgr.restore_batch(_record("old_00000002"))
    last = new_batch(mgr, 1)
    listed = [b["batch_id"] for b in mgr.list_batches()]
    assert listed == [last, "old_00000002", "old_00000001", first]  # newest first


def test_restore_and_resume_notify_listeners_and_move_the_change_count(mgr):
    """Restoring emits ``batch_created`` with ``restored: True``, returns a snapshot without cells, and both
    restore (``_changes += 1``) and resume (``_touch_locked``) move ``change_count()`` forward."""
    events = []
    mgr.add_listener(lambda event, payload: events.append((event, payload)))
    before = mgr.change_count()
    state = mgr.restore_batch(_record("old_00000003"))
    after_restore = mgr.change_count()
    assert state.cells == () and state.state == "interrupted"
    assert events == [("batch_created", {"batch_id": "old_00000003", "batch_name": "old", "mode": "matrix", "total": 1,
                                         "client_id": None, "restored": True})]
    assert mgr.resume_batch("old_00000003") == [0]
    assert before < after_restore < mgr.change_count()
