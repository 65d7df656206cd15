"""Grid options: every knob of the grid, its default and its bounds, in one place.

This module owns the option defaults. ``GridOptions`` validates them, and :func:`node_input_types` generates
the ``WIGridCompositor`` node's widgets from the same fields, so the node and the core cannot disagree (the
node once defaulted ``cell_gap`` to 8 while the core used 4). :func:`options_from_node` is the reverse: the
node's widget values (as the submitted prompt holds them) back into ``GridOptions``.

Plain Python over Pillow's colour parser; must not import torch, ``comfy*``, ``server``, ``nodes``,
``folder_paths`` or aiohttp.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union

from PIL import ImageColor

logger = logging.getLogger(__name__)

__all__ = [
    "FORMAT_SIDE_LIMITS",
    "GridOptions",
    "NODE_OPTIONS",
    "node_input_types",
    "options_from_node",
]

#: Largest side each format can store. libjpeg's JPEG_MAX_DIMENSION is 65500 (the JFIF field could hold
#: 65535, but the encoder refuses anything above 65500); WebP stores 14-bit sizes (16383).
FORMAT_SIDE_LIMITS: dict[str, int] = {"png": 2**31 - 1, "jpeg": 65_500, "webp": 16_383}

ColorLike = Union[str, tuple[int, int, int]]

#: Integer options and their inclusive bounds (``None``: no upper bound). The node's widgets use the same.
INT_BOUNDS: dict[str, tuple[int, int | None]] = {
    "cell_gap": (0, 1000),
    "margin": (0, 2000),
    "label_font_size": (6, 400),
    "min_font_size": (6, 400),
    "max_label_lines": (1, 50),
    "legend_min_chars": (1, 1_000_000),
    "legend_max_chars": (20, 1_000_000),
    "quality": (1, 100),
    "png_compress_level": (0, 9),
    "min_cell_size": (16, 100_000),
    "overview_thumb_size": (32, 4096),
    "cell_max_size": (16, 1_000_000),
    "wrap_columns": (1, 100_000),
    "video_frame": (0, 1_000_000),
}
_CHOICES: dict[str, tuple[str, ...]] = {
    "multi_axis": ("pages", "subgrids"),
    "format": ("png", "jpeg", "webp"),
    "oversize": ("downscale", "split"),
}


def parse_color(value: ColorLike, option: str) -> tuple[int, int, int]:
    """``(r, g, b)`` of a colour name, ``#rrggbb`` or a tuple; ``ValueError`` naming ``option`` otherwise."""
    if isinstance(value, str):
        try:
            rgb = ImageColor.getrgb(value)
        except ValueError as e:
            raise ValueError(f"{option}: not a colour: {value!r}") from e
        return (int(rgb[0]), int(rgb[1]), int(rgb[2]))
    if isinstance(value, tuple) and len(value) in (3, 4) and all(isinstance(c, int) and 0 <= c <= 255 for c in value):
        return (value[0], value[1], value[2])
    raise ValueError(f"{option}: expected a colour name, '#rrggbb' or an (r, g, b) tuple, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class GridOptions:
    """Every knob of the grid; keyword-only and validated (a bad value raises ``ValueError`` naming it).

    Axis placement defaults: with two or more matrix axes, X (columns) is the last axis and Y (rows) the
    one before it; any further axes are "outer" axes (pages or sub-grids), the first one outermost. With
    two axes this means the first (slowest-running) axis gives the rows and the second the columns. An
    ``x_axis``/``y_axis`` naming no axis of the sweep (a parameter skipped for a bad value) falls back to
    this automatic placement with a warning in the plan.
    """

    x_axis: str | None = None
    y_axis: str | None = None
    multi_axis: Literal["pages", "subgrids"] = "pages"
    cell_gap: int = 4
    margin: int = 16
    label_font_size: int = 28
    min_font_size: int = 12
    max_label_lines: int = 3
    legend_min_chars: int = 160
    legend_max_chars: int = 1000
    axis_titles: bool = True
    background: ColorLike = "#ffffff"
    text_color: ColorLike = "#000000"
    images_only: bool = False
    format: Literal["png", "jpeg", "webp"] = "png"
    quality: int = 90
    png_compress_level: int = 4
    max_megapixels: float = 200.0
    cell_max_size: int | None = None
    min_cell_size: int = 128
    oversize: Literal["downscale", "split"] = "downscale"
    wrap_columns: int | None = None
    overview: bool = True
    overview_thumb_size: int = 384
    elide_common_prefix: bool = True
    title: str | None = None
    #: The frame video and animated cells show (0: the first; past their end: their last).
    video_frame: int = 0

    def __post_init__(self) -> None:
        for name, (lo, hi) in INT_BOUNDS.items():
            v = getattr(self, name)
            if v is None and name in ("cell_max_size", "wrap_columns"):
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < lo or (hi is not None and v > hi):
                rng = f">= {lo}" if hi is None else f"between {lo} and {hi}"
                raise ValueError(f"{name}: must be an integer {rng}, got {v!r}")
        if self.min_font_size > self.label_font_size:
            raise ValueError(
                f"min_font_size: must not exceed label_font_size ({self.min_font_size} > {self.label_font_size})"
            )
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name}: must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        mp = self.max_megapixels
        if not isinstance(mp, (int, float)) or isinstance(mp, bool) or not (0.01 <= mp <= 100_000):
            raise ValueError(f"max_megapixels: must be a number between 0.01 and 100000, got {mp!r}")
        for name in ("x_axis", "y_axis", "title"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise ValueError(f"{name}: must be a string or None, got {v!r}")
        if self.x_axis is not None and self.x_axis == self.y_axis:
            raise ValueError(f"y_axis: must differ from x_axis (both {self.x_axis!r})")
        parse_color(self.background, "background")
        parse_color(self.text_color, "text_color")

    @property
    def background_rgb(self) -> tuple[int, int, int]:
        return parse_color(self.background, "background")

    @property
    def text_rgb(self) -> tuple[int, int, int]:
        return parse_color(self.text_color, "text_color")

    @property
    def pad(self) -> int:
        return max(3, self.label_font_size // 4)


def default_of(name: str) -> Any:
    """The default of one ``GridOptions`` field (the single source the node's widgets read)."""
    for f in dataclasses.fields(GridOptions):
        if f.name == name:
            return f.default
    raise KeyError(name)


#: The options the ``WIGridCompositor`` node shows, in widget order, with their tooltips. Defaults, bounds
#: and choices come from ``GridOptions``; ``x_axis``/``y_axis`` show ``None`` as an empty text.
NODE_OPTIONS: tuple[tuple[str, str], ...] = (
    ("x_axis", "Parameter name across the top (empty: automatic)."),
    ("y_axis", "Parameter name down the side (empty: automatic)."),
    ("multi_axis", "3+ parameters: one page per combination of the outer ones, or grids of grids."),
    ("format", "Grid file format (size limits are checked at queue time)."),
    ("label_font_size", "Largest label size; labels shrink, wrap, then move to a legend."),
    ("cell_gap", "Pixels between cells."),
    ("margin", "Pixels around the grid."),
    ("background", "Background colour (#rrggbb)."),
    ("images_only", "Write the manifest and viewer but no grid image."),
    # Last: a saved workflow's widget values are positional, so new widgets only ever go at the end.
    ("video_frame", "The frame video and animated cells show in the grid (0: the first; past the end: the last)."),
)


def node_input_types() -> dict[str, Any]:
    """``INPUT_TYPES()`` of the ``WIGridCompositor`` node, generated from ``GridOptions``."""
    required: dict[str, Any] = {}
    for name, tooltip in NODE_OPTIONS:
        default = default_of(name)
        if name in _CHOICES:
            required[name] = (list(_CHOICES[name]), {"default": default, "tooltip": tooltip})
        elif name in INT_BOUNDS:
            lo, hi = INT_BOUNDS[name]
            spec: dict[str, Any] = {"default": default, "min": lo, "tooltip": tooltip}
            if hi is not None:
                spec["max"] = hi
            required[name] = ("INT", spec)
        elif isinstance(default, bool):
            required[name] = ("BOOLEAN", {"default": default, "tooltip": tooltip})
        else:
            required[name] = ("STRING", {"default": "" if default is None else str(default), "tooltip": tooltip})
    return {"required": required}


def options_from_node(inputs: Mapping[str, Any] | None) -> GridOptions:
    """``GridOptions`` from the node's widget values (missing or empty ones take the defaults).

    Raises:
        ValueError: a value out of range, naming the option.
    """
    given = dict(inputs or {})
    kwargs: dict[str, Any] = {}
    for name, _ in NODE_OPTIONS:
        if name not in given:
            continue
        value = given[name]
        default = default_of(name)
        if name in ("x_axis", "y_axis"):
            kwargs[name] = str(value or "").strip() or None
        elif isinstance(default, bool):
            kwargs[name] = bool(value)
        elif name in INT_BOUNDS:
            # A link instead of a literal (a widget converted to an input) leaves the default.
            if isinstance(value, int) and not isinstance(value, bool):
                kwargs[name] = value
        elif value not in (None, ""):
            kwargs[name] = str(value)
    if "label_font_size" in kwargs:
        # The smallest size labels shrink to follows a smaller largest size.
        kwargs["min_font_size"] = min(default_of("min_font_size"), kwargs["label_font_size"])
    return GridOptions(**kwargs)
