"""The Workers section and the per-batch worker / choices display, in headless Chromium against a real ComfyUI.

Same parametrisation as test_browser.py (every backend x every frontend, both node renderers); the scenarios
are in ``workers_driver.mjs``: add a worker through the panel's form (a URL with credentials is refused naming
the field), see it listed "unreachable" with the probe's reason (nobody listens on its port), its auth header
never answered back, delete it; and a real sweep whose status reads carry the contract's ``worker`` /
``workers`` fields and a choices answer, rendered on the card.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pytest

import ran_registry
from test_browser import BUNDLED, RENDERERS, RUNS, _prerequisites, _say, _skip, frontend_label, run_label
from tools.comfy_harness import ComfyServer

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workers_driver.mjs")
DRIVER_TIMEOUT_S = 600


def _dead_port() -> int:
    """A loopback port with nobody listening (bound, then released: nothing else is told to use it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module", params=RUNS, ids=[run_label(b, f) for b, f in RUNS])
def workers_run(request):
    backend, frontend = request.param
    from pathlib import Path

    if frontend != BUNDLED and not (Path(frontend) / "index.html").is_file():
        _skip(f"frontend {frontend} not found (no index.html)", frontend_label(frontend))
    chromium, node = _prerequisites()
    label = run_label(backend, frontend)
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e-workers" / label
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "workers_results.json").unlink(missing_ok=True)
    server = ComfyServer(extra_args=[] if frontend == BUNDLED else ["--front-end-root", frontend], backend=backend)
    try:
        server.start()
        env = {**os.environ, "WI_COMFY_URL": server.url, "WI_E2E_ARTIFACTS": str(artifacts), "WI_CHROMIUM": chromium,
               "WI_E2E_RENDERERS": ",".join(RENDERERS), "WI_DEAD_PORT": str(_dead_port())}
        started = time.monotonic()
        done = subprocess.run([node, DRIVER], cwd=os.path.dirname(DRIVER), env=env, capture_output=True, text=True,
                              timeout=DRIVER_TIMEOUT_S)
        _say(f"workers UI {label}: driver took {time.monotonic() - started:.0f}s\n{done.stdout}{done.stderr[-3000:]}")
        results = artifacts / "workers_results.json"
        if not results.is_file():
            pytest.fail(f"the workers driver wrote no results:\n{done.stdout}\n{done.stderr}\n{server.log_tail()}")
        report = json.loads(results.read_text())
        for renderer in RENDERERS:
            rows = [r for r in report["results"] if r.get("renderer") == renderer]
            failed = [r["name"] for r in rows if not r["ok"]]
            ran_registry.record_ran("frontend", f"workers UI {label} x renderer {renderer}",
                                    f"{'PASS' if rows and not failed else 'FAIL ' + ', '.join(failed)} ({len(rows)} scenarios)")
        yield {"report": report, "server": server, "label": label, "artifacts": artifacts}
    finally:
        server.cleanup()


def _scenario(run: dict, name: str, renderer: str) -> dict:
    results = run["report"]["results"]
    setup = [r for r in results if r["name"] == "setup" and r["renderer"] == renderer]
    if setup:
        pytest.fail(f"the page did not come up ({run['label']}, renderer {renderer}): {setup[0]['error']}")
    result = next((r for r in results if r["name"] == name and r["renderer"] == renderer), None)
    assert result is not None, f"scenario {name} (renderer {renderer}) did not run"
    assert result["ok"], f"{run['label']}/{renderer}/{name}: {result['error']} (see {run['artifacts']})"
    return result["data"]


@pytest.mark.parametrize("renderer", RENDERERS)
def test_worker_added_through_the_panel_is_listed_unreachable_and_deleted(workers_run, renderer):
    data = _scenario(workers_run, "workers_crud", renderer)
    assert "credentials" in data["refused"] and "url" in data["refused"]
    listed = data["listed"]
    assert listed["state"] == "unreachable" and listed["stateLabel"] == "unreachable"
    assert "cannot connect" in listed["line"] and "auth" in listed["line"]
    assert "1 of 2 available" in listed["summary"]
    assert data["entryId"] not in data["afterIds"] and data["afterIds"] == ["local"]
    code, body = workers_run["server"].get("/wi/workers")
    assert code == 200 and [w["id"] for w in body["workers"]] == ["local"]


@pytest.mark.parametrize("renderer", RENDERERS)
def test_panel_shows_the_worker_of_each_cell_each_workers_part_and_the_stars(workers_run, renderer):
    data = _scenario(workers_run, "batch_workers", renderer)
    assert [tile["worker"] for tile in data["tiles"]] == ["This server", "gpu-e2e"]
    assert data["tiles"][1]["title"].endswith("worker: gpu-e2e\n★ starred")
    assert [tile["choice"] for tile in data["tiles"]] == [None, "starred"]
    chips = {chip["id"]: chip for chip in data["chips"]}
    assert chips["w-e2e"]["text"] == "gpu-e2e · idle · 1 done"
    assert chips["w-bad"]["text"].startswith("no-models · excluded") and "missing checkpoint" in chips["w-bad"]["title"]
    assert "★ 1" in data["choices"]


@pytest.mark.parametrize("renderer", RENDERERS)
def test_no_console_errors_from_the_workers_ui(workers_run, renderer):
    assert _scenario(workers_run, "console_clean", renderer) == []


# ------------------------------------------------------------------------------------------ server level
from test_browser import BACKENDS, FIXTURE_NODES  # noqa: E402

PROBE_WAIT_S = 45.0  # a 10 s probe interval, a 3 s timeout, and a loaded 2-core machine


def _sleep_prompt(seconds: float) -> dict:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 1}},
        "2": {"class_type": "WITestSleep", "inputs": {"image": ["1", 0], "seconds": seconds}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }


def _wait_state(master: ComfyServer, worker_id: str, wanted: str) -> dict:
    deadline = time.monotonic() + PROBE_WAIT_S
    entry: dict = {}
    while time.monotonic() < deadline:
        code, body = master.get("/wi/workers")
        assert code == 200, body
        entry = next(w for w in body["workers"] if w["id"] == worker_id)
        if entry["state"] == wanted:
            return entry
        time.sleep(0.5)
    raise AssertionError(f"worker {worker_id} never became {wanted}; last: {entry}")


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b is not None] or [None],
                         ids=lambda b: b.label if b is not None else "no-backend")
def test_probe_follows_a_real_comfyui_worker_idle_busy_and_killed(backend):
    """Two real servers: the master (this pack) probes the other's GET /queue: idle, busy while a prompt sleeps
    there, unreachable once it is killed; the master's own queue makes the local worker busy too."""
    if backend is None:
        _skip("no ComfyUI installed", "workers probe")
    master = ComfyServer(extra_packs={"wi_test_nodes": FIXTURE_NODES}, backend=backend)
    worker = ComfyServer(extra_packs={"wi_test_nodes": FIXTURE_NODES}, backend=backend)
    try:
        master.start()
        worker.start()
        ran_registry.record_ran("backend", f"workers probe {backend.label}")
        code, added = master.post("/wi/workers", {"url": worker.url, "name": "second"})
        assert code == 200, added
        idle = _wait_state(master, added["id"], "idle")
        assert idle["health"]["reachable"] and idle["health"]["queue_depth"] == 0
        assert isinstance(idle["health"]["last_seen"], float)

        code, queued = worker.queue_prompt(_sleep_prompt(25.0))
        assert code == 200, queued
        busy = _wait_state(master, added["id"], "busy")
        assert busy["health"]["queue_depth"] >= 1

        worker.stop(kill=True)
        gone = _wait_state(master, added["id"], "unreachable")
        assert gone["health"]["error"] and gone["health"]["queue_depth"] is None
        assert gone["health"]["last_seen"] >= idle["health"]["last_seen"], "last seen is kept from the last answer"

        code, queued = master.queue_prompt(_sleep_prompt(25.0))
        assert code == 200, queued
        local = _wait_state(master, "local", "busy")
        assert local["health"]["queue_depth"] >= 1
    finally:
        worker.cleanup()
        master.cleanup()
