"""Loop stall: does one hostile request stop ComfyUI's server loop from answering everyone else?

On a real ComfyUI (tools/comfy_harness.py; skipped with the reason when none is found), a client polls
``GET /queue`` every 20 ms over a kept-alive connection while another client sends one request, and the
poll latencies are recorded from just before that request until its answer arrived:

* ``baseline``: nothing else is sent (the same polling, the same duration): the machine's own noise;
* ``worst preview``: ``POST /wi/preview`` with one 10,000-value SEED axis and an image size (the iterator
  badge sends this 300 ms after each edit; the grid estimate for 10,000 labels takes seconds of CPU);
* ``worst prompt``: ``POST /prompt`` with a sweep whose INT parameter holds 20 MB of ``1,`` (refused: too
  many values);
* ``comfyui parse only``: for reference, a body of the same size that ComfyUI reads and parses but refuses at
  once (an empty prompt, the 20 MB in ``extra_data``): the floor any handler of such a body pays before the
  pack's hook runs. ``over_parse_ms`` = a row's ``median_max_ms`` minus this floor;
* ``comfyui alone``: the same 20 MB as a plain (invalid) input of a core node, no sweep involved: what ComfyUI
  itself spends on such a prompt (its validation error echoes the value back).

``max_ms`` is the longest any ``/queue`` poll waited: the loop stall. Target: < 100 ms for the two worst
requests (``target`` column); ``pack_target`` applies it to the stall beyond ComfyUI's own parse of a body of
that size (``over_parse_ms``), which alone can exceed 100 ms for 20 MB on a loaded machine. ``answer_s`` is how long the hostile request itself took to be answered and
``status`` its HTTP status (a clear 200/400 at once, not after seconds).

``measure()`` is also used by tests/integration/test_loop_stall.py, which asserts a generous bound.
"""
from __future__ import annotations

import http.client
import json
import statistics
import sys
import threading
import time
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

from ._cli import run_cli
from .e2e_bench import comfy_unavailable, shared_server, stop_shared_server
from .interception_bench import format_table

POLL_PERIOD_S = 0.02
TARGET_MS = 100.0
COLUMNS = ["scenario", "polls", "p50_ms", "p99_ms", "max_ms", "median_max_ms", "max_ms_runs", "over_parse_ms", "status",
           "answer_s", "target", "pack_target"]


def worst_preview_body() -> dict[str, Any]:
    return {"parameters": [{"name": "seed", "type": "SEED", "values": "1-10000", "node_id": "1"}],
            "mode": "matrix", "image_size": [512, 512]}


def worst_prompt(megabytes: int = 20) -> dict[str, Any]:
    """A sweep whose one parameter holds ``megabytes`` MB of ``1,`` (the value limit refuses it)."""
    return {
        "1": {"class_type": "WIParameterInt", "inputs": {"name": "color", "values": "1," * (megabytes * 2**19)}},
        "2": {"class_type": "WIIterator", "inputs": {"parameters": ["1", 0], "enabled": True, "mode": "matrix", "batch_name": "stall"}},
        "3": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": ["1", 1]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "stall"}},
    }


def parse_only_body(megabytes: int = 20) -> dict[str, Any]:
    """A body ComfyUI must read and parse, then refuses at once (no outputs), whatever packs are installed."""
    return {"prompt": {}, "extra_data": {"blob": "1," * (megabytes * 2**19)}}


def plain_big_prompt(megabytes: int = 20) -> dict[str, Any]:
    """The same amount of text in a prompt without the pack's nodes (ComfyUI rejects the input's type)."""
    return {
        "3": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": "1," * (megabytes * 2**19)}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "stall"}},
    }


class _Poller(threading.Thread):
    """GET /queue every POLL_PERIOD_S on one kept-alive connection; (sent_at, latency) per poll."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True, name="wi-bench-poller")
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self.samples: list[tuple[float, float]] = []
        self.errors = 0
        self._halt = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=120)
        next_at = time.perf_counter()
        while not self._halt.is_set():
            sent = time.perf_counter()
            try:
                conn.request("GET", "/queue")
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(self._host, self._port, timeout=120)
            self.samples.append((sent, time.perf_counter() - sent))
            self.errors += 0 if ok else 1
            next_at += POLL_PERIOD_S
            delay = next_at - time.perf_counter()
            if delay > 0:
                self._halt.wait(delay)
            else:
                next_at = time.perf_counter()  # a stalled poll: keep the period from the next one on
        conn.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=150)


def _post(url: str, path: str, payload: bytes, timeout: float = 300.0) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        conn.request("POST", path, body=payload, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def measure(url: str, action: Callable[[], tuple[int, Any]] | None, *, idle_s: float = 1.0) -> dict[str, Any]:
    """Poll /queue while ``action`` runs (or for ``idle_s`` when it is None); latencies of the polls sent
    from just before the action until it returned (the settle time before it is not counted)."""
    poller = _Poller(url)
    poller.start()
    time.sleep(0.3)  # the connection is open and the polling steady before the request goes out
    start = time.perf_counter()
    status: Any = None
    if action is None:
        time.sleep(idle_s)
    else:
        status = action()[0]
    end = time.perf_counter()
    time.sleep(2 * POLL_PERIOD_S)
    poller.stop()
    window = [latency for sent, latency in poller.samples if start - POLL_PERIOD_S <= sent <= end]
    window = window or [latency for _, latency in poller.samples[-1:]]
    ordered = sorted(window)
    return {
        "polls": len(window),
        "p50_ms": round(statistics.median(ordered) * 1e3, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e3, 2),
        "max_ms": round(ordered[-1] * 1e3, 2),
        "poll_errors": poller.errors,
        "status": status,
        "answer_s": round(end - start, 3),
    }


def post_json(url: str, path: str, body: Any) -> Callable[[], tuple[int, Any]]:
    payload = json.dumps(body).encode()  # encoded before the clock starts: the client's cost is not the server's
    return lambda: _post(url, path, payload)


def scenarios(url: str, *, megabytes: int = 20) -> list[tuple[str, Callable[[], tuple[int, Any]] | None, bool]]:
    """(name, action, has_target) in the order they run."""
    return [
        ("baseline (no load)", None, False),
        ("worst preview: 10,000-value SEED axis", post_json(url, "/wi/preview", worst_preview_body()), True),
        (f"worst prompt: {megabytes} MB of '1,' as INT values", post_json(url, "/prompt", {"prompt": worst_prompt(megabytes)}), True),
        (f"comfyui parse only: {megabytes} MB body, empty prompt", post_json(url, "/prompt", parse_only_body(megabytes)), False),
        (f"comfyui alone: {megabytes} MB in a core node input", post_json(url, "/prompt", {"prompt": plain_big_prompt(megabytes)}), False),
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    reason = comfy_unavailable()
    if reason is not None:
        print(f"loop_stall skipped: {reason}", file=sys.stderr)
        return []
    comfy = shared_server()
    reps = 1 if quick else 3
    megabytes = 5 if quick else 20
    rows = []
    for name, action, has_target in scenarios(comfy.url, megabytes=megabytes):
        runs = [measure(comfy.url, action) for _ in range(reps)]
        worst = max(runs, key=lambda r: r["max_ms"])
        row = {"scenario": name, **worst, "max_ms_runs": [r["max_ms"] for r in runs]}
        # The verdict takes the median run: one run of three disturbed by another job on this machine is noise.
        median_max = statistics.median(r["max_ms"] for r in runs)
        row["median_max_ms"] = round(median_max, 2)
        row["target"] = ("met" if median_max < TARGET_MS else "MISSED") if has_target else "(reference)"
        rows.append(row)
    floor = next((r["median_max_ms"] for r in rows if r["scenario"].startswith("comfyui parse only")), None)
    for row in rows:
        row["over_parse_ms"] = None if floor is None or row["status"] is None else round(row["median_max_ms"] - floor, 2)
        # The pack's share: what a row stalls beyond ComfyUI's own reading and parsing of a body that size.
        if row["target"] == "(reference)":
            row["pack_target"] = "-"
        else:
            share = row["over_parse_ms"] if row["over_parse_ms"] is not None else row["median_max_ms"]
            row["pack_target"] = "met" if share < TARGET_MS else "MISSED"
    return rows


def table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "(skipped: no ComfyUI)"
    shown = [dict(r, max_ms_runs=" ".join(str(v) for v in r["max_ms_runs"])) for r in rows]
    lines = [format_table(shown, COLUMNS),
             f"GET /queue polled every {POLL_PERIOD_S * 1e3:.0f} ms on a kept-alive connection while one request is sent;"
             " latencies of the polls sent until its answer; max_ms = the worst run's longest poll (the loop stall),"
             f" median_max_ms = median over runs of each run's max, the verdict (target < {TARGET_MS:.0f} ms);"
             " answer_s / status: the request's own answer time and HTTP status; over_parse_ms = median_max_ms minus"
             " the 'comfyui parse only' row (what ComfyUI spends reading and parsing a body of that size)"]
    lines.append("target: the absolute stall; pack_target: the stall beyond ComfyUI's own parse of the same body")
    for r in rows:
        if r["target"] == "MISSED":
            lines.append(f"TARGET MISSED: {r['scenario']}: loop stall {r['median_max_ms']} ms >= {TARGET_MS:.0f} ms"
                         f" (ComfyUI's own parse of a body this size: {r['median_max_ms'] - (r['over_parse_ms'] or 0):.0f} ms)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_cli(__doc__, run, table, argv, cleanup=stop_shared_server)


if __name__ == "__main__":
    sys.exit(main())
