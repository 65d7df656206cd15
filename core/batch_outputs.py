"""What a finished (or cancelled) batch leaves next to its images: the grid pages, batch.json/batch.csv and
the HTML viewer; and the queue-time grid size check.

Runs on the host's background thread, never on the aiohttp loop or ComfyUI's worker thread. Reads the cell
files one at a time (``core.grid.compose_grid``), so memory stays near one output raster.

It reads the batch as the manager's typed snapshot (``IterationStateManager.snapshot``), not its status
dict: axes keep their typed values and the labels of the one formatter (``core.values``), cells their
coordinates; the grid and the manifest get the same ``core.records`` (:func:`batch_record`).

Plain Python: must not import torch, comfy*, server, nodes, execution, folder_paths, comfy_execution, aiohttp.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from PIL import Image

from . import grid, manifest
from .iteration_state import BatchState, IterationStateManager
from .paths import resolve_inside
from .outputs import describe_file
from .records import AxisRecord, BatchRecord, CellRecord, OutputRecord, axis_seed
from .values import json_value

logger = logging.getLogger(__name__)

Notify = Callable[[str, dict[str, Any], "str | None"], None]

#: The node's widget values to ``GridOptions``: owned by ``core.grid.options``.
grid_options_from_node = grid.options_from_node


def _image_size(path: str) -> tuple[int, int] | None:
    try:
        with Image.open(path) as image:  # reads the header only
            return image.size
    except (OSError, ValueError):
        return None


#: A text output longer than this is cut in the records (batch.json, the viewer); its file keeps all of it.
MAX_TEXT_CHARS = 20_000


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read(MAX_TEXT_CHARS + 1)
    except OSError as exc:
        logger.warning("WI: cannot read the text output %s: %s", path, exc)
        return None
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + "…"


def _cell_outputs(refs: Sequence[Any], root: str) -> tuple[tuple[str, ...], tuple[OutputRecord, ...]]:
    """A cell's files (absolute paths inside ``root``, text outputs left out) and its typed outputs.

    References outside the output folder are dropped with a warning; temp references (a preview that could not
    be copied into the batch folder) are dropped: the temp folder does not outlive ComfyUI. A reference without
    a typed origin (journaled before outputs were typed) is typed by its file name (``core.outputs``).
    """
    paths: list[str] = []
    typed: list[OutputRecord] = []
    for ref in refs:
        if getattr(ref, "type", "output") != "output":
            continue
        try:
            path = resolve_inside(root, str(ref.subfolder or ""), str(ref.filename))
        except (ValueError, AttributeError):
            logger.warning("WI: ignoring cell file outside the output folder: %r", ref)
            continue
        made = getattr(ref, "origin", None) or describe_file(str(ref.filename))
        if made.kind == "text":
            typed.append(OutputRecord(path, "text", made.node_id, made.media_type, _read_text(path) or ""))
            continue
        paths.append(path)
        typed.append(OutputRecord(path, made.kind, made.node_id, made.media_type))
    return tuple(paths), tuple(typed)


def batch_record(snapshot: BatchState, root: str, *, extra_warnings: Sequence[str] = ()) -> BatchRecord:
    """The typed record the grid and the manifest read, from the manager's snapshot.

    Args:
        snapshot: ``manager.snapshot(batch_id)`` with cells.
        root: ComfyUI's output folder: cell files become absolute paths inside it.
        extra_warnings: warnings found while building the outputs, appended to the batch's own.
    """
    axes = tuple(
        AxisRecord(a.name, tuple(json_value(v) for v in a.values), a.type, tuple(a.labels)) for a in snapshot.axes
    )
    cells = []
    for c in sorted(snapshot.cells, key=lambda c: c.index):
        files, typed = _cell_outputs(c.files, root)
        cells.append(CellRecord(
            index=c.index, coords=tuple(c.coords), status=c.status.value, error=c.error, files=files,
            seed=json_value(c.metadata.get("seed")) if c.metadata.get("seed") is not None
            else axis_seed(c.coords, axes),
            outputs=typed,
        ))
    warnings = tuple(snapshot.warnings) + tuple(w for w in extra_warnings if w not in snapshot.warnings)
    return BatchRecord(
        batch_id=snapshot.batch_id, batch_name=snapshot.batch_name, mode=snapshot.mode, axes=axes, cells=tuple(cells),
        state=snapshot.state.value, created_at=snapshot.created_at, counts=snapshot.counts.as_dict(),
        warnings=warnings,
    )


def _tile_size(cell: CellRecord) -> tuple[int, int] | None:
    """The size a cell's grid tile is planned at: its tile output's (``CellRecord.tile_output``)."""
    out = cell.tile_output()
    if out is not None:
        return grid.media_size(out.path, out.kind)
    if cell.files and not isinstance(cell.files[0], Mapping):
        return _image_size(os.fspath(cell.files[0]))
    return None


def _cell_sizes(cells: Sequence[CellRecord]) -> list[tuple[int, int]]:
    sizes = [_tile_size(c) for c in cells]
    known = [s for s in sizes if s is not None]
    if not known:
        return []
    fallback = known[0]
    return [s or fallback for s in sizes]


class BatchOutputs:
    """Builds a batch's grid, manifest and viewer exactly once, then completes the batch in the manager."""

    def __init__(self, manager: IterationStateManager, *, output_dir: Callable[[], str | None], notify: Notify) -> None:
        self.manager = manager
        self.output_dir = output_dir
        self.notify = notify

    def build(self, batch_id: str) -> None:
        snapshot = self.manager.snapshot(batch_id)
        if snapshot.state.value not in ("collecting", "cancelled") or snapshot.grid:
            return
        root = self.output_dir()
        if root is None:
            raise RuntimeError("no output directory")
        meta = snapshot.meta
        subfolder = str(meta.get("subfolder") or f"WI/{batch_id}")
        folder = resolve_inside(root, subfolder)
        record = batch_record(snapshot, root)

        info: dict[str, Any] = {"subfolder": subfolder, "type": "output"}
        page_paths: list[str] = []
        grid_node_id = meta.get("grid_node_id")
        if grid_node_id:
            try:
                record, page_paths = self._draw_grid(batch_id, snapshot, record, root, folder, subfolder, info)
            except (ValueError, OSError) as exc:
                # Bad grid options or an unwritable grid must not cost the batch its manifest and viewer.
                warning = f"grid not drawn: {exc}"
                logger.warning("WI: batch %s: %s", batch_id, warning)
                self._add_warnings(batch_id, snapshot, [warning])
                record = batch_record(snapshot, root, extra_warnings=[warning])
                info["warnings"] = [warning]
        manifest.write_manifest(record, folder, relative_to=folder, grid_files=page_paths)
        manifest.write_viewer(record, folder, relative_to=folder, grid_files=page_paths,
                              title=str(snapshot.batch_name or batch_id))
        info["viewer"] = {"filename": "viewer.html", "subfolder": subfolder, "type": "output",
                          "route": f"/wi/batch/{batch_id}/viewer.html"}
        info["manifest"] = {"filename": "batch.json", "subfolder": subfolder, "type": "output"}
        if not self.manager.try_complete(batch_id, info):
            return
        if grid_node_id and info.get("pages"):
            # Shows the grid in the WIGridCompositor node of the tab that queued the sweep.
            images = [{k: page[k] for k in ("filename", "subfolder", "type")} for page in info["pages"]]
            last_prompt = next((c.prompt_id for c in reversed(snapshot.cells) if c.prompt_id), None)
            message: dict[str, Any] = {"node": str(grid_node_id), "display_node": str(grid_node_id),
                                       "output": {"images": images}, "prompt_id": last_prompt}
            workflow_id = snapshot.meta.get("workflow_id")
            if workflow_id:  # newer frontends file outputs under the workflow that ran them
                message["workflow_id"] = workflow_id
            self.notify("executed", message, snapshot.client_id)

    def _draw_grid(self, batch_id: str, snapshot: BatchState, record: BatchRecord, root: str, folder: str,
                   subfolder: str, info: dict[str, Any]) -> tuple[BatchRecord, list[str]]:
        """Plan and compose the grid pages; returns the record (with the grid's warnings) and the page paths.

        Raises:
            ValueError: invalid grid options (the message names the option).
            OSError: a page could not be written.
        """
        grid_options = snapshot.meta.get("grid_options")
        options = grid_options_from_node(grid_options if isinstance(grid_options, Mapping) else None)
        if options.images_only:
            return record, []
        sizes = _cell_sizes(record.cells)
        if not sizes:
            info["warnings"] = ["no cell produced an image; no grid was drawn"]
            return record, []
        plan = grid.plan_grid(record.axes, record.cells, sizes, options, mode=record.mode)
        self._add_warnings(batch_id, snapshot, plan.warnings)
        record = batch_record(snapshot, root, extra_warnings=plan.warnings)
        pages = grid.compose_grid(plan, record.cells, folder, "grid", sweep=manifest.sweep_definition(record))
        refs = [{"filename": os.path.basename(p.path), "subfolder": subfolder, "type": "output", "kind": p.kind,
                 "title": p.title, "width": p.width, "height": p.height} for p in pages]
        if refs:
            info.update(filename=refs[0]["filename"], pages=refs, warnings=list(plan.warnings))
        return record, [p.path for p in pages]

    def _add_warnings(self, batch_id: str, snapshot: BatchState, warnings: Sequence[str]) -> None:
        """Grid warnings become the batch's warnings (status, panel, batch.json), each once."""
        for warning in warnings:
            if warning not in snapshot.warnings:
                self.manager.add_warning(batch_id, warning)


def preflight_warnings(axes: Sequence[Any], mode: str, count: int, image_sizes: Sequence[tuple[int, int]] | tuple[int, int] | None,
                       grid_inputs: Mapping[str, Any] | None) -> list[str]:
    """Queue-time grid check: what will be downscaled or split to respect the format limits, and axis
    options naming no parameter of the sweep (checked even when the image size is unknown)."""
    options = grid_options_from_node(grid_inputs)
    if image_sizes is None:
        return list(grid.axis_warnings(axes, options, mode=mode))
    report = grid.check_grid_size(axes, mode=mode, image_size=image_sizes, options=options, count=count)
    return list(report.warnings)


def preview_grid(axes: Sequence[Any], mode: str, count: int, image_size: Any, grid_inputs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The grid estimate for the iterator badge (``/wi/preview``)."""
    if not (isinstance(image_size, (list, tuple)) and len(image_size) == 2 and all(isinstance(v, int) and v > 0 for v in image_size)):
        image_size = (512, 512)
    options = grid_options_from_node(grid_inputs)
    return grid.check_grid_size(axes, mode=mode, image_size=tuple(image_size), options=options, count=count).as_dict()
