"""HTTP routes for sweeps started without the canvas: ``POST /wi/batches``, ``GET /wi/batches/{id}/events``
(server-sent events) and ``GET /wi/openapi.json``. Handlers parse, call core, answer JSON.

A request is turned into the WI nodes a canvas user would add (``core/batch_request.py``), planned by the
hook's planner to answer errors and dry runs, then submitted through ComfyUI's own POST /prompt handler
(``ComfyHost.submit_prompt``), so the onprompt hook creates and feeds the batch exactly as for a Queue press.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from ..core import batch_outputs, batch_request, openapi, planner
from ..core.batch_request import BatchRequest, IdempotencyStore, RequestError
from ..core.event_stream import KEEP_ALIVE, BatchEventHub, format_event, is_final
from ..core.prompt_graph import SweepPlan
from ..core.sweep import describe_validation_error
from . import _comfy
from .routes import _batch_id, _error, _guarded, _json_body, _off_loop

logger = logging.getLogger(__name__)

#: Seconds between keep-alive comments on an idle event stream.
KEEP_ALIVE_S = 15.0
#: What a snapshot event carries of the batch status (the counts a late client needs, not every cell).
SNAPSHOT_KEYS = ("batch_id", "batch_name", "mode", "state", "total", "counts", "grid", "warnings", "created_at")


def _grid_estimate(swept: SweepPlan, request: BatchRequest) -> dict[str, Any] | None:
    """The grid the batch will get (the badge's estimate), or None when the request asks for no grid."""
    if request.grid is None:
        return None
    labels = sum(len(axis.values) for axis in swept.axes)
    if labels > planner.PREVIEW_GRID_MAX_LABELS:
        return {"estimated": False, "warnings": [
            f"grid size not estimated for {labels:,} labels (over {planner.PREVIEW_GRID_MAX_LABELS:,})"]}
    try:
        return batch_outputs.preview_grid(swept.axes, swept.mode, swept.total, swept.image_size(), swept.grid_options)
    except Exception:  # the estimate is advice: the batch still runs and its grid adapts at the end
        logger.exception("WI: grid estimate failed")
        return {"estimated": False, "warnings": ["grid size could not be estimated"]}


def add_routes(routes: web.RouteTableDef, service: Any, *, input_types: Any = None,
               keep_alive_s: float = KEEP_ALIVE_S) -> BatchEventHub:
    """Register the headless-sweep routes; returns the event hub (subscribed to the manager)."""
    manager, host = service.manager, service.host
    lookup_types = input_types if input_types is not None else _comfy._input_types
    hub = BatchEventHub()
    manager.add_listener(hub.publish)
    store = IdempotencyStore()
    # One submission at a time: a key sent twice at once yields one batch, and the hook's batch for a
    # submission is found by the prompt id ComfyUI answers before the next one starts.
    submitting = asyncio.Lock()

    def plan(request: BatchRequest) -> tuple[dict[str, Any], SweepPlan, dict[str, Any] | None]:
        prompt = batch_request.build_prompt(request, lookup_types)
        swept = batch_request.plan(prompt, parse=service.parse, options_for=host.options_for,
                                   input_default=host.input_default, node_is_written=host.node_is_written,
                                   max_combinations=service.max_combinations)
        return prompt, swept, _grid_estimate(swept, request)

    @routes.post("/wi/batches")
    @_guarded
    async def wi_create_batch(request: web.Request) -> web.Response:
        try:
            parsed = batch_request.parse_request(await _json_body(request))
            fingerprint = parsed.fingerprint()
            async with submitting:
                if parsed.idempotency_key is not None and not parsed.dry_run:
                    first = store.get(parsed.idempotency_key, fingerprint)
                    if first is not None:
                        return web.json_response(dict(first), status=200)
                # Parsing axes and asking node classes for their inputs may take a while: off the loop.
                prompt, swept, grid = await _off_loop(plan, parsed)
                if parsed.dry_run:
                    return web.json_response(batch_request.plan_answer(swept, parsed, grid))
                body: dict[str, Any] = {"prompt": prompt, "extra_data": dict(parsed.extra_data)}
                if parsed.client_id is not None:
                    body["client_id"] = parsed.client_id
                status, answer = await host.submit_prompt(body)
                if status != 200:
                    detail = describe_validation_error((False, answer.get("error"), [], answer.get("node_errors")))
                    return web.json_response({"error": "prompt rejected by ComfyUI", "detail": detail,
                                              "node_errors": answer.get("node_errors") or {}}, status=400)
                found = manager.lookup_prompt(str(answer.get("prompt_id")))
                if found is None:  # another pack's onprompt handler replaced the sweep
                    return _error(502, "no batch created", "ComfyUI queued the prompt, but the sweep hook did not "
                                  "expand it (another onprompt handler changed it?)")
                result = {"batch_id": found[0], "count": swept.total, "grid": grid, "prompt_id": answer.get("prompt_id")}
                if parsed.idempotency_key is not None:
                    store.remember(parsed.idempotency_key, fingerprint, result)
                return web.json_response(result, status=201)
        except RequestError as exc:
            return web.json_response({"error": "bad request", "detail": str(exc), "errors": exc.errors}, status=400)

    @routes.get("/wi/batches/{batch_id}/events")
    @_guarded
    async def wi_batch_events(request: web.Request) -> web.StreamResponse:
        batch_id = _batch_id(request)
        # Subscribed before the snapshot is read, so no event falls between them (one may come twice).
        subscription = hub.subscribe(batch_id, asyncio.get_running_loop())
        try:
            status = await _off_loop(lambda: service.status(batch_id, offset=0, limit=0, with_values=False))
            snapshot = {key: status.get(key) for key in SNAPSHOT_KEYS}
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                                   "X-Accel-Buffering": "no"})
            await response.prepare(request)
            try:
                await response.write(format_event("snapshot", snapshot, 0))
                if is_final("snapshot", snapshot):
                    return response
                sent = 1
                while True:
                    item = await subscription.next(keep_alive_s)
                    if item is None:
                        await response.write(KEEP_ALIVE)
                        continue
                    event, payload = item
                    if event == "closed":
                        break
                    await response.write(format_event(event, payload, sent))
                    sent += 1
                    if is_final(event, payload):
                        break
                await response.write_eof()
            except (ConnectionResetError, ConnectionError):
                logger.debug("WI: event stream of %s: client gone", batch_id)
            return response
        finally:
            subscription.close()

    @routes.get("/wi/openapi.json")
    @_guarded
    async def wi_openapi(request: web.Request) -> web.Response:
        return web.json_response(openapi.document())

    return hub
