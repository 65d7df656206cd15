"""Batch lifecycle state shared by the interceptor, the nodes and the routes.

Owns one in-memory store of sweeps ("batches"): their lifecycle state machine (:class:`BatchStatus`), per-cell
progress (:class:`CellStatus`), a ``prompt_id -> (batch_id, index)`` index, lazy expiry, a bounded store of
finished batches, and change notifications to listeners. Everything goes through one
:class:`IterationStateManager`, normally the process-wide one from :func:`get_manager`.

Concurrency model (after ``concurrent.futures``):

* One non-reentrant ``threading.Lock`` guards all state. No I/O, no listener call and no logging of payloads
  happens while it is held.
* Callers never see the internal ``_Batch`` records; they receive frozen snapshots (:class:`BatchState`) or
  plain JSON-ready dicts, both built under the lock.
* Every lifecycle change goes through ``_transition()``, which checks :data:`ALLOWED_TRANSITIONS` and raises
  :class:`~.errors.InvalidBatchState` on anything else.
* The call that ends the last cell of a batch is the only one that gets ``True`` back, however many threads
  report at once and however often a cell is reported.
* Notifications are queued under the lock and delivered afterwards, in the order they were queued, by one
  thread at a time (a listener that calls back into the manager does not deadlock; its own notifications are
  delivered right after the current ones).
* Expiry is lazy: each public call first expires batches not updated for ``max_age_s`` seconds of the injected
  monotonic clock (through ``_transition()``, then drops them with their prompt ids); there is no background
  thread. At most ``max_finished`` finished batches are kept; the oldest finished are evicted first.

The process-wide manager comes from :func:`get_manager` (same as ``IterationStateManager.instance()``): created
lazily under a module-level lock, exactly once however many threads ask. ``_reset_for_tests()`` forgets it so
the next call builds a fresh one; only tests call it. Tests may also build private managers with a fake clock.

Plain Python, standard library only: must not import torch, comfy*, server, nodes, execution, folder_paths,
comfy_execution or aiohttp.
"""
from __future__ import annotations

import logging
import operator
import re
import sys
import threading
import time
import uuid
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType, SimpleNamespace
from typing import Any, Protocol, TypeVar

from .errors import InvalidBatchState, UnknownBatchError
from .outputs import KINDS, Origin, origin
from .paths import new_batch_id, sanitize_batch_name  # the naming rule lives in paths; re-exported here
from .states import ALLOWED_TRANSITIONS, CELL_OPEN, RUNNING_STATES, TERMINAL, BatchStatus, CellStatus
from .values import format_label, json_value

logger = logging.getLogger(__name__)

__all__ = [
    "ALLOWED_TRANSITIONS",
    "AxisInfo",
    "BatchState",
    "BatchStatus",
    "CancelResult",
    "CellCounts",
    "CellState",
    "CellStatus",
    "ImageRef",
    "IterationStateManager",
    "PromptIds",
    "Listener",
    "TERMINAL",
    "Timings",
    "get_manager",
    "new_batch_id",
    "sanitize_batch_name",
]


# --------------------------------------------------------------------------------------------------- statuses
# Owned by core/states.py (shared with the journal); re-exported here for the manager's callers.

# The storage code of each cell status: its position in CellStatus (one byte per cell in a batch).
_STATUS_BY_CODE: tuple[CellStatus, ...] = tuple(CellStatus)
_CODE: Mapping[CellStatus, int] = MappingProxyType({status: code for code, status in enumerate(_STATUS_BY_CODE)})
_QUEUED, _RUNNING = _CODE[CellStatus.QUEUED], _CODE[CellStatus.RUNNING]
_OPEN_CODES = frozenset(_CODE[s] for s in CELL_OPEN)
_RUNNING_STATES = RUNNING_STATES

_MAX_TEXT = 2000  # error texts / str() fallbacks are cut here so a stray traceback or repr cannot bloat status
_MAX_DEPTH = 32
_BATCH_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,100}")


# ------------------------------------------------------------------------------------------- duck-typed inputs


class CombinationLike(Protocol):
    """What the manager needs from a combination (``combination_engine.Combination`` fits)."""

    @property
    def index(self) -> int: ...

    @property
    def coords(self) -> tuple[int, ...]: ...

    @property
    def values(self) -> tuple[Any, ...]: ...


class AxisLike(Protocol):
    """What the manager needs from an axis (``combination_engine.Axis`` fits; ``labels`` is optional)."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def values(self) -> tuple[Any, ...]: ...


Listener = Callable[[str, dict[str, Any]], None]


# ------------------------------------------------------------------------------------------------- snapshots


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A saved image, as ComfyUI's UI output names it (never pixel data)."""

    filename: str
    subfolder: str = ""
    type: str = "output"
    # Node, kind and media type (core.outputs): one shared object per node and kind, so a cell pays a pointer.
    origin: Origin | None = None

    def as_dict(self) -> dict[str, str]:
        out = {"filename": self.filename, "subfolder": self.subfolder, "type": self.type}
        if self.origin is not None:
            out.update(node_id=self.origin.node_id, kind=self.origin.kind, media_type=self.origin.media_type)
        return out


@dataclass(frozen=True, slots=True)
class AxisInfo:
    """An axis as stored with the batch: raw values plus the text labels shown to users."""

    name: str
    type: str
    values: tuple[Any, ...]
    labels: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """``values`` typed as JSON (numbers stay numbers), ``labels`` the text shown for them."""
        return {"name": self.name, "type": self.type, "values": [_json_ready(v) for v in self.values],
                "labels": list(self.labels)}


@dataclass(frozen=True, slots=True)
class CellCounts:
    """Cell tallies of a batch; ``pending`` counts queued cells."""

    total: int
    done: int
    failed: int
    cancelled: int
    pending: int
    running: int
    skipped: int = 0

    @property
    def ended(self) -> int:
        return self.done + self.failed + self.cancelled + self.skipped

    def as_dict(self) -> dict[str, int]:
        return {
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "pending": self.pending,
            "running": self.running,
            "skipped": self.skipped,
        }


@dataclass(frozen=True, slots=True)
class Timings:
    """Progress maths of a batch, in seconds of the manager's monotonic clock."""

    elapsed_s: float
    seconds_per_cell: float | None  # mean of measured durations of done cells; None before the first one
    eta_s: float | None  # seconds_per_cell * (pending + running); 0.0 when nothing is left; None if unknown

    def as_dict(self) -> dict[str, float | None]:
        return {"elapsed_s": self.elapsed_s, "seconds_per_cell": self.seconds_per_cell, "eta_s": self.eta_s}


@dataclass(frozen=True, slots=True)
class CellState:
    """Frozen view of one cell. ``started_at`` / ``ended_at`` are wall-clock epoch seconds."""

    index: int
    coords: tuple[int, ...]
    values: tuple[Any, ...]
    status: CellStatus
    error: str | None
    prompt_id: str | None
    files: tuple[ImageRef, ...]
    metadata: Mapping[str, Any]
    started_at: float | None
    ended_at: float | None
    worker: str | None = None  # id of the worker that ran / runs the cell (issue 14); None: not dispatched

    def as_dict(self, axes: Sequence[AxisInfo], *, with_values: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "coords": list(self.coords)}
        if with_values:
            names = [a.name for a in axes] if axes else [str(i) for i in range(len(self.values))]
            out["values"] = {name: _json_ready(value) for name, value in zip(names, self.values)}
        return out | {
            "status": self.status.value,
            "error": self.error,
            "prompt_id": self.prompt_id,
            "files": [f.as_dict() for f in self.files],
            "metadata": _thaw(self.metadata),
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "worker": self.worker,
        }


@dataclass(frozen=True, slots=True)
class CancelResult:
    """What :meth:`IterationStateManager.cancel` did."""

    cancelled_ids: list[str]  # prompt ids of the cells it cancelled (queued ones, removed from ComfyUI's queue)
    running: list[str]  # prompt ids left open because ComfyUI was running them; their ends come from ComfyUI
    ended: bool  # no open cell is left: the caller builds the partial grid


@dataclass(frozen=True, slots=True)
class BatchState:
    """Frozen snapshot of a batch, taken under the manager's lock.

    ``cells`` holds the cells of the page the snapshot was taken with (every cell by default; none with
    ``include_cells=False``); ``cell_statuses`` is then the status of every cell as one character each (see
    :data:`CELL_STATUS_CHARS`). ``created_at`` and ``updated_at`` are wall-clock epoch seconds. Mappings are
    read-only proxies over private copies, so nothing here changes when the batch changes later.
    """

    batch_id: str
    batch_name: str
    mode: str
    client_id: str | None
    total: int
    state: BatchStatus
    created_at: float
    updated_at: float
    counts: CellCounts
    axes: tuple[AxisInfo, ...]
    page: _CellPage | None
    grid: Mapping[str, Any] | None
    warnings: tuple[str, ...]
    meta: Mapping[str, Any]
    timings: Timings
    workers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # per worker: name, state, counts, excluded

    @property
    def finished(self) -> bool:
        """True once every cell has ended (collecting, complete) or the batch was cancelled/expired."""
        return self.state not in _RUNNING_STATES

    @property
    def cells(self) -> tuple[CellState, ...]:
        return self.page.cells() if self.page is not None else ()

    @property
    def cell_statuses(self) -> str:
        return self.page.status_chars() if self.page is not None else ""

    def as_dict(self, *, include_cells: bool = True, with_values: bool = True, include_axes: bool = True
                ) -> dict[str, Any]:
        """The JSON-ready status dict (summary without ``cells``).

        With ``with_values=False`` cells carry only their coordinates: a value lives once, on its axis
        (``axes[i].values[coords[i]]``), however many cells share it — what the HTTP detail route serves.
        """
        out: dict[str, Any] = {
            "batch_id": self.batch_id,
            "batch_name": self.batch_name,
            "mode": self.mode,
            "state": self.state.value,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "client_id": self.client_id,
            "total": self.total,
            "counts": self.counts.as_dict(),
            "grid": _thaw(self.grid) if self.grid is not None else None,
            "warnings": list(self.warnings),
            "meta": _thaw(self.meta),
            "timings": self.timings.as_dict(),
            "workers": {worker_id: dict(info) for worker_id, info in self.workers.items()},
        }
        if include_axes:  # a batch list leaves them out: its summaries stay small whatever the axes hold
            out["axes"] = [a.as_dict() for a in self.axes]
        if include_cells:
            page = self.page
            out["cells"] = [c.as_dict(self.axes, with_values=with_values) for c in self.cells]
            if page is not None:
                out["cells_page"] = {"offset": page.start, "count": page.stop - page.start, "total": self.total}
                out["cell_statuses"] = page.status_chars()
        return out


#: One character per cell status in ``cell_statuses``: queued, running, done, failed, cancelled.
CELL_STATUS_CHARS = "qrdfcs"
_STATUS_CHAR_TABLE = bytes.maketrans(bytes(range(len(CELL_STATUS_CHARS))), CELL_STATUS_CHARS.encode("ascii"))


_V = TypeVar("_V")


def _page_of(entries: dict[int, _V], start: int, stop: int) -> dict[int, _V]:
    """The entries of cells ``start .. stop``: a page of a big batch copies its own, not every done cell's."""
    if stop - start >= len(entries):
        return dict(entries)
    return {index: entries[index] for index in range(start, stop) if index in entries}


@dataclass(frozen=True, slots=True)
class _CellPage:
    """Cells ``start .. stop`` of a batch, copied under the lock with C-speed copies only (arrays, dicts,
    bytes), so even a 100,000-cell snapshot holds the lock for milliseconds; :meth:`cells` builds the records
    afterwards, outside it."""

    start: int
    stop: int
    combinations: Sequence[Any]
    created_at: float
    created_mono: float
    status: bytes
    started: array[float] | None
    ended: array[float] | None
    runs: bytes | None
    prefixes: tuple[str, ...]
    explicit_ids: dict[int, str]
    errors: dict[int, str]
    files: dict[int, tuple[ImageRef, ...]]
    metadata: dict[int, Any]
    cancelled_mono: float | None
    cell_workers: dict[int, str] = field(default_factory=dict)

    @classmethod
    def copy_of(cls, batch: _Batch, start: int, stop: int) -> _CellPage:
        return cls(
            start=start,
            stop=stop,
            combinations=batch.combinations,
            created_at=batch.created_at,
            created_mono=batch.created_mono,
            status=bytes(batch.status),
            started=array("d", batch.started) if batch.started is not None else None,
            ended=array("d", batch.ended) if batch.ended is not None else None,
            runs=bytes(batch.runs) if batch.runs is not None else None,
            prefixes=tuple(batch.prefixes),
            explicit_ids=_page_of(batch.explicit_ids, start, stop),
            errors=_page_of(batch.errors, start, stop),
            files=_page_of(batch.files, start, stop),
            metadata={i: _freeze(m) for i, m in batch.metadata.items() if start <= i < stop},
            cancelled_mono=batch.cancelled_mono,
            cell_workers=_page_of(batch.cell_workers, start, stop),
        )

    def status_chars(self) -> str:
        return self.status.translate(_STATUS_CHAR_TABLE).decode("ascii")

    def _wall(self, column: array[float] | None, index: int) -> float | None:
        value = column[index] if column is not None else _NAN
        return None if value != value else self.created_at + (value - self.created_mono)

    def _prompt_id(self, index: int) -> str | None:
        explicit = self.explicit_ids.get(index)
        if explicit is not None:
            return explicit
        run = self.runs[index] if self.runs is not None else 0
        return f"{self.prefixes[run - 1]}{index:012x}" if run else None

    def cells(self) -> tuple[CellState, ...]:
        empty: Mapping[str, Any] = MappingProxyType({})
        records = []
        cancelled = _CODE[CellStatus.CANCELLED]
        cancel_at = None if self.cancelled_mono is None else self.created_at + (self.cancelled_mono - self.created_mono)
        for index in range(self.start, self.stop):
            combination = self.combinations[index]
            code = self.status[index]
            error = self.errors.get(index)
            ended_at = self._wall(self.ended, index)
            if code == cancelled and error is None and ended_at is None:  # cancelled with its batch
                error, ended_at = BATCH_CANCELLED, cancel_at
            records.append(
                CellState(
                    index=index,
                    coords=tuple(int(c) for c in combination.coords),
                    values=tuple(combination.values),
                    status=_STATUS_BY_CODE[code],
                    error=error,
                    prompt_id=self._prompt_id(index),
                    files=self.files.get(index, ()),
                    metadata=self.metadata.get(index, empty),
                    started_at=self._wall(self.started, index),
                    ended_at=ended_at,
                    worker=self.cell_workers.get(index),
                )
            )
        return tuple(records)


# ------------------------------------------------------------------------------------------ internal records

_NAN = float("nan")
#: The error of a cell that a batch cancel ended (stored once per batch, not per cell).
BATCH_CANCELLED = "batch cancelled"


class PromptIds:
    """Prompt ids for one feeding run of a batch: a random UUID-shaped prefix plus the cell index in hex.

    The one owner of the prompt-id format. Ids are canonical lower-case UUIDs (what newer ComfyUI requires of
    client-chosen ids), unique across batches and runs, a fraction of ``uuid4``'s cost per cell, and let the
    manager find the cell of an id without storing one string per cell: it keeps the prefix once per run.
    """

    PREFIX_LENGTH = 24

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix if prefix is not None else str(uuid.uuid4())[: self.PREFIX_LENGTH]

    def for_cell(self, index: int) -> str:
        return f"{self.prefix}{index:012x}"

    @classmethod
    def split(cls, prompt_id: str) -> tuple[str, int] | None:
        """``(prefix, index)`` of an id in this format, else None."""
        if len(prompt_id) != cls.PREFIX_LENGTH + 12:
            return None
        tail = prompt_id[cls.PREFIX_LENGTH:]
        try:
            return prompt_id[: cls.PREFIX_LENGTH], int(tail, 16)
        except ValueError:
            return None


class _Held:
    """``with manager._locked() as now``: the manager's lock, held after lazy expiry; queued notifications
    delivered once it is released (also when the body raises). A class rather than a generator context
    manager: it is entered several times per cell, some of them on ComfyUI's worker between two prompts."""

    __slots__ = ("_manager",)

    def __init__(self, manager: "IterationStateManager") -> None:
        self._manager = manager

    def __enter__(self) -> float:
        manager = self._manager
        manager._lock.acquire()
        try:
            now = manager._clock()
            manager._expire_locked(now)
        except BaseException:
            manager._lock.release()
            manager._flush()
            raise
        return now

    def __exit__(self, *exc: object) -> None:
        self._manager._lock.release()
        self._manager._flush()


@dataclass(slots=True, eq=False)
class _Batch:
    """One batch, stored by column: what every cell has (a status byte, and once cells run their times) in
    compact arrays, what only some cells have (an error, files, an id of another format) in dicts. A queued
    cell costs one byte; its coordinates and values come from the lazy ``combinations``. Creating a batch is
    therefore O(1) in the number of cells."""

    batch_id: str
    batch_name: str
    mode: str
    client_id: str | None
    combinations: Sequence[Any]
    axes: tuple[AxisInfo, ...]
    total: int
    meta: dict[str, Any]
    warnings: list[str]
    created_at: float  # wall clock
    created_mono: float
    updated_mono: float
    seq: int  # creation order, for newest-first listings
    status: bytearray  # _CODE of each cell
    counts: list[int]  # cells per status code
    state: BatchStatus = BatchStatus.PENDING
    grid: dict[str, Any] | None = None
    finished_mono: float | None = None  # when the batch left pending/active
    started: array[float] | None = None  # manager clock per cell, NaN until it runs (allocated on first run)
    ended: array[float] | None = None
    runs: bytearray | None = None  # which of ``prefixes`` (1-based) made the cell's prompt id; 0: none
    prefixes: list[str] = field(default_factory=list)
    explicit_ids: dict[int, str] = field(default_factory=dict)  # prompt ids of other formats
    errors: dict[int, str] = field(default_factory=dict)
    files: dict[int, tuple[ImageRef, ...]] = field(default_factory=dict)
    metadata: dict[int, dict[str, Any]] = field(default_factory=dict)
    live: set[int] = field(default_factory=set)  # open cells that have a prompt id (queued in ComfyUI or running)
    cancelling: bool = False  # between a cancel's two steps: the cancel, not a cell end, decides the batch's end
    cancelled_mono: float | None = None  # when a cancel ended the cells it cancelled (their ended time, no error row)
    summary: tuple[tuple[float, int], dict[str, Any]] | None = None  # list_batches' dict, by (update, second)
    done_seconds: float = 0.0  # sum of measured durations of done cells
    done_measured: int = 0
    # Issue 14: the worker of each dispatched cell (sparse: only cells sent to a worker of a multi-server batch),
    # and per worker its name, state and why it was excluded for this batch.
    cell_workers: dict[int, str] = field(default_factory=dict)
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def worker_summary(self) -> dict[str, dict[str, Any]]:
        """``{worker_id: {name, state, running, done, failed, excluded}}`` (the status contract of issue 14)."""
        if not self.workers and not self.cell_workers:
            return {}
        tallies: dict[str, dict[str, int]] = {}
        names = {_CODE[CellStatus.RUNNING]: "running", _CODE[CellStatus.DONE]: "done", _CODE[CellStatus.FAILED]: "failed"}
        for index, worker_id in self.cell_workers.items():
            tally = tallies.setdefault(worker_id, {"running": 0, "done": 0, "failed": 0})
            key = names.get(self.status[index])
            if key is not None:
                tally[key] += 1
        out: dict[str, dict[str, Any]] = {}
        for worker_id in [*self.workers, *(w for w in tallies if w not in self.workers)]:
            info = self.workers.get(worker_id, {})
            out[worker_id] = {"name": str(info.get("name", worker_id)), "state": str(info.get("state", "idle")),
                              **tallies.get(worker_id, {"running": 0, "done": 0, "failed": 0}),
                              "excluded": info.get("excluded")}
        return out

    def wall(self, mono: float | None) -> float | None:
        """Map a manager-clock reading to wall-clock seconds, anchored at creation."""
        return None if mono is None or mono != mono else self.created_at + (mono - self.created_mono)

    def prompt_id(self, index: int) -> str | None:
        explicit = self.explicit_ids.get(index)
        if explicit is not None:
            return explicit
        run = self.runs[index] if self.runs is not None else 0
        return f"{self.prefixes[run - 1]}{index:012x}" if run else None

    def time_of(self, column: array[float] | None, index: int) -> float | None:
        if column is None:
            return None
        value = column[index]
        return None if value != value else value

    def set_status(self, index: int, new: CellStatus, now: float) -> None:
        code = _CODE[new]
        self.counts[self.status[index]] -= 1
        self.counts[code] += 1
        self.status[index] = code
        if new is CellStatus.RUNNING:
            if self.started is None:
                self.started = array("d", [_NAN]) * self.total
            self.started[index] = now
        elif new is not CellStatus.QUEUED:
            if self.ended is None:
                self.ended = array("d", [_NAN]) * self.total
            self.ended[index] = now
            started = self.time_of(self.started, index)
            if new is CellStatus.DONE and started is not None:
                self.done_seconds += max(0.0, now - started)
                self.done_measured += 1

    def open_prompt_ids(self) -> list[str]:
        """Prompt ids of the cells queued or running (at most the feeder's window: ``live`` is small)."""
        found = []
        for index in sorted(self.live):
            prompt_id = self.prompt_id(index)
            if prompt_id is not None:
                found.append(prompt_id)
        return found


# ---------------------------------------------------------------------------------------------- conversions


def _short_str(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "\u2026"


def _json_ready(value: Any) -> Any:
    """A JSON-ready deep copy of ``value``: the pack's one converter, :func:`core.values.json_value`."""
    return json_value(value)


def _json_mapping(value: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a mapping, not {type(value).__name__}")
    result: dict[str, Any] = _json_ready(value)
    return result


def _freeze(value: Any) -> Any:
    """Deep read-only copy of a JSON-ready value (dict -> MappingProxyType, list -> tuple)."""
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """Inverse of :func:`_freeze`: fresh dicts and lists a caller may mutate or serialise."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _origin_of(item: Mapping[str, Any]) -> Origin | None:
    """The typed origin a reference carries (``node_id``/``kind``/``media_type``), or None for a bare one."""
    kind = item.get("kind")
    if kind not in KINDS:
        return None
    return origin(str(item.get("node_id") or ""), str(kind), str(item.get("media_type") or ""))


def _image_refs(images: Iterable[Mapping[str, Any]] | None) -> tuple[ImageRef, ...]:
    """Validate image references; only ``filename``/``subfolder``/``type`` and the typed origin are kept."""
    if images is None:
        return ()
    if isinstance(images, (Mapping, str, bytes)) or not isinstance(images, Iterable):
        raise TypeError("images must be a sequence of {filename, subfolder, type} mappings")
    refs: list[ImageRef] = []
    for item in images:
        if not isinstance(item, Mapping) or "filename" not in item:
            raise TypeError(f"image reference must be a mapping with a filename, not {type(item).__name__}")
        refs.append(
            ImageRef(
                filename=str(item["filename"]),
                # Every cell of a batch names the same folder and type: one string for all of them.
                subfolder=sys.intern(str(item.get("subfolder") or "")),
                type=sys.intern(str(item.get("type") or "output")),
                origin=_origin_of(item),
            )
        )
    return tuple(refs)


def _axis_info(axis: AxisLike) -> AxisInfo:
    values = tuple(axis.values)
    labels_raw = getattr(axis, "labels", None)
    if labels_raw is None:
        labels = tuple(format_label(v, str(getattr(axis, "type", "STRING"))) for v in values)
    else:
        labels = tuple(str(label) for label in labels_raw)
        if len(labels) != len(values):
            raise ValueError(f"axis {axis.name!r} has {len(values)} values but {len(labels)} labels")
    return AxisInfo(name=str(axis.name), type=str(getattr(axis, "type", "STRING")), values=values, labels=labels)


def _warning_list(value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise TypeError("warnings must be a list of strings")
    return [_short_str(v) for v in value]


def _check_index(index: int) -> int:
    i = operator.index(index)
    if i < 0:
        raise IndexError(f"cell index {index} out of range")
    return i


# --------------------------------------------------------------------------------------------------- manager

_instance: IterationStateManager | None = None
_instance_lock = threading.Lock()


class IterationStateManager:
    """Thread-safe store of batches and their cells; see the module docstring for the concurrency model.

    Events delivered to listeners as ``fn(event, payload)`` (payloads are fresh JSON-ready dicts; every one
    carries ``batch_id`` and ``client_id``):

    * ``batch_created`` ``{batch_id, batch_name, mode, total, client_id}``
    * ``cell_ended`` ``{batch_id, index, status, error, counts, client_id}``
    * ``batch_finished`` ``{batch_id, state, grid, counts, client_id}`` - state ``collecting`` when the last cell
      ends, ``complete`` (or ``cancelled``, for a partial grid) when the grid is stored
    * ``batch_cancelled`` ``{batch_id, removed, counts, client_id}``
    * ``batch_expired`` ``{batch_id, state: "expired", previous_state, client_id}``

    Args:
        clock: Monotonic clock for expiry, durations and ordering (injectable for tests).
        wall_clock: Epoch clock for ``created_at`` and the wall-clock timestamps derived from it.
        max_age_s: A batch not updated for longer than this is expired and dropped on the next call.
        max_finished: How many finished batches (collecting, complete, cancelled) are kept; the oldest finished
            are evicted first.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        max_age_s: float = 3600.0,
        max_finished: int = 200,
    ) -> None:
        if not max_age_s > 0:
            raise ValueError("max_age_s must be positive")
        if max_finished < 1:
            raise ValueError("max_finished must be at least 1")
        self._clock = clock
        self._wall_clock = wall_clock
        self._max_age_s = float(max_age_s)
        self._max_finished = int(max_finished)
        self._lock = threading.Lock()  # non-reentrant on purpose: re-entry under the lock is a bug
        self._batches: OrderedDict[str, _Batch] = OrderedDict()  # least recently updated first
        self._finished: OrderedDict[str, None] = OrderedDict()  # oldest finished first
        self._prompts: dict[str, tuple[str, int]] = {}  # prompt ids not made by a registered PromptIds
        self._prefixes: dict[str, _Batch] = {}  # PromptIds prefix -> its batch
        self._listeners: list[Listener] = []
        self._outbox: list[tuple[str, dict[str, Any]]] = []
        self._delivering = False
        self._seq = 0
        self._oldest_update = float("inf")  # a lower bound of the oldest batch's last update (see _expire_locked)
        self._changes = 0  # bumped by every mutation: lets readers cache what they derived from a state

    # ---------------------------------------------------------------------------------------------- singleton

    @classmethod
    def instance(cls) -> IterationStateManager:
        """Return the process-wide manager, creating it on first use (double-checked locking)."""
        global _instance
        manager = _instance
        if manager is None:
            with _instance_lock:
                manager = _instance
                if manager is None:
                    manager = cls()
                    _instance = manager
        return manager

    # ----------------------------------------------------------------------------------------------- plumbing

    def _locked(self) -> "_Held":
        """Hold the lock (after lazy expiry) for the body; deliver queued notifications after release."""
        return _Held(self)

    def _flush(self) -> None:
        """Deliver queued notifications in order, outside the lock, from one thread at a time."""
        # Most calls emit nothing: skip the second lock acquisition then. Reading the list unlocked is safe
        # because whoever appends to it calls _flush itself after releasing the lock.
        if not self._outbox:
            return
        while True:
            with self._lock:
                if self._delivering or not self._outbox:
                    return
                self._delivering = True
                pending, self._outbox = self._outbox, []
                listeners = tuple(self._listeners)
            try:
                for event, payload in pending:
                    logger.debug("event %s for batch %s", event, payload.get("batch_id"))
                    for fn in listeners:
                        try:
                            fn(event, payload)
                        except Exception:
                            logger.exception("listener %r failed on event %s", fn, event)
            finally:
                with self._lock:
                    self._delivering = False

    def _emit_locked(self, event: str, payload: dict[str, Any]) -> None:
        self._outbox.append((event, payload))

    def _transition(self, batch: _Batch, new: BatchStatus, now: float) -> None:
        """The only place a batch changes lifecycle state. Caller holds the lock.

        Raises:
            InvalidBatchState: ``new`` is not reachable from the current state.
        """
        old = batch.state
        if new not in ALLOWED_TRANSITIONS[old]:
            raise InvalidBatchState(
                f'batch "{batch.batch_id}" is {old.value} and cannot become {new.value}'
            )
        batch.state = new
        if old in _RUNNING_STATES and new not in _RUNNING_STATES and new is not BatchStatus.EXPIRED:
            batch.finished_mono = now
            self._finished[batch.batch_id] = None
            self._evict_locked()

    def _evict_locked(self) -> None:
        while len(self._finished) > self._max_finished:
            batch_id = next(iter(self._finished))
            self._remove_locked(batch_id)

    def _remove_locked(self, batch_id: str) -> bool:
        self._changes += 1
        batch = self._batches.pop(batch_id, None)
        self._finished.pop(batch_id, None)
        if batch is None:
            return False
        for index, prompt_id in batch.explicit_ids.items():
            if self._prompts.get(prompt_id) == (batch_id, index):
                del self._prompts[prompt_id]
        for prefix in batch.prefixes:
            if self._prefixes.get(prefix) is batch:
                del self._prefixes[prefix]
        return True

    def _expire_locked(self, now: float) -> None:
        # Every public call comes here, several per cell: skip the scan until the oldest batch can be due. Its
        # last update only moves forward (or it leaves), so a due time noted here is never later than the real.
        if now - self._max_age_s <= self._oldest_update:
            return
        # _batches is ordered by last update, so only the stale prefix is visited.
        while self._batches:
            batch = next(iter(self._batches.values()))
            if now - batch.updated_mono <= self._max_age_s:
                self._oldest_update = batch.updated_mono
                return
            previous = batch.state
            self._transition(batch, BatchStatus.EXPIRED, now)
            self._remove_locked(batch.batch_id)
            self._emit_locked(
                "batch_expired",
                {
                    "batch_id": batch.batch_id,
                    "state": BatchStatus.EXPIRED.value,
                    "previous_state": previous.value,
                    "client_id": batch.client_id,
                },
            )
        self._oldest_update = float("inf")  # every batch expired

    def _touch_locked(self, batch: _Batch, now: float) -> None:
        batch.updated_mono = now
        self._changes += 1
        self._batches.move_to_end(batch.batch_id)

    def _get_locked(self, batch_id: str) -> _Batch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise UnknownBatchError(batch_id)
        return batch

    @staticmethod
    def _check_cell(batch: _Batch, index: int) -> None:
        if index >= batch.total:
            raise IndexError(f'cell index {index} out of range for batch "{batch.batch_id}" of {batch.total}')

    @staticmethod
    def _counts(batch: _Batch) -> CellCounts:
        c = batch.counts
        return CellCounts(
            total=batch.total,
            done=c[_CODE[CellStatus.DONE]],
            failed=c[_CODE[CellStatus.FAILED]],
            cancelled=c[_CODE[CellStatus.CANCELLED]],
            pending=c[_QUEUED],
            running=c[_RUNNING],
            skipped=c[_CODE[CellStatus.SKIPPED]],
        )

    def _snapshot_locked(self, batch: _Batch, now: float, *, include_cells: bool, offset: int = 0,
                         limit: int | None = None) -> BatchState:
        """The batch's summary; with ``include_cells`` also the columns of cells ``offset .. offset+limit``
        (copied here, turned into :class:`CellState` records by :meth:`BatchState` users outside the lock)."""
        counts = self._counts(batch)
        spc = batch.done_seconds / batch.done_measured if batch.done_measured else None
        remaining = counts.pending + counts.running
        eta = 0.0 if remaining == 0 else (spc * remaining if spc is not None else None)
        end = batch.finished_mono if batch.finished_mono is not None else now
        page: _CellPage | None = None
        if include_cells:
            start = min(max(0, offset), batch.total)
            stop = batch.total if limit is None else min(batch.total, start + max(0, limit))
            page = _CellPage.copy_of(batch, start, stop)
        return BatchState(
            batch_id=batch.batch_id,
            batch_name=batch.batch_name,
            mode=batch.mode,
            client_id=batch.client_id,
            total=batch.total,
            state=batch.state,
            created_at=batch.created_at,
            updated_at=batch.created_at + (batch.updated_mono - batch.created_mono),
            counts=counts,
            axes=batch.axes,
            page=page,
            grid=_freeze(batch.grid) if batch.grid is not None else None,
            warnings=tuple(batch.warnings),
            meta=_freeze(batch.meta),
            timings=Timings(elapsed_s=max(0.0, end - batch.created_mono), seconds_per_cell=spc, eta_s=eta),
            workers=MappingProxyType(batch.worker_summary()),
        )

    # ------------------------------------------------------------------------------------------------ creation

    def create_batch(
        self,
        *,
        batch_name: str,
        mode: str,
        combinations: Sequence[CombinationLike],
        axes: Sequence[AxisLike] = (),
        client_id: str | None = None,
        meta: Mapping[str, Any] | None = None,
        batch_id: str | None = None,
        snapshot_cells: bool = True,
        skipped: Iterable[int] = (),
    ) -> BatchState:
        """Register a new batch in state ``pending`` with every cell ``queued``; emits ``batch_created``.

        Args:
            batch_name: User-facing name; its sanitised form prefixes the generated id.
            mode: ``"matrix"`` or ``"linear"`` (stored as given).
            combinations: Cells in order; ``combinations[i].index`` must equal ``i``. Read once, outside the lock.
            axes: Objects with ``name``, ``type``, ``values`` (optional ``labels``), aligned with each
                combination's ``values``.
            client_id: ComfyUI client id of the sender, passed along in every event.
            meta: Small JSON-ready metadata; a ``"warnings"`` entry (list of str) seeds the warnings list.
            batch_id: Explicit id (``[A-Za-z0-9_-]{1,100}``); generated as ``<sanitised name>_<8 hex>`` if None.
            snapshot_cells: False returns a snapshot without cells (cheap for 10,000-cell batches).
            skipped: Cells the skip list removed: created ``skipped`` (ended, never queued).

        Returns:
            A snapshot of the new batch, cells included.

        Raises:
            ValueError: No combinations, misnumbered combinations, values/axes mismatch, bad or taken batch_id.
            TypeError: ``meta`` is not a mapping.
        """
        axis_infos = tuple(_axis_info(a) for a in axes)
        total = len(combinations)
        if total == 0:
            raise ValueError("a batch needs at least one combination")
        # A materialised list is checked whole (it cost O(N) to build anyway); a lazy CombinationSet computes
        # each cell on demand and is correct by construction, so only its ends are spot-checked: O(1).
        positions: Iterable[int] = range(total) if isinstance(combinations, (list, tuple)) else {0, total - 1}
        for position in positions:
            combo = combinations[position]
            if combo.index != position:
                raise ValueError(f"combination at position {position} has index {combo.index}")
            if axis_infos and len(tuple(combo.values)) != len(axis_infos):
                raise ValueError(
                    f"combination {position} has {len(tuple(combo.values))} values for {len(axis_infos)} axes"
                )
        meta_ready = _json_mapping(meta, "meta")
        warnings = _warning_list(meta_ready.pop("warnings")) if "warnings" in meta_ready else []
        if batch_id is not None and not _BATCH_ID_RE.fullmatch(batch_id):
            raise ValueError(f"invalid batch id {batch_id!r}: use 1-100 characters of [A-Za-z0-9_-]")
        name = str(batch_name)

        with self._locked() as now:
            if batch_id is None:
                new_id = new_batch_id(name)
                while new_id in self._batches:
                    new_id = new_batch_id(name)
            elif batch_id in self._batches:
                raise ValueError(f'batch id "{batch_id}" is already in use')
            else:
                new_id = batch_id
            batch = self._new_batch_locked(new_id, name, str(mode), client_id, combinations, axis_infos,
                                           meta_ready, warnings, self._wall_clock(), now, now, skipped)
            snapshot = self._snapshot_locked(batch, now, include_cells=snapshot_cells)
            self._emit_locked(
                "batch_created",
                {"batch_id": new_id, "batch_name": name, "mode": batch.mode, "total": batch.total,
                 "client_id": client_id},
            )
        logger.debug("created batch %s with %d cells", new_id, total)
        return snapshot

    def _new_batch_locked(self, batch_id: str, name: str, mode: str, client_id: str | None,
                          combinations: Sequence[Any], axes: tuple[AxisInfo, ...], meta: dict[str, Any],
                          warnings: list[str], created_at: float, created_mono: float, now: float,
                          skipped: Iterable[int] = ()) -> _Batch:
        self._seq += 1
        total = len(combinations)
        counts = [0] * len(_STATUS_BY_CODE)
        status = bytearray(total)
        skipped_code = _CODE[CellStatus.SKIPPED]
        for index in skipped:
            if 0 <= index < total and status[index] != skipped_code:
                status[index] = skipped_code
                counts[skipped_code] += 1
        counts[_QUEUED] = total - counts[skipped_code]
        batch = _Batch(
            batch_id=batch_id, batch_name=name, mode=mode, client_id=client_id, combinations=combinations,
            axes=axes, total=total, meta=meta, warnings=warnings, created_at=created_at,
            created_mono=created_mono, updated_mono=now, seq=self._seq,
            status=status, counts=counts,
        )
        self._batches[batch_id] = batch
        self._oldest_update = min(self._oldest_update, now)
        self._changes += 1
        return batch

    def restore_batch(self, record: Mapping[str, Any], *, combinations: Sequence[CombinationLike] | None = None,
                      skipped: Iterable[int] = ()) -> BatchState:
        """Re-create a batch from its journal record (after a restart) in state ``interrupted``.

        ``combinations`` (the batch's plan) supplies every cell's coordinates and values; the record's
        ``cells`` then need to list only the cells that ended (a journal recorded without per-cell rows).

        Cells that had ended keep their status, error and files; the others are ``queued`` without a prompt
        id (prompt ids do not survive a restart). Emits ``batch_created``.

        Args:
            record: ``BatchJournal.get_batch()`` output: batch_id, batch_name, mode, client_id, created_at, axes
                [{name, type, values}], cells [{index, coords, values, status, error, files}], meta, warnings.

        Raises:
            ValueError: malformed record, or the batch id is already in use.
        """
        axes = tuple(
            _axis_info(SimpleNamespace(name=a["name"], type=a.get("type", "STRING"), values=tuple(a["values"]),
                                       labels=a.get("labels")))
            for a in record.get("axes", ())
        )
        raw_cells = sorted(record.get("cells", ()), key=lambda c: int(c["index"]))
        listed: list[Any] = []
        ended: list[tuple[int, CellStatus, str | None, tuple[ImageRef, ...]]] = []
        for position, raw in enumerate(raw_cells):
            if combinations is None and int(raw["index"]) != position:
                raise ValueError(f"journal record of {record.get('batch_id')!r} misses cell {position}")
            if combinations is not None and not 0 <= int(raw["index"]) < len(combinations):
                raise ValueError(f"journal record of {record.get('batch_id')!r} has no cell {raw['index']}")
            position = int(raw["index"])
            listed.append(SimpleNamespace(index=position, coords=tuple(int(c) for c in raw.get("coords", ())),
                                          values=tuple(raw.get("values", ()))))
            status = CellStatus(raw.get("status", "queued"))
            if status not in CELL_OPEN:
                files = _image_refs(raw.get("files") or ()) if status is CellStatus.DONE else ()
                ended.append((position, status, raw.get("error"), files))
        cells_of: Sequence[Any] = tuple(listed) if combinations is None else combinations
        if not cells_of:
            raise ValueError("a batch needs at least one combination")
        batch_id = str(record["batch_id"])
        if not _BATCH_ID_RE.fullmatch(batch_id):
            raise ValueError(f"invalid batch id {batch_id!r}")
        meta_ready = _json_mapping(record.get("meta") or {}, "meta")
        meta_ready.pop("warnings", None)
        created_at = float(record.get("created_at") or self._wall_clock())
        with self._locked() as now:
            if batch_id in self._batches:
                raise ValueError(f'batch id "{batch_id}" is already in use')
            batch = self._new_batch_locked(
                batch_id, str(record.get("batch_name", batch_id)), str(record.get("mode", "matrix")),
                record.get("client_id"), cells_of, axes, meta_ready,
                _warning_list(record.get("warnings") or []), created_at, now - max(0.0, self._wall_clock() - created_at),
                now, skipped)
            for index, status, error, files in ended:
                batch.set_status(index, status, now)
                if error is not None:
                    batch.errors[index] = str(error)
                if files:
                    batch.files[index] = files
            batch.state = BatchStatus.INTERRUPTED
            snapshot = self._snapshot_locked(batch, now, include_cells=False)
            self._emit_locked(
                "batch_created",
                {"batch_id": batch_id, "batch_name": batch.batch_name, "mode": batch.mode, "total": batch.total,
                 "client_id": batch.client_id, "restored": True},
            )
        return snapshot

    def resume_batch(self, batch_id: str) -> list[int]:
        """Start an ``interrupted`` batch again; returns the indices of the cells still to run.

        With cells left the batch becomes ``active``; with none left it becomes ``collecting`` (its grid was
        not built before the restart) and ``batch_finished`` is emitted.

        Raises:
            UnknownBatchError: unknown batch (404). InvalidBatchState: not interrupted (409).
        """
        with self._locked() as now:
            batch = self._get_locked(batch_id)
            if batch.state is not BatchStatus.INTERRUPTED:
                raise InvalidBatchState(f'batch "{batch_id}" is {batch.state.value}, not interrupted')
            todo = [index for index, code in enumerate(batch.status) if code in _OPEN_CODES]
            self._transition(batch, BatchStatus.ACTIVE if todo else BatchStatus.COLLECTING, now)
            self._touch_locked(batch, now)
            if not todo:
                self._emit_locked(
                    "batch_finished",
                    {"batch_id": batch_id, "state": BatchStatus.COLLECTING.value, "grid": None,
                     "counts": self._counts(batch).as_dict(), "client_id": batch.client_id},
                )
        return todo

    # ------------------------------------------------------------------------------------------------ prompts

    def prompt_ids(self, batch_id: str) -> PromptIds:
        """A new :class:`PromptIds` for one feeding run of the batch, registered so that its ids map back to
        their cells without one stored string per cell.

        Raises:
            UnknownBatchError: Unknown batch.
        """
        with self._locked():
            batch = self._get_locked(batch_id)
            ids = PromptIds()
            if len(batch.prefixes) >= 255:  # one byte per cell says which run: later runs store their ids
                return ids
            while ids.prefix in self._prefixes:
                ids = PromptIds()
            batch.prefixes.append(ids.prefix)
            self._prefixes[ids.prefix] = batch
            return ids

    def _owner_locked(self, prompt_id: str) -> tuple[_Batch, int] | None:
        found = self._prompts.get(prompt_id)
        if found is not None:
            batch = self._batches.get(found[0])
            return None if batch is None else (batch, found[1])
        split = PromptIds.split(prompt_id)
        if split is None:
            return None
        batch = self._prefixes.get(split[0])
        prefix, index = split
        if batch is None or batch.runs is None or index >= batch.total or index in batch.explicit_ids:
            return None
        if batch.runs[index] != batch.prefixes.index(prefix) + 1:
            return None
        return batch, index

    def attach_prompt(self, batch_id: str, index: int, prompt_id: str, *, only_if_open: bool = False) -> bool:
        """Record the ComfyUI prompt id queued for a cell; the first attach moves ``pending`` -> ``active``.

        Attaching again replaces the cell's previous id. Allowed while pending, active or collecting (a fast
        cell may end before its id is recorded). With ``only_if_open``, only while pending or active, and an
        unknown or closed batch returns False instead of raising: the feeder's check-and-attach under one
        lock acquisition, just before it queues the cell.

        Returns:
            True when attached.

        Raises:
            UnknownBatchError: Unknown (or expired / cleaned-up) batch.
            InvalidBatchState: The batch is complete or cancelled (the caller should drop the queued prompt).
            IndexError: No such cell.
            ValueError: ``prompt_id`` is empty or already attached to another cell.
        """
        if only_if_open:
            attached = self._attach_own_run(batch_id, index, prompt_id)
            if attached is not None:
                return attached
        index = _check_index(index)
        if not isinstance(prompt_id, str) or not prompt_id:
            raise ValueError("prompt_id must be a non-empty string")
        with self._locked() as now:
            if only_if_open:
                open_batch = self._batches.get(batch_id)
                if open_batch is None or open_batch.state not in (BatchStatus.PENDING, BatchStatus.ACTIVE):
                    return False
            batch = self._get_locked(batch_id)
            self._check_cell(batch, index)
            if batch.state in TERMINAL:
                raise InvalidBatchState(
                    f'batch "{batch_id}" is {batch.state.value}; cannot attach prompt {prompt_id}'
                )
            split = PromptIds.split(prompt_id)
            own_run = split is not None and split[1] == index and self._prefixes.get(split[0]) is batch
            if not own_run:  # an id of this batch's own run names this cell by construction: no owner to ask
                owner = self._owner_locked(prompt_id)
                if owner is not None and (owner[0] is not batch or owner[1] != index):
                    raise ValueError(f"prompt {prompt_id} is already attached to {owner[0].batch_id} cell {owner[1]}")
            self._attach_locked(batch, index, prompt_id, split[0] if own_run and split is not None else None, now)
        return True

    def _attach_locked(self, batch: _Batch, index: int, prompt_id: str, run_prefix: str | None, now: float) -> None:
        """Record ``prompt_id`` as the cell's id (``run_prefix``: it is that run's id of this cell, stored as the
        run's number instead of a string). The one place a cell's prompt id is written."""
        if batch.explicit_ids:
            previous = batch.explicit_ids.pop(index, None)
            if previous is not None and self._prompts.get(previous) == (batch.batch_id, index):
                del self._prompts[previous]
        if run_prefix is not None:
            if batch.runs is None:
                batch.runs = bytearray(batch.total)
            batch.runs[index] = batch.prefixes.index(run_prefix) + 1
        else:
            if batch.runs is not None:
                batch.runs[index] = 0
            batch.explicit_ids[index] = prompt_id
            self._prompts[prompt_id] = (batch.batch_id, index)
        if batch.status[index] in _OPEN_CODES:
            batch.live.add(index)
        if batch.state is BatchStatus.PENDING:
            self._transition(batch, BatchStatus.ACTIVE, now)
        self._touch_locked(batch, now)

    def _attach_own_run(self, batch_id: str, index: Any, prompt_id: Any) -> bool | None:
        """The feeder's case of :meth:`attach_prompt` (``only_if_open``, an id of the batch's own run naming
        this very cell), once per queued cell: no owner lookup is needed, so it is decided in one short lock
        hold. None when it is not that case (the general path then decides, and raises what it raises)."""
        split = PromptIds.split(prompt_id) if type(prompt_id) is str else None
        if split is None or type(index) is not int or split[1] != index:
            return None
        with self._lock:
            now = self._clock()
            self._expire_locked(now)
            batch = self._batches.get(batch_id)
            if batch is None or batch.state not in (BatchStatus.PENDING, BatchStatus.ACTIVE):
                return False
            if not 0 <= index < batch.total or self._prefixes.get(split[0]) is not batch:
                return None
            self._attach_locked(batch, index, prompt_id, split[0], now)
        self._flush()
        return True

    def lookup_prompt(self, prompt_id: str) -> tuple[str, int] | None:
        """Return ``(batch_id, index)`` for an attached prompt id, else None.

        Ids stay indexed (also after the cell ended or the batch was cancelled) until the batch is cleaned up,
        evicted or expired.
        """
        with self._locked():
            owner = self._owner_locked(str(prompt_id))
            return None if owner is None else (owner[0].batch_id, owner[1])

    def clock(self) -> float:
        """A reading of the manager's clock: what ``at`` of :meth:`mark_running` and the ``register_*`` calls
        takes, for an event noted now and recorded later."""
        return self._clock()

    def mark_running(self, batch_id: str, index: int, *, at: float | None = None) -> bool:
        """Move a queued cell to ``running`` and record its start time (``at``, a :meth:`clock` reading, when
        the start is recorded after it happened; never later than now).

        Ignored quietly (returns False) for unknown, finished or cancelled batches and for cells that are not
        queued. A pending batch becomes active.

        Raises:
            IndexError: No such cell in a live batch.
        """
        index = _check_index(index)
        with self._locked() as now:
            batch = self._batches.get(batch_id)
            if batch is None or batch.state not in _RUNNING_STATES:
                return False
            self._check_cell(batch, index)
            return self._start_locked(batch, index, now, now if at is None else min(at, now))

    def _start_locked(self, batch: _Batch, index: int, now: float, started: float) -> bool:
        if batch.state not in _RUNNING_STATES or batch.status[index] != _QUEUED:
            return False
        batch.set_status(index, CellStatus.RUNNING, started)
        if batch.state is BatchStatus.PENDING:
            self._transition(batch, BatchStatus.ACTIVE, now)
        self._touch_locked(batch, now)
        return True

    # ----------------------------------------------------------------------------------------- cell endings

    def register_result(
        self,
        batch_id: str,
        index: int,
        images: Iterable[Mapping[str, Any]] | None,
        metadata: Mapping[str, Any] | None = None,
        *,
        at: float | None = None,
    ) -> bool:
        """Mark a cell ``done`` with its saved image references and metadata.

        Args:
            batch_id: The batch.
            index: The cell.
            images: Image references ``{filename, subfolder, type}`` (other keys are dropped; never pixel data).
            metadata: Small JSON-ready dict; non-JSON values are stored as their ``str()`` (see ``_json_ready``).
            at: When it ended, a :meth:`clock` reading (an end recorded after it happened); default now.

        Returns:
            True for exactly one call per batch: the one that ends its last cell (the batch then becomes
            ``collecting``; for a cancelled batch: the end of the last cell it was still waiting for). False
            for every other call, including duplicates and reports for expired, finished, unknown or removed
            batches, which are discarded quietly.

        Raises:
            TypeError: ``images`` is not a sequence of mappings with a filename, or ``metadata`` not a mapping.
            IndexError: No such cell in a live batch.
        """
        refs = _image_refs(images)
        meta = _json_mapping(metadata, "metadata")
        return self._end_cell(batch_id, index, CellStatus.DONE, error=None, files=refs, metadata=meta, at=at)

    def register_failure(self, batch_id: str, index: int, reason: str, *, at: float | None = None) -> bool:
        """Mark a cell ``failed`` with ``reason`` (cut to 2000 characters); same rules as register_result."""
        return self._end_cell(batch_id, index, CellStatus.FAILED, error=_short_str(reason), files=(), metadata=None,
                              at=at)

    def register_cancelled(self, batch_id: str, index: int, reason: str, *, at: float | None = None) -> bool:
        """Mark one cell ``cancelled`` (e.g. removed by "Clear queue"); same rules as register_result."""
        return self._end_cell(
            batch_id, index, CellStatus.CANCELLED, error=_short_str(reason), files=(), metadata=None, at=at
        )

    def _end_cell(
        self,
        batch_id: str,
        index: int,
        status: CellStatus,
        *,
        error: str | None,
        files: tuple[ImageRef, ...],
        metadata: dict[str, Any] | None,
        at: float | None = None,
    ) -> bool:
        """The one way a cell ends with an outcome. A cancelled batch still takes the ends of the cells it
        left open (the ones ComfyUI was running when the cancel came): their record is what ComfyUI ran."""
        index = _check_index(index)
        with self._locked() as now:
            batch = self._batches.get(batch_id)
            if batch is None or (batch.state not in _RUNNING_STATES and batch.state is not BatchStatus.CANCELLED):
                return False
            self._check_cell(batch, index)
            if batch.status[index] not in _OPEN_CODES:
                return False  # duplicate report: the first one counted
            ended = now if at is None else min(at, now)
            batch.set_status(index, status, ended)
            batch.live.discard(index)
            if error is not None:
                batch.errors[index] = error
            if files:
                batch.files[index] = files
            if metadata:
                batch.metadata[index] = metadata
            self._touch_locked(batch, now)
            counts = self._counts(batch)
            self._emit_locked(
                "cell_ended",
                {
                    "batch_id": batch_id,
                    "index": index,
                    "status": status.value,
                    "error": error,
                    "prompt_id": batch.prompt_id(index),
                    "files": [f.as_dict() for f in files],
                    "ended_at": batch.wall(ended),
                    "worker": batch.cell_workers.get(index),
                    "counts": counts.as_dict(),
                    "client_id": batch.client_id,
                },
            )
            if counts.ended < counts.total:
                return False
            if batch.state is BatchStatus.CANCELLED:
                return not batch.cancelling  # its partial grid may be built now (unless the cancel decides)
            self._transition(batch, BatchStatus.COLLECTING, now)
            self._emit_locked(
                "batch_finished",
                {
                    "batch_id": batch_id,
                    "state": BatchStatus.COLLECTING.value,
                    "grid": None,
                    "counts": counts.as_dict(),
                    "client_id": batch.client_id,
                },
            )
            return True

    # ------------------------------------------------------------------------------------------ cancel / grid

    def cancel(self, batch_id: str, *, still_running: Callable[[Sequence[str]], Iterable[str]] | None = None,
               ) -> CancelResult:
        """Cancel a pending, active or interrupted batch: the one way a batch is cancelled.

        Two steps. First the batch becomes ``cancelled``, so no new prompt can be attached. Then
        ``still_running`` is called, outside the lock, with the prompt ids of its open cells: it removes them
        from ComfyUI's queue and returns the ids ComfyUI is running. Finally every open cell becomes
        ``cancelled`` except those running ones: they stay open until ComfyUI reports how they ended (an
        interrupt, or a success that came first), so a cell's record always matches what ComfyUI ran. Cell
        ends reported between the steps are recorded, but only the cancel decides whether they ended the batch.

        Returns:
            What was cancelled and whether the batch has no open cell left (``ended``: then the caller builds
            its partial grid; otherwise the end of the last running cell returns True).

        Raises:
            UnknownBatchError: Unknown batch (HTTP 404).
            InvalidBatchState: Already cancelled, collecting or complete (HTTP 409); a second cancel raises too.
        """
        with self._locked() as now:
            batch = self._get_locked(batch_id)
            self._transition(batch, BatchStatus.CANCELLED, now)
            batch.cancelling = True
            open_ids = batch.open_prompt_ids()
            self._touch_locked(batch, now)
        # Outside the manager's lock: the host takes ComfyUI's queue lock.
        try:
            running = set(still_running(open_ids)) if still_running is not None and open_ids else set()
        finally:
            with self._locked() as now:
                batch = self._get_locked(batch_id)
                batch.cancelling = False
                kept = sorted(index for index in batch.live if batch.prompt_id(index) in running)
                cancelled_ids = [pid for pid in (batch.prompt_id(i) for i in sorted(batch.live) if i not in kept) if pid]
                self._cancel_open_cells_locked(batch, kept, now)
                batch.live.intersection_update(kept)
                self._touch_locked(batch, now)
                counts = self._counts(batch)
                running_ids = [batch.prompt_id(i) or "" for i in kept]
                self._emit_locked(
                    "batch_cancelled",
                    {
                        "batch_id": batch_id,
                        "removed": cancelled_ids,
                        "running": kept,
                        "counts": counts.as_dict(),
                        "client_id": batch.client_id,
                    },
                )
        logger.info("cancelled batch %s (%d cells cancelled, %d left to end)", batch_id, counts.cancelled, len(kept))
        return CancelResult(cancelled_ids=cancelled_ids, running=running_ids,
                            ended=counts.ended == counts.total)

    @staticmethod
    def _cancel_open_cells_locked(batch: _Batch, kept: Sequence[int], now: float) -> None:
        """Every open cell but ``kept`` becomes cancelled, at C speed (a 100,000-cell batch in milliseconds):
        one byte rewrite, no row per cell; their error and end time are the batch's cancel."""
        saved = {index: batch.status[index] for index in kept}
        cancelled = _CODE[CellStatus.CANCELLED]
        batch.status[:] = batch.status.replace(bytes([_QUEUED]), bytes([cancelled])).replace(bytes([_RUNNING]), bytes([cancelled]))
        for index, code in saved.items():
            batch.status[index] = code
        moved = batch.counts[_QUEUED] + batch.counts[_RUNNING] - len(saved)
        batch.counts[_QUEUED] = sum(1 for code in saved.values() if code == _QUEUED)
        batch.counts[_RUNNING] = len(saved) - batch.counts[_QUEUED]
        batch.counts[cancelled] += moved
        batch.cancelled_mono = now

    def cancel_batch(self, batch_id: str) -> list[str]:
        """:meth:`cancel` without a queue to ask: every open cell becomes ``cancelled``.

        Returns:
            Prompt ids of the cells that had not ended (queued or running).
        """
        return self.cancel(batch_id).cancelled_ids

    def fail_unqueued(self, batch_id: str, reason: str) -> bool:
        """End every cell that never got a prompt id as ``failed`` with ``reason`` (the feeder stopped on an
        internal error). Returns True when that ended the batch's last open cell."""
        reason = _short_str(reason)
        with self._locked():
            batch = self._batches.get(batch_id)
            if batch is None or batch.state not in _RUNNING_STATES:
                return False
            todo = [i for i, code in enumerate(batch.status) if code == _QUEUED and batch.prompt_id(i) is None]
        last = False
        for index in todo:
            last = self.register_failure(batch_id, index, reason) or last
        return last

    def set_grid(self, batch_id: str, grid_info: Mapping[str, Any]) -> None:
        """Store the grid: ``collecting`` -> ``complete``, or a partial grid on a ``cancelled`` batch.

        Emits ``batch_finished`` with the resulting state and the grid.

        Raises:
            UnknownBatchError: Unknown batch.
            InvalidBatchState: Cells still running, already complete, or a cancelled batch already has a grid.
            TypeError: ``grid_info`` is not a mapping.
        """
        grid = _json_mapping(grid_info, "grid_info")
        with self._locked() as now:
            self._store_grid_locked(self._get_locked(batch_id), grid, now)

    def try_complete(self, batch_id: str, grid_info: Mapping[str, Any]) -> bool:
        """Like :meth:`set_grid`, but a grid that was already stored is not an error.

        Returns:
            True for the single call that stores the grid; False for every later call (the grid node may run
            again after a cache miss).

        Raises:
            UnknownBatchError: Unknown batch.
            InvalidBatchState: The batch is still pending or active.
            TypeError: ``grid_info`` is not a mapping.
        """
        grid = _json_mapping(grid_info, "grid_info")
        with self._locked() as now:
            batch = self._get_locked(batch_id)
            if batch.grid is not None and batch.state in (BatchStatus.COMPLETE, BatchStatus.CANCELLED):
                return False
            self._store_grid_locked(batch, grid, now)
            return True

    def _store_grid_locked(self, batch: _Batch, grid: dict[str, Any], now: float) -> None:
        if batch.state is BatchStatus.CANCELLED:
            if batch.grid is not None:
                raise InvalidBatchState(f'cancelled batch "{batch.batch_id}" already has a grid')
        else:
            self._transition(batch, BatchStatus.COMPLETE, now)
        batch.grid = grid
        self._touch_locked(batch, now)
        self._emit_locked(
            "batch_finished",
            {
                "batch_id": batch.batch_id,
                "state": batch.state.value,
                "grid": _json_ready(grid),
                "counts": self._counts(batch).as_dict(),
                "client_id": batch.client_id,
            },
        )

    # ------------------------------------------------------------------------------------------------- meta

    def set_meta(self, batch_id: str, **kv: Any) -> None:
        """Set small metadata entries (stored JSON-ready); ``warnings=[...]`` replaces the warnings list.

        Raises:
            UnknownBatchError: Unknown batch.
        """
        ready = _json_mapping(kv, "meta")
        warnings = _warning_list(ready.pop("warnings")) if "warnings" in ready else None
        with self._locked() as now:
            batch = self._get_locked(batch_id)
            batch.meta.update(ready)
            if warnings is not None:
                batch.warnings[:] = warnings
            self._touch_locked(batch, now)

    def set_cell_worker(self, batch_id: str, index: int, worker_id: str | None) -> bool:
        """Record which worker runs (and, once it ends, ran) an open cell; None forgets it (the lease was lost).

        Returns False (quietly) for an unknown batch or a cell that already ended: its record names the worker
        that finished it, never a later one.
        """
        index = _check_index(index)
        with self._locked() as now:
            batch = self._batches.get(batch_id)
            if batch is None:
                return False
            self._check_cell(batch, index)
            if batch.status[index] not in _OPEN_CODES:
                return False
            if worker_id is None:
                batch.cell_workers.pop(index, None)
            else:
                batch.cell_workers[index] = str(worker_id)
            self._touch_locked(batch, now)
            return True

    def set_worker_info(self, batch_id: str, worker_id: str, *, name: str | None = None, state: str | None = None,
                        excluded: str | None = None) -> None:
        """Update what the batch status says about one worker (its name, state, why it was excluded).

        Raises:
            UnknownBatchError: Unknown batch.
        """
        with self._locked() as now:
            batch = self._get_locked(batch_id)
            info = batch.workers.setdefault(str(worker_id), {"name": str(name or worker_id), "state": "idle",
                                                             "excluded": None})
            if name is not None:
                info["name"] = str(name)
            if state is not None:
                info["state"] = str(state)
            if excluded is not None:
                info["excluded"] = _short_str(excluded)
            self._touch_locked(batch, now)

    def add_warning(self, batch_id: str, text: str) -> None:
        """Append a user-visible warning (cut to 2000 characters) to the batch.

        Raises:
            UnknownBatchError: Unknown batch.
        """
        warning = _short_str(text)
        with self._locked() as now:
            batch = self._get_locked(batch_id)
            batch.warnings.append(warning)
            self._touch_locked(batch, now)

    # ------------------------------------------------------------------------------------------------ reading

    def snapshot(self, batch_id: str, *, include_cells: bool = True, offset: int = 0,
                 limit: int | None = None) -> BatchState:
        """Frozen snapshot of a batch; with ``include_cells``, of its cells ``offset .. offset + limit``.

        Raises:
            UnknownBatchError: Unknown batch.
        """
        with self._locked() as now:
            return self._snapshot_locked(self._get_locked(batch_id), now, include_cells=include_cells,
                                         offset=offset, limit=limit)

    def change_count(self) -> int:
        """A number that changes whenever any batch changes (not with the passing of time): a cache key."""
        with self._locked():
            return self._changes

    def state_of(self, batch_id: str) -> str | None:
        """The batch's lifecycle state as a string, or None when unknown: the cheap check for hot paths
        (the feeder asks before every cell), with no snapshot built."""
        with self._locked():
            batch = self._batches.get(batch_id)
            return None if batch is None else batch.state.value

    def get_status(self, batch_id: str, include_cells: bool = True, *, offset: int = 0, limit: int | None = None,
                   with_values: bool = True) -> dict[str, Any]:
        """JSON-ready status of one batch (see ``docs/architecture.md``); no ``cells`` key if not included.

        Raises:
            UnknownBatchError: Unknown batch.
        """
        state = self.snapshot(batch_id, include_cells=include_cells, offset=offset, limit=limit)
        return state.as_dict(include_cells=include_cells, with_values=with_values)

    def list_batches(self) -> list[dict[str, Any]]:
        """Summaries (status without cells or axes) of every known batch, newest first.

        A batch's summary is rebuilt only when it changed (or its elapsed time moved to the next second), so
        a list polled while one batch of hundreds runs costs one summary, not hundreds. The dicts are shared
        between calls: read them, do not change them.
        """
        with self._locked() as now:
            ordered = sorted(self._batches.values(), key=lambda b: b.seq, reverse=True)
            todo = []
            out: list[Any] = []
            for batch in ordered:
                key = (batch.updated_mono, int(now))
                if batch.summary is not None and batch.summary[0] == key:
                    out.append(batch.summary[1])
                else:
                    todo.append((len(out), batch, key, self._snapshot_locked(batch, now, include_cells=False)))
                    out.append(None)
        for position, batch, key, state in todo:
            summary = state.as_dict(include_cells=False, include_axes=False)
            batch.summary = (key, summary)  # a plain attribute write: racing rebuilds store equal dicts
            out[position] = summary
        return out

    def active_prompt_ids(self, batch_id: str) -> list[str]:
        """Prompt ids of the batch's cells that are queued or running.

        Raises:
            UnknownBatchError: Unknown batch.
        """
        with self._locked():
            return self._get_locked(batch_id).open_prompt_ids()

    def iter_unfinished(self) -> list[tuple[str, int, str]]:
        """``(batch_id, index, prompt_id)`` of every queued or running cell with a prompt id, for reconciliation."""
        with self._locked():
            found = []
            for b in self._batches.values():
                if b.state in _RUNNING_STATES or b.state is BatchStatus.CANCELLED:
                    for index in sorted(b.live):
                        prompt_id = b.prompt_id(index)
                        if prompt_id is not None:
                            found.append((b.batch_id, index, prompt_id))
            return found

    def cleanup_batch(self, batch_id: str) -> bool:
        """Forget a batch and its prompt ids. Later reports for it are discarded quietly.

        Returns:
            True if the batch existed.
        """
        with self._locked():
            return self._remove_locked(batch_id)

    # ------------------------------------------------------------------------------------- listeners / hook

    def add_listener(self, fn: Listener) -> None:
        """Call ``fn(event, payload)`` for every later notification, after the lock is released.

        Listeners run in registration order; an exception is logged with ``logger.exception`` and the next
        listener still runs. Adding the same callable twice has no effect.
        """
        with self._locked():
            if fn not in self._listeners:
                self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> bool:
        """Stop notifying ``fn``. Returns False if it was not registered."""
        with self._locked():
            try:
                self._listeners.remove(fn)
            except ValueError:
                return False
            return True


def get_manager() -> IterationStateManager:
    """Return the process-wide :class:`IterationStateManager` (created lazily, thread-safe)."""
    return IterationStateManager.instance()


def _reset_for_tests() -> None:
    """Forget the process-wide manager so the next :func:`get_manager` builds a fresh one. Tests only."""
    global _instance
    with _instance_lock:
        _instance = None
