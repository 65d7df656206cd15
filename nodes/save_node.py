"""WISaveImage: saves every image of a cell into the batch's folder, with metadata naming the cell.

File names come from ``core/paths.py`` (the one naming rule: cell, save node, image number), and every file
goes through ``core/atomic_files.py``: it appears whole under its name or not at all, so a kill in the middle
of a save never leaves a truncated image that resume could take for a finished cell.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import IO, Any

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ..core import atomic_files, paths
from ..core.prompt_graph import CELL_INFO_KEY, workflow_for_cell
from ..core.saved_cells import IMAGE_INFO_KEY, image_info
from . import _comfy

logger = logging.getLogger(__name__)

#: Names tried after the counter's first choice before a save outside a sweep gives up (another process
#: writing the same prefix at the same moment is the only way to use them up).
_MAX_COUNTER_TRIES = 1000


def _to_pil(image: Any) -> Image.Image:
    array = image.cpu().numpy() if hasattr(image, "cpu") else np.asarray(image)
    return Image.fromarray(np.clip(array * 255.0, 0, 255).astype(np.uint8))


def cell_pnginfo(prompt: Any, extra_pnginfo: Any) -> PngInfo:
    """Prompt, the cell's workflow (parameter widgets holding this cell's values) and the ``wi_cell`` block."""
    info = PngInfo()
    extra = dict(extra_pnginfo) if isinstance(extra_pnginfo, dict) else {}
    cell = extra.get(CELL_INFO_KEY)
    if prompt is not None:
        info.add_text("prompt", json.dumps(prompt))
    if isinstance(cell, dict) and "workflow" in extra:
        values = dict(zip(cell.get("parameter_nodes", []), (cell.get("values") or {}).values()))
        extra["workflow"] = workflow_for_cell(extra["workflow"], values)
    for key, value in extra.items():
        info.add_text(key, json.dumps(value))
    return info


def with_image_info(base: PngInfo, node_id: str, number: int, count: int) -> PngInfo:
    """``base`` plus the ``wi_image`` block: which image of how many of which save node (core/saved_cells.py)."""
    info = PngInfo()
    info.chunks = list(base.chunks)  # the prompt and workflow are encoded once per node run, not per image
    info.add_text(IMAGE_INFO_KEY, image_info(node_id, number, count))
    return info


def _png_writer(image: Image.Image, metadata: PngInfo | None) -> Callable[[IO[bytes]], None]:
    return lambda handle: image.save(handle, format="PNG", pnginfo=metadata, compress_level=4)


def save_single(folder: str, prefix: str, write: Callable[[IO[bytes]], None]) -> str:
    """Save one file outside a sweep as ``<prefix>_<counter>.png``; its name.

    ComfyUI's counter rule (highest existing + 1, see ``paths.next_single_counter``), and the file is put in
    place only under a name nobody holds: a taken name (deleted files, another writer) moves on to the next.

    Raises:
        FileExistsError: ``_MAX_COUNTER_TRIES`` names in a row were taken.
    """
    counter = paths.next_single_counter(prefix, os.listdir(folder))
    for _ in range(_MAX_COUNTER_TRIES):
        name = paths.single_filename(prefix, counter)
        try:
            atomic_files.write_with(paths.resolve_inside(folder, name), write, exclusive=True)
            return name
        except FileExistsError:
            counter += 1
    raise FileExistsError(f"WISaveImage: no free file name for prefix {prefix!r} in {folder}")


class WISaveImage:
    CATEGORY = "WI"
    FUNCTION = "save"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    DESCRIPTION = ("Saves each sweep cell's images into output/<prefix>/<batch id>/, named by cell, values and "
                   "save node, with the cell's prompt, workflow and parameter values in the PNG metadata.")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The images of this cell."}),
                "filename_prefix": ("STRING", {"default": "WI", "tooltip": "Folder(s) under the output directory; the batch id is added below it."}),
            },
            # unique_id: the node's id, part of every cell file name, so two save nodes never write one file.
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, **_: Any) -> float:
        # NaN never equals itself: ComfyUI re-runs this node every time, so every cell writes its file even
        # when two cells share all inputs (a cycled linear sweep, a repeated value).
        return float("nan")

    def save(self, images: Any, filename_prefix: str = "WI", prompt: Any = None, extra_pnginfo: Any = None,
             unique_id: Any = None) -> dict:
        output_dir = _comfy.output_directory()
        if output_dir is None:
            raise RuntimeError("WISaveImage needs ComfyUI's output directory")
        node_id = str(unique_id) if unique_id is not None else "0"
        cell = (extra_pnginfo or {}).get(CELL_INFO_KEY) if isinstance(extra_pnginfo, dict) else None
        if isinstance(cell, dict):
            subfolder = str(cell.get("subfolder") or paths.batch_subfolder(filename_prefix, str(cell.get("batch_id", "batch"))))
            index, values = int(cell.get("index", 0)), dict(cell.get("values") or {})
        else:
            subfolder, index, values = paths.safe_subfolder(filename_prefix) + "/single", None, {}
        folder = paths.resolve_inside(output_dir, subfolder)
        os.makedirs(folder, exist_ok=True)
        base = None if _comfy.metadata_disabled() else cell_pnginfo(prompt, extra_pnginfo)
        count = len(images)
        results = []
        for number, image in enumerate(images):
            metadata = None if base is None else with_image_info(base, node_id, number, count)
            write = _png_writer(_to_pil(image), metadata)
            if index is None:
                filename = save_single(folder, paths.safe_component(os.path.basename(filename_prefix), fallback="WI"), write)
            else:
                filename = paths.cell_filename(index, values, number, node_id=node_id)
                # Replaces a file of the same cell and node: the cell ran again (a resume), its new image wins.
                atomic_files.write_with(paths.resolve_inside(folder, filename), write)
            results.append({"filename": filename, "subfolder": subfolder, "type": "output"})
        return {"ui": {"images": results}}
