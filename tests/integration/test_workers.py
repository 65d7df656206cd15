"""Issue 14 against real servers: one sweep over three ComfyUI 0.3.64 processes on loopback — the master with
this pack, two stock workers (no pack; only the test nodes). The master's worker list comes from
``fixture_workers`` (a file the test rewrites between batches), standing in for the worker registry.

Order matters: the kill test runs last (it leaves one worker dead).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ran_registry
from tools.comfy_harness import ComfyServer, locate_backend

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
TEST_NODES = {"wi_test_nodes": HERE / "fixture_nodes"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    backend = locate_backend()
    if isinstance(backend, str):
        ran_registry.skip("backend", "three ComfyUI servers", backend)
    ran_registry.record_ran("backend", f"three servers: {backend.describe()} (master + 2 stock workers)")
    workers_file = tmp_path_factory.mktemp("workers") / "workers.json"
    workers_file.write_text("[]")
    servers = []
    try:
        for _ in range(2):
            servers.append(ComfyServer(extra_packs=TEST_NODES, backend=backend, with_pack=False).start(timeout=300))
        master = ComfyServer(extra_packs={**TEST_NODES, "wi_test_workers": HERE / "fixture_workers"}, backend=backend,
                             env={"WI_TEST_WORKERS_FILE": str(workers_file)}).start(timeout=300)
        servers.insert(0, master)
        yield master, servers[1], servers[2], workers_file
    finally:
        for server in servers:
            server.cleanup()


def _use_workers(workers_file: Path, *remote: ComfyServer) -> None:
    entries = [{"id": "local", "name": "master", "url": None}]
    entries += [{"id": f"w{i}", "name": f"worker {i}", "url": s.url} for i, s in enumerate(remote, 1)]
    workers_file.write_text(json.dumps(entries if remote else []))


def _sweep(seconds: float, name: str) -> dict:
    """24 cells: colour x sigma x radius, each cell waiting ``seconds`` (without CPU) before its blur."""
    return {
        "1": {"class_type": "WIParameterInt", "inputs": {"name": "color", "values": "10, 60, 120, 200"}},
        "2": {"class_type": "WIParameterFloat", "inputs": {"name": "sigma", "values": "0.5, 1.0, 1.5", "previous": ["1", 0]}},
        "3": {"class_type": "WIParameterInt", "inputs": {"name": "radius", "values": "1, 3", "previous": ["2", 0]}},
        "4": {"class_type": "WIIterator", "inputs": {"parameters": ["3", 0], "enabled": True, "mode": "matrix",
                                                     "batch_name": name}},
        "10": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": ["1", 1]}},
        "11": {"class_type": "WITestSleep", "inputs": {"image": ["10", 0], "seconds": seconds}},
        "13": {"class_type": "ImageBlur", "inputs": {"image": ["11", 0], "blur_radius": ["3", 1], "sigma": ["2", 1]}},
        "20": {"class_type": "WISaveImage", "inputs": {"images": ["13", 0], "filename_prefix": "WI"}},
        "21": {"class_type": "WIGridCompositor", "inputs": {"x_axis": "", "y_axis": "", "multi_axis": "pages",
                                                            "format": "png", "label_font_size": 12, "cell_gap": 2,
                                                            "margin": 4, "background": "#ffffff", "images_only": False}},
    }


def _start(master: ComfyServer, seconds: float, name: str) -> str:
    code, answer = master.queue_prompt(_sweep(seconds, name))
    assert code == 200, answer
    return master.batch_for_prompt(answer["prompt_id"], timeout=30)["batch_id"]


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _ran_here(server: ComfyServer, prompt_ids: set[str]) -> set[str]:
    _, history = server.get("/history?max_items=1000")
    return prompt_ids & set(history or {})


def test_a_sweep_over_three_servers_runs_every_cell_once_with_the_one_server_grid(cluster):
    master, w1, w2, workers_file = cluster
    _use_workers(workers_file)  # one server
    single = master.wait_batch(_start(master, 0.2, "spread"), need_grid=True, timeout=600)
    _use_workers(workers_file, w1, w2)
    spread = master.wait_batch(_start(master, 0.2, "spread"), need_grid=True, timeout=600)
    assert single["counts"]["done"] == 24 and spread["counts"]["done"] == 24, (single["counts"], spread["counts"])
    _, page = master.get(f"/wi/status/{spread['batch_id']}")
    cells = page["cells"]
    by_worker = {w: [c for c in cells if c["worker"] == w] for w in ("local", "w1", "w2")}
    assert by_worker["w1"] and by_worker["w2"], {w: len(c) for w, c in by_worker.items()}
    assert sum(len(c) for c in by_worker.values()) == 24
    assert {w: page["workers"][w]["done"] for w in by_worker} == {w: len(c) for w, c in by_worker.items()}
    # exactly once: each cell's prompt id is in the history of the one server that ran it, and of no other
    ids = {c["prompt_id"]: c["worker"] for c in cells}
    for worker_id, server in (("local", master), ("w1", w1), ("w2", w2)):
        assert _ran_here(server, set(ids)) == {p for p, w in ids.items() if w == worker_id}
    # the same cells and the same grid as on one server
    _, one = master.get(f"/wi/status/{single['batch_id']}")
    one_cells = {c["index"]: c for c in one["cells"]}
    for cell in cells:
        (mine,), (theirs,) = cell["files"], one_cells[cell["index"]]["files"]
        assert mine["filename"] == theirs["filename"]
        assert np.array_equal(_pixels(master.output_dir / mine["subfolder"] / mine["filename"]),
                              _pixels(master.output_dir / theirs["subfolder"] / theirs["filename"]))
    grid_a = master.output_dir / single["grid"]["subfolder"] / single["grid"]["filename"]
    grid_b = master.output_dir / spread["grid"]["subfolder"] / spread["grid"]["filename"]
    assert np.array_equal(_pixels(grid_a), _pixels(grid_b))


def _running_on_all(master: ComfyServer, batch_id: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, status = master.get(f"/wi/status/{batch_id}")
        if {c["worker"] for c in status["cells"] if c["status"] == "running"} >= {"local", "w1", "w2"}:
            return
        time.sleep(0.1)
    raise TimeoutError("the batch never ran on all three servers at once")


def _idle(server: ComfyServer) -> bool:
    _, queue = server.get("/queue")
    return not queue["queue_running"] and not queue["queue_pending"]


def test_cancel_mid_batch_stops_all_three_servers(cluster):
    master, w1, w2, workers_file = cluster
    _use_workers(workers_file, w1, w2)
    batch_id = _start(master, 2.0, "cancelled")
    _running_on_all(master, batch_id)
    code, answer = master.post(f"/wi/cancel_batch/{batch_id}", {})
    assert code == 200, answer
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(_idle(s) for s in (master, w1, w2)):
        time.sleep(0.1)
    assert all(_idle(s) for s in (master, w1, w2))
    status = master.wait_batch(batch_id, timeout=60)
    assert status["state"] == "cancelled"
    assert status["counts"]["done"] < 24


def test_a_worker_killed_mid_batch_does_not_stop_the_batch(cluster):
    master, w1, w2, workers_file = cluster
    _use_workers(workers_file, w1, w2)
    batch_id = _start(master, 1.0, "killed")
    _running_on_all(master, batch_id)
    w2.stop(kill=True)  # SIGKILL
    status = master.wait_batch(batch_id, need_grid=True, timeout=600)
    assert status["state"] == "complete" and status["counts"]["done"] == 24, status["counts"]
    _, page = master.get(f"/wi/status/{batch_id}")
    assert page["workers"]["w2"]["state"] == "unreachable" and page["workers"]["w2"]["excluded"]
    assert all(c["files"] for c in page["cells"])
