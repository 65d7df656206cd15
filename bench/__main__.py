"""Every benchmark, one command: ``python -m bench`` (``--quick`` for a smoke run, ``--only NAME`` for one).

Each benchmark measures its baseline in the same run and prints ratios, so the numbers compare on a noisy
machine. Targets and how to read the output: bench/README.md. Benchmarks that need a real ComfyUI (e2e,
cache_order) share one server and print why they were skipped when none is found.
"""
from __future__ import annotations

import argparse
import json
import platform
import os
import sys
import time
import traceback
from typing import Any, Callable

from . import (against, big_batch_bench, cache_order_bench, e2e_bench, grid_bench, interception_bench, loop_stall_bench,
               manager_bench, status_load_bench, worker_hooks_bench, workers_bench)


def _grid_table(rows: list[dict[str, Any]]) -> str:
    return (grid_bench._table(rows) + "\ntimes: best of 3 (1 with --quick); memory: peak RSS above an idle interpreter;"
            " budget = output raster + 4 decoded cells; floor = PNG encode alone (see bench/grid_bench.py)")


#: name -> (title, run(quick) -> rows, table(rows) -> str)
BENCHMARKS: dict[str, tuple[str, Callable[[bool], list[dict[str, Any]]], Callable[[list[dict[str, Any]]], str]]] = {
    "interception": ("1. Interception: onprompt handler and feeder vs deepcopy-per-combination",
                     interception_bench.run, interception_bench.table),
    "e2e": ("2. End to end on a real ComfyUI: sweep through the iterator vs the same prompts posted directly",
            e2e_bench.run, e2e_bench.table),
    "cache_order": ("3. Cache-aware run order on a real ComfyUI: expensive upstream node executions",
                    cache_order_bench.run, cache_order_bench.table),
    "manager": ("4. Manager scale: memory per cell of a 100,000-cell batch; status routes and cancel with 100 active batches",
                manager_bench.run, manager_bench.table),
    "status_load": ("6. Status route under load on a real ComfyUI: sweep wall time with and without ~200 requests/s",
                    status_load_bench.run, status_load_bench.table),
    "loop_stall": ("7. Loop stall on a real ComfyUI: longest /queue poll during the worst preview and the worst prompt",
                   loop_stall_bench.run, loop_stall_bench.table),
    "big_batch": ("8. A 10,000-cell batch running on a real ComfyUI: its status page and ComfyUI's /queue",
                  big_batch_bench.run, big_batch_bench.table),
    "worker_hooks": ("9. Worker hooks: the pack's work on ComfyUI's worker thread per cell vs ComfyUI's own queue work",
                     worker_hooks_bench.run, worker_hooks_bench.table),
    "workers": ("10. One sweep over K real ComfyUI servers: throughput vs one server, remote cell overhead",
                workers_bench.run, workers_bench.table),
    "grid": ("5. Grid compositor: time and peak memory vs naive compose and the PNG-encode floor",
             grid_bench.run, _grid_table),
}


def _machine() -> str:
    mem = ""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            mem = f", {int(fh.readline().split()[1]) / 2**20:.0f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    load = ""
    try:
        load = ", load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        pass
    return f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs{mem}{load}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: small N, one repetition (< 2 minutes in total)")
    ap.add_argument("--only", action="append", metavar="NAME",
                    help=f"run only this benchmark (repeatable or comma-separated): {', '.join(BENCHMARKS)}")
    ap.add_argument("--json", action="store_true", help="print every benchmark's rows as one JSON object")
    ap.add_argument("--against", metavar="REV",
                    help="run the chosen benchmarks on this git revision and on this tree in turns and compare their"
                         " ratio columns (issue 11: within 10 %%); see bench/against.py")
    ap.add_argument("--rounds", type=int, default=3, help="with --against: runs of each side (default 3)")
    args = ap.parse_args(argv)
    names = list(BENCHMARKS)
    if args.only:
        names = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown:
            ap.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    if args.against:
        if not args.only:
            ap.error("--against needs --only: each benchmark runs 2 x --rounds times")
        if args.rounds < 1:
            ap.error("--rounds must be at least 1")
        return _main_against(args.against, names, args.quick, args.rounds, args.json)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    failed = []
    if not args.json:
        print(f"machine: {_machine()}; mode: {'quick' if args.quick else 'full'}", flush=True)
    try:
        for name in names:
            title, run, table = BENCHMARKS[name]
            t0 = time.perf_counter()
            try:
                rows = run(args.quick)
            except Exception:  # one broken benchmark must not hide the others' tables
                failed.append(name)
                if not args.json:
                    print(f"\n== {title}\nFAILED:\n{traceback.format_exc()}", flush=True)
                results[name] = {"error": traceback.format_exc()}
                continue
            results[name] = rows
            if not args.json:
                print(f"\n== {title}  [{time.perf_counter() - t0:.1f} s]\n{table(rows)}", flush=True)
    finally:
        e2e_bench.stop_shared_server()
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False, default=str))
    else:
        print(f"\ntotal: {time.perf_counter() - started:.1f} s" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _main_against(revision: str, names: list[str], quick: bool, rounds: int, as_json: bool) -> int:
    if not as_json:
        print(f"machine: {_machine()}; {', '.join(names)} on {revision} and on this tree, {rounds} rounds each", flush=True)
    started = time.perf_counter()
    results = against.run_against(revision, names, quick, rounds)
    if as_json:
        print(json.dumps(results, indent=2, ensure_ascii=False, default=str))
        return 0
    for name, rows in results.items():
        print(f"\n== {BENCHMARKS[name][0]}: {revision} vs this tree (medians over the rounds)\n{against.table(rows)}")
    print(f"\ntotal: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
