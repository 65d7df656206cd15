"""Safe names and folders built from user input (batch names, filename prefixes, axis values).

Every path this pack writes is ``<root>/<subfolder>/<file>``, where the subfolder and file name come from
these functions, and the adapter still checks the result with ``os.path.commonpath`` against the root.
Sanitising here means a hostile name degrades into a harmless one instead of an error that loses a cell.

Plain Python: must not import torch, comfy*, server, nodes, execution, folder_paths, comfy_execution, aiohttp.
"""
from __future__ import annotations

import logging
import os
import re

from .values import format_label

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
MAX_COMPONENT = 64


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


def batch_subfolder(filename_prefix: object, batch_id: str) -> str:
    """Where a batch's files live under the output directory: ``<prefix folders>/<batch_id>``."""
    return f"{safe_subfolder(filename_prefix)}/{safe_component(batch_id, fallback='batch')}"


def cell_filename(index: int, values: dict[str, object], image_number: int, *, extension: str = "png", max_length: int = 120) -> str:
    """``c00012_cfg-7_sampler-euler_0.png``: sortable by cell, readable by value, always safe."""
    label = "_".join(f"{safe_component(k, max_length=16)}-{safe_component(format_label(v), max_length=24)}" for k, v in values.items())
    stem = f"c{index:05d}"
    if label:
        stem = f"{stem}_{label}"[: max_length - 12].rstrip("._-")
    return f"{stem}_{image_number}.{extension}"


def resolve_inside(root: str, *parts: str) -> str:
    """``root/parts...`` resolved (links followed); ValueError if the result leaves ``root``."""
    real_root = os.path.realpath(root)
    candidate = os.path.realpath(os.path.join(real_root, *parts))
    if os.path.commonpath([real_root, candidate]) != real_root:
        raise ValueError(f"path {os.path.join(*parts)!r} leaves its root {root!r}")
    return candidate
