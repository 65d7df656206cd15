"""End-to-end benchmark on a real ComfyUI (CPU): a 48-cell sweep through the iterator vs the same 48 prompts
posted straight to /prompt by a client, same server, same run.

The sweep: EmptyImage colour (6 values) x ImageBlur radius (8 values), 256x256 images, saved by WISaveImage
(matrix mode; the colour axis already changes least often, so both sides run the cells in the same order).
Direct: the 64 cells' resolved prompts (literal values, core SaveImage), POSTed one after another in cell
order. Each side is timed from just before its first POST to the latest ``execution_success`` timestamp in
the history of its prompts (ComfyUI stamps it when the prompt finishes). Sides alternate (ours first in odd
repetitions, direct first in even ones; 7 repetitions, 1 with --quick); before every run an unrelated prompt is executed so no side inherits
the other's cached node outputs. ``ratio = ours / direct`` of the median wall times; target <= 1.05.
The worker's idle time per cell (from one cell's ``execution_success`` to the next one's ``execution_start``)
must be at most the direct posting's + 0.1 ms (issue 11): ``idle_target``.

Skipped, with the reason printed, when ``tools.comfy_harness.locate_comfyui()`` finds no ComfyUI.
"""
from __future__ import annotations

import atexit
import statistics
import sys
import time
import uuid
from typing import Any, Sequence

from ._cli import run_cli

from .interception_bench import ROOT, format_table

RATIO_TARGET = 1.05
FIXTURE_NODES = ROOT / "tests" / "integration" / "fixture_nodes"
_SERVER: Any = None


def comfy_unavailable() -> str | None:
    """Why no real ComfyUI can be used, or None."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tools.comfy_harness import locate_comfyui

    found = locate_comfyui()
    return found if isinstance(found, str) else None


def shared_server() -> Any:
    """One ComfyUI (with the test-only fixture nodes) per process, shared by the ComfyUI benchmarks."""
    global _SERVER
    if _SERVER is None:
        from tools.comfy_harness import ComfyServer

        server = ComfyServer(extra_packs={"wi_test_nodes": FIXTURE_NODES})
        try:
            server.start()
        except Exception:
            server.cleanup()
            raise
        _SERVER = server
        atexit.register(stop_shared_server)
    return _SERVER


def stop_shared_server() -> None:
    global _SERVER
    if _SERVER is not None:
        _SERVER.cleanup()
        _SERVER = None


def flush_cache(comfy: Any) -> None:
    """Run an unrelated prompt so ComfyUI's cache holds nothing of the previous run."""
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 1}},
              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bench_flush"}}}
    code, answer = comfy.queue_prompt(prompt)
    if code != 200:
        raise RuntimeError(f"flush prompt rejected: {answer}")
    comfy.wait_history(answer["prompt_id"], timeout=120)
    comfy.wait_idle(timeout=120)


def finished_at(history_entry: dict) -> float:
    """Epoch seconds of a prompt's ``execution_success`` (ComfyUI's own timestamp, in ms)."""
    status = history_entry.get("status") or {}
    if status.get("status_str") != "success":
        raise RuntimeError(f"prompt did not succeed: {status}")
    for event, data in status.get("messages") or []:
        if event == "execution_success":
            return data["timestamp"] / 1000.0
    raise RuntimeError("no execution_success message in the history entry")


def histories(comfy: Any, prompt_ids: Sequence[str], timeout: float = 600) -> list[dict]:
    return [comfy.wait_history(pid, timeout=timeout) for pid in prompt_ids]


def idle_between(entries: Sequence[dict]) -> float:
    """Seconds the worker spent between one prompt's ``execution_success`` and the next one's
    ``execution_start`` (queue bookkeeping, hooks, waiting for the next prompt), summed over the run."""
    spans = []
    for entry in entries:
        stamps = {event: data["timestamp"] / 1000.0 for event, data in (entry.get("status") or {}).get("messages") or []
                  if isinstance(data, dict) and "timestamp" in data}
        spans.append((stamps["execution_start"], stamps["execution_success"]))
    spans.sort()
    return sum(max(0.0, nxt[0] - cur[1]) for cur, nxt in zip(spans, spans[1:]))


IDLE_MARGIN_MS = 0.1


def _values(side: int) -> tuple[list[int], list[int]]:
    """``side`` cells as colours x radii: 48 -> 6 x 8, 16 -> 4 x 4, 4 -> 2 x 2."""
    rows = next(r for r in range(int(side ** 0.5), 0, -1) if side % r == 0)
    colors = [0x102030 + 0x0f0b07 * i for i in range(rows)]
    radii = list(range(1, side // rows + 1))
    return colors, radii


def sweep_prompt(side: int, size: int) -> dict[str, Any]:
    colors, radii = _values(side)
    return {
        "1": {"class_type": "WIParameterInt", "inputs": {"name": "color", "values": ", ".join(map(str, colors))}},
        "2": {"class_type": "WIParameterInt", "inputs": {"name": "radius", "values": ", ".join(map(str, radii)), "previous": ["1", 0]}},
        "3": {"class_type": "WIIterator", "inputs": {"parameters": ["2", 0], "enabled": True, "mode": "matrix", "batch_name": "e2e"}},
        "10": {"class_type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": 1, "color": ["1", 1]}},
        "13": {"class_type": "ImageBlur", "inputs": {"image": ["10", 0], "blur_radius": ["2", 1], "sigma": 1.5}},
        "20": {"class_type": "WISaveImage", "inputs": {"images": ["13", 0], "filename_prefix": "bench_ours"}},
    }


def direct_prompts(side: int, size: int) -> list[dict[str, Any]]:
    """The sweep's cells in cell order (first axis slowest), literal values, core SaveImage."""
    colors, radii = _values(side)
    return [{
        "10": {"class_type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": 1, "color": color}},
        "13": {"class_type": "ImageBlur", "inputs": {"image": ["10", 0], "blur_radius": radius, "sigma": 1.5}},
        "20": {"class_type": "SaveImage", "inputs": {"images": ["13", 0], "filename_prefix": "bench_direct"}},
    } for color in colors for radius in radii]


def run_ours(comfy: Any, side: int, size: int) -> tuple[float, int]:
    t0 = time.time()
    code, answer = comfy.queue_prompt(sweep_prompt(side, size), client_id=f"bench-{uuid.uuid4().hex[:8]}")
    if code != 200:
        raise RuntimeError(f"sweep rejected: {answer}")
    batch = comfy.batch_for_prompt(answer["prompt_id"], timeout=60)
    status = comfy.wait_batch(batch["batch_id"], states=("collecting", "complete", "cancelled"), timeout=900)
    if status["counts"]["done"] != side:
        raise RuntimeError(f"sweep ended with {status['counts']}")
    ids = [cell["prompt_id"] for cell in status["cells"]]
    entries = histories(comfy, ids)
    end = max(finished_at(h) for h in entries)
    comfy.wait_idle(timeout=120)
    return end - t0, idle_between(entries)


def run_direct(comfy: Any, side: int, size: int) -> tuple[float, int]:
    client = f"bench-{uuid.uuid4().hex[:8]}"
    prompts = direct_prompts(side, size)
    t0 = time.time()
    ids = []
    for prompt in prompts:
        code, answer = comfy.queue_prompt(prompt, client_id=client)
        if code != 200:
            raise RuntimeError(f"direct prompt rejected: {answer}")
        ids.append(answer["prompt_id"])
    entries = histories(comfy, ids)
    end = max(finished_at(h) for h in entries)
    comfy.wait_idle(timeout=120)
    return end - t0, idle_between(entries)


def run(quick: bool, side: int | None = None, reps: int | None = None, size: int | None = None) -> list[dict[str, Any]]:
    """``side`` is the number of cells (48 by default, as issue 11 measures it; 16 with --quick)."""
    reason = comfy_unavailable()
    if reason:
        return [{"skipped": f"e2e benchmark skipped: {reason}"}]
    side = side or (16 if quick else 48)
    size = size or (64 if quick else 256)
    reps = reps or (1 if quick else 7)  # the issue asks for >= 3; 7 because single runs swing +-50% on a loaded 2-core box
    comfy = shared_server()
    flush_cache(comfy)
    run_direct(comfy, 4, size)  # warm-up: first-run imports and torch kernels, not timed
    run_ours(comfy, 4, size)
    ours, direct, ours_idle, direct_idle = [], [], [], []
    for rep in range(reps):
        order = (("ours", run_ours), ("direct", run_direct)) if rep % 2 == 0 else (("direct", run_direct), ("ours", run_ours))
        for name, fn in order:
            flush_cache(comfy)
            seconds, idle = fn(comfy, side, size)
            (ours if name == "ours" else direct).append(seconds)
            (ours_idle if name == "ours" else direct_idle).append(idle)
    ours_s, direct_s = statistics.median(ours), statistics.median(direct)
    ratio = ours_s / direct_s
    paired = statistics.median(o / d for o, d in zip(ours, direct))  # each repetition's two back-to-back runs
    cells = side
    ours_idle_ms = statistics.median(ours_idle) * 1e3 / max(1, cells - 1)
    direct_idle_ms = statistics.median(direct_idle) * 1e3 / max(1, cells - 1)
    return [{
        "cells": cells,
        "size": size,
        "reps": reps,
        "ours_s": round(ours_s, 3),
        "direct_s": round(direct_s, 3),
        "ours_runs_s": " ".join(f"{x:.2f}" for x in ours),
        "direct_runs_s": " ".join(f"{x:.2f}" for x in direct),
        "ours_ms_per_cell": round(ours_s * 1e3 / cells, 1),
        "direct_ms_per_cell": round(direct_s * 1e3 / cells, 1),
        "ours_idle_ms_per_cell": round(ours_idle_ms, 2),
        "direct_idle_ms_per_cell": round(direct_idle_ms, 2),
        "idle_target": "met" if ours_idle_ms <= direct_idle_ms + IDLE_MARGIN_MS else "MISSED",
        "ratio": round(ratio, 3),
        "paired_ratio": round(paired, 3),
        "ratio_le_1.05": "met" if ratio <= RATIO_TARGET else "MISSED",
    }]


COLUMNS = ("cells", "size", "reps", "ours_s", "direct_s", "ours_runs_s", "direct_runs_s", "ours_ms_per_cell",
           "direct_ms_per_cell", "ours_idle_ms_per_cell", "direct_idle_ms_per_cell", "idle_target", "ratio",
           "paired_ratio", "ratio_le_1.05")


def table(rows: Sequence[dict[str, Any]]) -> str:
    if rows and "skipped" in rows[0]:
        return rows[0]["skipped"]
    lines = [format_table(rows, COLUMNS),
             "wall time from the first POST to the last execution_success in history (median of alternating runs);"
             f" ratio = ours / direct of the medians, target <= {RATIO_TARGET} (the verdict);"
             " paired_ratio = median over repetitions of ours / direct of the two back-to-back runs;"
             " *_idle_ms_per_cell: worker idle time between one cell's execution_success and the next one's"
             " execution_start (median run), the per-cell overhead least disturbed by machine load;"
             f" idle_target: ours <= direct + {IDLE_MARGIN_MS} ms"]
    for r in rows:
        if r["ratio_le_1.05"] != "met":
            lines.append(f"TARGET MISSED: ours/direct = {r['ratio']} > {RATIO_TARGET}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_cli(__doc__, run, table, argv, cleanup=stop_shared_server)


if __name__ == "__main__":
    sys.exit(main())
