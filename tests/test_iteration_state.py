"""Behaviour of core.iteration_state: lifecycle table, cell reports, expiry, eviction, listeners, snapshots."""
from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from comfyui_workflow_iterator.core import iteration_state as ist
from comfyui_workflow_iterator.core.errors import InvalidBatchState, UnknownBatchError, WIError
from comfyui_workflow_iterator.core.iteration_state import BatchStatus, CellStatus, IterationStateManager

MAX_AGE = 100.0


@dataclass(frozen=True)
class Combo:
    index: int
    coords: tuple[int, ...]
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Ax:
    name: str
    type: str
    values: tuple[Any, ...]


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mgr(clock: FakeClock) -> IterationStateManager:
    return IterationStateManager(clock=clock, wall_clock=lambda: 1_700_000_000.0, max_age_s=MAX_AGE)


def combos(n: int) -> list[Combo]:
    return [Combo(index=i, coords=(i,), values=(i * 10,)) for i in range(n)]


def axes(n: int) -> list[Ax]:
    return [Ax(name="steps", type="INT", values=tuple(i * 10 for i in range(n)))]


def new_batch(mgr: IterationStateManager, n: int = 1, **kw: Any) -> str:
    kw.setdefault("batch_name", "test")
    kw.setdefault("mode", "matrix")
    return mgr.create_batch(combinations=combos(n), axes=axes(n), **kw).batch_id


def make_batch(mgr: IterationStateManager, clock: FakeClock, state: str, n: int = 1) -> str:
    """Build a batch of ``n`` cells in ``state`` ("expired" = expired and dropped) through public calls only."""
    bid = new_batch(mgr, n)
    if state == "pending":
        return bid
    if state == "expired":
        clock.advance(MAX_AGE + 1)
        mgr.list_batches()  # any call expires it
        return bid
    for i in range(n):
        mgr.attach_prompt(bid, i, f"{bid}-p{i}")
    if state == "active":
        return bid
    if state == "cancelled":
        mgr.cancel_batch(bid)
        return bid
    for i in range(n):
        mgr.register_result(bid, i, [{"filename": f"{i}.png"}], {})
    if state == "collecting":
        return bid
    assert state == "complete"
    mgr.set_grid(bid, {"filename": "grid.png", "subfolder": "", "type": "output"})
    return bid


def state_of(mgr: IterationStateManager, bid: str) -> str:
    try:
        return mgr.snapshot(bid).state.value
    except UnknownBatchError:
        return "gone"


# ------------------------------------------------------------------------------------------ enums and table


def test_statuses_go_over_the_wire_as_lower_case_strings() -> None:
    assert [s.value for s in BatchStatus] == [
        "pending", "active", "collecting", "complete", "cancelled", "expired", "interrupted",
    ]
    assert [s.value for s in CellStatus] == ["queued", "running", "done", "failed", "cancelled", "skipped"]
    assert BatchStatus.ACTIVE == "active" and str(BatchStatus.ACTIVE) == "active"
    assert ist.TERMINAL == frozenset({BatchStatus.COMPLETE, BatchStatus.CANCELLED, BatchStatus.EXPIRED})


def test_allowed_transitions_table_is_exactly_the_specified_one() -> None:
    B = BatchStatus
    expected = {
        B.PENDING: {B.ACTIVE, B.COLLECTING, B.CANCELLED, B.EXPIRED},
        B.ACTIVE: {B.COLLECTING, B.CANCELLED, B.EXPIRED},
        B.COLLECTING: {B.COMPLETE, B.EXPIRED},
        B.COMPLETE: {B.EXPIRED},
        B.CANCELLED: {B.EXPIRED},
        B.EXPIRED: set(),
        B.INTERRUPTED: {B.ACTIVE, B.COLLECTING, B.CANCELLED, B.EXPIRED},
    }
    assert {k: set(v) for k, v in ist.ALLOWED_TRANSITIONS.items()} == expected


STATES = ["pending", "active", "collecting", "complete", "cancelled", "expired"]

GRID = {"filename": "g.png", "subfolder": "", "type": "output"}
OPS: dict[str, Callable[[IterationStateManager, str], Any]] = {
    "attach_prompt": lambda m, b: m.attach_prompt(b, 0, "p-new"),
    "attach_prompt_if_open": lambda m, b: m.attach_prompt(b, 0, "p-new", only_if_open=True),
    "mark_running": lambda m, b: m.mark_running(b, 0),
    "register_result": lambda m, b: m.register_result(b, 0, [{"filename": "x.png"}], {"k": 1}),
    "register_failure": lambda m, b: m.register_failure(b, 0, "boom"),
    "register_cancelled": lambda m, b: m.register_cancelled(b, 0, "cleared"),
    "cancel_batch": lambda m, b: m.cancel_batch(b),
    "set_grid": lambda m, b: m.set_grid(b, GRID),
    "try_complete": lambda m, b: m.try_complete(b, GRID),
    "set_meta": lambda m, b: m.set_meta(b, note="x"),
    "add_warning": lambda m, b: m.add_warning(b, "careful"),
    "get_status": lambda m, b: m.get_status(b)["state"],
    "active_prompt_ids": lambda m, b: [p.rsplit("-", 1)[1] for p in m.active_prompt_ids(b)],
    "cleanup_batch": lambda m, b: m.cleanup_batch(b),
}

I, U = InvalidBatchState, UnknownBatchError
ENDING = {  # register_result / register_failure / register_cancelled on a one-cell batch
    "pending": (True, "collecting"), "active": (True, "collecting"), "collecting": (False, "collecting"),
    "complete": (False, "complete"), "cancelled": (False, "cancelled"), "expired": (False, "gone"),
}
# (state, op) -> raised exception type, or (return value, resulting state); "gone" = no longer known.
EXPECTED: dict[str, dict[str, Any]] = {
    "attach_prompt": {
        "pending": (True, "active"), "active": (True, "active"), "collecting": (True, "collecting"),
        "complete": I, "cancelled": I, "expired": U,
    },
    # The feeder's form: only while cells may still be queued, and a closed or unknown batch is a False.
    "attach_prompt_if_open": {
        "pending": (True, "active"), "active": (True, "active"), "collecting": (False, "collecting"),
        "complete": (False, "complete"), "cancelled": (False, "cancelled"), "expired": (False, "gone"),
    },
    "mark_running": {
        "pending": (True, "active"), "active": (True, "active"), "collecting": (False, "collecting"),
        "complete": (False, "complete"), "cancelled": (False, "cancelled"), "expired": (False, "gone"),
    },
    "register_result": ENDING,
    "register_failure": ENDING,
    "register_cancelled": ENDING,
    "cancel_batch": {
        "pending": ([], "cancelled"), "active": (["SELF-p0"], "cancelled"), "collecting": I,
        "complete": I, "cancelled": I, "expired": U,
    },
    "set_grid": {
        "pending": I, "active": I, "collecting": (None, "complete"), "complete": I,
        "cancelled": (None, "cancelled"), "expired": U,
    },
    "try_complete": {
        "pending": I, "active": I, "collecting": (True, "complete"), "complete": (False, "complete"),
        "cancelled": (True, "cancelled"), "expired": U,
    },
    "set_meta": {s: (None, s) for s in STATES[:-1]} | {"expired": U},
    "add_warning": {s: (None, s) for s in STATES[:-1]} | {"expired": U},
    "get_status": {s: (s, s) for s in STATES[:-1]} | {"expired": U},
    "active_prompt_ids": {
        "pending": ([], "pending"), "active": (["p0"], "active"), "collecting": ([], "collecting"),
        "complete": ([], "complete"), "cancelled": ([], "cancelled"), "expired": U,
    },
    "cleanup_batch": {s: (True, "gone") for s in STATES[:-1]} | {"expired": (False, "gone")},
}


def test_expectation_table_covers_every_state_and_operation() -> None:
    assert set(EXPECTED) == set(OPS)
    for op, row in EXPECTED.items():
        assert set(row) == set(STATES), op


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("op", list(OPS))
def test_every_operation_in_every_state(
    mgr: IterationStateManager, clock: FakeClock, state: str, op: str
) -> None:
    bid = make_batch(mgr, clock, state)
    assert state_of(mgr, bid) == ("gone" if state == "expired" else state)
    expected = EXPECTED[op][state]
    if isinstance(expected, type):
        with pytest.raises(expected):
            OPS[op](mgr, bid)
        assert state_of(mgr, bid) == ("gone" if state == "expired" else state)  # nothing changed
        return
    value, new_state = expected
    if isinstance(value, list):
        value = [v.replace("SELF", bid) for v in value]
    assert OPS[op](mgr, bid) == value
    assert state_of(mgr, bid) == new_state


def test_illegal_transition_message_names_batch_and_states(mgr: IterationStateManager, clock: FakeClock) -> None:
    bid = make_batch(mgr, clock, "complete")
    with pytest.raises(InvalidBatchState, match=r"complete.*cancelled") as info:
        mgr.cancel_batch(bid)
    assert bid in str(info.value)
    assert isinstance(info.value, WIError)


# -------------------------------------------------------------------------------------------------- creation


def test_create_batch_starts_pending_with_every_cell_queued(mgr: IterationStateManager) -> None:
    state = mgr.create_batch(
        batch_name="sweep", mode="linear", combinations=combos(3), axes=axes(3), client_id="c1",
        meta={"note": "hi"},
    )
    assert state.state is BatchStatus.PENDING
    assert state.total == 3 and state.mode == "linear" and state.client_id == "c1"
    assert [c.status for c in state.cells] == [CellStatus.QUEUED] * 3
    assert state.counts.as_dict() == {"total": 3, "done": 0, "failed": 0, "cancelled": 0, "pending": 3, "running": 0, "skipped": 0}
    assert dict(state.meta) == {"note": "hi"}


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("sweep", "sweep"),
        ("my sweep / cfg", "my_sweep_cfg"),
        ("a--b__c", "a--b__c"),
        ("ünï cödé", "n_c_d"),
        ("", "batch"),
        ("!!!", "batch"),
        ("x" * 100, "x" * 55),  # 55 + "_<8 hex>" = 64: the whole id is one folder name (core/paths.py)
    ],
)
def test_generated_batch_id_is_sanitised_name_plus_8_hex(mgr: IterationStateManager, name: str, prefix: str) -> None:
    bid = mgr.create_batch(batch_name=name, mode="matrix", combinations=combos(1)).batch_id
    head, _, tail = bid.rpartition("_")
    assert head == prefix
    assert len(tail) == 8 and all(ch in "0123456789abcdef" for ch in tail)


def test_explicit_batch_id_is_used_and_must_be_unique(mgr: IterationStateManager) -> None:
    assert new_batch(mgr, batch_id="fixed-1") == "fixed-1"
    with pytest.raises(ValueError, match="already in use"):
        new_batch(mgr, batch_id="fixed-1")


@pytest.mark.parametrize("bad", ["", "has space", "../x", "x" * 101])
def test_explicit_batch_id_must_be_safe(mgr: IterationStateManager, bad: str) -> None:
    with pytest.raises(ValueError, match="invalid batch id"):
        new_batch(mgr, batch_id=bad)


def test_create_batch_rejects_empty_or_misnumbered_combinations(mgr: IterationStateManager) -> None:
    with pytest.raises(ValueError, match="at least one"):
        mgr.create_batch(batch_name="b", mode="matrix", combinations=[])
    with pytest.raises(ValueError, match="index"):
        mgr.create_batch(batch_name="b", mode="matrix", combinations=[Combo(1, (0,), (1,))])
    with pytest.raises(ValueError, match="values for 2 axes"):
        mgr.create_batch(batch_name="b", mode="matrix", combinations=combos(1), axes=axes(1) * 2)
    assert mgr.list_batches() == []


def test_create_batch_emits_batch_created(mgr: IterationStateManager) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    mgr.add_listener(lambda e, p: events.append((e, p)))
    bid = new_batch(mgr, 2, client_id="c9")
    assert events == [
        ("batch_created", {"batch_id": bid, "batch_name": "test", "mode": "matrix", "total": 2, "client_id": "c9"})
    ]


def test_meta_warnings_seed_the_warnings_list(mgr: IterationStateManager) -> None:
    bid = new_batch(mgr, meta={"warnings": ["big grid"], "seed_mode": "fixed"})
    status = mgr.get_status(bid, include_cells=False)
    assert status["warnings"] == ["big grid"]
    assert status["meta"] == {"seed_mode": "fixed"}


# --------------------------------------------------------------------------------------------------- prompts


def test_attach_prompt_indexes_prompt_and_activates_batch(mgr: IterationStateManager) -> None:
    bid = new_batch(mgr, 2)
    assert mgr.lookup_prompt("p1") is None
    mgr.attach_prompt(bid, 1, "p1")
    assert mgr.lookup_prompt("p1") == (bid, 1)
    assert state_of(mgr, bid) == "active"
    assert mgr.iter_unfinished() == [(bid, 1, "p1")]


def test_attach_prompt_again_replaces_the_cells_prompt_id(mgr: IterationStateManager) -> None:
    bid = new_batch(mgr, 1)
    mgr.attach_prompt(bid, 0, "old")
    mgr.attach_prompt(bid, 0, "new")
    assert mgr.lookup_prompt("old") is None
    assert mgr.lookup_prompt("new") == (bid, 0)


def test_attach_prompt_refuses_a_prompt_owned_by_another_cell(mgr: IterationStateManager) -> None:
    bid = new_batch(mgr, 2)
    mgr.attach_prompt(bid, 0, "p")
    with pytest.raises(ValueError, match="already attached"):
        mgr.attach_prompt(bid, 1, "p")
    assert mgr.lookup_prompt("p") == (bid, 0)


def test_cell_index_out_of_range_is_an_index_error(mgr: IterationStateManager) -> None:
    bid = new_batch(mgr, 2)
    for call in (
        lambda: mgr.attach_prompt(bid, 2, "p"),
        lambda: mgr.mark_running(bid, 5),
        lambda: mgr.register_result(bid, 2, [], {}),
        lambda: mgr.register_failure(bid, -1, "x"),
    ):
        with pytest.raises(IndexError):
            call()


def test_mark_running_records_start_only_for_queued_cells(mgr: IterationStateManager, clock: FakeClock) -> None:
    bid = new_batch(mgr, 2)
    assert mgr.mark_running(bid, 0) is True
    assert mgr.mark_running(bid, 0) is False  # already running
    assert mgr.mark_running("nope", 0) is False
    cell = mgr.snapshot(bid).cells[0]
    assert cell.status is CellStatus.RUNNING
    assert cell.started_at == 1_700_000_000.0  # created at the same fake instant
    assert mgr.snapshot(bid).counts.running == 1


def test_a_start_and_an_end_recorded_later_keep_the_times_they_happened(mgr: IterationStateManager, clock: FakeClock) -> None:
    """The worker hands starts and ends to the loop, which records them up to a tick later: the cell's times
    (and the seconds per cell behind the ETA) are the ones noted when they happened; a time from the future is
    taken as now."""
    bid = new_batch(mgr, 2)
    started = mgr.clock()
    clock.advance(2.0)
    ended = mgr.clock()
    clock.advance(0.5)  # the tick comes later
    assert mgr.mark_running(bid, 0, at=started) is True
    assert mgr.register_result(bid, 0, [], at=ended) is False
    cell = mgr.snapshot(bid).cells[0]
    assert cell.started_at == 1_700_000_000.0 and cell.ended_at == 1_700_000_002.0
    assert mgr.snapshot(bid).timings.seconds_per_cell == 2.0
    assert mgr.mark_running(bid, 1, at=mgr.clock() + 60) is True
    assert mgr.snapshot(bid).cells[1].started_at == 1_700_000_002.5


# --------------------------------------------------------------------------------------------- cell endings


def test_only_the_call_ending_the_last_cell_returns_true(mgr: IterationStateManager) -> None:
    bid = new_batch(mgr, 3)
    assert mgr.register_result(bid, 0, [], {}) is False
    assert mgr.register_failure(bid, 1, "oom") is False
    assert mgr.register_cancelled(bid, 2, "cleared") is True
    counts = mgr.snapshot(bid).counts
    assert (counts.done, counts.failed, counts.cancelled, counts.pending) == (1, 1, 1, 0)
    assert state_of(mgr, bid) == "collecting"


def test_duplicate_report_returns_false_and_does_not_count_twice(mgr: IterationStateManager) -> None:
    bid = new_batch(mgr, 2)
    assert mgr.register_result(bid, 0, [{"filename": "a.png"}], {"n": 1}) is False
    assert mgr.register_result(bid, 0, [{"filename": "b.png"}], {"n": 2}) is False
    assert mgr.register_failure(bid, 0, "late") is False
    snap = mgr.snapshot(bid)
    assert snap.counts.done == 1 and snap.counts.pending == 1
    assert snap.cells[0].files[0].filename == "a.png"  # first report wins
    assert snap.cells[0].error is None
    assert mgr.register_result(bid, 1, [], {}) is True


def test_pending_batch_whose_cells_all_fail_goes_to_collecting(mgr: IterationStateManager) -> None:
    bid = new_batch(mgr, 2)
    mgr.register_failure(bid, 0, "bad value")
    assert state_of(mgr, bid) == "pending"
    assert mgr.register_failure(bid, 1, "bad value") is True
    assert state_of(mgr, bid) == "collecting"


def test_reports_for_removed_or_unknown_batches_are_discarded_quietly(mgr: IterationStateManager) -> None:
    bid = new_batch(mgr, 2)
    mgr.cleanup_batch(bid)
    assert mgr.register_result(bid, 0, [], {}) is False
    assert mgr.register_failure("never-existed", 0, "x") is False
    assert mgr.register_cancelled("never-existed", 0, "x") is False


def test_failure_reason_is_stored_and_cut_to_a_bounded_length(mgr: IterationStateManager) -> None:
    bid = new_batch(mgr, 2)
    mgr.register_failure(bid, 0, "x" * 10_000)
    mgr.register_failure(bid, 1, "CUDA out of memory")
    cells = mgr.get_status(bid)["cells"]
    assert len(cells[0]["error"]) == 2000
    assert cells[1]["error"] == "CUDA out of memory"
    assert cells[1]["status"] == "failed"


def test_register_result_keeps_only_image_reference_fields(mgr: IterationStateManager) -> None:
    bid = new_batch(mgr, 1)
    mgr.register_result(
        bid, 0, [{"filename": "a.png", "subfolder": "wi", "type": "output", "extra": object()}], None
    )
    assert mgr.get_status(bid)["cells"][0]["files"] == [{"filename": "a.png", "subfolder": "wi", "type": "output"}]


@pytest.mark.parametrize("images", [{"filename": "a.png"}, "a.png", [object()], [{"subfolder": "x"}], 42])
def test_register_result_rejects_things_that_are_not_image_references(
    mgr: IterationStateManager, images: Any
) -> None:
    bid = new_batch(mgr, 1)
    with pytest.raises(TypeError):
        mgr.register_result(bid, 0, images, {})
    assert mgr.snapshot(bid).cells[0].status is CellStatus.QUEUED


def test_register_result_stores_non_json_metadata_as_text(mgr: IterationStateManager) -> None:
    class Opaque:
        def __str__(self) -> str:
            return "<opaque>"

    bid = new_batch(mgr, 1)
    mgr.register_result(
        bid, 0, [], {"seed": 5, "cfg": 7.5, "nan": float("nan"), "obj": Opaque(), "tags": ("a", 1), 3: {"k": None}}
    )
    meta = mgr.get_status(bid)["cells"][0]["metadata"]
    assert meta == {"seed": 5, "cfg": 7.5, "nan": "nan", "obj": "<opaque>", "tags": ["a", 1], "3": {"k": None}}


def test_register_result_emits_cell_ended_then_batch_finished(mgr: IterationStateManager) -> None:
    bid = new_batch(mgr, 2, client_id="c")
    events: list[tuple[str, dict[str, Any]]] = []
    mgr.add_listener(lambda e, p: events.append((e, p)))
    mgr.register_failure(bid, 1, "oops")
    mgr.register_result(bid, 0, [], {})
    assert [(e, p.get("index"), p.get("status"), p.get("state")) for e, p in events] == [
        ("cell_ended", 1, "failed", None),
        ("cell_ended", 0, "done", None),
        ("batch_finished", None, None, "collecting"),
    ]
    assert events[0][1]["counts"]["failed"] == 1 and events[0][1]["error"] == "oops"
    assert events[2][1] == {
        "batch_id": bid, "state": "collecting", "grid": None, "client_id": "c",
        "counts": {"total": 2, "done": 1, "failed": 1, "cancelled": 0, "pending": 0, "running": 0, "skipped": 0},
    }


# ------------------------------------------------------------------------------------------- cancel and grid


def test_cancel_returns_prompt_ids_of_cells_not_ended(mgr: IterationStateManager, clock: FakeClock) -> None:
    bid = make_batch(mgr, clock, "active", n=4)
    mgr.mark_running(bid, 1)
    mgr.register_result(bid, 0, [], {})
    removed = mgr.cancel_batch(bid)
    assert removed == [f"{bid}-p1", f"{bid}-p2", f"{bid}-p3"]
    snap = mgr.snapshot(bid)
    assert [c.status.value for c in snap.cells] == ["done", "cancelled", "cancelled", "cancelled"]
    assert snap.counts.cancelled == 3
    assert mgr.active_prompt_ids(bid) == []
    assert mgr.iter_unfinished() == []
    assert mgr.register_result(bid, 1, [], {}) is False  # the interrupted cell reporting late


def test_cancel_skips_cells_without_prompt_ids(mgr: IterationStateManager) -> None:
    bid = new_batch(mgr, 3)
    mgr.attach_prompt(bid, 2, "p2")
    assert mgr.cancel_batch(bid) == ["p2"]
    assert mgr.snapshot(bid).counts.cancelled == 3


def test_second_cancel_and_unknown_cancel_raise(mgr: IterationStateManager, clock: FakeClock) -> None:
    bid = make_batch(mgr, clock, "active")
    mgr.cancel_batch(bid)
    with pytest.raises(InvalidBatchState):
        mgr.cancel_batch(bid)
    with pytest.raises(UnknownBatchError):
        mgr.cancel_batch("no-such-batch")


def test_cancel_emits_batch_cancelled(mgr: IterationStateManager, clock: FakeClock) -> None:
    bid = make_batch(mgr, clock, "active", n=2)
    events: list[tuple[str, dict[str, Any]]] = []
    mgr.add_listener(lambda e, p: events.append((e, p)))
    mgr.cancel_batch(bid)
    assert events == [
        (
            "batch_cancelled",
            {
                "batch_id": bid, "removed": [f"{bid}-p0", f"{bid}-p1"], "running": [], "client_id": None,
                "counts": {"total": 2, "done": 0, "failed": 0, "cancelled": 2, "pending": 0, "running": 0, "skipped": 0},
            },
        )
    ]


def test_set_grid_completes_and_emits_batch_finished(mgr: IterationStateManager, clock: FakeClock) -> None:
    bid = make_batch(mgr, clock, "collecting")
    events: list[tuple[str, dict[str, Any]]] = []
    mgr.add_listener(lambda e, p: events.append((e, p)))
    grid = {"filename": "g.png", "subfolder": "wi", "type": "output", "viewer": "index.html"}
    mgr.set_grid(bid, grid)
    assert mgr.get_status(bid)["grid"] == grid
    assert [(e, p["state"], p["grid"]["filename"]) for e, p in events] == [("batch_finished", "complete", "g.png")]


def test_partial_grid_on_cancelled_batch_is_stored_once(mgr: IterationStateManager, clock: FakeClock) -> None:
    bid = make_batch(mgr, clock, "cancelled")
    mgr.set_grid(bid, GRID)
    assert state_of(mgr, bid) == "cancelled"
    assert mgr.get_status(bid)["grid"] == GRID
    with pytest.raises(InvalidBatchState):
        mgr.set_grid(bid, GRID)
    assert mgr.try_complete(bid, GRID) is False


def test_try_complete_returns_true_once(mgr: IterationStateManager, clock: FakeClock) -> None:
    bid = make_batch(mgr, clock, "collecting")
    assert [mgr.try_complete(bid, GRID) for _ in range(3)] == [True, False, False]


# ------------------------------------------------------------------------------------------ meta and status


def test_set_meta_and_add_warning_show_in_status(mgr: IterationStateManager) -> None:
    bid = new_batch(mgr)
    mgr.set_meta(bid, seed_mode="fixed", sizes=(512, 768))
    mgr.add_warning(bid, "grid downscaled")
    mgr.add_warning(bid, "2 cells failed")
    status = mgr.get_status(bid)
    assert status["meta"] == {"seed_mode": "fixed", "sizes": [512, 768]}
    assert status["warnings"] == ["grid downscaled", "2 cells failed"]
    mgr.set_meta(bid, warnings=["only this"])
    assert mgr.get_status(bid)["warnings"] == ["only this"]


def test_get_status_has_the_documented_shape(mgr: IterationStateManager, clock: FakeClock) -> None:
    bid = mgr.create_batch(
        batch_name="b", mode="matrix", client_id="cli",
        combinations=[Combo(0, (0, 0), (7, "euler")), Combo(1, (0, 1), (7, "ddim"))],
        axes=[Ax("cfg", "FLOAT", (7,)), Ax("sampler", "COMBO", ("euler", "ddim"))],
    ).batch_id
    mgr.attach_prompt(bid, 0, "p0")
    status = mgr.get_status(bid)
    assert set(status) >= {
        "batch_id", "batch_name", "mode", "state", "created_at", "updated_at", "client_id", "axes", "counts",
        "cells", "grid", "warnings", "timings",
    }
    assert status["axes"] == [
        {"name": "cfg", "type": "FLOAT", "values": [7], "labels": ["7"]},
        {"name": "sampler", "type": "COMBO", "values": ["euler", "ddim"], "labels": ["euler", "ddim"]},
    ]
    assert status["cells"][0] == {
        "index": 0, "coords": [0, 0], "values": {"cfg": 7, "sampler": "euler"}, "status": "queued",
        "error": None, "prompt_id": "p0", "files": [], "metadata": {}, "started_at": None, "ended_at": None,
        "worker": None,  # issue 14: the worker that ran it; None when no worker was involved
    }
    assert status["workers"] == {}  # no workers configured
    assert status["state"] == "active" and status["client_id"] == "cli"
    json.dumps(status, allow_nan=False)  # JSON-ready throughout


def test_axis_labels_are_used_when_given(mgr: IterationStateManager) -> None:
    @dataclass(frozen=True)
    class LabelledAxis:
        name: str
        type: str
        values: tuple[Any, ...]
        labels: tuple[str, ...]

    bid = mgr.create_batch(
        batch_name="b", mode="matrix", combinations=[Combo(0, (0,), ("m.safetensors",))],
        axes=[LabelledAxis("ckpt", "COMBO", ("m.safetensors",), ("m",))],
    ).batch_id
    axis = mgr.get_status(bid)["axes"][0]
    assert axis["labels"] == ["m"] and axis["values"] == ["m.safetensors"]


def test_non_json_cell_values_are_converted_to_text(mgr: IterationStateManager) -> None:
    class Thing:
        def __str__(self) -> str:
            return "thing"

    bid = mgr.create_batch(
        batch_name="b", mode="matrix", combinations=[Combo(0, (0,), (Thing(),))], axes=[Ax("x", "STRING", (Thing(),))]
    ).batch_id
    status = mgr.get_status(bid)
    assert status["cells"][0]["values"] == {"x": "thing"}
    assert status["axes"][0]["values"] == ["thing"]


def test_summary_leaves_out_cells(mgr: IterationStateManager) -> None:
    bid = new_batch(mgr, 3)
    summary = mgr.get_status(bid, include_cells=False)
    assert "cells" not in summary
    assert summary["counts"]["total"] == 3


def test_timings_use_the_injected_clock(mgr: IterationStateManager, clock: FakeClock) -> None:
    bid = new_batch(mgr, 4)
    assert mgr.get_status(bid)["timings"] == {"elapsed_s": 0.0, "seconds_per_cell": None, "eta_s": None}
    mgr.mark_running(bid, 0)
    clock.advance(10)
    mgr.register_result(bid, 0, [], {})
    mgr.mark_running(bid, 1)
    clock.advance(20)
    mgr.register_result(bid, 1, [], {})
    mgr.register_failure(bid, 2, "x")  # failures are not measured
    timings = mgr.get_status(bid)["timings"]
    assert timings == {"elapsed_s": 30.0, "seconds_per_cell": 15.0, "eta_s": 15.0}
    cell = mgr.get_status(bid)["cells"][0]
    assert cell["ended_at"] - cell["started_at"] == 10.0
    mgr.register_result(bid, 3, [], {})  # never marked running: no duration
    clock.advance(50)  # finished batches stop the elapsed clock
    assert mgr.get_status(bid)["timings"] == {"elapsed_s": 30.0, "seconds_per_cell": 15.0, "eta_s": 0.0}


def test_list_batches_is_newest_first_without_cells(mgr: IterationStateManager) -> None:
    ids = [new_batch(mgr, batch_name=f"b{i}") for i in range(3)]
    mgr.add_warning(ids[0], "touching the oldest does not reorder")
    listed = mgr.list_batches()
    assert [b["batch_id"] for b in listed] == ids[::-1]
    assert all("cells" not in b for b in listed)


def test_unknown_batch_raises_unknown_batch_error_which_is_a_key_error(mgr: IterationStateManager) -> None:
    with pytest.raises(KeyError):
        mgr.get_status("missing")
    with pytest.raises(UnknownBatchError):
        mgr.active_prompt_ids("missing")


def test_cleanup_removes_batch_and_its_prompt_ids(mgr: IterationStateManager) -> None:
    bid = new_batch(mgr, 2)
    mgr.attach_prompt(bid, 0, "p0")
    assert mgr.cleanup_batch(bid) is True
    assert mgr.lookup_prompt("p0") is None
    assert mgr.cleanup_batch(bid) is False
    assert mgr.list_batches() == []
    new_batch(mgr, 1, batch_id="again")
    mgr.attach_prompt("again", 0, "p0")  # the prompt id is free again


# -------------------------------------------------------------------------------------- expiry and eviction


@pytest.mark.parametrize("state", ["pending", "active", "collecting", "complete", "cancelled"])
def test_idle_batch_expires_from_any_state(mgr: IterationStateManager, clock: FakeClock, state: str) -> None:
    bid = make_batch(mgr, clock, state, n=2)
    events: list[tuple[str, dict[str, Any]]] = []
    mgr.add_listener(lambda e, p: events.append((e, p)))
    clock.advance(MAX_AGE + 0.5)
    assert mgr.lookup_prompt(f"{bid}-p0") is None
    with pytest.raises(UnknownBatchError):
        mgr.get_status(bid)
    assert mgr.iter_unfinished() == []
    assert events == [
        ("batch_expired", {"batch_id": bid, "state": "expired", "previous_state": state, "client_id": None})
    ]


def test_expiry_counts_from_the_last_update(mgr: IterationStateManager, clock: FakeClock) -> None:
    bid = new_batch(mgr, 2)
    clock.advance(MAX_AGE * 0.75)
    mgr.register_result(bid, 0, [], {})
    clock.advance(MAX_AGE * 0.75)  # 1.5 * max age since creation, 0.75 since the update
    assert mgr.get_status(bid)["state"] == "pending"
    clock.advance(MAX_AGE * 0.5)
    assert mgr.list_batches() == []


def test_only_stale_batches_expire(mgr: IterationStateManager, clock: FakeClock) -> None:
    old = new_batch(mgr, batch_name="old")
    clock.advance(MAX_AGE / 2)
    young = new_batch(mgr, batch_name="young")
    clock.advance(MAX_AGE / 2 + 1)
    assert [b["batch_id"] for b in mgr.list_batches()] == [young]
    with pytest.raises(UnknownBatchError):
        mgr.add_warning(old, "x")


def test_finished_batches_beyond_the_bound_are_evicted_oldest_first(clock: FakeClock) -> None:
    mgr = IterationStateManager(clock=clock, max_finished=3, max_age_s=MAX_AGE)
    running = new_batch(mgr, 1, batch_id="running")
    finished = []
    for i in range(5):
        bid = new_batch(mgr, 1, batch_id=f"f{i}")
        mgr.attach_prompt(bid, 0, f"pf{i}")
        finished.append(bid)
    for bid in finished:  # finish in creation order, f0 first
        clock.advance(1)
        mgr.register_result(bid, 0, [], {})
    listed = {b["batch_id"] for b in mgr.list_batches()}
    assert listed == {running, "f2", "f3", "f4"}
    assert mgr.lookup_prompt("pf0") is None and mgr.lookup_prompt("pf4") == ("f4", 0)


def test_unfinished_batches_are_never_evicted(clock: FakeClock) -> None:
    mgr = IterationStateManager(clock=clock, max_finished=1, max_age_s=MAX_AGE)
    active = [new_batch(mgr, 2, batch_id=f"a{i}") for i in range(3)]
    for i, bid in enumerate(active):
        mgr.attach_prompt(bid, 0, f"p{i}")
        mgr.mark_running(bid, 0)
        mgr.register_result(bid, 0, [], {})
    for i in range(3):
        done = new_batch(mgr, 1, batch_id=f"d{i}")
        mgr.register_result(done, 0, [], {})
    assert {b["batch_id"] for b in mgr.list_batches()} == {"a0", "a1", "a2", "d2"}


def test_eviction_order_is_by_finish_time_not_creation(clock: FakeClock) -> None:
    mgr = IterationStateManager(clock=clock, max_finished=1, max_age_s=MAX_AGE)
    a = new_batch(mgr, 1, batch_id="a")
    b = new_batch(mgr, 1, batch_id="b")
    mgr.register_result(b, 0, [], {})
    mgr.register_result(a, 0, [], {})  # a finishes last, so b goes
    assert [x["batch_id"] for x in mgr.list_batches()] == [a]


def test_manager_options_are_validated() -> None:
    with pytest.raises(ValueError):
        IterationStateManager(max_age_s=0)
    with pytest.raises(ValueError):
        IterationStateManager(max_finished=0)


# -------------------------------------------------------------------------------------------------- listeners


def test_listeners_run_in_registration_order_for_each_event(mgr: IterationStateManager) -> None:
    calls: list[str] = []
    mgr.add_listener(lambda e, p: calls.append(f"first:{e}"))
    mgr.add_listener(lambda e, p: calls.append(f"second:{e}"))
    bid = new_batch(mgr, 1)
    mgr.register_result(bid, 0, [], {})
    assert calls == [
        "first:batch_created", "second:batch_created",
        "first:cell_ended", "second:cell_ended",
        "first:batch_finished", "second:batch_finished",
    ]


def test_raising_listener_is_logged_and_the_next_still_runs(
    mgr: IterationStateManager, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def broken(event: str, payload: dict[str, Any]) -> None:
        raise RuntimeError("listener bug")

    mgr.add_listener(broken)
    mgr.add_listener(lambda e, p: seen.append(e))
    with caplog.at_level(logging.ERROR, logger=ist.__name__):
        bid = new_batch(mgr, 1)
        assert mgr.register_result(bid, 0, [], {}) is True
    assert seen == ["batch_created", "cell_ended", "batch_finished"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3 and all(r.exc_info and r.exc_info[0] is RuntimeError for r in errors)
    assert mgr.get_status(bid)["state"] == "collecting"  # state intact


def test_listener_can_call_back_into_the_manager(mgr: IterationStateManager) -> None:
    """The lock is a plain Lock: were it held during delivery, this listener would deadlock."""
    statuses: list[str] = []
    lock_free: list[bool] = []

    def listener(event: str, payload: dict[str, Any]) -> None:
        lock_free.append(not mgr._lock.locked())
        statuses.append(mgr.get_status(payload["batch_id"])["state"])

    mgr.add_listener(listener)
    bid = new_batch(mgr, 1)
    worker = threading.Thread(target=mgr.register_result, args=(bid, 0, [], {}), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "listener delivery deadlocked"
    assert statuses == ["pending", "collecting", "collecting"]
    assert lock_free == [True, True, True]


def test_events_raised_from_inside_a_listener_are_delivered_after_the_current_ones(
    mgr: IterationStateManager,
) -> None:
    seen: list[tuple[str, Any]] = []

    def cancel_on_create(event: str, payload: dict[str, Any]) -> None:
        seen.append((event, payload.get("removed")))
        if event == "batch_created":
            mgr.cancel_batch(payload["batch_id"])
            seen.append(("cancel returned", None))

    mgr.add_listener(cancel_on_create)
    mgr.add_listener(lambda e, p: seen.append(("second:" + e, None)))
    new_batch(mgr, 2)
    assert seen == [
        ("batch_created", None),
        ("cancel returned", None),
        ("second:batch_created", None),
        ("batch_cancelled", []),
        ("second:batch_cancelled", None),
    ]


def test_removed_listener_is_no_longer_called(mgr: IterationStateManager) -> None:
    calls: list[str] = []

    def listener(event: str, payload: dict[str, Any]) -> None:
        calls.append(event)

    mgr.add_listener(listener)
    mgr.add_listener(listener)  # no double registration
    new_batch(mgr)
    assert mgr.remove_listener(listener) is True
    assert mgr.remove_listener(listener) is False
    new_batch(mgr)
    assert calls == ["batch_created"]


def test_listener_mutating_a_payload_cannot_corrupt_state(mgr: IterationStateManager, clock: FakeClock) -> None:
    def vandal(event: str, payload: dict[str, Any]) -> None:
        for value in payload.values():
            if isinstance(value, (dict, list)):
                value.clear()

    mgr.add_listener(vandal)
    bid = make_batch(mgr, clock, "collecting", n=2)
    mgr.set_grid(bid, GRID)
    status = mgr.get_status(bid)
    assert status["grid"] == GRID and status["counts"]["done"] == 2


# ----------------------------------------------------------------------------------------------- snapshots


def test_snapshots_are_frozen(mgr: IterationStateManager) -> None:
    snap = mgr.create_batch(batch_name="b", mode="matrix", combinations=combos(1), meta={"a": [1, 2]})
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.state = BatchStatus.COMPLETE  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.cells[0].status = CellStatus.DONE  # type: ignore[misc]
    with pytest.raises(TypeError):
        snap.meta["a"] = 3  # type: ignore[index]
    assert snap.meta["a"] == (1, 2)


def test_snapshot_does_not_change_when_the_batch_changes(mgr: IterationStateManager) -> None:
    bid = new_batch(mgr, 2)
    before = mgr.snapshot(bid)
    mgr.attach_prompt(bid, 0, "p0")
    mgr.register_result(bid, 0, [{"filename": "a.png"}], {"seed": 1})
    mgr.add_warning(bid, "w")
    assert before.state is BatchStatus.PENDING
    assert before.cells[0].status is CellStatus.QUEUED and before.cells[0].prompt_id is None
    assert before.cells[0].files == () and dict(before.cells[0].metadata) == {}
    assert before.counts.done == 0 and before.warnings == ()
    after = mgr.snapshot(bid)
    assert after.cells[0].files[0].filename == "a.png" and after.counts.done == 1


def test_status_dicts_are_private_copies(mgr: IterationStateManager) -> None:
    bid = new_batch(mgr, 1)
    mgr.register_result(bid, 0, [{"filename": "a.png"}], {"tags": ["x"]})
    status = mgr.get_status(bid)
    status["cells"][0]["metadata"]["tags"].append("y")
    status["warnings"].append("forged")
    fresh = mgr.get_status(bid)
    assert fresh["cells"][0]["metadata"] == {"tags": ["x"]} and fresh["warnings"] == []


def test_metadata_passed_in_is_copied(mgr: IterationStateManager) -> None:
    bid = new_batch(mgr, 1)
    metadata = {"tags": ["x"]}
    mgr.register_result(bid, 0, [], metadata)
    metadata["tags"].append("y")
    assert mgr.get_status(bid)["cells"][0]["metadata"] == {"tags": ["x"]}


# ---------------------------------------------------------------------------------------------- singleton


def test_get_manager_returns_one_shared_instance() -> None:
    ist._reset_for_tests()
    try:
        first = ist.get_manager()
        assert ist.get_manager() is first
        assert IterationStateManager.instance() is first
        ist._reset_for_tests()
        assert ist.get_manager() is not first
    finally:
        ist._reset_for_tests()


# ------------------------------------------------------------------------------------ restore and resume


def journal_record(statuses: list[str]) -> dict[str, Any]:
    return {
        "batch_id": "restored_0123abcd", "batch_name": "restored", "mode": "matrix", "client_id": "tab",
        "created_at": 1000.0, "axes": [{"name": "a", "type": "INT", "values": list(range(len(statuses)))}],
        "cells": [{"index": i, "coords": [i], "values": [i], "status": st, "error": "boom" if st == "failed" else None,
                   "files": [{"filename": f"{i}.png", "subfolder": "WI/x", "type": "output"}] if st == "done" else []}
                  for i, st in enumerate(statuses)],
        "meta": {"subfolder": "WI/x"}, "warnings": ["w"],
    }


def test_restored_batch_is_interrupted_with_its_finished_cells_and_files() -> None:
    mgr = IterationStateManager()
    mgr.restore_batch(journal_record(["done", "failed", "running", "queued"]))
    status = mgr.get_status("restored_0123abcd")
    assert status["state"] == "interrupted"
    assert [c["status"] for c in status["cells"]] == ["done", "failed", "queued", "queued"]
    assert status["cells"][0]["files"] == [{"filename": "0.png", "subfolder": "WI/x", "type": "output"}]
    assert status["counts"]["done"] == 1 and status["counts"]["pending"] == 2 and status["warnings"] == ["w"]


def test_resume_returns_the_unfinished_cells_and_the_batch_completes_once() -> None:
    mgr = IterationStateManager()
    mgr.restore_batch(journal_record(["done", "queued", "queued"]))
    assert mgr.resume_batch("restored_0123abcd") == [1, 2]
    assert mgr.get_status("restored_0123abcd")["state"] == "active"
    with pytest.raises(InvalidBatchState):
        mgr.resume_batch("restored_0123abcd")
    mgr.attach_prompt("restored_0123abcd", 1, "p1")
    assert mgr.register_result("restored_0123abcd", 1, [], {}) is False
    assert mgr.register_failure("restored_0123abcd", 2, "x") is True


def test_resume_of_a_batch_with_no_cell_left_goes_straight_to_collecting() -> None:
    mgr = IterationStateManager()
    mgr.restore_batch(journal_record(["done", "failed"]))
    assert mgr.resume_batch("restored_0123abcd") == []
    assert mgr.get_status("restored_0123abcd")["state"] == "collecting"


def test_an_interrupted_batch_can_be_cancelled_and_restoring_twice_is_refused() -> None:
    mgr = IterationStateManager()
    mgr.restore_batch(journal_record(["done", "queued"]))
    with pytest.raises(ValueError):
        mgr.restore_batch(journal_record(["done", "queued"]))
    assert mgr.cancel_batch("restored_0123abcd") == []
    assert mgr.get_status("restored_0123abcd")["state"] == "cancelled"
