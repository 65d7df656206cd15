"""Files written next to a sweep's images: ``batch.json``, ``batch.csv`` and a self-contained ``viewer.html``.

This module owns the on-disk record of a batch ("which settings made this image?") and the offline
viewer. It reads the typed records of ``core.records`` (axes with their values and labels, cells with
coordinates) built by ``core.batch_outputs`` from the manager's snapshot, or converted from a status-like
dict by :func:`batch_record`. It never imports torch, ``comfy*``, ``server``, ``nodes``, ``folder_paths`` or
aiohttp; of the other core modules it uses only ``records``, ``values`` (the one label formatter and JSON
converter) and ``atomic_files``.

Why these choices:

* Values live once, on the axis. A cell points at them by ``coords`` (``axes[i].values[coords[i]]``), so a
  100,000-character prompt swept over 300 cells costs 100 KB in ``batch.json`` and the viewer, not 30 MB.
  ``batch.csv`` repeats values per row on purpose: a spreadsheet row should stand alone. The format is
  described in docs/grid.md.
* Axis values keep their JSON type (numbers stay numbers) and ``labels`` hold their display text from
  ``values.format_label``, the same text the grid draws.
* Paths in every file are relative to the output folder, so a batch folder can be zipped, moved or
  served and still resolve.
* The viewer is one HTML file with inline CSS/JS and no network access; all data sits in a
  ``<script type="application/json">`` block whose ``<``, ``>`` and ``&`` are JSON-escaped, and every
  string reaches the page through ``textContent``/attributes, never ``innerHTML``: parameter values
  are user text (prompts), so this is the XSS boundary.
* Every file is written through ``core.atomic_files``: a reader sees the old file or the new one, never half.
"""
from __future__ import annotations

import csv
import html
import io
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import atomic_files
from .records import AxisRecord, BatchRecord, CellRecord, FileRef, axis_seed
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


def _cells_json(record: BatchRecord, root: str) -> list[dict[str, Any]]:
    return [{"index": c.index, "coords": list(c.coords), "seed": c.seed, "status": c.status, "error": c.error,
             "files": [_rel(f, root) for f in c.files]} for c in record.cells]


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
    atomic_files.write_text(json_path, json.dumps(doc, ensure_ascii=False, indent=2, allow_nan=False) + "\n")
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
    cells their ``coords``."""
    record = batch_record(source)
    return {
        "format": MANIFEST_FORMAT,
        "title": title or record.batch_name or record.batch_id or "Sweep",
        "batch_id": record.batch_id,
        "mode": record.mode,
        "axes": _axes_json(record.axes),
        "cells": _cells_json(record, root),
        "grid": [_rel(os.path.abspath(os.fspath(g)), root) for g in grid_files],
    }


def _json_for_script(obj: Any) -> str:
    """JSON safe inside a <script> element: no '</script>', no '<!--', no stray '&'."""
    text = json.dumps(json_value(obj), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def write_viewer(
    source: BatchRecord | Mapping[str, Any],
    out_dir: PathLike,
    *,
    relative_to: PathLike | None = None,
    title: str | None = None,
    grid_files: Iterable[PathLike] = (),
    filename: str = "viewer.html",
) -> str:
    """Write the self-contained HTML viewer for a batch.

    The page lets the user pick which parameters are X and Y, pick values of the other axes, hide
    values, and open any cell full-size (arrows move, Esc closes). Images are referenced by relative
    path when opened as ``file://``; when the page is served through ComfyUI's
    ``/view?filename=…&subfolder=…&type=…`` (or ``/api/view``) it builds the same kind of ``/view`` URLs
    for the images, with ``subfolder`` extended by each image's folder.

    Returns:
        The path written.

    Raises:
        ValueError: ``filename`` is not a plain ``*.html`` name.
    """
    if not filename.endswith(".html") or "/" in filename or "\\" in filename:
        raise ValueError(f"filename: must be a plain *.html file name, got {filename!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = os.path.abspath(os.fspath(relative_to if relative_to is not None else out))
    data = viewer_data(source, root=root, title=title, grid_files=grid_files)
    page = (_TEMPLATE
            .replace("@@TITLE@@", html.escape(str(data["title"]), quote=True))
            .replace("@@DATA@@", _json_for_script(data)))
    path = out / filename
    atomic_files.write_text(path, page)
    logger.info("viewer written: %s", path)
    return str(path)


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


_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>@@TITLE@@</title>
<style>
:root { color-scheme: light dark; --bg:#fff; --fg:#111; --mute:#666; --line:#ccc; --ph:#eee; --bad:#e8d6d6; }
@media (prefers-color-scheme: dark) { :root { --bg:#1b1b1b; --fg:#eee; --mute:#aaa; --line:#444; --ph:#2a2a2a; --bad:#3a2626; } }
body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--fg); }
header { padding:8px 12px; border-bottom:1px solid var(--line); display:flex; flex-wrap:wrap; gap:12px; align-items:center; }
header h1 { font-size:16px; margin:0 12px 0 0; }
label { white-space:nowrap; }
#values { padding:6px 12px; border-bottom:1px solid var(--line); display:flex; flex-wrap:wrap; gap:6px 18px; }
#values fieldset { border:1px solid var(--line); padding:2px 8px; margin:0; max-width:100%; }
#values legend { font-weight:600; }
#values label { margin-right:8px; display:inline-block; max-width:22em; overflow:hidden; text-overflow:ellipsis; vertical-align:bottom; }
main { padding:12px; overflow:auto; }
table.grid { border-collapse:separate; border-spacing:4px; }
table.grid th { font-weight:600; padding:2px 6px; max-width:var(--cell); overflow-wrap:anywhere; }
table.grid th.row { text-align:right; }
.cell img { display:block; max-width:var(--cell); max-height:var(--cell); cursor:zoom-in; }
.ph { width:var(--cell); height:calc(var(--cell) * 0.75); background:var(--ph); color:var(--mute); display:flex; flex-direction:column; align-items:center; justify-content:center; text-align:center; overflow:hidden; overflow-wrap:anywhere; padding:4px; box-sizing:border-box; }
.ph.failed { background:var(--bad); }
.ph small { font-size:11px; }
.strip { display:flex; flex-wrap:wrap; gap:8px; }
.strip figure { margin:0; }
.strip figcaption { font-size:12px; max-width:var(--cell); overflow-wrap:anywhere; }
#modal { position:fixed; inset:0; background:rgba(0,0,0,.85); display:none; flex-direction:column; align-items:center; justify-content:center; color:#eee; z-index:10; }
#modal.open { display:flex; }
#modal img { max-width:96vw; max-height:80vh; }
#modal .cap { padding:8px; max-width:90vw; white-space:pre-wrap; overflow-wrap:anywhere; max-height:15vh; overflow:auto; }
#modal button { position:absolute; top:8px; right:12px; font-size:20px; }
.muted { color:var(--mute); }
</style>
</head>
<body>
<header>
  <h1 id="title"></h1>
  <label>X <select id="xsel"></select></label>
  <label>Y <select id="ysel"></select></label>
  <span id="fixed"></span>
  <label>size <input id="size" type="range" min="64" max="1024" step="32" value="256"></label>
  <span id="summary" class="muted"></span>
</header>
<div id="values"></div>
<main id="main"></main>
<div id="modal" role="dialog" aria-modal="true"><button id="close" title="Close (Esc)">×</button><div id="mbody"></div><div class="cap" id="mcap"></div></div>
<script type="application/json" id="wi-data">@@DATA@@</script>
<script>
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("wi-data").textContent);
  var axes = D.axes || [], cells = D.cells || [];
  var matrix = D.mode !== "linear" && axes.length > 0;
  var byKey = {};
  cells.forEach(function (c) { byKey[matrix ? c.coords.join(",") : String(c.index)] = c; });
  var hidden = axes.map(function (a) { return a.values.map(function () { return false; }); });
  var fixed = axes.map(function () { return 0; });
  var xAxis = axes.length >= 1 ? axes.length - 1 : -1;
  var yAxis = axes.length >= 2 ? axes.length - 2 : -1;
  var visible = [];   // [[cell|null, ...] rows] of what is on screen, for keyboard moves
  var cur = null;     // [row, col] open in the modal

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  // Image URL: relative path for file:// and plain static hosting; ComfyUI /view URLs when served by /view.
  var q = new URLSearchParams(location.search);
  var viewMode = /\/view$/.test(location.pathname) && q.has("filename");
  function url(rel) {
    if (viewMode) {
      var parts = rel.split("/"), name = parts.pop();
      var sub = [q.get("subfolder") || ""].concat(parts).filter(function (s) { return s; }).join("/");
      return location.pathname + "?filename=" + encodeURIComponent(name) + "&subfolder=" + encodeURIComponent(sub) +
        "&type=" + encodeURIComponent(q.get("type") || "output");
    }
    return rel.split("/").map(encodeURIComponent).join("/");
  }
  function label(ai, vi) { return axes[ai].name + ": " + axes[ai].labels[vi]; }
  function describe(c) {
    // Values live once, on the axis: a cell names its position on each axis (coords).
    var lines = axes.map(function (a, i) { var v = a.values[c.coords[i]]; return a.name + ": " + (v === undefined ? "" : String(v)); });
    if (c.seed !== null && c.seed !== undefined) lines.push("seed: " + c.seed);
    lines.push("status: " + c.status + (c.error ? " — " + c.error : ""));
    if (c.files && c.files.length) lines.push("file: " + c.files[0]);
    return "#" + c.index + "\n" + lines.join("\n");
  }
  function tile(c) {
    if (c && c.status === "done" && c.files && c.files.length) {
      var img = el("img", { src: url(c.files[0]), alt: describe(c), title: describe(c), loading: "lazy", "data-index": c.index });
      return img;
    }
    var reason = !c ? "missing" : (c.status === "done" ? "missing" : c.status);
    var ph = el("div", { "class": "ph " + reason, "data-status": reason }, null);
    ph.appendChild(el("span", null, reason));
    if (c && c.error) ph.appendChild(el("small", null, c.error.length > 160 ? c.error.slice(0, 157) + "…" : c.error));
    return ph;
  }
  function cellAt(coords) { return byKey[coords.join(",")] || null; }
  function selects() {
    ["xsel", "ysel"].forEach(function (id) {
      var s = document.getElementById(id); s.textContent = "";
      s.appendChild(el("option", { value: "-1" }, "(none)"));
      axes.forEach(function (a, i) { s.appendChild(el("option", { value: String(i) }, a.name)); });
      s.disabled = !matrix;
    });
    document.getElementById("xsel").value = String(xAxis);
    document.getElementById("ysel").value = String(yAxis);
    var fx = document.getElementById("fixed"); fx.textContent = "";
    if (!matrix) return;
    axes.forEach(function (a, i) {
      if (i === xAxis || i === yAxis) return;
      var s = el("select", { "data-axis": String(i) });
      a.values.forEach(function (v, j) { if (!hidden[i][j]) s.appendChild(el("option", { value: String(j) }, a.labels[j])); });
      if (hidden[i][fixed[i]]) { var first = hidden[i].indexOf(false); fixed[i] = first < 0 ? 0 : first; }
      s.value = String(fixed[i]);
      s.addEventListener("change", function () { fixed[i] = +s.value; render(); });
      var l = el("label", null, a.name + " "); l.appendChild(s); fx.appendChild(l);
    });
  }
  function valuePanel() {
    var box = document.getElementById("values"); box.textContent = "";
    axes.forEach(function (a, i) {
      var fs = el("fieldset"); fs.appendChild(el("legend", null, a.name));
      a.values.forEach(function (v, j) {
        var cb = el("input", { type: "checkbox", "data-axis": String(i), "data-value": String(j) });
        cb.checked = !hidden[i][j];
        cb.addEventListener("change", function () { hidden[i][j] = !cb.checked; selects(); render(); });
        var l = el("label", { title: String(v) }); l.appendChild(cb); l.appendChild(document.createTextNode(" " + a.labels[j]));
        fs.appendChild(l);
      });
      box.appendChild(fs);
    });
  }
  function shown(i) { var out = []; if (i < 0) return [null]; axes[i].values.forEach(function (v, j) { if (!hidden[i][j]) out.push(j); }); return out; }
  function render() {
    var main = document.getElementById("main"); main.textContent = ""; visible = [];
    var n = 0;
    if (!matrix) {
      var strip = el("div", { "class": "strip", id: "grid" });
      var row = [];
      cells.forEach(function (c) {
        for (var i = 0; i < axes.length; i++) { if (hidden[i][c.coords[i]]) return; }
        var f = el("figure", { "class": "cell", "data-index": c.index });
        f.appendChild(tile(c));
        f.appendChild(el("figcaption", null, axes.map(function (a, i) { return label(i, c.coords[i]); }).join(" · ")));
        var col = row.length; f.addEventListener("click", function () { open(0, col); });
        row.push(c); strip.appendChild(f); n++;
      });
      visible = [row]; main.appendChild(strip);
    } else {
      var xs = shown(xAxis), ys = shown(yAxis);
      var t = el("table", { "class": "grid", id: "grid" });
      var head = el("tr"); head.appendChild(el("th", { "class": "corner" }, (yAxis >= 0 ? axes[yAxis].name + " ↓ " : "") + (xAxis >= 0 ? axes[xAxis].name + " →" : "")));
      xs.forEach(function (j) { head.appendChild(el("th", { "class": "col", title: j === null ? "" : String(axes[xAxis].values[j]) }, j === null ? "" : label(xAxis, j))); });
      t.appendChild(head);
      ys.forEach(function (yi, r) {
        var tr = el("tr"), rowCells = [];
        tr.appendChild(el("th", { "class": "row", title: yi === null ? "" : String(axes[yAxis].values[yi]) }, yi === null ? "" : label(yAxis, yi)));
        xs.forEach(function (xi, col) {
          var coords = fixed.slice();
          if (xAxis >= 0) coords[xAxis] = xi;
          if (yAxis >= 0) coords[yAxis] = yi;
          var c = cellAt(coords);
          var td = el("td", { "class": "cell", "data-coords": coords.join(",") });
          if (c) td.setAttribute("data-index", String(c.index));
          td.appendChild(tile(c));
          td.addEventListener("click", function () { open(r, col); });
          tr.appendChild(td); rowCells.push(c); n++;
        });
        visible.push(rowCells); t.appendChild(tr);
      });
      main.appendChild(t);
    }
    document.getElementById("summary").textContent = n + " shown of " + cells.length + " cells";
  }
  function open(r, c) {
    if (!visible.length || !visible[r] || c < 0 || c >= visible[r].length) return;
    cur = [r, c];
    var cell = visible[r][c], body = document.getElementById("mbody"); body.textContent = "";
    if (cell && cell.status === "done" && cell.files && cell.files.length) body.appendChild(el("img", { src: url(cell.files[0]), alt: describe(cell) }));
    else body.appendChild(tile(cell));
    document.getElementById("mcap").textContent = cell ? describe(cell) : "missing";
    document.getElementById("modal").className = "open";
  }
  function close() { cur = null; document.getElementById("modal").className = ""; }
  document.addEventListener("keydown", function (e) {
    if (!cur) return;
    var r = cur[0], c = cur[1];
    if (e.key === "Escape") { close(); }
    else if (e.key === "ArrowLeft") open(r, c - 1);
    else if (e.key === "ArrowRight") open(r, c + 1);
    else if (e.key === "ArrowUp") open(r - 1, c);
    else if (e.key === "ArrowDown") open(r + 1, c);
    else return;
    e.preventDefault();
  });
  document.getElementById("close").addEventListener("click", close);
  document.getElementById("modal").addEventListener("click", function (e) { if (e.target.id === "modal") close(); });
  function pick(id, isX) {
    document.getElementById(id).addEventListener("change", function (e) {
      var v = +e.target.value;
      if (isX) { if (v === yAxis) yAxis = xAxis; xAxis = v; } else { if (v === xAxis) xAxis = yAxis; yAxis = v; }
      selects(); render();
    });
  }
  pick("xsel", true); pick("ysel", false);
  var size = document.getElementById("size");
  function setSize() { document.documentElement.style.setProperty("--cell", size.value + "px"); }
  size.addEventListener("input", setSize); setSize();
  document.getElementById("title").textContent = D.title;
  selects(); valuePanel(); render();
})();
</script>
</body>
</html>
"""
