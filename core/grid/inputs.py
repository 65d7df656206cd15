"""The grid's input records, adapted from whatever the caller holds.

The grid reads the pack's typed records (``core.records``): ``GridAxis`` is :class:`AxisRecord` (values
once, on the axis, with their labels) and ``GridCell`` is :class:`CellRecord` (``coords`` into the axes, how
the cell ended, its files). This module owns the conversion of duck-typed input (status dicts,
``combination_engine.Axis``, any object with those attributes) into them, and the rule that a cell's files
reach the compositor as paths.

Plain Python; must not import torch, ``comfy*``, ``server``, ``nodes``, ``folder_paths`` or aiohttp.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from ..records import AxisRecord, CellRecord

logger = logging.getLogger(__name__)

__all__ = ["GridAxis", "GridCell", "as_axis", "as_cell", "axes_and_cells_from_status"]

#: The grid's names for the shared records (kept: ``core.grid.GridAxis(...)`` is public API).
GridAxis = AxisRecord
GridCell = CellRecord


def _reader(obj: Any) -> Callable[[str, Any], Any]:
    """``get(key, default)`` over a mapping's keys or an object's attributes: the inputs come in both shapes."""
    if isinstance(obj, Mapping):
        return obj.get

    def get(key: str, default: Any = None) -> Any:
        return getattr(obj, key, default)

    return get


def as_axis(obj: Any) -> AxisRecord:
    """An :class:`AxisRecord` from a record, a mapping or an object with ``name``, ``values``, ``type``."""
    if isinstance(obj, AxisRecord):
        return obj
    get = _reader(obj)
    labels = get("labels", None)
    return AxisRecord(
        name=str(get("name", "")),
        values=tuple(get("values", ()) or ()),
        type=str(get("type", "STRING") or "STRING"),
        labels=tuple(str(x) for x in labels) if labels is not None else None,
    )


def _paths(files: Any) -> tuple[str, ...]:
    out = []
    for f in files or ():
        if isinstance(f, Mapping):  # only resolved references name a file on disk
            p = f.get("path") or f.get("abspath") or f.get("filename")
            if p:
                out.append(str(p))
        else:
            out.append(os.fspath(f))
    return tuple(out)


def as_cell(obj: Any) -> CellRecord:
    """A :class:`CellRecord` whose ``files`` are paths, from a record, a status-dict cell or an object.

    A status-dict cell's ``values`` are not read: its ``coords`` say which axis value it used.
    """
    if isinstance(obj, CellRecord):
        if all(isinstance(f, str) for f in obj.files):
            return obj
        return CellRecord(obj.index, obj.coords, obj.status, obj.error, _paths(obj.files), obj.seed, obj.outputs)
    get = _reader(obj)
    status = get("status", "done")
    return CellRecord(
        index=int(get("index", 0)),
        coords=tuple(int(c) for c in (get("coords", ()) or ())),
        status=str(getattr(status, "value", status)),
        error=get("error", None),
        files=_paths(get("files", ())),
        seed=get("seed", None),
    )


def axes_and_cells_from_status(status: Mapping[str, Any]) -> tuple[tuple[AxisRecord, ...], tuple[CellRecord, ...], str]:
    """Build grid inputs from a status-like dict.

    Args:
        status: ``{"axes": [{"name", "type", "values": [...], "labels"?}], "cells": [{"index", "coords",
            "status", "error", "files": [absolute paths]}], "mode": ...}``.

    Returns:
        ``(axes, cells, mode)`` with cells sorted by index.
    """
    axes = tuple(as_axis(a) for a in status.get("axes", ()))
    cells = tuple(sorted((as_cell(c) for c in status.get("cells", ())), key=lambda c: c.index))
    mode = str(status.get("mode", "matrix"))
    return axes, cells, mode
