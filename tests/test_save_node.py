"""WISaveImage (nodes/save_node.py): one file per cell, save node and image; whole files only; never an
overwrite outside a sweep. ComfyUI's output folder and --disable-metadata are stood in for per test."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from comfyui_workflow_iterator.core import paths
from comfyui_workflow_iterator.core.prompt_graph import CELL_INFO_KEY
from comfyui_workflow_iterator.nodes import _comfy, save_node
from comfyui_workflow_iterator.nodes.save_node import WISaveImage


@pytest.fixture
def output(tmp_path, monkeypatch):
    monkeypatch.setattr(_comfy, "output_directory", lambda: str(tmp_path))
    monkeypatch.setattr(_comfy, "metadata_disabled", lambda: False)
    return tmp_path


def image(value: float = 0.5, size: int = 8) -> np.ndarray:
    return np.full((size, size, 3), value, dtype=np.float32)


def cell_extra(index: int, radius: float, batch_id: str = "t_0123abcd") -> dict:
    return {"workflow": {"nodes": []}, CELL_INFO_KEY: {"batch_id": batch_id, "index": index, "total": 3, "values": {"radius": radius},
                                                         "subfolder": f"WI/{batch_id}", "parameter_nodes": ["1"]}}


def test_two_save_nodes_in_a_three_cell_sweep_leave_six_files(output) -> None:
    saved = []
    for index, radius in enumerate((1.0, 2.0, 3.0)):
        for node_id in ("20", "21"):
            result = WISaveImage().save([image(index / 4)], "WI", prompt={}, extra_pnginfo=cell_extra(index, radius), unique_id=node_id)
            saved.extend(ref["filename"] for ref in result["ui"]["images"])
    folder = output / "WI" / "t_0123abcd"
    assert len(set(saved)) == 6
    assert sorted(p.name for p in folder.iterdir()) == sorted(saved)
    assert "c00000_radius-1.0_n20_0.png" in saved and "c00000_radius-1.0_n21_0.png" in saved


def test_a_cell_file_carries_which_image_of_how_many_of_which_node(output) -> None:
    result = WISaveImage().save([image(0.1), image(0.2)], "WI", prompt={"20": {}}, extra_pnginfo=cell_extra(1, 2.0), unique_id="20")
    names = [ref["filename"] for ref in result["ui"]["images"]]
    assert names == [paths.cell_filename(1, {"radius": 2.0}, k, node_id="20") for k in (0, 1)]
    with Image.open(output / "WI" / "t_0123abcd" / names[1]) as png:
        assert json.loads(png.info["wi_image"]) == {"node": "20", "number": 1, "count": 2}
        assert json.loads(png.info[CELL_INFO_KEY])["index"] == 1
        assert json.loads(png.info["prompt"]) == {"20": {}}


def test_outside_a_sweep_a_deleted_file_never_makes_the_next_save_overwrite_another(output) -> None:
    node = WISaveImage()
    names = [node.save([image(v)], "x")["ui"]["images"][0]["filename"] for v in (0.1, 0.2, 0.3)]
    assert names == ["x_00001.png", "x_00002.png", "x_00003.png"]
    folder = output / "x" / "single"
    (folder / "x_00002.png").unlink()
    kept = (folder / "x_00003.png").read_bytes()
    name = node.save([image(0.9)], "x")["ui"]["images"][0]["filename"]
    assert name == "x_00004.png"  # ComfyUI's rule: highest existing + 1
    assert (folder / "x_00003.png").read_bytes() == kept


def test_outside_a_sweep_a_name_taken_after_the_listing_is_not_clobbered(output, monkeypatch) -> None:
    """Another writer takes the counter's first choice between the listing and the write: the save moves on."""
    folder = output / "x" / "single"
    folder.mkdir(parents=True)
    real_listdir = os.listdir

    def stale_listdir(path):
        names = real_listdir(path)
        (folder / "x_00001.png").write_bytes(b"someone else's file")  # appears right after we looked
        return names

    monkeypatch.setattr(save_node.os, "listdir", stale_listdir)
    name = WISaveImage().save([image()], "x")["ui"]["images"][0]["filename"]
    assert name == "x_00002.png"
    assert (folder / "x_00001.png").read_bytes() == b"someone else's file"


def test_a_save_that_fails_midway_leaves_no_file_under_the_cell_name(output, monkeypatch) -> None:
    def broken_save(self, fp, format=None, **params):
        fp.write(b"\x89PNG\r\n\x1a\n half an image")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        WISaveImage().save([image()], "WI", prompt={}, extra_pnginfo=cell_extra(0, 1.0), unique_id="20")
    folder = output / "WI" / "t_0123abcd"
    assert list(folder.iterdir()) == []  # neither the cell file nor a temporary one


def test_without_metadata_the_files_have_no_text_chunks_but_the_same_names(output, monkeypatch) -> None:
    monkeypatch.setattr(_comfy, "metadata_disabled", lambda: True)
    result = WISaveImage().save([image()], "WI", prompt={"a": 1}, extra_pnginfo=cell_extra(2, 3.0), unique_id="20")
    name = result["ui"]["images"][0]["filename"]
    assert name == paths.cell_filename(2, {"radius": 3.0}, 0, node_id="20")
    with Image.open(output / "WI" / "t_0123abcd" / name) as png:
        assert "prompt" not in png.info and CELL_INFO_KEY not in png.info and "wi_image" not in png.info


def test_without_hard_links_a_taken_name_is_still_never_clobbered(output, monkeypatch) -> None:
    from comfyui_workflow_iterator.core import atomic_files

    def no_links(src, dst):
        raise PermissionError("operation not permitted")  # e.g. some FUSE or network file systems

    monkeypatch.setattr(atomic_files.os, "link", no_links)
    folder = output / "x" / "single"
    folder.mkdir(parents=True)
    real_listdir = os.listdir

    def stale_listdir(path):
        names = real_listdir(path)
        (folder / "x_00001.png").write_bytes(b"someone else's file")
        return names

    monkeypatch.setattr(save_node.os, "listdir", stale_listdir)
    name = WISaveImage().save([image()], "x")["ui"]["images"][0]["filename"]
    assert name == "x_00002.png"
    assert (folder / "x_00001.png").read_bytes() == b"someone else's file"
    with Image.open(folder / name) as png:
        png.load()
    assert sorted(p.name for p in folder.iterdir()) == ["x_00001.png", "x_00002.png"]  # no temporary file left
