"""One sweep over K ComfyUI servers (issue 14): throughput with K = 1..4 against one server, and the per-cell
overhead of a remote cell against a local one, all in the same run.

Servers: a master (this pack, ``tests/integration/fixture_workers`` as its worker list, re-read per sweep)
and up to three stock ComfyUI 0.3.64 workers, all with ``bench/fixtures/wi_bench_nodes``: ``WIBenchWait``
sleeps a fixed time without using the CPU, so a 2-core machine can stand in for several GPUs.

* throughput: a sweep of ``cells_per_server * K`` cells of ``seconds`` each, on the master plus K-1 workers;
  cells per second over the wall time from ``POST /prompt`` to the batch's last cell; target
  ``>= 0.85 * K *`` the one-server figure of the same run;
* overhead: a sweep of zero-wait cells on the master alone, then with the master turned off as a worker and
  one remote worker taking every cell but the submitted one, alternated five times; (median wall_remote -
  median wall_local) / cells; target ``<= 20 ms`` a cell;
* ``idle_ms_median``: per server, the median gap between the end of one of the batch's cells and the start of
  the next, from that server's ``/history`` (what the dispatch costs a GPU; the throughput ratios also carry
  the machine's noise, since all servers share two cores).
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from ._cli import run_cli
from .interception_bench import format_table

REPO = Path(__file__).resolve().parent.parent
BENCH_NODES = {"wi_bench_nodes": REPO / "bench" / "fixtures" / "wi_bench_nodes"}
WORKERS_PACK = REPO / "tests" / "integration" / "fixture_workers"


def _sweep(cells: int, seconds: float, name: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "WIParameterInt", "inputs": {"name": "color", "values": f"1..{cells}"}},
        "2": {"class_type": "WIIterator", "inputs": {"parameters": ["1", 0], "enabled": True, "mode": "matrix",
                                                     "batch_name": name}},
        "10": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": ["1", 1]}},
        "11": {"class_type": "WIBenchWait", "inputs": {"image": ["10", 0], "seconds": seconds}},
        "20": {"class_type": "WISaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "bench_workers"}},
    }


def _remote_warmup() -> dict[str, Any]:
    return {"10": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 3}},
            "11": {"class_type": "WIBenchWait", "inputs": {"image": ["10", 0], "seconds": 0.0}},
            "20": {"class_type": "PreviewImage", "inputs": {"images": ["11", 0]}}}


def _run_sweep(master: Any, cells: int, seconds: float, name: str, timeout: float = 900.0) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    code, answer = master.queue_prompt(_sweep(cells, seconds, name))
    if code != 200:
        raise RuntimeError(f"sweep rejected: {answer}")
    batch_id = master.batch_for_prompt(answer["prompt_id"], timeout=60)["batch_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, status = master.get(f"/wi/status/{batch_id}")
        counts = status["counts"]
        if counts["done"] + counts["failed"] + counts["cancelled"] >= counts["total"]:
            wall = time.perf_counter() - t0
            if counts["done"] != cells:
                raise RuntimeError(f"sweep {name}: {counts}")
            return wall, status
        time.sleep(0.02)
    raise TimeoutError(f"sweep {name} did not finish")


def _idle_ms(server: Any, prompt_ids: set[str]) -> float | None:
    """Median gap on one server between the end of one of these prompts and the start of the next (ms), read
    from its ``/history`` timestamps: how long its GPU would have waited for the dispatcher."""
    _, history = server.get("/history?max_items=10000")
    spans = []
    for prompt_id, entry in (history or {}).items():
        if prompt_id not in prompt_ids:
            continue
        stamps = {m[0]: m[1].get("timestamp") for m in entry.get("status", {}).get("messages", [])}
        if stamps.get("execution_start") and stamps.get("execution_success"):
            spans.append((stamps["execution_start"], stamps["execution_success"]))
    spans.sort()
    gaps = [b[0] - a[1] for a, b in zip(spans, spans[1:])]
    return float(sorted(gaps)[len(gaps) // 2]) if gaps else None


def _write(path: Path, entries: list[dict[str, Any]]) -> None:
    path.write_text(json.dumps(entries))


def run(quick: bool = False) -> list[dict[str, Any]]:
    from tools.comfy_harness import ComfyServer, locate_backend

    backend = locate_backend()
    if isinstance(backend, str):
        return [{"row": "skipped", "reason": backend}]
    k_max = 2 if quick else 4
    seconds = 0.3 if quick else 0.5
    per_server = 4 if quick else 20  # 10 s runs: a batch's fixed start-up cost (and ComfyUI's periodic gc) amortised
    overhead_cells = 10 if quick else 40
    workers_file = Path(tempfile.mkdtemp(prefix="wi-bench-workers-")) / "workers.json"
    _write(workers_file, [])
    servers: list[Any] = []
    rows: list[dict[str, Any]] = []
    try:
        master = ComfyServer(extra_packs={**BENCH_NODES, "wi_test_workers": WORKERS_PACK}, backend=backend,
                             env={"WI_TEST_WORKERS_FILE": str(workers_file)}).start(timeout=300)
        servers.append(master)
        remotes = []
        for _ in range(k_max - 1):
            remote = ComfyServer(extra_packs=BENCH_NODES, backend=backend, with_pack=False).start(timeout=300)
            servers.append(remote)
            remotes.append(remote)
        local = {"id": "local", "name": "master", "url": None}
        entries = [{"id": f"w{i}", "name": f"worker {i}", "url": r.url} for i, r in enumerate(remotes, 1)]
        _run_sweep(master, 2, 0.0, "warmup")  # first-prompt costs (imports, caches) out of the figures
        for remote in remotes:  # every worker's first prompt too
            code, answer = remote.queue_prompt(_remote_warmup())
            if code != 200:
                raise RuntimeError(f"warm-up rejected by {remote.url}: {answer}")
            remote.wait_history(answer["prompt_id"], timeout=120)
        base = None
        for k in range(1, k_max + 1):
            _write(workers_file, [local, *entries[: k - 1]] if k > 1 else [])
            cells = per_server * k
            wall, status = _run_sweep(master, cells, seconds, f"k{k}")
            _, page = master.get(f"/wi/status/{status['batch_id']}")
            ids = {c["prompt_id"] for c in page["cells"] if c.get("prompt_id")}
            idle = {name: _idle_ms(server, ids) for name, server in [("local", master), *[(f"w{i}", r) for i, r in enumerate(remotes[: k - 1], 1)]]}
            throughput = cells / wall
            base = throughput if base is None else base
            ratio = throughput / base
            rows.append({"row": f"throughput K={k}", "cells": cells, "wall_s": wall, "cells_per_s": throughput,
                         "vs_one": ratio, "target": f">= {0.85 * k:.2f}",
                         "verdict": "ok" if ratio >= 0.85 * k else "MISSED",
                         "by_worker": {w: info["done"] for w, info in status.get("workers", {}).items()},
                         "idle_ms_median": {w: None if v is None else round(v) for w, v in idle.items()}})
        # Alternated, median of each: on a loaded machine single walls swing by tens of percent.
        local_walls, remote_walls = [], []
        status = {}
        for _ in range(1 if quick else 5):
            _write(workers_file, [])
            local_walls.append(_run_sweep(master, overhead_cells, 0.0, "overhead_local")[0])
            _write(workers_file, [{**local, "enabled": False}, entries[0]] if entries else [])
            wall, status = _run_sweep(master, overhead_cells, 0.0, "overhead_remote")
            remote_walls.append(wall)
        wall_local, wall_remote = statistics.median(local_walls), statistics.median(remote_walls)
        per_cell = (wall_remote - wall_local) / overhead_cells * 1000
        rows.append({"row": "remote cell overhead", "cells": overhead_cells, "local_ms_per_cell": wall_local / overhead_cells * 1000,
                     "remote_ms_per_cell": wall_remote / overhead_cells * 1000, "overhead_ms": per_cell,
                     "target": "<= 20 ms", "verdict": "ok" if per_cell <= 20 else "MISSED",
                     "by_worker": {w: info["done"] for w, info in status.get("workers", {}).items()}})
    finally:
        for server in servers:
            server.cleanup()
    return rows


def table(rows: Sequence[dict[str, Any]]) -> str:
    if rows and rows[0].get("row") == "skipped":
        return f"skipped: {rows[0]['reason']}"
    thr = [r for r in rows if r["row"].startswith("throughput")]
    ovh = [r for r in rows if r["row"].startswith("remote")]
    out = format_table(thr, ["row", "cells", "wall_s", "cells_per_s", "vs_one", "target", "verdict", "by_worker",
                             "idle_ms_median"])
    if ovh:
        out += "\n" + format_table(ovh, ["row", "cells", "local_ms_per_cell", "remote_ms_per_cell", "overhead_ms",
                                         "target", "verdict", "by_worker"])
    missed = [r["row"] for r in rows if r.get("verdict") == "MISSED"]
    if missed:
        out += "\nTARGET MISSED: " + ", ".join(missed)
    return out


if __name__ == "__main__":
    sys.exit(run_cli(__doc__, run, table))
