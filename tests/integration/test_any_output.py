"""Any output node (issue 17) against a real ComfyUI, model-free: SaveImage, PreviewImage, SaveAnimatedWEBP,
SaveAnimatedPNG, SaveVideo (from CreateVideo), an audio saver reporting ``audio`` like SaveAudio (core SaveAudio
needs torchaudio, which neither test backend has: the fixture node WITestSaveAudio) and PreviewAny in one
sweep; every cell's outputs in the status, batch.json and the viewer; the preview copied out of temp; and a
SIGKILL + restart + resume that runs again no cell whose outputs were all stored, whichever node saved them.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from PIL import Image

from tools.comfy_harness import ComfyServer

pytestmark = pytest.mark.integration

FIXTURE_NODES = Path(__file__).resolve().parent / "fixture_nodes"

#: What each output node of :func:`any_output_sweep` must leave in every cell: node id -> kind.
EXPECTED = {"20": "image", "21": "image", "22": "animated", "23": "animated", "25": "video", "27": "audio", "28": "text"}


def any_output_sweep(colors: str, *, name: str, seconds: float = 0.0) -> dict:
    prefix = f"anyout_{name}"
    return {
        "1": {"class_type": "WIParameterInt", "inputs": {"name": "color", "values": colors}},
        "3": {"class_type": "WIIterator", "inputs": {"parameters": ["1", 0], "enabled": True, "mode": "matrix", "batch_name": name}},
        "10": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 3, "color": ["1", 1]}},
        "13": {"class_type": "ImageBlur", "inputs": {"image": ["10", 0], "blur_radius": 1, "sigma": 1.0}},
        "14": {"class_type": "WITestSleep", "inputs": {"image": ["13", 0], "seconds": seconds}},
        "20": {"class_type": "SaveImage", "inputs": {"images": ["14", 0], "filename_prefix": f"{prefix}/still"}},
        "21": {"class_type": "PreviewImage", "inputs": {"images": ["14", 0]}},
        "22": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["14", 0], "filename_prefix": f"{prefix}/anim",
                                                            "fps": 6.0, "lossless": True, "quality": 80, "method": "default"}},
        "23": {"class_type": "SaveAnimatedPNG", "inputs": {"images": ["14", 0], "filename_prefix": f"{prefix}/apng",
                                                           "fps": 6.0, "compress_level": 4}},
        "24": {"class_type": "CreateVideo", "inputs": {"images": ["14", 0], "fps": 6.0}},
        "25": {"class_type": "SaveVideo", "inputs": {"video": ["24", 0], "filename_prefix": f"{prefix}/video",
                                                     "format": "auto", "codec": "auto"}},
        "27": {"class_type": "WITestSaveAudio", "inputs": {"image": ["14", 0], "filename_prefix": f"{prefix}/audio"}},
        "28": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}},
        "29": {"class_type": "WIGridCompositor", "inputs": {"x_axis": "", "y_axis": "", "multi_axis": "pages", "format": "png",
                                                           "label_font_size": 20, "cell_gap": 4, "margin": 8,
                                                           "background": "#ffffff", "images_only": False, "video_frame": 0}},
    }


def kinds_by_node(files: list[dict]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for ref in files:
        found.setdefault(ref["node_id"], set()).add(ref["kind"])
    return found


def _check_outputs(comfy: ComfyServer, status: dict) -> None:
    batch_id = status["batch_id"]
    folder = comfy.output_dir / "WI" / batch_id
    for cell in status["cells"]:
        assert cell["status"] == "done", cell
        assert kinds_by_node(cell["files"]) == {node: {kind} for node, kind in EXPECTED.items()}, cell["files"]
        for ref in cell["files"]:
            assert ref["type"] == "output", ref  # the preview was copied out of temp
            path = comfy.output_dir / ref["subfolder"] / ref["filename"]
            assert path.is_file() and path.stat().st_size > 0, ref
        preview = [r for r in cell["files"] if r["node_id"] == "21"]
        assert len(preview) == 3 and all(r["subfolder"] == f"WI/{batch_id}" for r in preview)
        text = next(r for r in cell["files"] if r["node_id"] == "28")
        color = status["axes"][0]["values"][cell["coords"][0]]
        assert (comfy.output_dir / text["subfolder"] / text["filename"]).read_text(encoding="utf-8") == str(color)
        anim = next(r for r in cell["files"] if r["node_id"] == "22")
        with Image.open(comfy.output_dir / anim["subfolder"] / anim["filename"]) as image:
            assert image.format == "WEBP" and anim["media_type"] == "image/webp"

    doc = json.loads((folder / "batch.json").read_text(encoding="utf-8"))
    viewer = (folder / "viewer.html").read_text(encoding="utf-8")
    for cell in doc["cells"]:
        by_node = {o["node_id"]: o for o in cell["outputs"]}
        assert {n: o["kind"] for n, o in by_node.items()} == EXPECTED
        assert by_node["28"]["text"] == str(doc["axes"][0]["values"][cell["coords"][0]])
        assert by_node["25"]["media_type"].startswith("video/") and by_node["27"]["media_type"].startswith("audio/")
        for out in cell["outputs"]:
            if "path" in out:
                assert (folder / out["path"]).resolve().is_file(), out
                assert json.dumps(out["path"]) in viewer  # the viewer carries the same outputs
        assert set(cell["files"]) == {o["path"] for o in cell["outputs"] if "path" in o}
    grid = status["grid"]
    assert (comfy.output_dir / grid["subfolder"] / grid["filename"]).is_file()


def test_every_output_node_of_a_sweep_is_captured_into_status_manifest_and_viewer(comfy):
    code, answer = comfy.queue_prompt(any_output_sweep("10, 200", name="allkinds"))
    assert code == 200, answer
    status = comfy.wait_batch(comfy.batch_for_prompt(answer["prompt_id"])["batch_id"], need_grid=True)
    assert status["state"] == "complete" and status["counts"]["done"] == 2, status
    _check_outputs(comfy, status)


@pytest.fixture
def base_dir(backend):
    path = Path(tempfile.mkdtemp(prefix="wi-anyout-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _forget_all_ends(base_dir: Path, batch_id: str) -> int:
    """Undo the journal's record of every cell end, as if every end had been lost with the kill: resume must
    know each finished cell from its outputs alone. Returns how many it undid."""
    import sqlite3

    from .test_crash_files import journal_path

    with sqlite3.connect(journal_path(base_dir)) as conn:
        (rowid,) = conn.execute("SELECT id FROM wi_batch WHERE batch_id = ?", (batch_id,)).fetchone()
        undone = conn.execute("UPDATE wi_cell SET status = 'queued', error = NULL, files = '[]', ended_at = NULL "
                              "WHERE batch = ? AND status = 'done'", (rowid,)).rowcount
        conn.execute("UPDATE wi_batch SET n_done = 0 WHERE id = ?", (rowid,))
    return int(undone)


def test_resume_after_sigkill_runs_no_cell_whose_outputs_of_every_kind_were_stored(backend, base_dir):
    first = ComfyServer(extra_packs={"wi_test_nodes": FIXTURE_NODES}, base_dir=base_dir, backend=backend).start()
    try:
        code, answer = first.queue_prompt(any_output_sweep("1, 2, 3, 4, 5", name="anykill", seconds=0.8))
        assert code == 200, answer
        batch_id = first.batch_for_prompt(answer["prompt_id"])["batch_id"]
        deadline = time.monotonic() + 120
        while first.get(f"/wi/status/{batch_id}")[1]["counts"]["done"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the background thread stores the previews and texts, then the cell's record
        folder = first.output_dir / "WI" / batch_id
        recorded = sorted(p.name for p in folder.glob("c*_ncell.json"))
    finally:
        first.stop(kill=True)
    assert len(recorded) >= 2, recorded
    undone = _forget_all_ends(base_dir, batch_id)
    assert undone >= 2

    second = ComfyServer(extra_packs={"wi_test_nodes": FIXTURE_NODES}, base_dir=base_dir, backend=backend).start()
    try:
        status = second.get(f"/wi/status/{batch_id}")[1]
        assert status["state"] == "interrupted" and status["counts"]["done"] == 0
        assert not list((second.base_dir / "temp").glob("*.png"))  # ComfyUI wiped temp: the copies must do
        recorded_indices = {json.loads((second.output_dir / "WI" / batch_id / n).read_text())["wi_cell"]["index"]
                            for n in recorded}
        code, resumed = second.post(f"/wi/resume/{batch_id}", {})
        assert code == 200, resumed
        assert resumed["already_saved"] >= len(recorded_indices), resumed
        assert resumed["queued"] + resumed["already_saved"] == 5
        final = second.wait_batch(batch_id, timeout=180, need_grid=True)
        assert final["state"] == "complete" and final["counts"]["done"] == 5
        for cell in final["cells"]:
            if cell["index"] in recorded_indices:
                assert cell["metadata"].get("resumed") == "file already saved", cell
        _check_outputs(second, final)
    finally:
        second.cleanup()


def _grid_of(comfy: ComfyServer, prompt: dict) -> Image.Image:
    code, answer = comfy.queue_prompt(prompt)
    assert code == 200, answer
    status = comfy.wait_batch(comfy.batch_for_prompt(answer["prompt_id"])["batch_id"], need_grid=True)
    assert status["state"] == "complete", status
    grid = status["grid"]
    assert "filename" in grid, grid
    with Image.open(comfy.output_dir / grid["subfolder"] / grid["filename"]) as image:
        return image.convert("RGB")


def _only(prompt: dict, keep: set[str]) -> dict:
    """The sweep with only the output nodes in ``keep`` (and the grid on a grey background, so white pixels can
    only come from a play badge)."""
    out = {k: v for k, v in prompt.items() if int(k) < 20 or k in keep or k == "29"}
    out["29"] = {**out["29"], "inputs": {**out["29"]["inputs"], "background": "#808080"}}
    return out


def _count(image: Image.Image, near: tuple[int, int, int], tolerance: int) -> int:
    return sum(n for n, px in image.getcolors(maxcolors=1 << 20) or ()
               if all(abs(a - b) <= tolerance for a, b in zip(px, near)))


@pytest.mark.parametrize("nodes", [{"22"}, {"24", "25"}], ids=["animated-webp", "video"])
def test_grid_tiles_of_animated_and_video_cells_show_their_frame_with_a_play_badge(comfy, nodes):
    prompt = _only(any_output_sweep("3166400, 3166400", name="gridmotion"), nodes)  # colour 0x3050c0
    image = _grid_of(comfy, prompt)
    assert _count(image, (255, 255, 255), 12) > 20  # the badges' white triangles and rings
    assert _count(image, (0x30, 0x50, 0xC0), 40) > 500  # the frames themselves, not placeholders


def test_grid_tiles_of_audio_cells_are_waveforms(comfy):
    from comfyui_workflow_iterator.core.grid.tiles import _WAVE_COLOR

    image = _grid_of(comfy, _only(any_output_sweep("10, 200", name="gridaudio"), {"27"}))
    assert _count(image, _WAVE_COLOR, 0) > 200
