"""Status route under load: does polling /wi/status at ~200 requests/s slow a running sweep?

On a real ComfyUI (skipped with the reason when none is found): the same model-free sweep runs with and
without four client threads polling ``/wi/status`` and ``/api/wi/status/{id}`` about 200 times a second,
alternating, several repetitions. Reports the median sweep wall time of each, the ratio (loaded / quiet), the
request rate achieved and the number of failed requests (target: 0 errors, ratio close to 1).
"""
from __future__ import annotations

import statistics
import sys
import threading
import time
from typing import Any, Sequence

from ._cli import run_cli
from .e2e_bench import comfy_unavailable, shared_server, stop_shared_server
from .interception_bench import format_table

COLUMNS = ["cells", "cell_s", "reps", "quiet_s", "loaded_s", "ratio", "requests_per_s", "failed_requests", "errors_target"]
RATE = 200  # status requests per second, alternating the list and the running batch's detail


def sweep_prompt(cells: int, seconds: float, offset: int = 0) -> dict[str, Any]:
    """``cells`` cells that each wait ``seconds`` (like a GPU cell: the worker waits, the CPU is free).
    ``offset`` makes every run's values new, so ComfyUI's cache cannot skip the wait."""
    return {
        "1": {"class_type": "WIParameterInt", "inputs": {"name": "color", "values": f"{offset}-{offset + cells - 1}"}},
        "2": {"class_type": "WIIterator", "inputs": {"parameters": ["1", 0], "enabled": True, "mode": "matrix", "batch_name": "status_load"}},
        "10": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": ["1", 1]}},
        "11": {"class_type": "WITestSleep", "inputs": {"image": ["10", 0], "seconds": seconds}},
        "20": {"class_type": "WISaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "bench_status"}},
    }


def _sweep_once(comfy: Any, cells: int, seconds: float, batch_ids: list[str], offset: int) -> float:
    t0 = time.monotonic()
    code, answer = comfy.queue_prompt(sweep_prompt(cells, seconds, offset))
    if code != 200:
        raise RuntimeError(f"sweep rejected: {answer}")
    batch_id = comfy.batch_for_prompt(answer["prompt_id"], timeout=60)["batch_id"]
    batch_ids.append(batch_id)
    status = comfy.wait_batch(batch_id, states=("collecting", "complete", "cancelled"), timeout=900)
    elapsed = time.monotonic() - t0
    if status["counts"]["done"] != cells:
        raise RuntimeError(f"sweep ended with {status['counts']}")
    comfy.wait_idle(timeout=120)
    return elapsed


def _loaded(comfy: Any, cells: int, seconds: float, batch_ids: list[str], offset: int) -> tuple[float, int, int, float]:
    """The sweep while one asyncio client fires status requests at a fixed RATE (cheaper on this 2-core machine
    than a pool of blocking threads, so less of the slowdown measured is the load generator's own CPU)."""
    import asyncio

    import aiohttp

    stop = threading.Event()
    counts = {"sent": 0, "failed": 0}

    async def fire(session: aiohttp.ClientSession, path: str) -> None:
        try:
            async with session.get(comfy.url + path, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                await resp.read()
                ok = resp.status == 200
        except Exception:  # counted, not raised: failures are what this measures
            ok = False
        counts["sent"] += 1
        counts["failed"] += 0 if ok else 1

    async def poll() -> None:
        async with aiohttp.ClientSession() as session:
            tasks: set[asyncio.Task] = set()
            tick = 0
            loop = asyncio.get_running_loop()
            next_at = loop.time()
            while not stop.is_set():
                path = f"/api/wi/status/{batch_ids[-1]}" if batch_ids and tick % 2 else "/wi/status"
                task = asyncio.create_task(fire(session, path))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                tick += 1
                next_at += 1.0 / RATE
                await asyncio.sleep(max(0.0, next_at - loop.time()))
            if tasks:
                await asyncio.gather(*tasks)

    poller = threading.Thread(target=lambda: asyncio.run(poll()), daemon=True)
    t0 = time.monotonic()
    poller.start()
    try:
        elapsed = _sweep_once(comfy, cells, seconds, batch_ids, offset)
    finally:
        stop.set()
        poller.join()
    return elapsed, counts["sent"], counts["failed"], time.monotonic() - t0


def run(quick: bool, cells: int | None = None, reps: int | None = None, seconds: float = 0.1) -> list[dict[str, Any]]:
    reason = comfy_unavailable()
    if reason is not None:
        print(f"status_load benchmark skipped: {reason}", file=sys.stderr)
        return []
    cells = cells or (10 if quick else 40)
    reps = reps or (1 if quick else 3)
    comfy = shared_server()
    batch_ids: list[str] = []
    quiet, loaded, sent, failed, load_wall = [], [], 0, 0, 0.0
    for rep in range(reps):
        quiet.append(_sweep_once(comfy, cells, seconds, batch_ids, offset=2 * rep * cells))
        elapsed, n, bad, wall = _loaded(comfy, cells, seconds, batch_ids, offset=(2 * rep + 1) * cells)
        loaded.append(elapsed)
        sent, failed, load_wall = sent + n, failed + bad, load_wall + wall
    q, l = statistics.median(quiet), statistics.median(loaded)
    return [{
        "cells": cells, "cell_s": seconds, "reps": reps, "quiet_s": round(q, 3), "loaded_s": round(l, 3), "ratio": round(l / q, 3),
        "requests_per_s": round(sent / load_wall, 1) if load_wall else 0.0, "failed_requests": failed,
        "errors_target": "met" if failed == 0 else "MISSED",
    }]


def table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "(skipped: no ComfyUI)"
    lines = [format_table(rows, COLUMNS),
             "quiet_s / loaded_s: median sweep wall time (POST to every cell ended) without / with the status pollers;"
             " ratio = loaded / quiet (1.0 = no slowdown; single runs on this machine swing by +-30 %);"
             " failed_requests: non-200 answers or errors (target 0)"]
    for r in rows:
        if r["errors_target"] != "met":
            lines.append(f"TARGET MISSED: {r['failed_requests']} status requests failed")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_cli(__doc__, run, table, argv, cleanup=stop_shared_server)


if __name__ == "__main__":
    sys.exit(main())
