"""One batch's events as a server-sent event stream (``GET /wi/batches/{id}/events``).

Owns: which manager events a batch's stream carries and when it ends (:func:`is_final`), the SSE wire
format (:func:`format_event`, :data:`KEEP_ALIVE`), and the hub that hands the manager's events (delivered on
whatever thread ended the cell) to each subscriber's queue on its event loop (:class:`BatchEventHub`).

A subscriber whose queue overflows (a client that stopped reading) is closed rather than left to grow.

Plain Python: must not import torch, comfy*, server, nodes, execution, folder_paths, comfy_execution, aiohttp.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["BatchEventHub", "KEEP_ALIVE", "STREAM_EVENTS", "Subscription", "format_event", "is_final"]

#: The manager events a batch's stream forwards (their names are the SSE event names).
STREAM_EVENTS = frozenset({"cell_ended", "batch_cancelled", "batch_finished", "batch_expired"})
#: A comment line: keeps proxies from closing an idle stream and lets the server notice a gone client.
KEEP_ALIVE = b": keep-alive\n\n"
#: Events one subscriber may have waiting before it is dropped as not reading.
QUEUE_LIMIT = 10_000
_FINAL_STATES = frozenset({"complete", "cancelled", "expired"})
_CLOSED: tuple[str, dict[str, Any]] = ("closed", {})


def format_event(event: str, data: Mapping[str, Any], event_id: int | None = None) -> bytes:
    """One SSE message: ``event:``, optional ``id:``, and the JSON payload on one ``data:`` line."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(dict(data), separators=(",", ":"), default=str))
    return ("\n".join(lines) + "\n\n").encode()


def is_final(event: str, payload: Mapping[str, Any]) -> bool:
    """After this event the batch sends nothing more: its grid is stored (complete, or cancelled with its
    partial grid) or it expired. ``batch_finished`` with state ``collecting`` is not final: the grid follows."""
    if event == "batch_expired":
        return True
    return event in ("batch_finished", "snapshot") and str(payload.get("state")) in _FINAL_STATES and (
        event == "batch_finished" or payload.get("grid") is not None or payload.get("state") == "expired")


class Subscription:
    """One client's queue of one batch's events, read on the loop it was made on."""

    def __init__(self, hub: BatchEventHub, batch_id: str, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.hub, self.batch_id, self.loop = hub, batch_id, loop
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._limit = limit
        self.overflowed = False

    def push(self, event: str, payload: dict[str, Any]) -> None:
        """From any thread."""
        try:
            self.loop.call_soon_threadsafe(self._put, (event, payload))
        except RuntimeError:  # the loop closed (server stopping): nobody is reading any more
            pass

    def _put(self, item: tuple[str, dict[str, Any]]) -> None:
        if self.overflowed:
            return
        if self._queue.qsize() >= self._limit:
            self.overflowed = True
            logger.warning("WI: event stream of %s dropped: the client is not reading", self.batch_id)
            self._queue.put_nowait(_CLOSED)
            return
        self._queue.put_nowait(item)

    async def next(self, timeout: float) -> tuple[str, dict[str, Any]] | None:
        """The next event, ``("closed", {})`` when dropped, or None when nothing came within ``timeout``."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout=timeout)
        except asyncio.TimeoutError:
            return None

    def close(self) -> None:
        self.hub.unsubscribe(self)


class BatchEventHub:
    """Fans the manager's events out to the subscribers of each batch. Register :meth:`publish` as a
    manager listener once; it never raises and does no I/O (a put on each subscriber's loop)."""

    def __init__(self, *, queue_limit: int = QUEUE_LIMIT) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[Subscription]] = {}
        self._queue_limit = queue_limit

    def subscribe(self, batch_id: str, loop: asyncio.AbstractEventLoop) -> Subscription:
        subscription = Subscription(self, batch_id, loop, self._queue_limit)
        with self._lock:
            self._subscribers.setdefault(batch_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            subs = self._subscribers.get(subscription.batch_id)
            if subs is not None:
                subs.discard(subscription)
                if not subs:
                    del self._subscribers[subscription.batch_id]

    def subscriber_count(self, batch_id: str | None = None) -> int:
        with self._lock:
            if batch_id is not None:
                return len(self._subscribers.get(batch_id, ()))
            return sum(len(s) for s in self._subscribers.values())

    def publish(self, event: str, payload: dict[str, Any]) -> None:
        if event not in STREAM_EVENTS:
            return
        batch_id = str(payload.get("batch_id") or "")
        with self._lock:
            targets = tuple(self._subscribers.get(batch_id, ()))
        for subscription in targets:
            subscription.push(event, payload)
