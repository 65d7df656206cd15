"""The typed records a finished batch is described by: axes that hold the values, cells that point at them.

This module owns the shape that flows from the batch manager's snapshot to the grid (``core.grid``), the
manifest and the viewer (``core.manifest``): one :class:`AxisRecord` per swept parameter, holding its values
once, with their display labels from the one formatter (``core.values.format_label``); one
:class:`CellRecord` per cell, holding its ``coords`` on each axis instead of a copy of the values. A
100,000-character prompt swept over 300 cells is therefore stored once, not 300 times.

Plain Python, standard library only: must not import torch, ``comfy*``, ``server``, ``nodes``,
``folder_paths`` or aiohttp, nor Pillow.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .values import format_label

logger = logging.getLogger(__name__)

__all__ = ["AxisRecord", "BatchRecord", "CellRecord", "FileRef", "OutputRecord", "axis_seed"]

#: A cell's file: an absolute (or folder-relative) path, or a ``{filename, subfolder, type}`` reference.
FileRef = str | os.PathLike[str] | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AxisRecord:
    """One swept parameter: its values in the order the user entered them, its type, optional labels.

    ``labels``, when given, are the display texts aligned with ``values`` (the manager's, from the one
    formatter, or a caller's own); :meth:`display_labels` falls back to the formatter.
    """

    name: str
    values: tuple[Any, ...]
    type: str = "STRING"
    labels: tuple[str, ...] | None = None

    def value_at(self, position: int) -> Any:
        """The value at ``position``, or None when the position is not on this axis."""
        return self.values[position] if 0 <= position < len(self.values) else None

    def display_labels(self) -> tuple[str, ...]:
        """The label of every value: the given ``labels`` if they match, else ``format_label``'s."""
        if self.labels is not None and len(self.labels) == len(self.values):
            return self.labels
        return tuple(format_label(v, self.type) for v in self.values)


@dataclass(frozen=True, slots=True)
class OutputRecord:
    """One typed output of a cell (``core.outputs`` classified it): its file (absolute, or folder-relative),
    kind (``image``, ``animated``, ``video``, ``audio``, ``text``), the node that made it and its media type.

    A text output also carries its ``text`` (read from its file in the batch folder).
    """

    path: str
    kind: str
    node_id: str = ""
    media_type: str = ""
    text: str | None = None


@dataclass(frozen=True, slots=True)
class CellRecord:
    """One cell: where it sits on each axis, how it ended and which files it wrote.

    The cell's value of axis ``i`` is ``axes[i].values[coords[i]]``; ``seed`` is the resolved seed when known.
    ``files`` are the cell's files (every output with a picture or a sound: what older readers list);
    ``outputs`` the same outputs typed, text outputs included.
    """

    index: int
    coords: tuple[int, ...]
    status: str = "done"
    error: str | None = None
    files: tuple[FileRef, ...] = ()
    seed: Any = None
    outputs: tuple[OutputRecord, ...] = ()

    def tile_output(self) -> OutputRecord | None:
        """The output a grid tile shows: the first still image, else the first animation or video, else the
        first audio; None when the cell has none of them (text only, or outputs not typed)."""
        for kinds in (("image",), ("animated", "video"), ("audio",)):
            for out in self.outputs:
                if out.kind in kinds:
                    return out
        return None


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """A batch as its output files describe it: its axes and its cells (sorted by index)."""

    batch_id: str | None
    batch_name: str | None
    mode: str
    axes: tuple[AxisRecord, ...]
    cells: tuple[CellRecord, ...]
    state: str | None = None
    created_at: float | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def axis_seed(coords: Sequence[int], axes: Sequence[AxisRecord]) -> Any:
    """The value of the first SEED axis at ``coords``, or None."""
    for i, a in enumerate(axes):
        if a.type == "SEED" and i < len(coords):
            return a.value_at(coords[i])
    return None
