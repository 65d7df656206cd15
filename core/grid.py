"""Comparison-grid layout, label fitting, size safety and composition from saved cell images.

This module owns everything about the grid picture: turning axes and cells into a geometric plan
(``plan_grid``), checking that plan against image-format limits before anything runs
(``check_grid_size``), and drawing the pages from the cell files on disk (``compose_grid``).

It is plain Python over Pillow, numpy and the standard library. It must never import torch, ``comfy*``,
``server``, ``nodes``, ``folder_paths`` or aiohttp (tests/test_core_imports.py enforces this), and it
does not import other core modules either: axes and cells arrive duck-typed and are converted into the
small frozen dataclasses below.

Design notes (why, not what):

* Planning never touches image files, so the same function answers the queue-time question "will this
  grid fit?" and produces the geometry the compositor draws.
* Text is measured with ``ImageDraw.textlength`` / ``textbbox`` on a bundled TTF (DejaVu Sans), so a
  label that fits here fits everywhere; Pillow removed ``getsize`` in 10.0 and broke other packs.
* Labels never get cut off: shrink the font, then word-wrap (breaking over-long words), then move the
  value to a numbered legend under the grid.
* Cells are decoded one at a time (a small read-ahead window of worker threads overlaps PNG decoding with
  pasting) into a single output raster, so peak memory is about the raster plus a few cells.
"""
from __future__ import annotations

import concurrent.futures
import functools
import itertools
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Union

from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

logger = logging.getLogger(__name__)

__all__ = [
    "FORMAT_SIDE_LIMITS",
    "GridAxis",
    "GridCell",
    "GridOptions",
    "GridPage",
    "GridPlan",
    "GridSizeReport",
    "CellSlot",
    "PagePlan",
    "TextBlock",
    "axes_and_cells_from_status",
    "check_grid_size",
    "compose_grid",
    "fit_label",
    "format_value",
    "plan_grid",
    "wrap_text",
]

FONT_PATH = Path(__file__).resolve().parent / "fonts" / "DejaVuSans.ttf"

#: Largest side each format can store. libjpeg's JPEG_MAX_DIMENSION is 65500 (the JFIF field could hold
#: 65535, but the encoder refuses anything above 65500); WebP stores 14-bit sizes (16383).
FORMAT_SIDE_LIMITS: dict[str, int] = {"png": 2**31 - 1, "jpeg": 65_500, "webp": 16_383}

_FORMAT_EXT = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
_PATH_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".bin", ".pth", ".sft", ".gguf", ".onnx")
_STATUS_TEXT = {
    "failed": "failed",
    "cancelled": "cancelled",
    "missing": "missing",
    "queued": "not run",
    "running": "not finished",
    "unreadable": "unreadable",
}
#: Placeholder tile colours: neutral greys, the failed one slightly warm so it stands out in a big grid.
PLACEHOLDER_COLORS: dict[str, tuple[int, int, int]] = {
    "failed": (232, 214, 214),
    "cancelled": (222, 222, 222),
    "missing": (238, 238, 238),
    "queued": (238, 238, 238),
    "running": (238, 238, 238),
    "unreadable": (232, 214, 214),
}

ColorLike = Union[str, tuple[int, int, int]]
Size = tuple[int, int]


# --------------------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class GridAxis:
    """One swept parameter as the grid sees it.

    ``values`` are the python values in the order the user entered them; ``labels`` (optional) are
    preformatted display strings aligned with ``values``.
    """

    name: str
    values: tuple[Any, ...]
    type: str = "STRING"
    labels: tuple[str, ...] | None = None


@dataclass(frozen=True)
class GridCell:
    """One cell of the sweep: where it sits, what it used, how it ended and which files it wrote."""

    index: int
    coords: tuple[int, ...]
    values: tuple[Any, ...] = ()
    status: str = "done"
    error: str | None = None
    files: tuple[str, ...] = ()
    metadata: Mapping[str, Any] | None = field(default=None, compare=False)


def _as_axis(obj: Any) -> GridAxis:
    if isinstance(obj, GridAxis):
        return obj
    if isinstance(obj, Mapping):
        labels = obj.get("labels")
        return GridAxis(
            name=str(obj["name"]),
            values=tuple(obj.get("values", ())),
            type=str(obj.get("type", "STRING")),
            labels=tuple(str(x) for x in labels) if labels is not None else None,
        )
    labels = getattr(obj, "labels", None)
    return GridAxis(
        name=str(obj.name),
        values=tuple(obj.values),
        type=str(getattr(obj, "type", "STRING")),
        labels=tuple(str(x) for x in labels) if labels is not None else None,
    )


def _as_cell(obj: Any, axes: Sequence[GridAxis]) -> GridCell:
    if isinstance(obj, GridCell):
        return obj
    get: Callable[[str, Any], Any]
    if isinstance(obj, Mapping):
        get = obj.get
    else:
        def get(key: str, default: Any = None) -> Any:
            return getattr(obj, key, default)
    raw_values = get("values", ())
    if isinstance(raw_values, Mapping):
        values = tuple(raw_values.get(a.name) for a in axes)
    else:
        values = tuple(raw_values or ())
    files = []
    for f in get("files", ()) or ():
        if isinstance(f, Mapping):
            p = f.get("path") or f.get("abspath") or f.get("filename")
            if p:
                files.append(str(p))
        else:
            files.append(os.fspath(f))
    status = get("status", "done")
    status = getattr(status, "value", status)
    meta = get("metadata", None)
    return GridCell(
        index=int(get("index", 0)),
        coords=tuple(int(c) for c in (get("coords", ()) or ())),
        values=values,
        status=str(status),
        error=get("error", None),
        files=tuple(files),
        metadata=meta if isinstance(meta, Mapping) else None,
    )


def axes_and_cells_from_status(status: Mapping[str, Any]) -> tuple[tuple[GridAxis, ...], tuple[GridCell, ...], str]:
    """Build grid inputs from the batch manager's status dict.

    Args:
        status: ``{"axes": [{"name", "type", "values": [...]}], "cells": [{"index", "coords", "values":
            {name: value}, "status", "error", "files": [absolute paths]}], "mode": ...}``.

    Returns:
        ``(axes, cells, mode)`` with cells sorted by index.
    """
    axes = tuple(_as_axis(a) for a in status.get("axes", ()))
    cells = tuple(sorted((_as_cell(c, axes) for c in status.get("cells", ())), key=lambda c: c.index))
    mode = str(status.get("mode", "matrix"))
    return axes, cells, mode


# -------------------------------------------------------------------------------------------- options
def _parse_color(value: ColorLike, option: str) -> tuple[int, int, int]:
    if isinstance(value, str):
        try:
            from PIL import ImageColor

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
    two axes this means the first (slowest-running) axis gives the rows and the second the columns.
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

    def __post_init__(self) -> None:
        def _int(name: str, lo: int, hi: int | None = None) -> None:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo or (hi is not None and v > hi):
                rng = f">= {lo}" if hi is None else f"between {lo} and {hi}"
                raise ValueError(f"{name}: must be an integer {rng}, got {v!r}")

        _int("cell_gap", 0, 1000)
        _int("margin", 0, 2000)
        _int("label_font_size", 6, 400)
        _int("min_font_size", 6, 400)
        if self.min_font_size > self.label_font_size:
            raise ValueError(
                f"min_font_size: must not exceed label_font_size ({self.min_font_size} > {self.label_font_size})"
            )
        _int("max_label_lines", 1, 50)
        _int("legend_min_chars", 1, 1_000_000)
        _int("legend_max_chars", 20, 1_000_000)
        _int("quality", 1, 100)
        _int("png_compress_level", 0, 9)
        _int("min_cell_size", 16, 100_000)
        _int("overview_thumb_size", 32, 4096)
        if self.cell_max_size is not None:
            _int("cell_max_size", 16, 1_000_000)
        if self.wrap_columns is not None:
            _int("wrap_columns", 1, 100_000)
        if self.format not in FORMAT_SIDE_LIMITS:
            raise ValueError(f"format: must be one of png, jpeg, webp, got {self.format!r}")
        if self.multi_axis not in ("pages", "subgrids"):
            raise ValueError(f"multi_axis: must be 'pages' or 'subgrids', got {self.multi_axis!r}")
        if self.oversize not in ("downscale", "split"):
            raise ValueError(f"oversize: must be 'downscale' or 'split', got {self.oversize!r}")
        mp = self.max_megapixels
        if not isinstance(mp, (int, float)) or isinstance(mp, bool) or not (0.01 <= mp <= 100_000):
            raise ValueError(f"max_megapixels: must be a number between 0.01 and 100000, got {mp!r}")
        for name in ("x_axis", "y_axis", "title"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise ValueError(f"{name}: must be a string or None, got {v!r}")
        if self.x_axis is not None and self.x_axis == self.y_axis:
            raise ValueError(f"y_axis: must differ from x_axis (both {self.x_axis!r})")
        _parse_color(self.background, "background")
        _parse_color(self.text_color, "text_color")

    @property
    def background_rgb(self) -> tuple[int, int, int]:
        return _parse_color(self.background, "background")

    @property
    def text_rgb(self) -> tuple[int, int, int]:
        return _parse_color(self.text_color, "text_color")

    @property
    def pad(self) -> int:
        return max(3, self.label_font_size // 4)


# ----------------------------------------------------------------------------------------------- text
@functools.lru_cache(maxsize=128)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(str(FONT_PATH), size)
    except OSError:  # the bundled file is missing: degrade to Pillow's built-in (still scalable) font
        logger.warning("bundled font %s not found; labels use Pillow's default font", FONT_PATH)
        return ImageFont.load_default(size)


_MEASURE = ImageDraw.Draw(Image.new("L", (1, 1)))


@functools.lru_cache(maxsize=65536)
def _text_width(text: str, size: int) -> float:
    return float(_MEASURE.textlength(text, font=_font(size)))


@functools.lru_cache(maxsize=128)
def _line_height(size: int) -> int:
    # Ascender-to-descender box of tall and deep glyphs, so stacked lines never overlap.
    box = _MEASURE.textbbox((0, 0), "ÁÉgjpqy|Йд", font=_font(size), anchor="la")
    return int(math.ceil(box[3] - box[1])) + max(1, size // 6)


def _break_word(word: str, width: float, size: int) -> list[str]:
    """Split one word that is wider than ``width`` into chunks that fit (at least one char each)."""
    out: list[str] = []
    rest = word
    while rest:
        # Bound the search: no glyph of the bundled font is narrower than ~0.2 em, so a prefix longer than
        # this cannot fit; growing ``hi`` if it does keeps this right for zero-width characters too.
        hi = min(len(rest), int(width / max(1.0, size * 0.2)) + 8)
        while hi < len(rest) and _text_width(rest[:hi], size) <= width:
            hi = min(len(rest), hi * 2)
        if hi == len(rest) and _text_width(rest, size) <= width:
            out.append(rest)
            break
        lo = 1
        while lo < hi:  # largest prefix that fits
            mid = (lo + hi + 1) // 2
            if _text_width(rest[:mid], size) <= width:
                lo = mid
            else:
                hi = mid - 1
        out.append(rest[:lo])
        rest = rest[lo:]
    return out


def wrap_text(text: str, width: float, size: int) -> list[str]:
    """Greedy word-wrap of ``text`` into lines no wider than ``width`` pixels at font ``size``.

    Explicit newlines are kept; words wider than the line are broken between characters.
    """
    return list(_wrap_cached(text, float(width), size))


@functools.lru_cache(maxsize=32768)
def _wrap_cached(text: str, width: float, size: int) -> tuple[str, ...]:
    # Planning re-lays a sweep out at several cell sizes; the same labels come back each time.
    lines: list[str] = []
    for para in text.split("\n"):
        words = para.split()
        if not words:
            lines.append("")
            continue
        cur = ""
        for word in words:
            cand = f"{cur} {word}" if cur else word
            if _text_width(cand, size) <= width:
                cur = cand
                continue
            if cur:
                lines.append(cur)
                cur = ""
            if _text_width(word, size) <= width:
                cur = word
            else:
                pieces = _break_word(word, width, size)
                lines.extend(pieces[:-1])
                cur = pieces[-1]
        lines.append(cur)
    return tuple(lines)


def fit_label(
    paragraphs: Sequence[str], width: float, *, max_lines: int, max_size: int, min_size: int
) -> tuple[tuple[str, ...], int] | None:
    """Fit label paragraphs into ``width``: shrink first, then wrap; ``None`` if it needs a legend.

    Returns:
        ``(lines, font_size)`` or ``None`` when even the smallest size needs more than ``max_lines``.
    """
    return _fit_cached(tuple(paragraphs), float(width), max_lines, max_size, min_size)


@functools.lru_cache(maxsize=32768)
def _fit_cached(
    paragraphs: tuple[str, ...], width: float, max_lines: int, max_size: int, min_size: int
) -> tuple[tuple[str, ...], int] | None:
    if width <= 0:
        return None
    if len(paragraphs) <= max_lines:
        def fits(size: int) -> bool:
            return all(_text_width(p, size) <= width for p in paragraphs)

        if fits(max_size):
            return tuple(paragraphs), max_size
        if fits(min_size):
            lo, hi = min_size, max_size - 1  # text width grows with the font size: binary search
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if fits(mid):
                    lo = mid
                else:
                    hi = mid - 1
            return tuple(paragraphs), lo
    for size in range(max_size, min_size - 1, -1):
        # Wrapping only drops the spaces at line breaks, so text much longer than max_lines full lines
        # cannot fit at this size; skipping it keeps 10k-character prompts cheap.
        total = sum(_text_width(p, size) for p in paragraphs)
        if total > max_lines * (width + size):
            continue
        lines: list[str] = []
        for p in paragraphs:
            lines.extend(wrap_text(p, width, size))
            if len(lines) > max_lines:
                break
        if len(lines) <= max_lines:
            return tuple(lines), size
    return None


# ------------------------------------------------------------------------------------------- values
_PATH_RE = re.compile(r"[\\/]")


def _is_pathlike(text: str) -> bool:
    # A slash alone is not enough ("red/blue hair" is a prompt): no whitespace, or a model extension.
    low = text.lower()
    return low.endswith(_PATH_EXTENSIONS) or (bool(_PATH_RE.search(text)) and not re.search(r"\s", text))


def format_value(value: Any, type_: str = "STRING") -> str:
    """Display text of one parameter value: compact floats, base names for model paths.

    ``0.1 + 0.2`` shows as ``0.3``; ``7.0`` as ``7.0``; ``"sdxl/juggernaut_v9.safetensors"`` as
    ``juggernaut_v9``.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        text = f"{value:.6g}"
        if "e" not in text and "." not in text:
            text += ".0"
        return text
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "—"
    text = str(value)
    if type_ in ("STRING", "COMBO") and "\n" not in text and _is_pathlike(text.strip()):
        base = re.split(r"[\\/]", text.strip())[-1]
        low = base.lower()
        for ext in _PATH_EXTENSIONS + (".png", ".jpg", ".jpeg", ".webp", ".txt", ".json", ".yaml"):
            if low.endswith(ext) and len(base) > len(ext):
                base = base[: -len(ext)]
                break
        return base or text
    return text


def _axis_labels(axis: GridAxis, options: GridOptions) -> list[str]:
    if axis.labels is not None and len(axis.labels) == len(axis.values):
        raw = [format_value(v, axis.type) if not isinstance(v, str) else format_value(v, axis.type) for v in axis.labels]
    else:
        raw = [format_value(v, axis.type) for v in axis.values]
    if options.elide_common_prefix and len(raw) > 1:
        raw = _elide_prefix(raw)
    return raw


def _elide_prefix(labels: list[str], min_len: int = 16) -> list[str]:
    """Replace a long common prefix (at a word/separator boundary) by an ellipsis."""
    prefix = os.path.commonprefix(labels)
    if len(prefix) < min_len:
        return labels
    cut = max(prefix.rfind(c) for c in " _-.,")
    if cut < min_len - 1:
        return labels
    if any(len(lbl) <= cut + 1 for lbl in labels):
        return labels
    return ["…" + lbl[cut + 1 :] for lbl in labels]


# ------------------------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class TextBlock:
    """Text drawn inside a box: lines already wrapped, one font size, never wider than the box."""

    x: int
    y: int
    w: int
    h: int
    lines: tuple[str, ...]
    font_size: int
    align: Literal["center", "left"] = "center"
    rotate: bool = False
    role: str = "header"


@dataclass(frozen=True)
class CellSlot:
    """A uniform slot for one cell (or, on the overview page, one page thumbnail)."""

    x: int
    y: int
    w: int
    h: int
    index: int
    coords: tuple[int, ...] = ()


@dataclass(frozen=True)
class PagePlan:
    number: int
    title: str
    width: int
    height: int
    slots: tuple[CellSlot, ...]
    texts: tuple[TextBlock, ...]
    kind: Literal["grid", "overview"] = "grid"

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


@dataclass(frozen=True)
class GridPlan:
    """Geometry of every page, computed without touching an image."""

    pages: tuple[PagePlan, ...]
    mode: str
    axes: tuple[GridAxis, ...]
    options: GridOptions
    slot_size: Size
    source_slot_size: Size
    warnings: tuple[str, ...] = ()
    legend: tuple[tuple[int, str], ...] = ()
    layout: str = "table"
    split: bool = False

    @property
    def images_only(self) -> bool:
        return self.options.images_only

    @property
    def scale(self) -> float:
        sw, sh = self.source_slot_size
        return min(self.slot_size[0] / sw, self.slot_size[1] / sh) if sw and sh else 1.0

    @property
    def downscaled(self) -> bool:
        return self.slot_size != self.source_slot_size

    @property
    def width(self) -> int:
        return max((p.width for p in self.pages), default=0)

    @property
    def height(self) -> int:
        return max((p.height for p in self.pages), default=0)

    @property
    def grid_pages(self) -> tuple[PagePlan, ...]:
        return tuple(p for p in self.pages if p.kind == "grid")


@dataclass(frozen=True)
class GridSizeReport:
    """Queue-time answer: final size, page count, downscale and warnings (the /wi/preview ``grid``)."""

    width: int
    height: int
    pages: int
    downscale: float
    warnings: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "pages": self.pages,
            "downscale": self.downscale,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class GridPage:
    """A grid image written by ``compose_grid``."""

    path: str
    number: int
    title: str
    width: int
    height: int
    kind: str = "grid"


class _Legend:
    """Numbered long values shared by every page of one plan."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], int] = {}

    def ref(self, name: str, value: str) -> int:
        key = (name, value)
        if key not in self.entries:
            self.entries[key] = len(self.entries) + 1
        return self.entries[key]

    def items(self, max_chars: int | None = None) -> list[tuple[int, str]]:
        out = []
        for (name, value), n in self.entries.items():
            if max_chars is not None and len(value) > max_chars:
                # The full text is in batch.json and the image metadata; a grid legend of pages is not useful.
                value = value[:max_chars] + f"… (+{len(value) - max_chars} chars)"
            out.append((n, f"{name}: {value}"))
        return out


@dataclass
class _Block:
    """A laid-out rectangle of slots and texts with coordinates relative to its top-left corner."""

    w: int
    h: int
    slots: list[CellSlot]
    texts: list[TextBlock]
    legend_refs: set[int] = field(default_factory=set)

    def moved(self, dx: int, dy: int) -> _Block:
        # Direct construction: dataclasses.replace dominated planning time for 10k-cell sweeps.
        return _Block(
            self.w,
            self.h,
            [CellSlot(s.x + dx, s.y + dy, s.w, s.h, s.index, s.coords) for s in self.slots],
            [TextBlock(t.x + dx, t.y + dy, t.w, t.h, t.lines, t.font_size, t.align, t.rotate, t.role)
             for t in self.texts],
            set(self.legend_refs),
        )


Label = list[tuple[str, str]]  # [(axis name, value text)]; an empty name means plain text


def _label_paragraphs(label: Label, refs: Mapping[int, int]) -> list[str]:
    out = []
    for i, (name, value) in enumerate(label):
        shown = f"[{refs[i]}]" if i in refs else value
        out.append(f"{name}: {shown}" if name else shown)
    return out


def _fit_labels(
    labels: Sequence[Label], width: int, max_lines: int, options: GridOptions, legend: _Legend
) -> tuple[list[tuple[tuple[str, ...], int]], set[int]]:
    """Fit a group of labels that share a band: same font size for all, legend refs where needed."""
    fitted: list[tuple[tuple[str, ...], int]] = []
    used: set[int] = set()
    per_label_refs: list[dict[int, int]] = []
    lo, hi = options.min_font_size, options.label_font_size
    inner = max(1, width)
    for label in labels:
        refs: dict[int, int] = {}
        # Values too long to ever read well inline (prompts) go straight to the legend.
        for i, (name, value) in enumerate(label):
            if len(value) > options.legend_min_chars:
                refs[i] = legend.ref(name, value)
        res = fit_label(_label_paragraphs(label, refs), inner, max_lines=max_lines, max_size=hi, min_size=lo)
        # Then move values to the legend, longest first, until the label fits.
        order = sorted(range(len(label)), key=lambda i: -len(label[i][1]))
        for i in order:
            if res is not None:
                break
            if len(label[i][1]) <= 6 or i in refs:
                continue
            refs[i] = legend.ref(label[i][0], label[i][1])
            res = fit_label(_label_paragraphs(label, refs), inner, max_lines=max_lines, max_size=hi, min_size=lo)
        if res is None:  # still too tall: wrap at the smallest size and let the band grow (never cut off)
            lines: list[str] = []
            for p in _label_paragraphs(label, refs):
                lines.extend(wrap_text(p, inner, lo))
            res = (tuple(lines), lo)
        used.update(refs.values())
        per_label_refs.append(refs)
        fitted.append(res)
    if not fitted:
        return fitted, used
    # One font size per band looks calmer; re-wrap at the common size when that does not add lines.
    common = min(size for _, size in fitted)
    out = []
    for (lines, size), label, refs in zip(fitted, labels, per_label_refs):
        if size == common:
            out.append((lines, size))
            continue
        relines: list[str] = []
        for p in _label_paragraphs(label, refs):
            relines.extend(wrap_text(p, inner, common))
        out.append((tuple(relines), common) if len(relines) <= max(len(lines), 1) else (lines, size))
    return out, used


def _band_height(fitted: Sequence[tuple[tuple[str, ...], int]], pad: int) -> int:
    if not fitted:
        return 0
    return max(len(lines) * _line_height(size) for lines, size in fitted) + 2 * pad


def _table_block(
    rows: Sequence[Label],
    cols: Sequence[Label],
    key: Callable[[int, int], tuple[int, tuple[int, ...]]],
    slot: Size,
    options: GridOptions,
    legend: _Legend,
    x_title: str | None,
    y_title: str | None,
) -> _Block:
    """Column headers across the top, row headers down the left, cells in between."""
    sw, sh = slot
    gap, pad, fs = options.cell_gap, options.pad, options.label_font_size
    texts: list[TextBlock] = []
    refs: set[int] = set()

    col_fit, used = _fit_labels(cols, sw - 2 * pad, options.max_label_lines, options, legend)
    refs |= used
    header_h = _band_height(col_fit, pad) if cols else 0

    # Row header width: natural width at full size, bounded to keep cells dominant.
    row_w = 0
    if rows:
        natural = max(_text_width(p, fs) for r in rows for p in _label_paragraphs(r, {})) + 2 * pad
        row_w = int(min(max(natural, 4 * fs), max(sw, 8 * fs)))
        row_lines = max(options.max_label_lines, max(1, sh // _line_height(options.min_font_size)))
        row_fit, used = _fit_labels(rows, row_w - 2 * pad, row_lines, options, legend)
        refs |= used
        row_w = max(row_w, 1)
    else:
        row_fit = []

    x_title_h = 0
    y_title_w = 0
    if options.axis_titles and x_title:
        x_title_h = _line_height(fs) + 2 * pad
    if options.axis_titles and y_title:
        y_title_w = _line_height(fs) + 2 * pad
    ncols = max(1, len(cols))
    nrows = max(1, len(rows))
    left = y_title_w + row_w + (gap if rows else 0)
    top = x_title_h + header_h + (gap if cols else 0)
    grid_w = ncols * sw + (ncols - 1) * gap
    grid_h = nrows * sh + (nrows - 1) * gap
    if x_title:
        if options.axis_titles:
            lines, size = _fit_title(x_title, grid_w - 2 * pad, options)
            texts.append(TextBlock(left, 0, grid_w, x_title_h, lines, size, role="axis"))
    if y_title and options.axis_titles:
        lines, size = _fit_title(y_title, grid_h - 2 * pad, options)
        texts.append(TextBlock(0, top, y_title_w, grid_h, lines[:1], size, rotate=True, role="axis"))
    for j, (lines, size) in enumerate(col_fit):
        texts.append(TextBlock(left + j * (sw + gap), x_title_h, sw, header_h, lines, size))
    for i, (lines, size) in enumerate(row_fit):
        texts.append(TextBlock(y_title_w, top + i * (sh + gap), row_w, sh, lines, size))
    slots = []
    for i in range(nrows):
        for j in range(ncols):
            index, coords = key(i, j)
            slots.append(CellSlot(left + j * (sw + gap), top + i * (sh + gap), sw, sh, index, coords))
    return _Block(left + grid_w, top + grid_h, slots, texts, refs)


def _fit_title(text: str, width: int, options: GridOptions) -> tuple[tuple[str, ...], int]:
    res = fit_label([text], max(1, width), max_lines=1, max_size=options.label_font_size, min_size=options.min_font_size)
    if res is not None:
        return res
    # A title longer than the whole grid: ellipsise at the smallest size rather than overflow.
    size = options.min_font_size
    lo, hi = 0, len(text)
    while lo < hi:  # longest prefix that fits with the ellipsis
        mid = (lo + hi + 1) // 2
        if _text_width(text[:mid] + "…", size) <= width:
            lo = mid
        else:
            hi = mid - 1
    return (text[:lo] + "…",), size


def _strip_block(
    items: Sequence[tuple[Label, int, tuple[int, ...]]],
    slot: Size,
    options: GridOptions,
    legend: _Legend,
    columns: int,
) -> _Block:
    """Cells in reading order, wrapping every ``columns`` cells, each with its own label above."""
    sw, sh = slot
    gap, pad = options.cell_gap, options.pad
    fitted, refs = _fit_labels([lab for lab, _, _ in items], sw - 2 * pad, max(options.max_label_lines, max(len(lab) for lab, _, _ in items) if items else 1), options, legend)
    label_h = _band_height(fitted, pad) if any(lab for lab, _, _ in items) else 0
    cols = max(1, min(columns, len(items)))
    nrows = max(1, math.ceil(len(items) / cols))
    row_h = label_h + sh
    texts, slots = [], []
    for k, ((label, index, coords), (lines, size)) in enumerate(zip(items, fitted)):
        r, c = divmod(k, cols)
        x = c * (sw + gap)
        y = r * (row_h + gap)
        if label_h:
            texts.append(TextBlock(x, y, sw, label_h, lines, size))
        slots.append(CellSlot(x, y + label_h, sw, sh, index, coords))
    w = cols * sw + (cols - 1) * gap
    h = nrows * row_h + (nrows - 1) * gap
    return _Block(w, h, slots, texts, set(refs))


def _auto_columns(n: int, slot: Size) -> int:
    if n <= 8:
        return max(1, n)
    sw, sh = slot
    # Aim for a roughly 16:10 page.
    return max(1, min(n, round(math.sqrt(n * 1.6 * sh / max(1, sw)))))


def _page_from_block(
    body: _Block,
    number: int,
    title: str,
    options: GridOptions,
    legend: _Legend,
    kind: Literal["grid", "overview"] = "grid",
) -> PagePlan:
    """Add margin, page title and the legend entries this page uses."""
    m, pad = options.margin, options.pad
    texts: list[TextBlock] = []
    y = m
    content_w = max(body.w, 1)
    if title:
        lines, size = _fit_title(title, content_w - 2 * pad, options)
        h = len(lines) * _line_height(size) + 2 * pad
        texts.append(TextBlock(m, y, content_w, h, lines, size, role="page_title"))
        y += h
    moved = body.moved(m, y)
    texts.extend(moved.texts)
    y += body.h
    entries = [(n, text) for n, text in legend.items(options.legend_max_chars) if n in body.legend_refs]
    if entries:
        size = max(options.min_font_size, int(round(options.label_font_size * 0.75)))
        lh = _line_height(size)
        y += options.pad * 2
        width = max(content_w, 40 * size) if content_w < 20 * size else content_w
        for n, text in entries:
            lines = wrap_text(f"[{n}] {text}", width - 2 * pad, size)
            h = len(lines) * lh
            texts.append(TextBlock(m, y, width, h, tuple(lines), size, align="left", role="legend"))
            y += h + pad
        content_w = max(content_w, width)
    return PagePlan(number, title, content_w + 2 * m, y + m, tuple(moved.slots), tuple(texts), kind)


# ------------------------------------------------------------------------------------------ planning
def _resolve_axes(axes: Sequence[GridAxis], options: GridOptions) -> tuple[int | None, int | None, list[int]]:
    """Indices of the X axis, Y axis and outer axes (outermost first) for a matrix sweep."""
    names = [a.name for a in axes]
    for opt in ("x_axis", "y_axis"):
        v = getattr(options, opt)
        if v is not None and v not in names:
            raise ValueError(f"{opt}: no axis named {v!r} (axes: {', '.join(names) or 'none'})")
    n = len(axes)
    if n == 0:
        return None, None, []
    if n == 1:
        x = names.index(options.x_axis) if options.x_axis else 0
        if options.y_axis:
            return None, names.index(options.y_axis), []
        return x, None, []
    x = names.index(options.x_axis) if options.x_axis else None
    y = names.index(options.y_axis) if options.y_axis else None
    free = [i for i in range(n) if i not in (x, y)]
    if x is None:
        x = free.pop()
    if y is None:
        y = free.pop()
    return x, y, free


def _normalize_sizes(cell_size: Size | Sequence[Size] | Mapping[Any, Size]) -> Size:
    if isinstance(cell_size, Mapping):
        sizes = list(cell_size.values())
    elif len(cell_size) == 2 and all(isinstance(v, int) for v in cell_size):  # type: ignore[arg-type]
        sizes = [cell_size]  # type: ignore[list-item]
    else:
        sizes = list(cell_size)  # type: ignore[arg-type]
    if not sizes:
        raise ValueError("cell_size: at least one (width, height) is required")
    w = h = 0
    for s in sizes:
        if len(s) != 2 or not all(isinstance(v, int) and v > 0 for v in s):
            raise ValueError(f"cell_size: expected positive (width, height) integers, got {s!r}")
        w, h = max(w, s[0]), max(h, s[1])
    return w, h


def _scaled(slot: Size, factor: float, minimum: int) -> Size:
    w, h = slot
    f = max(factor, minimum / max(w, h)) if max(w, h) > minimum else 1.0
    f = min(f, 1.0)
    return max(1, int(w * f)), max(1, int(h * f))


def _fits(page: PagePlan, options: GridOptions) -> bool:
    side = FORMAT_SIDE_LIMITS[options.format]
    return page.width <= side and page.height <= side and page.megapixels <= options.max_megapixels


def _overflow_factor(page: PagePlan, options: GridOptions) -> float:
    side = FORMAT_SIDE_LIMITS[options.format]
    f = min(1.0, side / page.width, side / page.height, math.sqrt(options.max_megapixels / max(page.megapixels, 1e-9)))
    return f


class _Layout:
    """Builds pages for one sweep at a given slot size; ``split`` chunks rows/columns/items per page."""

    def __init__(self, axes: tuple[GridAxis, ...], mode: str, count: int, options: GridOptions,
                 linear_coords: Mapping[int, tuple[int, ...]] | None = None) -> None:
        self.axes = axes
        self.linear_coords = linear_coords or {}
        self.mode = mode
        self.count = count
        self.options = options
        self.labels = [_axis_labels(a, options) for a in axes]
        if mode == "matrix":
            self.x, self.y, self.outer = _resolve_axes(axes, options)
        else:
            self.x, self.y, self.outer = None, None, []
        self._items: list[tuple[Label, int, tuple[int, ...]]] | None = None
        self.kind = "strip" if (mode != "matrix" or self.y is None or self.x is None) else "table"
        if self.kind == "table" and self.outer and options.multi_axis == "subgrids":
            self.kind = "subgrids"

    # --- helpers
    def _coords(self, fixed: Mapping[int, int]) -> tuple[int, ...]:
        return tuple(fixed.get(i, 0) for i in range(len(self.axes)))

    def _index(self, coords: tuple[int, ...]) -> int:
        idx = 0
        for a, c in zip(self.axes, coords):
            idx = idx * len(a.values) + c
        return idx

    def _outer_combos(self) -> list[tuple[int, ...]]:
        return list(itertools.product(*(range(len(self.axes[i].values)) for i in self.outer)))

    def _outer_title(self, combo: tuple[int, ...], legend: _Legend, refs: set[int]) -> str:
        parts = []
        for i, c in zip(self.outer, combo):
            value = self.labels[i][c]
            if len(value) > self.options.legend_min_chars:  # a prompt as an outer axis: title shows "[n]"
                n = legend.ref(self.axes[i].name, value)
                refs.add(n)
                value = f"[{n}]"
            parts.append(f"{self.axes[i].name}: {value}")
        return " · ".join(parts)

    def _strip_items(self) -> list[tuple[Label, int, tuple[int, ...]]]:
        if self._items is None:
            self._items = self._make_strip_items()
        return self._items

    def _make_strip_items(self) -> list[tuple[Label, int, tuple[int, ...]]]:
        items: list[tuple[Label, int, tuple[int, ...]]] = []
        if self.mode == "matrix":
            ax = self.x if self.x is not None else self.y
            assert ax is not None
            for v in range(len(self.axes[ax].values)):
                coords = self._coords({ax: v})
                items.append(([(self.axes[ax].name, self.labels[ax][v])], self._index(coords), coords))
        else:
            for k in range(self.count):
                known = self.linear_coords.get(k)
                if known is not None and len(known) == len(self.axes):
                    coords = known  # the engine's own coords (whatever its cycling rule)
                else:
                    coords = tuple(k % max(1, len(a.values)) for a in self.axes)
                label = [(a.name, self.labels[i][coords[i]]) for i, a in enumerate(self.axes) if a.values]
                items.append((label, k, coords))
        return items

    def _table(self, slot: Size, legend: _Legend, fixed: Mapping[int, int], rows: range, cols: range) -> _Block:
        assert self.x is not None and self.y is not None
        x, y = self.x, self.y
        col_labels = [[(self.axes[x].name, self.labels[x][j])] for j in cols]
        row_labels = [[(self.axes[y].name, self.labels[y][i])] for i in rows]

        def key(i: int, j: int) -> tuple[int, tuple[int, ...]]:
            coords = self._coords({**fixed, y: rows[i], x: cols[j]})
            return self._index(coords), coords

        return _table_block(row_labels, col_labels, key, slot, self.options, legend, self.axes[x].name, self.axes[y].name)

    # --- pages
    def pages(self, slot: Size, legend: _Legend, *, rows_per_page: int | None = None,
              cols_per_page: int | None = None, items_per_page: int | None = None,
              force_pages: bool = False, first_only: bool = False) -> list[PagePlan]:
        opts = self.options
        title = opts.title or ""
        pages: list[PagePlan] = []
        if self.kind == "strip":
            items = self._strip_items()
            per = items_per_page or len(items) or 1
            cols = opts.wrap_columns or _auto_columns(min(per, len(items)), slot)
            chunks = [items[i : i + per] for i in range(0, len(items), per)] or [[]]
            for n, chunk in enumerate(chunks):
                t = title
                if len(chunks) > 1:
                    t = _join(title, f"cells {n * per + 1}–{n * per + len(chunk)} of {len(items)}")
                block = _strip_block(chunk, slot, opts, legend, min(cols, per))
                pages.append(_page_from_block(block, len(pages) + 1, t, opts, legend))
                if first_only:  # the first page is a full one: enough to test a page size
                    break
            return pages
        assert self.x is not None and self.y is not None
        nr, nc = len(self.axes[self.y].values), len(self.axes[self.x].values)
        rpp, cpp = rows_per_page or nr, cols_per_page or nc
        row_chunks = [range(i, min(nr, i + rpp)) for i in range(0, nr, rpp)]
        col_chunks = [range(j, min(nc, j + cpp)) for j in range(0, nc, cpp)]
        split_note = len(row_chunks) * len(col_chunks) > 1
        if self.kind == "subgrids" and not force_pages:
            blocks = []
            for combo in self._outer_combos():
                fixed = dict(zip(self.outer, combo))
                tref: set[int] = set()
                otitle = self._outer_title(combo, legend, tref)
                table = self._table(slot, legend, fixed, range(nr), range(nc))
                table.legend_refs |= tref
                blocks.append((otitle, table))
            body = self._subgrid_block(blocks)
            return [_page_from_block(body, 1, title, opts, legend)]
        for combo in self._outer_combos():
            fixed = dict(zip(self.outer, combo))
            for rc in row_chunks:
                for cc in col_chunks:
                    tref: set[int] = set()
                    t = _join(title, self._outer_title(combo, legend, tref))
                    if split_note:
                        t = _join(t, f"{self.axes[self.y].name} {rc.start + 1}–{rc.stop} of {nr}, "
                                     f"{self.axes[self.x].name} {cc.start + 1}–{cc.stop} of {nc}")
                    block = self._table(slot, legend, fixed, rc, cc)
                    block.legend_refs |= tref
                    pages.append(_page_from_block(block, len(pages) + 1, t, opts, legend))
        return pages

    def _subgrid_block(self, blocks: list[tuple[str, _Block]]) -> _Block:
        opts = self.options
        bw = max(b.w for _, b in blocks)
        bh = max(b.h for _, b in blocks)
        gap = max(3 * opts.cell_gap, opts.label_font_size)
        pad = opts.pad
        title_fit = [_fit_title(t, bw - 2 * pad, opts) for t, _ in blocks]
        th = max(len(lines) * _line_height(size) for lines, size in title_fit) + 2 * pad
        if len(self.outer) == 1:
            cols = opts.wrap_columns or _auto_columns(len(blocks), (bw, bh + th))
        else:
            cols = len(self.axes[self.outer[-1]].values)
        slots: list[CellSlot] = []
        texts: list[TextBlock] = []
        refs: set[int] = set()
        for k, ((_, b), (lines, size)) in enumerate(zip(blocks, title_fit)):
            r, c = divmod(k, cols)
            x, y = c * (bw + gap), r * (bh + th + gap)
            texts.append(TextBlock(x, y, bw, th, lines, size, role="subgrid_title"))
            mb = b.moved(x, y + th)
            slots.extend(mb.slots)
            texts.extend(mb.texts)
            refs |= b.legend_refs
        ncols = min(cols, len(blocks))
        nrows = math.ceil(len(blocks) / cols)
        return _Block(ncols * bw + (ncols - 1) * gap, nrows * (bh + th) + (nrows - 1) * gap, slots, texts, refs)


def _join(a: str, b: str) -> str:
    return f"{a} — {b}" if a and b else (a or b)


def _count_of(axes: Sequence[GridAxis], mode: str, cells_or_count: int | Sequence[Any]) -> int:
    if isinstance(cells_or_count, int):
        return cells_or_count
    return len(cells_or_count)


def plan_grid(
    axes: Sequence[Any],
    cells_or_count: int | Sequence[Any],
    cell_size: Size | Sequence[Size] | Mapping[Any, Size],
    options: GridOptions | None = None,
    *,
    mode: str = "matrix",
) -> GridPlan:
    """Compute the geometry of every grid page without opening an image.

    Args:
        axes: ``GridAxis`` objects or dicts/objects with ``name``, ``values``, ``type``.
        cells_or_count: the cells (only their number matters for linear sweeps) or the cell count.
        cell_size: ``(width, height)`` of every image, or one size per cell; slots are max w × max h.
        options: layout options (defaults if ``None``).
        mode: ``"matrix"`` (cartesian, first axis slowest) or ``"linear"`` (zipped).

    Returns:
        A ``GridPlan``; ``plan.warnings`` explains any downscale or page split done to respect the
        format limits (JPEG 65500 px a side, WebP 16383 px, ``max_megapixels`` for every format).

    Raises:
        ValueError: unknown mode, bad sizes, or an ``x_axis``/``y_axis`` that names no axis.
    """
    options = options or GridOptions()
    if mode not in ("matrix", "linear"):
        raise ValueError(f"mode: must be 'matrix' or 'linear', got {mode!r}")
    gaxes = tuple(_as_axis(a) for a in axes)
    source = _normalize_sizes(cell_size)
    count = _count_of(gaxes, mode, cells_or_count)
    if mode == "matrix":
        count = math.prod(len(a.values) for a in gaxes) if gaxes else count
    slot = source
    warnings: list[str] = []
    if options.cell_max_size is not None and max(slot) > options.cell_max_size:
        f = options.cell_max_size / max(slot)
        slot = (max(1, int(slot[0] * f)), max(1, int(slot[1] * f)))
    base = slot
    if options.images_only:
        return GridPlan((), mode, gaxes, options, slot, source, (), (), "none")
    linear_coords: dict[int, tuple[int, ...]] = {}
    if mode == "linear" and not isinstance(cells_or_count, int):
        for c in cells_or_count:
            cell = _as_cell(c, gaxes)
            if len(cell.coords) == len(gaxes) and all(
                0 <= i < len(a.values) for i, a in zip(cell.coords, gaxes)
            ):
                linear_coords[cell.index] = cell.coords
    layout = _Layout(gaxes, mode, count, options, linear_coords)

    def build(s: Size, **kw: Any) -> tuple[list[PagePlan], _Legend]:
        lg = _Legend()
        return layout.pages(s, lg, **kw), lg

    limit_desc = _limit_desc(options)
    split = False
    layout_name = layout.kind

    def fit_by_downscale(kw: dict[str, Any]) -> tuple[list[PagePlan], _Legend, Size, bool]:
        s = base
        pgs, lg = build(s, **kw)
        if options.oversize == "downscale":
            for _ in range(40):
                bad = [p for p in pgs if not _fits(p, options)]
                if not bad:
                    break
                new = _scaled(s, min(_overflow_factor(p, options) for p in bad) * 0.98, options.min_cell_size)
                if new == s:
                    break
                s = new
                pgs, lg = build(s, **kw)
        return pgs, lg, s, all(_fits(p, options) for p in pgs)

    pages, legend = build(base)
    if not all(_fits(p, options) for p in pages):
        worst = max(pages, key=lambda p: p.megapixels)
        over = f"grid would be {worst.width}×{worst.height} px, over the {limit_desc}"
        kw: dict[str, Any] = {}
        pages, legend, slot, ok = fit_by_downscale(kw)
        if not ok and layout.kind == "subgrids":
            # A grid of grids that cannot fit becomes one page per outer combination, then downscale again.
            kw = {"force_pages": True}
            layout_name = "pages"
            over += "; sub-grids placed one per page"
            pages, legend, slot, ok = fit_by_downscale(kw)
        if ok:
            if slot != base:
                pct = round(100 * slot[0] / base[0])
                warnings.append(f"{over}; cells downscaled to {slot[0]}×{slot[1]} px ({pct}%)")
            else:
                warnings.append(over)
        else:
            split = True
            pages, legend = _split_pages(layout, slot, options, kw, build)
            msg = f"{over}; split into {len(pages)} pages"
            if slot != base:
                msg += f" with cells downscaled to {slot[0]}×{slot[1]} px"
            warnings.append(msg)
            if not all(_fits(p, options) for p in pages):
                warnings.append(
                    f"even one cell per page exceeds the {limit_desc}; lower cell_max_size or choose PNG"
                )
    grid_pages = list(pages)
    if len(grid_pages) > 1 and options.overview:
        ov = _overview_page(grid_pages, options)
        if ov is not None:
            pages = grid_pages + [ov]
    logger.debug("grid plan: %d page(s), slot %s (source %s)", len(pages), slot, source)
    return GridPlan(
        tuple(pages), mode, gaxes, options, slot, source, tuple(warnings),
        tuple(legend.items(options.legend_max_chars)), layout_name, split,
    )


def _limit_desc(options: GridOptions) -> str:
    if options.format == "png":
        return f"{options.max_megapixels:g} MP budget (max_megapixels)"
    side = FORMAT_SIDE_LIMITS[options.format]
    return f"{options.format.upper()} limit of {side} px a side / {options.max_megapixels:g} MP budget"


def _split_pages(
    layout: _Layout,
    slot: Size,
    options: GridOptions,
    kw: dict[str, Any],
    build: Callable[..., tuple[list[PagePlan], _Legend]],
) -> tuple[list[PagePlan], _Legend]:
    """Shrink rows/columns (or items) per page until every page fits."""
    if layout.kind == "strip":
        n = max(1, len(layout._strip_items()))
        lo, hi = 1, n  # largest items-per-page whose first page fits (binary search: builds are not free)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            pgs, _ = build(slot, items_per_page=mid, first_only=True, **kw)
            if all(_fits(p, options) for p in pgs):
                lo = mid
            else:
                hi = mid - 1
        pages, legend = build(slot, items_per_page=lo, **kw)
        # Another page may carry a longer legend; shrink until every page fits.
        while lo > 1 and not all(_fits(p, options) for p in pages):
            lo = max(1, lo * 9 // 10)
            pages, legend = build(slot, items_per_page=lo, **kw)
        return pages, legend
    assert layout.x is not None and layout.y is not None
    nr, nc = len(layout.axes[layout.y].values), len(layout.axes[layout.x].values)
    rpp, cpp = nr, nc
    pages, legend = build(slot, rows_per_page=rpp, cols_per_page=cpp, **kw)
    for _ in range(200):
        bad = [p for p in pages if not _fits(p, options)]
        if not bad:
            break
        p = bad[0]
        side = FORMAT_SIDE_LIMITS[options.format]
        too_wide = p.width > side or (p.width >= p.height and p.megapixels > options.max_megapixels)
        if too_wide and cpp > 1:
            cpp = max(1, min(cpp - 1, int(cpp * _overflow_factor(p, options))))
        elif rpp > 1:
            rpp = max(1, min(rpp - 1, int(rpp * _overflow_factor(p, options))))
        elif cpp > 1:
            cpp = max(1, min(cpp - 1, int(cpp * _overflow_factor(p, options))))
        else:
            break
        pages, legend = build(slot, rows_per_page=rpp, cols_per_page=cpp, **kw)
    return pages, legend


def _overview_page(pages: Sequence[PagePlan], options: GridOptions) -> PagePlan | None:
    """A contact sheet of every page (small thumbnails with the page titles)."""
    t = options.overview_thumb_size
    pw = max(p.width for p in pages)
    ph = max(p.height for p in pages)
    f = min(1.0, t / max(pw, ph))
    slot = (max(1, int(pw * f)), max(1, int(ph * f)))
    items = [([("", p.title or f"page {p.number}")], p.number, ()) for p in pages]
    small = replace(options, label_font_size=max(options.min_font_size, min(options.label_font_size, 20)))
    legend = _Legend()
    block = _strip_block(items, slot, small, legend, options.wrap_columns or _auto_columns(len(items), slot))
    page = _page_from_block(block, len(pages) + 1, _join(options.title or "", f"overview of {len(pages)} pages"), small, legend, kind="overview")
    if not _fits(page, options):
        logger.warning("overview page would exceed the size limit; skipped")
        return None
    return page


def check_grid_size(
    axes: Sequence[Any],
    *,
    mode: str = "matrix",
    image_size: Size | Sequence[Size] | Mapping[Any, Size],
    options: GridOptions | None = None,
    count: int | None = None,
) -> GridSizeReport:
    """Queue-time size check: final grid size, pages, downscale factor and human-readable warnings.

    Args:
        axes: the sweep axes (``GridAxis`` or dicts).
        mode: ``"matrix"`` or ``"linear"``.
        image_size: ``(width, height)`` from the prompt, or per-cell sizes when a size axis exists.
        options: grid options (format and ``max_megapixels`` decide the limits).
        count: cell count for linear sweeps (defaults to the longest axis).
    """
    options = options or GridOptions()
    gaxes = tuple(_as_axis(a) for a in axes)
    n = count if count is not None else (max((len(a.values) for a in gaxes), default=0) if mode == "linear" else 0)
    plan = plan_grid(gaxes, n, image_size, options, mode=mode)
    if options.images_only:
        return GridSizeReport(0, 0, 0, 1.0, ())
    return GridSizeReport(plan.width, plan.height, len(plan.grid_pages), round(plan.scale, 4), plan.warnings)


# --------------------------------------------------------------------------------------- composition
def _draw_text(img: Image.Image, draw: ImageDraw.ImageDraw, t: TextBlock, color: tuple[int, int, int]) -> None:
    font = _font(t.font_size)
    lh = _line_height(t.font_size)
    if t.rotate:
        # Render horizontally into a mask, rotate, paste colour through it: Pillow has no vertical text.
        length, thick = t.h, t.w
        mask = Image.new("L", (max(1, length), max(1, thick)), 0)
        md = ImageDraw.Draw(mask)
        total = len(t.lines) * lh
        y0 = (thick - total) // 2
        for k, line in enumerate(t.lines):
            md.text((length / 2, y0 + k * lh), line, font=font, fill=255, anchor="ma")
        mask = mask.rotate(90, expand=True)
        img.paste(color, (t.x, t.y, t.x + mask.width, t.y + mask.height), mask)
        return
    total = len(t.lines) * lh
    y = t.y + max(0, (t.h - total) // 2)
    for k, line in enumerate(t.lines):
        if t.align == "left":
            draw.text((t.x, y + k * lh), line, font=font, fill=color, anchor="la")
        else:
            draw.text((t.x + t.w / 2, y + k * lh), line, font=font, fill=color, anchor="ma")


def _placeholder(slot: CellSlot, reason: str, error: str | None, options: GridOptions) -> Image.Image:
    """A neutral tile saying why the cell has no image."""
    colour = PLACEHOLDER_COLORS.get(reason, PLACEHOLDER_COLORS["missing"])
    tile = Image.new("RGB", (slot.w, slot.h), colour)
    draw = ImageDraw.Draw(tile)
    size = max(options.min_font_size, min(options.label_font_size, slot.w // 8))
    text = _STATUS_TEXT.get(reason, reason)
    lines = wrap_text(text, slot.w - 8, size)
    small = max(options.min_font_size * 3 // 4, 6)
    err_lines: list[str] = []
    if error:
        short = " ".join(str(error).split())
        if len(short) > 160:
            short = short[:157] + "…"
        room = max(0, (slot.h - len(lines) * _line_height(size)) // _line_height(small) - 1)
        err_lines = wrap_text(short, slot.w - 8, small)[: min(4, room)]
    total = len(lines) * _line_height(size) + len(err_lines) * _line_height(small)
    y = max(0, (slot.h - total) // 2)
    grey = (90, 90, 90)
    for line in lines:
        draw.text((slot.w / 2, y), line, font=_font(size), fill=grey, anchor="ma")
        y += _line_height(size)
    for line in err_lines:
        draw.text((slot.w / 2, y), line, font=_font(small), fill=grey, anchor="ma")
        y += _line_height(small)
    return tile


def _load_fitted(path: str, box: Size, background: tuple[int, int, int]) -> Image.Image:
    """Decode one cell image scaled to fit ``box`` (never upscaled), as RGB."""
    bw, bh = box
    im = Image.open(path)
    out: Image.Image | None = None
    try:
        if im.format == "JPEG":
            im.draft("RGB", (bw, bh))  # DCT-domain downscale: decodes at 1/2, 1/4 or 1/8 size
        w, h = im.size
        f = min(1.0, bw / w, bh / h)
        target = (max(1, round(w * f)), max(1, round(h * f)))
        img: Image.Image = im
        if img.mode not in ("RGB", "RGBA", "L", "LA"):
            img = img.convert("RGBA" if "transparency" in img.info or img.mode in ("P", "PA") else "RGB")
        if target != (w, h):
            k = int(min(w / target[0], h / target[1]))
            if k >= 2:
                img = img.reduce(k)  # cheap box reduction first, then a quality resample
            img = img.resize(target, Image.Resampling.LANCZOS)
        else:
            img.load()  # single-frame files release their file handle here
        if img.mode in ("RGBA", "LA"):
            out = Image.new("RGB", img.size, background)
            out.paste(img, (0, 0), img.getchannel("A"))
        elif img.mode != "RGB":
            out = img.convert("RGB")
        else:
            out = img  # no copy: the decoded file image itself is the tile
        return out
    finally:
        if out is not im:
            im.close()


def _cell_reason(cell: GridCell | None) -> str | None:
    if cell is None:
        return "missing"
    if cell.status in ("failed", "cancelled", "queued", "running"):
        return cell.status
    if not cell.files:
        return "missing"
    return None


def _sweep_bytes(sweep: Mapping[str, Any] | None) -> str | None:
    if sweep is None:
        return None
    return json.dumps(sweep, ensure_ascii=False, separators=(",", ":"), default=str)


def _save(img: Image.Image, path: Path, options: GridOptions, sweep_json: str | None) -> None:
    fmt = options.format
    tmp = path.with_name(path.name + ".part")
    sidecar = False
    if fmt == "png":
        info = PngInfo()
        if sweep_json is not None:
            info.add_itxt("wi_sweep", sweep_json)
        img.save(tmp, "PNG", compress_level=options.png_compress_level, pnginfo=info)
    else:
        exif = Image.Exif()
        if sweep_json is not None:
            ascii_json = json.dumps(json.loads(sweep_json), ensure_ascii=True, separators=(",", ":"))
            if len(ascii_json) < 60_000:  # JPEG APP1 segments top out at 64 KiB
                # EXIF UserComment: 8-byte charset header then the text.
                exif.get_ifd(0x8769)[0x9286] = b"ASCII\x00\x00\x00" + ascii_json.encode("ascii")
            else:
                sidecar = True
        kwargs: dict[str, Any] = {"quality": options.quality, "exif": exif.tobytes()}
        if fmt == "jpeg":
            img.save(tmp, "JPEG", optimize=False, **kwargs)
        else:
            img.save(tmp, "WEBP", method=4, **kwargs)
    os.replace(tmp, path)
    if sidecar and sweep_json is not None:
        path.with_suffix(".json").write_text(sweep_json, encoding="utf-8")


def compose_grid(
    plan: GridPlan,
    cells: Iterable[Any],
    out_dir: str | os.PathLike[str],
    basename: str,
    *,
    sweep: Mapping[str, Any] | None = None,
    workers: int = 2,
) -> list[GridPage]:
    """Draw every page of ``plan`` from the cells' saved files and write them to ``out_dir``.

    Cells are decoded one at a time (``workers`` threads read ahead a few cells so PNG decoding overlaps
    pasting); peak memory is about one page raster plus ``workers + 1`` decoded cells. Failed, cancelled,
    missing and unreadable cells get a placeholder tile saying why.

    Args:
        plan: from ``plan_grid``; its options choose format, colours and compression.
        cells: ``GridCell`` objects or status-dict cells (``files`` must be absolute paths).
        out_dir: folder to write into (created if missing).
        basename: file name stem; pages get ``_p01``… suffixes and the contact sheet ``_overview``.
        sweep: the sweep definition embedded in each image (PNG iTXt ``wi_sweep``; EXIF UserComment for
            JPEG/WebP, or a ``.json`` sidecar when too big for EXIF).
        workers: decode threads (>= 1).

    Returns:
        The pages written, grid pages first then the overview; empty when ``images_only``.
    """
    options = plan.options
    if options.images_only or not plan.pages:
        return []
    if workers < 1:
        raise ValueError(f"workers: must be >= 1, got {workers!r}")
    if not basename or os.sep in basename or (os.altsep and os.altsep in basename) or basename in (".", ".."):
        raise ValueError(f"basename: must be a plain file name stem, got {basename!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cell_list = [_as_cell(c, plan.axes) for c in cells]
    by_key: dict[Any, GridCell] = {}
    for c in cell_list:
        by_key[c.coords if plan.mode == "matrix" else c.index] = c
    ext = _FORMAT_EXT[options.format]
    bg, fg = options.background_rgb, options.text_rgb
    grid_pages = plan.grid_pages
    multi = len(grid_pages) > 1
    written: list[GridPage] = []
    thumbs: dict[int, Image.Image] = {}
    sweep_json = _sweep_bytes(sweep)
    overview = next((p for p in plan.pages if p.kind == "overview"), None)
    thumb_box = (overview.slots[0].w, overview.slots[0].h) if overview and overview.slots else None

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wi-grid") as pool:
        for page in grid_pages:
            canvas = Image.new("RGB", (page.width, page.height), bg)
            draw = ImageDraw.Draw(canvas)
            for t in page.texts:
                _draw_text(canvas, draw, t, fg)
            for slot, tile in _tiles(page.slots, by_key, plan.mode, options, pool, workers):
                ox = slot.x + (slot.w - tile.width) // 2
                oy = slot.y + (slot.h - tile.height) // 2
                canvas.paste(tile, (ox, oy))
                tile.close()
            name = f"{basename}_p{page.number:02d}{ext}" if multi else f"{basename}{ext}"
            path = out / name
            _save(canvas, path, options, sweep_json)
            if thumb_box is not None:
                thumbs[page.number] = _thumbnail(canvas, thumb_box)
            canvas.close()
            written.append(GridPage(str(path), page.number, page.title, page.width, page.height))
            logger.info("grid page %d written: %s (%d×%d)", page.number, path, page.width, page.height)
    if overview is not None:
        canvas = Image.new("RGB", (overview.width, overview.height), bg)
        draw = ImageDraw.Draw(canvas)
        for t in overview.texts:
            _draw_text(canvas, draw, t, fg)
        for slot in overview.slots:
            th = thumbs.get(slot.index)
            if th is not None:
                canvas.paste(th, (slot.x + (slot.w - th.width) // 2, slot.y + (slot.h - th.height) // 2))
        path = out / f"{basename}_overview{ext}"
        _save(canvas, path, options, sweep_json)
        written.append(GridPage(str(path), overview.number, overview.title, overview.width, overview.height, "overview"))
    return written


def _thumbnail(canvas: Image.Image, box: Size) -> Image.Image:
    k = int(min(canvas.width / box[0], canvas.height / box[1]))
    small = canvas.reduce(k) if k >= 2 else canvas.copy()
    small.thumbnail(box, Image.Resampling.LANCZOS)
    return small


def _tiles(
    slots: Sequence[CellSlot],
    by_key: Mapping[Any, GridCell],
    mode: str,
    options: GridOptions,
    pool: concurrent.futures.ThreadPoolExecutor,
    workers: int,
) -> Iterable[tuple[CellSlot, Image.Image]]:
    """Yield (slot, tile) in slot order, decoding at most ``workers + 1`` cells ahead."""
    bg = options.background_rgb

    def job(slot: CellSlot) -> Image.Image | tuple[str, str | None]:
        # Worker threads only decode; placeholders (text drawing with the shared FreeType faces) are
        # drawn by the consuming thread.
        cell = by_key.get(slot.coords if mode == "matrix" else slot.index)
        reason = _cell_reason(cell)
        if reason is None:
            assert cell is not None
            try:
                return _load_fitted(cell.files[0], (slot.w, slot.h), bg)
            except (OSError, ValueError, Image.DecompressionBombError) as e:
                logger.warning("cell %d: cannot read %s: %s", cell.index, cell.files[0], e)
                return ("unreadable", str(e))
        return (reason, cell.error if cell else None)

    window = workers + 1
    pending: list[tuple[CellSlot, concurrent.futures.Future[Image.Image | tuple[str, str | None]]]] = []
    it = iter(slots)
    for slot in itertools.islice(it, window):
        pending.append((slot, pool.submit(job, slot)))
    while pending:
        slot, fut = pending.pop(0)
        res = fut.result()
        yield slot, (_placeholder(slot, res[0], res[1], options) if isinstance(res, tuple) else res)
        # Refill only after the consumer is done with the tile, so at most ``window`` tiles exist at once.
        nxt = next(it, None)
        if nxt is not None:
            pending.append((nxt, pool.submit(job, nxt)))
