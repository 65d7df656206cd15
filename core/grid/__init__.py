"""The comparison grid: labelled pages of a sweep's cell images, planned before anything runs.

A package of one concern per module (the old ``core/grid.py`` held all six):

* ``inputs``  – the grid's axis and cell records, adapted from whatever the caller holds;
* ``options`` – every knob, its default and bounds (the single source the node's widgets are generated from);
* ``text``    – the bundled font, measuring, wrapping, fitting a label into a width;
* ``labels``  – header texts from the pack's one formatter (``core.values``), prefix elision, the legend;
* ``layout``  – geometry: which axis goes where, bands, strips, sub-grids, pages;
* ``sizing``  – the size policy as ordered strategies (downscale, sub-grids as pages, split) and the
  queue-time check;
* ``tiles``   – tiles of outputs that are not still images: a video's or animation's frame with a play badge,
  an audio waveform;
* ``compose`` – drawing the pages from the files on disk, placeholders, atomic writes.

This module re-exports the public names, so ``core.grid.plan_grid`` and ``from ..core import grid`` keep
working. Plain Python over Pillow: nothing here imports torch, ``comfy*``, ``server``, ``nodes``,
``folder_paths`` or aiohttp (tests/test_core_imports.py enforces it).
"""
from __future__ import annotations

from .compose import PLACEHOLDER_COLORS, compose_grid
from .inputs import GridAxis, GridCell, axes_and_cells_from_status
from .labels import format_value
from .layout import CellSlot, axis_warnings, GridPage, GridPlan, GridSizeReport, PagePlan, TextBlock
from .options import FORMAT_SIDE_LIMITS, GridOptions, node_input_types, options_from_node
from .sizing import STRATEGIES, check_grid_size, plan_grid
from .text import FONT_PATH, fit_label, wrap_text
from .tiles import AUDIO_TILE_SIZE, audio_tile, draw_play_badge, media_frame, media_size

__all__ = [
    "AUDIO_TILE_SIZE",
    "FONT_PATH",
    "FORMAT_SIDE_LIMITS",
    "PLACEHOLDER_COLORS",
    "STRATEGIES",
    "CellSlot",
    "GridAxis",
    "GridCell",
    "GridOptions",
    "GridPage",
    "GridPlan",
    "GridSizeReport",
    "PagePlan",
    "TextBlock",
    "audio_tile",
    "axes_and_cells_from_status",
    "axis_warnings",
    "check_grid_size",
    "compose_grid",
    "draw_play_badge",
    "fit_label",
    "format_value",
    "media_frame",
    "media_size",
    "node_input_types",
    "options_from_node",
    "plan_grid",
    "wrap_text",
]
