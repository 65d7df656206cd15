"""POST /wi/batches and GET /wi/batches/{id}/events over a real SweepService and the ComfyUI stand-in."""
from __future__ import annotations

import asyncio
import copy

import pytest

from api_harness import ApiHarness, plain_prompt, sweep_body
from comfyui_workflow_iterator.core import prompt_graph


@pytest.fixture
def ah(monkeypatch, tmp_path):
    harness = ApiHarness(monkeypatch, tmp_path)
    yield harness
    harness.close()


# ------------------------------------------------------------------------------------------ creating a batch
def test_a_headless_sweep_queues_every_combination_through_the_hook(ah):
    status, body = ah.post_batch(sweep_body(batch_name="api"))
    assert status == 201, body
    assert body["count"] == 6 and body["grid"] is None
    ran = ah.run_all()
    sizes = sorted((item[2]["4"]["inputs"]["width"], item[2]["4"]["inputs"]["height"]) for item in ran)
    assert sizes == [(w, h) for w in (8, 16) for h in (8, 16, 24)]
    # The cells went through the hook: each names its batch.
    assert {item[3][prompt_graph.REENTRY_KEY]["batch_id"] for item in ran} == {body["batch_id"]}
    status_body = ah.service.status(body["batch_id"], with_values=False)
    assert status_body["state"] == "complete" and status_body["counts"]["done"] == 6
    assert [a["name"] for a in status_body["axes"]] == ["width", "h"]


def test_the_user_prompt_is_not_changed(ah):
    body = sweep_body()
    before = copy.deepcopy(body)
    assert ah.post_batch(body)[0] == 201
    assert body == before


def test_grid_options_add_a_grid_node_and_answer_its_estimate(ah):
    status, body = ah.post_batch(sweep_body(grid={"x_axis": "h", "cell_gap": 2}))
    assert status == 201, body
    assert isinstance(body["grid"], dict) and body["grid"]
    meta = ah.service.status(body["batch_id"])["meta"]
    assert meta["grid_node_id"] == "wi_api_grid"
    assert meta["grid_options"]["x_axis"] == "h" and meta["grid_options"]["cell_gap"] == 2


def test_dry_run_answers_the_plan_and_queues_nothing(ah):
    status, body = ah.post_batch(sweep_body(dry_run=True, grid={}))
    assert status == 200, body
    assert body["dry_run"] is True and body["count"] == 6
    assert body["axes"][0] == {"name": "width", "type": "INT", "target": "EmptyImage.width", "values": [8, 16],
                               "labels": ["8", "16"]}
    assert body["axes"][1]["values"] == [8, 16, 24]
    assert isinstance(body["grid"], dict)
    assert ah.manager.list_batches() == []
    assert ah.server.prompt_queue.queue == []


def test_the_type_comes_from_the_target_input_unless_forced(ah):
    body = sweep_body(dry_run=True)
    body["axes"] = [{"target": "EmptyImage.width", "values": "8, 16", "type": "STRING"}]
    status, answer = ah.post_batch(body)
    assert status == 200 and answer["axes"][0]["type"] == "STRING" and answer["axes"][0]["values"] == ["8", "16"]


def test_a_combo_target_is_checked_against_its_options(ah):
    prompt = plain_prompt()
    prompt["6"] = {"class_type": "ImageScale", "inputs": {"image": ["4", 0], "upscale_method": "nearest-exact",
                                                        "width": 8, "height": 8, "crop": "disabled"}}
    status, body = ah.post_batch({"prompt": prompt, "axes": [{"target": "ImageScale.upscale_method",
                                                              "values": "bilinear, sideways"}], "dry_run": True})
    assert status == 400, body
    assert body["errors"][0]["axis"] == 0 and body["errors"][0]["param"] == "upscale_method"
    assert "sideways" in body["detail"]


def test_a_bad_axis_is_refused_with_the_hooks_message_its_name_and_position(ah):
    body = sweep_body()
    body["axes"][1]["values"] = "8, x, 24"
    status, answer = ah.post_batch(body)
    assert status == 400, answer
    (error,) = answer["errors"]
    assert error["axis"] == 1 and error["param"] == "h"
    # The message the hook sends as wi.param_error for the same parameter node.
    built = dict(plain_prompt())
    built["1"] = {"class_type": "WIParameter", "inputs": {"name": "width", "type": "INT", "values": "8, 16",
                                                          "target": "EmptyImage.width"}}
    built["2"] = {"class_type": "WIParameter", "inputs": {"name": "h", "type": "INT", "values": "8, x, 24",
                                                          "target": "canvas.height", "previous": ["1", 0]}}
    built["3"] = {"class_type": "WIIterator", "inputs": {"parameters": ["2", 0], "enabled": True, "mode": "matrix",
                                                         "batch_name": "x"}}
    ah.run(ah.server.post_prompt({"prompt": built}))
    hook_messages = [data["message"] for event, data, _ in ah.server.sent if event == "wi.param_error"]
    assert hook_messages == [error["message"]]
    assert answer["detail"] == error["message"] and "position 3" in error["message"]
    assert len(ah.manager.list_batches()) == 1  # only the canvas one: the refused request queued nothing


def test_a_target_naming_nothing_is_refused(ah):
    body = sweep_body()
    body["axes"] = [{"target": "NoSuchNode.width", "values": "1, 2"}]
    status, answer = ah.post_batch(body)
    assert status == 400 and answer["errors"][0]["axis"] == 0
    assert "NoSuchNode" in answer["detail"]
    assert ah.manager.list_batches() == []


@pytest.mark.parametrize("body, needle", [
    ([], "JSON object"),
    ({"axes": [{"target": "a.b", "values": "1"}]}, "prompt is required"),
    ({"prompt": {}, "axes": [{"target": "a.b", "values": "1"}]}, "non-empty object"),
    ({"prompt": plain_prompt(), "axes": []}, "axes must be a non-empty list"),
    ({"prompt": plain_prompt(), "axes": [{"values": "1"}]}, "axes[0].target is required"),
    ({"prompt": plain_prompt(), "axes": [{"target": "EmptyImage.width", "values": 3}]}, "axes[0].values must be a string"),
    ({"prompt": plain_prompt(), "axes": [{"target": "EmptyImage.width", "values": "1", "type": "DATE"}]}, "axes[0].type"),
    ({"prompt": plain_prompt(), "axes": [{"target": "EmptyImage.width", "values": "1", "colour": 1}]}, "unknown field(s) colour"),
    ({"prompt": plain_prompt(), "axes": [{"target": "EmptyImage.width", "values": "1"}], "mode": "zip"}, "mode must be one of"),
    ({"prompt": plain_prompt(), "axes": [{"target": "EmptyImage.width", "values": "1"}], "grid": {"colour": 1}}, "grid has unknown option"),
    ({"prompt": plain_prompt(), "axes": [{"target": "EmptyImage.width", "values": "1"}], "grid": {"cell_gap": -5}}, "cell_gap"),
    ({"prompt": plain_prompt(), "axes": [{"target": "EmptyImage.width", "values": "1"}], "dry_run": "yes"}, "dry_run must be"),
    ({"prompt": plain_prompt(), "axes": [{"target": "EmptyImage.width", "values": "1"}], "speed": 1}, "unknown field(s) speed"),
    ({"prompt": {"1": {"class_type": "WIIterator", "inputs": {}}}, "axes": [{"target": "a.b", "values": "1"}]}, "WIIterator"),
    ({"prompt": {"1": {"inputs": {}}}, "axes": [{"target": "a.b", "values": "1"}]}, "class_type"),
    ({"prompt": plain_prompt(), "axes": [{"target": "EmptyImage.width", "values": "1"}], "extra_data": {"wi": {}}}, "reserved"),
    ({"prompt": plain_prompt(), "axes": [{"target": "EmptyImage.width", "values": "1"}], "idempotency_key": ""}, "idempotency_key"),
    ({"prompt": {"wi_api_x": {"class_type": "EmptyImage", "inputs": {}}}, "axes": [{"target": "a.b", "values": "1"}]}, "reserved"),
])
def test_malformed_bodies_get_a_400_naming_the_field(ah, body, needle):
    status, answer = ah.post_batch(body)
    assert status == 400, answer
    assert needle in answer["detail"], answer
    assert ah.manager.list_batches() == []


def test_a_cell_comfyui_rejects_answers_400_with_its_node_errors(ah):
    body = sweep_body()
    body["axes"] = [{"target": "EmptyImage.width", "values": "0, 8"}]  # EmptyImage.width has min 1
    status, answer = ah.post_batch(body)
    assert status == 400, answer
    assert answer["error"] == "prompt rejected by ComfyUI" and "node 4" in answer["detail"]


# ------------------------------------------------------------------------------------------ idempotency
def test_the_same_idempotency_key_answers_the_first_batch(ah):
    first_status, first = ah.post_batch(sweep_body(idempotency_key="k-1"))
    again_status, again = ah.post_batch(sweep_body(idempotency_key="k-1"))
    assert (first_status, again_status) == (201, 200)
    assert again == first
    assert len(ah.manager.list_batches()) == 1
    other_status, other = ah.post_batch(sweep_body(idempotency_key="k-2"))
    assert other_status == 201 and other["batch_id"] != first["batch_id"]


def test_two_concurrent_requests_with_one_key_make_one_batch(ah):
    async def both():
        async def one():
            async with ah.client.post("/wi/batches", json=sweep_body(idempotency_key="same")) as response:
                return response.status, await response.json()
        return await asyncio.gather(one(), one())

    answers = ah.run(both())
    assert sorted(status for status, _ in answers) == [200, 201]
    assert answers[0][1]["batch_id"] == answers[1][1]["batch_id"]
    assert len(ah.manager.list_batches()) == 1


def test_an_idempotency_key_reused_for_another_request_is_refused(ah):
    assert ah.post_batch(sweep_body(idempotency_key="k"))[0] == 201
    status, answer = ah.post_batch(sweep_body(idempotency_key="k", batch_name="other"))
    assert status == 400 and "already used for a different request" in answer["detail"]


# ------------------------------------------------------------------------------------------ events
async def _read_events(ah: ApiHarness, batch_id: str, during=None) -> list[tuple[str, dict]]:
    import json

    events = []
    async with ah.client.get(f"/wi/batches/{batch_id}/events") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        name = None
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[len("data: "):])))
                if during is not None and len(events) == 1:
                    asyncio.get_running_loop().call_soon(during)
    return events


def test_the_event_stream_sends_a_snapshot_every_cell_end_and_ends_with_the_batch(ah):
    status, created = ah.post_batch(sweep_body())
    assert status == 201
    worker_done = []

    def work():
        ah.server.run_next()  # one cell ends before the stream starts reading... (snapshot counts it)
    work()
    ah.settle()

    async def run_rest():
        for _ in range(1000):  # until the batch has no open cell (the feeder may lag on a loaded machine)
            await asyncio.sleep(0.01)
            ah.server.run_next()
            if not ah.open_batches():
                break
        worker_done.append(True)

    events = ah.run(_read_events(ah, created["batch_id"], during=lambda: asyncio.ensure_future(run_rest())))
    names = [name for name, _ in events]
    assert names[0] == "snapshot" and events[0][1]["counts"]["done"] == 1
    assert names.count("cell_ended") == 5
    assert names[-1] == "batch_finished" and events[-1][1]["state"] == "complete"
    assert ah.hub.subscriber_count() == 0


def test_a_finished_batch_streams_its_snapshot_and_ends(ah):
    created = ah.post_batch(sweep_body())[1]
    ah.run_all()
    events = ah.run(_read_events(ah, created["batch_id"]))
    assert [name for name, _ in events] == ["snapshot"]
    assert events[0][1]["state"] == "complete" and events[0][1]["counts"]["done"] == 6


def test_a_cancelled_batch_streams_its_cancel_and_ends(ah):
    created = ah.post_batch(sweep_body())[1]

    def cancel():
        ah.service.cancel(created["batch_id"])

    events = ah.run(_read_events(ah, created["batch_id"], during=cancel))
    names = [name for name, _ in events]
    assert "batch_cancelled" in names
    assert names[-1] == "batch_finished" and events[-1][1]["state"] == "cancelled"


def test_events_of_an_unknown_batch_are_404(ah):
    status, body, _ = ah.request("GET", "/wi/batches/nope/events")
    assert status == 404 and body["error"] == "unknown batch"
    assert ah.hub.subscriber_count() == 0


def test_an_idle_stream_sends_keep_alive_comments_and_a_gone_client_is_unsubscribed(monkeypatch, tmp_path):
    ah = ApiHarness(monkeypatch, tmp_path, keep_alive_s=0.01)
    try:
        created = ah.post_batch(sweep_body())[1]

        async def read_then_leave():
            response = await ah.client.get(f"/wi/batches/{created['batch_id']}/events")
            seen = b""
            while b": keep-alive" not in seen:
                seen += await response.content.readany()
            assert ah.hub.subscriber_count(created["batch_id"]) == 1
            response.close()
            for _ in range(200):  # the next keep-alive write finds the client gone
                await asyncio.sleep(0.01)
                if ah.hub.subscriber_count() == 0:
                    return True
            return False

        assert ah.run(read_then_leave())
    finally:
        ah.close()
