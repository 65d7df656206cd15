"""Grid layout: the geometry records and how axes and cells become pages of slots and texts.

This module owns where things go: which axis runs across and which down (``resolve_axes``), header bands,
row headers, axis titles, strips for linear sweeps, grids of grids, page titles and the legend block. It
lays out one sweep at one given slot size; choosing that size, or splitting into pages, to respect the
format limits is the size policy's job (``sizing.py``). Planning never touches image files, so the same code
answers the queue-time question "will this grid fit?" and produces the geometry the compositor draws.

Plain Python over Pillow (text measurement only); must not import torch, ``comfy*``, ``server``, ``nodes``,
``folder_paths`` or aiohttp.
"""
from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .inputs import GridAxis, as_axis
from .labels import Label, Legend, axis_labels, band_height, fit_labels, label_paragraphs
from .options import GridOptions
from .text import fit_title, line_height, text_width, wrap_text

logger = logging.getLogger(__name__)

__all__ = [
    "CellSlot",
    "GridPage",
    "GridPlan",
    "GridSizeReport",
    "Layout",
    "PagePlan",
    "Size",
    "TextBlock",
    "axis_warnings",
    "resolve_axes",
]

Size = tuple[int, int]

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


@dataclass
class Block:
    """A laid-out rectangle of slots and texts with coordinates relative to its top-left corner."""

    w: int
    h: int
    slots: list[CellSlot]
    texts: list[TextBlock]
    legend_refs: set[int] = field(default_factory=set)

    def moved(self, dx: int, dy: int) -> Block:
        # Direct construction: dataclasses.replace dominated planning time for 10k-cell sweeps.
        return Block(
            self.w,
            self.h,
            [CellSlot(s.x + dx, s.y + dy, s.w, s.h, s.index, s.coords) for s in self.slots],
            [TextBlock(t.x + dx, t.y + dy, t.w, t.h, t.lines, t.font_size, t.align, t.rotate, t.role)
             for t in self.texts],
            set(self.legend_refs),
        )


def _fit_title(text: str, width: int, options: GridOptions) -> tuple[tuple[str, ...], int]:
    return fit_title(text, width, max_size=options.label_font_size, min_size=options.min_font_size)


def _table_block(
    rows: Sequence[Label],
    cols: Sequence[Label],
    key: Callable[[int, int], tuple[int, tuple[int, ...]]],
    slot: Size,
    options: GridOptions,
    legend: Legend,
    x_title: str | None,
    y_title: str | None,
) -> Block:
    """Column headers across the top, row headers down the left, cells in between."""
    sw, sh = slot
    gap, pad, fs = options.cell_gap, options.pad, options.label_font_size
    texts: list[TextBlock] = []
    refs: set[int] = set()

    col_fit, used = fit_labels(cols, sw - 2 * pad, options.max_label_lines, options, legend)
    refs |= used
    header_h = band_height(col_fit, pad) if cols else 0

    # Row header width: natural width at full size, bounded to keep cells dominant.
    row_w = 0
    if rows:
        natural = max(text_width(p, fs) for r in rows for p in label_paragraphs(r, {})) + 2 * pad
        row_w = int(min(max(natural, 4 * fs), max(sw, 8 * fs)))
        row_lines = max(options.max_label_lines, max(1, sh // line_height(options.min_font_size)))
        row_fit, used = fit_labels(rows, row_w - 2 * pad, row_lines, options, legend)
        refs |= used
        row_w = max(row_w, 1)
    else:
        row_fit = []

    x_title_h = 0
    y_title_w = 0
    if options.axis_titles and x_title:
        x_title_h = line_height(fs) + 2 * pad
    if options.axis_titles and y_title:
        y_title_w = line_height(fs) + 2 * pad
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
    return Block(left + grid_w, top + grid_h, slots, texts, refs)


def strip_block(
    items: Sequence[tuple[Label, int, tuple[int, ...]]],
    slot: Size,
    options: GridOptions,
    legend: Legend,
    columns: int,
) -> Block:
    """Cells in reading order, wrapping every ``columns`` cells, each with its own label above."""
    sw, sh = slot
    gap, pad = options.cell_gap, options.pad
    fitted, refs = fit_labels([lab for lab, _, _ in items], sw - 2 * pad, max(options.max_label_lines, max(len(lab) for lab, _, _ in items) if items else 1), options, legend)
    label_h = band_height(fitted, pad) if any(lab for lab, _, _ in items) else 0
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
    return Block(w, h, slots, texts, set(refs))


def auto_columns(n: int, slot: Size) -> int:
    if n <= 8:
        return max(1, n)
    sw, sh = slot
    # Aim for a roughly 16:10 page.
    return max(1, min(n, round(math.sqrt(n * 1.6 * sh / max(1, sw)))))


def page_from_block(
    body: Block,
    number: int,
    title: str,
    options: GridOptions,
    legend: Legend,
    kind: Literal["grid", "overview"] = "grid",
) -> PagePlan:
    """Add margin, page title and the legend entries this page uses."""
    m, pad = options.margin, options.pad
    texts: list[TextBlock] = []
    y = m
    content_w = max(body.w, 1)
    if title:
        lines, size = _fit_title(title, content_w - 2 * pad, options)
        h = len(lines) * line_height(size) + 2 * pad
        texts.append(TextBlock(m, y, content_w, h, lines, size, role="page_title"))
        y += h
    moved = body.moved(m, y)
    texts.extend(moved.texts)
    y += body.h
    entries = [(n, text) for n, text in legend.items(options.legend_max_chars) if n in body.legend_refs]
    if entries:
        size = max(options.min_font_size, int(round(options.label_font_size * 0.75)))
        lh = line_height(size)
        y += options.pad * 2
        width = max(content_w, 40 * size) if content_w < 20 * size else content_w
        for n, text in entries:
            legend_lines = wrap_text(f"[{n}] {text}", width - 2 * pad, size)
            h = len(legend_lines) * lh
            texts.append(TextBlock(m, y, width, h, tuple(legend_lines), size, align="left", role="legend"))
            y += h + pad
        content_w = max(content_w, width)
    return PagePlan(number, title, content_w + 2 * m, y + m, tuple(moved.slots), tuple(texts), kind)


# ------------------------------------------------------------------------------------------ planning
def resolve_axes(
    axes: Sequence[GridAxis], options: GridOptions
) -> tuple[int | None, int | None, list[int], tuple[str, ...]]:
    """Indices of the X axis, Y axis and outer axes (outermost first) for a matrix sweep, plus warnings.

    An ``x_axis``/``y_axis`` that names no axis (typically a parameter skipped for a bad value, which is
    then not an axis of the sweep) is placed automatically instead, with a warning saying so: a grid of the
    cells that ran is worth more than an error at the end of the sweep.
    """
    names = [a.name for a in axes]
    chosen: dict[str, int | None] = {"x_axis": None, "y_axis": None}
    warnings: list[str] = []
    for opt in ("x_axis", "y_axis"):
        v = getattr(options, opt)
        if v is None:
            continue
        if v in names:
            chosen[opt] = names.index(v)
        else:
            warnings.append(
                f"grid {opt} {v!r} names no parameter of this sweep (parameters: {', '.join(names) or 'none'}); "
                "placed automatically"
            )
    x, y = chosen["x_axis"], chosen["y_axis"]
    n = len(axes)
    if n == 0:
        return None, None, [], tuple(warnings)
    if n == 1:
        if y is not None:
            return None, y, [], tuple(warnings)
        return 0, None, [], tuple(warnings)
    free = [i for i in range(n) if i not in (x, y)]
    if x is None:
        x = free.pop()
    if y is None:
        y = free.pop()
    return x, y, free, tuple(warnings)


def axis_warnings(axes: Sequence[Any], options: GridOptions, *, mode: str = "matrix") -> tuple[str, ...]:
    """What :func:`resolve_axes` would warn about, without laying anything out (the queue-time check)."""
    if mode != "matrix":
        return ()
    return resolve_axes(tuple(as_axis(a) for a in axes), options)[3]


class Layout:
    """Builds pages for one sweep at a given slot size; ``split`` chunks rows/columns/items per page."""

    def __init__(self, axes: tuple[GridAxis, ...], mode: str, count: int, options: GridOptions,
                 linear_coords: Mapping[int, tuple[int, ...]] | None = None) -> None:
        self.axes = axes
        self.linear_coords = linear_coords or {}
        self.mode = mode
        self.count = count
        self.options = options
        self.labels = [axis_labels(a, options) for a in axes]
        self.x: int | None = None
        self.y: int | None = None
        self.outer: list[int] = []
        self.warnings: tuple[str, ...] = ()
        if mode == "matrix":
            self.x, self.y, self.outer, self.warnings = resolve_axes(axes, options)
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

    def _outer_title(self, combo: tuple[int, ...], legend: Legend, refs: set[int]) -> str:
        parts = []
        for i, c in zip(self.outer, combo):
            value = self.labels[i][c]
            if len(value) > self.options.legend_min_chars:  # a prompt as an outer axis: title shows "[n]"
                n = legend.ref(self.axes[i].name, value)
                refs.add(n)
                value = f"[{n}]"
            parts.append(f"{self.axes[i].name}: {value}")
        return " · ".join(parts)

    def strip_items(self) -> list[tuple[Label, int, tuple[int, ...]]]:
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

    def _table(self, slot: Size, legend: Legend, fixed: Mapping[int, int], rows: range, cols: range) -> Block:
        assert self.x is not None and self.y is not None
        x, y = self.x, self.y
        col_labels = [[(self.axes[x].name, self.labels[x][j])] for j in cols]
        row_labels = [[(self.axes[y].name, self.labels[y][i])] for i in rows]

        def key(i: int, j: int) -> tuple[int, tuple[int, ...]]:
            coords = self._coords({**fixed, y: rows[i], x: cols[j]})
            return self._index(coords), coords

        return _table_block(row_labels, col_labels, key, slot, self.options, legend, self.axes[x].name, self.axes[y].name)

    # --- pages
    def pages(self, slot: Size, legend: Legend, *, rows_per_page: int | None = None,
              cols_per_page: int | None = None, items_per_page: int | None = None,
              force_pages: bool = False, first_only: bool = False) -> list[PagePlan]:
        opts = self.options
        title = opts.title or ""
        pages: list[PagePlan] = []
        if self.kind == "strip":
            items = self.strip_items()
            per = items_per_page or len(items) or 1
            cols = opts.wrap_columns or auto_columns(min(per, len(items)), slot)
            chunks = [items[i : i + per] for i in range(0, len(items), per)] or [[]]
            for n, chunk in enumerate(chunks):
                t = title
                if len(chunks) > 1:
                    t = join_titles(title, f"cells {n * per + 1}–{n * per + len(chunk)} of {len(items)}")
                block = strip_block(chunk, slot, opts, legend, min(cols, per))
                pages.append(page_from_block(block, len(pages) + 1, t, opts, legend))
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
            return [page_from_block(body, 1, title, opts, legend)]
        for combo in self._outer_combos():
            fixed = dict(zip(self.outer, combo))
            for rc in row_chunks:
                for cc in col_chunks:
                    tref = set()
                    t = join_titles(title, self._outer_title(combo, legend, tref))
                    if split_note:
                        t = join_titles(t, f"{self.axes[self.y].name} {rc.start + 1}–{rc.stop} of {nr}, "
                                     f"{self.axes[self.x].name} {cc.start + 1}–{cc.stop} of {nc}")
                    block = self._table(slot, legend, fixed, rc, cc)
                    block.legend_refs |= tref
                    pages.append(page_from_block(block, len(pages) + 1, t, opts, legend))
        return pages

    def _subgrid_block(self, blocks: list[tuple[str, Block]]) -> Block:
        opts = self.options
        bw = max(b.w for _, b in blocks)
        bh = max(b.h for _, b in blocks)
        gap = max(3 * opts.cell_gap, opts.label_font_size)
        pad = opts.pad
        title_fit = [_fit_title(t, bw - 2 * pad, opts) for t, _ in blocks]
        th = max(len(lines) * line_height(size) for lines, size in title_fit) + 2 * pad
        if len(self.outer) == 1:
            cols = opts.wrap_columns or auto_columns(len(blocks), (bw, bh + th))
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
        return Block(ncols * bw + (ncols - 1) * gap, nrows * (bh + th) + (nrows - 1) * gap, slots, texts, refs)


def join_titles(a: str, b: str) -> str:
    return f"{a} — {b}" if a and b else (a or b)


