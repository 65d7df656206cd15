"""Batch and cell statuses and the one table of legal batch transitions.

The single owner of these rules: the in-memory manager (``iteration_state``), the durable journal
(``journal``) and restore after a restart all read them from here, so a state cannot mean two things in two
places. Values go over the wire (routes, events, journal rows) as the lower-case strings below.

Plain Python, standard library only: must not import torch, comfy*, server, nodes, execution, folder_paths,
comfy_execution or aiohttp.
"""
from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType

__all__ = [
    "ALLOWED_TRANSITIONS",
    "BatchStatus",
    "CELL_ENDED",
    "CELL_OPEN",
    "CellStatus",
    "RUNNING_STATES",
    "TERMINAL",
    "UNFINISHED_STATES",
    "can_transition",
]


class BatchStatus(str, Enum):
    """Lifecycle of a batch."""

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
    """Progress of one cell (one queued prompt) of a batch. The order is the storage code (``list(CellStatus)``)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: Removed by the iterator's skip list: created ended, never queued, its grid slot marked "skipped".
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value


TERMINAL: frozenset[BatchStatus] = frozenset({BatchStatus.COMPLETE, BatchStatus.CANCELLED, BatchStatus.EXPIRED})

# The one table of legal lifecycle moves. Anything not listed is refused (InvalidBatchState in the manager).
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
        BatchStatus.ACTIVE: frozenset({BatchStatus.COLLECTING, BatchStatus.CANCELLED, BatchStatus.EXPIRED}),
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

#: Batches whose cells may still change.
RUNNING_STATES: frozenset[BatchStatus] = frozenset({BatchStatus.PENDING, BatchStatus.ACTIVE, BatchStatus.INTERRUPTED})
#: Batches a restarted ComfyUI must list as interrupted (the journal's view: collecting had no grid yet).
UNFINISHED_STATES: frozenset[BatchStatus] = RUNNING_STATES | {BatchStatus.COLLECTING}
CELL_OPEN: frozenset[CellStatus] = frozenset({CellStatus.QUEUED, CellStatus.RUNNING})
CELL_ENDED: frozenset[CellStatus] = frozenset(
    {CellStatus.DONE, CellStatus.FAILED, CellStatus.CANCELLED, CellStatus.SKIPPED}
)


def can_transition(old: BatchStatus | str, new: BatchStatus | str) -> bool:
    """Whether the table allows ``old -> new`` (strings accepted, as the journal stores them)."""
    return BatchStatus(new) in ALLOWED_TRANSITIONS[BatchStatus(old)]
