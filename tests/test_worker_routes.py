"""nodes/worker_routes.py and nodes/worker_health.py over aiohttp's test server (no network beyond loopback).

The routes run on an aiohttp test server with a real WorkerRegistry; the probe asks a second aiohttp test server
that plays a remote ComfyUI's ``GET /queue`` (or misbehaves).
"""
from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from comfyui_workflow_iterator.core.worker_registry import WorkerRegistry, workers_file_path
from comfyui_workflow_iterator.core.workers import LOCAL_WORKER_ID
from comfyui_workflow_iterator.nodes import worker_routes
from comfyui_workflow_iterator.nodes.worker_health import HealthProbe

ENTRY_KEYS = {"id", "name", "url", "local", "weight", "enabled", "has_auth", "health", "state"}
HEALTH_KEYS = {"reachable", "queue_depth", "last_seen", "error"}


class Harness:
    def __init__(self, tmp_path: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.registry = WorkerRegistry(workers_file_path(str(tmp_path / "user")))
        self.events: list[tuple[str, dict]] = []
        self.changes = 0
        table = web.RouteTableDef()
        worker_routes.add_worker_routes(table, self.registry, send_event=lambda e, d: self.events.append((e, d)),
                                        on_change=self._changed)
        app = web.Application()
        app.add_routes(table)
        self.client = TestClient(TestServer(app), loop=self.loop)
        self.run(self.client.start_server())

    def _changed(self) -> None:
        self.changes += 1

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, str]:
        async def go() -> tuple[int, Any, str]:
            async with self.client.request(method, path, **kwargs) as response:
                text = await response.text()
                try:
                    return response.status, json.loads(text), text
                except ValueError:
                    return response.status, None, text
        return self.run(go())

    def close(self) -> None:
        self.run(self.client.close())
        self.loop.close()


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path)
    yield harness
    harness.close()


def test_get_lists_the_local_worker_alone_without_a_file(h):
    status, body, _ = h.request("GET", "/wi/workers")
    assert status == 200
    (local,) = body["workers"]
    assert set(local) == ENTRY_KEYS and set(local["health"]) == HEALTH_KEYS
    assert local["id"] == LOCAL_WORKER_ID and local["url"] is None and local["local"] is True
    assert local["state"] == "idle" and local["has_auth"] is False and local["enabled"] is True


def test_post_adds_a_worker_and_answers_the_entry_without_the_auth_value(h):
    status, entry, text = h.request("POST", "/wi/workers", json={
        "url": "http://127.0.0.1:9/", "name": "gpu", "auth_header": "Authorization: Bearer SECRET-123", "weight": 2})
    assert status == 200, entry
    assert set(entry) == ENTRY_KEYS
    assert entry["url"] == "http://127.0.0.1:9" and entry["has_auth"] is True and entry["weight"] == 2.0
    assert entry["state"] == "unreachable" and entry["health"]["error"] == "not checked yet"
    assert "SECRET-123" not in text and "auth_header" not in entry
    _, listing, list_text = h.request("GET", "/wi/workers")
    assert [w["id"] for w in listing["workers"]] == [LOCAL_WORKER_ID, entry["id"]]
    assert "SECRET-123" not in list_text
    assert h.changes == 1


def test_get_says_why_a_broken_file_is_not_used(h, tmp_path):
    path = workers_file_path(str(tmp_path / "user"))
    import os

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write('{"workers": [{"id": "a", "url": "gopher://x"}]}')
    status, body, _ = h.request("GET", "/wi/workers")
    assert status == 200 and [w["id"] for w in body["workers"]] == [LOCAL_WORKER_ID]
    assert "workers[0].url" in body["file_error"]
    assert h.request("GET", "/wi/workers")[1]["file_error"] is not None
    os.remove(path)
    assert h.request("GET", "/wi/workers")[1]["file_error"] is None


def test_post_with_id_changes_a_worker(h):
    _, added, _ = h.request("POST", "/wi/workers", json={"url": "http://127.0.0.1:9"})
    status, changed, _ = h.request("POST", "/wi/workers", json={"id": added["id"], "url": "http://127.0.0.1:9",
                                                                 "enabled": False})
    assert status == 200 and changed["enabled"] is False and changed["state"] == "disabled"


def test_post_turns_the_local_worker_off(h):
    status, entry, _ = h.request("POST", "/wi/workers", json={"id": LOCAL_WORKER_ID, "enabled": False})
    assert status == 200 and entry["state"] == "disabled"
    assert [w.id for w in h.registry.workers()] == []


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "ftp://x"}, "url"),
    ({"url": "http://u:p@x:1"}, "url"),
    ({"url": "http://x:1", "weight": 0}, "weight"),
    ({"url": "http://x:1", "auth_header": "token"}, "auth_header"),
    ({"url": "http://x:1", "extra": 1}, "extra"),
    ([1, 2], "body"),
])
def test_post_bad_input_is_400_naming_the_field(h, body, field):
    status, answer, _ = h.request("POST", "/wi/workers", json=body)
    assert status == 400
    assert answer["error"] == "bad worker" and answer["field"] == field and answer["detail"].startswith(f"{field}: ")


def test_post_not_json_is_400(h):
    status, answer, _ = h.request("POST", "/wi/workers", data=b"{nope", headers={"Content-Type": "application/json"})
    assert status == 400 and "not JSON" in answer["detail"]


def test_post_duplicate_url_is_400(h):
    h.request("POST", "/wi/workers", json={"url": "http://127.0.0.1:9"})
    status, answer, _ = h.request("POST", "/wi/workers", json={"url": "http://127.0.0.1:9/"})
    assert status == 400 and answer["field"] == "url" and "already" in answer["detail"]


def test_post_unknown_id_is_404(h):
    status, answer, _ = h.request("POST", "/wi/workers", json={"id": "nope", "url": "http://127.0.0.1:9"})
    assert status == 404 and answer == {"error": "unknown worker", "detail": 'unknown worker "nope"'}


def test_delete_removes_and_unknown_is_404_and_local_is_400(h):
    _, added, _ = h.request("POST", "/wi/workers", json={"url": "http://127.0.0.1:9"})
    status, answer, _ = h.request("DELETE", f"/wi/workers/{added['id']}")
    assert status == 200 and answer == {"deleted": added["id"]}
    assert [w["id"] for w in h.request("GET", "/wi/workers")[1]["workers"]] == [LOCAL_WORKER_ID]
    assert h.request("DELETE", f"/wi/workers/{added['id']}")[0] == 404
    status, answer, _ = h.request("DELETE", f"/wi/workers/{LOCAL_WORKER_ID}")
    assert status == 400 and answer["field"] == "id"


def test_state_changes_are_sent_as_wi_worker_state(h):
    _, added, _ = h.request("POST", "/wi/workers", json={"url": "http://127.0.0.1:9"})
    h.registry.report(added["id"], reachable=True, queue_depth=0)
    h.request("DELETE", f"/wi/workers/{added['id']}")
    assert h.events == [
        ("wi.worker_state", {"worker_id": added["id"], "state": "unreachable", "batch_id": None,
                             "detail": "not checked yet"}),
        ("wi.worker_state", {"worker_id": added["id"], "state": "idle", "batch_id": None, "detail": None}),
    ]


# ------------------------------------------------------------------------------------------ the probe
class FakeRemote:
    """A loopback aiohttp server answering ``GET /queue`` like a ComfyUI (or as told)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, handler: Any) -> None:
        app = web.Application()
        app.router.add_get("/queue", handler)
        self.server = TestServer(app, loop=loop)
        loop.run_until_complete(self.server.start_server())

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


def probe_once(h: Harness, **kwargs: Any) -> None:
    import aiohttp

    probe = HealthProbe(h.registry, **kwargs)

    async def go() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=kwargs.get("timeout_s", 3.0))) as s:
            await probe.probe_all(s)

    h.run(go())


def test_probe_reports_depth_and_sends_the_auth_header(h):
    seen = []

    async def queue(request):
        seen.append(request.headers.get("X-Token"))
        return web.json_response({"queue_running": [["r"]], "queue_pending": [["a"], ["b"]]})

    remote = FakeRemote(h.loop, queue)
    _, added, _ = h.request("POST", "/wi/workers", json={"url": remote.url, "auth_header": "X-Token: abc"})
    probe_once(h)
    assert seen == ["abc"]
    _, listing, _ = h.request("GET", "/wi/workers")
    entry = next(w for w in listing["workers"] if w["id"] == added["id"])
    assert entry["state"] == "busy" and entry["health"]["queue_depth"] == 3 and entry["health"]["reachable"]
    assert isinstance(entry["health"]["last_seen"], float)
    h.run(remote.server.close())


def test_probe_reports_the_local_queue_depth(h):
    probe_once(h, local_depth=lambda: 0)
    assert h.registry.state(LOCAL_WORKER_ID) == "idle"
    probe_once(h, local_depth=lambda: 2)
    assert h.registry.state(LOCAL_WORKER_ID) == "busy" and h.registry.health(LOCAL_WORKER_ID).queue_depth == 2


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_probe_marks_a_refused_connection_unreachable(h):
    _, added, _ = h.request("POST", "/wi/workers", json={"url": f"http://127.0.0.1:{_closed_port()}"})
    probe_once(h)
    health = h.registry.health(added["id"])
    assert not health.reachable and health.error.startswith("cannot connect")


def test_probe_marks_a_401_as_an_auth_problem(h):
    async def refuse(request):
        return web.json_response({"error": "no"}, status=401)

    remote = FakeRemote(h.loop, refuse)
    _, added, _ = h.request("POST", "/wi/workers", json={"url": remote.url})
    probe_once(h)
    assert "auth header" in h.registry.health(added["id"]).error
    h.run(remote.server.close())


def test_probe_marks_a_server_that_is_not_comfyui(h):
    async def not_comfy(request):
        return web.Response(text="<html>hello</html>", content_type="text/html")

    remote = FakeRemote(h.loop, not_comfy)
    _, added, _ = h.request("POST", "/wi/workers", json={"url": remote.url})
    probe_once(h)
    health = h.registry.health(added["id"])
    assert not health.reachable and health.error == "GET /queue did not answer JSON: is this a ComfyUI server?"
    h.run(remote.server.close())


def test_probe_marks_json_that_is_not_a_comfyui_queue(h):
    async def other(request):
        return web.json_response({"status": "ok"})

    remote = FakeRemote(h.loop, other)
    _, added, _ = h.request("POST", "/wi/workers", json={"url": remote.url})
    probe_once(h)
    assert h.registry.health(added["id"]).error == ("GET /queue has no queue_running/queue_pending lists: "
                                                    "is this a ComfyUI server?")
    h.run(remote.server.close())


def test_probe_times_out_a_server_that_never_answers(h):
    async def hang(request):
        await asyncio.sleep(30)
        return web.json_response({})

    remote = FakeRemote(h.loop, hang)
    _, added, _ = h.request("POST", "/wi/workers", json={"url": remote.url})
    probe_once(h, timeout_s=0.2)
    assert h.registry.health(added["id"]).error == "no answer within 0.2 s"
    h.run(remote.server.close())


def test_probe_skips_disabled_workers(h):
    calls = []

    async def queue(request):
        calls.append(1)
        return web.json_response({"queue_running": [], "queue_pending": []})

    remote = FakeRemote(h.loop, queue)
    h.request("POST", "/wi/workers", json={"url": remote.url, "enabled": False})
    probe_once(h)
    assert calls == []
    h.run(remote.server.close())


def test_probe_loop_wakes_on_change_and_keeps_running(h):
    """start() then wake(): a worker added after the first round is asked without waiting the interval."""
    calls = []

    async def queue(request):
        calls.append(1)
        return web.json_response({"queue_running": [], "queue_pending": []})

    remote = FakeRemote(h.loop, queue)
    probe = HealthProbe(h.registry, interval_s=3600)
    probe.start(h.loop)

    async def scenario() -> None:
        for _ in range(50):
            await asyncio.sleep(0.01)
        h.registry.save({"url": remote.url})
        probe.wake()
        for _ in range(300):
            if calls:
                break
            await asyncio.sleep(0.01)
        await probe.stop()

    h.run(scenario())
    assert calls == [1]
    h.run(remote.server.close())
