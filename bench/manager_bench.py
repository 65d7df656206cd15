"""Manager scale benchmark: memory per cell of a 100,000-cell batch, status route latency and cancel, same run.

Memory (tracemalloc, retained bytes after ``gc.collect()``):

* ``values_only``: the baseline, a list holding every combination's value tuple (cfg float x seed int x sampler
  str), i.e. what any design must keep;
* ``created``: ``IterationStateManager.create_batch`` of the same 100,000 combinations (every cell queued);
* ``ran``: the same batch after every cell got a prompt id from the feeder's ``PromptIds``, ran and ended
  ``done`` with one image ref (what a finished 100,000-cell batch holds until it expires).

The batch holds no per-cell copy of the values (they live once on the axes, which exist before the batch and
are not counted), so ``batch_b_per_cell`` is what the manager holds per cell beyond the axis values; target
<= 300 bytes per cell (issue 11). ``values_only`` is shown for scale: what a design storing every cell's value
tuple would hold before anything else.

Latency: an aiohttp ``TestServer`` over nodes/routes.py with a ``SweepService`` on the ComfyUI stand-in
holding 100 active batches of 100 cells (each fed up to its window, a few cells run), hit by a real
``aiohttp.ClientSession``: ``GET /wi/status`` (100 summaries) and ``GET /wi/status/{id}`` (100 cells), against a
baseline handler on the same server returning a small JSON object. The routes answer from a cache until a
batch changes, so each route is measured twice: as polled while nothing changed (cache hits), and with one
batch changed before every request (the answer rebuilt, as during a sweep where every cell changes its batch).
Requests are interleaved round-robin within each of the two passes; p50 / p99 in milliseconds, ratio = route
p50 / baseline p50.
"""
from __future__ import annotations

import asyncio
import gc
import sys
import time
import tracemalloc
import uuid
from importlib import import_module
from typing import Any, Sequence

from ._cli import run_cli

from .interception_bench import PACKAGE, StandinEnv, format_table, load_package

MEMORY_TARGET_B = 300


def _axes(n: int) -> tuple:
    engine = import_module(f"{PACKAGE}.core.combination_engine")
    samplers = ("euler", "euler_ancestral", "heun", "dpm_2", "lms", "dpmpp_2m", "dpmpp_sde", "ddim", "uni_pc", "lcm")
    seeds = max(1, n // 100)
    return (engine.Axis("cfg", tuple(3.0 + 0.5 * i for i in range(10)), "FLOAT"),
            engine.Axis("seed", tuple(1_000_000 + i for i in range(seeds)), "SEED"),
            engine.Axis("sampler", samplers, "COMBO"))


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def measure_memory(n: int = 100_000) -> list[dict[str, Any]]:
    load_package()
    engine = import_module(f"{PACKAGE}.core.combination_engine")
    state = import_module(f"{PACKAGE}.core.iteration_state")
    axes = _axes(n)
    combos = engine.cartesian(axes, max_combinations=max(n, 10_000))
    if len(combos) != n:
        raise RuntimeError(f"{len(combos)} combinations, expected {n}")
    tracemalloc.start()
    try:
        start = _traced()
        values = [tuple(c.values) for c in combos]
        values_bytes = _traced() - start
        del values

        manager = state.IterationStateManager()
        start = _traced()
        batch = manager.create_batch(batch_name="mem", mode="matrix", combinations=combos, axes=axes,
                                     meta={"save_node_ids": ["44"], "grid_node_id": None}, snapshot_cells=False)
        created_bytes = _traced() - start
        batch_id = batch.batch_id
        ids = manager.prompt_ids(batch_id)
        subfolder = f"WI/mem_{batch_id[-8:]}"
        for index in range(n):
            prompt_id = ids.for_cell(index)
            manager.attach_prompt(batch_id, index, prompt_id)
            manager.mark_running(batch_id, index)
            manager.register_result(batch_id, index,
                                    [{"filename": f"c{index:05d}_cfg-x_seed-y_sampler-z_0.png",
                                      "subfolder": subfolder, "type": "output"}])
        ran_bytes = _traced() - start
        state_now = manager.get_status(batch_id, include_cells=False)["state"]
    finally:
        tracemalloc.stop()
    rows = []
    for label, total in (("created", created_bytes), ("ran", ran_bytes)):
        per_cell = total / n
        rows.append({
            "batch": f"{n} cells, {label}" + (f" ({state_now})" if label == "ran" else ""),
            "values_only_b": values_bytes,
            "batch_b": total,
            "values_b_per_cell": round(values_bytes / n, 1),
            "batch_b_per_cell": round(per_cell, 1),
            "target": f"<= {MEMORY_TARGET_B}",
            "verdict": "met" if per_cell <= MEMORY_TARGET_B else "MISSED",
        })
    return rows


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def _sweep_prompt(k: int) -> dict[str, Any]:
    return {
        "1": {"class_type": "WIParameterInt", "inputs": {"name": "width", "values": "1-10"}},
        "2": {"class_type": "WIParameter", "inputs": {"name": "height", "type": "INT", "values": "10-19", "previous": ["1", 0]}},
        "3": {"class_type": "WIIterator", "inputs": {"parameters": ["2", 0], "enabled": True, "mode": "matrix", "batch_name": f"b{k}"}},
        "4": {"class_type": "EmptyImage", "inputs": {"width": ["1", 1], "height": ["2", 1], "batch_size": 1, "color": k}},
        "5": {"class_type": "WISaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "WI"}},
    }


def _big_prompt(k: int) -> dict[str, Any]:
    """A 100,000-cell sweep (1,000 x 100) of the same model-free shape."""
    prompt = _sweep_prompt(1000 + k)
    prompt["1"]["inputs"]["values"] = "1-1000"
    prompt["2"]["inputs"]["values"] = "1-100"
    prompt["3"]["inputs"]["batch_name"] = f"big{k}"
    return prompt


BIG_CELLS = 100_000
STATUS_P99_TARGET_MS = 10.0
PAGE_P99_TARGET_MS = 50.0
CANCEL_TARGET_MS = 100.0


def measure_latency(batches: int = 100, requests: int = 300, run_cells: int = 50, cancels: int = 5) -> list[dict[str, Any]]:
    from aiohttp import ClientSession, web
    from aiohttp.test_utils import TestServer

    load_package()
    routes = import_module(f"{PACKAGE}.nodes.routes")
    env = StandinEnv(window=32, accept_all=False)
    env.service.max_combinations = BIG_CELLS

    async def main() -> list[dict[str, Any]]:
        big_ids = []
        for k in range(1 + cancels):  # one big batch polled while it runs, the others cancelled
            status, answer = await env.server.post_prompt({"prompt": _big_prompt(k), "client_id": f"big{k}"})
            if status != 200:
                raise RuntimeError(f"big sweep {k} rejected: {answer}")
            for _ in range(40):
                await asyncio.sleep(0)
            big_ids.append(env.manager.lookup_prompt(answer["prompt_id"])[0])
        for k in range(batches):
            status, answer = await env.server.post_prompt({"prompt": _sweep_prompt(k), "client_id": f"c{k}"})
            if status != 200:
                raise RuntimeError(f"sweep {k} rejected: {answer}")
            for _ in range(40):
                await asyncio.sleep(0)
        for _ in range(run_cells):  # some cells run and end, so the batches are active with mixed cells
            if env.server.run_next() is None:
                break
            await asyncio.sleep(0)
        summaries = env.manager.list_batches()
        active = sum(1 for s in summaries if s["state"] == "active")
        small = [s["batch_id"] for s in summaries if s["batch_id"] not in big_ids]
        batch_id = small[len(small) // 2]
        big = big_ids[0]

        table = web.RouteTableDef()
        routes.add_routes(table, env.service)

        @table.get("/bench/trivial")
        async def trivial(request: web.Request) -> web.Response:
            return web.json_response({"ok": True, "batches": 100})

        app = web.Application()
        app.add_routes(table)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        paths = {"baseline (trivial JSON)": "/bench/trivial", "GET /wi/status": "/wi/status",
                 "GET /wi/status/{id}": f"/wi/status/{batch_id}",
                 # The routes answer from a cache until a batch changes; during a sweep one changes with every
                 # cell, so these rows change a batch before each request and measure the rebuilt answer.
                 "GET /wi/status, a batch changed": "/wi/status",
                 "GET /wi/status/{id}, it changed": f"/wi/status/{batch_id}",
                 # A page of 100 cells of the 100,000-cell batch, rebuilt before every request.
                 f"GET /wi/status/{{id}}?limit=100 of {BIG_CELLS:,} cells, changed": f"/wi/status/{big}?offset=50000&limit=100"}
        changed = {"GET /wi/status, a batch changed", "GET /wi/status/{id}, it changed",
                   f"GET /wi/status/{{id}}?limit=100 of {BIG_CELLS:,} cells, changed"}
        times: dict[str, list[float]] = {label: [] for label in paths}
        sizes: dict[str, int] = {}
        try:
            async with ClientSession() as session:
                for label, path in paths.items():  # warm-up and sanity check
                    async with session.get(server.make_url(path)) as resp:
                        body = await resp.read()
                        if resp.status != 200:
                            raise RuntimeError(f"{path}: HTTP {resp.status} {body[:200]!r}")
                        sizes[label] = len(body)
                # Two passes, so the changes of the second cannot turn the first's cache hits into misses.
                passes = [[(label, path) for label, path in paths.items() if label not in changed],
                          [(label, path) for label, path in paths.items() if label in changed]]
                for labelled in passes:
                    for number in range(requests):
                        for label, path in labelled:
                            if label in changed:
                                env.manager.set_meta(big if "limit=100" in path else batch_id, bench_change=number)
                            t0 = time.perf_counter()
                            async with session.get(server.make_url(path)) as resp:
                                await resp.read()
                            times[label].append(time.perf_counter() - t0)
                cancel_label = f"POST /wi/cancel_batch/{{id}} of {BIG_CELLS:,} cells"
                times[cancel_label] = []
                for victim in big_ids[1:]:
                    t0 = time.perf_counter()
                    async with session.post(server.make_url(f"/wi/cancel_batch/{victim}")) as resp:
                        body = await resp.read()
                    times[cancel_label].append(time.perf_counter() - t0)
                    if resp.status != 200:
                        raise RuntimeError(f"cancel of {victim}: HTTP {resp.status} {body[:200]!r}")
                    sizes[cancel_label] = len(body)
        finally:
            await server.close()
        base = sorted(times["baseline (trivial JSON)"])
        base_p50 = _percentile(base, 50)
        rows = []
        for label, values in times.items():
            values = sorted(values)
            p50, p99 = _percentile(values, 50), _percentile(values, 99)
            target = _latency_target(label)
            worst = values[-1] if label.startswith("POST") else p99
            rows.append({"route": label, "requests": len(values), "body_bytes": sizes[label],
                         "p50_ms": round(p50 * 1e3, 3), "p99_ms": round(p99 * 1e3, 3),
                         "p50_vs_baseline": round(p50 / base_p50, 2), "active_batches": active,
                         "target": "" if target is None else f"{'max' if label.startswith('POST') else 'p99'} < {target:g} ms",
                         "verdict": "" if target is None else ("met" if worst * 1e3 < target else "MISSED")})
        return rows

    try:
        return env.loop.run_until_complete(main())
    finally:
        env.close()


def _latency_target(label: str) -> float | None:
    if label.startswith("POST /wi/cancel_batch"):
        return CANCEL_TARGET_MS
    if "limit=100" in label:
        return PAGE_P99_TARGET_MS
    if label.startswith("GET /wi/status,") or label == "GET /wi/status":
        return STATUS_P99_TARGET_MS
    return None


def run(quick: bool, cells: int | None = None, batches: int | None = None, requests: int | None = None) -> list[dict[str, Any]]:
    """Memory rows (``kind == "memory"``) then latency rows (``kind == "latency"``)."""
    memory = measure_memory(cells or 100_000)
    latency = measure_latency(batches=batches or 100, requests=requests or (50 if quick else 300))
    return [{"kind": "memory", **r} for r in memory] + [{"kind": "latency", **r} for r in latency]


MEMORY_COLUMNS = ("batch", "values_only_b", "batch_b", "values_b_per_cell", "batch_b_per_cell", "target", "verdict")
LATENCY_COLUMNS = ("route", "requests", "body_bytes", "p50_ms", "p99_ms", "p50_vs_baseline", "active_batches",
                   "target", "verdict")


def table(rows: Sequence[dict[str, Any]]) -> str:
    memory = [r for r in rows if r["kind"] == "memory"]
    latency = [r for r in rows if r["kind"] == "latency"]
    lines = [format_table(memory, MEMORY_COLUMNS),
             f"bytes retained (tracemalloc, after gc) per cell, beyond the axis values; target <= {MEMORY_TARGET_B} B/cell",
             "",
             format_table(latency, LATENCY_COLUMNS),
             "aiohttp TestServer + ClientSession on 127.0.0.1, requests interleaved; p50_vs_baseline = route p50 / trivial p50"]
    for r in latency:
        if r.get("verdict") == "MISSED":
            lines.append(f"TARGET MISSED: {r['route']}: p99 {r['p99_ms']} ms ({r['target']})")
    for r in memory:
        if r["verdict"] != "met":
            lines.append(f"TARGET MISSED: {r['batch']}: {r['batch_b_per_cell']} B/cell > {MEMORY_TARGET_B} B/cell")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_cli(__doc__, run, table, argv)


if __name__ == "__main__":
    sys.exit(main())
