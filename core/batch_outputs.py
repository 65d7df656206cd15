"""What a finished (or cancelled) batch leaves next to its images: the grid pages, batch.json/batch.csv and
the HTML viewer; and the queue-time grid size check.

Runs on the host's background thread, never on the aiohttp loop or ComfyUI's worker thread. Reads the cell
files one at a time (``core.grid.compose_grid``), so memory stays near one output raster.

Plain Python: must not import torch, comfy*, server, nodes, execution, folder_paths, comfy_execution, aiohttp.
"""
from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from PIL import Image

from . import grid, manifest
from .iteration_state import IterationStateManager
from .paths import resolve_inside

logger = logging.getLogger(__name__)

Notify = Callable[[str, dict, "str | None"], None]


#: The node's widget values to ``GridOptions``: owned by ``core.grid.options``.
grid_options_from_node = grid.options_from_node


def _image_size(path: str) -> tuple[int, int] | None:
    try:
        with Image.open(path) as image:  # reads the header only
            return image.size
    except (OSError, ValueError):
        return None


class BatchOutputs:
    """Builds a batch's grid, manifest and viewer exactly once, then completes the batch in the manager."""

    def __init__(self, manager: IterationStateManager, *, output_dir: Callable[[], str | None], notify: Notify) -> None:
        self.manager = manager
        self.output_dir = output_dir
        self.notify = notify

    def build(self, batch_id: str) -> None:
        status = self.manager.get_status(batch_id)
        if status["state"] not in ("collecting", "cancelled") or status.get("grid"):
            return
        root = self.output_dir()
        if root is None:
            raise RuntimeError("no output directory")
        meta = status.get("meta") or {}
        subfolder = str(meta.get("subfolder") or f"WI/{batch_id}")
        folder = resolve_inside(root, subfolder)
        absolute = self._with_absolute_files(status, root)

        info: dict[str, Any] = {"subfolder": subfolder, "type": "output"}
        page_paths: list[str] = []
        grid_node_id = meta.get("grid_node_id")
        if grid_node_id:
            options = grid_options_from_node(meta.get("grid_options"))
            if not options.images_only:
                axes, cells, mode = grid.axes_and_cells_from_status(absolute)
                sizes = self._cell_sizes(absolute)
                if sizes:
                    plan = grid.plan_grid(axes, cells, sizes, options, mode=mode)
                    pages = grid.compose_grid(plan, cells, folder, "grid", sweep=manifest.sweep_definition(absolute))
                    page_paths = [p.path for p in pages]
                    refs = [{"filename": os.path.basename(p.path), "subfolder": subfolder, "type": "output", "kind": p.kind,
                             "title": p.title, "width": p.width, "height": p.height} for p in pages]
                    if refs:
                        info.update(filename=refs[0]["filename"], pages=refs, warnings=list(plan.warnings))
                else:
                    info["warnings"] = ["no cell produced an image; no grid was drawn"]
        manifest.write_manifest(absolute, folder, relative_to=folder, grid_files=page_paths)
        manifest.write_viewer(absolute, folder, relative_to=folder, grid_files=page_paths,
                              title=str(status.get("batch_name") or batch_id))
        info["viewer"] = {"filename": "viewer.html", "subfolder": subfolder, "type": "output",
                          "route": f"/wi/batch/{batch_id}/viewer.html"}
        info["manifest"] = {"filename": "batch.json", "subfolder": subfolder, "type": "output"}
        if not self.manager.try_complete(batch_id, info):
            return
        if grid_node_id and info.get("pages"):
            # Shows the grid in the WIGridCompositor node of the tab that queued the sweep.
            images = [{k: page[k] for k in ("filename", "subfolder", "type")} for page in info["pages"]]
            last_prompt = next((c["prompt_id"] for c in reversed(status["cells"]) if c.get("prompt_id")), None)
            self.notify("executed", {"node": str(grid_node_id), "display_node": str(grid_node_id),
                                     "output": {"images": images}, "prompt_id": last_prompt}, status.get("client_id"))

    @staticmethod
    def _with_absolute_files(status: Mapping[str, Any], root: str) -> dict[str, Any]:
        absolute = copy.deepcopy(dict(status))
        for cell in absolute.get("cells", []):
            paths = []
            for ref in cell.get("files", []):
                if ref.get("type", "output") != "output":
                    continue
                try:
                    paths.append(resolve_inside(root, str(ref.get("subfolder", "")), str(ref["filename"])))
                except (ValueError, KeyError):
                    logger.warning("WI: ignoring cell file outside the output folder: %r", ref)
            cell["files"] = paths
        return absolute

    @staticmethod
    def _cell_sizes(status: Mapping[str, Any]) -> list[tuple[int, int]]:
        sizes: list[tuple[int, int] | None] = []
        for cell in status.get("cells", []):
            files = cell.get("files") or []
            sizes.append(_image_size(files[0]) if files else None)
        known = [s for s in sizes if s is not None]
        if not known:
            return []
        fallback = known[0]
        return [s or fallback for s in sizes]


def preflight_warnings(axes: Sequence[Any], mode: str, count: int, image_sizes: Sequence[tuple[int, int]] | tuple[int, int] | None,
                       grid_inputs: Mapping[str, Any] | None) -> list[str]:
    """Queue-time grid check: what will be downscaled or split to respect the format limits."""
    if image_sizes is None:
        return []
    options = grid_options_from_node(grid_inputs)
    report = grid.check_grid_size(axes, mode=mode, image_size=image_sizes, options=options, count=count)
    return list(report.warnings)


def preview_grid(axes: Sequence[Any], mode: str, count: int, image_size: Any, grid_inputs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The grid estimate for the iterator badge (``/wi/preview``)."""
    if not (isinstance(image_size, (list, tuple)) and len(image_size) == 2 and all(isinstance(v, int) and v > 0 for v in image_size)):
        image_size = (512, 512)
    options = grid_options_from_node(grid_inputs)
    return grid.check_grid_size(axes, mode=mode, image_size=tuple(image_size), options=options, count=count).as_dict()
