"""Grid composition: drawing the planned pages from the cells' saved files and writing them.

This module owns the pixels: each page is one output raster; cells are decoded one at a time (a small
read-ahead window of worker threads overlaps PNG decoding with pasting), so peak memory is about the raster
plus a few cells. Failed, cancelled, missing and unreadable cells get a placeholder tile saying why. Every
file goes through ``core.atomic_files`` (temporary name, flush, rename), so a reader never sees half a grid.

Plain Python over Pillow; must not import torch, ``comfy*``, ``server``, ``nodes``, ``folder_paths`` or
aiohttp.
"""
from __future__ import annotations

import concurrent.futures
import itertools
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

from .. import atomic_files
from ..values import json_value
from .inputs import GridCell, as_cell
from .layout import CellSlot, GridPage, GridPlan, Size, TextBlock
from . import tiles
from .options import GridOptions
from .text import font, line_height, wrap_text

logger = logging.getLogger(__name__)

__all__ = ["PLACEHOLDER_COLORS", "compose_grid"]

_FORMAT_EXT = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
_STATUS_TEXT = {
    "failed": "failed",
    "cancelled": "cancelled",
    "missing": "missing",
    "queued": "not run",
    "running": "not finished",
    "unreadable": "unreadable",
    "skipped": "skipped",
    "text": "text",
    "video": "video",
}
#: Placeholder tile colours: neutral greys, the failed one slightly warm so it stands out in a big grid.
PLACEHOLDER_COLORS: dict[str, tuple[int, int, int]] = {
    "failed": (232, 214, 214),
    "cancelled": (222, 222, 222),
    "missing": (238, 238, 238),
    "queued": (238, 238, 238),
    "running": (238, 238, 238),
    "unreadable": (232, 214, 214),
    "skipped": (246, 246, 246),  # lighter than "not run": removed on purpose by the skip list, not a problem
    "text": (246, 246, 246),
    "video": (228, 228, 228),
}


def _draw_text(img: Image.Image, draw: ImageDraw.ImageDraw, t: TextBlock, color: tuple[int, int, int]) -> None:
    face = font(t.font_size)
    lh = line_height(t.font_size)
    if t.rotate:
        # Render horizontally into a mask, rotate, paste colour through it: Pillow has no vertical text.
        length, thick = t.h, t.w
        mask = Image.new("L", (max(1, length), max(1, thick)), 0)
        md = ImageDraw.Draw(mask)
        total = len(t.lines) * lh
        y0 = (thick - total) // 2
        for k, line in enumerate(t.lines):
            md.text((length / 2, y0 + k * lh), line, font=face, fill=255, anchor="ma")
        mask = mask.rotate(90, expand=True)
        img.paste(color, (t.x, t.y, t.x + mask.width, t.y + mask.height), mask)
        return
    total = len(t.lines) * lh
    y = t.y + max(0, (t.h - total) // 2)
    for k, line in enumerate(t.lines):
        if t.align == "left":
            draw.text((t.x, y + k * lh), line, font=face, fill=color, anchor="la")
        else:
            draw.text((t.x + t.w / 2, y + k * lh), line, font=face, fill=color, anchor="ma")


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
        room = max(0, (slot.h - len(lines) * line_height(size)) // line_height(small) - 1)
        err_lines = wrap_text(short, slot.w - 8, small)[: min(4, room)]
    total = len(lines) * line_height(size) + len(err_lines) * line_height(small)
    y = max(0, (slot.h - total) // 2)
    grey = (90, 90, 90)
    for line in lines:
        draw.text((slot.w / 2, y), line, font=font(size), fill=grey, anchor="ma")
        y += line_height(size)
    for line in err_lines:
        draw.text((slot.w / 2, y), line, font=font(small), fill=grey, anchor="ma")
        y += line_height(small)
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
    if cell.status in ("failed", "cancelled", "queued", "running", "skipped"):
        return cell.status
    if not cell.files and not cell.outputs:
        return "missing"
    return None


def _fit(img: Image.Image, box: Size) -> Image.Image:
    """``img`` scaled to fit ``box`` (never upscaled)."""
    f = min(1.0, box[0] / img.width, box[1] / img.height)
    if f >= 1.0:
        return img
    return img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))), Image.Resampling.LANCZOS)


def _output_tile(cell: GridCell, box: Size, options: GridOptions) -> Image.Image | tuple[str, str | None]:
    """The tile of a cell with typed outputs: a still image as always; an animation's or video's chosen frame
    (``video_frame``) with a play badge; an audio waveform; a text cell's text on a placeholder."""
    out = cell.tile_output()
    if out is None:
        text = next((o.text for o in cell.outputs if o.kind == "text" and o.text), None)
        return ("text", text) if text else ("missing", None)
    if out.kind == "image":
        return _load_fitted(out.path, box, options.background_rgb)
    if out.kind == "audio":
        return tiles.audio_tile(out.path, box, options.label_font_size)
    frame = tiles.media_frame(out.path, out.kind, options.video_frame)
    if frame is None:  # a video without a decoder here: say what it is
        return ("video", os.path.basename(out.path))
    return tiles.draw_play_badge(_fit(frame, box))


def _sweep_bytes(sweep: Mapping[str, Any] | None) -> str | None:
    if sweep is None:
        return None
    return json.dumps(json_value(sweep), ensure_ascii=False, separators=(",", ":"))


def _save(img: Image.Image, path: Path, options: GridOptions, sweep_json: str | None) -> None:
    """Encode ``img`` to ``path`` atomically, with the sweep definition in the image's metadata."""
    fmt = options.format
    sidecar = False
    if fmt == "png":
        info = PngInfo()
        if sweep_json is not None:
            info.add_itxt("wi_sweep", sweep_json)

        def encode(handle: IO[bytes]) -> None:
            img.save(handle, "PNG", compress_level=options.png_compress_level, pnginfo=info)
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

        def encode(handle: IO[bytes]) -> None:
            if fmt == "jpeg":
                img.save(handle, "JPEG", optimize=False, **kwargs)
            else:
                img.save(handle, "WEBP", method=4, **kwargs)
    atomic_files.write_with(path, encode)
    if sidecar and sweep_json is not None:
        atomic_files.write_text(path.with_suffix(".json"), sweep_json)


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
    cell_list = [as_cell(c) for c in cells]
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
                if cell.outputs:
                    return _output_tile(cell, (slot.w, slot.h), options)
                path = cell.files[0]
                if isinstance(path, Mapping):  # as_cell turns references into paths; an unresolved one is not a file
                    return ("missing", None)
                return _load_fitted(os.fspath(path), (slot.w, slot.h), bg)
            except (OSError, ValueError, EOFError, Image.DecompressionBombError) as e:
                logger.warning("cell %d: cannot read its output: %s", cell.index, e)
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
