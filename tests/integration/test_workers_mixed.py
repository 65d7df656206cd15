"""Issue 14 across versions: a ComfyUI 0.3.64 master with this pack spreading one sweep over itself and a stock
ComfyUI 0.8.0 worker (other API details: targeted interrupt, history shape). Skipped when either is absent."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

import ran_registry
from tools.comfy_harness import Backend, ComfyServer, _check

from .test_workers import HERE, TEST_NODES, _idle, _pixels, _start, _use_workers

pytestmark = pytest.mark.integration


def _backend(directory: str) -> Backend:
    found = _check(Path(directory), Path(directory) / ".venv" / "bin" / "python")
    if isinstance(found, str):
        ran_registry.skip("backend", f"ComfyUI at {directory} (mixed-version workers)", found)
    return found


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    old, new = _backend("/opt/ComfyUI"), _backend("/opt/ComfyUI-0.8")
    ran_registry.record_ran("backend", f"mixed: {old.describe()} master + {new.describe()} stock worker")
    workers_file = tmp_path_factory.mktemp("workers") / "workers.json"
    workers_file.write_text("[]")
    servers = []
    try:
        servers.append(ComfyServer(extra_packs=TEST_NODES, backend=new, with_pack=False).start(timeout=300))
        servers.insert(0, ComfyServer(extra_packs={**TEST_NODES, "wi_test_workers": HERE / "fixture_workers"},
                                      backend=old, env={"WI_TEST_WORKERS_FILE": str(workers_file)}).start(timeout=300))
        yield servers[0], servers[1], workers_file
    finally:
        for server in servers:
            server.cleanup()


def test_a_sweep_spread_over_a_0_8_worker_matches_the_one_server_run(mixed):
    master, worker, workers_file = mixed
    _use_workers(workers_file)
    single = master.wait_batch(_start(master, 0.2, "mixed"), timeout=600)
    _use_workers(workers_file, worker)
    spread = master.wait_batch(_start(master, 0.2, "mixed"), timeout=600)
    assert single["counts"]["done"] == 24 and spread["counts"]["done"] == 24, spread["counts"]
    _, page = master.get(f"/wi/status/{spread['batch_id']}")
    _, one = master.get(f"/wi/status/{single['batch_id']}")
    assert page["workers"]["w1"]["done"] > 0 and "0.8" not in str(page["workers"]["w1"]["excluded"])
    one_files = {c["index"]: c["files"][0] for c in one["cells"]}
    for cell in page["cells"]:
        mine, theirs = cell["files"][0], one_files[cell["index"]]
        assert np.array_equal(_pixels(master.output_dir / mine["subfolder"] / mine["filename"]),
                              _pixels(master.output_dir / theirs["subfolder"] / theirs["filename"]))


def test_cancel_interrupts_the_0_8_workers_running_cell(mixed):
    master, worker, workers_file = mixed
    _use_workers(workers_file, worker)
    batch_id = _start(master, 2.0, "mixed_cancel")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        _, status = master.get(f"/wi/status/{batch_id}")
        if any(c["worker"] == "w1" and c["status"] == "running" for c in status["cells"]):
            break
        time.sleep(0.1)
    code, _ = master.post(f"/wi/cancel_batch/{batch_id}", {})
    assert code == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (_idle(master) and _idle(worker)):
        time.sleep(0.1)
    assert _idle(master) and _idle(worker)
    _, history = worker.get("/history?max_items=100")
    interrupted = [e for e in history.values()
                   if any(m[0] == "execution_interrupted" for m in e["status"]["messages"])]
    assert interrupted, json.dumps(history)[:500]
