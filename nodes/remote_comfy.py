"""The :class:`core.ports.RemoteWorkerPort` over other ComfyUI servers' own HTTP + websocket API (issue 14).

Stock ComfyUI is enough on a worker (0.3.64 and 0.8.0 both accept a client-chosen ``prompt_id`` in
``POST /prompt`` and a targeted ``POST /interrupt {"prompt_id"}``):

* ``POST /prompt`` with the prompt id chosen by the dispatcher; a prompt id this port already sent to the
  worker is looked up in ``/history`` and ``/queue`` first, so a retry never makes a second job;
* one websocket per worker (``/ws?clientId=``) wakes the waiting cell the moment its prompt ends;
  ``/history/{id}`` is the record read then (and polled as a fallback when the socket is quiet or dropped);
* ``/view`` fetches outputs, ``/upload/image`` sends missing ``LoadImage`` inputs;
* cancel: ``POST /queue {"delete"}`` for our queued ids, then ``POST /interrupt {"prompt_id"}`` only when
  ``/queue`` says the running prompt is ours, so other users' jobs are never touched.

aiohttp comes with ComfyUI; this module is imported only inside ComfyUI.
"""
from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
from PIL import Image

from ..core import atomic_files, paths
from ..core.ports import RemoteOutcome, RemoteRejected, RemoteUnavailable
from ..core.sweep import classify_outcome, describe_validation_error
from ..core.workers import WorkerConfig
from . import _comfy
from .save_node import _png_writer, cell_pnginfo, with_image_info

logger = logging.getLogger(__name__)

#: One HTTP request to a worker; a worker slower than this to answer anything is treated as gone.
REQUEST_TIMEOUT_S = 30.0
#: ``/history`` is read at least this often while a cell runs (a dropped or quiet websocket).
POLL_INTERVAL_S = 2.0
_REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)


def _headers(worker: WorkerConfig) -> dict[str, str]:
    if not worker.auth_header or ":" not in worker.auth_header:
        return {}
    name, value = worker.auth_header.split(":", 1)
    return {name.strip(): value.strip()}


class _Link:
    """One worker: its HTTP session, its websocket and the prompts waiting for an end."""

    def __init__(self, worker: WorkerConfig) -> None:
        self.worker = worker
        self.base = str(worker.url).rstrip("/")
        self.client_id = "wi-" + uuid.uuid4().hex
        self.session: aiohttp.ClientSession | None = None
        self.ws_task: asyncio.Task[None] | None = None
        self.waiting: dict[str, asyncio.Event] = {}
        self.sent: set[str] = set()
        self.last_seen = 0.0
        self.ws_alive = False

    async def open(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            # No session-wide total timeout: it would also bound the websocket's lifetime. Each request has its own.
            self.session = aiohttp.ClientSession(headers=_headers(self.worker))
        if self.ws_task is None or self.ws_task.done():
            self.ws_task = asyncio.get_running_loop().create_task(self._listen())
        return self.session

    async def _listen(self) -> None:
        """Wake waiting prompts on their end events; reconnect while prompts wait."""
        assert self.session is not None
        while True:
            try:
                async with self.session.ws_connect(f"{self.base}/ws?clientId={self.client_id}", heartbeat=20) as ws:
                    self.ws_alive = True
                    async for message in ws:
                        self.last_seen = time.monotonic()
                        if message.type != aiohttp.WSMsgType.TEXT:
                            continue
                        self._on_message(message.data)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                logger.debug("WI: websocket to %s dropped", self.base, exc_info=True)
            self.ws_alive = False
            for event in self.waiting.values():
                event.set()  # each waiter re-reads /history and finds out whether the worker is still there
            if not self.waiting:
                return
            await asyncio.sleep(1.0)

    def _on_message(self, raw: str) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return
        data = message.get("data") if isinstance(message, Mapping) else None
        if not isinstance(data, Mapping):
            return
        kind = message.get("type")
        prompt_id = data.get("prompt_id")
        if kind == "executing" and data.get("node") is None:
            event = self.waiting.get(str(prompt_id))
        elif kind in ("execution_success", "execution_error", "execution_interrupted"):
            event = self.waiting.get(str(prompt_id))
        else:
            return
        if event is not None:
            event.set()

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        session = await self.open()
        try:
            async with session.request(method, self.base + path, timeout=_REQUEST_TIMEOUT, **kwargs) as response:
                body = await response.read()
                self.last_seen = time.monotonic()
                if response.status >= 500:
                    raise RemoteUnavailable(f"{self.worker.name} answered {response.status} to {method} {path}")
                if "json" in (response.content_type or ""):
                    return response.status, json.loads(body or b"null")
                return response.status, body
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            raise RemoteUnavailable(f"{self.worker.name} ({self.base}): {type(exc).__name__}: {exc}") from exc


class RemoteComfy:
    """Talks to every configured remote worker; one :class:`_Link` each, made on first use (on the loop)."""

    def __init__(self) -> None:
        self._links: dict[str, _Link] = {}

    def _link(self, worker: WorkerConfig) -> _Link:
        link = self._links.get(worker.id)
        if link is None or link.base != str(worker.url).rstrip("/") or link.worker != worker:
            link = self._links[worker.id] = _Link(worker)
        return link

    async def submit(self, worker: WorkerConfig, prompt_id: str, prompt: dict[str, Any],
                     extra_data: dict[str, Any]) -> None:
        link = self._link(worker)
        await link.open()
        link.waiting.setdefault(prompt_id, asyncio.Event())
        if prompt_id in link.sent and await self._known(link, prompt_id):
            return  # a retry of a post whose answer was lost: the worker has the job already
        extra = {k: v for k, v in extra_data.items() if k != "client_id"}
        body = {"prompt": prompt, "prompt_id": prompt_id, "client_id": link.client_id, "extra_data": extra}
        link.sent.add(prompt_id)
        status, answer = await link.request("POST", "/prompt", json=body)
        if status == 400:
            answer = answer if isinstance(answer, Mapping) else {}
            raise RemoteRejected(describe_validation_error((False, answer.get("error"), [], answer.get("node_errors"))))
        if status != 200:
            raise RemoteUnavailable(f"{worker.name} answered {status} to POST /prompt")

    async def _known(self, link: _Link, prompt_id: str) -> bool:
        status, history = await link.request("GET", f"/history/{prompt_id}")
        if status == 200 and isinstance(history, Mapping) and prompt_id in history:
            return True
        status, queue = await link.request("GET", "/queue")
        items = [*(queue or {}).get("queue_running", []), *(queue or {}).get("queue_pending", [])] if isinstance(queue, Mapping) else []
        return any(isinstance(item, list) and len(item) > 1 and item[1] == prompt_id for item in items)

    async def wait_done(self, worker: WorkerConfig, prompt_id: str, timeout: float) -> RemoteOutcome:
        link = self._link(worker)
        event = link.waiting.setdefault(prompt_id, asyncio.Event())
        try:
            while True:
                # Cleared before the read, not after: an end event arriving while /history answers must wake
                # the next wait at once instead of being lost until the next poll.
                event.clear()
                status, history = await link.request("GET", f"/history/{prompt_id}")
                entry = history.get(prompt_id) if status == 200 and isinstance(history, Mapping) else None
                if isinstance(entry, Mapping) and isinstance(entry.get("status"), Mapping) and entry["status"].get("completed") is not None:
                    outcome, reason = classify_outcome(entry["status"])
                    return RemoteOutcome(outcome, reason, entry.get("outputs"))  # type: ignore[arg-type]
                # A long cell (or one queued behind other users' jobs) is fine while the worker answers; only
                # ``timeout`` seconds without any answer or event lose it.
                if time.monotonic() - link.last_seen > timeout:
                    raise RemoteUnavailable(f"{worker.name}: no sign of life for {timeout:.0f}s")
                if not link.ws_alive:
                    await link.open()  # reconnect; a dead worker fails the next request
                try:
                    await asyncio.wait_for(event.wait(), POLL_INTERVAL_S)
                except asyncio.TimeoutError:
                    pass
        finally:
            link.waiting.pop(prompt_id, None)

    async def fetch(self, worker: WorkerConfig, ref: Mapping[str, str]) -> bytes:
        status, body = await self._link(worker).request("GET", "/view", params=dict(ref))
        if status != 200 or not isinstance(body, bytes):
            raise RemoteUnavailable(f"{worker.name}: /view of {ref.get('filename')} answered {status}")
        return body

    async def ensure_input(self, worker: WorkerConfig, name: str, local_path: str) -> None:
        link = self._link(worker)
        status, _ = await link.request("GET", "/view", params={"filename": name, "type": "input"})
        if status == 200 or not os.path.isfile(local_path):
            return  # there already (or not here either: the worker's validation will say so)
        form = aiohttp.FormData()
        with open(local_path, "rb") as handle:
            form.add_field("image", handle.read(), filename=os.path.basename(name))
        subfolder = os.path.dirname(name)
        if subfolder:
            form.add_field("subfolder", subfolder)
        form.add_field("overwrite", "false")
        status, _ = await link.request("POST", "/upload/image", data=form)
        if status != 200:
            raise RemoteUnavailable(f"{worker.name}: uploading {name} answered {status}")

    async def cancel(self, worker: WorkerConfig, prompt_ids: Sequence[str]) -> None:
        link = self._link(worker)
        ours = set(prompt_ids)
        await link.request("POST", "/queue", json={"delete": list(ours)})
        _, queue = await link.request("GET", "/queue")
        running = (queue or {}).get("queue_running", []) if isinstance(queue, Mapping) else []
        for item in running:
            if isinstance(item, list) and len(item) > 1 and item[1] in ours:
                # Both 0.3.64 and 0.8 re-check the id against the running prompt before interrupting.
                await link.request("POST", "/interrupt", json={"prompt_id": item[1]})

    def store_output(self, data: bytes, subfolder: str, filename: str, prompt: dict[str, Any],
                     extra_pnginfo: Any, node_id: str, number: int, count: int) -> None:
        output_dir = _comfy.output_directory()
        if output_dir is None:
            raise RuntimeError("no output directory to store a remote cell's image in")
        target = paths.resolve_inside(output_dir, subfolder, filename)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        image = Image.open(io.BytesIO(data))
        image.load()
        base = None if _comfy.metadata_disabled() else cell_pnginfo(prompt, extra_pnginfo)
        metadata = None if base is None else with_image_info(base, node_id, number, count)
        atomic_files.write_with(target, _png_writer(image, metadata))

    async def close(self) -> None:
        for link in self._links.values():
            if link.ws_task is not None:
                link.ws_task.cancel()
            if link.session is not None:
                await link.session.close()
