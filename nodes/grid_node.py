"""WIGridCompositor: declares the batch's labelled grid and its layout options.

The grid is built once, off ComfyUI's worker thread, when every cell has ended (see ``core.sweep``); the
node's options are read from the submitted prompt, and the finished grid is shown in this node by an
``executed`` message for its id. The node itself never executes, so it costs nothing per cell.
"""
from __future__ import annotations

from typing import Any

from ..core import grid


class WIGridCompositor:
    CATEGORY = "WI"
    FUNCTION = "declare"
    RETURN_TYPES = ()
    DESCRIPTION = ("Builds the sweep's labelled comparison grid (plus batch.json, batch.csv and an HTML viewer) "
                   "once every cell has ended; failed or cancelled cells get a placeholder tile.")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        # Generated from core's GridOptions: one source of defaults, bounds and choices.
        return grid.node_input_types()

    def declare(self, **_: Any) -> tuple:
        return ()
