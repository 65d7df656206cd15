"""Cancel racing a cell's end, against a real ComfyUI (issue 12.4).

Each round queues a 3-cell sweep whose cells sleep a fixed time (the test-only WITestSleep honours ComfyUI's
interrupt flag) and then save, waits until cell 0 runs, and cancels at an offset scattered over 0-10 ms
around that cell's expected end (before and after the save). Whatever the timing, a cell's record must match
what ComfyUI ran:

* ``/history`` says success -> the cell is ``done`` with its file on disk; interrupted -> ``cancelled``; a cell
  ComfyUI never started -> ``cancelled``;
* the cancel answer never claims an interrupt (it names the prompt it asked to stop, ``interrupting``), and
  only a cell ComfyUI was running can be that prompt;
* no cell of the cancelled batch runs a node after the cancel answered: a cell whose ``execution_start``
  comes after the answer executed nothing.
"""
from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from .test_real_comfyui import sweep

pytestmark = pytest.mark.integration

ROUNDS = 40
CELL_SECONDS = 0.12


def _wait_running(comfy, batch_id: str, timeout: float = 30.0) -> float | None:
    """When cell 0 was seen running, or None when it had ended before the first look (a slow poll on a loaded
    machine: that round cannot aim at its end)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, status = comfy.get(f"/wi/status/{batch_id}?limit=1")
        if code == 200 and status["cells"][0]["status"] == "running":
            return time.monotonic()
        if code == 200 and status["cells"][0]["status"] != "queued":
            return None
        time.sleep(0.003)
    raise TimeoutError("cell 0 never ran")


def _wait_settled(comfy, batch_id: str, timeout: float = 10.0) -> dict:
    """The batch once no cell is open (the running cell's end arrives after the cancel's answer)."""
    deadline = time.monotonic() + timeout
    while True:
        status = comfy.get(f"/wi/status/{batch_id}")[1]
        if status["counts"]["pending"] == status["counts"]["running"] == 0 or time.monotonic() > deadline:
            assert status["counts"]["pending"] == status["counts"]["running"] == 0, status["counts"]
            return status
        time.sleep(0.02)


def _outcome(entry: dict) -> str:
    status = entry.get("status") or {}
    if status.get("status_str") == "success":
        return "done"
    events = [event for event, _ in status.get("messages") or []]
    return "interrupted" if "execution_interrupted" in events else "error"


def test_cancel_around_a_cells_end_records_what_comfyui_ran(comfy):
    rng = random.Random(1204)
    seen: Counter[str] = Counter()
    for round_number in range(ROUNDS):
        colours = ", ".join(str(3 * round_number + k) for k in (1, 2, 3))  # new inputs: ComfyUI's cache never answers
        code, answer = comfy.queue_prompt(sweep(colours, "1", name=f"race{round_number}", seconds=CELL_SECONDS,
                                                grid=False))
        assert code == 200, answer
        batch_id = comfy.batch_for_prompt(answer["prompt_id"])["batch_id"]
        started = _wait_running(comfy, batch_id)
        if started is None:
            seen["missed the start"] += 1
            started = time.monotonic() - CELL_SECONDS  # cancel at once: the race is then around cell 1's start
        # The cell ends about CELL_SECONDS after it started, plus the blur and the save: aim at 0-10 ms around it.
        offset = rng.uniform(-0.005, 0.015)
        time.sleep(max(0.0, started + CELL_SECONDS + offset - time.monotonic()))
        code, cancelled = comfy.post(f"/wi/cancel_batch/{batch_id}", {})
        answered_ms = time.time() * 1000
        if code == 409:  # every cell had already ended: nothing to check about the cancel
            seen["too late"] += 1
            comfy.wait_idle()
            continue
        assert code == 200, cancelled
        assert "interrupted" not in cancelled, cancelled  # never claimed: the record says what happened
        comfy.wait_batch(batch_id, states=("cancelled",), timeout=60)
        comfy.wait_idle()
        status = _wait_settled(comfy, batch_id)
        for cell in status["cells"]:
            prompt_id = cell["prompt_id"]
            entry = comfy.get(f"/history/{prompt_id}")[1].get(prompt_id) if prompt_id else None
            if entry is None:
                assert cell["status"] == "cancelled", (round_number, cell)
                seen["never ran"] += 1
                continue
            outcome = _outcome(entry)
            seen[outcome] += 1
            expected = {"done": "done", "interrupted": "cancelled", "error": "failed"}[outcome]
            assert cell["status"] == expected, (round_number, cell, entry["status"])
            if outcome == "done":
                assert cell["files"] and all((comfy.output_dir / f["subfolder"] / f["filename"]).is_file()
                                             for f in cell["files"]), cell
            messages = dict((event, data) for event, data in entry["status"]["messages"])
            start = messages.get("execution_start", {}).get("timestamp")
            if start is not None and start > answered_ms + 5:  # started after the answer (5 ms of clock slack)
                assert outcome == "interrupted", (round_number, cell, entry["status"])
                ran = messages["execution_interrupted"].get("executed") or []
                cached = messages.get("execution_cached", {}).get("nodes") or []
                assert set(ran) <= set(cached), f"cell {cell['index']} ran nodes {ran} after the cancel answered"
        if cancelled["interrupting"] is not None:
            stopped = next(c for c in status["cells"] if c["prompt_id"] == cancelled["interrupting"])
            assert stopped["status"] in ("done", "cancelled"), stopped
    # The rounds must have hit both sides of the cell's end, or they tested only one race.
    assert seen["done"] >= 1 and seen["interrupted"] + seen["never ran"] >= 1, seen
    assert seen["missed the start"] <= ROUNDS // 4, seen
