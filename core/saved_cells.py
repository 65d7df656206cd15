"""Which cells of an interrupted batch already left their images on disk: resume's file recognition.

Cell ends reach the journal in bursts (up to ``journal.COALESCE_S`` late), so a SIGKILL can lose the end of a
cell whose images are saved. Resume asks this module instead of running such a cell again. A file counts for
a cell only when both hold:

* it is whole: Pillow opens and verifies it (chunk by chunk up to ``IEND``); a file cut short by a kill in
  the middle of a write, by any saver, is never taken;
* it belongs to that cell: its embedded ``wi_cell`` block (``prompt_graph.CELL_INFO_KEY``, which ComfyUI
  writes into every PNG saved with ``extra_pnginfo``, core ``SaveImage`` included) names this batch and this
  cell; or, for a ``WISaveImage`` file saved without metadata (``--disable-metadata``), its name is the one
  ``paths.cell_filename`` gives this cell and node in this batch's folder.

Before all that, resume reads the cell's record (``paths.cell_record_filename``), which the sweep writes once
ComfyUI reported the cell finished (:func:`store_outputs`): every output of every node of the cell, whatever
node saved it (``SaveImage``, ``PreviewImage`` copied out of the temp folder, animated and video saves,
``SaveAudio``, text previews, custom nodes), with each file's size. A cell whose record names this batch and
cell and whose files are all there at their recorded sizes (a file cut short is never taken) is saved.

Without a record (killed between the save and the cell's end), a cell counts as saved only when every saver
of the cell finished: each ``WISaveImage`` node of the plan
has all its images (``wi_image`` tells how many; without metadata, at least the first), and each other saver
(a node with a literal ``filename_prefix``, such as core ``SaveImage``) that saved anything for this batch
has a file for this cell. A cell missing any of them runs again.

Plain Python (Pillow): must not import torch, comfy*, server, nodes, execution, folder_paths, comfy_execution,
aiohttp.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from . import atomic_files, paths
from .outputs import CellOutput
from .prompt_graph import CELL_INFO_KEY, SAVE_CLASS, SweepPlan

logger = logging.getLogger(__name__)

#: PNG text chunk WISaveImage adds to each image: ``{"node": id, "number": k, "count": n}``, so resume knows
#: whether a save node finished all the images of its cell.
IMAGE_INFO_KEY = "wi_image"
#: Stock savers' files older than the batch (minus this slack for clock steps) cannot be its cells'.
_MTIME_SLACK_S = 5.0

FileRef = dict[str, str]
#: The keys of a file reference the cell record keeps (``core.outputs.CellOutput.ref``) besides ``size``.
_REF_KEYS = ("filename", "subfolder", "type", "node_id", "kind", "media_type")


@dataclass(frozen=True)
class _PngFacts:
    batch_id: str | None
    index: int | None
    node: str | None
    number: int | None
    count: int | None


@dataclass
class _NodeFiles:
    """One WISaveImage node's files of one cell: image number -> name, and the image count it announced."""

    names: dict[int, str] = field(default_factory=dict)
    count: int | None = None

    def complete(self) -> bool:
        if not self.names:
            return False
        if self.count is None:
            return True
        return all(number in self.names for number in range(self.count))


def image_info(node_id: str, number: int, count: int) -> str:
    """The ``wi_image`` text of image ``number`` of ``count`` saved by node ``node_id`` (WISaveImage)."""
    return json.dumps({"node": str(node_id), "number": int(number), "count": int(count)})


def read_whole_png(path: str) -> dict[str, Any] | None:
    """The PNG's text chunks when the file is a whole, readable PNG; None when it is not (cut short, not a
    PNG, unreadable). Verifies every chunk up to ``IEND`` without decoding the pixels."""
    try:
        with Image.open(path) as image:
            if image.format != "PNG":
                return None
            info: dict[str, Any] = {str(key): value for key, value in image.info.items()}
            image.verify()
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError) as exc:
        logger.warning("WI: resume ignores %s: not a whole image (%s: %s)", path, type(exc).__name__, exc)
        return None
    return info


def _facts(info: Mapping[str, Any]) -> _PngFacts:
    def block(key: str) -> Mapping[str, Any]:
        raw = info.get(key)
        if not isinstance(raw, str):
            return {}
        try:
            value = json.loads(raw)
        except ValueError:
            return {}
        return value if isinstance(value, Mapping) else {}

    def integer(value: Any) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    cell, image = block(CELL_INFO_KEY), block(IMAGE_INFO_KEY)
    batch_id = cell.get("batch_id")
    node = image.get("node")
    return _PngFacts(
        batch_id=batch_id if isinstance(batch_id, str) else None,
        index=integer(cell.get("index")),
        node=node if isinstance(node, str) else None,
        number=integer(image.get("number")),
        count=integer(image.get("count")),
    )


def _listdir(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


def _stock_savers(plan: SweepPlan, targets: set[str] | None) -> dict[tuple[str, str], list[str]]:
    """Other savers of the plan, by (folder relative to the output root, file name prefix) -> node ids.

    ComfyUI's rule (``folder_paths.get_save_image_path``): the prefix's folder part under the output folder,
    files named ``<base>_<counter>_.png``. Prefixes with ``%...%`` variables (dates, sizes) or wired from
    another node cannot be known in advance; such savers' files are not looked for.
    """
    savers: dict[tuple[str, str], list[str]] = {}
    for node_id, node in plan.template.items():
        if not isinstance(node, Mapping) or node.get("class_type") == SAVE_CLASS:
            continue
        if targets is not None and str(node_id) not in targets:
            continue
        inputs = node.get("inputs")
        prefix = inputs.get("filename_prefix") if isinstance(inputs, Mapping) else None
        if not isinstance(prefix, str) or not prefix or "%" in prefix:
            continue
        normal = os.path.normpath(prefix)
        savers.setdefault((os.path.dirname(normal), os.path.basename(normal)), []).append(str(node_id))
    return savers


def remove_leftovers(output_dir: str, subfolder: str) -> int:
    """Delete the temporary files a kill in the middle of a write left in the batch folder; how many."""
    try:
        folder = paths.resolve_inside(output_dir, subfolder)
    except ValueError:
        return 0
    removed = 0
    for name in _listdir(folder):
        if atomic_files.is_temporary(name):
            try:
                os.unlink(os.path.join(folder, name))
                removed += 1
            except OSError as exc:
                logger.warning("WI: cannot remove the partial file %s: %s", name, exc)
    return removed


def cell_values(plan: SweepPlan, index: int) -> dict[str, Any]:
    """The cell's values by axis name: what its file names are built from (``paths.cell_filename``)."""
    return dict(zip((axis.name for axis in plan.axes), plan.combinations[index].values))


def _copy_from(source: str) -> Any:
    def write(handle: Any) -> None:
        with open(source, "rb") as src:
            shutil.copyfileobj(src, handle, 1 << 20)
    return write


def store_outputs(output_dir: str, temp_dir: str | None, found: Sequence[CellOutput], placed: Sequence[CellOutput], *,
                  batch_id: str, index: int, values: Mapping[str, object], subfolder: str,
                  record: bool = True) -> list[str]:
    """Put a finished cell's outputs in place for good, then write its record (read back by resume).

    ``found`` are the outputs as ComfyUI reported them, ``placed`` the same outputs where they live for good
    (``core.outputs.place``): a temp file (``PreviewImage``, wiped when ComfyUI restarts) is copied to its
    batch-folder name, a text value written to its ``.txt`` file, both through ``core.atomic_files``. The
    record is written last, so it only ever names files that are whole; ``record=False`` skips it (cells of
    ``WISaveImage`` files only, which resume recognises by name and metadata).

    Returns:
        One message per output that could not be stored (the cell keeps its other outputs; no record then).
    """
    problems: list[str] = []
    try:
        folder = paths.resolve_inside(output_dir, subfolder)
        os.makedirs(folder, exist_ok=True)
    except (ValueError, OSError) as exc:
        return [f"batch folder {subfolder!r}: {exc}"]
    for before, after in zip(found, placed):
        try:
            target = paths.resolve_inside(output_dir, after.subfolder, after.filename)
            if before.kind == "text" and before.text is not None:
                atomic_files.write_text(target, before.text)
            elif before.type != after.type or before.filename != after.filename:
                if temp_dir is None or before.type != "temp":
                    raise ValueError(f"no folder for {before.type!r} files")
                atomic_files.write_with(target, _copy_from(paths.resolve_inside(temp_dir, before.subfolder, before.filename)))
        except (ValueError, OSError) as exc:
            problems.append(f"node {before.node_id}: {before.filename or 'text'}: {exc}")
    if record and not problems:
        entries = []
        for out in placed:
            try:
                size = os.stat(paths.resolve_inside(output_dir, out.subfolder, out.filename)).st_size
            except (ValueError, OSError) as exc:
                problems.append(f"node {out.node_id}: {out.filename}: {exc}")
                continue
            entries.append({**out.ref(), "size": size})
        if not problems:
            body = {CELL_INFO_KEY: {"batch_id": batch_id, "index": index}, "outputs": entries}
            atomic_files.write_text(os.path.join(folder, paths.cell_record_filename(index, values)),
                                    json.dumps(body, ensure_ascii=False))
    for problem in problems:
        logger.warning("WI: batch %s cell %d: output not stored: %s", batch_id, index, problem)
    return problems


def _read_record(output_dir: str, folder: str, name: str, batch_id: str, index: int) -> list[FileRef] | None:
    """The refs of a cell record when it names this cell and every file it lists is there, whole."""
    path = os.path.join(folder, name)
    try:
        with open(path, encoding="utf-8") as handle:
            body = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("WI: resume ignores %s: %s", path, exc)
        return None
    cell = body.get(CELL_INFO_KEY) if isinstance(body, dict) else None
    entries = body.get("outputs") if isinstance(body, dict) else None
    if not isinstance(cell, dict) or cell.get("batch_id") != batch_id or cell.get("index") != index \
            or not isinstance(entries, list) or not entries:
        logger.warning("WI: resume ignores %s: it does not describe cell %d of batch %s", path, index, batch_id)
        return None
    refs: list[FileRef] = []
    for entry in entries:
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in _REF_KEYS):
            logger.warning("WI: resume ignores %s: a malformed output entry %r", path, entry)
            return None
        try:
            size = os.stat(paths.resolve_inside(output_dir, entry["subfolder"], entry["filename"])).st_size
        except (ValueError, OSError):
            logger.info("WI: cell %d: %s/%s is gone; the cell runs again", index, entry["subfolder"], entry["filename"])
            return None
        if size != entry.get("size"):
            logger.warning("WI: cell %d: %s/%s has %d bytes, not the %s recorded; the cell runs again",
                           index, entry["subfolder"], entry["filename"], size, entry.get("size"))
            return None
        refs.append({k: entry[k] for k in _REF_KEYS})
    return refs


def _find_recorded(output_dir: str, plan: SweepPlan, batch_id: str, subfolder: str,
                   wanted: set[int]) -> tuple[dict[int, list[FileRef]], bool]:
    """The cells with a valid record, and whether the batch folder holds any cell record at all."""
    try:
        folder = paths.resolve_inside(output_dir, subfolder)
    except ValueError:
        return {}, False
    names = set(_listdir(folder))
    any_record = any(name.endswith(paths.CELL_RECORD_SUFFIX) for name in names)
    found: dict[int, list[FileRef]] = {}
    for index in wanted:
        name = paths.cell_record_filename(index, cell_values(plan, index))
        if name in names:
            refs = _read_record(output_dir, folder, name, batch_id, index)
            if refs is not None:
                found[index] = refs
    return found, any_record


def find_saved_cells(
    output_dir: str,
    plan: SweepPlan,
    *,
    batch_id: str,
    subfolder: str,
    indices: Iterable[int],
    since: float | None = None,
    partial_targets: Sequence[Any] | None = None,
) -> dict[int, list[FileRef]]:
    """The cells among ``indices`` whose saved images are all on disk, with their file refs.

    Args:
        output_dir: ComfyUI's output folder (every path is checked against it).
        plan: the batch's plan (axes and values name WISaveImage files; the template names other savers).
        batch_id: the batch; files naming another batch are never taken.
        subfolder: the batch folder under ``output_dir`` (where WISaveImage writes).
        indices: the cells to look for (those the journal has not seen end).
        since: the batch's creation time (epoch seconds): other savers' older files are skipped unread.
        partial_targets: the output nodes the batch ran ("run selected outputs"); None for all.

    Returns:
        ``{index: [{"filename", "subfolder", "type": "output"}, ...]}`` for each recognised cell: the outputs its
        record lists (typed: node id, kind, media type), else its WISaveImage files (in node, then image
        order) when the plan has any, else the other savers' PNGs.
    """
    wanted = set(indices)
    if not wanted:
        return {}
    targets = {str(t) for t in partial_targets} if isinstance(partial_targets, (list, tuple)) else None
    found, any_record = _find_recorded(output_dir, plan, batch_id, subfolder, wanted)
    wanted -= set(found)
    if not wanted or any_record:
        # Every cell of a batch has the same output nodes: once one cell needed a record (outputs beyond
        # WISaveImage files), a cell without one lacks outputs the image rules below cannot see.
        return found
    our_nodes = [n for n in plan.save_node_ids if targets is None or n in targets]
    ours = _find_ours(output_dir, plan, batch_id, subfolder, wanted, our_nodes) if our_nodes else {}
    stock, active = _find_stock(output_dir, plan, batch_id, wanted, since, targets)
    for index in sorted(wanted):
        our_refs: list[FileRef] = []
        if our_nodes:
            per_node = ours.get(index, {})
            if not all(per_node.get(node, _NodeFiles()).complete() for node in our_nodes):
                continue
            for node in our_nodes:
                files = per_node[node]
                our_refs.extend({"filename": files.names[k], "subfolder": subfolder, "type": "output"} for k in sorted(files.names))
        stock_refs: list[FileRef] = []
        if active:
            cell_stock = stock.get(index, {})
            if not all(key in cell_stock for key in active):
                continue
            for key in sorted(active):
                stock_refs.extend(cell_stock[key])
        # The files a cell run to the end records (sweep.images_from_outputs): our save nodes', else the others'.
        refs = our_refs or stock_refs
        if refs:
            found[index] = refs
    return found


def _find_ours(output_dir: str, plan: SweepPlan, batch_id: str, subfolder: str, wanted: set[int],
               nodes: Sequence[str]) -> dict[int, dict[str, _NodeFiles]]:
    """WISaveImage files in the batch folder, by cell and node, named and (when tagged) tagged for the cell."""
    try:
        folder = paths.resolve_inside(output_dir, subfolder)
    except ValueError:
        logger.warning("WI: batch %s: its folder %r leaves the output folder; no saved files recognised", batch_id, subfolder)
        return {}
    by_stem: dict[str, list[tuple[int, str]]] = {}
    for name in _listdir(folder):
        split = paths.split_cell_filename(name)
        if split is not None:
            by_stem.setdefault(split[0], []).append((split[1], name))
    if not by_stem:
        return {}
    out: dict[int, dict[str, _NodeFiles]] = {}
    for index in wanted:
        values = cell_values(plan, index)
        for node in nodes:
            for number, name in by_stem.get(paths.cell_file_stem(index, values, node), ()):
                info = read_whole_png(os.path.join(folder, name))
                if info is None:
                    continue
                facts = _facts(info)
                if CELL_INFO_KEY in info and (facts.batch_id != batch_id or facts.index != index):
                    logger.warning("WI: resume ignores %s/%s: it names cell %s of batch %s", subfolder, name, facts.index, facts.batch_id)
                    continue
                files = out.setdefault(index, {}).setdefault(node, _NodeFiles())
                files.names[number] = name
                if facts.count is not None and facts.node == node:
                    files.count = facts.count
    return out


def _find_stock(output_dir: str, plan: SweepPlan, batch_id: str, wanted: set[int], since: float | None,
                targets: set[str] | None) -> tuple[dict[int, dict[tuple[str, str], list[FileRef]]], set[tuple[str, str]]]:
    """Other savers' PNGs whose ``wi_cell`` names this batch: per cell and saver, and the savers that saved
    anything of this batch at all (only those are required of every cell)."""
    found: dict[int, dict[tuple[str, str], list[FileRef]]] = {}
    active: set[tuple[str, str]] = set()
    for key in _stock_savers(plan, targets):
        relative, base = key
        try:
            folder = paths.resolve_inside(output_dir, relative)
        except ValueError:
            continue
        for name in sorted(_listdir(folder)):
            if not (name.startswith(base + "_") and name.endswith(".png")):
                continue
            path = os.path.join(folder, name)
            try:
                if since is not None and os.stat(path).st_mtime < since - _MTIME_SLACK_S:
                    continue
            except OSError:
                continue
            info = read_whole_png(path)
            facts = _facts(info) if info is not None else None
            if facts is None or facts.batch_id != batch_id or facts.index is None:
                continue
            active.add(key)
            if facts.index in wanted:
                ref = {"filename": name, "subfolder": relative.replace(os.sep, "/"), "type": "output"}
                found.setdefault(facts.index, {}).setdefault(key, []).append(ref)
    return found, active
