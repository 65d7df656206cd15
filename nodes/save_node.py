"""WISaveImage: saves every image of a cell into the batch's folder, with metadata naming the cell."""
from __future__ import annotations

import json
import logging
import os
from typing import Any

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ..core import paths
from ..core.prompt_graph import CELL_INFO_KEY, workflow_for_cell
from . import _comfy

logger = logging.getLogger(__name__)


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


class WISaveImage:
    CATEGORY = "WI"
    FUNCTION = "save"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    DESCRIPTION = ("Saves each sweep cell's images into output/<prefix>/<batch id>/, named by cell and values, "
                   "with the cell's prompt, workflow and parameter values in the PNG metadata.")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The images of this cell."}),
                "filename_prefix": ("STRING", {"default": "WI", "tooltip": "Folder(s) under the output directory; the batch id is added below it."}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    @classmethod
    def IS_CHANGED(cls, **_: Any) -> float:
        # NaN never equals itself: ComfyUI re-runs this node every time, so every cell writes its file even
        # when two cells share all inputs (a cycled linear sweep, a repeated value).
        return float("nan")

    def save(self, images: Any, filename_prefix: str = "WI", prompt: Any = None, extra_pnginfo: Any = None) -> dict:
        output_dir = _comfy.output_directory()
        if output_dir is None:
            raise RuntimeError("WISaveImage needs ComfyUI's output directory")
        cell = (extra_pnginfo or {}).get(CELL_INFO_KEY) if isinstance(extra_pnginfo, dict) else None
        if isinstance(cell, dict):
            subfolder = str(cell.get("subfolder") or paths.batch_subfolder(filename_prefix, str(cell.get("batch_id", "batch"))))
            index, values = int(cell.get("index", 0)), dict(cell.get("values") or {})
        else:
            subfolder, index, values = paths.safe_subfolder(filename_prefix) + "/single", None, {}
        folder = paths.resolve_inside(output_dir, subfolder)
        os.makedirs(folder, exist_ok=True)
        metadata = None if _comfy.metadata_disabled() else cell_pnginfo(prompt, extra_pnginfo)
        results = []
        for number, image in enumerate(images):
            if index is None:
                existing = len([n for n in os.listdir(folder) if n.endswith(".png")])
                filename = f"{paths.safe_component(os.path.basename(filename_prefix), fallback='WI')}_{existing:05d}.png"
            else:
                filename = paths.cell_filename(index, values, number)
            target = paths.resolve_inside(folder, filename)
            _to_pil(image).save(target, pnginfo=metadata, compress_level=4)
            results.append({"filename": filename, "subfolder": subfolder, "type": "output"})
        return {"ui": {"images": results}}
