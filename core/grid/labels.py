"""Grid labels: an axis's label texts, the numbered legend, and fitting a band of labels.

This module owns what a header says. The text of one value comes from the pack's one formatter,
:func:`core.values.format_label` (re-exported here as ``format_value``), the same one the manifest, the viewer
and the batch manager use, so ``0.1 + 0.2`` reads ``0.3`` in every place. On top of it the grid elides a long
common prefix and moves values that cannot be read inline (prompts) to a numbered legend under the grid.

Plain Python over Pillow (through ``text.py``); must not import torch, ``comfy*``, ``server``, ``nodes``,
``folder_paths`` or aiohttp.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

from ..values import format_label
from .inputs import GridAxis
from .options import GridOptions
from .text import fit_label, line_height, wrap_text

logger = logging.getLogger(__name__)

__all__ = ["Label", "Legend", "axis_labels", "band_height", "fit_labels", "format_value", "label_paragraphs"]

#: The one label formatter, under the name the grid has always exported.
format_value = format_label


def axis_labels(axis: GridAxis, options: GridOptions) -> list[str]:
    """Header texts of an axis's values: its labels (given, else the formatter's), prefix-elided if asked."""
    raw = list(axis.display_labels())
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



class Legend:
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



Label = list[tuple[str, str]]  # [(axis name, value text)]; an empty name means plain text


def label_paragraphs(label: Label, refs: Mapping[int, int]) -> list[str]:
    out = []
    for i, (name, value) in enumerate(label):
        shown = f"[{refs[i]}]" if i in refs else value
        out.append(f"{name}: {shown}" if name else shown)
    return out


def fit_labels(
    labels: Sequence[Label], width: int, max_lines: int, options: GridOptions, legend: Legend
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
        res = fit_label(label_paragraphs(label, refs), inner, max_lines=max_lines, max_size=hi, min_size=lo)
        # Then move values to the legend, longest first, until the label fits.
        order = sorted(range(len(label)), key=lambda i: -len(label[i][1]))
        for i in order:
            if res is not None:
                break
            if len(label[i][1]) <= 6 or i in refs:
                continue
            refs[i] = legend.ref(label[i][0], label[i][1])
            res = fit_label(label_paragraphs(label, refs), inner, max_lines=max_lines, max_size=hi, min_size=lo)
        if res is None:  # still too tall: wrap at the smallest size and let the band grow (never cut off)
            wrapped: list[str] = []
            for p in label_paragraphs(label, refs):
                wrapped.extend(wrap_text(p, inner, lo))
            res = (tuple(wrapped), lo)
        used.update(refs.values())
        per_label_refs.append(refs)
        fitted.append(res)
    if not fitted:
        return fitted, used
    # One font size per band looks calmer; re-wrap at the common size when that does not add lines.
    common = min(size for _, size in fitted)
    out: list[tuple[tuple[str, ...], int]] = []
    for (lines, size), label, refs in zip(fitted, labels, per_label_refs):
        if size == common:
            out.append((lines, size))
            continue
        relines: list[str] = []
        for p in label_paragraphs(label, refs):
            relines.extend(wrap_text(p, inner, common))
        out.append((tuple(relines), common) if len(relines) <= max(len(lines), 1) else (lines, size))
    return out, used


def band_height(fitted: Sequence[tuple[tuple[str, ...], int]], pad: int) -> int:
    if not fitted:
        return 0
    return max(len(lines) * line_height(size) for lines, size in fitted) + 2 * pad


