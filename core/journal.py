"""Crash-safe journal of batches: plans and every cell's end state, in an embedded SQLite database.

Owns one SQLite file (normally in ComfyUI's user directory; the caller passes the path) holding, per batch, the
plan needed to re-queue it (axes, cells, an opaque ``plan`` dict), its lifecycle state, grid and warnings, and per
cell its coordinates, values, end status, error, prompt id, saved files and end time. After ComfyUI is killed
mid-batch, :meth:`BatchJournal.load_unfinished` lists the batches that never reached a terminal state (and marks
them ``interrupted``), so the caller can show them and re-queue exactly the cells that did not end. Finished
batches stay queryable after the in-memory manager forgets them, up to ``retention`` batches.

Concurrency and durability:

* Every write (schema creation included) runs on ONE daemon thread named ``wi-journal``, fed by a
  :class:`queue.Queue`; callers (the aiohttp event loop, ComfyUI's worker thread) only validate, copy and enqueue
  (the writer encodes the per-cell JSON), and never wait for the disk. The writer drains everything queued
  and commits once per drain. After the first cell end of a quiet spell it lingers ``COALESCE_S`` before
  draining (cut short by :meth:`BatchJournal.flush`, close and the batch-level writes: a new batch, a state,
  a cancel), so a burst of fast cells costs one wake-up and one commit instead of one per cell, each competing
  with ComfyUI's worker thread for the GIL. A killed process may so lose the last ``COALESCE_S`` of cell
  ends; their images are on disk and a resume marks such cells done from their files.
* The database is in WAL mode with ``synchronous=NORMAL``: a committed transaction survives a killed process
  (not necessarily a power cut). :meth:`BatchJournal.flush` waits until everything queued so far is committed.
* Reads use one connection per calling thread (``threading.local``, ``PRAGMA query_only``) and see committed data
  only: a read right after a write sees it only after :meth:`BatchJournal.flush`.
* A corrupt or foreign database file is never fatal: it is renamed to ``<path>.corrupt-<epoch>`` (with whatever
  ``-wal``/``-shm`` files SQLite left) and a fresh one is created. If that fails too, the journal is disabled:
  every method is a no-op returning an empty result and :attr:`BatchJournal.enabled` is False.

The journal mirrors what it is told; it is not a second state machine. It only refuses to end a cell twice
(the first end wins, as in the manager), never moves a terminal batch to ``interrupted``, and never lets
retention delete a batch that has not finished.

Plain Python, standard library only: must not import torch, comfy*, server, nodes, execution, folder_paths,
comfy_execution or aiohttp.
"""
from __future__ import annotations

import json
import logging
import math
import os
import queue
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import states as _states

logger = logging.getLogger(__name__)

__all__ = [
    "APPLICATION_ID",
    "BatchJournal",
    "CELL_END_STATUSES",
    "JOURNAL_STATES",
    "SCHEMA_VERSION",
    "TERMINAL_STATES",
    "UNFINISHED_STATES",
]

# Lifecycle states as the lower-case strings the database stores, from the one state module (core/states.py),
# so the journal and the manager cannot disagree about what a state means.
TERMINAL_STATES: frozenset[str] = frozenset(state.value for state in _states.TERMINAL)
UNFINISHED_STATES: frozenset[str] = frozenset(state.value for state in _states.UNFINISHED_STATES)
JOURNAL_STATES: frozenset[str] = TERMINAL_STATES | UNFINISHED_STATES
CELL_END_STATUSES: frozenset[str] = frozenset(status.value for status in _states.CELL_ENDED)

SCHEMA_VERSION = 1
APPLICATION_ID = 0x57494A31  # "WIJ1": tells our file apart from any other SQLite database at the same path
MAX_LIST_LIMIT = 500
_DRAIN_MAX = 10_000  # ops per transaction; bounds how long one commit (and so a flush) can take
#: How long the writer collects writes after the first of a quiet spell before committing them together: the
#: most a killed process can lose beyond what is queued (a resume re-checks the cells' files anyway).
COALESCE_S = 0.25
_SECRET_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")

# user_version N is reached by running _MIGRATIONS[N] on a database at version N - 1.
_MIGRATIONS: Mapping[int, tuple[str, ...]] = {
    1: (
        """
        CREATE TABLE wi_batch (
            id          INTEGER PRIMARY KEY,
            batch_id    TEXT    NOT NULL UNIQUE,
            batch_name  TEXT    NOT NULL,
            mode        TEXT    NOT NULL,
            client_id   TEXT,
            created_at  REAL    NOT NULL,
            updated_at  REAL    NOT NULL,
            state       TEXT    NOT NULL,
            axes        TEXT    NOT NULL,
            meta        TEXT    NOT NULL,
            plan        TEXT    NOT NULL,
            grid        TEXT,
            warnings    TEXT    NOT NULL DEFAULT '[]',
            n_total     INTEGER NOT NULL,
            n_done      INTEGER NOT NULL DEFAULT 0,
            n_failed    INTEGER NOT NULL DEFAULT 0,
            n_cancelled INTEGER NOT NULL DEFAULT 0
        )
        """,
        "CREATE INDEX wi_batch_by_created ON wi_batch (created_at, id)",
        "CREATE INDEX wi_batch_by_state ON wi_batch (state)",
        """
        CREATE TABLE wi_cell (
            batch     INTEGER NOT NULL REFERENCES wi_batch (id) ON DELETE CASCADE,
            idx       INTEGER NOT NULL,
            coords    TEXT    NOT NULL,
            vals      TEXT    NOT NULL,
            status    TEXT    NOT NULL,
            error     TEXT,
            prompt_id TEXT,
            files     TEXT    NOT NULL DEFAULT '[]',
            ended_at  REAL,
            PRIMARY KEY (batch, idx)
        ) WITHOUT ROWID
        """,
    ),
}

# What a database at SCHEMA_VERSION must contain; anything missing means the file is not ours.
_EXPECTED_COLUMNS: Mapping[str, frozenset[str]] = {
    "wi_batch": frozenset(
        {"id", "batch_id", "batch_name", "mode", "client_id", "created_at", "updated_at", "state", "axes",
         "meta", "plan", "grid", "warnings", "n_total", "n_done", "n_failed", "n_cancelled"}
    ),
    "wi_cell": frozenset({"batch", "idx", "coords", "vals", "status", "error", "prompt_id", "files", "ended_at"}),
}

# SQLite result codes that describe the environment (permissions, locks, I/O, space), not the file's content:
# these disable the journal instead of moving a possibly healthy database aside.
_ENVIRONMENT_ERRORS = frozenset(
    {"SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM", "SQLITE_IOERR",
     "SQLITE_FULL", "SQLITE_NOMEM", "SQLITE_AUTH", "SQLITE_NOLFS"}
)


class _ForeignDatabase(sqlite3.DatabaseError):
    """The file is a valid SQLite database, but not one this module wrote (or one from a newer version)."""


@dataclass(slots=True)
class _Flush:
    """Queue marker: set once every op queued before it is committed (or failed and was logged)."""

    done: threading.Event


_STOP = object()


def _stop_writer(q: queue.Queue[Any], urgent: threading.Event, writer: threading.Thread) -> None:
    """At interpreter exit: let the writer commit what is queued, then stop (bounded wait)."""
    q.put(_STOP)
    urgent.set()
    writer.join(timeout=10.0)

# One queued write: a method of the writer taking (connection, *args).
_Op = tuple[Callable[..., None], tuple[Any, ...]]


# ------------------------------------------------------------------------------------------------ encoding


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
# For text holding a lone UTF-16 surrogate (what a JavaScript client sends when it cuts an emoji in half):
# SQLite stores UTF-8, which cannot hold one, so binding such a str raises UnicodeEncodeError. As a JSON
# ``\udXXX`` escape it is plain ASCII and reads back as exactly the same str.
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"))
_SURROGATE = re.compile("[\ud800-\udfff]")
_SCALARS = (str, int, bool, type(None))


def _has_surrogate(text: str) -> bool:
    return not text.isascii() and _SURROGATE.search(text) is not None


def _encode_storable(value: Any) -> tuple[str, bool]:
    """``(JSON text SQLite can store, whether it had to be escaped)``: UTF-8 as is, or every non-ASCII
    character escaped when the text holds a lone surrogate (the value still reads back unchanged)."""
    text = _ENCODER.encode(value)
    if _has_surrogate(text):
        return _ASCII_ENCODER.encode(value), True
    return text, False


def _encode(value: Any, what: str) -> str:
    """:func:`_encode_storable`, logging a warning naming ``what`` when the text had to be escaped."""
    text, escaped = _encode_storable(value)
    if escaped:
        logger.warning("journal: %s holds a lone UTF-16 surrogate (half of an emoji?); stored as a \\u escape, "
                       "it reads back unchanged", what)
    return text


def _dumps(value: Any, what: str) -> str:
    """Strict JSON text (no NaN/Infinity, no silent str() fallback); the error names the field."""
    try:
        return _encode(value, what)
    except (TypeError, ValueError) as e:
        raise TypeError(f"journal: {what} is not JSON-serialisable: {e}") from e


def _storable(text: str, what: str) -> str:
    """``text`` for a TEXT column: a lone surrogate (which UTF-8 cannot hold) becomes U+FFFD, with a warning."""
    if not _has_surrogate(text):
        return text
    logger.warning("journal: %s holds a lone UTF-16 surrogate (half of an emoji?); stored with U+FFFD in its place", what)
    return _SURROGATE.sub("\ufffd", text)


def _json_tuple(items: Sequence[Any], what: str) -> tuple[Any, ...]:
    """A private, JSON-valid copy of a short list, made cheaply on the caller's thread.

    Encoding 10,000 cells takes ~50 ms, too long for the event loop, so the writer encodes them; here scalars
    are only type-checked and anything nested is deep-copied through JSON, which also validates it.
    """
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"journal: {what} must be a list, got {type(items).__name__}")
    out = []
    for item in items:
        if type(item) in _SCALARS or (type(item) is float and math.isfinite(item)):
            out.append(item)
        else:
            out.append(json.loads(_dumps(item, what)))
    return tuple(out)


def _loads(text: str | None, default: Any) -> Any:
    return default if text is None else json.loads(text)


def _scrub_secrets(value: Any) -> Any:
    """Copy of ``value`` where every ``extra_data`` mapping lacks ComfyUI's account tokens.

    The lead strips them before calling; this is defence in depth, so a token can never reach the disk.
    """
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if key == "extra_data" and isinstance(item, Mapping):
                item = {k: v for k, v in item.items() if k not in _SECRET_KEYS}
            out[key] = _scrub_secrets(item)
        return out
    if isinstance(value, (list, tuple)):
        return [_scrub_secrets(item) for item in value]
    return value


def _require_str(value: Any, what: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"journal: {what} must be a str, got {type(value).__name__}")
    return _storable(value, what)


def _require_time(value: Any, what: str, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"journal: {what} must be a finite number, got {value!r}")
    return float(value)


def _require_index(value: Any, what: str = "index") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"journal: {what} must be an int, got {type(value).__name__}")
    return value


def _checked_files(files: Sequence[Mapping[str, str]]) -> tuple[dict[str, str], ...]:
    """Copies of the file entries, checked here; the writer thread encodes them (the caller may be ComfyUI's
    worker between two prompts: it pays for the check, not for the JSON text)."""
    out = []
    for f in files:
        if not isinstance(f, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in f.items()):
            raise TypeError(f"journal: each file must be a mapping of str to str, got {f!r}")
        out.append(dict(f))
    return tuple(out)


def _page_arg(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return value


# -------------------------------------------------------------------------------------------------- journal


class BatchJournal:
    """Durable record of batches and their cells, written by one background thread.

    Args:
        path: the SQLite file; missing parent folders are created.
        retention: how many batches to keep; the oldest *terminal* batches beyond it are deleted each time a
            batch is recorded. Unfinished batches are never deleted, so the count may exceed it.
        wall_clock: epoch-seconds clock for ``updated_at``, cancelled cells' ``ended_at`` and the corrupt-file
            suffix (injectable for tests).

    Never raises on a bad database file or location (see the module docstring); check :attr:`enabled`.

    Raises:
        ValueError: ``retention`` is negative or not an int.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retention: int = 500,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(retention, bool) or not isinstance(retention, int) or retention < 0:
            raise ValueError(f"retention must be an int >= 0, got {retention!r}")
        self._path = os.fspath(path)
        self._retention = retention
        self._wall_clock = wall_clock
        self._queue: queue.Queue[Any] = queue.Queue()
        self._urgent = threading.Event()  # set after queueing a flush marker or _STOP: the writer stops lingering
        self._lock = threading.Lock()  # guards _closed and _readers; enqueueing after close is refused under it
        self._closed = False
        self._enabled = False
        self._readers: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._ready = threading.Event()
        self._at_exit: weakref.finalize[Any, Any] | None = None
        self._writer = threading.Thread(target=self._run_writer, name="wi-journal", daemon=True)
        self._writer.start()
        self._ready.wait()  # setup runs on the writer thread; it always sets the event, even when it fails
        if not self._enabled:
            self._writer.join()
            self._closed = True
            return
        # The writer is a daemon thread; without close() (ComfyUI has no shutdown hook for packs) this still
        # commits whatever is queued when the interpreter exits normally. Holds no reference to self.
        self._at_exit = weakref.finalize(self, _stop_writer, self._queue, self._urgent, self._writer)

    # ---------------------------------------------------------------------------------------- properties

    @property
    def enabled(self) -> bool:
        """False when the database could not be opened or created, or after :meth:`close`.

        While False every method is a no-op returning an empty result.
        """
        return self._enabled and not self._closed

    @property
    def path(self) -> str:
        return self._path

    # ------------------------------------------------------------------------------------------- writes

    def record_batch(self, batch: Mapping[str, Any]) -> None:
        """Journal a new batch (state ``active``); with ``cells``, one ``queued`` row per cell.

        Without ``cells`` (give ``total`` instead) the batch is recorded in O(1): a cell gets a row only when
        it ends, and a cell without a row is queued (cancelled once the batch is). Its coordinates and values
        are the reader's to derive from the stored plan, so a value is stored once, not once per cell.

        ``batch`` holds ``batch_id``, ``batch_name``, ``mode``, ``client_id``, ``created_at`` (wall clock),
        ``axes``, ``cells`` (``index``, ``coords``, ``values``), ``meta`` and ``plan`` (opaque JSON; ComfyUI
        account tokens under any ``extra_data`` key are dropped). Everything is validated and copied here, on the
        caller's thread, so a bad value fails at the call and a later change to ``batch`` cannot leak into the
        journal; the per-cell JSON text is produced by the writer (10,000 cells cost the caller a few ms). A batch
        id already in the journal is ignored with a warning (the first record wins; use :meth:`record_state` to
        change a known batch).

        Raises:
            KeyError: a required key (``batch_id``, ``created_at``, a cell's ``index``/``values``) is missing.
            TypeError: a field has the wrong type or a value is not JSON-serialisable (NaN included).
            ValueError: two cells share an index.
        """
        if not self._enabled:
            return
        batch_id = _require_str(batch["batch_id"], "batch_id")
        axes = batch.get("axes") or []
        cells = batch.get("cells")
        total = len(cells) if cells is not None else _require_index(batch["total"], "total")
        row = (
            batch_id,
            _require_str(batch.get("batch_name", ""), "batch_name"),
            _require_str(batch.get("mode", ""), "mode"),
            _require_str(batch.get("client_id"), "client_id", optional=True),
            _require_time(batch["created_at"], "created_at"),
            self._wall_clock(),
            _dumps(list(axes), "axes"),
            _dumps(dict(batch.get("meta") or {}), "meta"),
            _dumps(_scrub_secrets(dict(batch.get("plan") or {})), "plan"),
            _dumps([str(w) for w in batch.get("warnings") or ()], "warnings"),
            total,
        )
        cell_rows: list[tuple[int, tuple[Any, ...], tuple[Any, ...]]] = []
        seen: set[int] = set()
        for cell in cells or ():
            index = _require_index(cell["index"], "cell index")
            if index in seen:
                raise ValueError(f"journal: duplicate cell index {index} in batch {batch_id}")
            seen.add(index)
            cell_rows.append(
                (index, _json_tuple(cell.get("coords") or (), "coords"), _json_tuple(cell["values"], "values"))
            )
        self._enqueue(self._op_insert_batch, row, cell_rows, urgent=True)

    def record_cell_end(
        self,
        batch_id: str,
        index: int,
        *,
        status: str,
        error: str | None,
        prompt_id: str | None,
        files: Sequence[Mapping[str, str]],
        ended_at: float | None,
    ) -> None:
        """Journal the end of one cell. The first end of a cell wins; later ones are ignored.

        ``prompt_id=None`` keeps a prompt id stored earlier. Unknown batches or cells are ignored (debug log).

        Raises:
            ValueError: ``status`` is not ``done``, ``failed`` or ``cancelled``.
            TypeError: a field has the wrong type.
        """
        if not self._enabled:
            return
        if status not in CELL_END_STATUSES:
            raise ValueError(f"journal: cell end status must be one of {sorted(CELL_END_STATUSES)}, got {status!r}")
        args = (
            _require_str(batch_id, "batch_id"),
            _require_index(index),
            status,
            _require_str(error, "error", optional=True),
            _require_str(prompt_id, "prompt_id", optional=True),
            _checked_files(files),
            _require_time(ended_at, "ended_at", optional=True),
            self._wall_clock(),
        )
        self._enqueue(self._op_cell_end, *args)

    def record_cells_cancelled(self, batch_id: str, reason: str, *, keep: Sequence[int] = ()) -> None:
        """Journal every cell of the batch that has not ended (queued/running) as ``cancelled`` with ``reason``,
        except the cells in ``keep`` (ComfyUI was running them: their own end is journaled when it comes)."""
        if not self._enabled:
            return
        now = self._wall_clock()
        kept = tuple(int(i) for i in keep)
        self._enqueue(self._op_cells_cancelled, _require_str(batch_id, "batch_id"), _require_str(reason, "reason"), now,
                      kept, urgent=True)

    def record_state(
        self,
        batch_id: str,
        state: str,
        *,
        grid: Mapping[str, Any] | None = None,
        warnings: Sequence[str] | None = None,
    ) -> None:
        """Journal a batch's lifecycle state; ``grid`` / ``warnings`` replace the stored ones when given.

        Raises:
            ValueError: ``state`` is not a known lifecycle state.
            TypeError: ``grid`` or ``warnings`` are not JSON-serialisable.
        """
        if not self._enabled:
            return
        if state not in JOURNAL_STATES:
            raise ValueError(f"journal: unknown batch state {state!r}")
        grid_json = None if grid is None else _dumps(dict(grid), "grid")
        warnings_json = None if warnings is None else _dumps([str(w) for w in warnings], "warnings")
        self._enqueue(
            self._op_state, _require_str(batch_id, "batch_id"), state, grid_json, warnings_json, self._wall_clock(),
            urgent=True,
        )

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until every write queued before this call is committed.

        Returns:
            True when done (or nothing to do: disabled/closed), False on timeout.
        """
        if threading.current_thread() is self._writer:
            return True  # a write op calling back into us must not wait for itself
        marker = _Flush(threading.Event())
        if not self._put(marker):
            return True
        self._urgent.set()
        return marker.done.wait(timeout)

    def close(self) -> None:
        """Flush, stop the writer thread and close every connection. Idempotent; later calls are no-ops."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
            self._urgent.set()
            readers, self._readers = self._readers, []
        if self._at_exit is not None:
            self._at_exit.detach()
        self._writer.join()
        for conn in readers:
            conn.close()

    # -------------------------------------------------------------------------------------------- reads

    def load_unfinished(self) -> list[dict[str, Any]]:
        """Every batch that never reached a terminal state, as full dicts (see :meth:`get_batch`).

        Flushes queued writes first, then marks the batches ``interrupted`` (through the writer, flushed) and
        reads them back, so the dicts and the database agree.
        A batch stays unfinished until someone records a terminal state for it: calling this again returns the
        same batches again, still ``interrupted`` (their ``updated_at`` is not bumped a second time).
        Waits for the disk (two flushes): call it at start-up or off the event loop.

        Raises:
            sqlite3.Error: the database failed under a read (disk error, file removed); like every read.
        """
        if not self._enabled:
            return []
        self.flush(timeout=30.0)  # include whatever this process queued before the call
        ids = [r[0] for r in self._read(
            "SELECT batch_id FROM wi_batch WHERE state IN (%s) ORDER BY created_at, id" % _marks(UNFINISHED_STATES),
            tuple(UNFINISHED_STATES),
        )]
        if not ids:
            return []
        self._enqueue(self._op_interrupt, ids, self._wall_clock())
        self.flush(timeout=30.0)
        out = []
        for batch_id in ids:
            batch = self.get_batch(batch_id)
            if batch is not None and batch["state"] not in TERMINAL_STATES:
                out.append(batch)
        return out

    def get_batch(self, batch_id: str) -> dict[str, Any] | None:
        """The full record of one batch, or None when unknown (or the journal is disabled).

        Returns:
            ``batch_id, batch_name, mode, client_id, created_at, updated_at, state, axes, meta, plan, grid,
            warnings, counts`` and ``cells``: ``[{index, coords, values, status, error, prompt_id, files,
            ended_at}]`` ordered by index (``values`` aligned with ``axes``, as recorded).
        """
        if not self._enabled:
            return None
        conn = self._reader()
        if conn is None:
            return None
        # One read transaction, so the batch row and its cells come from the same snapshot.
        with _read_txn(conn):
            row = conn.execute(f"SELECT {_BATCH_COLUMNS} FROM wi_batch WHERE batch_id = ?", (batch_id,)).fetchone()
            if row is None:
                return None
            cells = conn.execute(
                "SELECT idx, coords, vals, status, error, prompt_id, files, ended_at FROM wi_cell "
                "WHERE batch = ? ORDER BY idx",
                (row[0],),
            ).fetchall()
        out = _batch_summary(row)
        out.update(
            client_id=row[4],
            axes=_loads(row[9], []),
            meta=_loads(row[10], {}),
            plan=_loads(row[11], {}),
            warnings=_loads(row[12], []),
            # Recorded without cells: only cells that ended (or ran at a cancel) have a row, without
            # coordinates or values; the reader derives those from the plan.
            sparse=len(cells) < int(row[13]) or any(c[1] == "[]" for c in cells),
            cells=[
                {
                    "index": c[0],
                    "coords": json.loads(c[1]),
                    "values": json.loads(c[2]),
                    "status": c[3],
                    "error": c[4],
                    "prompt_id": c[5],
                    "files": json.loads(c[6]),
                    "ended_at": c[7],
                }
                for c in cells
            ],
        )
        return out

    def list_batches(self, *, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """Summaries, newest first (``created_at``, then insertion order).

        Args:
            limit: page size, clamped to 1..500.
            offset: rows to skip, >= 0.

        Returns:
            ``[{batch_id, batch_name, mode, state, created_at, updated_at, counts: {total, done, failed,
            cancelled, pending}, grid}]``; ``pending`` counts cells that have not ended (queued or running).

        Raises:
            ValueError: ``limit``/``offset`` are not ints, or ``offset`` is negative.
        """
        limit = min(max(_page_arg(limit, "limit"), 1), MAX_LIST_LIMIT)
        offset = _page_arg(offset, "offset")
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        if not self._enabled:
            return []
        rows = self._read(
            f"SELECT {_BATCH_COLUMNS} FROM wi_batch ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [_batch_summary(r) for r in rows]

    def count_batches(self) -> int:
        """How many batches the journal holds (0 when disabled)."""
        if not self._enabled:
            return 0
        rows = self._read("SELECT count(*) FROM wi_batch", ())
        return int(rows[0][0]) if rows else 0

    # ---------------------------------------------------------------------------------- read plumbing

    def _reader(self) -> sqlite3.Connection | None:
        if self._closed:  # close() closed every reader, this thread's cached one included
            return None
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with self._lock:
            if self._closed:
                return None
            # check_same_thread=False only so close() may close it from another thread; it is used by one thread.
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=10.0)
            self._readers.append(conn)
        conn.execute("PRAGMA query_only = ON")  # reads can never write, whatever the SQL
        self._local.conn = conn
        return conn

    def _read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        conn = self._reader()
        if conn is None:
            return []
        return conn.execute(sql, params).fetchall()

    # --------------------------------------------------------------------------------- write plumbing

    def _put(self, item: Any) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._queue.put(item)
            return True

    def _enqueue(self, fn: Callable[..., None], *args: Any, urgent: bool = False) -> None:
        """Queue one write. ``urgent`` (a new batch, a batch's state): committed without the burst wait, so a
        batch is resumable from its first moments and its end is on disk at once."""
        if not self._put((fn, args)):
            logger.debug("journal %s is closed; dropped a write (%s)", self._path, fn.__name__)
        elif urgent:
            self._urgent.set()

    def _run_writer(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            conn = self._setup()
        except Exception as e:  # thread boundary: the constructor must never raise or hang
            logger.exception("journal %s: unexpected error while opening", self._path)
            self._disable(f"unexpected {type(e).__name__}: {e}")
        finally:
            self._ready.set()
        if conn is None:
            return
        try:
            stop = False
            while not stop:
                items = [self._queue.get()]
                if isinstance(items[0], tuple):
                    self._urgent.wait(COALESCE_S)  # gather the rest of a burst (a flush or close cuts it short)
                # Cleared before draining: a marker queued after this clear sets it again for the next round.
                self._urgent.clear()
                while len(items) < _DRAIN_MAX:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                ops: list[_Op] = []
                markers: list[_Flush] = []
                for item in items:
                    if item is _STOP:
                        stop = True  # close() enqueues nothing after _STOP, so the drain is complete
                    elif isinstance(item, _Flush):
                        markers.append(item)
                    else:
                        ops.append(item)
                if ops:
                    try:
                        self._commit(conn, ops)
                    except Exception:  # thread boundary: a bug in one op must not kill the writer
                        logger.exception("journal %s: unexpected error; %d writes lost", self._path, len(ops))
                for marker in markers:
                    marker.done.set()
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, ops: list[_Op]) -> None:
        """Apply a drain in one transaction; if it fails, retry op by op so one bad write costs only itself.

        Any exception counts, not only ``sqlite3.Error``: a value SQLite cannot bind raises UnicodeEncodeError
        or OverflowError, and that must not take the rest of the drain (other batches' writes) with it.
        """
        try:
            with _write_txn(conn):
                for fn, args in ops:
                    fn(conn, *args)
            return
        except Exception:  # isolated below, op by op
            if len(ops) == 1:
                logger.exception("journal %s: write %s failed; it is lost", self._path, ops[0][0].__name__)
                return
        failed = 0
        for fn, args in ops:
            try:
                with _write_txn(conn):
                    fn(conn, *args)
            except Exception:  # this op alone is lost; the others of the drain are committed
                failed += 1
                if failed == 1:
                    logger.exception("journal %s: write %s failed; it is lost", self._path, fn.__name__)
        if failed > 1:
            logger.error("journal %s: %d writes of one drain failed and are lost", self._path, failed)

    # ------------------------------------------------------------------------------------------ setup

    def _setup(self) -> sqlite3.Connection | None:
        """Open (or create) the database on the writer thread; move a bad file aside; None (disabled) on failure."""
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self._path)), exist_ok=True)
        except OSError as e:
            self._disable(f"cannot create its folder: {e}")
            return None
        try:
            conn = self._open_writer()
        except sqlite3.DatabaseError as e:
            if _is_environment_error(e):
                self._disable(str(e))
                return None
            try:
                moved = self._move_aside()
            except OSError as move_error:
                self._disable(f"{e}; moving it aside failed: {move_error}")
                return None
            logger.warning(
                "journal %s is unreadable (%s); moved it aside to %s and started a fresh one", self._path, e, moved
            )
            try:
                conn = self._open_writer()
            except sqlite3.Error as e2:
                self._disable(str(e2))
                return None
        except (sqlite3.Error, OSError) as e:  # sqlite3.Error outside DatabaseError: InterfaceError & co.
            self._disable(str(e))
            return None
        self._enabled = True
        return conn

    def _disable(self, reason: str) -> None:
        logger.error("journal %s disabled: %s; batches will not survive a restart", self._path, reason)
        self._enabled = False

    def _open_writer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, timeout=10.0)
        try:
            # Identify the file before changing anything in it: a foreign database is moved aside untouched.
            version = self._check_identity(conn)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                logger.warning("journal %s: WAL mode unavailable (journal_mode=%s)", self._path, mode)
            conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate(conn, version)
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _check_identity(conn: sqlite3.Connection) -> int:
        """The file's schema version; raises ``_ForeignDatabase`` if it is not a journal this code can use."""
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        if app_id not in (0, APPLICATION_ID):
            raise _ForeignDatabase(f"application_id is {app_id:#x}, not a journal")
        if version > SCHEMA_VERSION:
            raise _ForeignDatabase(f"schema version {version} is newer than this code ({SCHEMA_VERSION})")
        if version == 0:
            tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchone()[0]
            if tables:
                raise _ForeignDatabase("database holds tables but no journal schema version")
        if version == SCHEMA_VERSION:
            BatchJournal._check_tables(conn)
        return version

    @staticmethod
    def _migrate(conn: sqlite3.Connection, version: int) -> None:
        if version < SCHEMA_VERSION:
            with _write_txn(conn):
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    for sql in _MIGRATIONS[step]:
                        conn.execute(sql)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            BatchJournal._check_tables(conn)

    @staticmethod
    def _check_tables(conn: sqlite3.Connection) -> None:
        for table, expected in _EXPECTED_COLUMNS.items():
            have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            if not expected <= have:
                raise _ForeignDatabase(f"table {table} lacks columns {sorted(expected - have)}")

    def _move_aside(self) -> str:
        base = f"{self._path}.corrupt-{int(self._wall_clock())}"
        dest, n = base, 0
        while any(os.path.lexists(dest + s) for s in ("", "-wal", "-shm")):
            n += 1
            dest = f"{base}.{n}"
        os.replace(self._path, dest)
        # The -wal/-shm files belong to the bad file (when SQLite did not already delete or checkpoint them on
        # closing the failed connection): keep them next to it for a post-mortem, and out of the fresh
        # database's way so it never replays a stranger's log.
        for suffix in ("-wal", "-shm"):
            if os.path.lexists(self._path + suffix):
                os.replace(self._path + suffix, dest + suffix)
        return dest

    # ------------------------------------------------------------------------- write ops (writer thread)

    def _batch_rowid(self, conn: sqlite3.Connection, batch_id: str, what: str) -> int | None:
        row = conn.execute("SELECT id FROM wi_batch WHERE batch_id = ?", (batch_id,)).fetchone()
        if row is None:
            logger.debug("journal: %s for unknown batch %s ignored", what, batch_id)
            return None
        return int(row[0])

    def _op_insert_batch(
        self,
        conn: sqlite3.Connection,
        row: tuple[Any, ...],
        cell_rows: list[tuple[int, tuple[Any, ...], tuple[Any, ...]]],
    ) -> None:
        cur = conn.execute(
            "INSERT OR IGNORE INTO wi_batch (batch_id, batch_name, mode, client_id, created_at, updated_at, state, "
            "axes, meta, plan, warnings, n_total) VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?)",
            row,
        )
        if cur.rowcount != 1:
            logger.warning("journal: batch %s is already recorded; the new record is ignored", row[0])
            return
        rowid = cur.lastrowid
        escaped: list[int] = []

        def vals_json(idx: int, vals: tuple[Any, ...]) -> str:
            text, was_escaped = _encode_storable(vals)
            if was_escaped:
                escaped.append(idx)
            return text

        conn.executemany(
            "INSERT INTO wi_cell (batch, idx, coords, vals, status) VALUES (?, ?, ?, ?, 'queued')",
            ((rowid, idx, _ENCODER.encode(coords), vals_json(idx, vals)) for idx, coords, vals in cell_rows),
        )
        if escaped:
            logger.warning("journal: batch %s: the values of %d cell(s) (first: %d) hold a lone UTF-16 surrogate "
                           "(half of an emoji?); stored as \\u escapes, they read back unchanged",
                           row[0], len(escaped), escaped[0])
        self._apply_retention(conn)

    def _apply_retention(self, conn: sqlite3.Connection) -> None:
        excess = int(conn.execute("SELECT count(*) FROM wi_batch").fetchone()[0]) - self._retention
        if excess <= 0:
            return
        doomed = [
            (r[0],)
            for r in conn.execute(
                "SELECT id FROM wi_batch WHERE state IN (%s) ORDER BY created_at, id LIMIT ?"
                % _marks(TERMINAL_STATES),
                (*TERMINAL_STATES, excess),
            )
        ]
        conn.executemany("DELETE FROM wi_cell WHERE batch = ?", doomed)
        conn.executemany("DELETE FROM wi_batch WHERE id = ?", doomed)
        if doomed:
            logger.debug("journal: retention deleted %d old batches", len(doomed))

    def _op_cell_end(
        self,
        conn: sqlite3.Connection,
        batch_id: str,
        index: int,
        status: str,
        error: str | None,
        prompt_id: str | None,
        files: tuple[dict[str, str], ...],
        ended_at: float | None,
        now: float,
    ) -> None:
        files_json = _dumps(list(files), "files")
        rowid = self._batch_rowid(conn, batch_id, f"end of cell {index}")
        if rowid is None:
            return
        # Batches recorded without cells get a cell's row when it ends.
        conn.execute("INSERT OR IGNORE INTO wi_cell (batch, idx, coords, vals, status) "
                     "SELECT ?, ?, '[]', '[]', 'queued' WHERE ? < (SELECT n_total FROM wi_batch WHERE id = ?)",
                     (rowid, index, index, rowid))
        cur = conn.execute(
            "UPDATE wi_cell SET status = ?, error = ?, prompt_id = coalesce(?, prompt_id), files = ?, ended_at = ? "
            "WHERE batch = ? AND idx = ? AND status IN ('queued', 'running')",
            (status, error, prompt_id, files_json, ended_at, rowid, index),
        )
        if cur.rowcount != 1:
            logger.debug("journal: cell %s/%d unknown or already ended; end %s ignored", batch_id, index, status)
            return
        column = {"done": "n_done", "failed": "n_failed", "cancelled": "n_cancelled"}[status]
        conn.execute(f"UPDATE wi_batch SET {column} = {column} + 1, updated_at = ? WHERE id = ?", (now, rowid))

    def _op_cells_cancelled(self, conn: sqlite3.Connection, batch_id: str, reason: str, now: float,
                            keep: tuple[int, ...] = ()) -> None:
        rowid = self._batch_rowid(conn, batch_id, "cancel of cells")
        if rowid is None:
            return
        # Cells ComfyUI still runs keep a row of their own, open, so that they are not taken for cancelled.
        conn.executemany("INSERT OR IGNORE INTO wi_cell (batch, idx, coords, vals, status) "
                         "VALUES (?, ?, '[]', '[]', 'running')", ((rowid, int(i)) for i in keep))
        kept = ",".join(str(int(i)) for i in keep)  # ints only: safe to inline
        conn.execute(
            "UPDATE wi_cell SET status = 'cancelled', error = ?, ended_at = ? "
            "WHERE batch = ? AND status IN ('queued', 'running')" + (f" AND idx NOT IN ({kept})" if kept else ""),
            (reason, now, rowid),
        )
        # Cells without a row (never ended, never kept) are cancelled along with the batch.
        conn.execute(
            "UPDATE wi_batch SET n_cancelled = (SELECT count(*) FROM wi_cell WHERE batch = ? AND status = 'cancelled')"
            " + n_total - (SELECT count(*) FROM wi_cell WHERE batch = ?), updated_at = ? WHERE id = ?",
            (rowid, rowid, now, rowid),
        )

    def _op_state(
        self,
        conn: sqlite3.Connection,
        batch_id: str,
        state: str,
        grid: str | None,
        warnings: str | None,
        now: float,
    ) -> None:
        rowid = self._batch_rowid(conn, batch_id, f"state {state}")
        if rowid is None:
            return
        conn.execute(
            "UPDATE wi_batch SET state = ?, grid = coalesce(?, grid), warnings = coalesce(?, warnings), "
            "updated_at = ? WHERE id = ?",
            (state, grid, warnings, now, rowid),
        )

    def _op_interrupt(self, conn: sqlite3.Connection, batch_ids: list[str], now: float) -> None:
        # Only batches still running: one that ended meanwhile keeps its terminal state, and an already
        # interrupted one keeps its updated_at (the time it last made progress or was first found dead).
        conn.executemany(
            "UPDATE wi_batch SET state = 'interrupted', updated_at = ? "
            "WHERE batch_id = ? AND state IN ('pending', 'active', 'collecting')",
            ((now, b) for b in batch_ids),
        )


# ------------------------------------------------------------------------------------------------ helpers

# Column order shared by get_batch and list_batches (see _batch_summary).
_BATCH_COLUMNS = (
    "id, batch_id, batch_name, mode, client_id, created_at, updated_at, state, grid, axes, meta, plan, warnings, "
    "n_total, n_done, n_failed, n_cancelled"
)


def _batch_summary(row: Sequence[Any]) -> dict[str, Any]:
    total, done, failed, cancelled = row[13], row[14], row[15], row[16]
    return {
        "batch_id": row[1],
        "batch_name": row[2],
        "mode": row[3],
        "state": row[7],
        "created_at": row[5],
        "updated_at": row[6],
        "counts": {
            "total": total,
            "done": done,
            "failed": failed,
            "cancelled": cancelled,
            "pending": total - done - failed - cancelled,
        },
        "grid": _loads(row[8], None),
    }


def _marks(values: Iterable[Any]) -> str:
    return ", ".join("?" for _ in values)


def _is_environment_error(e: sqlite3.DatabaseError) -> bool:
    """True for errors about permissions, locks, I/O or space, not about the file's content.

    Uses the SQLite result code (extended codes included) when Python exposes it (3.11+); before that,
    ``OperationalError`` is the class SQLite's environment errors map to, while "not a database" and
    "malformed" arrive as plain ``DatabaseError``.
    """
    if isinstance(e, _ForeignDatabase):
        return False
    name: str | None = getattr(e, "sqlite_errorname", None)
    if not name:
        return isinstance(e, sqlite3.OperationalError)
    return any(name == code or name.startswith(code + "_") for code in _ENVIRONMENT_ERRORS)


class _write_txn:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error (connections run in autocommit mode)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        elif self._conn.in_transaction:
            self._conn.execute("ROLLBACK")


class _read_txn:
    """A deferred read transaction: every SELECT inside sees one snapshot."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN")
        return self._conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._conn.in_transaction:
            self._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
