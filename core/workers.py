"""The ComfyUI servers a sweep may run cells on (issue 14): the shared vocabulary of the worker registry and the
dispatcher.

This module is the contract between the two: ``core/worker_registry.py`` (the file in ComfyUI's user directory,
``/wi/workers``, health probes) implements :class:`WorkerDirectory`; the dispatcher reads it and reports what it
sees through :meth:`WorkerDirectory.report`. With no workers configured the directory lists only the local server
and nothing about a sweep changes.

Plain Python: must not import torch, comfy*, server, nodes, execution, folder_paths, comfy_execution, aiohttp.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["LOCAL_WORKER_ID", "WorkerConfig", "WorkerDirectory", "WorkerHealth", "WorkerState"]

#: The id of the server this pack runs in, when it takes cells itself.
LOCAL_WORKER_ID = "local"

WorkerState = Literal["idle", "busy", "unreachable", "disabled"]


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """One worker as the user configured it. ``url`` is None for the local server.

    ``auth_header`` is ``"Name: value"`` (e.g. ``"Authorization: Bearer x"``); it is sent to the worker and never
    answered back by a route.
    """

    id: str
    name: str
    url: str | None
    weight: float = 1.0
    enabled: bool = True
    auth_header: str | None = None

    @property
    def local(self) -> bool:
        return self.url is None


@dataclass(frozen=True, slots=True)
class WorkerHealth:
    reachable: bool
    queue_depth: int | None = None
    last_seen: float | None = None  # epoch seconds of the last answer
    error: str | None = None


class WorkerDirectory(Protocol):
    """The configured workers and what is known of their health."""

    def workers(self) -> Sequence[WorkerConfig]:
        """Every configured worker, the local one first (unless turned off), disabled ones included."""
        ...

    def health(self, worker_id: str) -> WorkerHealth: ...

    def report(self, worker_id: str, *, reachable: bool, queue_depth: int | None = None,
               error: str | None = None) -> None:
        """What the dispatcher saw when it talked to a worker (a timeout, a dropped socket, an answer)."""
        ...
