"""Cache-aware run order on a real ComfyUI: how often an expensive upstream node runs per sweep.

Matrix sweep, FIRST axis cheap (ImageBlur ``sigma``, a late node), SECOND axis expensive (the ``color`` of an
EmptyImage feeding WITestExpensive, a test-only node that sleeps a fixed time; tests/integration/fixture_nodes).
In the user's order the first axis varies slowest, so the expensive input changes every cell. The sweep runs
twice, same server, same run: WIIterator ``run_order = "as entered"`` and ``"cache-friendly"`` (the default).

Counting: a websocket client (``/ws?clientId=X``; the sweep is posted with that client id, and every cell
reports to it) counts ``executing`` messages whose ``node`` is the expensive node; as a cross-check the
history of every cell is read and a cell counts when the node is not in its ``execution_cached`` list.
Target: cache-friendly runs the expensive node once per distinct colour. Wall time: first POST to the
``wi.batch_finished`` event. An unrelated prompt runs before each sweep so neither inherits cached outputs.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any, Sequence

from ._cli import run_cli

from .e2e_bench import comfy_unavailable, flush_cache, shared_server, stop_shared_server
from .interception_bench import format_table
from tools.comfy_harness import cell_values

EXPENSIVE_ID = "11"


def sweep_prompt(sigmas: Sequence[float], colors: Sequence[int], run_order: str, seconds: float) -> dict[str, Any]:
    return {
        "1": {"class_type": "WIParameterFloat", "inputs": {"name": "sigma", "values": ", ".join(map(str, sigmas))}},
        "2": {"class_type": "WIParameterInt", "inputs": {"name": "color", "values": ", ".join(map(str, colors)), "previous": ["1", 0]}},
        "3": {"class_type": "WIIterator", "inputs": {"parameters": ["2", 0], "enabled": True, "mode": "matrix",
                                                      "batch_name": "cache_order", "run_order": run_order}},
        "10": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": ["2", 1]}},
        EXPENSIVE_ID: {"class_type": "WITestExpensive", "inputs": {"image": ["10", 0], "seconds": seconds}},
        "13": {"class_type": "ImageBlur", "inputs": {"image": [EXPENSIVE_ID, 0], "blur_radius": 3, "sigma": ["1", 1]}},
        "20": {"class_type": "WISaveImage", "inputs": {"images": ["13", 0], "filename_prefix": "bench_cache"}},
    }


async def _sweep(url: str, prompt: dict[str, Any], cells: int, timeout: float) -> dict[str, Any]:
    from aiohttp import ClientSession, WSMsgType

    client_id = f"bench-{uuid.uuid4().hex[:8]}"
    executing = 0
    prompts: set[str] = set()
    async with ClientSession() as session:
        async with session.ws_connect(f"{url.replace('http', 'ws', 1)}/ws?clientId={client_id}") as ws:
            t0 = time.perf_counter()
            async with session.post(f"{url}/prompt", json={"prompt": prompt, "client_id": client_id}) as resp:
                answer = await resp.json()
                if resp.status != 200:
                    raise RuntimeError(f"sweep rejected: {answer}")
            batch_id = None
            deadline = time.monotonic() + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("the sweep did not finish")
                msg = await ws.receive(timeout=remaining)
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
                    raise RuntimeError("websocket closed")
                if msg.type != WSMsgType.TEXT:
                    continue  # binary previews
                event = json.loads(msg.data)
                kind, data = event.get("type"), event.get("data") or {}
                if kind == "executing" and data.get("node") == EXPENSIVE_ID:
                    executing += 1
                elif kind == "execution_start" and data.get("prompt_id"):
                    prompts.add(data["prompt_id"])
                elif kind == "wi.batch_created" and data.get("client_id") == client_id:
                    batch_id = data["batch_id"]
                elif kind == "wi.batch_finished" and batch_id is not None and data.get("batch_id") == batch_id:
                    wall = time.perf_counter() - t0
                    break
        async with session.get(f"{url}/wi/status/{batch_id}") as resp:
            status = await resp.json()
    return {"executing": executing, "wall": wall, "status": status}


def _executed_by_history(comfy: Any, status: dict[str, Any]) -> tuple[int, list[int]]:
    """(cells where the expensive node was not served from cache, colour order the cells ran in)."""
    executed = 0
    timeline = []
    for cell in status["cells"]:
        entry = comfy.wait_history(cell["prompt_id"], timeout=60)
        messages = (entry.get("status") or {}).get("messages") or []
        cached = next((data.get("nodes", []) for event, data in messages if event == "execution_cached"), [])
        start = next((data["timestamp"] for event, data in messages if event == "execution_start"), 0)
        if EXPENSIVE_ID not in cached:
            executed += 1
        timeline.append((start, cell_values(status, cell)["color"]))
    return executed, [color for _, color in sorted(timeline)]


def _changes(sequence: Sequence[Any]) -> int:
    return sum(1 for a, b in zip(sequence, sequence[1:]) if a != b) + (1 if sequence else 0)


def run(quick: bool, seconds: float = 0.2) -> list[dict[str, Any]]:
    reason = comfy_unavailable()
    if reason:
        return [{"skipped": f"cache-order benchmark skipped: {reason}"}]
    sigmas = [0.5, 1.5] if quick else [0.5, 1.0, 1.5, 2.0]
    colors = [0x203040, 0x806040] if quick else [0x203040, 0x806040, 0xC0A080]
    cells = len(sigmas) * len(colors)
    comfy = shared_server()
    rows = []
    for run_order in ("as entered", "cache-friendly"):
        flush_cache(comfy)
        result = asyncio.run(_sweep(comfy.url, sweep_prompt(sigmas, colors, run_order, seconds), cells, timeout=600))
        status = result["status"]
        if status["counts"]["done"] != cells:
            raise RuntimeError(f"{run_order}: sweep ended with {status['counts']}")
        by_history, colour_sequence = _executed_by_history(comfy, status)
        rows.append({
            "run_order": run_order,
            "cells": cells,
            "distinct_colors": len(colors),
            "expensive_runs_ws": result["executing"],
            "expensive_runs_history": by_history,
            "colour_changes": _changes(colour_sequence),
            "wall_s": round(result["wall"], 3),
            "expensive_s_each": seconds,
        })
    as_entered, friendly = rows
    for row in rows:
        row["wall_vs_as_entered"] = round(row["wall_s"] / as_entered["wall_s"], 3)
    friendly["target"] = "met" if friendly["expensive_runs_ws"] == len(colors) == friendly["expensive_runs_history"] else "MISSED"
    as_entered["target"] = "(reference)"
    return rows


COLUMNS = ("run_order", "cells", "distinct_colors", "expensive_runs_ws", "expensive_runs_history", "colour_changes",
           "wall_s", "wall_vs_as_entered", "target")


def table(rows: Sequence[dict[str, Any]]) -> str:
    if rows and "skipped" in rows[0]:
        return rows[0]["skipped"]
    lines = [format_table(rows, COLUMNS),
             "expensive_runs_ws: 'executing' websocket messages for the expensive node; expensive_runs_history: cells whose"
             " history does not list it as cached; target: cache-friendly runs it once per distinct colour;"
             f" expensive node sleeps {rows[0]['expensive_s_each']} s per run"]
    for r in rows:
        if r.get("target") == "MISSED":
            lines.append(f"TARGET MISSED: cache-friendly ran the expensive node {r['expensive_runs_ws']} times for"
                         f" {r['distinct_colors']} distinct values")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_cli(__doc__, run, table, argv, cleanup=stop_shared_server)


if __name__ == "__main__":
    sys.exit(main())
