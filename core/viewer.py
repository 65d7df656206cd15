"""The offline HTML viewer of a batch: one self-contained ``viewer.html`` beside its cells.

This module owns the viewer file: the data embedded in it (:func:`viewer_data`) and the page written from the
template and the ES modules under ``web/viewer/`` (:func:`write_viewer`). The modules are plain ES modules so
``node --test`` can test their logic (web/tests/viewer_*.test.mjs); here they are inlined, in dependency
order, into one classic script, so the page needs no network and works from ``file://``.
``core.manifest.write_viewer`` / ``viewer_data`` delegate here, so callers did not change.

What the page is given, and why:

* Axes with their values, labels (``values.format_label``) and each value's text in the value syntax
  (``values.value_text``), so "Sweep the winners" only joins texts and cannot write a value the parser would
  read differently (``0.1`` vs its label, a prompt with commas, ``file:`` text).
* The batch's UI workflow and where each parameter node keeps its values text
  (``prompt_graph.values_widget_index``), read from the first cell PNG's metadata (the batch keeps no other
  copy), so the export can fill a workflow in; none when no cell PNG carries metadata.
* The stored choices (``core.choices``), the starting point when the page is opened as a file.
* All of it inside a ``<script type="application/json">`` block whose ``<``, ``>`` and ``&`` are JSON-escaped;
  the page puts strings in through ``textContent``/attributes only: parameter values are user text (prompts),
  so this is the XSS boundary.

Plain Python plus Pillow (to read one PNG's text chunks): must not import torch, ``comfy*``, ``server``,
``nodes``, ``folder_paths`` or aiohttp. Every file goes through ``core.atomic_files``.
"""
from __future__ import annotations

import functools
import html
import itertools
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import atomic_files, choices
from .prompt_graph import CELL_INFO_KEY, values_widget_index
from .records import AxisRecord, BatchRecord
from .values import json_value, value_text

logger = logging.getLogger(__name__)

__all__ = ["VIEWER_MODULES", "viewer_data", "viewer_script", "write_viewer"]

PathLike = str | os.PathLike[str]
WEB_VIEWER_DIR = Path(__file__).resolve().parent.parent / "web" / "viewer"
#: The page's modules in dependency order (each imports only modules listed before it); app.mjs starts the page.
VIEWER_MODULES = ("media.mjs", "choices.mjs", "compare.mjs", "export.mjs", "app.mjs")
_IMPORT_LINE = re.compile(r'^import\s*\{[^}]*\}\s*from\s*"\./([a-z_]+\.mjs)";[ \t]*\n', re.M)
_EXPORT = re.compile(r"^export\s+(?=(?:async\s+)?function\b|const\b|let\b|class\b)", re.M)
_PLACEHOLDER = re.compile(r"@@(TITLE|DATA|SCRIPT)@@")
_MAX_WORKFLOW_TRIES = 8


@functools.lru_cache(maxsize=1)
def viewer_script() -> str:
    """The page's modules as one classic script (imports dropped, ``export`` keywords removed, one closure).

    Raises:
        ValueError: a module imports something that is not an earlier module, keeps an export form this
            inliner does not rewrite, or holds text that would end the ``<script>`` element.
    """
    parts = []
    for position, name in enumerate(VIEWER_MODULES):
        source = (WEB_VIEWER_DIR / name).read_text(encoding="utf-8")
        for imported in _IMPORT_LINE.findall(source):
            if imported not in VIEWER_MODULES[:position]:
                raise ValueError(f"web/viewer/{name}: imports {imported}, which is not inlined before it")
        body = _EXPORT.sub("", _IMPORT_LINE.sub("", source))
        leftover = re.search(r"^\s*(import|export)\b.*$", body, re.M)
        if leftover:
            raise ValueError(f"web/viewer/{name}: cannot inline {leftover.group(0).strip()!r}")
        parts.append(f"// ---- web/viewer/{name}\n{body}")
    script = '(function () {\n"use strict";\n' + "\n".join(parts) + "\nstartViewer(document, window);\n})();"
    low = script.lower()
    if "</script" in low or "<!--" in low:
        raise ValueError("web/viewer: a module contains '</script' or '<!--', which would break the page")
    return script


def _template() -> str:
    return (WEB_VIEWER_DIR / "viewer.html").read_text(encoding="utf-8")


def _value_texts(axis: AxisRecord) -> tuple[list[str | None], list[str | None]]:
    texts: list[str | None] = []
    errors: list[str | None] = []
    for v in axis.values:
        try:
            texts.append(value_text(v, axis.type))
            errors.append(None)
        except ValueError as exc:
            texts.append(None)
            errors.append(str(exc))
    return texts, errors


def _axes_json(axes: Sequence[AxisRecord]) -> list[dict[str, Any]]:
    out = []
    for a in axes:
        texts, errors = _value_texts(a)
        out.append({"name": a.name, "type": a.type, "values": [json_value(v) for v in a.values],
                    "labels": list(a.display_labels()), "value_texts": texts, "value_text_errors": errors})
    return out


def _png_paths(record: BatchRecord, root: str) -> Iterable[str]:
    for cell in record.cells:
        if cell.status != "done":
            continue
        for ref in cell.files:
            if isinstance(ref, Mapping):
                continue
            path = os.fspath(ref)
            if path.lower().endswith(".png"):
                yield path if os.path.isabs(path) else os.path.join(root, path)


def _json_chunk(chunks: Mapping[str, Any], key: str) -> Any:
    raw = chunks.get(key)
    if not isinstance(raw, str):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _workflow_of(record: BatchRecord, root: str) -> tuple[Any, list[dict[str, Any] | None]]:
    """The UI workflow from the first readable cell PNG, and each axis's parameter-node slot in it."""
    from PIL import Image  # local: only this reader needs Pillow

    slots: list[dict[str, Any] | None] = [None] * len(record.axes)
    # A few tries only: when metadata was disabled no PNG has it, and a 100,000-cell batch must not open them all.
    for path in itertools.islice(_png_paths(record, root), _MAX_WORKFLOW_TRIES):
        try:
            with Image.open(path) as image:
                chunks = dict(getattr(image, "text", {}) or {})
        except (OSError, ValueError):
            continue
        workflow, cell = _json_chunk(chunks, "workflow"), _json_chunk(chunks, CELL_INFO_KEY)
        if not isinstance(workflow, Mapping) or not isinstance(workflow.get("nodes"), list):
            continue
        nodes = {str(n.get("id")): n for n in workflow["nodes"] if isinstance(n, Mapping)}
        if isinstance(cell, Mapping):
            names, node_ids = cell.get("axes") or [], cell.get("parameter_nodes") or []
            by_name = {str(n): str(i) for n, i in zip(names, node_ids)}
            for position, axis in enumerate(record.axes):
                node_id = by_name.get(axis.name)
                widget = values_widget_index(nodes.get(node_id)) if node_id is not None else None
                if node_id is not None and widget is not None:
                    slots[position] = {"node_id": node_id, "widget": widget}
        return json_value(workflow), slots
    return None, slots


def viewer_data(
    record: BatchRecord,
    *,
    root: str,
    cells: list[dict[str, Any]],
    title: str | None = None,
    grid: Sequence[str] = (),
    choices_folder: PathLike | None = None,
) -> dict[str, Any]:
    """The JSON object embedded in ``viewer.html``.

    Args:
        record: the batch.
        root: the folder cell paths are relative to (the batch folder).
        cells: the cells' JSON entries, as the manifest writes them (``core.manifest`` owns that shape).
        title: the page title (default: the batch name or id).
        grid: the grid pages, relative to ``root``.
        choices_folder: the folder whose ``batch.json`` holds the stored choices (default ``root``).
    """
    workflow, slots = _workflow_of(record, root)
    folder = os.fspath(choices_folder if choices_folder is not None else root)
    try:
        stored = choices.read_choices(folder).as_dict()
    except ValueError as exc:
        logger.warning("WI: viewer of %s starts without stored choices: %s", record.batch_id, exc)
        stored = choices.Choices().as_dict()
    return {
        "format": "wi-viewer/2",
        "title": title or record.batch_name or record.batch_id or "Sweep",
        "batch_id": record.batch_id,
        "mode": record.mode,
        "axes": _axes_json(record.axes),
        "cells": cells,
        "grid": list(grid),
        "choices": stored,
        "workflow": workflow,
        "parameter_slots": slots,
    }


def json_for_script(obj: Any) -> str:
    """JSON safe inside a <script> element: no '</script>', no '<!--', no stray '&'."""
    text = json.dumps(json_value(obj), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def page_html(data: Mapping[str, Any]) -> str:
    """The viewer page for ``data`` (one pass over the placeholders: a value reading "@@SCRIPT@@" stays text)."""
    parts = {"TITLE": html.escape(str(data.get("title") or "Sweep"), quote=True), "DATA": json_for_script(data),
             "SCRIPT": viewer_script()}
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1)], _template())


def write_viewer(
    record: BatchRecord,
    out_dir: PathLike,
    *,
    root: str,
    cells: list[dict[str, Any]],
    title: str | None = None,
    grid: Sequence[str] = (),
    filename: str = "viewer.html",
) -> str:
    """Write the viewer page into ``out_dir``; returns its path.

    Raises:
        ValueError: ``filename`` is not a plain ``*.html`` name.
    """
    if not filename.endswith(".html") or "/" in filename or "\\" in filename:
        raise ValueError(f"filename: must be a plain *.html file name, got {filename!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = viewer_data(record, root=root, cells=cells, title=title, grid=grid, choices_folder=out)
    path = out / filename
    atomic_files.write_text(path, page_html(data))
    logger.info("viewer written: %s", path)
    return str(path)
