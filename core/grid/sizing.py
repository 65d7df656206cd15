"""The size policy: what to do when a grid would exceed its format's limits, as ordered strategies.

This module owns the answer to "will this grid fit, and if not, what gives?". A page fits when both sides are
within the format's limit (JPEG 65,500 px, WebP 16,383 px) and its area within ``max_megapixels``. When the
grid laid out at the cells' own size does not fit, the strategies of :data:`STRATEGIES` are tried in order
until every page fits:

1. ``downscale_cells``: shrink the cell slots (not below ``min_cell_size``), when ``oversize`` is
   ``"downscale"``;
2. ``subgrids_as_pages``: a grid of grids becomes one page per outer combination, downscaled again;
3. ``split_into_pages``: fewer rows/columns (or strip items) per page.

Each step is reported in the plan's warnings, which the queue-time check (``check_grid_size``) returns before
anything runs.

Plain Python over Pillow (text measurement only); must not import torch, ``comfy*``, ``server``, ``nodes``,
``folder_paths`` or aiohttp.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .inputs import as_axis, as_cell
from .labels import Legend
from .layout import (
    GridPlan,
    GridSizeReport,
    Layout,
    PagePlan,
    Size,
    auto_columns,
    join_titles,
    page_from_block,
    strip_block,
)
from .options import FORMAT_SIDE_LIMITS, GridOptions

logger = logging.getLogger(__name__)

__all__ = ["STRATEGIES", "check_grid_size", "fits", "plan_grid"]

Build = Callable[..., tuple[list[PagePlan], Legend]]


def _normalize_sizes(cell_size: Size | Sequence[Size] | Mapping[Any, Size]) -> Size:
    if isinstance(cell_size, Mapping):
        sizes = list(cell_size.values())
    elif len(cell_size) == 2 and all(isinstance(v, int) for v in cell_size):
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


def fits(page: PagePlan, options: GridOptions) -> bool:
    side = FORMAT_SIDE_LIMITS[options.format]
    return page.width <= side and page.height <= side and page.megapixels <= options.max_megapixels


def _overflow_factor(page: PagePlan, options: GridOptions) -> float:
    side = FORMAT_SIDE_LIMITS[options.format]
    f = min(1.0, side / page.width, side / page.height, math.sqrt(options.max_megapixels / max(page.megapixels, 1e-9)))
    return f



def _limit_desc(options: GridOptions) -> str:
    if options.format == "png":
        return f"{options.max_megapixels:g} MP budget (max_megapixels)"
    side = FORMAT_SIDE_LIMITS[options.format]
    return f"{options.format.upper()} limit of {side} px a side / {options.max_megapixels:g} MP budget"


def _split_pages(
    layout: Layout,
    slot: Size,
    options: GridOptions,
    kw: dict[str, Any],
    build: Callable[..., tuple[list[PagePlan], Legend]],
) -> tuple[list[PagePlan], Legend]:
    """Shrink rows/columns (or items) per page until every page fits."""
    if layout.kind == "strip":
        n = max(1, len(layout.strip_items()))
        lo, hi = 1, n  # largest items-per-page whose first page fits (binary search: builds are not free)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            pgs, _ = build(slot, items_per_page=mid, first_only=True, **kw)
            if all(fits(p, options) for p in pgs):
                lo = mid
            else:
                hi = mid - 1
        pages, legend = build(slot, items_per_page=lo, **kw)
        # Another page may carry a longer legend; shrink until every page fits.
        while lo > 1 and not all(fits(p, options) for p in pages):
            lo = max(1, lo * 9 // 10)
            pages, legend = build(slot, items_per_page=lo, **kw)
        return pages, legend
    assert layout.x is not None and layout.y is not None
    nr, nc = len(layout.axes[layout.y].values), len(layout.axes[layout.x].values)
    rpp, cpp = nr, nc
    pages, legend = build(slot, rows_per_page=rpp, cols_per_page=cpp, **kw)
    for _ in range(200):
        bad = [p for p in pages if not fits(p, options)]
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
    legend = Legend()
    block = strip_block(items, slot, small, legend, options.wrap_columns or auto_columns(len(items), slot))
    page = page_from_block(block, len(pages) + 1, join_titles(options.title or "", f"overview of {len(pages)} pages"), small, legend, kind="overview")
    if not fits(page, options):
        logger.warning("overview page would exceed the size limit; skipped")
        return None
    return page




# -------------------------------------------------------------------------------------------- strategies
@dataclass(frozen=True)
class Attempt:
    """One way of laying the grid out: its pages, the slot size, the layout switches and what was given up."""

    pages: list[PagePlan]
    legend: Legend
    slot: Size
    build_args: Mapping[str, Any]
    notes: tuple[str, ...] = ()
    split: bool = False


@dataclass(frozen=True)
class _Context:
    layout: Layout
    options: GridOptions
    base: Size
    build: Build

    def all_fit(self, attempt: Attempt) -> bool:
        return all(fits(p, self.options) for p in attempt.pages)

    def downscaled(self, build_args: Mapping[str, Any], notes: tuple[str, ...]) -> Attempt:
        """From the full-size slot, shrink until every page fits (or ``min_cell_size`` is reached)."""
        s = self.base
        pages, legend = self.build(s, **build_args)
        if self.options.oversize == "downscale":
            for _ in range(40):
                bad = [p for p in pages if not fits(p, self.options)]
                if not bad:
                    break
                new = _scaled(s, min(_overflow_factor(p, self.options) for p in bad) * 0.98, self.options.min_cell_size)
                if new == s:
                    break
                s = new
                pages, legend = self.build(s, **build_args)
        return Attempt(pages, legend, s, build_args, notes)


Strategy = Callable[[_Context, Attempt], "Attempt | None"]


def downscale_cells(ctx: _Context, attempt: Attempt) -> Attempt | None:
    """Smaller cells in the same layout (only with ``oversize="downscale"``)."""
    return ctx.downscaled(attempt.build_args, attempt.notes)


def subgrids_as_pages(ctx: _Context, attempt: Attempt) -> Attempt | None:
    """A grid of grids that cannot fit becomes one page per outer combination, downscaled again."""
    if ctx.layout.kind != "subgrids":
        return None
    return ctx.downscaled({**attempt.build_args, "force_pages": True}, attempt.notes + ("sub-grids placed one per page",))


def split_into_pages(ctx: _Context, attempt: Attempt) -> Attempt | None:
    """Fewer rows and columns (or strip items) per page, at the slot size reached so far."""
    pages, legend = _split_pages(ctx.layout, attempt.slot, ctx.options, dict(attempt.build_args), ctx.build)
    return Attempt(pages, legend, attempt.slot, attempt.build_args, attempt.notes, split=True)


#: The size policy, in the order it is applied: the first attempt whose pages all fit wins.
STRATEGIES: tuple[Strategy, ...] = (downscale_cells, subgrids_as_pages, split_into_pages)


def _fit(ctx: _Context) -> tuple[Attempt, list[str]]:
    """Apply :data:`STRATEGIES` in order to the full-size layout; the chosen attempt and its warnings."""
    attempt = Attempt(*ctx.build(ctx.base), slot=ctx.base, build_args={})
    if ctx.all_fit(attempt):
        return attempt, []
    worst = max(attempt.pages, key=lambda p: p.megapixels)
    over = f"grid would be {worst.width}×{worst.height} px, over the {_limit_desc(ctx.options)}"
    for strategy in STRATEGIES:
        tried = strategy(ctx, attempt)
        if tried is None:
            continue
        attempt = tried
        if ctx.all_fit(attempt):
            break
    message = over + "".join(f"; {note}" for note in attempt.notes)
    slot, base = attempt.slot, ctx.base
    if attempt.split:
        message += f"; split into {len(attempt.pages)} pages"
        if slot != base:
            message += f" with cells downscaled to {slot[0]}×{slot[1]} px"
    elif slot != base:
        message += f"; cells downscaled to {slot[0]}×{slot[1]} px ({round(100 * slot[0] / base[0])}%)"
    warnings = [message]
    if not ctx.all_fit(attempt):
        warnings.append(
            f"even one cell per page exceeds the {_limit_desc(ctx.options)}; lower cell_max_size or choose PNG"
        )
    return attempt, warnings


# ---------------------------------------------------------------------------------------------- planning
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
        format limits (JPEG 65500 px a side, WebP 16383 px, ``max_megapixels`` for every format), and an
        ``x_axis``/``y_axis`` naming no axis, which is then placed automatically.

    Raises:
        ValueError: unknown mode or bad sizes.
    """
    options = options or GridOptions()
    if mode not in ("matrix", "linear"):
        raise ValueError(f"mode: must be 'matrix' or 'linear', got {mode!r}")
    gaxes = tuple(as_axis(a) for a in axes)
    source = _normalize_sizes(cell_size)
    count = cells_or_count if isinstance(cells_or_count, int) else len(cells_or_count)
    if mode == "matrix":
        count = math.prod(len(a.values) for a in gaxes) if gaxes else count
    slot = source
    if options.cell_max_size is not None and max(slot) > options.cell_max_size:
        f = options.cell_max_size / max(slot)
        slot = (max(1, int(slot[0] * f)), max(1, int(slot[1] * f)))
    if options.images_only:
        return GridPlan((), mode, gaxes, options, slot, source, (), (), "none")
    linear_coords: dict[int, tuple[int, ...]] = {}
    if mode == "linear" and not isinstance(cells_or_count, int):
        for c in cells_or_count:
            cell = as_cell(c)
            if len(cell.coords) == len(gaxes) and all(0 <= i < len(a.values) for i, a in zip(cell.coords, gaxes)):
                linear_coords[cell.index] = cell.coords
    layout = Layout(gaxes, mode, count, options, linear_coords)
    for warning in layout.warnings:
        logger.warning("WI grid: %s", warning)

    def build(s: Size, **kw: Any) -> tuple[list[PagePlan], Legend]:
        lg = Legend()
        return layout.pages(s, lg, **kw), lg

    attempt, size_warnings = _fit(_Context(layout, options, slot, build))
    grid_pages = list(attempt.pages)
    pages = grid_pages
    if len(grid_pages) > 1 and options.overview:
        ov = _overview_page(grid_pages, options)
        if ov is not None:
            pages = grid_pages + [ov]
    layout_name = "pages" if attempt.build_args.get("force_pages") else layout.kind
    logger.debug("grid plan: %d page(s), slot %s (source %s)", len(pages), attempt.slot, source)
    return GridPlan(
        tuple(pages), mode, gaxes, options, attempt.slot, source, (*layout.warnings, *size_warnings),
        tuple(attempt.legend.items(options.legend_max_chars)), layout_name, attempt.split,
    )


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
    gaxes = tuple(as_axis(a) for a in axes)
    n = count if count is not None else (max((len(a.values) for a in gaxes), default=0) if mode == "linear" else 0)
    plan = plan_grid(gaxes, n, image_size, options, mode=mode)
    if options.images_only:
        return GridSizeReport(0, 0, 0, 1.0, ())
    return GridSizeReport(plan.width, plan.height, len(plan.grid_pages), round(plan.scale, 4), plan.warnings)
