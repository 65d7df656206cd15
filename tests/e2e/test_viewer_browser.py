"""The batch viewer (viewer.html) in a real headless Chromium: A/B wipe and toggle, the difference view, stars with
the keyboard that persist, "Sweep the winners", and the media players.

``test_viewer_driver.mjs`` (playwright-core, the lock file's version, installed by ``npm ci`` as for
test_browser.py) drives the pages and writes what it saw; the assertions are here, and the values text it
read is parsed back with the pack's real parser. Two ways the viewer is opened:

* offline: ``file://…/viewer.html`` of a hand-made batch folder (no server). Chromium will not hand a page
  opened from disk the pixels of other files, so the difference view is the browser's blend there; choices live
  in ``localStorage``.
* served: a real ComfyUI (tools/comfy_harness.py) runs a model-free sweep and serves
  ``/wi/batch/<id>/viewer.html``; the difference is computed per pixel on a canvas, and choices go through
  ``PUT /wi/batch/<id>/choices`` into ``batch.json``.

Skipped, with the reason, when Chromium, Node/npm, playwright-core or (served only) ComfyUI is missing.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

E2E_DIR = Path(__file__).resolve().parent
REPO = E2E_DIR.parents[1]
DRIVER = E2E_DIR / "test_viewer_driver.mjs"
for p in (str(REPO), str(REPO / "tests"), str(E2E_DIR)):
    if p not in sys.path:
        sys.path.insert(0, p)

from core import manifest, viewer  # noqa: E402
from core.parameter_parser import parse  # noqa: E402
from core.records import AxisRecord, BatchRecord, CellRecord  # noqa: E402

pytestmark = [pytest.mark.e2e]

SIZE = 48
BLUE, RED, GREEN = (20, 40, 220), (230, 30, 30), (30, 200, 60)


def _prerequisites() -> tuple[str, str]:
    import test_browser  # the lock file and npm ci rules of the browser tests

    chromium = os.environ.get("WI_CHROMIUM", "/usr/bin/chromium")
    if not (os.path.isfile(chromium) and os.access(chromium, os.X_OK)):
        pytest.skip(f"no Chromium at {chromium} (apt-get install chromium, or set WI_CHROMIUM)")
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed to drive the browser")
    test_browser._ensure_playwright(npm, test_browser._lock())
    return chromium, node


def _drive(tmp_path: Path, pages: list[dict[str, str]]) -> dict[str, Any]:
    chromium, node = _prerequisites()
    # Kept after the run (screenshots of the difference views, the downloaded workflow, what the driver saw).
    out = REPO / "test-artifacts" / "viewer" / tmp_path.name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    config = out / "config.json"
    config.write_text(json.dumps({"chromium": chromium, "out_dir": str(out), "pages": pages}), encoding="utf-8")
    done = subprocess.run([node, str(DRIVER), str(config)], cwd=E2E_DIR, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    for name, facts in results.items():
        assert "failed" not in facts, f"{name}: {facts.get('failed')} (page errors: {facts.get('errors')})"
        assert facts["errors"] == [], f"{name}: {facts['errors']}"
    return results


def _max_channel(path: str) -> int:
    """The brightest channel of an element screenshot, without its outer pixel row and column: the element box
    sits at fractional coordinates, so its edge rows may hold a sliver of the page behind it."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        inner = rgb.crop((1, 1, rgb.width - 1, rgb.height - 1))
        return max(hi for _, hi in inner.getextrema())


def _check_sweep_page(facts: dict[str, Any], axes: list[tuple[str, str, list[Any]]]) -> None:
    """The facts the driver gathered on a 2 x 2 sweep page (cells 0..3 on screen; 0 and 1 identical)."""
    # Keyboard: s on cell 0, s on cell 3, x on cell 2; still there after a reload.
    want = {"0": "starred", "1": "", "2": "rejected", "3": "starred"}
    assert facts["before_reload"] == want
    assert facts["after_reload"] == want
    # Wipe: B is clipped at the line, which the arrow keys and the slider move.
    assert facts["wipe"]["mode"] == "wipe"
    assert facts["wipe"]["start"] == "inset(0px 0px 0px 50%)"
    assert facts["wipe"]["after_right"] == "inset(0px 0px 0px 55%)"
    assert facts["wipe"]["after_slider"] == "inset(0px 0px 0px 20%)"
    drag = re.fullmatch(r"inset\(0px 0px 0px ([0-9.]+)%\)", facts["wipe"]["after_drag"])  # dragged to 3/4 of the width
    assert drag is not None and abs(float(drag.group(1)) - 75) < 3, facts["wipe"]["after_drag"]
    # Toggle: space flips between A and B.
    assert [t["showing"] for t in facts["toggle"]] == ["A", "B", "A"]
    assert [t["visibility"] for t in facts["toggle"]] == ["hidden", "visible", "hidden"]
    # Difference: visible for different cells, black for identical ones.
    assert _max_channel(facts["diff_different"]["screenshot"]) > 100
    assert _max_channel(facts["diff_same"]["screenshot"]) <= 2
    # Sweep the winners: cells 0 and 3, whose values the real parser reads back from the exported text.
    starred_values = {name: values for name, _, values in axes}
    assert set(facts["values_text"]) == set(starred_values)
    for name, type_, values in axes:
        assert parse(facts["values_text"][name], type_) == values, (name, facts["values_text"][name])


# ------------------------------------------------------------------------------------------------- offline
OFFLINE_AXES = [("steps", "INT", [20, 30]), ("cfg", "FLOAT", [0.1, 7.0]), ("prompt", "STRING", ["a, b", 'say "hi"'])]
#: What cells 0 and 3 (steps fixed at its first value in the 2 x 2 view) hold: steps 20 only, both cfg, both prompts.
OFFLINE_WINNERS = [("steps", "INT", [20]), ("cfg", "FLOAT", [0.1, 7.0]), ("prompt", "STRING", ["a, b", 'say "hi"'])]
WORKFLOW = {"nodes": [
    {"id": 1, "type": "WIParameterInt", "widgets_values": ["steps", "20, 30", "KSampler.steps"]},
    {"id": 2, "type": "WIParameterFloat", "widgets_values": ["cfg", "0.1, 7.0", "KSampler.cfg"]},
    {"id": 3, "type": "WIParameterString", "widgets_values": ["prompt", '"a, b", "say ""hi"""', "CLIP.text"]},
    {"id": 9, "type": "KSampler", "widgets_values": [1, "fixed", 20, 8.0]},
]}


def _png(path: Path, colour: tuple[int, int, int], metadata: PngInfo | None = None) -> None:
    Image.new("RGB", (SIZE, SIZE), colour).save(path, pnginfo=metadata)


def _offline_batch(folder: Path) -> Path:
    folder.mkdir(parents=True)
    colours = [BLUE, BLUE, RED, GREEN, RED, RED, GREEN, GREEN]  # cells 0 and 1 identical
    cells = []
    for index, colour in enumerate(colours):
        coords = [index // 4, (index // 2) % 2, index % 2]
        info = PngInfo()
        info.add_text("workflow", json.dumps(WORKFLOW))
        info.add_text("wi_cell", json.dumps({"batch_id": "offline_0000abcd", "index": index, "axes": ["steps", "cfg", "prompt"],
                                             "parameter_nodes": ["1", "2", "3"]}))
        name = f"c{index:05d}.png"
        _png(folder / name, colour, info)
        cells.append({"index": index, "coords": coords, "status": "done", "files": [str(folder / name)]})
    status = {"batch_id": "offline_0000abcd", "batch_name": "offline", "mode": "matrix", "state": "complete",
              "axes": [{"name": n, "type": t, "values": v} for n, t, v in OFFLINE_AXES], "cells": cells}
    manifest.write_manifest(status, folder)
    return Path(manifest.write_viewer(status, folder))


def _wav(path: Path, seconds: float = 0.6, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                               for i in range(int(seconds * rate))))


def _webm(path: Path, frames: int) -> bool:
    """A small VP8 clip made with PyAV from ComfyUI's own environment (the pack's venv has no video encoder)."""
    python = Path(os.environ.get("COMFYUI_PYTHON", "/opt/ComfyUI/.venv/bin/python"))
    script = (
        "import av, numpy as np, sys\n"
        "c = av.open(sys.argv[1], 'w'); s = c.add_stream('libvpx', rate=10); s.width = 64; s.height = 48\n"
        "s.pix_fmt = 'yuv420p'\n"
        "for i in range(int(sys.argv[2])):\n"
        "    a = np.zeros((48, 64, 3), np.uint8); a[:, :, 1] = (i * 13) % 255\n"
        "    [c.mux(p) for p in s.encode(av.VideoFrame.from_ndarray(a, format='rgb24'))]\n"
        "[c.mux(p) for p in s.encode()]; c.close()\n"
    )
    if not python.is_file():
        return False
    done = subprocess.run([str(python), "-c", script, str(path), str(frames)], capture_output=True, text=True, timeout=120)
    return done.returncode == 0 and path.is_file()


def _media_batch(folder: Path) -> Path:
    folder.mkdir(parents=True)
    _png(folder / "still.png", BLUE)
    frames = [Image.new("RGB", (SIZE, SIZE), c) for c in (RED, GREEN, BLUE)]
    frames[0].save(folder / "anim.webp", save_all=True, append_images=frames[1:], duration=100, loop=0)
    if not (_webm(folder / "clip_a.webm", 20) and _webm(folder / "clip_b.webm", 40)):
        pytest.skip("no PyAV with libvpx in ComfyUI's environment to make the test videos")
    _wav(folder / "tone.wav")
    kinds = ["image", "animated", "video", "audio", "text", "video"]
    outputs: list[list[dict[str, Any]]] = [
        [{"path": "still.png", "kind": "image", "node_id": "9", "media_type": "image/png"}],
        [{"path": "anim.webp", "kind": "animated", "node_id": "9", "media_type": "image/webp"}],
        [{"path": "clip_a.webm", "kind": "video", "node_id": "8", "media_type": "video/webm"}],
        [{"path": "tone.wav", "kind": "audio", "node_id": "7", "media_type": "audio/wav"}],
        [{"text": "a caption, with <b>markup</b> kept as text", "kind": "text", "node_id": "6", "media_type": "text/plain"}],
        [{"path": "clip_b.webm", "kind": "video", "node_id": "8", "media_type": "video/webm"}],
    ]
    record = BatchRecord(batch_id="media_0000abcd", batch_name="media", mode="linear",
                         axes=(AxisRecord("kind", tuple(kinds), "STRING"),),
                         cells=tuple(CellRecord(index=i, coords=(i,)) for i in range(len(kinds))))
    cells = [{"index": i, "coords": [i], "seed": None, "status": "done", "error": None,
              "files": [o["path"] for o in outs if "path" in o], "outputs": outs} for i, outs in enumerate(outputs)]
    return Path(viewer.write_viewer(record, folder, root=str(folder), cells=cells))


def test_offline_viewer_compares_stars_and_exports_in_chromium(tmp_path: Path) -> None:
    page = _offline_batch(tmp_path / "offline")
    results = _drive(tmp_path, [{"name": "offline", "url": page.as_uri(), "kind": "sweep"}])
    facts = results["offline"]
    assert facts["ready"] == "local"
    _check_sweep_page(facts, OFFLINE_WINNERS)
    # Offline, the choices live in localStorage under the batch id (and survived the reload above).
    stored = json.loads(facts["local_storage"]["wi.viewer.choices.offline_0000abcd"])
    assert stored == {"starred": [0, 3], "rejected": [2]}
    # Opened from disk the pixels cannot be read: the blend view is used, and says so.
    assert facts["diff_different"]["mode"] == "blend" and "served viewer" in facts["diff_different"]["summary"]
    # The downloaded workflow holds the winners' values text in each parameter node.
    assert facts["workflow_enabled"]
    workflow = json.loads(Path(facts["workflow_file"]).read_text(encoding="utf-8"))
    nodes = {n["id"]: n for n in workflow["nodes"]}
    for node_id, (name, type_, values) in zip((1, 2, 3), OFFLINE_WINNERS):
        assert parse(nodes[node_id]["widgets_values"][1], type_) == values, name
    assert nodes[9]["widgets_values"] == WORKFLOW["nodes"][3]["widgets_values"]


def test_media_cells_play_in_chromium(tmp_path: Path) -> None:
    page = _media_batch(tmp_path / "media")
    facts = _drive(tmp_path, [{"name": "media", "url": page.as_uri(), "kind": "media"}])["media"]
    tiles = {t["index"]: t for t in facts["tiles"]}
    assert tiles[0]["tag"] == "img" and tiles[0]["width"] == SIZE
    assert tiles[1]["tag"] == "img" and tiles[1]["kind"] == "animated" and tiles[1]["width"] == SIZE
    assert tiles[2]["tag"] == "video" and tiles[2]["duration"] > 1.5
    assert tiles[3]["kind"] == "audio" and 0.5 < tiles[3]["duration"] < 0.7
    assert tiles[4]["tag"] == "pre" and tiles[4]["text"] == "a caption, with <b>markup</b> kept as text"
    assert tiles[5]["tag"] == "video" and tiles[5]["duration"] > 3.5
    # One play button starts every video; pause stops them all; the shared scrubber moves them together,
    # each clamped to its own length.
    assert facts["sync_bar_visible"]
    assert all(not v["paused"] and v["t"] > 0 for v in facts["playing"]), facts["playing"]
    assert all(facts["after_pause"])
    longest = max(v["d"] for v in facts["scrubbed"])
    for v in facts["scrubbed"]:
        assert abs(v["t"] - min(longest / 2, v["d"])) < 0.25, facts["scrubbed"]
    assert facts["modal_text"] == "a caption, with <b>markup</b> kept as text"


# ------------------------------------------------------------------------------------------------- served
SERVED_AXES = [("width", "INT", [32, 40]), ("color", "INT", [255, 16711680]), ("sigma", "FLOAT", [0.1, 2.5])]
SERVED_WINNERS = [("width", "INT", [32]), ("color", "INT", [255, 16711680]), ("sigma", "FLOAT", [0.1, 2.5])]


def _served_prompt() -> tuple[dict[str, Any], dict[str, Any]]:
    """width x color x sigma; blurring a one-colour image leaves it as it is, so cells 0 and 1 (sigma 0.1 and 2.5) have
    identical pixels."""
    prompt = {
        "1": {"class_type": "WIParameterInt", "inputs": {"name": "width", "values": "32, 40", "target": ""}},
        "2": {"class_type": "WIParameterInt", "inputs": {"name": "color", "values": "255, 16711680", "target": "",
                                                         "previous": ["1", 0]}},
        "3": {"class_type": "WIParameterFloat", "inputs": {"name": "sigma", "values": "0.1, 2.5", "target": "",
                                                           "previous": ["2", 0]}},
        "4": {"class_type": "WIIterator", "inputs": {"parameters": ["3", 0], "enabled": True, "mode": "matrix",
                                                    "batch_name": "viewer_e2e"}},
        "10": {"class_type": "EmptyImage", "inputs": {"width": ["1", 1], "height": 32, "batch_size": 1, "color": ["2", 1]}},
        "13": {"class_type": "ImageBlur", "inputs": {"image": ["10", 0], "blur_radius": 1, "sigma": ["3", 1]}},
        "20": {"class_type": "WISaveImage", "inputs": {"images": ["13", 0], "filename_prefix": "WI"}},
    }
    workflow = {"nodes": [
        {"id": 1, "type": "WIParameterInt", "widgets_values": ["width", "32, 40", ""]},
        {"id": 2, "type": "WIParameterInt", "widgets_values": ["color", "255, 16711680", ""]},
        {"id": 3, "type": "WIParameterFloat", "widgets_values": ["sigma", "0.1, 2.5", ""]},
        {"id": 10, "type": "EmptyImage", "widgets_values": [32, 32, 1, 0]},
    ]}
    return prompt, workflow


@pytest.mark.integration
def test_served_viewer_saves_stars_into_batch_json_and_diffs_pixels(tmp_path: Path) -> None:
    _prerequisites()
    from tools.comfy_harness import ComfyServer, locate_backend

    found = locate_backend()
    if isinstance(found, str):
        pytest.skip(f"integration test skipped: {found}")
    prompt, workflow = _served_prompt()
    with ComfyServer(backend=found) as comfy:
        code, answer = comfy.queue_prompt(prompt, extra_data={"extra_pnginfo": {"workflow": workflow}})
        assert code == 200, answer
        batch = comfy.batch_for_prompt(answer["prompt_id"])
        status = comfy.wait_batch(batch["batch_id"])
        assert status["counts"]["done"] == 8, status["counts"]
        folder = comfy.output_dir / status["meta"]["subfolder"]
        assert (folder / "viewer.html").is_file()
        url = f"{comfy.url}/wi/batch/{status['batch_id']}/viewer.html"
        facts = _drive(tmp_path, [{"name": "served", "url": url, "kind": "sweep"}])["served"]
        assert facts["ready"] == "served"
        _check_sweep_page(facts, SERVED_WINNERS)
        # The keyboard's stars went through PUT /wi/batch/<id>/choices into batch.json, not the browser.
        doc = json.loads((folder / "batch.json").read_text(encoding="utf-8"))
        assert doc["choices"] == {"starred": [0, 3], "rejected": [2]}
        assert len(doc["cells"]) == 8
        assert comfy.get(f"/wi/batch/{status['batch_id']}/choices") == (200, {"starred": [0, 3], "rejected": [2]})
        assert not any(k.startswith("wi.viewer.choices") for k in facts["local_storage"])
        # Served, the pixels are readable: counted exactly on a canvas.
        assert facts["diff_different"]["mode"] == "canvas" and int(facts["diff_different"]["changed"]) > 0
        assert facts["diff_same"]["mode"] == "canvas" and int(facts["diff_same"]["changed"]) == 0
        assert facts["diff_same"]["summary"] == "identical"
        # The workflow came from the cell PNGs' metadata and takes the winners' values.
        workflow_out = json.loads(Path(facts["workflow_file"]).read_text(encoding="utf-8"))
        nodes = {n["id"]: n for n in workflow_out["nodes"]}
        for node_id, (name, type_, values) in zip((1, 2, 3), SERVED_WINNERS):
            assert parse(nodes[node_id]["widgets_values"][1], type_) == values, name
