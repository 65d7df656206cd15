"""The grid's input records: one axis and one cell as the grid sees them, adapted from duck-typed objects.

This module owns the conversion of whatever the caller holds (the manager's snapshots, status dicts,
``combination_engine.Axis``) into the two small frozen records the rest of the grid package reads. A cell
points at its axis values by ``coords``; the values themselves live once, on the axis.

Plain Python; must not import torch, ``comfy*``, ``server``, ``nodes``, ``folder_paths`` or aiohttp.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["GridAxis", "GridCell", "as_axis", "as_cell", "axes_and_cells_from_status"]


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


def as_axis(obj: Any) -> GridAxis:
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


def as_cell(obj: Any, axes: Sequence[GridAxis]) -> GridCell:
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
    axes = tuple(as_axis(a) for a in status.get("axes", ()))
    cells = tuple(sorted((as_cell(c, axes) for c in status.get("cells", ())), key=lambda c: c.index))
    mode = str(status.get("mode", "matrix"))
    return axes, cells, mode

