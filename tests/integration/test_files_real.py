"""The naming rule against a real ComfyUI: every save node's file of every cell, ComfyUI's counter outside a
sweep, batch folders that keep their unique suffix, and the batch-file route confined to the batch folder."""
from __future__ import annotations

import json
import os
import urllib.request

import pytest
from PIL import Image

from .test_real_comfyui import sweep

pytestmark = pytest.mark.integration


def test_two_save_nodes_in_a_three_cell_sweep_leave_six_files(comfy):
    prompt = sweep("1", "1, 2, 3", name="twosavers", grid=False)
    prompt["21"] = {"class_type": "WISaveImage", "inputs": {"images": ["13", 0], "filename_prefix": "WI"}}
    code, answer = comfy.queue_prompt(prompt)
    assert code == 200, answer
    status = comfy.wait_batch(comfy.batch_for_prompt(answer["prompt_id"])["batch_id"])
    assert status["counts"]["done"] == 3
    folder = comfy.output_dir / "WI" / status["batch_id"]
    names = sorted(p.name for p in folder.glob("c*.png"))
    assert len(names) == 6, names
    for cell in status["cells"]:
        nodes = set()
        for ref in cell["files"]:
            with Image.open(comfy.output_dir / ref["subfolder"] / ref["filename"]) as image:
                assert json.loads(image.info["wi_cell"])["index"] == cell["index"]
                nodes.add(json.loads(image.info["wi_image"])["node"])
        assert nodes == {"20", "21"}


def test_with_the_iterator_disabled_a_deleted_file_never_makes_a_save_overwrite_another(comfy):
    prompt = sweep("1", "1", grid=False)
    prompt["3"]["inputs"]["enabled"] = False
    prompt["20"]["inputs"]["filename_prefix"] = "single_counter/x"
    saved, subfolders = [], set()
    for color in (10, 20, 30):
        prompt["10"]["inputs"]["color"] = color
        code, answer = comfy.queue_prompt(prompt)
        assert code == 200, answer
        outputs = comfy.wait_history(answer["prompt_id"])["outputs"]
        saved.append(outputs["20"]["images"][0]["filename"])
        subfolders.add(outputs["20"]["images"][0]["subfolder"])
    assert saved == ["x_00001.png", "x_00002.png", "x_00003.png"]
    (subfolder,) = subfolders
    folder = comfy.output_dir / subfolder
    (folder / "x_00002.png").unlink()
    kept = (folder / "x_00003.png").read_bytes()
    prompt["10"]["inputs"]["color"] = 40
    code, answer = comfy.queue_prompt(prompt)
    assert code == 200, answer
    assert comfy.wait_history(answer["prompt_id"])["outputs"]["20"]["images"][0]["filename"] == "x_00004.png"
    assert (folder / "x_00003.png").read_bytes() == kept


def test_two_batches_with_seventy_character_names_keep_their_own_folders_and_manifests(comfy):
    name = "a portrait sweep with a name that is far too long to fit " + "x" * 13
    assert len(name) == 70
    batches = []
    for _ in range(2):
        code, answer = comfy.queue_prompt(sweep("1", "1, 2", name=name))
        assert code == 200, answer
        batches.append(comfy.wait_batch(comfy.batch_for_prompt(answer["prompt_id"])["batch_id"], need_grid=True))
    first, second = batches
    assert first["batch_id"] != second["batch_id"]
    assert first["meta"]["subfolder"] != second["meta"]["subfolder"]
    for status in batches:
        assert status["meta"]["subfolder"].endswith(status["batch_id"])  # the folder is the id, suffix and all
        code, manifest = comfy.get(f"/wi/batch/{status['batch_id']}/batch.json")
        assert code == 200 and manifest["batch_id"] == status["batch_id"]


def test_a_link_in_a_batch_folder_to_another_output_file_is_not_served(comfy):
    code, answer = comfy.queue_prompt(sweep("1", "1", name="linked", grid=False))
    assert code == 200, answer
    status = comfy.wait_batch(comfy.batch_for_prompt(answer["prompt_id"])["batch_id"])
    folder = comfy.output_dir / status["meta"]["subfolder"]
    other = comfy.output_dir / "other_place"
    other.mkdir(exist_ok=True)
    (other / "secret.png").write_bytes(b"someone else's image")
    os.symlink(os.path.relpath(other / "secret.png", folder), folder / "sibling.png")
    assert (folder / "sibling.png").read_bytes() == b"someone else's image"  # the link works on disk
    code, body = comfy.get(f"/wi/batch/{status['batch_id']}/sibling.png")
    assert code == 404, body
    name = status["cells"][0]["files"][0]["filename"]
    with urllib.request.urlopen(f"{comfy.url}/wi/batch/{status['batch_id']}/{name}") as resp:
        assert resp.status == 200
