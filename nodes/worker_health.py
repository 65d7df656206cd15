"""Health of the configured workers (issue 14): a background task on ComfyUI's loop asks each enabled remote worker
``GET /queue`` every ``interval_s`` and reports what it saw to the registry.

Only the transport lives here (aiohttp, which ``core`` must not import); what an answer means is
``core/worker_registry.py``'s (``queue_depth_from_answer``, ``worker_state``). The probe never blocks the loop:
every request has a short total timeout and the workers are asked concurrently. The local server's queue depth is
read from ComfyUI's own queue (a callable from the adapter), not over HTTP.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from ..core.worker_registry import WorkerRegistry, parse_auth_header, queue_depth_from_answer
from ..core.workers import LOCAL_WORKER_ID, WorkerConfig

logger = logging.getLogger(__name__)

PROBE_INTERVAL_S = 10.0
PROBE_TIMEOUT_S = 3.0


def describe_failure(exc: BaseException, timeout_s: float) -> str:
    """One line a user can act on, for the Workers list."""
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, aiohttp.ClientResponseError):
        if exc.status in (401, 403):
            return f"HTTP {exc.status}: the server refused the auth header (or needs one)"
        return f"HTTP {exc.status} from GET /queue"
    if isinstance(exc, json.JSONDecodeError):
        return "GET /queue did not answer JSON: is this a ComfyUI server?"
    if isinstance(exc, ValueError):
        return str(exc)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or exc.os_error}" if exc.os_error else "cannot connect"
    return f"{type(exc).__name__}: {exc}"


class HealthProbe:
    """Asks every enabled remote worker for its queue; one instance per server, started once with :meth:`start`."""

    def __init__(self, registry: WorkerRegistry, *, interval_s: float = PROBE_INTERVAL_S,
                 timeout_s: float = PROBE_TIMEOUT_S, local_depth: Callable[[], int | None] | None = None) -> None:
        self._registry = registry
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._local_depth = local_depth
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Schedules the probe loop on ``loop`` (from any thread); a second call does nothing."""
        if self._loop is not None:
            return
        self._loop = loop

        def begin() -> None:
            self._wake = asyncio.Event()
            self._task = loop.create_task(self.run_forever())

        loop.call_soon_threadsafe(begin)

    def wake(self) -> None:
        """Probe now (a worker was added or changed) instead of at the next tick; callable from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(lambda: self._wake.set() if self._wake is not None else None)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def run_forever(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self._timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    await self.probe_all(session)
                except Exception:  # the probe is advisory: log and carry on, never end the task
                    logger.exception("WI: worker health probe failed")
                if self._wake is None:
                    self._wake = asyncio.Event()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self._interval_s)
                except asyncio.TimeoutError:
                    pass
                self._wake.clear()

    async def probe_all(self, session: aiohttp.ClientSession) -> None:
        """One round: the local queue depth, then every enabled remote worker concurrently."""
        if self._local_depth is not None:
            try:
                self._registry.report(LOCAL_WORKER_ID, reachable=True, queue_depth=self._local_depth())
            except Exception:  # reading ComfyUI's queue must never end the probe
                logger.debug("WI: local queue depth unavailable", exc_info=True)
        remote = [w for w in self._registry.entries() if not w.local and w.enabled]
        await asyncio.gather(*(self.probe(session, worker) for worker in remote))

    async def probe(self, session: aiohttp.ClientSession, worker: WorkerConfig) -> None:
        """``GET <url>/queue`` with the worker's auth header; reports reachable + depth, or the failure."""
        headers: dict[str, str] = {}
        if worker.auth_header:
            name, value = parse_auth_header(worker.auth_header)
            headers[name] = value
        assert worker.url is not None  # remote workers only
        try:
            async with session.get(f"{worker.url}/queue", headers=headers, allow_redirects=False) as response:
                response.raise_for_status()
                payload: Any = await response.json(content_type=None)
            depth = queue_depth_from_answer(payload)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            self._registry.report(worker.id, reachable=False, error=describe_failure(exc, self._timeout_s))
            return
        self._registry.report(worker.id, reachable=True, queue_depth=depth)
