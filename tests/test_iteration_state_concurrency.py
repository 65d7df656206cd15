"""Thread-safety of core.iteration_state: exactly-once completion, duplicates, cancel races, the singleton.

Threads are long-lived and released together by a ``threading.Barrier`` each round; nothing sleeps. The barrier
timeout only turns a deadlock into a failure instead of a hung suite; no assertion depends on timing.
"""
from __future__ import annotations

import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from comfyui_workflow_iterator.core import iteration_state as ist
from comfyui_workflow_iterator.core.errors import InvalidBatchState
from comfyui_workflow_iterator.core.iteration_state import IterationStateManager

ROUNDS = 1000
CELLS = 8
DEADLOCK_GUARD_S = 60.0


@dataclass(frozen=True)
class Combo:
    index: int
    coords: tuple[int, ...]
    values: tuple[Any, ...]


COMBOS = [Combo(index=i, coords=(i,), values=(i,)) for i in range(CELLS)]


class Crew:
    """``size`` long-lived threads; each round they all start the same task together (task gets the thread no.)."""

    def __init__(self, size: int) -> None:
        self._start = threading.Barrier(size + 1, timeout=DEADLOCK_GUARD_S)
        self._end = threading.Barrier(size + 1, timeout=DEADLOCK_GUARD_S)
        self._task: Callable[[int], None] = lambda k: None
        self._stopping = False
        self.errors: list[BaseException] = []
        self._threads = [threading.Thread(target=self._work, args=(k,), daemon=True) for k in range(size)]
        for t in self._threads:
            t.start()

    def _work(self, k: int) -> None:
        while True:
            self._start.wait()
            if self._stopping:
                return
            try:
                self._task(k)
            except BaseException as exc:  # surfaced by run_round, so a worker bug fails the test
                self.errors.append(exc)
            self._end.wait()

    def run_round(self, task: Callable[[int], None]) -> None:
        self._task = task
        self._start.wait()
        self._end.wait()
        if self.errors:
            raise self.errors[0]

    def close(self) -> None:
        self._stopping = True
        self._start.wait()
        for t in self._threads:
            t.join(timeout=DEADLOCK_GUARD_S)


@pytest.fixture(autouse=True)
def frequent_thread_switches() -> Iterator[None]:
    """Make the interpreter switch threads very often so races really interleave inside the manager."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


@pytest.fixture
def crew_factory() -> Iterator[Callable[[int], Crew]]:
    crews: list[Crew] = []

    def make(size: int) -> Crew:
        crew = Crew(size)
        crews.append(crew)
        return crew

    yield make
    for crew in crews:
        crew.close()


class EventLog:
    """Listener recording events per batch id (list.append is atomic, and delivery is serialised anyway)."""

    def __init__(self) -> None:
        self.by_batch: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)

    def __call__(self, event: str, payload: dict[str, Any]) -> None:
        self.by_batch[payload["batch_id"]].append((event, payload))


def report(mgr: IterationStateManager, bid: str, index: int) -> bool:
    """Report a cell, varying the kind of ending by index."""
    kind = index % 3
    if kind == 0:
        return mgr.register_result(bid, index, [{"filename": f"{index}.png"}], {"i": index})
    if kind == 1:
        return mgr.register_failure(bid, index, "boom")
    return mgr.register_cancelled(bid, index, "cleared")


def test_exactly_one_report_wins_when_all_cells_end_at_once(crew_factory: Callable[[int], Crew]) -> None:
    mgr = IterationStateManager()
    log = EventLog()
    mgr.add_listener(log)
    crew = crew_factory(CELLS + 1)
    for _ in range(ROUNDS):
        bid = mgr.create_batch(batch_name="race", mode="matrix", combinations=COMBOS).batch_id
        results: list[bool | None] = [None] * CELLS
        sums: list[int] = []

        def task(k: int) -> None:
            if k == CELLS:  # a reader racing the writers always sees consistent counts
                counts = mgr.get_status(bid, include_cells=False)["counts"]
                sums.append(sum(counts[key] for key in ("done", "failed", "cancelled", "pending", "running")))
                return
            results[k] = report(mgr, bid, k)

        crew.run_round(task)
        assert results.count(True) == 1 and results.count(False) == CELLS - 1
        assert sums == [CELLS]
        status = mgr.get_status(bid, include_cells=False)
        assert status["state"] == "collecting"
        assert status["counts"]["pending"] == 0 and status["counts"]["running"] == 0
        events = log.by_batch.pop(bid)
        # Delivery is in lock order across threads: the ended tally climbs 1..N, then batch_finished.
        ended = [p["counts"]["done"] + p["counts"]["failed"] + p["counts"]["cancelled"] for e, p in events[1:-1]]
        assert ended == list(range(1, CELLS + 1))
        assert [e for e, _ in events] == ["batch_created"] + ["cell_ended"] * CELLS + ["batch_finished"]


def test_concurrent_duplicate_reports_count_once(crew_factory: Callable[[int], Crew]) -> None:
    mgr = IterationStateManager()
    log = EventLog()
    mgr.add_listener(log)
    crew = crew_factory(CELLS)
    for _ in range(ROUNDS):
        bid = mgr.create_batch(batch_name="dup", mode="matrix", combinations=COMBOS).batch_id
        wins = [0] * CELLS

        def task(k: int) -> None:
            # Every thread reports every cell: half walk the cells in the same order (head-on duplicates),
            # half start at different cells.
            for j in range(CELLS):
                if report(mgr, bid, j if k % 2 else (k + j) % CELLS):
                    wins[k] += 1

        crew.run_round(task)
        assert sum(wins) == 1
        counts = mgr.get_status(bid, include_cells=False)["counts"]
        assert counts["done"] + counts["failed"] + counts["cancelled"] == CELLS
        ended_indices = sorted(p["index"] for e, p in log.by_batch.pop(bid) if e == "cell_ended")
        assert ended_indices == list(range(CELLS))


def test_cancel_racing_with_reports_ends_every_cell_exactly_once(crew_factory: Callable[[int], Crew]) -> None:
    mgr = IterationStateManager()
    log = EventLog()
    mgr.add_listener(log)
    crew = crew_factory(CELLS + 1)
    outcomes: set[str] = set()
    for _ in range(ROUNDS):
        bid = mgr.create_batch(batch_name="cancel", mode="matrix", combinations=COMBOS).batch_id
        for i in range(CELLS):
            mgr.attach_prompt(bid, i, f"{bid}/{i}")
        results: list[bool | None] = [None] * CELLS
        cancel_result: list[Any] = []

        def task(k: int) -> None:
            if k == CELLS:
                try:
                    cancel_result.append(mgr.cancel_batch(bid))
                except InvalidBatchState as exc:  # every cell had already ended: a legitimate 409
                    cancel_result.append(exc)
                return
            mgr.mark_running(bid, k)
            results[k] = mgr.register_result(bid, k, [], {}) if k % 2 else mgr.register_failure(bid, k, "x")

        crew.run_round(task)
        snap = mgr.snapshot(bid)
        (outcome,) = cancel_result
        if isinstance(outcome, InvalidBatchState):
            outcomes.add("reports won")
            assert results.count(True) == 1
            assert snap.state.value == "collecting"
        else:
            outcomes.add("cancel won")
            assert results.count(True) == 0
            assert snap.state.value == "cancelled"
            cancelled_by_batch = {f"{bid}/{c.index}" for c in snap.cells if c.error == "batch cancelled"}
            assert set(outcome) == cancelled_by_batch
        assert snap.counts.ended == CELLS and snap.counts.pending == snap.counts.running == 0
        reported = [p["index"] for e, p in log.by_batch.pop(bid) if e == "cell_ended"]
        assert len(reported) == len(set(reported))  # no cell ended twice
        assert len(reported) == snap.counts.done + snap.counts.failed  # the rest were ended by the cancel
        assert all(results[i] is False or results[i] is True for i in range(CELLS))
    assert outcomes  # at least one kind of outcome observed (which ones is up to the scheduler)


def test_one_singleton_when_64_threads_ask_at_once(crew_factory: Callable[[int], Crew]) -> None:
    crew = crew_factory(64)
    try:
        for _ in range(200):
            ist._reset_for_tests()
            got: list[IterationStateManager | None] = [None] * 64

            def task(k: int) -> None:
                got[k] = ist.get_manager() if k % 2 else IterationStateManager.instance()

            crew.run_round(task)
            first = got[0]
            assert first is not None
            assert all(m is first for m in got)
            assert ist.get_manager() is first
    finally:
        ist._reset_for_tests()
