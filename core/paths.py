"""The one naming rule for everything a sweep writes, and safe paths built from user input.

Owns: batch ids and their folders (``<name>_<8 hex>``, always keeping the unique suffix), cell file names
(cell, save node, image number), the counter of files saved outside a sweep, and ``resolve_inside``, the
``os.path.commonpath`` check every path built from user input goes through. Every module that writes or looks
for a sweep's files asks this one, so the writer (WISaveImage), resume (``core/saved_cells.py``), the routes and
the manifest cannot drift into two answers.

Every path this pack writes is ``<root>/<subfolder>/<file>``, where the subfolder and file name come from
these functions, and the adapter still checks the result with ``os.path.commonpath`` against the root.
Sanitising here means a hostile name degrades into a harmless one instead of an error that loses a cell.

Plain Python: must not import torch, comfy*, server, nodes, execution, folder_paths, comfy_execution, aiohttp.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Iterable, Mapping

from .values import format_label

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
MAX_COMPONENT = 64

#: ``_<8 hex>``: what makes two batches of the same name different. Never cut off.
BATCH_SUFFIX_HEX = 8
_BATCH_SUFFIX_LEN = 1 + BATCH_SUFFIX_HEX
#: The readable part of a batch id: a batch id (and so its folder name) is at most MAX_COMPONENT characters.
MAX_BATCH_NAME = MAX_COMPONENT - _BATCH_SUFFIX_LEN
_NAME_JUNK = re.compile(r"[^A-Za-z0-9_-]+")
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
_SUFFIX = re.compile(r"_[0-9a-f]{%d}\Z" % BATCH_SUFFIX_HEX)

#: Cell file names: ``c<index>_<values>_n<save node>_<image>.png`` (see :func:`cell_filename`).
MAX_CELL_FILENAME = 120
_NODE_JUNK = re.compile(r"[^A-Za-z0-9]+")
_MAX_NODE_PART = 24


def safe_component(text: object, *, fallback: str = "x", max_length: int = MAX_COMPONENT) -> str:
    """One file or folder name: only ``[A-Za-z0-9._-]``, no leading dots, not reserved on Windows, bounded."""
    cleaned = _UNSAFE.sub("_", str(text).replace("\x00", "")).strip("._ ")[:max_length].rstrip("._ ")
    if not cleaned:
        return fallback
    if cleaned.split(".")[0].upper() in _WINDOWS_RESERVED:
        cleaned = f"_{cleaned}"[:max_length].rstrip("._ ")
        if cleaned.split(".")[0].upper() in _WINDOWS_RESERVED or cleaned in ("", "_"):
            return fallback
    return cleaned


def safe_subfolder(prefix: object, *, fallback: str = "WI", max_depth: int = 4) -> str:
    """A relative folder from a user prefix such as ``"sweeps/portraits"``: each part sanitised, never ``..``."""
    parts = [p for p in re.split(r"[\\/]+", str(prefix)) if p not in ("", ".", "..")]
    cleaned = [safe_component(p, fallback="") for p in parts[:max_depth]]
    cleaned = [p for p in cleaned if p]
    return "/".join(cleaned) or fallback


# ------------------------------------------------------------------------------------------------ batches


def sanitize_batch_name(name: object) -> str:
    """The readable part of a batch id: ``[A-Za-z0-9_-]`` only, runs of anything else as one ``_``.

    At most :data:`MAX_BATCH_NAME` characters, so the id with its ``_<8 hex>`` suffix fits one folder name
    whole; no ``_``/``-`` at either end (a folder name must not start with one, and the id *is* the folder
    name); ``"batch"`` when nothing meaningful is left.
    """
    cleaned = _NAME_JUNK.sub("_", str(name)).strip("_-")[:MAX_BATCH_NAME].rstrip("_-")
    return cleaned or "batch"


def new_batch_id(batch_name: object) -> str:
    """``<sanitised name>_<8 hex>``: at most :data:`MAX_COMPONENT` characters, so it is its own folder name."""
    return f"{sanitize_batch_name(batch_name)}_{secrets.token_hex(BATCH_SUFFIX_HEX // 2)}"


def batch_folder_name(batch_id: str) -> str:
    """The folder of a batch: the id itself, which :func:`new_batch_id` makes a safe name.

    An id made elsewhere (an older release cut names to 64 characters *before* adding the suffix, so ids
    reach 73) is shortened in its readable part only: the unique suffix always survives, so two batches
    never share a folder.
    """
    if _BATCH_ID.fullmatch(batch_id) and safe_component(batch_id, fallback="") == batch_id and len(batch_id) <= MAX_COMPONENT:
        return batch_id
    suffix = _SUFFIX.search(batch_id)
    if suffix is None:
        return safe_component(batch_id, fallback="batch")
    head = sanitize_batch_name(batch_id[: suffix.start()])
    return f"{head}{suffix.group(0)}"


def batch_subfolder(filename_prefix: object, batch_id: str) -> str:
    """Where a batch's files live under the output directory: ``<prefix folders>/<batch folder>``."""
    return f"{safe_subfolder(filename_prefix)}/{batch_folder_name(batch_id)}"


# ------------------------------------------------------------------------------------------------ cells


def node_part(node_id: object) -> str:
    """``n<node id>``: the save node's part of a cell file name (``"5:3"``, a subgraph node, gives ``n5-3``).

    Only letters, digits and ``-``, so it can never run into the ``_<image>`` that follows it.
    """
    return "n" + (_NODE_JUNK.sub("-", str(node_id)).strip("-")[:_MAX_NODE_PART] or "0")


def cell_file_stem(index: int, values: Mapping[str, object], node_id: object) -> str:
    """Everything of a cell file's name before ``_<image number>.png``; see :func:`cell_filename`."""
    label = "_".join(f"{safe_component(k, max_length=16)}-{safe_component(format_label(v), max_length=24)}" for k, v in values.items())
    node = node_part(node_id)
    stem = f"c{index:05d}"
    if label:
        # Room for "_<node>" and "_<image>.<ext>" (image numbers below 10,000, a 4-letter extension).
        budget = MAX_CELL_FILENAME - len(node) - 12
        stem = f"{stem}_{label}"[:budget].rstrip("._-")
    return f"{stem}_{node}"


def cell_filename(index: int, values: Mapping[str, object], image_number: int, *, node_id: object,
                  extension: str = "png") -> str:
    """``c00012_cfg-7_sampler-euler_n9_0.png``: sortable by cell, readable by value, unique per save node.

    The save node is always part of the name, not only when a sweep has several: a file's name then depends
    on its own cell, node and image alone, never on what else the graph holds, and whoever looks for a
    cell's files (resume) needs nothing but the plan's save node ids.
    """
    return f"{cell_file_stem(index, values, node_id)}_{int(image_number)}.{extension}"


#: How every cell record's name ends (:func:`cell_record_filename`).
CELL_RECORD_SUFFIX = f"_{node_part('cell')}.json"


def cell_record_filename(index: int, values: Mapping[str, object]) -> str:
    """``c00012_cfg-7_ncell.json``: the record of everything a finished cell produced, whichever nodes saved it
    (``core/saved_cells.py``); beside the cell's files, and never a name a save node can take."""
    return f"{cell_file_stem(index, values, 'cell')}.json"


def split_cell_filename(filename: str, *, extension: str = "png") -> tuple[str, int] | None:
    """``(stem, image number)`` of a name of the :func:`cell_filename` shape, else None; the stem compares
    with :func:`cell_file_stem` of a cell and node."""
    head, dot, ext = filename.rpartition(".")
    if not dot or ext != extension:
        return None
    stem, _, tail = head.rpartition("_")
    if not stem.startswith("c") or not (tail.isdigit() and tail.isascii()):
        return None
    return stem, int(tail)


# ------------------------------------------------------------------------------------------------ single saves


def single_filename(prefix: str, counter: int) -> str:
    """``<prefix>_00001.png``: a file saved outside a sweep (the iterator disabled)."""
    return f"{prefix}_{counter:05d}.png"


def next_single_counter(prefix: str, names: Iterable[str]) -> int:
    """ComfyUI's rule (``folder_paths.get_save_image_path``): the highest counter among ``names`` + 1, or 1.

    Never the number of files: after a deletion that would name a file that still exists.
    """
    pattern = re.compile(re.escape(prefix) + r"_(\d+)\.png\Z")
    highest = 0
    for name in names:
        match = pattern.match(name)
        if match is not None and match.group(1).isascii():
            highest = max(highest, int(match.group(1)))
    return highest + 1


# ------------------------------------------------------------------------------------------------ roots


def resolve_inside(root: str, *parts: str) -> str:
    """``root/parts...`` resolved (links followed); ValueError if the result leaves ``root``."""
    real_root = os.path.realpath(root)
    candidate = os.path.realpath(os.path.join(real_root, *parts))
    if os.path.commonpath([real_root, candidate]) != real_root:
        raise ValueError(f"path {os.path.join(*parts)!r} leaves its root {root!r}")
    return candidate
