"""Edges of core.journal's resume path that a mutation run (tools/mutation.py) showed no other test pinned:
each test here fails under the one-line bug named in its docstring."""
from __future__ import annotations

from test_journal import Clock, end, make_batch, open_journal  # noqa: F401  (open_journal is a fixture)


def test_cancelling_the_cells_of_a_batch_with_none_open_counts_no_cancelled_cell(open_journal):
    """``n_cancelled + max(rowcount, 0)`` (not ``max(rowcount, 1)``): the counts a restart lists stay true."""
    journal = open_journal(wall_clock=Clock())
    journal.record_batch(make_batch("b1", cells=2))
    end(journal, "b1", 0)
    end(journal, "b1", 1, status="failed", error="boom")
    journal.record_cells_cancelled("b1", "batch cancelled")  # nothing is queued or running any more
    journal.record_batch(make_batch("b2", cells=2))
    journal.record_cells_cancelled("b2", "batch cancelled")  # both cells were still queued
    assert journal.flush()
    counts = {b["batch_id"]: b["counts"] for b in journal.list_batches()}
    assert counts["b1"] == {"total": 2, "done": 1, "failed": 1, "cancelled": 0, "pending": 0}
    assert counts["b2"] == {"total": 2, "done": 0, "failed": 0, "cancelled": 2, "pending": 0}
