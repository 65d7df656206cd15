"""Tests of core/journal.py: the SQLite journal that lets batches survive a killed ComfyUI.

Synchronisation is always through ``flush()`` (or Barrier/Event), never sleeps. The crash test really SIGKILLs a
child interpreter that imports the journal the same way tests/test_core_imports.py does.
"""
from __future__ import annotations

import json
import logging
import math
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import time
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from comfyui_workflow_iterator.core import journal as journal_mod
from comfyui_workflow_iterator.core.journal import BatchJournal

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "comfyui_workflow_iterator"
LOGGER = "comfyui_workflow_iterator.core.journal"

FILE_A = {"filename": "a_00001_.png", "subfolder": "WI/b", "type": "output"}
FILE_B = {"filename": "a_00002_.png", "subfolder": "WI/b", "type": "output"}


class Clock:
    """Injectable wall clock: returns ``now`` and advances by ``step`` on each read."""

    def __init__(self, now: float = 1_800_000_000.0, step: float = 1.0) -> None:
        self.now = now
        self.step = step

    def __call__(self) -> float:
        value = self.now
        self.now += self.step
        return value


def make_batch(batch_id: str = "b1", *, cells: int = 4, created_at: float = 1_700_000_000.0, **extra: Any) -> dict:
    """A 2-axis matrix batch (cells//2 x 2) as the lead records it."""
    steps = list(range(max(1, cells // 2)))
    batch = {
        "batch_id": batch_id,
        "batch_name": f"sweep {batch_id}",
        "mode": "matrix",
        "client_id": "client-1",
        "created_at": created_at,
        "axes": [
            {"name": "steps", "type": "INT", "values": steps},
            {"name": "sampler", "type": "COMBO", "values": ["euler", "dpm++ 2m"]},
        ],
        "cells": [
            {"index": i, "coords": [i // 2, i % 2], "values": [i // 2, ["euler", "dpm++ 2m"][i % 2]]}
            for i in range(cells)
        ],
        "meta": {"filename_prefix": "WI/portraits", "seed": 42},
        "plan": {"prompt": {"3": {"class_type": "KSampler", "inputs": {"steps": 20}}}, "extra_data": {"x": 1}},
    }
    batch.update(extra)
    return batch


@pytest.fixture
def open_journal(tmp_path: pathlib.Path) -> Iterator[Callable[..., BatchJournal]]:
    """Factory of journals (default path tmp/user/wi/journal.db); every one is closed at teardown."""
    opened: list[BatchJournal] = []

    def factory(path: os.PathLike[str] | str | None = None, **kwargs: Any) -> BatchJournal:
        j = BatchJournal(path if path is not None else tmp_path / "user" / "wi" / "journal.db", **kwargs)
        opened.append(j)
        return j

    yield factory
    for j in opened:
        j.close()


@pytest.fixture
def journal(open_journal: Callable[..., BatchJournal]) -> BatchJournal:
    j = open_journal(wall_clock=Clock())
    assert j.enabled
    return j


def end(j: BatchJournal, batch_id: str, index: int, status: str = "done", **kw: Any) -> None:
    kw.setdefault("error", None)
    kw.setdefault("prompt_id", f"p-{index}")
    kw.setdefault("files", [FILE_A] if status == "done" else [])
    kw.setdefault("ended_at", 1_700_000_100.0 + index)
    j.record_cell_end(batch_id, index, status=status, **kw)


def raw(path: os.PathLike[str] | str) -> sqlite3.Connection:
    """A plain connection for looking at the file from outside the journal."""
    return sqlite3.connect(os.fspath(path))


# ------------------------------------------------------------------------------------------------ round trip


def test_recorded_batch_reads_back_with_every_field_and_queued_cells(journal: BatchJournal) -> None:
    batch = make_batch(cells=4)
    journal.record_batch(batch)
    assert journal.flush()

    got = journal.get_batch("b1")
    assert got is not None
    assert {k: got[k] for k in ("batch_id", "batch_name", "mode", "client_id", "created_at", "axes", "meta")} == {
        k: batch[k] for k in ("batch_id", "batch_name", "mode", "client_id", "created_at", "axes", "meta")
    }
    assert got["state"] == "active"
    assert got["plan"] == batch["plan"]
    assert got["grid"] is None and got["warnings"] == []
    assert got["updated_at"] >= 1_800_000_000.0
    assert got["counts"] == {"total": 4, "done": 0, "failed": 0, "cancelled": 0, "pending": 4}
    assert got["cells"] == [
        {"index": c["index"], "coords": c["coords"], "values": c["values"], "status": "queued", "error": None,
         "prompt_id": None, "files": [], "ended_at": None}
        for c in batch["cells"]
    ]
    assert journal.count_batches() == 1


def test_journal_is_a_wal_database_with_a_schema_version(journal: BatchJournal) -> None:
    journal.record_batch(make_batch())
    assert journal.flush()
    with raw(journal.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == journal_mod.SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == journal_mod.APPLICATION_ID
        assert conn.execute("SELECT count(*) FROM wi_cell").fetchone()[0] == 4


def test_reopening_an_existing_journal_keeps_its_data(open_journal: Callable[..., BatchJournal], tmp_path) -> None:
    path = tmp_path / "j.db"
    first = open_journal(path)
    first.record_batch(make_batch())
    end(first, "b1", 0)
    first.close()

    second = open_journal(path)
    assert second.enabled
    got = second.get_batch("b1")
    assert got is not None and got["cells"][0]["status"] == "done"
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_unknown_batch_reads_as_none(journal: BatchJournal) -> None:
    assert journal.get_batch("nope") is None


def test_caller_changes_after_record_do_not_leak_into_the_journal(journal: BatchJournal) -> None:
    batch = make_batch(cells=2)
    journal.record_batch(batch)
    batch["cells"][0]["values"][0] = 999
    batch["meta"]["seed"] = 7
    assert journal.flush()
    got = journal.get_batch("b1")
    assert got is not None
    assert got["cells"][0]["values"][0] == 0
    assert got["meta"]["seed"] == 42


def test_nested_cell_values_round_trip(journal: BatchJournal) -> None:
    batch = make_batch(cells=1)
    batch["cells"][0]["values"] = [{"lora": "a.safetensors", "weight": 0.5}, [1, 2], None, True, 1.25, "é"]
    journal.record_batch(batch)
    assert journal.flush()
    got = journal.get_batch("b1")
    assert got is not None
    assert got["cells"][0]["values"] == [{"lora": "a.safetensors", "weight": 0.5}, [1, 2], None, True, 1.25, "é"]


def test_comfy_account_tokens_in_extra_data_are_never_stored(journal: BatchJournal) -> None:
    plan = {
        "prompt": {"1": {}},
        "extra_data": {"auth_token_comfy_org": "SECRET-TOKEN", "api_key_comfy_org": "SECRET-KEY", "keep": 1},
    }
    journal.record_batch(make_batch(plan=plan))
    assert journal.flush()
    got = journal.get_batch("b1")
    assert got is not None
    assert got["plan"] == {"prompt": {"1": {}}, "extra_data": {"keep": 1}}
    assert plan["extra_data"]["auth_token_comfy_org"] == "SECRET-TOKEN"  # the caller's dict is not mutated
    journal.close()
    data = b"".join(p.read_bytes() for p in pathlib.Path(journal.path).parent.iterdir())
    assert b"SECRET" not in data


def test_a_second_record_of_the_same_batch_id_is_ignored(journal: BatchJournal) -> None:
    journal.record_batch(make_batch(cells=2))
    end(journal, "b1", 0)
    journal.record_batch(make_batch(cells=6, batch_name="other"))
    assert journal.flush()
    got = journal.get_batch("b1")
    assert got is not None
    assert got["batch_name"] == "sweep b1" and len(got["cells"]) == 2
    assert got["cells"][0]["status"] == "done"


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda b: b.pop("batch_id"), KeyError),
        (lambda b: b.update(batch_id=5), TypeError),
        (lambda b: b.update(created_at=math.nan), TypeError),
        (lambda b: b["cells"][0].update(values=[math.nan, "x"]), TypeError),
        (lambda b: b["cells"][0].update(values={"steps": 1}), TypeError),
        (lambda b: b["cells"][0].update(values=[object(), "x"]), TypeError),
        (lambda b: b["cells"][1].update(index=0), ValueError),
        (lambda b: b["meta"].update(bad={1, 2}), TypeError),
    ],
    ids=["no-id", "id-not-str", "nan-created", "nan-value", "values-dict", "object-value", "dup-index", "set-meta"],
)
def test_a_bad_batch_raises_on_the_caller_and_records_nothing(journal: BatchJournal, mutate, error) -> None:
    batch = make_batch(cells=2)
    mutate(batch)
    with pytest.raises(error):
        journal.record_batch(batch)
    assert journal.flush()
    assert journal.count_batches() == 0


def test_journal_states_match_the_managers_batch_status() -> None:
    # The journal keeps plain strings (importable on its own); they must not drift from BatchStatus.
    from comfyui_workflow_iterator.core.iteration_state import TERMINAL, BatchStatus, CellStatus

    assert journal_mod.TERMINAL_STATES == {s.value for s in TERMINAL}
    assert journal_mod.UNFINISHED_STATES == {s.value for s in BatchStatus if s not in TERMINAL} | {"interrupted"}
    assert journal_mod.CELL_END_STATUSES | {"queued", "running"} == {s.value for s in CellStatus}


# ---------------------------------------------------------------------------------------------- cell ends


def test_cell_ends_are_stored_and_the_first_end_of_a_cell_wins(journal: BatchJournal) -> None:
    journal.record_batch(make_batch(cells=4))
    end(journal, "b1", 0, "done", files=[FILE_A, FILE_B], ended_at=10.0)
    end(journal, "b1", 1, "failed", error="OOM while sampling", files=[], ended_at=11.0)
    end(journal, "b1", 2, "cancelled", error="user", prompt_id=None, ended_at=12.0)
    # duplicates, e.g. a cache-miss re-run: ignored
    end(journal, "b1", 0, "failed", error="late", files=[], ended_at=99.0, prompt_id="other")
    end(journal, "b1", 1, "done", files=[FILE_B], ended_at=99.0)
    assert journal.flush()

    got = journal.get_batch("b1")
    assert got is not None
    cells = got["cells"]
    assert cells[0] == {"index": 0, "coords": [0, 0], "values": [0, "euler"], "status": "done", "error": None,
                        "prompt_id": "p-0", "files": [FILE_A, FILE_B], "ended_at": 10.0}
    assert (cells[1]["status"], cells[1]["error"], cells[1]["files"], cells[1]["ended_at"]) == (
        "failed", "OOM while sampling", [], 11.0)
    assert (cells[2]["status"], cells[2]["error"], cells[2]["prompt_id"]) == ("cancelled", "user", None)
    assert cells[3]["status"] == "queued"
    assert got["counts"] == {"total": 4, "done": 1, "failed": 1, "cancelled": 1, "pending": 1}


def test_cell_end_without_prompt_id_keeps_none_and_ended_at_may_be_none(journal: BatchJournal) -> None:
    journal.record_batch(make_batch(cells=2))
    journal.record_cell_end("b1", 1, status="failed", error="validation", prompt_id=None, files=[], ended_at=None)
    assert journal.flush()
    got = journal.get_batch("b1")
    assert got is not None
    assert got["cells"][1]["prompt_id"] is None and got["cells"][1]["ended_at"] is None
    assert got["cells"][1]["status"] == "failed"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"status": "running"}, ValueError),
        ({"status": "queued"}, ValueError),
        ({"index": True}, TypeError),
        ({"index": "1"}, TypeError),
        ({"files": [{"filename": 1}]}, TypeError),
        ({"ended_at": math.inf}, TypeError),
    ],
)
def test_a_bad_cell_end_raises_on_the_caller(journal: BatchJournal, kwargs: dict, error) -> None:
    journal.record_batch(make_batch(cells=2))
    args = {"index": 0, "status": "done", "error": None, "prompt_id": "p", "files": [FILE_A], "ended_at": 1.0}
    args.update(kwargs)
    index = args.pop("index")
    with pytest.raises(error):
        journal.record_cell_end("b1", index, **args)
    assert journal.flush()
    got = journal.get_batch("b1")
    assert got is not None and got["counts"]["pending"] == 2


def test_record_cells_cancelled_ends_only_cells_that_had_not_ended(journal: BatchJournal) -> None:
    journal.record_batch(make_batch(cells=4))
    end(journal, "b1", 0, "done")
    end(journal, "b1", 1, "failed", error="boom")
    journal.record_cells_cancelled("b1", "cancelled by user")
    journal.record_state("b1", "cancelled")
    end(journal, "b1", 3, "done")  # a late result after cancel: the cell already ended
    assert journal.flush()

    got = journal.get_batch("b1")
    assert got is not None
    assert [c["status"] for c in got["cells"]] == ["done", "failed", "cancelled", "cancelled"]
    assert [c["error"] for c in got["cells"]] == [None, "boom", "cancelled by user", "cancelled by user"]
    assert all(c["ended_at"] is not None for c in got["cells"])
    assert got["counts"] == {"total": 4, "done": 1, "failed": 1, "cancelled": 2, "pending": 0}
    assert got["state"] == "cancelled"


def test_writes_for_an_unknown_batch_or_cell_are_ignored(journal: BatchJournal, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    journal.record_batch(make_batch(cells=2))
    end(journal, "ghost", 0)
    end(journal, "b1", 7)
    journal.record_cells_cancelled("ghost", "x")
    journal.record_state("ghost", "complete", grid={"filename": "g.png"})
    assert journal.flush()
    assert journal.get_batch("ghost") is None
    assert journal.count_batches() == 1
    got = journal.get_batch("b1")
    assert got is not None and got["counts"]["pending"] == 2
    assert any("ghost" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)


# ------------------------------------------------------------------------------------------------- states


def test_state_changes_store_grid_and_warnings_and_omitted_ones_are_kept(journal: BatchJournal) -> None:
    journal.record_batch(make_batch(cells=2))
    journal.record_state("b1", "collecting", warnings=["grid downscaled to 50%"])
    grid = {"filename": "grid_00001_.png", "subfolder": "WI/b1", "type": "output", "viewer": "index.html"}
    journal.record_state("b1", "complete", grid=grid)
    assert journal.flush()

    got = journal.get_batch("b1")
    assert got is not None
    assert (got["state"], got["grid"], got["warnings"]) == ("complete", grid, ["grid downscaled to 50%"])
    assert journal.list_batches()[0]["grid"] == grid
    assert got["updated_at"] > got["created_at"]


def test_record_state_rejects_an_unknown_state(journal: BatchJournal) -> None:
    with pytest.raises(ValueError):
        journal.record_state("b1", "finished")
    with pytest.raises(TypeError):
        journal.record_state("b1", "complete", grid={"bad": math.nan})


# --------------------------------------------------------------------------------------------- unfinished


def test_load_unfinished_returns_unfinished_batches_with_their_ended_cells_and_marks_them_interrupted(
    open_journal: Callable[..., BatchJournal], tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "j.db"
    before = open_journal(path, wall_clock=Clock(1_800_000_000.0))
    for n, state in enumerate(["active", "pending", "collecting", "complete", "cancelled", "expired"]):
        before.record_batch(make_batch(f"b-{state}", cells=3, created_at=1_700_000_000.0 + n))
        if state != "active":
            before.record_state(f"b-{state}", state)
    end(before, "b-active", 0, "done", files=[FILE_A, FILE_B])
    end(before, "b-active", 2, "failed", error="boom")
    before.close()  # the "crash"; the kill test below does it for real

    after = open_journal(path, wall_clock=Clock(1_900_000_000.0))
    unfinished = after.load_unfinished()
    assert [b["batch_id"] for b in unfinished] == ["b-active", "b-pending", "b-collecting"]
    assert all(b["state"] == "interrupted" for b in unfinished)
    assert all(b["updated_at"] >= 1_900_000_000.0 for b in unfinished)
    active = unfinished[0]
    assert [c["status"] for c in active["cells"]] == ["done", "queued", "failed"]
    assert active["cells"][0]["files"] == [FILE_A, FILE_B]
    assert active["plan"] == make_batch()["plan"]
    # the database agrees with what was returned
    assert {b["batch_id"]: b["state"] for b in after.list_batches()} == {
        "b-active": "interrupted", "b-pending": "interrupted", "b-collecting": "interrupted",
        "b-complete": "complete", "b-cancelled": "cancelled", "b-expired": "expired",
    }

    # Still unfinished, so a second call (another restart) lists them again, unchanged.
    again = after.load_unfinished()
    assert again == unfinished


def test_load_unfinished_forgets_a_batch_once_it_is_finished(journal: BatchJournal) -> None:
    journal.record_batch(make_batch("b1", cells=2))
    assert [b["batch_id"] for b in journal.load_unfinished()] == ["b1"]
    # resume: back to active, the rest of the cells run, the grid is stored
    journal.record_state("b1", "active")
    end(journal, "b1", 0)
    end(journal, "b1", 1)
    journal.record_state("b1", "complete", grid={"filename": "g.png", "subfolder": "", "type": "output"})
    assert journal.flush()
    assert journal.load_unfinished() == []


def test_load_unfinished_on_an_empty_journal_is_empty(journal: BatchJournal) -> None:
    assert journal.load_unfinished() == []


# ------------------------------------------------------------------------------------------------- listing


def test_list_batches_is_newest_first_with_counts_and_pages(journal: BatchJournal) -> None:
    for n in range(7):
        journal.record_batch(make_batch(f"b{n}", cells=2, created_at=1_700_000_000.0 + n))
    journal.record_batch(make_batch("same-time", cells=2, created_at=1_700_000_006.0))  # tie: later insert first
    end(journal, "b3", 0)
    end(journal, "b3", 1, "failed", error="x")
    assert journal.flush()

    ids = [b["batch_id"] for b in journal.list_batches()]
    assert ids == ["same-time", "b6", "b5", "b4", "b3", "b2", "b1", "b0"]
    assert [b["batch_id"] for b in journal.list_batches(limit=3, offset=2)] == ["b5", "b4", "b3"]
    assert journal.list_batches(limit=3, offset=8) == []
    summary = journal.list_batches(limit=1, offset=4)[0]
    assert summary == {
        "batch_id": "b3", "batch_name": "sweep b3", "mode": "matrix", "state": "active",
        "created_at": 1_700_000_003.0, "updated_at": summary["updated_at"],
        "counts": {"total": 2, "done": 1, "failed": 1, "cancelled": 0, "pending": 0}, "grid": None,
    }
    assert journal.count_batches() == 8


def test_list_batches_clamps_the_limit(journal: BatchJournal) -> None:
    for n in range(3):
        journal.record_batch(make_batch(f"b{n}", cells=1, created_at=float(n)))
    assert journal.flush()
    assert len(journal.list_batches(limit=0)) == 1
    assert len(journal.list_batches(limit=-5)) == 1
    assert len(journal.list_batches(limit=10_000)) == 3


def test_list_batches_never_returns_more_than_500(open_journal: Callable[..., BatchJournal]) -> None:
    j = open_journal(retention=1000)
    for n in range(501):
        j.record_batch(make_batch(f"b{n}", cells=0, created_at=float(n)))
    assert j.flush()
    assert len(j.list_batches(limit=10_000)) == 500
    assert j.count_batches() == 501


@pytest.mark.parametrize(
    "kwargs", [{"limit": "10"}, {"limit": 1.5}, {"limit": None}, {"limit": True}, {"offset": "0"}, {"offset": -1}]
)
def test_list_batches_rejects_bad_arguments(journal: BatchJournal, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        journal.list_batches(**kwargs)


# ----------------------------------------------------------------------------------------------- retention


def test_retention_deletes_the_oldest_terminal_batches_and_never_unfinished_ones(
    open_journal: Callable[..., BatchJournal],
) -> None:
    j = open_journal(retention=3)
    # oldest two stay unfinished; the rest finish
    for n in range(6):
        j.record_batch(make_batch(f"b{n}", cells=2, created_at=float(n)))
        if n >= 2:
            j.record_state(f"b{n}", "complete")
    assert j.flush()
    # Inserting b5 found 6 batches, 3 over the limit; b0/b1 are unfinished, so b2, b3, b4 went (b5 was still
    # active when its own insert ran retention).
    assert sorted(b["batch_id"] for b in j.list_batches()) == ["b0", "b1", "b5"]
    j.record_batch(make_batch("b6", cells=2, created_at=6.0))
    assert j.flush()
    assert sorted(b["batch_id"] for b in j.list_batches()) == ["b0", "b1", "b6"]
    with raw(j.path) as conn:
        assert conn.execute("SELECT count(*) FROM wi_cell").fetchone()[0] == 6  # cells of deleted batches gone


def test_retention_keeps_everything_while_all_batches_are_unfinished(open_journal) -> None:
    j = open_journal(retention=2)
    for n in range(5):
        j.record_batch(make_batch(f"b{n}", cells=1, created_at=float(n)))
    assert j.flush()
    assert j.count_batches() == 5


@pytest.mark.parametrize("retention", [-1, 1.5, True])
def test_bad_retention_is_rejected(tmp_path: pathlib.Path, retention: Any) -> None:
    with pytest.raises(ValueError):
        BatchJournal(tmp_path / "j.db", retention=retention)


# ------------------------------------------------------------------------------------------- bad databases


def _random_bytes(path: pathlib.Path) -> None:
    path.write_bytes(os.urandom(16384))
    path.with_name(path.name + "-wal").write_bytes(os.urandom(512))
    path.with_name(path.name + "-shm").write_bytes(os.urandom(512))


def _foreign_tables(path: pathlib.Path) -> None:
    with raw(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO users (name) VALUES ('alice')")
    conn.close()


def _future_version(path: pathlib.Path) -> None:
    with raw(path) as conn:
        conn.execute("CREATE TABLE wi_batch (id INTEGER PRIMARY KEY, batch_id TEXT, extra_future_column TEXT)")
        conn.execute(f"PRAGMA user_version = {journal_mod.SCHEMA_VERSION + 1}")
    conn.close()


def _current_version_wrong_tables(path: pathlib.Path) -> None:
    with raw(path) as conn:
        conn.execute("CREATE TABLE wi_batch (id INTEGER PRIMARY KEY)")
        conn.execute(f"PRAGMA user_version = {journal_mod.SCHEMA_VERSION}")
    conn.close()


def _other_application(path: pathlib.Path) -> None:
    with raw(path) as conn:
        conn.execute("PRAGMA application_id = 12345")
    conn.close()


@pytest.mark.parametrize(
    "spoil",
    [_random_bytes, _foreign_tables, _future_version, _current_version_wrong_tables, _other_application],
    ids=["random-bytes", "foreign-tables", "future-version", "wrong-tables", "other-application-id"],
)
def test_a_bad_database_is_moved_aside_and_a_fresh_one_works(
    open_journal: Callable[..., BatchJournal], tmp_path: pathlib.Path, caplog, spoil
) -> None:
    path = tmp_path / "journal.db"
    spoil(path)
    original = path.read_bytes()
    stale = {s: p.read_bytes() for s in ("-wal", "-shm") if (p := tmp_path / f"journal.db{s}").exists()}
    caplog.set_level(logging.WARNING, logger=LOGGER)

    j = open_journal(path, wall_clock=lambda: 1_750_000_000.5)

    assert j.enabled
    aside = tmp_path / "journal.db.corrupt-1750000000"
    assert aside.read_bytes() == original  # moved untouched, for a post-mortem
    if spoil is _random_bytes:
        # SQLite itself may delete a -wal/-shm it cannot use when the failed connection closes; whatever is
        # left is moved with the file, so the fresh database never replays a stranger's log.
        for suffix in ("-wal", "-shm"):
            fresh = tmp_path / f"journal.db{suffix}"
            assert not fresh.exists() or fresh.read_bytes() != stale[suffix]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(path) in w and str(aside) in w for w in warnings), warnings
    j.record_batch(make_batch())
    assert j.flush()
    assert [b["batch_id"] for b in j.list_batches()] == ["b1"]


def test_a_second_corrupt_file_in_the_same_second_gets_its_own_name(
    open_journal: Callable[..., BatchJournal], tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "journal.db"
    (tmp_path / "journal.db.corrupt-5").write_bytes(b"earlier")
    path.write_bytes(b"not a database at all" * 100)
    j = open_journal(path, wall_clock=lambda: 5.0)
    assert j.enabled
    assert (tmp_path / "journal.db.corrupt-5").read_bytes() == b"earlier"
    assert (tmp_path / "journal.db.corrupt-5.1").read_bytes() == b"not a database at all" * 100


def _assert_disabled_no_op(j: BatchJournal) -> None:
    assert not j.enabled
    j.record_batch(make_batch())
    end(j, "b1", 0)
    j.record_cells_cancelled("b1", "x")
    j.record_state("b1", "complete")
    assert j.flush() is True
    assert j.load_unfinished() == []
    assert j.get_batch("b1") is None
    assert j.list_batches() == []
    assert j.count_batches() == 0
    with pytest.raises(ValueError):
        j.list_batches(limit="x")  # argument checks still apply
    j.close()
    j.close()


def test_an_unusable_location_disables_the_journal_without_raising(
    open_journal: Callable[..., BatchJournal], tmp_path: pathlib.Path, caplog
) -> None:
    # A regular file where a folder should be: fails even for root, unlike chmod.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    caplog.set_level(logging.ERROR, logger=LOGGER)
    j = open_journal(blocker / "wi" / "journal.db")
    assert [r.levelno for r in caplog.records if r.name == LOGGER] == [logging.ERROR]
    _assert_disabled_no_op(j)


def test_a_directory_at_the_database_path_disables_the_journal(
    open_journal: Callable[..., BatchJournal], tmp_path: pathlib.Path
) -> None:
    (tmp_path / "journal.db").mkdir()
    j = open_journal(tmp_path / "journal.db")
    _assert_disabled_no_op(j)
    assert (tmp_path / "journal.db").is_dir()  # not "moved aside": it is not a corrupt database


def test_a_corrupt_file_that_cannot_be_moved_aside_disables_the_journal(
    open_journal: Callable[..., BatchJournal], tmp_path: pathlib.Path, monkeypatch, caplog
) -> None:
    path = tmp_path / "journal.db"
    path.write_bytes(os.urandom(4096))

    def refuse(src: Any, dst: Any) -> None:
        raise PermissionError(13, "read-only", str(src))

    monkeypatch.setattr(journal_mod.os, "replace", refuse)
    caplog.set_level(logging.ERROR, logger=LOGGER)
    j = open_journal(path)
    assert any(r.levelno == logging.ERROR and str(path) in r.getMessage() for r in caplog.records)
    _assert_disabled_no_op(j)


def test_a_path_the_os_rejects_disables_the_journal_instead_of_raising(open_journal, tmp_path) -> None:
    j = open_journal(str(tmp_path / "bad\x00name" / "journal.db"))
    _assert_disabled_no_op(j)


@pytest.mark.parametrize(
    ("error", "environment"),
    [
        (sqlite3.OperationalError("unable to open database file"), True),  # no result code (as on Python 3.10)
        (sqlite3.DatabaseError("file is not a database"), False),
        (journal_mod._ForeignDatabase("foreign"), False),
    ],
)
def test_errors_without_a_result_code_are_classified_by_class(error: sqlite3.DatabaseError, environment) -> None:
    assert journal_mod._is_environment_error(error) is environment


# ---------------------------------------------------------------------------------------------- durability

CRASH_CHILD = r"""
import importlib, os, signal, sys, types
root, package, db = sys.argv[1:4]
pkg = types.ModuleType(package)
pkg.__path__ = [root]
sys.modules[package] = pkg
journal = importlib.import_module(package + ".core.journal")
j = journal.BatchJournal(db)
cells = [{"index": i, "coords": [i], "values": [i]} for i in range(5)]
j.record_batch({"batch_id": "crash", "batch_name": "crash", "mode": "linear", "client_id": None,
                "created_at": 1.0, "axes": [{"name": "seed", "type": "SEED", "values": [0, 1, 2, 3, 4]}],
                "cells": cells, "meta": {}, "plan": {"prompt": {"1": {"inputs": {}}}}})
j.record_cell_end("crash", 0, status="done", error=None, prompt_id="p0",
                  files=[{"filename": "c0.png", "subfolder": "WI", "type": "output"}], ended_at=2.0)
j.record_cell_end("crash", 1, status="failed", error="boom", prompt_id="p1", files=[], ended_at=3.0)
assert j.flush(30)
sys.stdout.write("flushed\n")
sys.stdout.flush()
os.kill(os.getpid(), signal.SIGKILL)
sys.stdout.write("still alive\n")
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_flushed_writes_survive_a_sigkill_of_the_process(
    open_journal: Callable[..., BatchJournal], tmp_path: pathlib.Path
) -> None:
    db = tmp_path / "user" / "journal.db"
    result = subprocess.run(
        [sys.executable, "-c", CRASH_CHILD, str(ROOT), PACKAGE, str(db)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert result.stdout == "flushed\n"
    assert pathlib.Path(str(db) + "-wal").exists()  # killed before any checkpoint-on-close

    j = open_journal(db)
    assert j.enabled
    unfinished = j.load_unfinished()
    assert [b["batch_id"] for b in unfinished] == ["crash"]
    cells = unfinished[0]["cells"]
    assert [c["status"] for c in cells] == ["done", "failed", "queued", "queued", "queued"]
    assert cells[0]["files"] == [{"filename": "c0.png", "subfolder": "WI", "type": "output"}]
    assert cells[1]["error"] == "boom"
    assert unfinished[0]["plan"] == {"prompt": {"1": {"inputs": {}}}}
    assert unfinished[0]["state"] == "interrupted"


EXIT_CHILD = r"""
import importlib, sys, types
root, package, db = sys.argv[1:4]
pkg = types.ModuleType(package)
pkg.__path__ = [root]
sys.modules[package] = pkg
journal = importlib.import_module(package + ".core.journal")
j = journal.BatchJournal(db)
j.record_batch({"batch_id": "exit", "batch_name": "exit", "mode": "linear", "client_id": None, "created_at": 1.0,
                "axes": [], "cells": [{"index": 0, "coords": [0], "values": [0]}], "meta": {}, "plan": {}})
j.record_state("exit", "collecting")
sys.exit(0)  # no flush(), no close(): the at-exit hook must commit the queue
"""


def test_queued_writes_are_committed_when_the_interpreter_exits_without_close(
    open_journal: Callable[..., BatchJournal], tmp_path: pathlib.Path
) -> None:
    db = tmp_path / "journal.db"
    result = subprocess.run(
        [sys.executable, "-c", EXIT_CHILD, str(ROOT), PACKAGE, str(db)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    got = open_journal(db).get_batch("exit")
    assert got is not None and got["state"] == "collecting"


# ------------------------------------------------------------------------------------------- scale/threads


def test_a_10000_cell_batch_records_and_loads_back(journal: BatchJournal) -> None:
    n = 10_000
    batch = make_batch("big", cells=n)
    journal.record_batch(batch)
    for i in range(0, n, 1000):
        end(journal, "big", i, files=[{"filename": f"{i}.png", "subfolder": "WI/big", "type": "output"}])
    assert journal.flush(timeout=60)

    got = journal.get_batch("big")
    assert got is not None
    assert len(got["cells"]) == n
    assert [c["index"] for c in got["cells"]] == list(range(n))
    assert got["cells"][9_999]["values"] == [4_999, "dpm++ 2m"]
    assert got["cells"][5_000]["files"] == [{"filename": "5000.png", "subfolder": "WI/big", "type": "output"}]
    assert got["counts"] == {"total": n, "done": 10, "failed": 0, "cancelled": 0, "pending": n - 10}
    unfinished = journal.load_unfinished()
    assert len(unfinished[0]["cells"]) == n


def test_concurrent_cell_ends_from_8_threads_all_land(journal: BatchJournal) -> None:
    threads_n, per_thread = 8, 50
    journal.record_batch(make_batch("c", cells=threads_n * per_thread))
    assert journal.flush()
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []
    read_back: list[int] = []

    def worker(t: int) -> None:
        try:
            barrier.wait(timeout=30)
            for k in range(per_thread):
                i = t * per_thread + k
                end(journal, "c", i, "done" if i % 3 else "failed", error=None if i % 3 else "e")
            # each thread reads through its own connection
            read_back.append(journal.count_batches())
        except BaseException as e:  # re-raised below on the test thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert journal.flush()
    got = journal.get_batch("c")
    assert got is not None
    total = threads_n * per_thread
    failed = len([i for i in range(total) if i % 3 == 0])
    assert got["counts"] == {"total": total, "done": total - failed, "failed": failed, "cancelled": 0, "pending": 0}
    assert all(c["prompt_id"] == f"p-{c['index']}" for c in got["cells"])
    assert read_back == [1] * threads_n


def test_every_write_statement_runs_on_the_writer_thread(
    monkeypatch, tmp_path: pathlib.Path
) -> None:
    statements: list[tuple[str, str]] = []
    lock = threading.Lock()
    real_connect = sqlite3.connect

    def traced_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)

        def trace(sql: str) -> None:
            with lock:
                statements.append((threading.current_thread().name, sql))

        conn.set_trace_callback(trace)
        return conn

    monkeypatch.setattr(journal_mod.sqlite3, "connect", traced_connect)
    j = BatchJournal(tmp_path / "j.db")
    try:
        j.record_batch(make_batch(cells=3))
        end(j, "b1", 0)
        j.record_cells_cancelled("b1", "x")
        j.record_state("b1", "cancelled", grid={"filename": "g.png"})
        j.record_batch(make_batch("b2", cells=1))
        assert j.flush()
        j.load_unfinished()
        j.get_batch("b1")
        j.list_batches()
    finally:
        j.close()

    def is_write(sql: str) -> bool:
        # Data and schema changes, and write transactions. A plain BEGIN/COMMIT is also how readers take a
        # consistent snapshot (their connections are query_only, so they could not write anyway).
        head = sql.lstrip().split(None, 1)[0].upper()
        return (
            head in {"INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER"}
            or sql.startswith("BEGIN IMMEDIATE")
            or (head == "PRAGMA" and "=" in sql and "query_only" not in sql)
        )

    writes = [(thread, sql) for thread, sql in statements if is_write(sql)]
    assert any(sql.startswith("INSERT INTO wi_cell") for _, sql in writes)
    assert any("state = 'interrupted'" in sql for _, sql in writes)
    assert {thread for thread, _ in writes} == {"wi-journal"}, [w for w in writes if w[0] != "wi-journal"]
    # and the callers really did read on their own thread
    assert any(thread == threading.current_thread().name and sql.startswith("SELECT") for thread, sql in statements)


def test_the_writer_commits_once_per_drain(monkeypatch, journal: BatchJournal) -> None:
    journal.record_batch(make_batch(cells=100))
    assert journal.flush()
    entered, release = threading.Event(), threading.Event()

    def gate(conn: sqlite3.Connection) -> None:
        entered.set()
        release.wait(30)

    journal._enqueue(gate)  # hold the writer inside a transaction while more writes queue up
    assert entered.wait(30)
    commits: list[str] = []
    writer_conn_trace = threading.Event()

    # Count COMMITs from here on through a trace installed on the writer's connection, from the writer thread.
    def install(conn: sqlite3.Connection) -> None:
        conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
        writer_conn_trace.set()

    journal._enqueue(install)
    for i in range(100):
        end(journal, "b1", i)
    release.set()
    assert journal.flush()
    assert writer_conn_trace.is_set()
    # install + the 100 cell ends were all queued while the writer was held: they form one drain, one commit
    assert commits == ["COMMIT"]
    got = journal.get_batch("b1")
    assert got is not None and got["counts"]["done"] == 100


def test_a_failing_write_is_logged_and_does_not_lose_the_others_of_its_drain(
    journal: BatchJournal, caplog
) -> None:
    journal.record_batch(make_batch(cells=2))
    assert journal.flush()
    entered, release = threading.Event(), threading.Event()

    def gate(conn: sqlite3.Connection) -> None:
        entered.set()
        release.wait(30)

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    caplog.set_level(logging.ERROR, logger=LOGGER)
    journal._enqueue(gate)
    assert entered.wait(30)
    end(journal, "b1", 0)
    journal._enqueue(broken)
    end(journal, "b1", 1)
    release.set()
    assert journal.flush()
    got = journal.get_batch("b1")
    assert got is not None and [c["status"] for c in got["cells"]] == ["done", "done"]
    assert any("broken" in r.getMessage() for r in caplog.records)
    # the writer is still alive
    journal.record_state("b1", "collecting")
    assert journal.flush()
    assert journal.get_batch("b1")["state"] == "collecting"


def test_close_flushes_stops_the_writer_and_is_idempotent(tmp_path: pathlib.Path) -> None:
    j = BatchJournal(tmp_path / "j.db")
    j.record_batch(make_batch())
    j.get_batch("b1")  # opens a read connection on this thread
    j.close()
    j.close()
    assert not any(t.name == "wi-journal" and t.is_alive() for t in threading.enumerate() if t is j._writer)
    # after close: writes are dropped, reads are empty, nothing raises
    j.record_batch(make_batch("b2"))
    assert j.flush() is True
    with raw(tmp_path / "j.db") as conn:
        assert [r[0] for r in conn.execute("SELECT batch_id FROM wi_batch")] == ["b1"]
    conn.close()


def test_stored_values_are_json_text(journal: BatchJournal) -> None:
    journal.record_batch(make_batch(cells=1))
    end(journal, "b1", 0)
    assert journal.flush()
    with raw(journal.path) as conn:
        coords, vals, files = conn.execute("SELECT coords, vals, files FROM wi_cell").fetchone()
        plan = conn.execute("SELECT plan FROM wi_batch").fetchone()[0]
    conn.close()
    assert json.loads(coords) == [0, 0] and json.loads(vals) == [0, "euler"]
    assert json.loads(files) == [FILE_A]
    assert json.loads(plan)["prompt"]["3"]["class_type"] == "KSampler"


def test_a_burst_of_cell_ends_is_one_commit_and_flush_cuts_the_linger_short(journal, monkeypatch):
    # The writer lingers after the first write of a quiet spell, so fast cells cost one commit (and one
    # wake-up of the writer thread) per burst rather than one each; flush and close never wait for it.
    journal.record_batch(make_batch(cells=8))
    assert journal.flush()
    monkeypatch.setattr(journal_mod, "COALESCE_S", 60.0)
    commits: list[int] = []
    original = journal._commit
    monkeypatch.setattr(journal, "_commit", lambda conn, ops: (commits.append(len(ops)), original(conn, ops))[1])
    for index in range(8):
        end(journal, "b1", index, error=None, prompt_id=f"p{index}", files=[FILE_A], ended_at=None)
    assert journal.flush(timeout=10.0)
    assert commits == [8]
    assert [c["status"] for c in journal.get_batch("b1")["cells"]] == ["done"] * 8
    end(journal, "b1", 0, status="failed", error="late", prompt_id=None, files=[], ended_at=None)
    journal.close()  # returns promptly: close cuts the linger short too
    assert commits == [8, 1]


def test_batch_level_writes_are_committed_without_the_burst_wait(journal, monkeypatch):
    # A new batch, its state and a cancel must be on disk at once (resumable from the first moment), even while
    # cell ends are being gathered into one commit.
    monkeypatch.setattr(journal_mod, "COALESCE_S", 60.0)
    journal.record_batch(make_batch(cells=2))
    journal.record_state("b1", "collecting")
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        batch = journal.get_batch("b1")
        if batch is not None and batch["state"] == "collecting":
            break
        time.sleep(0.01)
    assert journal.get_batch("b1")["state"] == "collecting"  # not after the 60 s burst wait


# ------------------------------------------------------------------------------- text a user can send (12.3)

BROKEN = "broken emoji \ud83d end"  # what a JavaScript client sends when it cuts an emoji in half


def test_a_lone_surrogate_in_a_value_is_stored_escaped_and_reads_back_unchanged(journal: BatchJournal, caplog) -> None:
    batch = make_batch("b1", cells=2)
    batch["cells"][1]["values"] = [0, BROKEN]
    batch["axes"][1]["values"] = ["euler", BROKEN]
    batch["plan"]["sweep"] = {"axes": [{"name": "text", "values": [BROKEN, "ok \U0001F600"]}]}
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        journal.record_batch(batch)
        assert journal.flush()
    got = journal.get_batch("b1")
    assert got is not None, "the batch was not journaled"
    assert got["cells"][1]["values"] == [0, BROKEN]
    assert got["axes"][1]["values"] == ["euler", BROKEN]
    assert got["plan"]["sweep"]["axes"][0]["values"] == [BROKEN, "ok \U0001F600"]  # whole emoji untouched
    assert "surrogate" in caplog.text and "lost" not in caplog.text


def test_a_lone_surrogate_in_a_plain_text_field_is_replaced_and_said_so(journal: BatchJournal, caplog) -> None:
    journal.record_batch(make_batch("b1", batch_name=BROKEN))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        end(journal, "b1", 0, status="failed", error=f"node 5: {BROKEN}", files=[])
        assert journal.flush()
    got = journal.get_batch("b1")
    assert got is not None and got["batch_name"] == "broken emoji \ufffd end"
    assert got["cells"][0]["status"] == "failed" and got["cells"][0]["error"] == "node 5: broken emoji \ufffd end"
    assert "U+FFFD" in caplog.text


def test_a_bad_batch_does_not_take_an_unrelated_batchs_cell_end_with_it(journal: BatchJournal) -> None:
    journal.record_batch(make_batch("b1"))
    assert journal.flush()
    # One drain: the cell end makes the writer linger, the new batch (urgent) joins it.
    end(journal, "b1", 0)
    bad = make_batch("b2", cells=2)
    bad["cells"][0]["values"] = [0, BROKEN]
    journal.record_batch(bad)
    assert journal.flush()
    first = journal.get_batch("b1")
    assert first is not None and first["cells"][0]["status"] == "done"
    second = journal.get_batch("b2")
    assert second is not None and second["cells"][0]["values"] == [0, BROKEN]


def test_any_failing_write_costs_only_itself_not_the_rest_of_its_drain(journal: BatchJournal, monkeypatch, caplog) -> None:
    """Not only sqlite3.Error: whatever one op raises (here a bind error no encoding rule foresaw), the other
    writes of the same transaction are retried alone and committed."""
    journal.record_batch(make_batch("b1"))
    journal.record_batch(make_batch("b2"))
    assert journal.flush()
    original = BatchJournal._op_state

    def failing_state(self, conn, batch_id, *args):
        if batch_id == "b2":
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return original(self, conn, batch_id, *args)

    monkeypatch.setattr(BatchJournal, "_op_state", failing_state)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        end(journal, "b1", 0)
        end(journal, "b1", 1)
        journal.record_state("b2", "cancelled")
        journal.record_state("b1", "collecting")
        assert journal.flush()
    first = journal.get_batch("b1")
    assert first is not None and first["state"] == "collecting"
    assert [c["status"] for c in first["cells"][:2]] == ["done", "done"]
    second = journal.get_batch("b2")
    assert second is not None and second["state"] == "active"
    assert "_op_state" in caplog.text or "failing_state" in caplog.text
