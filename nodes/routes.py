"""HTTP routes under /wi/ (ComfyUI also serves them under /api/wi/). Handlers parse, call core, answer JSON.

Errors are JSON ``{"error", "detail"}``: unknown batch 404, finished batch 409, bad input 400, oversize 413.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from aiohttp import web

from ..core import choices
from ..core.errors import InvalidBatchState, UnknownBatchError, WIError
from ..core.paths import resolve_inside
from ..core.worker_registry import UnknownWorkerError, WorkerConfigError
from . import _comfy

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
#: Cells per page of ``GET /wi/status/{id}`` unless ``limit`` says otherwise, and the most one page may hold.
STATUS_PAGE_DEFAULT = 200
STATUS_PAGE_MAX = 1000
_BATCH_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


def _error(status: int, error: str, detail: str = "") -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


def _batch_id(request: web.Request) -> str:
    batch_id = request.match_info.get("batch_id", "")
    if not _BATCH_ID.match(batch_id):
        raise UnknownBatchError(batch_id)
    return batch_id


async def _json_body(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY_BYTES, actual_size=request.content_length)
    # read() returns what has arrived so far, not up to the limit: loop until EOF or past the limit.
    chunks, size = [], 0
    while True:
        chunk = await request.content.read(MAX_BODY_BYTES + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY_BYTES, actual_size=size)
    raw = b"".join(chunks)
    try:
        return json.loads(raw or b"{}")
    except (ValueError, RecursionError) as exc:  # RecursionError: deeply nested arrays
        raise ValueError(f"body is not JSON: {type(exc).__name__}: {exc}") from None


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"query parameter {name!r} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"query parameter {name!r} must be between {low} and {high}, got {value}")
    return value


async def _off_loop(fn: Callable[..., Any], *args: Any) -> Any:
    """Journal reads touch the disk: run them on a thread so the aiohttp loop keeps serving."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def _guarded(handler: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
    """The one boundary of every /wi/ handler (these routes, api_routes, worker_routes): errors become JSON."""
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except UnknownBatchError as exc:
            return _error(404, "unknown batch", str(exc))
        except UnknownWorkerError as exc:
            return _error(404, "unknown worker", str(exc))
        except WorkerConfigError as exc:  # names the field, so the Workers form can point at it
            return web.json_response({"error": "bad worker", "detail": str(exc), "field": exc.field}, status=400)
        except InvalidBatchState as exc:
            return _error(409, "batch already finished", str(exc))
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "request body too large", f"limit {MAX_BODY_BYTES} bytes")
        except (WIError, ValueError, TypeError) as exc:
            return _error(400, "bad request", str(exc))
        except Exception as exc:  # the boundary: log it, answer JSON, never a bare 500 page
            logger.exception("WI: route %s failed", request.path)
            return _error(500, "internal error", f"{type(exc).__name__}: {exc}")

    wrapper.__name__ = handler.__name__
    return wrapper


class _StatusCache:
    """Serialised status bodies, reused until any batch changes (or a second passes, so elapsed/ETA stay
    fresh): a panel in every tab polling while a sweep runs then costs the server almost nothing."""

    def __init__(self, manager: Any, size: int = 256) -> None:
        self._manager = manager
        self._size = size
        self._bodies: dict[str, tuple[tuple[int, int], bytes]] = {}

    async def respond(self, key: str, build: Callable[[], Any], *, off_loop: bool = False) -> web.Response:
        version = (self._manager.change_count(), int(time.monotonic()))
        hit = self._bodies.get(key)
        if hit is not None and hit[0] == version:
            body = hit[1]
        else:
            data = await _off_loop(build) if off_loop else build()
            body = json.dumps(data).encode()
            if len(self._bodies) >= self._size:
                self._bodies.pop(next(iter(self._bodies)))
            self._bodies[key] = (version, body)
        return web.Response(body=body, content_type="application/json")


def add_routes(routes: web.RouteTableDef, service: Any) -> None:
    """Register the handlers on ComfyUI's route table (at import time, before ComfyUI copies it)."""
    manager = service.manager
    status_cache = _StatusCache(manager)

    @routes.get("/wi/status")
    @_guarded
    async def wi_status(request: web.Request) -> web.Response:
        service.record_handed_over()  # before the cache's version is read: a finished cell is a change
        return await status_cache.respond("", lambda: {"batches": service.list_batches()})

    @routes.get("/wi/status/{batch_id}")
    @_guarded
    async def wi_batch_status(request: web.Request) -> web.Response:
        # Paged: a 100,000-cell batch answers with one page of cells, the values once on the axes, and every
        # cell's status as one character (cell_statuses), never with every cell's record.
        batch_id = _batch_id(request)
        offset = _int_query(request, "offset", 0, 0, 10**9)
        limit = _int_query(request, "limit", STATUS_PAGE_DEFAULT, 1, STATUS_PAGE_MAX)
        service.record_handed_over()
        return await status_cache.respond(
            f"{batch_id}?{offset}:{limit}",
            lambda: service.status(batch_id, offset=offset, limit=limit, with_values=False), off_loop=True)

    @routes.get("/wi/batches")
    @_guarded
    async def wi_batches(request: web.Request) -> web.Response:
        limit = _int_query(request, "limit", 50, 1, 500)
        offset = _int_query(request, "offset", 0, 0, 10**9)
        return web.json_response(await _off_loop(lambda: service.history(limit=limit, offset=offset)))

    @routes.post("/wi/resume/{batch_id}")
    @_guarded
    async def wi_resume(request: web.Request) -> web.Response:
        # Reads the journal and checks the batch's files (every saved image is decoded): off the loop.
        batch_id = _batch_id(request)
        return web.json_response(await _off_loop(lambda: service.resume(batch_id, output_dir=_comfy.output_directory())))

    @routes.post("/wi/cancel_batch/{batch_id}")
    @_guarded
    async def wi_cancel_batch(request: web.Request) -> web.Response:
        return web.json_response(service.cancel(_batch_id(request)))

    def batch_folder(batch_id: str) -> tuple[str | None, int]:
        """The batch's folder inside the output root (None when it has none) and its cell count."""
        # One cell's page: only the folder and the count are needed, not a 100,000-cell status.
        status = service.status(batch_id, limit=1, with_values=False)
        subfolder = str((status.get("meta") or {}).get("subfolder") or "")
        root = _comfy.output_directory()
        if not subfolder or root is None:
            return None, int(status.get("total") or 0)
        return resolve_inside(root, subfolder), int(status.get("total") or 0)

    # Registered before the file route below, which would otherwise take "choices" for a file name.
    @routes.get("/wi/batch/{batch_id}/choices")
    @routes.put("/wi/batch/{batch_id}/choices")
    @_guarded
    async def wi_batch_choices(request: web.Request) -> web.Response:
        # The viewer's and the Sweeps panel's stars and rejections, stored in batch.json (core/choices.py).
        batch_id = _batch_id(request)
        folder, total = await _off_loop(batch_folder, batch_id)
        if folder is None:
            return _error(404, "unknown batch folder", batch_id)
        if request.method == "PUT":
            body = await _json_body(request)
            saved = await _off_loop(lambda: choices.save_choices(folder, body, cell_count=total or None))
        else:
            saved = await _off_loop(choices.read_choices, folder)
        return web.json_response(saved.as_dict())

    @routes.get("/wi/batch/{batch_id}/{filename}")
    @_guarded
    async def wi_batch_file(request: web.Request) -> web.StreamResponse:
        # Serves a batch folder's files (the HTML viewer as a page, and the images it links relatively);
        # ComfyUI's /view would offer the viewer as a download.
        batch_id = _batch_id(request)
        filename = request.match_info.get("filename", "")
        if not _FILENAME.match(filename):
            return _error(404, "unknown file", filename)
        folder, _ = await _off_loop(batch_folder, batch_id)
        if folder is None:
            return _error(404, "unknown file", filename)
        # Checked against the batch folder, not the output root: a link in the folder pointing elsewhere in
        # output/ (another batch, the user's own files) is not this batch's file.
        try:
            path = resolve_inside(folder, filename)
        except ValueError:
            return _error(404, "unknown file", filename)
        if not os.path.isfile(path):
            return _error(404, "unknown file", filename)
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    # The badge's preview parses and estimates the grid (seconds for a 10,000-value axis): on its own thread,
    # so the loop keeps answering /queue meanwhile. One thread: previews from several tabs wait for each other
    # rather than multiply the GIL contention the loop sees. The thread starts on the first preview.
    preview_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wi-preview")

    @routes.post("/wi/preview")
    @_guarded
    async def wi_preview(request: web.Request) -> web.Response:
        body = await _json_body(request)
        answer = await asyncio.get_running_loop().run_in_executor(preview_executor, service.preview, body)
        return web.json_response(answer)
