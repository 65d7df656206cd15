"""Text fitting: the bundled font, text measurement, word wrapping and fitting a label into a width.

This module owns how text is measured and broken into lines. Text is measured with
``ImageDraw.textlength`` / ``textbbox`` on a bundled TTF (DejaVu Sans), so a label that fits here fits
everywhere; Pillow removed ``getsize`` in 10.0 and broke other packs. Labels never get cut off: shrink the
font first, then word-wrap (breaking over-long words); moving a value to a legend is the caller's last step
(``labels.py``).

Plain Python over Pillow; must not import torch, ``comfy*``, ``server``, ``nodes``, ``folder_paths`` or
aiohttp.
"""
from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

logger = logging.getLogger(__name__)

__all__ = ["FONT_PATH", "fit_label", "fit_title", "font", "line_height", "text_width", "wrap_text"]

FONT_PATH = Path(__file__).resolve().parent.parent / "fonts" / "DejaVuSans.ttf"


@functools.lru_cache(maxsize=128)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(str(FONT_PATH), size)
    except OSError:  # the bundled file is missing: degrade to Pillow's built-in (still scalable) font
        logger.warning("bundled font %s not found; labels use Pillow's default font", FONT_PATH)
        return ImageFont.load_default(size)


_MEASURE = ImageDraw.Draw(Image.new("L", (1, 1)))


@functools.lru_cache(maxsize=65536)
def text_width(text: str, size: int) -> float:
    return float(_MEASURE.textlength(text, font=font(size)))


@functools.lru_cache(maxsize=128)
def line_height(size: int) -> int:
    # Ascender-to-descender box of tall and deep glyphs, so stacked lines never overlap.
    box = _MEASURE.textbbox((0, 0), "ÁÉgjpqy|Йд", font=font(size), anchor="la")
    return int(math.ceil(box[3] - box[1])) + max(1, size // 6)


def _break_word(word: str, width: float, size: int) -> list[str]:
    """Split one word that is wider than ``width`` into chunks that fit (at least one char each)."""
    out: list[str] = []
    rest = word
    while rest:
        # Bound the search: no glyph of the bundled font is narrower than ~0.2 em, so a prefix longer than
        # this cannot fit; growing ``hi`` if it does keeps this right for zero-width characters too.
        hi = min(len(rest), int(width / max(1.0, size * 0.2)) + 8)
        while hi < len(rest) and text_width(rest[:hi], size) <= width:
            hi = min(len(rest), hi * 2)
        if hi == len(rest) and text_width(rest, size) <= width:
            out.append(rest)
            break
        lo = 1
        while lo < hi:  # largest prefix that fits
            mid = (lo + hi + 1) // 2
            if text_width(rest[:mid], size) <= width:
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
            if text_width(cand, size) <= width:
                cur = cand
                continue
            if cur:
                lines.append(cur)
                cur = ""
            if text_width(word, size) <= width:
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
            return all(text_width(p, size) <= width for p in paragraphs)

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
        total = sum(text_width(p, size) for p in paragraphs)
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


def fit_title(text: str, width: int, *, max_size: int, min_size: int) -> tuple[tuple[str, ...], int]:
    res = fit_label([text], max(1, width), max_lines=1, max_size=max_size, min_size=min_size)
    if res is not None:
        return res
    # A title longer than the whole grid: ellipsise at the smallest size rather than overflow.
    size = min_size
    lo, hi = 0, len(text)
    while lo < hi:  # longest prefix that fits with the ellipsis
        mid = (lo + hi + 1) // 2
        if text_width(text[:mid] + "…", size) <= width:
            lo = mid
        else:
            hi = mid - 1
    return (text[:lo] + "…",), size
