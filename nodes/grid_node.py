"""WIGridCompositor: declares the batch's labelled grid and its layout options.

The grid is built once, off ComfyUI's worker thread, when every cell has ended (see ``core.sweep``); the
node's options are read from the submitted prompt, and the finished grid is shown in this node by an
``executed`` message for its id. The node itself never executes, so it costs nothing per cell.
"""
from __future__ import annotations

from typing import Any


class WIGridCompositor:
    CATEGORY = "WI"
    FUNCTION = "declare"
    RETURN_TYPES = ()
    DESCRIPTION = ("Builds the sweep's labelled comparison grid (plus batch.json, batch.csv and an HTML viewer) "
                   "once every cell has ended; failed or cancelled cells get a placeholder tile.")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "x_axis": ("STRING", {"default": "", "tooltip": "Parameter name across the top (empty: automatic)."}),
                "y_axis": ("STRING", {"default": "", "tooltip": "Parameter name down the side (empty: automatic)."}),
                "multi_axis": (["pages", "subgrids"], {"default": "pages",
                               "tooltip": "3+ parameters: one page per combination of the outer ones, or grids of grids."}),
                "format": (["png", "jpeg", "webp"], {"default": "png", "tooltip": "Grid file format (size limits are checked at queue time)."}),
                "label_font_size": ("INT", {"default": 28, "min": 8, "max": 200, "tooltip": "Largest label size; labels shrink, wrap, then move to a legend."}),
                "cell_gap": ("INT", {"default": 8, "min": 0, "max": 512, "tooltip": "Pixels between cells."}),
                "margin": ("INT", {"default": 16, "min": 0, "max": 1024, "tooltip": "Pixels around the grid."}),
                "background": ("STRING", {"default": "#ffffff", "tooltip": "Background colour (#rrggbb)."}),
                "images_only": ("BOOLEAN", {"default": False, "tooltip": "Write the manifest and viewer but no grid image."}),
            },
        }

    def declare(self, **_: Any) -> tuple:
        return ()
