"""ComfyUI's own queue controls acting on a sweep, on every real backend: Clear queue, deleting one cell (a
middle one, and the last queued one, which ComfyUI removes through an internal one-item ``wipe_queue``),
``front: true``, cancelling a batch while an unrelated prompt runs, partial execution targets kept by every
queued cell, and a queued cell failing validation. Each was asserted only against tests/comfy_standin.py
before; these are their real-ComfyUI twins."""
from __future__ import annotations

import json
import time
import uuid

import pytest

from .test_real_comfyui import sweep

pytestmark = pytest.mark.integration


def sleeper(seconds: float) -> dict:
    """An unrelated (non-sweep) prompt that keeps the worker busy for ``seconds``."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 5}},
        "2": {"class_type": "WITestSleep", "inputs": {"image": ["1", 0], "seconds": seconds}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": f"sleeper_{uuid.uuid4().hex[:6]}"}},
    }


def wait_until(predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(what)


def start_batch(comfy, prompt: dict, **extra) -> str:
    code, answer = comfy.queue_prompt(prompt, **extra)
    assert code == 200, answer
    return comfy.batch_for_prompt(answer["prompt_id"])["batch_id"]


def cells_by_index(status: dict) -> dict[int, dict]:
    return {c["index"]: c for c in status["cells"]}


def wait_cell_running(comfy, batch_id: str, index: int) -> dict:
    def running():
        status = comfy.get(f"/wi/status/{batch_id}")[1]
        return status if cells_by_index(status)[index]["status"] == "running" else None

    return wait_until(running, f"cell {index} of {batch_id} never ran")


def pending_ids(comfy) -> list[str]:
    return [item[1] for item in sorted(comfy.get("/queue")[1]["queue_pending"], key=lambda item: item[0])]


def first_start(comfy, prompt_id: str) -> float:
    history = comfy.wait_history(prompt_id)
    return next(m[1]["timestamp"] for m in history["status"]["messages"] if m[0] == "execution_start")


def test_clear_queue_cancels_the_batch_and_nothing_refills_it(comfy):
    batch_id = start_batch(comfy, sweep("1, 2, 3, 4", "1", seconds=1.5, name="clearme", grid=False))
    running = wait_cell_running(comfy, batch_id, 0)
    queued = [c["prompt_id"] for c in running["cells"] if c["index"] > 0]
    assert set(queued) <= set(pending_ids(comfy))
    assert comfy.post("/queue", {"clear": True})[0] == 200
    final = comfy.wait_batch(batch_id)
    comfy.wait_idle()
    assert final["state"] == "cancelled"
    cells = cells_by_index(final)
    assert [cells[i]["status"] for i in (1, 2, 3)] == ["cancelled"] * 3
    for prompt_id in queued:  # removed, never run, and not put back by the feeder
        assert comfy.get(f"/history/{prompt_id}")[1] == {}
    # ComfyUI's Clear leaves the running prompt alone, and so does the pack.
    assert comfy.wait_history(cells[0]["prompt_id"])["status"]["status_str"] == "success"


def test_deleting_a_middle_cell_cancels_only_that_cell(comfy):
    batch_id = start_batch(comfy, sweep("1, 2, 3, 4", "1", seconds=1.0, name="delmid", grid=False))
    cells = cells_by_index(wait_cell_running(comfy, batch_id, 0))
    victim = cells[2]["prompt_id"]
    assert victim in pending_ids(comfy)
    assert comfy.post("/queue", {"delete": [victim]})[0] == 200
    final = comfy.wait_batch(batch_id)
    assert {c["index"]: c["status"] for c in final["cells"]} == {0: "done", 1: "done", 2: "cancelled", 3: "done"}
    assert comfy.get(f"/history/{victim}")[1] == {}


def test_deleting_the_last_queued_cell_cancels_only_that_cell(comfy):
    """With one item left in ComfyUI's queue, ``delete_queue_item`` empties it through ``wipe_queue``: the pack
    must not take that for a user's Clear queue and cancel the batch, running cell included."""
    batch_id = start_batch(comfy, sweep("1, 2", "1", seconds=2.0, name="dellast", grid=False))
    cells = cells_by_index(wait_cell_running(comfy, batch_id, 0))
    last = cells[1]["prompt_id"]
    assert pending_ids(comfy) == [last]  # the one-item queue where ComfyUI wipes instead of popping
    assert comfy.post("/queue", {"delete": [last]})[0] == 200
    final = comfy.wait_batch(batch_id)
    assert {c["index"]: c["status"] for c in final["cells"]} == {0: "done", 1: "cancelled"}
    assert comfy.wait_history(cells[0]["prompt_id"])["status"]["status_str"] == "success"


def test_front_sweep_runs_whole_before_earlier_queued_prompts(comfy):
    code, blocker = comfy.queue_prompt(sleeper(1.5))
    assert code == 200
    wait_until(lambda: comfy.get("/queue")[1]["queue_running"], "the blocker never started")
    code, back = comfy.queue_prompt(sleeper(0.0))
    assert code == 200
    batch_id = start_batch(comfy, sweep("1, 2, 3", "1", name="front", grid=False), front=True)
    final = comfy.wait_batch(batch_id)
    assert final["counts"]["done"] == 3
    cell_starts = [first_start(comfy, c["prompt_id"]) for c in sorted(final["cells"], key=lambda c: c["index"])]
    assert first_start(comfy, blocker["prompt_id"]) < min(cell_starts)
    assert max(cell_starts) < first_start(comfy, back["prompt_id"])  # the front batch jumped the queued prompt


def test_cancel_while_an_unrelated_prompt_runs_leaves_that_prompt_alone(comfy):
    code, other = comfy.queue_prompt(sleeper(2.0), client_id="someone-else")
    assert code == 200
    wait_until(lambda: comfy.get("/queue")[1]["queue_running"], "the unrelated prompt never started")
    batch_id = start_batch(comfy, sweep("1, 2, 3", "1", name="cancel-queued", grid=False))
    status = comfy.get(f"/wi/status/{batch_id}")[1]
    assert all(c["status"] == "queued" for c in status["cells"])
    code, cancelled = comfy.post(f"/wi/cancel_batch/{batch_id}", {})
    assert code == 200, cancelled
    assert cancelled["interrupting"] is None
    assert sorted(cancelled["removed"]) == sorted(c["prompt_id"] for c in status["cells"] if c["prompt_id"])
    history = comfy.wait_history(other["prompt_id"])
    assert history["status"]["status_str"] == "success"  # not interrupted by the batch's cancel
    final = comfy.get(f"/wi/status/{batch_id}")[1]
    assert final["state"] == "cancelled" and [c["status"] for c in final["cells"]] == ["cancelled"] * 3


def test_partial_execution_targets_are_kept_by_every_queued_cell(comfy):
    prompt = sweep("1, 2, 3", "1", name="partial", grid=False)
    prompt["30"] = {"class_type": "SaveImage", "inputs": {"images": ["13", 0], "filename_prefix": "not_selected"}}
    code, blocker = comfy.queue_prompt(sleeper(1.5))
    assert code == 200
    wait_until(lambda: comfy.get("/queue")[1]["queue_running"], "the blocker never started")
    batch_id = start_batch(comfy, prompt, partial_execution_targets=["20"])
    ids = {c["prompt_id"] for c in comfy.get(f"/wi/status/{batch_id}")[1]["cells"]}
    queued = [item for item in comfy.get("/queue")[1]["queue_pending"] if item[1] in ids]
    assert len(queued) == 3
    assert [item[4] for item in queued] == [["20"]] * 3  # outputs to execute: only the selected one
    final = comfy.wait_batch(batch_id)
    assert final["counts"]["done"] == 3
    for cell in final["cells"]:
        assert set(comfy.wait_history(cell["prompt_id"])["outputs"]) == {"20"}


def test_a_queued_cell_failing_validation_fails_alone_and_is_never_queued(comfy):
    # EmptyImage.color has min 0: the middle cell's -1 fails ComfyUI's validation, the others run.
    batch_id = start_batch(comfy, sweep("1, -1, 2", "1", name="badcell", grid=False))
    final = comfy.wait_batch(batch_id)
    cells = cells_by_index(final)
    assert {i: c["status"] for i, c in cells.items()} == {0: "done", 1: "failed", 2: "done"}
    assert cells[1]["error"] == "validation failed: node 10 (EmptyImage): color", cells[1]["error"]
    assert not cells[1]["prompt_id"] or comfy.get(f"/history/{cells[1]['prompt_id']}")[1] == {}


def test_a_skipped_parameter_wired_into_an_input_without_default_rejects_the_press(comfy):
    prompt = sweep("1, 2", "1, x", name="nodefault", grid=False)  # "x" makes the radius parameter skipped
    prompt["13"]["inputs"]["blur_radius"] = 1
    prompt["16"] = {"class_type": "WITestNoDefault", "inputs": {"image": ["13", 0], "amount": ["2", 1]}}
    prompt["14"]["inputs"]["image"] = ["16", 0]
    code, answer = comfy.queue_prompt(prompt)
    assert code == 400, answer
    message = json.dumps(answer["node_errors"]["3"])
    assert "16.amount" in message and "no default" in message, message
