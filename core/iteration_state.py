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

import contextlib
import logging
import operator
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType, SimpleNamespace
from typing import Any, Protocol

from .errors import InvalidBatchState, UnknownBatchError
from .values import format_label, json_value

logger = logging.getLogger(__name__)

__all__ = [
    "ALLOWED_TRANSITIONS",
    "AxisInfo",
    "BatchState",
    "BatchStatus",
    "CellCounts",
    "CellState",
    "CellStatus",
    "ImageRef",
    "IterationStateManager",
    "Listener",
    "PromptInterceptor",
    "TERMINAL",
    "Timings",
    "get_manager",
    "sanitize_batch_name",
]


# --------------------------------------------------------------------------------------------------- statuses


class BatchStatus(str, Enum):
    """Lifecycle of a batch. Values go over the wire as lower-case strings."""

    PENDING = "pending"  # created, no prompt attached yet
    ACTIVE = "active"  # at least one prompt attached / running
    COLLECTING = "collecting"  # every cell ended; waiting for the grid
    COMPLETE = "complete"  # grid stored
    CANCELLED = "cancelled"  # user cancelled before every cell ended
    EXPIRED = "expired"  # not updated for max_age_s; removed from the store right after
    INTERRUPTED = "interrupted"  # restored from the journal after a restart; resumable

    def __str__(self) -> str:
        return self.value


class CellStatus(str, Enum):
    """Progress of one cell (one queued prompt) of a batch."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


TERMINAL: frozenset[BatchStatus] = frozenset(
    {BatchStatus.COMPLETE, BatchStatus.CANCELLED, BatchStatus.EXPIRED}
)

# The one table of legal lifecycle moves. Anything not listed raises InvalidBatchState in _transition().
# collecting -> cancelled is deliberately absent: cancelling after every cell ended is a 409, not a no-op.
ALLOWED_TRANSITIONS: Mapping[BatchStatus, frozenset[BatchStatus]] = MappingProxyType(
    {
        BatchStatus.PENDING: frozenset(
            {
                BatchStatus.ACTIVE,
                BatchStatus.COLLECTING,  # e.g. every cell failed validation before anything was queued
                BatchStatus.CANCELLED,
                BatchStatus.EXPIRED,
            }
        ),
        BatchStatus.ACTIVE: frozenset(
            {BatchStatus.COLLECTING, BatchStatus.CANCELLED, BatchStatus.EXPIRED}
        ),
        BatchStatus.COLLECTING: frozenset({BatchStatus.COMPLETE, BatchStatus.EXPIRED}),
        BatchStatus.COMPLETE: frozenset({BatchStatus.EXPIRED}),
        BatchStatus.CANCELLED: frozenset({BatchStatus.EXPIRED}),
        BatchStatus.EXPIRED: frozenset(),
        # A batch whose ComfyUI died under it: resume re-queues its unfinished cells (or, when none is left,
        # goes straight to collecting for its grid); it can also be cancelled.
        BatchStatus.INTERRUPTED: frozenset(
            {BatchStatus.ACTIVE, BatchStatus.COLLECTING, BatchStatus.CANCELLED, BatchStatus.EXPIRED}
        ),
    }
)

# Batches whose cells may still change.
_RUNNING_STATES = frozenset({BatchStatus.PENDING, BatchStatus.ACTIVE, BatchStatus.INTERRUPTED})
_CELL_OPEN = frozenset({CellStatus.QUEUED, CellStatus.RUNNING})
_CELL_ENDED = frozenset({CellStatus.DONE, CellStatus.FAILED, CellStatus.CANCELLED})

_MAX_TEXT = 2000  # error texts / str() fallbacks are cut here so a stray traceback or repr cannot bloat status
_MAX_DEPTH = 32
_BATCH_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,100}")
_NAME_JUNK_RE = re.compile(r"[^A-Za-z0-9_-]+")
_MAX_NAME_LEN = 64


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


class PromptInterceptor(Protocol):
    """The on_prompt pass the manager delegates :meth:`IterationStateManager.handle_prompt` to."""

    def handle_prompt(self, json_data: dict[str, Any]) -> dict[str, Any]: ...


Listener = Callable[[str, dict[str, Any]], None]


# ------------------------------------------------------------------------------------------------- snapshots


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A saved image, as ComfyUI's UI output names it (never pixel data)."""

    filename: str
    subfolder: str = ""
    type: str = "output"

    def as_dict(self) -> dict[str, str]:
        return {"filename": self.filename, "subfolder": self.subfolder, "type": self.type}


@dataclass(frozen=True, slots=True)
class AxisInfo:
    """An axis as stored with the batch: raw values plus the text labels shown to users."""

    name: str
    type: str
    values: tuple[Any, ...]
    labels: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "values": list(self.labels)}


@dataclass(frozen=True, slots=True)
class CellCounts:
    """Cell tallies of a batch; ``pending`` counts queued cells."""

    total: int
    done: int
    failed: int
    cancelled: int
    pending: int
    running: int

    @property
    def ended(self) -> int:
        return self.done + self.failed + self.cancelled

    def as_dict(self) -> dict[str, int]:
        return {
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "pending": self.pending,
            "running": self.running,
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

    def as_dict(self, axes: Sequence[AxisInfo]) -> dict[str, Any]:
        names = [a.name for a in axes] if axes else [str(i) for i in range(len(self.values))]
        return {
            "index": self.index,
            "coords": list(self.coords),
            "values": {name: _json_ready(value) for name, value in zip(names, self.values)},
            "status": self.status.value,
            "error": self.error,
            "prompt_id": self.prompt_id,
            "files": [f.as_dict() for f in self.files],
            "metadata": _thaw(self.metadata),
            "started_at": self.started_at,
            "ended_at": self.ended_at,
        }


@dataclass(frozen=True, slots=True)
class BatchState:
    """Frozen snapshot of a batch, taken under the manager's lock.

    ``cells`` is empty when the snapshot was taken with ``include_cells=False``. ``created_at`` and
    ``updated_at`` are wall-clock epoch seconds. Mappings are read-only proxies over private copies, so nothing
    here changes when the batch changes later.
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
    cells: tuple[CellState, ...]
    grid: Mapping[str, Any] | None
    warnings: tuple[str, ...]
    meta: Mapping[str, Any]
    timings: Timings

    @property
    def finished(self) -> bool:
        """True once every cell has ended (collecting, complete) or the batch was cancelled/expired."""
        return self.state not in _RUNNING_STATES

    def as_dict(self, *, include_cells: bool = True) -> dict[str, Any]:
        """The JSON-ready status dict served by ``GET /wi/status/{batch_id}`` (summary without ``cells``)."""
        out: dict[str, Any] = {
            "batch_id": self.batch_id,
            "batch_name": self.batch_name,
            "mode": self.mode,
            "state": self.state.value,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "client_id": self.client_id,
            "total": self.total,
            "axes": [a.as_dict() for a in self.axes],
            "counts": self.counts.as_dict(),
            "grid": _thaw(self.grid) if self.grid is not None else None,
            "warnings": list(self.warnings),
            "meta": _thaw(self.meta),
            "timings": self.timings.as_dict(),
        }
        if include_cells:
            out["cells"] = [c.as_dict(self.axes) for c in self.cells]
        return out


# ------------------------------------------------------------------------------------------ internal records


@dataclass(slots=True, eq=False)
class _Cell:
    index: int
    coords: tuple[int, ...]
    values: tuple[Any, ...]
    status: CellStatus = CellStatus.QUEUED
    error: str | None = None
    prompt_id: str | None = None
    files: tuple[ImageRef, ...] = ()
    metadata: dict[str, Any] | None = None  # JSON-ready private copy
    started: float | None = None  # manager clock
    ended: float | None = None  # manager clock


@dataclass(slots=True, eq=False)
class _Batch:
    batch_id: str
    batch_name: str
    mode: str
    client_id: str | None
    combinations: Sequence[Any]
    axes: tuple[AxisInfo, ...]
    cells: list[_Cell]
    meta: dict[str, Any]
    warnings: list[str]
    created_at: float  # wall clock
    created_mono: float
    updated_mono: float
    seq: int  # creation order, for newest-first listings
    state: BatchStatus = BatchStatus.PENDING
    grid: dict[str, Any] | None = None
    finished_mono: float | None = None  # when the batch left pending/active
    counts: dict[CellStatus, int] = field(default_factory=dict)
    done_seconds: float = 0.0  # sum of measured durations of done cells
    done_measured: int = 0

    @property
    def total(self) -> int:
        return len(self.cells)

    def wall(self, mono: float | None) -> float | None:
        """Map a manager-clock reading to wall-clock seconds, anchored at creation."""
        return None if mono is None else self.created_at + (mono - self.created_mono)


# ---------------------------------------------------------------------------------------------- conversions


def sanitize_batch_name(name: str) -> str:
    """Make ``name`` safe for ids and file names.

    Keeps ``[A-Za-z0-9_-]``, collapses every run of other characters to one ``_``, trims to 64 characters and
    falls back to ``"batch"`` when nothing meaningful is left.
    """
    cleaned = _NAME_JUNK_RE.sub("_", str(name))[:_MAX_NAME_LEN]
    return cleaned if cleaned.strip("_") else "batch"


def new_batch_id(batch_name: str) -> str:
    """``<sanitised name>_<8 hex>``: what :meth:`IterationStateManager.create_batch` generates, for callers that
    need the id before the batch exists."""
    return f"{sanitize_batch_name(str(batch_name))}_{secrets.token_hex(4)}"


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


def _image_refs(images: Iterable[Mapping[str, Any]] | None) -> tuple[ImageRef, ...]:
    """Validate image references; only ``filename``/``subfolder``/``type`` are kept."""
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
                subfolder=str(item.get("subfolder") or ""),
                type=str(item.get("type") or "output"),
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
        interceptor: Object whose ``handle_prompt(json_data)`` :meth:`handle_prompt` delegates to.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        max_age_s: float = 3600.0,
        max_finished: int = 200,
        interceptor: PromptInterceptor | None = None,
    ) -> None:
        if not max_age_s > 0:
            raise ValueError("max_age_s must be positive")
        if max_finished < 1:
            raise ValueError("max_finished must be at least 1")
        self._clock = clock
        self._wall_clock = wall_clock
        self._max_age_s = float(max_age_s)
        self._max_finished = int(max_finished)
        self._interceptor = interceptor
        self._lock = threading.Lock()  # non-reentrant on purpose: re-entry under the lock is a bug
        self._batches: OrderedDict[str, _Batch] = OrderedDict()  # least recently updated first
        self._finished: OrderedDict[str, None] = OrderedDict()  # oldest finished first
        self._prompts: dict[str, tuple[str, int]] = {}
        self._listeners: list[Listener] = []
        self._outbox: list[tuple[str, dict[str, Any]]] = []
        self._delivering = False
        self._seq = 0
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

    @contextlib.contextmanager
    def _locked(self) -> Iterator[float]:
        """Hold the lock (after lazy expiry) for the body; deliver queued notifications after release."""
        try:
            with self._lock:
                now = self._clock()
                self._expire_locked(now)
                yield now
        finally:
            self._flush()

    def _flush(self) -> None:
        """Deliver queued notifications in order, outside the lock, from one thread at a time."""
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
        for cell in batch.cells:
            if cell.prompt_id is not None and self._prompts.get(cell.prompt_id) == (batch_id, cell.index):
                del self._prompts[cell.prompt_id]
        return True

    def _expire_locked(self, now: float) -> None:
        # _batches is ordered by last update, so only the stale prefix is visited.
        while self._batches:
            batch = next(iter(self._batches.values()))
            if now - batch.updated_mono <= self._max_age_s:
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
    def _cell_locked(batch: _Batch, index: int) -> _Cell:
        if index >= len(batch.cells):
            raise IndexError(f'cell index {index} out of range for batch "{batch.batch_id}" of {batch.total}')
        return batch.cells[index]

    @staticmethod
    def _set_cell_status(batch: _Batch, cell: _Cell, new: CellStatus, now: float) -> None:
        batch.counts[cell.status] -= 1
        batch.counts[new] += 1
        cell.status = new
        if new is CellStatus.RUNNING:
            cell.started = now
        elif new in _CELL_ENDED:
            cell.ended = now
            if new is CellStatus.DONE and cell.started is not None:
                batch.done_seconds += max(0.0, now - cell.started)
                batch.done_measured += 1

    @staticmethod
    def _counts(batch: _Batch) -> CellCounts:
        c = batch.counts
        return CellCounts(
            total=batch.total,
            done=c[CellStatus.DONE],
            failed=c[CellStatus.FAILED],
            cancelled=c[CellStatus.CANCELLED],
            pending=c[CellStatus.QUEUED],
            running=c[CellStatus.RUNNING],
        )

    def _snapshot_locked(self, batch: _Batch, now: float, *, include_cells: bool) -> BatchState:
        counts = self._counts(batch)
        spc = batch.done_seconds / batch.done_measured if batch.done_measured else None
        remaining = counts.pending + counts.running
        eta = 0.0 if remaining == 0 else (spc * remaining if spc is not None else None)
        end = batch.finished_mono if batch.finished_mono is not None else now
        cells: tuple[CellState, ...] = ()
        if include_cells:
            cells = tuple(
                CellState(
                    index=c.index,
                    coords=c.coords,
                    values=c.values,
                    status=c.status,
                    error=c.error,
                    prompt_id=c.prompt_id,
                    files=c.files,
                    metadata=_freeze(c.metadata or {}),
                    started_at=batch.wall(c.started),
                    ended_at=batch.wall(c.ended),
                )
                for c in batch.cells
            )
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
            cells=cells,
            grid=_freeze(batch.grid) if batch.grid is not None else None,
            warnings=tuple(batch.warnings),
            meta=_freeze(batch.meta),
            timings=Timings(elapsed_s=max(0.0, end - batch.created_mono), seconds_per_cell=spc, eta_s=eta),
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

        Returns:
            A snapshot of the new batch, cells included.

        Raises:
            ValueError: No combinations, misnumbered combinations, values/axes mismatch, bad or taken batch_id.
            TypeError: ``meta`` is not a mapping.
        """
        axis_infos = tuple(_axis_info(a) for a in axes)
        cells: list[_Cell] = []
        for position, combo in enumerate(combinations):
            if combo.index != position:
                raise ValueError(f"combination at position {position} has index {combo.index}")
            values = tuple(combo.values)
            if axis_infos and len(values) != len(axis_infos):
                raise ValueError(
                    f"combination {position} has {len(values)} values for {len(axis_infos)} axes"
                )
            cells.append(_Cell(index=position, coords=tuple(int(c) for c in combo.coords), values=values))
        if not cells:
            raise ValueError("a batch needs at least one combination")
        meta_ready = _json_mapping(meta, "meta")
        warnings = _warning_list(meta_ready.pop("warnings")) if "warnings" in meta_ready else []
        if batch_id is not None and not _BATCH_ID_RE.fullmatch(batch_id):
            raise ValueError(f"invalid batch id {batch_id!r}: use 1-100 characters of [A-Za-z0-9_-]")
        name = str(batch_name)
        prefix = sanitize_batch_name(name)

        with self._locked() as now:
            if batch_id is None:
                new_id = f"{prefix}_{secrets.token_hex(4)}"
                while new_id in self._batches:
                    new_id = f"{prefix}_{secrets.token_hex(4)}"
            elif batch_id in self._batches:
                raise ValueError(f'batch id "{batch_id}" is already in use')
            else:
                new_id = batch_id
            self._seq += 1
            counts = {status: 0 for status in CellStatus}
            counts[CellStatus.QUEUED] = len(cells)
            batch = _Batch(
                batch_id=new_id,
                batch_name=name,
                mode=str(mode),
                client_id=client_id,
                combinations=combinations,
                axes=axis_infos,
                cells=cells,
                meta=meta_ready,
                warnings=warnings,
                created_at=self._wall_clock(),
                created_mono=now,
                updated_mono=now,
                seq=self._seq,
                counts=counts,
            )
            self._batches[new_id] = batch
            self._changes += 1
            snapshot = self._snapshot_locked(batch, now, include_cells=snapshot_cells)
            self._emit_locked(
                "batch_created",
                {
                    "batch_id": new_id,
                    "batch_name": name,
                    "mode": batch.mode,
                    "total": batch.total,
                    "client_id": client_id,
                },
            )
        logger.debug("created batch %s with %d cells", new_id, len(cells))
        return snapshot

    def restore_batch(self, record: Mapping[str, Any]) -> BatchState:
        """Re-create a batch from its journal record (after a restart) in state ``interrupted``.

        Cells that had ended keep their status, error and files; the others are ``queued`` without a prompt
        id (prompt ids do not survive a restart). Emits ``batch_created``.

        Args:
            record: ``BatchJournal.get_batch()`` output: batch_id, batch_name, mode, client_id, created_at, axes
                [{name, type, values}], cells [{index, coords, values, status, error, files}], meta, warnings.

        Raises:
            ValueError: malformed record, or the batch id is already in use.
        """
        axes = tuple(
            _axis_info(SimpleNamespace(name=a["name"], type=a.get("type", "STRING"), values=tuple(a["values"])))
            for a in record.get("axes", ())
        )
        cells: list[_Cell] = []
        for position, raw in enumerate(sorted(record.get("cells", ()), key=lambda c: int(c["index"]))):
            if int(raw["index"]) != position:
                raise ValueError(f"journal record of {record.get('batch_id')!r} misses cell {position}")
            status = CellStatus(raw.get("status", "queued"))
            if status is CellStatus.RUNNING:
                status = CellStatus.QUEUED
            cells.append(
                _Cell(
                    index=position,
                    coords=tuple(int(c) for c in raw.get("coords", ())),
                    values=tuple(raw.get("values", ())),
                    status=status,
                    error=raw.get("error"),
                    files=_image_refs(raw.get("files") or ()) if status is CellStatus.DONE else (),
                )
            )
        if not cells:
            raise ValueError("a batch needs at least one combination")
        batch_id = str(record["batch_id"])
        if not _BATCH_ID_RE.fullmatch(batch_id):
            raise ValueError(f"invalid batch id {batch_id!r}")
        meta_ready = _json_mapping(record.get("meta") or {}, "meta")
        meta_ready.pop("warnings", None)
        combinations = tuple(SimpleNamespace(index=c.index, coords=c.coords, values=c.values) for c in cells)
        with self._locked() as now:
            if batch_id in self._batches:
                raise ValueError(f'batch id "{batch_id}" is already in use')
            self._seq += 1
            counts = {status: 0 for status in CellStatus}
            for cell in cells:
                counts[cell.status] += 1
            created_at = float(record.get("created_at") or self._wall_clock())
            batch = _Batch(
                batch_id=batch_id,
                batch_name=str(record.get("batch_name", batch_id)),
                mode=str(record.get("mode", "matrix")),
                client_id=record.get("client_id"),
                combinations=combinations,
                axes=axes,
                cells=cells,
                meta=meta_ready,
                warnings=_warning_list(record.get("warnings") or []),
                created_at=created_at,
                created_mono=now - max(0.0, self._wall_clock() - created_at),
                updated_mono=now,
                seq=self._seq,
                counts=counts,
            )
            batch.state = BatchStatus.INTERRUPTED
            self._batches[batch_id] = batch
            self._changes += 1
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
            todo = [c.index for c in batch.cells if c.status in _CELL_OPEN]
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
        index = _check_index(index)
        if not isinstance(prompt_id, str) or not prompt_id:
            raise ValueError("prompt_id must be a non-empty string")
        with self._locked() as now:
            if only_if_open:
                open_batch = self._batches.get(batch_id)
                if open_batch is None or open_batch.state not in (BatchStatus.PENDING, BatchStatus.ACTIVE):
                    return False
            batch = self._get_locked(batch_id)
            cell = self._cell_locked(batch, index)
            if batch.state in TERMINAL:
                raise InvalidBatchState(
                    f'batch "{batch_id}" is {batch.state.value}; cannot attach prompt {prompt_id}'
                )
            owner = self._prompts.get(prompt_id)
            if owner is not None and owner != (batch_id, index):
                raise ValueError(f"prompt {prompt_id} is already attached to {owner[0]} cell {owner[1]}")
            if cell.prompt_id is not None and cell.prompt_id != prompt_id:
                if self._prompts.get(cell.prompt_id) == (batch_id, index):
                    del self._prompts[cell.prompt_id]
            cell.prompt_id = prompt_id
            self._prompts[prompt_id] = (batch_id, index)
            if batch.state is BatchStatus.PENDING:
                self._transition(batch, BatchStatus.ACTIVE, now)
            self._touch_locked(batch, now)
        return True

    def lookup_prompt(self, prompt_id: str) -> tuple[str, int] | None:
        """Return ``(batch_id, index)`` for an attached prompt id, else None.

        Ids stay indexed (also after the cell ended or the batch was cancelled) until the batch is cleaned up,
        evicted or expired.
        """
        with self._locked():
            return self._prompts.get(prompt_id)

    def mark_running(self, batch_id: str, index: int) -> bool:
        """Move a queued cell to ``running`` and record its start time.

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
            cell = self._cell_locked(batch, index)
            if cell.status is not CellStatus.QUEUED:
                return False
            self._set_cell_status(batch, cell, CellStatus.RUNNING, now)
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
        metadata: Mapping[str, Any] | None,
    ) -> bool:
        """Mark a cell ``done`` with its saved image references and metadata.

        Args:
            batch_id: The batch.
            index: The cell.
            images: Image references ``{filename, subfolder, type}`` (other keys are dropped; never pixel data).
            metadata: Small JSON-ready dict; non-JSON values are stored as their ``str()`` (see ``_json_ready``).

        Returns:
            True for exactly one call per batch: the one that ends its last cell (the batch then becomes
            ``collecting``). False for every other call, including duplicates and reports for cancelled,
            expired, finished, unknown or removed batches, which are discarded quietly.

        Raises:
            TypeError: ``images`` is not a sequence of mappings with a filename, or ``metadata`` not a mapping.
            IndexError: No such cell in a live batch.
        """
        refs = _image_refs(images)
        meta = _json_mapping(metadata, "metadata")
        return self._end_cell(batch_id, index, CellStatus.DONE, error=None, files=refs, metadata=meta)

    def register_failure(self, batch_id: str, index: int, reason: str) -> bool:
        """Mark a cell ``failed`` with ``reason`` (cut to 2000 characters); same return rules as register_result."""
        return self._end_cell(batch_id, index, CellStatus.FAILED, error=_short_str(reason), files=(), metadata=None)

    def register_cancelled(self, batch_id: str, index: int, reason: str) -> bool:
        """Mark one cell ``cancelled`` (e.g. removed by "Clear queue"); same return rules as register_result."""
        return self._end_cell(
            batch_id, index, CellStatus.CANCELLED, error=_short_str(reason), files=(), metadata=None
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
    ) -> bool:
        index = _check_index(index)
        with self._locked() as now:
            batch = self._batches.get(batch_id)
            if batch is None or batch.state not in _RUNNING_STATES:
                return False
            cell = self._cell_locked(batch, index)
            if cell.status not in _CELL_OPEN:
                return False  # duplicate report: the first one counted
            self._set_cell_status(batch, cell, status, now)
            cell.error = error
            cell.files = files
            cell.metadata = metadata
            self._touch_locked(batch, now)
            counts = self._counts(batch)
            self._emit_locked(
                "cell_ended",
                {
                    "batch_id": batch_id,
                    "index": index,
                    "status": status.value,
                    "error": error,
                    "prompt_id": cell.prompt_id,
                    "files": [f.as_dict() for f in files],
                    "ended_at": batch.wall(cell.ended),
                    "counts": counts.as_dict(),
                    "client_id": batch.client_id,
                },
            )
            if counts.ended < counts.total:
                return False
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

    def cancel_batch(self, batch_id: str) -> list[str]:
        """Cancel a pending or active batch; every cell not yet ended becomes ``cancelled``.

        Returns:
            Prompt ids of the cells that had not ended (queued or running), for the caller to remove from
            ComfyUI's queue / interrupt.

        Raises:
            UnknownBatchError: Unknown batch (HTTP 404).
            InvalidBatchState: Already cancelled, collecting or complete (HTTP 409); a second cancel raises too.
        """
        with self._locked() as now:
            batch = self._get_locked(batch_id)
            self._transition(batch, BatchStatus.CANCELLED, now)
            removed: list[str] = []
            for cell in batch.cells:
                if cell.status in _CELL_OPEN:
                    if cell.prompt_id is not None:
                        removed.append(cell.prompt_id)
                    self._set_cell_status(batch, cell, CellStatus.CANCELLED, now)
                    cell.error = "batch cancelled"
            self._touch_locked(batch, now)
            self._emit_locked(
                "batch_cancelled",
                {
                    "batch_id": batch_id,
                    "removed": list(removed),
                    "counts": self._counts(batch).as_dict(),
                    "client_id": batch.client_id,
                },
            )
        logger.info("cancelled batch %s (%d prompts to remove)", batch_id, len(removed))
        return removed

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

    def snapshot(self, batch_id: str, *, include_cells: bool = True) -> BatchState:
        """Frozen snapshot of a batch.

        Raises:
            UnknownBatchError: Unknown batch.
        """
        with self._locked() as now:
            return self._snapshot_locked(self._get_locked(batch_id), now, include_cells=include_cells)

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

    def get_status(self, batch_id: str, include_cells: bool = True) -> dict[str, Any]:
        """JSON-ready status of one batch (see ``docs/architecture.md``); no ``cells`` key if not included.

        Raises:
            UnknownBatchError: Unknown batch.
        """
        return self.snapshot(batch_id, include_cells=include_cells).as_dict(include_cells=include_cells)

    def list_batches(self) -> list[dict[str, Any]]:
        """Summaries (status without cells) of every known batch, newest first."""
        with self._locked() as now:
            ordered = sorted(self._batches.values(), key=lambda b: b.seq, reverse=True)
            states = [self._snapshot_locked(b, now, include_cells=False) for b in ordered]
        return [s.as_dict(include_cells=False) for s in states]

    def active_prompt_ids(self, batch_id: str) -> list[str]:
        """Prompt ids of the batch's cells that are queued or running.

        Raises:
            UnknownBatchError: Unknown batch.
        """
        with self._locked():
            batch = self._get_locked(batch_id)
            return [c.prompt_id for c in batch.cells if c.status in _CELL_OPEN and c.prompt_id is not None]

    def iter_unfinished(self) -> list[tuple[str, int, str]]:
        """``(batch_id, index, prompt_id)`` of every queued or running cell with a prompt id, for reconciliation."""
        with self._locked():
            return [
                (b.batch_id, c.index, c.prompt_id)
                for b in self._batches.values()
                if b.state in _RUNNING_STATES
                for c in b.cells
                if c.status in _CELL_OPEN and c.prompt_id is not None
            ]

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

    def set_interceptor(self, interceptor: PromptInterceptor | None) -> None:
        """Install (or with None remove) the object :meth:`handle_prompt` delegates to."""
        with self._locked():
            self._interceptor = interceptor

    def handle_prompt(self, json_data: dict[str, Any]) -> dict[str, Any]:
        """The on_prompt entry point: delegate to the interceptor (called without the lock held).

        Returns:
            The interceptor's result, or ``json_data`` unchanged when no interceptor is set.
        """
        with self._locked():
            interceptor = self._interceptor
        if interceptor is None:
            return json_data
        return interceptor.handle_prompt(json_data)


def get_manager() -> IterationStateManager:
    """Return the process-wide :class:`IterationStateManager` (created lazily, thread-safe)."""
    return IterationStateManager.instance()


def _reset_for_tests() -> None:
    """Forget the process-wide manager so the next :func:`get_manager` builds a fresh one. Tests only."""
    global _instance
    with _instance_lock:
        _instance = None
