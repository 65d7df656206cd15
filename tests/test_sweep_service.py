"""The interceptor, feeder, completion and cancel against the ComfyUI stand-in (tests/comfy_standin.py)."""
from __future__ import annotations

import asyncio
import copy
import json
import threading

import pytest

import comfy_standin
from comfyui_workflow_iterator.core.iteration_state import IterationStateManager
from comfyui_workflow_iterator.core import sweep as sweep_module
from comfyui_workflow_iterator.core.sweep import SweepService, classify_outcome
from comfyui_workflow_iterator.nodes import _comfy


def sweep_prompt(values_a="1, 2, 3", values_b="10, 20, 30", mode="matrix", type_b="INT"):
    return {
        "1": {"class_type": "WIParameterInt", "inputs": {"name": "width", "values": values_a}},
        "2": {"class_type": "WIParameter", "inputs": {"name": "height", "type": type_b, "values": values_b, "previous": ["1", 0]}},
        "3": {"class_type": "WIIterator", "inputs": {"parameters": ["2", 0], "enabled": True, "mode": mode, "batch_name": "test"}},
        "4": {"class_type": "EmptyImage", "inputs": {"width": ["1", 1], "height": ["2", 1], "batch_size": 1, "color": 0}},
        "5": {"class_type": "WISaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "WI"}},
        "6": {"class_type": "WIGridCompositor", "inputs": {}},
    }


def plain_prompt(color=7):
    return {
        "4": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": color}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "plain"}},
    }


class Harness:
    def __init__(self, monkeypatch, tmp_path, six_fields=False, window=4):
        self.loop = asyncio.new_event_loop()
        self.server = comfy_standin.install(monkeypatch, self.loop, six_fields=six_fields, tmp_path=tmp_path)
        self.manager = IterationStateManager()
        self.host = _comfy.ComfyHost(self.server)
        self.grids: list[str] = []
        self.host.run_background = lambda fn, *a: fn(*a)  # run "background" work inline, deterministically
        self.service = SweepService(self.manager, self.host, grid_builder=self.grids.append, window=window)
        self.host.install(self.service)

    def post(self, body):
        status, answer = self.loop.run_until_complete(self.server.post_prompt(body))
        self.settle()
        return status, answer

    def settle(self, rounds=50):
        for _ in range(rounds):
            self.loop.run_until_complete(asyncio.sleep(0))

    def run_all(self, execute=None, limit=1000):
        ran = []
        for _ in range(limit):
            self.settle()
            item = self.server.run_next(execute)
            if item is None:
                self.settle()
                if self.server.run_next(execute) is None:
                    break
                continue
            ran.append(item)
        return ran

    def close(self):
        self.settle()
        comfy_standin.close_loop(self.loop)

    def events(self, name):
        return [data for event, data, _ in self.server.sent if event == name]


@pytest.fixture
def harness(monkeypatch, tmp_path):
    h = Harness(monkeypatch, tmp_path)
    yield h
    h.close()


def only_batch(h):
    (summary,) = h.manager.list_batches()
    return h.manager.get_status(summary["batch_id"])


def test_prompt_without_iterator_is_returned_untouched(harness):
    body = {"prompt": plain_prompt(), "client_id": "c1"}
    assert harness.service.handle_prompt(body) is body


@pytest.mark.parametrize("body", [{}, {"number": 3}, {"prompt": "not a dict"}, [], None, "text"])
def test_malformed_bodies_are_returned_unchanged(harness, body):
    assert harness.service.handle_prompt(body) is body


def test_matrix_sweep_queues_every_cell_once_and_completes(harness):
    status, answer = harness.post({"prompt": sweep_prompt(), "client_id": "tab-1"})
    assert status == 200
    ran = harness.run_all()
    sizes = [(item[2]["4"]["inputs"]["width"], item[2]["4"]["inputs"]["height"]) for item in ran]
    assert sizes == [(a, b) for a in (1, 2, 3) for b in (10, 20, 30)]  # first parameter varies slowest
    batch = only_batch(harness)
    assert batch["counts"]["done"] == 9 and batch["state"] in ("collecting", "complete")
    assert harness.grids == [batch["batch_id"]]  # grid requested exactly once
    assert all(item[3]["client_id"] == "tab-1" for item in ran)  # every cell reports to the submitting tab
    assert [item[3]["wi"]["index"] for item in ran] == list(range(9))
    assert all(cell["files"] for cell in batch["cells"])


def test_linear_mode_zips_and_cycles(harness):
    harness.post({"prompt": sweep_prompt("1, 2, 3", "10, 20", mode="linear")})
    ran = harness.run_all()
    assert [(i[2]["4"]["inputs"]["width"], i[2]["4"]["inputs"]["height"]) for i in ran] == [(1, 10), (2, 20), (3, 10)]


def test_cells_are_isolated_clones(harness):
    harness.post({"prompt": sweep_prompt("1, 2, 3", "10")})
    ran = harness.run_all()
    assert ran[0][2] is not ran[1][2]
    ran[1][2]["4"]["inputs"]["color"] = 99
    assert ran[0][2]["4"]["inputs"]["color"] == ran[2][2]["4"]["inputs"]["color"] == 0
    # What ComfyUI writes into is each cell's own: the swept node, and the save node (IS_CHANGED memo).
    assert ran[1][2]["4"] is not ran[2][2]["4"] and ran[1][2]["5"] is not ran[2][2]["5"]
    # What it never writes into is shared by the queued clones; the submitted cell owns all of its nodes.
    assert ran[1][2]["6"] is ran[2][2]["6"] and ran[0][2]["6"] is not ran[1][2]["6"]


def test_clones_keep_the_secret_keys_comfyui_strips_from_the_submitted_item(harness):
    """ComfyUI strips API keys from a finished item's extra_data (0.3.64: from its running copy; nodes get the
    item's own dict): clones queued after the submitted cell ended still carry them."""
    seen = []

    def execute(prompt, item):
        seen.append(item[3].get("api_key_comfy_org"))
        item[3].pop("api_key_comfy_org", None)  # what task_done does to the running copy, here to the item
        return comfy_standin.default_execute(prompt, item)

    body = {"prompt": sweep_prompt("1, 2, 3", "10, 20"), "extra_data": {"api_key_comfy_org": "k-1"}}
    status, _ = harness.loop.run_until_complete(harness.server.post_prompt(body))
    assert status == 200
    harness.server.run_next(execute)  # the submitted cell ends before the feeder has started
    harness.run_all(execute)
    assert seen == ["k-1"] * 6


def test_batch_cells_run_before_prompts_posted_later(harness):
    harness.post({"prompt": sweep_prompt("1, 2, 3", "10, 20, 30")})
    harness.post({"prompt": plain_prompt(), "client_id": "other"})
    ran = harness.run_all()
    assert [("wi" in item[3]) for item in ran] == [True] * 9 + [False]


def _hold_the_feeder(harness, monkeypatch) -> asyncio.Event:
    """The feeder waits for the returned event before queueing cell 1, as a busy loop (or the run order of
    a big sweep) makes it wait on a real server."""
    gate = asyncio.Event()
    original = SweepService._feed

    async def held_feed(self, *args, **kwargs):
        await gate.wait()
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(SweepService, "_feed", held_feed)
    return gate


def _worker_thread(harness) -> tuple[threading.Thread, list]:
    """ComfyUI's worker: its own thread, waiting for the next item with a timeout."""
    taken: list = []
    thread = threading.Thread(target=lambda: taken.append(harness.server.run_next(timeout=10)), daemon=True)
    thread.start()
    return thread, taken


def test_a_prompt_posted_while_the_feeder_is_behind_still_runs_after_the_batch(harness, monkeypatch):
    # Seen against ComfyUI 0.8.0 under load: cell 0 ended before the feeder had queued cell 1, the worker took
    # the next queued item, another client's sweep, and the two batches interleaved.
    gate = _hold_the_feeder(harness, monkeypatch)
    harness.post({"prompt": sweep_prompt("1, 2", "10")})
    assert "wi" in harness.server.run_next()[3]  # cell 0 ran; cell 1 is not queued yet
    harness.post({"prompt": plain_prompt(), "client_id": "other"})
    thread, taken = _worker_thread(harness)
    thread.join(0.5)  # the worker asks for its next item while the feeder is still behind
    harness.loop.call_soon(gate.set)
    while thread.is_alive():
        harness.settle(1)
    assert "wi" in taken[0][3]  # the batch's cell 1, not the prompt posted after the batch
    assert ["wi" in item[3] for item in harness.run_all()] == [False]
    assert only_batch(harness)["counts"]["done"] == 2


def test_a_feeder_that_never_catches_up_holds_the_worker_only_briefly(harness, monkeypatch):
    monkeypatch.setattr(sweep_module, "FEEDER_HOLD_S", 0.2)
    _hold_the_feeder(harness, monkeypatch)  # never opened
    harness.post({"prompt": sweep_prompt("1, 2", "10")})
    harness.server.run_next()
    harness.post({"prompt": plain_prompt(), "client_id": "other"})
    thread, taken = _worker_thread(harness)
    thread.join(5)
    assert not thread.is_alive() and "wi" not in taken[0][3]  # the worker went on with what was queued


def test_a_worker_whose_own_timeout_runs_out_while_held_is_told_nothing_is_queued(harness, monkeypatch):
    # ComfyUI shortens the worker's get timeout before its periodic gc; the prompt posted later must not run
    # then either: the get answers None (as after an empty wait), and the worker's next get finds cell 1.
    gate = _hold_the_feeder(harness, monkeypatch)
    harness.post({"prompt": sweep_prompt("1, 2", "10")})
    harness.server.run_next()
    harness.post({"prompt": plain_prompt(), "client_id": "other"})
    taken: list = []
    thread = threading.Thread(target=lambda: taken.append(harness.server.run_next(timeout=0.2)), daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive() and taken == [None]
    harness.loop.call_soon(gate.set)
    harness.settle()
    assert ["wi" in item[3] for item in harness.run_all()] == [True, False]


def test_the_worker_is_not_held_once_the_batch_is_cancelled(harness, monkeypatch):
    monkeypatch.setattr(sweep_module, "FEEDER_HOLD_S", 30.0)
    _hold_the_feeder(harness, monkeypatch)
    harness.post({"prompt": sweep_prompt("1, 2", "10")})
    harness.server.run_next()
    harness.post({"prompt": plain_prompt(), "client_id": "other"})
    harness.service.cancel(only_batch(harness)["batch_id"])
    thread, taken = _worker_thread(harness)
    thread.join(5)
    assert not thread.is_alive() and "wi" not in taken[0][3]


def test_front_prompt_runs_first_and_batch_stays_contiguous(harness):
    harness.post({"prompt": sweep_prompt("1, 2", "10, 20")})
    harness.post({"prompt": plain_prompt(), "front": True})
    ran = harness.run_all()
    kinds = ["wi" in item[3] for item in ran]
    assert kinds[0] is False and kinds[1:] == [True] * 4


def test_bad_parameter_is_reported_and_skipped(harness):
    status, _ = harness.post({"prompt": sweep_prompt("1, 2", "10, oops"), "client_id": "c"})
    assert status == 200
    errors = harness.events("wi.param_error")
    assert len(errors) == 1 and errors[0]["param"] == "height" and "oops" in errors[0]["message"]
    assert "4.height uses its default 512" in errors[0]["message"]
    ran = harness.run_all()
    assert len(ran) == 2
    # The skipped parameter's wired input gets the input's default, so its node never runs in a cell.
    assert all(item[2]["4"]["inputs"]["height"] == 512 for item in ran)
    assert only_batch(harness)["counts"]["done"] == 2


def test_a_skipped_parameter_wired_into_an_input_without_default_rejects_the_press(harness):
    prompt = sweep_prompt("1, 2", "10, oops")
    prompt["4"]["inputs"]["height"] = 8
    prompt["7"] = {"class_type": "WITestNoDefault", "inputs": {"image": ["4", 0], "amount": ["2", 1]}}  # no default
    status, answer = harness.post({"prompt": prompt})
    assert status == 400 and "no default" in json.dumps(answer["node_errors"])


def test_nothing_valid_rejects_the_queue_press_on_the_iterator_node(harness):
    status, answer = harness.post({"prompt": sweep_prompt("x", "y")})
    assert status == 400
    assert "3" in answer["node_errors"]  # the iterator's node id carries the message
    assert harness.server.prompt_queue.queue == []
    assert harness.manager.list_batches() == []


def test_clone_failing_validation_becomes_a_failed_cell_not_a_queue_item(harness):
    # width 0 is below EmptyImage's minimum: cells with it fail validation and are never queued.
    harness.post({"prompt": sweep_prompt("1, 0, 2", "10")})
    ran = harness.run_all()
    assert [i[2]["4"]["inputs"]["width"] for i in ran] == [1, 2]
    batch = only_batch(harness)
    failed = [c for c in batch["cells"] if c["status"] == "failed"]
    assert [c["index"] for c in failed] == [1] and "validation failed" in failed[0]["error"]
    assert batch["counts"]["done"] == 2 and harness.grids == [batch["batch_id"]]


def test_rejected_first_cell_ends_the_batch_without_clones(harness):
    status, _ = harness.post({"prompt": sweep_prompt("0, 1", "10")})
    assert status == 400
    assert harness.server.prompt_queue.queue == []
    batch = only_batch(harness)
    assert batch["state"] == "cancelled"


def test_six_field_items_are_copied_from_comfyui_own_item(monkeypatch, tmp_path):
    h = Harness(monkeypatch, tmp_path, six_fields=True)
    h.post({"prompt": sweep_prompt("1, 2, 3", "10")})
    ran = h.run_all()
    assert [len(item) for item in ran] == [6, 6, 6]
    h.close()


def test_already_expanded_body_is_not_expanded_again(harness):
    body = harness.service.handle_prompt({"prompt": sweep_prompt(), "client_id": "c"})
    assert harness.service.handle_prompt(body) is body


def test_handler_does_not_mutate_the_submitted_body(harness):
    body = {"prompt": sweep_prompt(), "client_id": "c", "extra_data": {"extra_pnginfo": {"workflow": {"nodes": []}}}}
    before = copy.deepcopy(body)
    new_body = harness.service.handle_prompt(body)
    assert body == before and new_body is not body


def test_cancel_removes_only_this_batch_and_interrupts_only_its_running_cell(harness):
    harness.post({"prompt": sweep_prompt("1, 2, 3", "10, 20, 30")})
    harness.post({"prompt": plain_prompt(), "client_id": "other"})
    got = harness.server.prompt_queue.get(timeout=0)  # the worker starts cell 0
    harness.settle()
    batch_id = only_batch(harness)["batch_id"]
    answer = harness.service.cancel(batch_id)
    assert answer["interrupting"] == got[0][1]
    assert comfy_standin.INTERRUPTS == [True]
    remaining = [item for item in harness.server.prompt_queue.queue]
    assert len(remaining) == 1 and "wi" not in remaining[0][3]  # the unrelated prompt survives
    harness.settle()
    assert all("wi" not in item[3] for item in harness.server.prompt_queue.queue)  # the feeder stopped
    assert only_batch(harness)["state"] == "cancelled"


def test_cancel_does_not_interrupt_an_unrelated_running_prompt(harness):
    harness.post({"prompt": plain_prompt(), "client_id": "other"})
    harness.post({"prompt": sweep_prompt("1, 2", "10")})
    harness.server.prompt_queue.get(timeout=0)  # the unrelated prompt is running
    answer = harness.service.cancel(only_batch(harness)["batch_id"])
    assert answer["interrupting"] is None and comfy_standin.INTERRUPTS == []


def test_cancel_unknown_and_finished_batches(harness):
    from comfyui_workflow_iterator.core.errors import InvalidBatchState, UnknownBatchError

    with pytest.raises(UnknownBatchError):
        harness.service.cancel("nope_00000000")
    harness.post({"prompt": sweep_prompt("1", "10")})
    harness.run_all()
    with pytest.raises(InvalidBatchState):
        harness.service.cancel(only_batch(harness)["batch_id"])


def test_clear_queue_cancels_the_batch(harness):
    harness.post({"prompt": sweep_prompt("1, 2, 3", "10, 20, 30")})
    harness.server.prompt_queue.wipe_queue()
    harness.settle()
    batch = only_batch(harness)
    assert batch["state"] == "cancelled" and batch["counts"]["done"] == 0
    assert harness.run_all() == []


def test_deleting_one_queued_cell_cancels_only_that_cell(harness):
    harness.post({"prompt": sweep_prompt("1, 2, 3", "10")})
    queued = sorted(harness.server.prompt_queue.queue)
    victim = queued[1][1]
    assert harness.server.prompt_queue.delete_queue_item(lambda item: item[1] == victim)
    ran = harness.run_all()
    batch = only_batch(harness)
    assert len(ran) == 2
    assert [c["status"] for c in batch["cells"]] == ["done", "cancelled", "done"]


def test_failed_and_interrupted_executions_end_their_cells(harness):
    harness.post({"prompt": sweep_prompt("1, 2, 3", "10")})

    def execute(prompt, item):
        width = prompt["4"]["inputs"]["width"]
        if width == 2:
            return "error", [("execution_error", {"node_id": "4", "node_type": "EmptyImage", "exception_message": "boom"})], {}
        if width == 3:
            return "error", [("execution_interrupted", {"prompt_id": item[1]})], {}
        return comfy_standin.default_execute(prompt, item)

    harness.run_all(execute)
    batch = only_batch(harness)
    assert [c["status"] for c in batch["cells"]] == ["done", "failed", "cancelled"]
    assert "boom" in batch["cells"][1]["error"]
    assert harness.grids == [batch["batch_id"]]


def test_window_keeps_the_queue_short_for_big_sweeps(harness):
    harness.post({"prompt": sweep_prompt("1-10", "1-10")})
    assert len(harness.server.prompt_queue.queue) <= harness.service.window + 1
    ran = harness.run_all()
    assert len(ran) == 100 and only_batch(harness)["counts"]["done"] == 100


def test_feeder_is_woken_once_per_refill_burst_not_per_cell(monkeypatch, tmp_path):
    # Each wake-up is a cross-thread call from ComfyUI's worker: the feeder sleeps until a quarter of the window
    # (REFILL_FRACTION) has started, then tops it up in one go; a cell ending after it started wakes nobody.
    harness = Harness(monkeypatch, tmp_path, window=16)
    try:
        harness.post({"prompt": sweep_prompt("1-10", "1-10")})
        queue, window = harness.server.prompt_queue, harness.service.window
        burst = window - int(window * (1 - sweep_module.REFILL_FRACTION))
        assert len(queue.queue) == window and burst == 4
        wakes = []
        original = harness.host.call_soon_threadsafe
        harness.host.call_soon_threadsafe = lambda fn, *args: (wakes.append(fn), original(fn, *args))
        for started in range(1, burst):
            harness.server.run_next()
            harness.settle()
            assert len(queue.queue) == window - started and not wakes
        harness.server.run_next()
        harness.settle()
        assert len(wakes) == 1 and len(queue.queue) == window
        ran = harness.run_all()
        assert len(ran) == 100 - burst and only_batch(harness)["counts"]["done"] == 100
        assert len(wakes) <= 100 // burst + 1
    finally:
        harness.close()


def test_events_are_forwarded_under_the_wi_namespace(harness):
    harness.post({"prompt": sweep_prompt("1, 2", "10")})
    harness.run_all()
    names = [event for event, _, _ in harness.server.sent]
    assert "wi.batch_created" in names and names.count("wi.cell_ended") == 2
    json.dumps([data for _, data, _ in harness.server.sent])  # every payload is JSON-ready


def test_preview_counts_like_the_hook(harness):
    answer = harness.service.preview({"mode": "matrix", "parameters": [
        {"name": "a", "type": "INT", "values": "1-4"}, {"name": "b", "type": "FLOAT", "values": "0.1-0.3 (+0.1)"},
        {"name": "c", "type": "INT", "values": "x"}]})
    assert answer["count"] == 12
    assert [a["count"] for a in answer["axes"]] == [4, 3, 0]
    assert answer["errors"][0]["param"] == "c"


@pytest.mark.parametrize("status,expected", [
    (comfy_standin.ExecutionStatus("success", True, []), "done"),
    (comfy_standin.ExecutionStatus("error", False, [("execution_interrupted", {})]), "cancelled"),
    (comfy_standin.ExecutionStatus("error", False, [("execution_error", {"exception_message": "x"})]), "failed"),
    (None, "failed"),
])
def test_classify_outcome(status, expected):
    assert classify_outcome(status)[0] == expected


def test_the_adapter_names_the_classes_comfyui_memoises_into(harness):
    """IS_CHANGED classes and unknown classes are written into (so copied per cell); plain classes are not."""
    assert _comfy.node_is_written("WISaveImage") is True  # has IS_CHANGED, like the real node
    assert _comfy.node_is_written("EmptyImage") is False
    assert _comfy.node_is_written("NoSuchNode") is True


# ----------------------------------------------------------------- one run per batch, cancel races (issues 11, 12, 13)
def _finish(harness, got, status_str="success", messages=None, outputs=None):
    item, item_id = got
    harness.server.prompt_queue.task_done(
        item_id, {"outputs": outputs if outputs is not None else comfy_standin.default_execute(item[2], item)[2], "meta": {}},
        status=comfy_standin.ExecutionStatus(status_str, status_str == "success", messages or []))
    harness.settle()


def test_a_finished_batch_leaves_no_per_batch_state_in_the_service(harness):
    """Issue 11, defect 8: the per-batch save-node table grew with every batch and was never emptied."""
    batch_ids = []
    for _ in range(5):
        harness.post({"prompt": sweep_prompt("1, 2", "10")})
        harness.run_all()
        batch_ids.append(harness.manager.list_batches()[0]["batch_id"])
    assert len(set(batch_ids)) == 5
    assert [harness.service.run_of(b) for b in batch_ids] == [None] * 5
    assert harness.service._runs == {} and harness.service._awaiting == {}


def test_a_cancelled_batch_leaves_no_run_once_its_running_cell_ended(harness):
    harness.post({"prompt": sweep_prompt("1, 2, 3", "10")})
    got = harness.server.prompt_queue.get(timeout=0)
    harness.settle()
    batch_id = only_batch(harness)["batch_id"]
    harness.service.cancel(batch_id)
    assert harness.service.run_of(batch_id) is not None  # still waiting for ComfyUI's word on the running cell
    _finish(harness, got, "error", [("execution_interrupted", {"prompt_id": got[0][1]})])
    assert harness.service.run_of(batch_id) is None
    assert harness.grids == [batch_id]


def test_a_cell_that_finishes_after_the_cancel_is_recorded_as_comfyui_ran_it(harness):
    """Issue 12.4: cancelling around a cell's save recorded a cell that ran to success as cancelled, and the
    cancel answer claimed it was interrupted."""
    harness.post({"prompt": sweep_prompt("1, 2, 3", "10")})
    got = harness.server.prompt_queue.get(timeout=0)  # cell 0 runs
    harness.settle()
    batch_id = only_batch(harness)["batch_id"]
    answer = harness.service.cancel(batch_id)
    assert answer["interrupting"] == got[0][1] and "interrupted" not in answer
    assert only_batch(harness)["cells"][0]["status"] == "running"  # not decided by the cancel
    assert harness.grids == []  # the partial grid waits for the running cell
    _finish(harness, got)  # the interrupt came too late: ComfyUI reports success
    batch = only_batch(harness)
    assert [c["status"] for c in batch["cells"]] == ["done", "cancelled", "cancelled"]
    assert batch["cells"][0]["files"] and batch["state"] == "cancelled"
    assert harness.grids == [batch_id]  # built once, with the finished cell


def test_an_interrupt_lost_when_comfyui_starts_the_prompt_is_raised_again_before_its_next_node(harness):
    """Issue 12.4: ComfyUI clears the interrupt flag when a prompt starts, so a cancel landing between the
    worker's get and that start let the cell run."""
    harness.post({"prompt": sweep_prompt("1, 2", "10")})
    harness.post({"prompt": plain_prompt(), "client_id": "other"})
    got = harness.server.prompt_queue.get(timeout=0)
    harness.settle()
    batch_id = only_batch(harness)["batch_id"]
    harness.service.cancel(batch_id)
    assert harness.service.should_interrupt(got[0][1])
    assert not harness.service.should_interrupt("someone-elses-prompt")
    _finish(harness, got, "error", [("execution_interrupted", {"prompt_id": got[0][1]})])
    assert not harness.service.should_interrupt(got[0][1])  # forgotten once it ended
    assert only_batch(harness)["cells"][0]["status"] == "cancelled"


def test_clear_queue_does_not_record_the_running_cell_as_cancelled(harness):
    """Issue 12.4: Clear queue never interrupts the running cell, which completed and was recorded cancelled."""
    harness.post({"prompt": sweep_prompt("1, 2, 3", "10")})
    got = harness.server.prompt_queue.get(timeout=0)
    harness.settle()
    harness.server.prompt_queue.wipe_queue()
    harness.settle()
    batch = only_batch(harness)
    assert batch["state"] == "cancelled" and batch["cells"][0]["status"] == "running"
    assert comfy_standin.INTERRUPTS == []
    _finish(harness, got)
    batch = only_batch(harness)
    assert [c["status"] for c in batch["cells"]] == ["done", "cancelled", "cancelled"]
    assert harness.grids == [batch["batch_id"]]


def test_deleting_every_queued_cell_one_by_one_ends_the_batch(monkeypatch, tmp_path):
    """Issue 13.1: newer frontends' Clear queue / Cancel all and the /api/jobs cancel routes delete items one
    at a time; the feeder refilled its window, so the sweep kept running."""
    h = Harness(monkeypatch, tmp_path, window=4)
    try:
        h.post({"prompt": sweep_prompt("1-4", "1-4")})  # 16 cells, 4 queued at a time
        got = h.server.prompt_queue.get(timeout=0)
        h.settle()
        batch_id = only_batch(h)["batch_id"]
        for item in list(h.server.prompt_queue.queue):
            assert h.server.prompt_queue.delete_queue_item(lambda queued, pid=item[1]: queued[1] == pid)
            h.settle()
        assert h.server.prompt_queue.queue == []  # nothing refilled
        batch = only_batch(h)
        assert batch["state"] == "cancelled" and batch["cells"][0]["status"] == "running"
        assert comfy_standin.INTERRUPTS == []  # ComfyUI's own cancel interrupts the running job, not us
        _finish(h, got)
        batch = only_batch(h)
        assert batch["counts"] == {"total": 16, "done": 1, "failed": 0, "cancelled": 15, "pending": 0, "running": 0, "skipped": 0}
        assert h.grids == [batch_id] and h.run_all() == []
    finally:
        h.close()


def test_deleting_the_last_queued_cell_of_a_fully_fed_batch_cancels_only_that_cell(harness):
    harness.post({"prompt": sweep_prompt("1, 2, 3", "10")})
    got = harness.server.prompt_queue.get(timeout=0)
    harness.settle()
    last = max(harness.server.prompt_queue.queue)[1]
    assert harness.server.prompt_queue.delete_queue_item(lambda item: item[1] == last)
    harness.settle()
    assert only_batch(harness)["state"] == "active"
    _finish(harness, got)
    harness.run_all()
    assert [c["status"] for c in only_batch(harness)["cells"]] == ["done", "done", "cancelled"]


def test_every_cell_gets_its_own_create_time_when_comfyui_stamps_one(harness):
    """Issue 13.7: 0.38 sorts jobs by extra_data.create_time; every cell copied cell 0's."""
    body = {"prompt": sweep_prompt("1, 2, 3", "10"), "extra_data": {"create_time": 1}}
    harness.post(body)
    ran = harness.run_all()
    stamps = [item[3]["create_time"] for item in ran]
    assert len(ran) == 3 and all(isinstance(s, int) and s > 1_600_000_000_000 for s in stamps[1:])


class _Replacements:
    """0.38's node_replace_manager in miniature: a retired class becomes its successor, in place."""

    def __init__(self):
        self.calls = 0

    def apply_replacements(self, prompt):
        self.calls += 1
        for node in prompt.values():
            if node.get("class_type") == "RetiredEmptyImage":
                node["class_type"] = "EmptyImage"


def test_every_cell_gets_comfyuis_node_replacements_not_only_the_submitted_one(harness):
    """Issue 13.5: 0.38 applies node replacements to the submitted prompt after the onprompt hooks; cells
    1..N were validated without them and failed with missing_node_type."""
    harness.server.node_replace_manager = _Replacements()
    prompt = sweep_prompt("1, 2, 3", "10")
    prompt["4"]["class_type"] = "RetiredEmptyImage"
    status, answer = harness.post({"prompt": prompt})
    assert status == 200, answer
    ran = harness.run_all()
    batch = only_batch(harness)
    assert [c["status"] for c in batch["cells"]] == ["done", "done", "done"], batch["cells"]
    assert all(item[2]["4"]["class_type"] == "EmptyImage" for item in ran)
    assert harness.server.node_replace_manager.calls >= 3


def test_the_batch_remembers_the_ui_workflow_id_for_the_grid_message(harness):
    harness.post({"prompt": sweep_prompt("1, 2", "10"), "extra_data": {"extra_pnginfo": {"workflow": {"id": "wf-9", "nodes": []}}}})
    assert only_batch(harness)["meta"]["workflow_id"] == "wf-9"


def test_cell_ends_reach_the_browser_from_the_loop_in_bursts_not_from_the_worker(monkeypatch, tmp_path):
    """Issue 11 (worker idle between cells): a wi.cell_ended sent from the worker thread wakes the server loop
    (send_sync) between two prompts; with an event interval the loop sends them, in order, in bursts."""
    h = Harness(monkeypatch, tmp_path)
    h.service.handoff_interval = 0.01
    try:
        h.post({"prompt": sweep_prompt("1, 2, 3", "10")})
        for _ in range(2):
            h.settle()
            h.server.run_next()
        assert h.events("wi.cell_ended") == []  # nothing sent from the worker's side
        h.loop.run_until_complete(asyncio.sleep(0.05))
        h.settle()
        assert [e["index"] for e in h.events("wi.cell_ended")] == [0, 1]  # sent by the loop
        h.server.run_next()  # the last cell: its end goes out right before the batch's own event
        h.loop.run_until_complete(asyncio.sleep(0.05))
        h.settle()
        assert [e["index"] for e in h.events("wi.cell_ended")] == [0, 1, 2]
        names = [event for event, _, _ in h.server.sent if event.startswith("wi.")]
        assert names.index("wi.batch_finished") > max(i for i, n in enumerate(names) if n == "wi.cell_ended")
        assert h.service._ticking is False  # the flusher stops once no batch runs
    finally:
        h.close()


# ----------------------------------------------------------------- the worker's hand-off (issue 11)
# ComfyUI's worker hands a finished prompt over and goes on; the loop's tick records it. An hour-long tick keeps
# these tests deterministic: only the calls that must record first (status, cancel, removals) do it.

def handoff_harness(monkeypatch, tmp_path, interval=3600.0, window=4):
    h = Harness(monkeypatch, tmp_path, window=window)
    h.service.handoff_interval = interval
    return h


def statuses(h):
    return [c["status"] for c in h.manager.get_status(h.manager.list_batches()[0]["batch_id"])["cells"]]


@pytest.fixture
def one_handed_over(monkeypatch, tmp_path):
    """A 3-cell sweep whose first cell ComfyUI ran while the tick runs: its start and end are handed over."""
    h = handoff_harness(monkeypatch, tmp_path)
    h.post({"prompt": sweep_prompt("1, 2, 3", "10")})
    h.server.run_next()
    yield h
    h.close()


def test_a_finished_cell_is_handed_to_the_loop_not_recorded_on_the_worker(one_handed_over):
    """Issue 11 (worker idle between cells): recording a cell end took 0.2-0.3 ms of the worker's time
    between two prompts on a real ComfyUI; the worker now only hands the item over."""
    h = one_handed_over
    assert statuses(h) == ["queued", "queued", "queued"]  # ComfyUI ran it; its start and end wait for the loop
    h.service.record_handed_over()
    assert statuses(h) == ["done", "queued", "queued"]


def test_the_loops_tick_records_the_handed_over_cells_and_ends_the_batch(monkeypatch, tmp_path):
    h = handoff_harness(monkeypatch, tmp_path, interval=0.01)
    try:
        h.post({"prompt": sweep_prompt("1, 2", "10")})
        h.settle()
        h.server.run_next()
        h.settle()
        h.server.run_next()
        h.loop.run_until_complete(asyncio.sleep(0.1))
        h.settle()
        batch = only_batch(h)
        assert [c["status"] for c in batch["cells"]] == ["done", "done"]
        assert batch["state"] == "collecting" and h.grids == [batch["batch_id"]]
        assert h.service._ticking is False  # no batch left: the tick stopped, later ends are recorded at once
    finally:
        h.close()


def test_status_records_what_the_worker_handed_over_first(one_handed_over):
    h = one_handed_over
    batch_id = h.manager.list_batches()[0]["batch_id"]
    assert [c["status"] for c in h.service.status(batch_id)["cells"]] == ["done", "queued", "queued"]
    h.server.run_next()
    assert h.service.list_batches()[0]["counts"]["done"] == 2


def test_a_cancel_keeps_a_cell_comfyui_finished_before_it_as_done(one_handed_over):
    """Without recording the hand-over first, the cancel counted the finished cell among the open ones and
    its image was reported cancelled."""
    h = one_handed_over
    h.service.cancel(h.manager.list_batches()[0]["batch_id"])
    assert statuses(h) == ["done", "cancelled", "cancelled"]


def test_a_queue_removal_keeps_a_cell_comfyui_finished_before_it_as_done(one_handed_over):
    h = one_handed_over
    h.server.prompt_queue.wipe_queue()  # Clear queue
    h.settle()
    assert statuses(h) == ["done", "cancelled", "cancelled"]
    assert only_batch(h)["state"] == "collecting"  # as when the worker recorded cell 0 itself


def test_without_a_running_tick_the_worker_records_at_once_and_keeps_nothing(monkeypatch, tmp_path):
    """Other users' prompts finishing while no batch runs must not pile up waiting for a tick."""
    h = handoff_harness(monkeypatch, tmp_path)
    try:
        h.loop.run_until_complete(h.server.post_prompt({"prompt": plain_prompt()}))
        h.server.run_next()
        assert h.service._ticking is False and len(h.service._handed) == 0
    finally:
        h.close()


def test_a_tick_stopped_at_shutdown_records_what_was_handed_over(monkeypatch, tmp_path):
    h = handoff_harness(monkeypatch, tmp_path)
    h.post({"prompt": sweep_prompt("1, 2, 3", "10")})
    h.server.run_next()
    h.close()  # cancels the loop's tasks, the tick among them
    assert statuses(h) == ["done", "queued", "queued"]


def test_one_bad_hand_over_is_logged_and_the_rest_are_recorded(monkeypatch, tmp_path, caplog):
    h = handoff_harness(monkeypatch, tmp_path)
    try:
        h.post({"prompt": sweep_prompt("1, 2, 3", "10")})
        def broken(*, at):
            raise RuntimeError("broken report")

        with h.service._lock:  # as the worker hands items over while the tick runs
            h.service._handed.append((broken, (), h.manager.clock()))
        h.server.run_next()
        h.service.record_handed_over()
        assert statuses(h) == ["done", "queued", "queued"]
        assert "recording what ComfyUI's worker handed over (broken) failed" in caplog.text
    finally:
        h.close()


def _count_wakeups(h):
    wakes = []
    original = h.host.call_soon_threadsafe
    h.host.call_soon_threadsafe = lambda fn, *args: (wakes.append(fn), original(fn, *args))
    return wakes


@pytest.fixture
def fed_window_of_8(monkeypatch, tmp_path):
    """A 100-cell sweep with its first 8 cells queued, while the tick runs (an hour apart: it never fires)."""
    h = handoff_harness(monkeypatch, tmp_path, window=8)
    h.post({"prompt": sweep_prompt("1-10", "1-10")})
    assert len(h.server.prompt_queue.queue) == 8
    yield h
    h.close()


def test_a_started_cells_feeder_wake_up_waits_for_its_first_node(fed_window_of_8):
    """Issue 11: woken as the worker takes a cell (before its execution_start), the loop's refill held the GIL
    the worker needed, 1.5-4 ms once per refill; with the tick running the wake-up goes out at the first node."""
    h, queue = fed_window_of_8, fed_window_of_8.server.prompt_queue
    wakes = _count_wakeups(h)
    for _ in range(2):  # a quarter of the window started: the feeder is due
        h.server.run_next()
        h.settle()
    assert wakes == [] and len(queue.queue) == 6
    running = queue.get(timeout=0)[0][1]
    assert h.service.before_node(running) is False  # no cancel asked for; the held wake-up goes out
    h.settle()
    assert len(wakes) == 1 and len(queue.queue) == 8


def test_a_starved_worker_sends_the_held_feeder_wake_up_itself(fed_window_of_8):
    h = fed_window_of_8
    wakes = _count_wakeups(h)
    for _ in range(8):  # cells that run no node (all cached): nothing releases the wake-up
        h.server.run_next()
    assert wakes == [] and h.server.prompt_queue.queue == []
    assert h.service.hold_worker(0.05) is True  # starved: it woke the feeder, then its own timeout ran out
    h.settle()
    assert len(wakes) == 1 and len(h.server.prompt_queue.queue) == 8


def test_the_tick_sends_held_feeder_wake_ups(monkeypatch, tmp_path):
    h = handoff_harness(monkeypatch, tmp_path, interval=0.01, window=8)
    try:
        h.post({"prompt": sweep_prompt("1-10", "1-10")})
        for _ in range(2):
            h.server.run_next()
        h.loop.run_until_complete(asyncio.sleep(0.05))
        h.settle()
        assert len(h.server.prompt_queue.queue) == 8
    finally:
        h.close()
