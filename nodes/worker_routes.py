"""HTTP routes for the worker list (issue 14), registered with one call, :func:`add_worker_routes`.

``GET /wi/workers`` lists every worker with its health and state (plus ``file_error``: why the workers file
cannot be used, else null); ``POST /wi/workers`` adds one (no ``id``) or
changes one (``id``) and answers the entry; ``DELETE /wi/workers/{worker_id}`` removes one. A worker's auth header
is never answered back: entries say ``has_auth``. Each state change goes out as the websocket event
``wi.worker_state`` ``{"worker_id", "state", "batch_id": null, "detail"}``.

Errors are JSON ``{"error", "detail"}`` (a bad field also names it in ``"field"``): 400 bad input, 404 unknown
worker, 413 body too large.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..core.worker_registry import WorkerConfigError, WorkerRegistry, worker_state
from ..core.workers import WorkerConfig, WorkerState
from .routes import _guarded, _json_body, _off_loop

logger = logging.getLogger(__name__)

WORKER_STATE_EVENT = "wi.worker_state"


def worker_entry(registry: WorkerRegistry, worker: WorkerConfig) -> dict[str, Any]:
    """The wire form of one worker (the contract's shape); the auth header's value never leaves the server."""
    health = registry.health(worker.id)
    return {
        "id": worker.id,
        "name": worker.name,
        "url": worker.url,
        "local": worker.local,
        "weight": worker.weight,
        "enabled": worker.enabled,
        "has_auth": worker.auth_header is not None,
        "health": {"reachable": health.reachable, "queue_depth": health.queue_depth, "last_seen": health.last_seen,
                   "error": health.error},
        "state": worker_state(worker, health),
    }


def state_event(worker_id: str, state: WorkerState, detail: str | None, batch_id: str | None = None) -> dict[str, Any]:
    return {"worker_id": worker_id, "state": state, "batch_id": batch_id, "detail": detail}


def add_worker_routes(routes: web.RouteTableDef, registry: WorkerRegistry, *,
                      send_event: Callable[[str, dict[str, Any]], None] | None = None,
                      on_change: Callable[[], None] | None = None) -> None:
    """Registers the three routes and, with ``send_event``, the ``wi.worker_state`` event.

    Args:
        routes: ComfyUI's route table (called at import time, before ComfyUI copies it).
        registry: the worker list.
        send_event: ``host.send_event``-like ``(event, data)``, safe from any thread.
        on_change: called after a worker was added, changed or deleted (the health probe's ``wake``).
    """
    if send_event is not None:
        def announce(worker_id: str, state: WorkerState | None, detail: str | None) -> None:
            if state is not None:  # a deleted worker has no state; the deleting client refreshes its list
                send_event(WORKER_STATE_EVENT, state_event(worker_id, state, detail))

        registry.add_listener(announce)

    def changed() -> None:
        if on_change is not None:
            on_change()

    @routes.get("/wi/workers")
    @_guarded
    async def wi_workers(request: web.Request) -> web.Response:
        # file_error (beyond the contract's shape): why a hand-edited file is not in use, so the panel can say so.
        return web.json_response({"workers": [worker_entry(registry, w) for w in registry.entries()],
                                  "file_error": registry.file_error})

    @routes.post("/wi/workers")
    @_guarded
    async def wi_save_worker(request: web.Request) -> web.Response:
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise WorkerConfigError("body", "must be a JSON object")
        worker = await _off_loop(registry.save, body)
        changed()
        return web.json_response(worker_entry(registry, worker))

    @routes.delete("/wi/workers/{worker_id}")
    @_guarded
    async def wi_delete_worker(request: web.Request) -> web.Response:
        worker_id = request.match_info.get("worker_id", "")
        await _off_loop(registry.remove, worker_id)
        changed()
        return web.json_response({"deleted": worker_id})
