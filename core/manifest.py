"""Files written next to a sweep's images: ``batch.json``, ``batch.csv`` and a self-contained ``viewer.html``.

This module owns the on-disk record of a batch ("which settings made this image?") and the offline
viewer. It reads the typed records of ``core.records`` (axes with their values and labels, cells with
coordinates) built by ``core.batch_outputs`` from the manager's snapshot, or converted from a status-like
dict by :func:`batch_record`. It never imports torch, ``comfy*``, ``server``, ``nodes``, ``folder_paths`` or
aiohttp; of the other core modules it uses only ``records``, ``values`` (the one label formatter and JSON
converter), ``atomic_files``, ``choices`` (kept when ``batch.json`` is rewritten) and ``viewer`` (the page).

Why these choices:

* Values live once, on the axis. A cell points at them by ``coords`` (``axes[i].values[coords[i]]``), so a
  100,000-character prompt swept over 300 cells costs 100 KB in ``batch.json`` and the viewer, not 30 MB.
  ``batch.csv`` repeats values per row on purpose: a spreadsheet row should stand alone. The format is
  described in docs/grid.md.
* Axis values keep their JSON type (numbers stay numbers) and ``labels`` hold their display text from
  ``values.format_label``, the same text the grid draws.
* Paths in every file are relative to the output folder, so a batch folder can be zipped, moved or
  served and still resolve.
* The viewer (one self-contained HTML file) is owned by ``core.viewer``; ``write_viewer``/``viewer_data``
  here delegate to it with this module's cell entries.
* Every file is written through ``core.atomic_files``: a reader sees the old file or the new one, never half.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import atomic_files, choices, viewer
from .outputs import KINDS, describe_file, origin
from .records import AxisRecord, BatchRecord, CellRecord, FileRef, OutputRecord, axis_seed
from .values import json_value

logger = logging.getLogger(__name__)

__all__ = [
    "MANIFEST_FORMAT",
    "SWEEP_KEY",
    "batch_record",
    "manifest_document",
    "read_sweep",
    "sweep_definition",
    "viewer_data",
    "write_manifest",
    "write_viewer",
]

#: Version 2: cells reference axis values by ``coords`` instead of copying them (version 1 had ``values``).
MANIFEST_FORMAT = "wi-batch/2"
SWEEP_KEY = "wi_sweep"
#: One line in batch.json itself saying how to read it (the full description is docs/grid.md).
_ABOUT = ("Each parameter's values are listed once, in axes[i].values (labels: their display text). A cell's "
          "value of parameter i is axes[i].values[cell.coords[i]]; files are relative to this folder.")
_FIXED_COLUMNS = ("index", "coords", "status", "error", "resolved_seed", "file", "files")

PathLike = str | os.PathLike[str]


def _status_str(v: Any) -> str:
    return str(getattr(v, "value", v))


def _axis_record(a: Any) -> AxisRecord:
    get = a.get if isinstance(a, Mapping) else (lambda key, default=None: getattr(a, key, default))
    given = get("labels", None)
    return AxisRecord(
        name=str(get("name", "")),
        values=tuple(json_value(v) for v in (get("values", ()) or ())),
        type=str(get("type", "STRING") or "STRING"),
        labels=None if given is None else tuple(str(x) for x in given),
    )


def _seed_of(cell: Mapping[str, Any], coords: Sequence[int], axes: Sequence[AxisRecord]) -> Any:
    if cell.get("seed") is not None:
        return cell["seed"]
    meta = cell.get("metadata")
    if isinstance(meta, Mapping) and meta.get("seed") is not None:
        return meta["seed"]
    return axis_seed(coords, axes)


def _output_of(ref: FileRef) -> OutputRecord:
    """The typed output of a status-like cell's file: its own ``kind``/``node_id``/``media_type`` when it has
    them, else typed by its name (``core.outputs``)."""
    path = _rel(ref, "") if isinstance(ref, Mapping) else os.fspath(ref)
    made = describe_file(path)
    if isinstance(ref, Mapping) and ref.get("kind") in KINDS:
        made = origin(str(ref.get("node_id") or ""), str(ref["kind"]), str(ref.get("media_type") or made.media_type))
    return OutputRecord(path, made.kind, made.node_id, made.media_type)


def batch_record(source: BatchRecord | Mapping[str, Any]) -> BatchRecord:
    """A :class:`~core.records.BatchRecord` from a status-like dict (``{"axes": [{name, type, values, labels?}], "cells":
    [{index, coords, status, error, files, seed?, metadata?}], ...}``); a record is returned as it is.

    Cell ``values`` in the dict are ignored: ``coords`` say which axis value each cell used.
    """
    if isinstance(source, BatchRecord):
        return source
    axes = tuple(_axis_record(a) for a in source.get("axes", ()) or ())
    cells = []
    for c in sorted(source.get("cells", ()) or (), key=lambda c: int(c.get("index", 0))):
        coords = tuple(int(x) for x in (c.get("coords") or ()))
        files = tuple(f if isinstance(f, Mapping) else os.fspath(f) for f in (c.get("files") or ()))
        cells.append(CellRecord(
            index=int(c.get("index", 0)), coords=coords, status=_status_str(c.get("status", "")),
            error=c.get("error"), files=files, seed=json_value(_seed_of(c, coords, axes)),
            outputs=tuple(_output_of(f) for f in files),
        ))
    state = source.get("state")
    return BatchRecord(
        batch_id=source.get("batch_id"), batch_name=source.get("batch_name"),
        mode=str(source.get("mode", "matrix")), axes=axes, cells=tuple(cells),
        state=None if state is None else _status_str(state), created_at=source.get("created_at"),
        counts=dict(source.get("counts") or {}), warnings=tuple(str(w) for w in source.get("warnings", ()) or ()),
    )


# ------------------------------------------------------------------------------------------------- writing
def _rel(path: FileRef, root: str) -> str:
    """Path of ``path`` relative to ``root`` with forward slashes (URL- and zip-friendly)."""
    if isinstance(path, Mapping):  # a not-yet-resolved {filename, subfolder, type} entry
        sub = str(path.get("subfolder") or "")
        name = str(path.get("filename") or "")
        return "/".join(p for p in (sub.replace("\\", "/"), name) if p)
    p = os.fspath(path)
    if not os.path.isabs(p):
        return p.replace(os.sep, "/")
    rel = os.path.relpath(p, root)
    if rel.startswith(".."):
        logger.debug("file %s lies outside %s", p, root)
    return rel.replace(os.sep, "/")


def _axes_json(axes: Sequence[AxisRecord]) -> list[dict[str, Any]]:
    return [{"name": a.name, "type": a.type, "values": [json_value(v) for v in a.values], "labels": list(a.display_labels())}
            for a in axes]


def _output_json(out: OutputRecord, root: str) -> dict[str, Any]:
    """One entry of a cell's ``outputs``: a file's ``path`` (relative to the batch folder), or a text output's
    ``text``; with its ``kind``, ``node_id`` and ``media_type``."""
    where: dict[str, Any] = {"text": out.text or ""} if out.kind == "text" else {"path": _rel(out.path, root)}
    return {**where, "kind": out.kind, "node_id": out.node_id, "media_type": out.media_type}


def _cells_json(record: BatchRecord, root: str) -> list[dict[str, Any]]:
    return [{"index": c.index, "coords": list(c.coords), "seed": c.seed, "status": c.status, "error": c.error,
             "files": [_rel(f, root) for f in c.files], "outputs": [_output_json(o, root) for o in c.outputs]}
            for c in record.cells]


def sweep_definition(source: BatchRecord | Mapping[str, Any]) -> dict[str, Any]:
    """The sweep description embedded in grid images (PNG ``wi_sweep`` text, EXIF UserComment)."""
    record = batch_record(source)
    return {
        "format": MANIFEST_FORMAT,
        "batch_id": record.batch_id,
        "batch_name": record.batch_name,
        "mode": record.mode,
        "axes": _axes_json(record.axes),
        "count": len(record.cells),
    }


def manifest_document(
    source: BatchRecord | Mapping[str, Any], *, root: str, grid_files: Iterable[PathLike] = ()
) -> dict[str, Any]:
    """The ``batch.json`` object: the sweep definition, the batch's state and one entry per cell."""
    record = batch_record(source)
    return {
        **sweep_definition(record),
        "about": _ABOUT,
        "state": record.state,
        "created_at": record.created_at,
        "counts": json_value(dict(record.counts)),
        "warnings": list(record.warnings),
        "grid": [_rel(os.path.abspath(os.fspath(g)), root) for g in grid_files],
        "cells": _cells_json(record, root),
    }


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)  # round-trips exactly
    if isinstance(v, (dict, list)):  # a link group's or a bundle's value: JSON, not a Python repr
        return json.dumps(v, ensure_ascii=False, sort_keys=False)
    return v


def _csv_text(record: BatchRecord, root: str) -> str:
    names = [a.name for a in record.axes]
    # An axis called like a fixed column gets a prefix rather than silently shadowing it.
    headers = [f"param:{n}" if n in _FIXED_COLUMNS else n for n in names]
    buffer = io.StringIO()
    w = csv.writer(buffer)
    w.writerow(["index", "coords", *headers, "resolved_seed", "status", "error", "file", "files"])
    for c in record.cells:
        # A CSV row stands alone, so it repeats the values the JSON keeps once on the axes.
        vals = [_csv_value(a.value_at(c.coords[i]) if i < len(c.coords) else None) for i, a in enumerate(record.axes)]
        files = [_rel(f, root) for f in c.files]
        w.writerow([
            c.index, ";".join(str(x) for x in c.coords), *vals,
            "" if c.seed is None else c.seed, c.status, c.error or "",
            files[0] if files else "", ";".join(files),
        ])
    return buffer.getvalue()


def write_manifest(
    source: BatchRecord | Mapping[str, Any],
    out_dir: PathLike,
    *,
    relative_to: PathLike | None = None,
    grid_files: Iterable[PathLike] = (),
) -> dict[str, str]:
    """Write ``batch.json`` and ``batch.csv`` describing every cell of a batch.

    Args:
        source: a :class:`BatchRecord`, or a status-like dict (see :func:`batch_record`) whose ``files``
            are absolute paths or ``{filename, subfolder, type}`` references.
        out_dir: folder to write into (created if missing).
        relative_to: root that file paths are made relative to (default ``out_dir``).
        grid_files: grid pages written for the batch, recorded in ``batch.json``.

    Returns:
        ``{"json": path, "csv": path}``.
    """
    record = batch_record(source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = os.path.abspath(os.fspath(relative_to if relative_to is not None else out))
    doc = manifest_document(record, root=root, grid_files=grid_files)
    json_path = out / "batch.json"
    # The user's stars and rejections (core.choices) survive the manifest being written again.
    choices.keep_choices(json_path, doc, lambda p, d: atomic_files.write_text(
        p, json.dumps(d, ensure_ascii=False, indent=2, allow_nan=False) + "\n"))
    csv_path = out / "batch.csv"
    atomic_files.write_text(csv_path, _csv_text(record, root))
    logger.info("manifest written: %s, %s (%d cells)", json_path, csv_path, len(record.cells))
    return {"json": str(json_path), "csv": str(csv_path)}


def viewer_data(
    source: BatchRecord | Mapping[str, Any],
    *,
    root: str,
    title: str | None = None,
    grid_files: Iterable[PathLike] = (),
) -> dict[str, Any]:
    """The JSON object embedded in ``viewer.html`` (also handy for tests): axes hold the values and labels,
    cells their ``coords``. The viewer is owned by ``core.viewer``; this keeps the manifest's cell entries."""
    record = batch_record(source)
    return viewer.viewer_data(record, root=root, cells=_cells_json(record, root), title=title,
                              grid=[_rel(os.path.abspath(os.fspath(g)), root) for g in grid_files])


def write_viewer(
    source: BatchRecord | Mapping[str, Any],
    out_dir: PathLike,
    *,
    relative_to: PathLike | None = None,
    title: str | None = None,
    grid_files: Iterable[PathLike] = (),
    filename: str = "viewer.html",
) -> str:
    """Write the self-contained HTML viewer for a batch (``core.viewer`` owns the page; see docs/viewer.md).

    Returns:
        The path written.

    Raises:
        ValueError: ``filename`` is not a plain ``*.html`` name.
    """
    record = batch_record(source)
    root = os.path.abspath(os.fspath(relative_to if relative_to is not None else out_dir))
    return viewer.write_viewer(record, out_dir, root=root, cells=_cells_json(record, root), title=title,
                               grid=[_rel(os.path.abspath(os.fspath(g)), root) for g in grid_files], filename=filename)


def read_sweep(path: PathLike) -> dict[str, Any] | None:
    """Read the sweep definition back from a grid image (PNG text, EXIF UserComment) or its sidecar."""
    from PIL import Image  # local: only this helper needs Pillow

    p = Path(path)
    text: str | None = None
    with Image.open(p) as im:
        chunks = getattr(im, "text", None)
        if isinstance(chunks, Mapping) and isinstance(chunks.get(SWEEP_KEY), str):
            text = chunks[SWEEP_KEY]
        if text is None:
            comment = im.getexif().get_ifd(0x8769).get(0x9286)
            if isinstance(comment, bytes) and len(comment) > 8:
                text = comment[8:].decode("ascii", "replace")
            elif isinstance(comment, str):
                text = comment
    if text is None and p.with_suffix(".json").exists():
        text = p.with_suffix(".json").read_text(encoding="utf-8")
    if not text:
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        logger.warning("%s: %s is not valid JSON", p, SWEEP_KEY)
        return None
    return obj if isinstance(obj, dict) else None
