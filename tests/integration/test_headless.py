"""Sweeps without the canvas against a real ComfyUI: POST /wi/batches, its events, and the CLI as a subprocess."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def workflow(seconds: float = 0.0) -> dict:
    """The model-free example without its WI nodes: what a user exports with 'Export (API)'."""
    prompt = {
        "10": {"class_type": "EmptyImage", "_meta": {"title": "background"},
               "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 2113696}},
        "11": {"class_type": "EmptyImage", "_meta": {"title": "square"},
               "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 16766720}},
        "12": {"class_type": "ImageCompositeMasked",
               "inputs": {"destination": ["10", 0], "source": ["11", 0], "x": 16, "y": 16, "resize_source": False}},
        "13": {"class_type": "ImageBlur", "_meta": {"title": "blur"},
               "inputs": {"image": ["12", 0], "blur_radius": 1, "sigma": 1.0}},
        "20": {"class_type": "WISaveImage", "inputs": {"images": ["13", 0], "filename_prefix": "WI"}},
    }
    if seconds:
        prompt["14"] = {"class_type": "WITestSleep", "inputs": {"image": ["13", 0], "seconds": seconds}}
        prompt["20"]["inputs"]["images"] = ["14", 0]
    return prompt


AXES = ["blur.blur_radius=1, 6", "ImageBlur.sigma=0.5-4.5 [3]"]


def cli(comfy, *args: str, **popen: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "workflow_iterator", "--server", comfy.url, *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)  # type: ignore[call-overload]


def test_a_headless_2x3_sweep_completes_with_its_grid_and_the_cli_downloads_the_servers_files(comfy, tmp_path):
    path = tmp_path / "workflow_api.json"
    path.write_text(json.dumps(workflow()))
    process = cli(comfy, "--json", "sweep", str(path), "--axis", AXES[0], "--axis", AXES[1],
                  "--name", f"headless_{uuid.uuid4().hex[:6]}", "--out", str(tmp_path / "results"))
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, out + err + comfy.log_tail()
    lines = [json.loads(line) for line in out.splitlines()]
    plan = lines[0]
    assert plan["type"] == "plan" and plan["count"] == 6
    assert [a["labels"] for a in plan["axes"]] == [["1", "6"], ["0.5", "2.5", "4.5"]]
    assert [a["type"] for a in plan["axes"]] == ["INT", "FLOAT"]  # inferred from ImageBlur's input spec
    batch_id = next(line["batch_id"] for line in lines if line["type"] == "queued")
    code, status = comfy.get(f"/wi/status/{batch_id}")
    assert code == 200 and status["state"] == "complete" and status["counts"]["done"] == 6
    assert status["grid"]["pages"], status["grid"]
    downloaded = tmp_path / "results" / batch_id
    files = {p.name: p for p in downloaded.rglob("*") if p.is_file()}
    server_folder = comfy.output_dir / status["meta"]["subfolder"]
    expected = {f["filename"] for cell in status["cells"] for f in cell["files"]}
    expected |= {page["filename"] for page in status["grid"]["pages"]} | {"batch.json", "batch.csv", "viewer.html"}
    assert set(files) == expected
    for name, local in files.items():
        assert local.read_bytes() == (server_folder / name).read_bytes(), name


def _post(comfy, body: dict) -> tuple[int, dict]:
    return comfy.post("/wi/batches", body)


def _batch_names(comfy) -> list[str]:
    return [b["batch_name"] for b in comfy.get("/wi/status")[1]["batches"]]


def test_the_same_idempotency_key_returns_the_first_batch(comfy):
    name = f"idem_{uuid.uuid4().hex[:6]}"
    body = {"prompt": workflow(), "axes": [{"target": "blur.blur_radius", "values": "1, 2"}], "batch_name": name,
            "idempotency_key": name}
    first_code, first = _post(comfy, body)
    again_code, again = _post(comfy, body)
    assert (first_code, again_code) == (201, 200), (first, again)
    assert again["batch_id"] == first["batch_id"]
    comfy.wait_batch(first["batch_id"])
    assert _batch_names(comfy).count(name) == 1


def test_a_dry_run_answers_the_plan_and_queues_nothing(comfy):
    name = f"dry_{uuid.uuid4().hex[:6]}"
    code, plan = _post(comfy, {"prompt": workflow(), "axes": [{"target": a.split("=")[0], "values": a.split("=")[1]}
                                                              for a in AXES], "batch_name": name, "dry_run": True,
                               "grid": {"x_axis": "sigma"}})
    assert code == 200, plan
    assert plan["count"] == 6 and plan["axes"][1]["values"] == [0.5, 2.5, 4.5] and plan["grid"]
    time.sleep(0.5)
    assert name not in _batch_names(comfy)


def test_a_bad_axis_gets_the_message_the_node_gives(comfy):
    values = "1, x, 3"
    code, answer = _post(comfy, {"prompt": workflow(), "axes": [{"target": "blur.blur_radius", "values": values,
                                                                 "name": "radius"}]})
    assert code == 400, answer
    (error,) = answer["errors"]
    assert error["axis"] == 0 and error["param"] == "radius"
    # The same axis as nodes on the canvas: ComfyUI refuses the Queue press with the hook's message.
    prompt = workflow()
    prompt["1"] = {"class_type": "WIParameterInt", "inputs": {"name": "radius", "values": values,
                                                              "target": "blur.blur_radius"}}
    prompt["3"] = {"class_type": "WIIterator", "inputs": {"parameters": ["1", 0], "enabled": True, "mode": "matrix",
                                                          "batch_name": "canvas"}}
    node_code, node_answer = comfy.queue_prompt(prompt)
    assert node_code == 400, node_answer
    node_text = json.dumps(node_answer["node_errors"])
    assert json.dumps(error["message"])[1:-1] in node_text, (error["message"], node_text)


def test_sigint_to_the_cli_cancels_the_batch_on_the_server(comfy, tmp_path):
    path = tmp_path / "slow_api.json"
    path.write_text(json.dumps(workflow(seconds=0.5)))
    process = cli(comfy, "--json", "sweep", str(path), "--axis", "blur.blur_radius=1-30", "--no-grid",
                  "--name", f"sigint_{uuid.uuid4().hex[:6]}")
    batch_id = None
    assert process.stdout is not None
    for line in process.stdout:
        record = json.loads(line)
        if record["type"] == "queued":
            batch_id = record["batch_id"]
        if batch_id and record["type"] == "progress":
            break
    assert batch_id, "the CLI never reported its batch"
    os.kill(process.pid, signal.SIGINT)
    rest, err = process.communicate(timeout=60)
    assert process.returncode == 130, rest + err
    assert '"type": "cancelled"' in rest
    status = comfy.wait_batch(batch_id, states=("cancelled",), timeout=60)
    assert status["counts"]["cancelled"] >= 1 and status["counts"]["done"] < 30


def test_a_core_save_image_workflow_is_swept_and_its_cells_are_downloaded_through_view(comfy, tmp_path):
    prompt = workflow()
    prompt["20"] = {"class_type": "SaveImage", "inputs": {"images": ["13", 0], "filename_prefix": f"core_{uuid.uuid4().hex[:6]}"}}
    path = tmp_path / "core_save_api.json"
    path.write_text(json.dumps(prompt))
    process = cli(comfy, "--json", "sweep", str(path), "--axis", "blur.blur_radius=1, 3", "--out", str(tmp_path / "r"))
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, out + err + comfy.log_tail()
    batch_id = next(json.loads(line)["batch_id"] for line in out.splitlines() if json.loads(line)["type"] == "queued")
    status = comfy.get(f"/wi/status/{batch_id}")[1]
    refs = [f for cell in status["cells"] for f in cell["files"]]
    assert len(refs) == 2
    for ref in refs:  # saved outside the batch folder: fetched with ComfyUI's /view, kept under other/
        local = tmp_path / "r" / batch_id / "other" / ref["subfolder"] / ref["filename"]
        assert local.read_bytes() == (comfy.output_dir / ref["subfolder"] / ref["filename"]).read_bytes()
    assert (tmp_path / "r" / batch_id / "batch.json").is_file()


def test_the_event_stream_of_a_real_batch_ends_with_it(comfy):
    import urllib.request

    code, created = _post(comfy, {"prompt": workflow(seconds=0.2), "axes": [{"target": "blur.blur_radius",
                                                                            "values": "1-4"}], "grid": {}})
    assert code == 201, created
    events = []
    with urllib.request.urlopen(f"{comfy.url}/wi/batches/{created['batch_id']}/events", timeout=60) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        name = None
        for raw in stream:  # ends when the server closes the stream after the batch's last event
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    names = [n for n, _ in events]
    assert names[0] == "snapshot"
    ended = [data["index"] for n, data in events if n == "cell_ended"]
    assert len(set(ended)) == len(ended)
    # Cells that ended before the stream began are counted in the snapshot (one ending while the stream
    # starts may be in both: subscribed first, so never in neither).
    assert len(ended) + events[0][1]["counts"]["done"] >= 4 and events[-1][1]["counts"]["done"] == 4
    assert names[-1] == "batch_finished" and events[-1][1]["state"] == "complete" and events[-1][1]["grid"]
