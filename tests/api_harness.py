"""The headless-sweep routes (nodes/api_routes.py) and the pack's other routes over a real SweepService and the
ComfyUI stand-in, on one aiohttp test server and one loop (like ComfyUI). Used by tests/test_api_*.py,
tests/test_openapi*.py and tests/test_client*.py.

The stand-in's ``post_prompt`` is registered as the ``POST /prompt`` route on its ``PromptServer.routes``,
where ``ComfyHost.submit_prompt`` finds ComfyUI's own handler.
"""
from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

import comfy_standin
from comfyui_workflow_iterator.core.batch_outputs import BatchOutputs
from comfyui_workflow_iterator.core.iteration_state import IterationStateManager
from comfyui_workflow_iterator.core.sweep import SweepService
from comfyui_workflow_iterator.core.worker_registry import WorkerRegistry
from comfyui_workflow_iterator.nodes import _comfy, api_routes, routes
from comfyui_workflow_iterator.nodes.worker_routes import add_worker_routes


def plain_prompt() -> dict:
    """A workflow without WI nodes: the image size is what a sweep varies."""
    return {
        "4": {"class_type": "EmptyImage", "_meta": {"title": "canvas"},
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 7}},
        "5": {"class_type": "WISaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "WI"}},
    }


def sweep_body(**extra: Any) -> dict:
    body = {"prompt": plain_prompt(), "axes": [
        {"target": "EmptyImage.width", "values": "8, 16"},
        {"target": "canvas.height", "values": "8-24 (+8)", "name": "h"},
    ]}
    body.update(extra)
    return body


class ApiHarness:
    """A SweepService over the stand-in; every /wi/ route on an aiohttp test server, all on one loop."""

    def __init__(self, monkeypatch: Any, tmp_path: Any, *, window: int = 4, keep_alive_s: float = 15.0,
                 journal: Any = None, real_outputs: bool = False) -> None:
        """``real_outputs``: cells write real PNGs into the output folder and the batch gets its real grid,
        manifest and viewer (core's BatchOutputs); otherwise nothing is written and the grid is empty."""
        self.output_dir = os.path.join(str(tmp_path), "output")
        self.execute = self._write_cell if real_outputs else None
        self.loop = asyncio.new_event_loop()
        self.server = comfy_standin.install(monkeypatch, self.loop, tmp_path=tmp_path)
        self.server.routes.append(web.RouteDef("POST", "/prompt", self._post_prompt, {}))
        self.manager = IterationStateManager()
        self.host = _comfy.ComfyHost(self.server)
        self.host.run_background = lambda fn, *a: fn(*a)  # type: ignore[method-assign]
        self.grids: list[str] = []
        builder = BatchOutputs(self.manager, output_dir=lambda: self.output_dir, notify=lambda *a: None).build
        self.service = SweepService(self.manager, self.host, grid_builder=builder if real_outputs else self._grid,
                                    window=window, journal=journal)
        self.host.install(self.service)
        self.table = web.RouteTableDef()
        routes.add_routes(self.table, self.service)
        self.hub = api_routes.add_routes(self.table, self.service, keep_alive_s=keep_alive_s)
        # As nodes/__init__.py wires them: the worker list (only the local worker: nothing about a sweep changes).
        self.workers = WorkerRegistry(os.path.join(str(tmp_path), "wi_workers.json"))
        add_worker_routes(self.table, self.workers)
        app = web.Application()
        app.add_routes(self.table)
        self.client: TestClient = self.run(self._start(app))

    def _grid(self, batch_id: str) -> None:
        """Stands in for GridService: stores an empty grid so the batch completes."""
        self.grids.append(batch_id)
        self.manager.set_grid(batch_id, {"files": []})

    def _write_cell(self, prompt: dict, item: tuple) -> tuple[str, list, dict]:
        """Like WISaveImage: one PNG per cell in the batch folder, of the cell's EmptyImage size."""
        cell = item[3]["extra_pnginfo"]["wi_cell"]
        inputs = prompt["4"]["inputs"]
        folder = os.path.join(self.output_dir, cell["subfolder"])
        os.makedirs(folder, exist_ok=True)
        name = f"c{cell['index']:05}_n5_0.png"
        Image.new("RGB", (int(inputs["width"]), int(inputs["height"])), (cell["index"] * 40 % 256, 90, 160)).save(
            os.path.join(folder, name))
        outputs = {"5": {"images": [{"filename": name, "subfolder": cell["subfolder"], "type": "output"}]}}
        return "success", [("execution_success", {"prompt_id": item[1]})], outputs

    async def _post_prompt(self, request: Any) -> web.Response:
        status, body = await self.server.post_prompt(await request.json())
        return web.json_response(body, status=status)

    @staticmethod
    async def _start(app: web.Application) -> TestClient:
        client = TestClient(TestServer(app))
        await client.start_server()
        return client

    @property
    def base_url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def settle(self, rounds: int = 50) -> None:
        for _ in range(rounds):
            self.run(asyncio.sleep(0))

    def close(self) -> None:
        self.run(self.client.close())
        self.host._executor.shutdown(wait=False)
        comfy_standin.close_loop(self.loop)

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, str]:
        async def go() -> tuple[int, Any, str]:
            async with self.client.session.request(method, self.client.make_url(path), **kwargs) as response:
                text = await response.text()
                try:
                    body = json.loads(text)
                except ValueError:
                    body = None
                return response.status, body, text

        return self.run(go())

    def post_batch(self, body: Any) -> tuple[int, Any]:
        status, parsed, _ = self.request("POST", "/wi/batches", json=body)
        self.settle()
        return status, parsed

    def open_batches(self) -> bool:
        return any(b["state"] in ("pending", "active") for b in self.manager.list_batches())

    def run_all(self, limit: int = 1000, timeout: float = 30.0) -> list:
        """Run queued items until no batch has open cells. Waits (briefly, in real time) when the queue is
        empty but a batch is open: the feeder computes its run order on a thread, slower on a loaded machine."""
        ran: list = []
        deadline = time.monotonic() + timeout
        while len(ran) < limit:
            self.settle()
            item = self.server.run_next(self.execute)
            if item is not None:
                ran.append(item)
                continue
            if not self.open_batches() or time.monotonic() > deadline:
                break
            self.run(asyncio.sleep(0.01))
        self.settle()
        return ran


class ServedHarness:
    """An :class:`ApiHarness` whose loop runs on its own thread, so blocking clients (urllib) can call it."""

    def __init__(self, harness_factory: Any) -> None:
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.harness: ApiHarness | None = None
        self._factory = harness_factory
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()
        if not self.ready.wait(30):
            raise RuntimeError("harness did not start")
        if self.error is not None:
            raise self.error

    def _main(self) -> None:
        try:
            self.harness = self._factory()
        except BaseException as exc:  # reported to the test thread
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        harness = self.harness
        # A worker: run queued items like ComfyUI's worker thread would, between loop turns.
        while not self.stop.is_set():
            harness.run(asyncio.sleep(0.01))
            harness.server.run_next(harness.execute)
        harness.close()

    def call(self, fn: Any) -> Any:
        """Run ``fn()`` on the harness loop's thread and return its result."""
        assert self.harness is not None
        future = asyncio.run_coroutine_threadsafe(self._call(fn), self.harness.loop)
        return future.result(30)

    @staticmethod
    async def _call(fn: Any) -> Any:
        return fn()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
