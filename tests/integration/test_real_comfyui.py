"""Sweeps through a real ComfyUI server on the CPU, with model-free core nodes only."""
from __future__ import annotations

import json
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from PIL import Image

from tools.comfy_harness import cell_values

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def example_prompt() -> dict:
    return json.loads((REPO / "example_workflows" / "api" / "model_free_sweep_api.json").read_text())


def sweep(values_a: str, values_b: str, *, mode: str = "matrix", name: str = "t", seconds: float = 0.0, fail: str | None = None,
          grid: bool = True) -> dict:
    """EmptyImage colour x blur radius, optionally through the test-only sleep/fail nodes."""
    prompt = {
        "1": {"class_type": "WIParameterInt", "inputs": {"name": "color", "values": values_a}},
        "2": {"class_type": "WIParameterInt", "inputs": {"name": "radius", "values": values_b, "previous": ["1", 0]}},
        "3": {"class_type": "WIIterator", "inputs": {"parameters": ["2", 0], "enabled": True, "mode": mode, "batch_name": name}},
        "10": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": ["1", 1]}},
        "11": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 255}},
        "12": {"class_type": "ImageCompositeMasked", "inputs": {"destination": ["10", 0], "source": ["11", 0], "x": 8, "y": 8, "resize_source": False}},
        "13": {"class_type": "ImageBlur", "inputs": {"image": ["12", 0], "blur_radius": ["2", 1], "sigma": 1.0}},
        "14": {"class_type": "WITestSleep", "inputs": {"image": ["13", 0], "seconds": seconds}},
        "20": {"class_type": "WISaveImage", "inputs": {"images": ["14", 0], "filename_prefix": "WI"}},
    }
    if fail is not None:
        prompt["4"] = {"class_type": "WIParameterBoolean", "inputs": {"name": "fail", "values": fail, "previous": ["2", 0]}}
        prompt["3"]["inputs"]["parameters"] = ["4", 0]
        prompt["15"] = {"class_type": "WITestFail", "inputs": {"image": ["14", 0], "fail": ["4", 1]}}
        prompt["20"]["inputs"]["images"] = ["15", 0]
    if grid:
        prompt["21"] = {"class_type": "WIGridCompositor", "inputs": {"x_axis": "", "y_axis": "", "multi_axis": "pages", "format": "png",
                                                                     "label_font_size": 20, "cell_gap": 4, "margin": 8,
                                                                     "background": "#ffffff", "images_only": False}}
    return prompt


def plain_prompt(color: int = 123) -> dict:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": color}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"plain_{uuid.uuid4().hex[:6]}"}},
    }


def cell_paths(comfy, status: dict) -> list[Path]:
    return [comfy.output_dir / f["subfolder"] / f["filename"] for cell in status["cells"] for f in cell["files"]]


def test_a_cells_saved_prompt_is_what_ran_and_posted_again_runs_that_one_cell(comfy):
    """Cells leave out the iterator and the parameter nodes (ComfyUI deep-copies every node of a queued item
    on its worker thread between two prompts, and nothing in a cell reads them): the PNG's prompt is the one
    that ran, and posting it again runs that cell alone instead of starting the sweep again."""
    prompt = sweep("1, 2", "3, 4", name=f"saved_{uuid.uuid4().hex[:6]}", grid=False)
    code, answer = comfy.queue_prompt(prompt)
    assert code == 200, answer
    status = comfy.wait_batch(comfy.batch_for_prompt(answer["prompt_id"])["batch_id"])
    assert status["state"] == "complete" and status["counts"]["done"] == 4
    with Image.open(cell_paths(comfy, status)[3]) as image:
        saved = json.loads(image.info["prompt"])
    assert set(saved) == set(prompt) - {"1", "2", "3"}
    assert (saved["10"]["inputs"]["color"], saved["13"]["inputs"]["blur_radius"]) == (2, 4)
    ran = comfy.wait_history(status["cells"][3]["prompt_id"])["prompt"][2]  # plus ComfyUI's is_changed memos
    assert set(ran) == set(saved) and ran["13"]["inputs"] == saved["13"]["inputs"]
    batches_before = {b["batch_id"] for b in comfy.get("/wi/status")[1]["batches"]}
    code, again = comfy.queue_prompt(saved)
    assert code == 200, again
    entry = comfy.wait_history(again["prompt_id"])
    assert entry["status"]["status_str"] == "success"
    assert {b["batch_id"] for b in comfy.get("/wi/status")[1]["batches"]} == batches_before


def test_three_by_three_matrix_gives_nine_distinct_images_and_one_grid(comfy):
    code, answer = comfy.queue_prompt(example_prompt())
    assert code == 200, answer
    batch = comfy.batch_for_prompt(answer["prompt_id"])
    status = comfy.wait_batch(batch["batch_id"], need_grid=True)
    assert status["state"] == "complete" and status["counts"]["done"] == 9
    paths = cell_paths(comfy, status)
    assert len(paths) == 9 and all(p.is_file() for p in paths)
    assert len({p.read_bytes() for p in paths}) == 9
    with Image.open(paths[4]) as image:
        cell = json.loads(image.info["wi_cell"])
        assert cell["index"] == 4 and cell["values"] == {"blur_radius": 6, "sigma": 2.5}
        assert json.loads(image.info["prompt"])["13"]["inputs"]["blur_radius"] == 6
    grid = status["grid"]
    grid_path = comfy.output_dir / grid["subfolder"] / grid["filename"]
    assert grid_path.is_file()
    batch_folder = paths[0].parent
    assert grid_path.parent == batch_folder
    # Exactly this batch's files: its nine cells, one grid and its manifests, nothing else (no second grid).
    cell_names = sorted(p.name for p in paths)
    assert sorted(p.name for p in batch_folder.iterdir()) == sorted(cell_names + ["grid.png", "viewer.html", "batch.json", "batch.csv"])
    assert [page["filename"] for page in grid["pages"]] == ["grid.png"]
    assert (batch_folder / "batch.json").is_file()
    viewer = grid["viewer"]["route"]
    with urllib.request.urlopen(comfy.url + "/api" + viewer) as resp:  # a page, not a download
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/html")
        assert b"<html" in resp.read(2000).lower()
    with urllib.request.urlopen(f"{comfy.url}/api/wi/batch/{status['batch_id']}/{paths[0].name}") as resp:
        assert resp.read() == paths[0].read_bytes()
    assert comfy.get(f"/wi/batch/{status['batch_id']}/..%2Fcomfyui.log")[0] == 404
    assert comfy.get(f"/wi/batch/{status['batch_id']}/missing.png")[0] == 404


def test_nodes_comfyui_memoises_into_are_private_to_each_cell(comfy):
    """Queued cells share the node dicts ComfyUI never writes into; a node whose IS_CHANGED answer ComfyUI
    memoises in its dict (here a new answer on every call) must still run in every cell, not be served from
    the cache because a previous cell's memo was seen."""
    prompt = sweep("40", "1, 2, 3, 4", grid=False)
    prompt["16"] = {"class_type": "WITestFresh", "inputs": {"image": ["10", 0]}}  # upstream of the swept blur, not swept
    prompt["12"]["inputs"]["destination"] = ["16", 0]
    code, answer = comfy.queue_prompt(prompt)
    assert code == 200, answer
    status = comfy.wait_batch(comfy.batch_for_prompt(answer["prompt_id"])["batch_id"])
    assert status["counts"]["done"] == 4
    served_from_cache = []
    for cell in status["cells"]:
        messages = (comfy.wait_history(cell["prompt_id"]).get("status") or {}).get("messages") or []
        cached = next((data.get("nodes", []) for event, data in messages if event == "execution_cached"), [])
        served_from_cache.append("16" in cached)
        assert "11" in cached or cell["index"] == 0  # a shared, never-written node is still cached between cells
    assert served_from_cache == [False] * 4


def test_linear_mode_runs_zipped_cells(comfy):
    code, answer = comfy.queue_prompt(sweep("10, 20, 30", "1, 2, 3", mode="linear", grid=False))
    assert code == 200, answer
    status = comfy.wait_batch(comfy.batch_for_prompt(answer["prompt_id"])["batch_id"])
    assert [cell_values(status, c) for c in status["cells"]] == [{"color": 10, "radius": 1}, {"color": 20, "radius": 2}, {"color": 30, "radius": 3}]
    assert status["counts"]["done"] == 3


def test_combo_input_is_swept(comfy):
    prompt = {
        "1": {"class_type": "WIParameterCombo", "inputs": {"name": "method", "values": "*bi*", "target": "scale.upscale_method"}},
        "2": {"class_type": "WIIterator", "inputs": {"parameters": ["1", 0], "enabled": True, "mode": "matrix", "batch_name": "combo"}},
        "3": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 99}},
        "4": {"class_type": "ImageScale", "_meta": {"title": "scale"},
              "inputs": {"image": ["3", 0], "upscale_method": "nearest-exact", "width": 24, "height": 24, "crop": "disabled"}},
        "5": {"class_type": "WISaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "WI"}},
    }
    code, answer = comfy.queue_prompt(prompt)
    assert code == 200, answer
    status = comfy.wait_batch(comfy.batch_for_prompt(answer["prompt_id"])["batch_id"])
    assert [cell_values(status, c)["method"] for c in status["cells"]] == ["bilinear", "bicubic"]
    assert status["counts"]["done"] == 2


def test_cancel_mid_batch_stops_it_and_spares_other_prompts(comfy):
    code, answer = comfy.queue_prompt(sweep("1, 2, 3, 4, 5, 6", "1", seconds=1.5, name="cancelme", grid=False))
    assert code == 200, answer
    batch_id = comfy.batch_for_prompt(answer["prompt_id"])["batch_id"]
    comfy.wait_batch(batch_id, states=("active",))
    deadline = time.monotonic() + 30
    while comfy.get(f"/wi/status/{batch_id}")[1]["counts"]["running"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    code, other = comfy.queue_prompt(plain_prompt(), client_id="someone-else")
    assert code == 200
    code, cancelled = comfy.post(f"/wi/cancel_batch/{batch_id}", {})
    assert code == 200, cancelled
    assert cancelled["state"] == "cancelled" and cancelled["interrupting"] is not None
    assert other["prompt_id"] not in cancelled["removed"]
    history = comfy.wait_history(other["prompt_id"])
    assert history["status"]["status_str"] == "success"  # the unrelated prompt ran
    status = comfy.get(f"/wi/status/{batch_id}")[1]
    assert status["state"] == "cancelled"
    ran = [c for c in status["cells"] if c["prompt_id"] and comfy.get(f"/history/{c['prompt_id']}")[1]]
    assert len(ran) <= 2  # at most the cells that had started before the cancel
    code, again = comfy.post(f"/wi/cancel_batch/{batch_id}", {})
    assert code == 409 and again["error"]
    assert comfy.post("/wi/cancel_batch/no_such_batch", {})[0] == 404


def test_bad_parameter_is_reported_and_the_next_prompt_still_runs(comfy):
    code, answer = comfy.queue_prompt(sweep("1, 2", "1, x", grid=False))
    assert code == 200, answer  # the valid parameter still sweeps
    status = comfy.wait_batch(comfy.batch_for_prompt(answer["prompt_id"])["batch_id"])
    assert status["counts"]["total"] == 2
    # The skipped "radius" falls back to ImageBlur's default, so both cells really run.
    assert status["counts"]["done"] == 2, status["cells"]
    code, answer = comfy.queue_prompt(sweep("x", "y", grid=False))
    assert code == 400 and "3" in answer["node_errors"]
    message = json.dumps(answer["node_errors"]["3"])
    assert "color" in message and "radius" in message
    code, plain = comfy.queue_prompt(plain_prompt())
    assert code == 200
    assert comfy.wait_history(plain["prompt_id"])["status"]["status_str"] == "success"


def test_failing_cell_ends_failed_and_the_grid_gets_a_placeholder(comfy):
    code, answer = comfy.queue_prompt(sweep("1, 2", "1", fail="false, true"))
    assert code == 200, answer
    status = comfy.wait_batch(comfy.batch_for_prompt(answer["prompt_id"])["batch_id"], need_grid=True)
    # Exactly the cells whose ``fail`` value is true fail, each with WITestFail's own message; the others are saved.
    assert [(cell_values(status, c)["fail"], c["status"]) for c in status["cells"]] == [(False, "done"), (True, "failed")] * 2
    for cell in status["cells"]:
        if cell["status"] == "failed":
            assert cell["error"] == "WITestFail 15: WITestFail was asked to fail" and cell["files"] == []
        else:
            assert len(cell["files"]) == 1
    grid = status["grid"]
    # One page per colour, each with its fail=true tile as a placeholder, plus the overview of the pages.
    assert [page["kind"] for page in grid["pages"]] == ["grid", "grid", "overview"]
    for page in grid["pages"]:
        assert (comfy.output_dir / page["subfolder"] / page["filename"]).is_file()
    assert (comfy.output_dir / grid["subfolder"] / grid["filename"]).is_file()


def test_two_batches_from_two_clients_run_whole_and_apart(comfy):
    code_a, a = comfy.queue_prompt(sweep("1, 2, 3", "1", name="alice", grid=False), client_id="alice")
    code_b, b = comfy.queue_prompt(sweep("4, 5, 6", "2", name="bob", grid=False), client_id="bob")
    assert code_a == code_b == 200
    status_a = comfy.wait_batch(comfy.batch_for_prompt(a["prompt_id"])["batch_id"])
    status_b = comfy.wait_batch(comfy.batch_for_prompt(b["prompt_id"])["batch_id"])
    assert status_a["counts"]["done"] == status_b["counts"]["done"] == 3
    assert status_a["client_id"] == "alice" and status_b["client_id"] == "bob"
    ended_a = max(c["ended_at"] for c in status_a["cells"])
    started_b = min(c["started_at"] for c in status_b["cells"])
    assert ended_a <= started_b  # batch A ran whole before batch B began


def test_status_routes_answer_json_errors(comfy):
    assert comfy.get("/wi/status")[0] == 200
    assert comfy.get("/api/wi/status")[0] == 200
    code, body = comfy.get("/wi/status/unknown_batch")
    assert code == 404 and body["error"]
    code, body = comfy.request("POST", "/wi/preview", None)
    assert code == 400
    code, body = comfy.post("/wi/preview", {"mode": "matrix", "parameters": [{"name": "a", "type": "INT", "values": "1-3"}]})
    assert code == 200 and body["count"] == 3
