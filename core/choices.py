"""A batch's choices: which cells the user starred and which they rejected, kept in ``batch.json``.

This module owns the rule for choices (their shape, their validation, where they are stored) and the
read-modify-write of ``batch.json`` that stores them. The route ``PUT /wi/batch/{id}/choices`` and the
manifest writer (which rewrites ``batch.json`` when a batch ends or resumes, and must not drop the choices)
both call it. The viewer keeps the same object in ``localStorage`` when it is opened as a file.

Shape: ``{"starred": [cell index, ...], "rejected": [cell index, ...]}``, each list sorted, without
duplicates, no cell in both.

Plain Python, standard library only: must not import torch, ``comfy*``, ``server``, ``nodes``,
``folder_paths`` or aiohttp.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import atomic_files
from .paths import resolve_inside

logger = logging.getLogger(__name__)

__all__ = ["CHOICES_KEY", "MANIFEST_NAME", "Choices", "keep_choices", "parse_choices", "read_choices",
           "save_choices"]

CHOICES_KEY = "choices"
MANIFEST_NAME = "batch.json"
_FIELDS = ("starred", "rejected")
#: Writers of one batch.json wait for each other (the route on the loop's executor, the manifest on the
#: outputs thread), so a read-modify-write never loses the other's change.
_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Choices:
    """The starred and rejected cell indices of one batch."""

    starred: tuple[int, ...] = ()
    rejected: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, list[int]]:
        return {"starred": list(self.starred), "rejected": list(self.rejected)}


def _indices(raw: Any, field: str, cell_count: int | None) -> tuple[int, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)):
        raise ValueError(f"choices.{field}: must be a list of cell indices, got {type(raw).__name__}")
    seen: set[int] = set()
    for position, item in enumerate(raw):
        if isinstance(item, bool) or not isinstance(item, int):
            raise ValueError(f"choices.{field}[{position}]: must be a whole number (a cell index), got {item!r}")
        if item < 0 or (cell_count is not None and item >= cell_count):
            limit = "a cell index" if cell_count is None else f"between 0 and {cell_count - 1}"
            raise ValueError(f"choices.{field}[{position}]: {item} is not {limit}")
        seen.add(item)
    return tuple(sorted(seen))


def parse_choices(body: Any, *, cell_count: int | None = None) -> Choices:
    """Validate a choices object (a route body, the ``choices`` of ``batch.json``).

    Args:
        body: ``{"starred": [...], "rejected": [...]}``; a missing list counts as empty.
        cell_count: the batch's number of cells, when known: indices must be below it.

    Returns:
        The choices, each list sorted without duplicates.

    Raises:
        ValueError: not an object, an unknown key, a list that is not of cell indices, an index outside the
            batch, or a cell both starred and rejected; the message names what was wrong.
    """
    if not isinstance(body, Mapping):
        raise ValueError(f"choices: must be an object with 'starred' and 'rejected' lists, got {type(body).__name__}")
    unknown = sorted(str(k) for k in body if k not in _FIELDS)
    if unknown:
        raise ValueError(f"choices: unknown key(s) {', '.join(unknown)} (expected 'starred' and 'rejected')")
    starred = _indices(body.get("starred"), "starred", cell_count)
    rejected = _indices(body.get("rejected"), "rejected", cell_count)
    both = sorted(set(starred) & set(rejected))
    if both:
        raise ValueError(f"choices: cell(s) {', '.join(map(str, both))} are both starred and rejected")
    return Choices(starred, rejected)


def _manifest_path(folder: str | os.PathLike[str]) -> str:
    return resolve_inside(os.fspath(folder), MANIFEST_NAME)


def _read_document(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{MANIFEST_NAME} cannot be read: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{MANIFEST_NAME} is not a JSON object")
    return doc


def _cell_count(doc: Mapping[str, Any]) -> int | None:
    cells = doc.get("cells")
    if isinstance(cells, list):
        return len(cells)
    count = doc.get("count")
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def read_choices(folder: str | os.PathLike[str]) -> Choices:
    """The choices stored in the batch folder's ``batch.json``; empty when there is none yet.

    A stored object that no longer validates (edited by hand) is logged and read as empty rather than
    breaking the viewer or the panel.

    Raises:
        ValueError: ``batch.json`` exists but is not a readable JSON object.
    """
    doc = _read_document(_manifest_path(folder))
    if doc is None or doc.get(CHOICES_KEY) is None:
        return Choices()
    try:
        return parse_choices(doc[CHOICES_KEY], cell_count=_cell_count(doc))
    except ValueError as exc:
        logger.warning("WI: ignoring the stored choices of %s: %s", folder, exc)
        return Choices()


def save_choices(folder: str | os.PathLike[str], body: Any, *, cell_count: int | None = None) -> Choices:
    """Validate ``body`` and store it under ``"choices"`` in the folder's ``batch.json`` (atomically).

    ``batch.json`` is written when a batch ends; choices made before that (from the Sweeps panel while the
    batch runs) start a document holding only them, which the manifest writer keeps (:func:`keep_choices`).

    Args:
        folder: the batch folder (already confined to the output root by the caller).
        body: the choices object (see :func:`parse_choices`).
        cell_count: the batch's cell count when the caller knows it (else taken from ``batch.json``).

    Returns:
        The saved choices.

    Raises:
        ValueError: invalid choices, or an unreadable ``batch.json``.
    """
    path = _manifest_path(folder)
    with _LOCK:
        doc = _read_document(path) or {}
        count = cell_count if cell_count is not None else _cell_count(doc)
        choices = parse_choices(body, cell_count=count)
        doc[CHOICES_KEY] = choices.as_dict()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_files.write_text(path, json.dumps(doc, ensure_ascii=False, indent=2, allow_nan=False) + "\n")
    logger.info("WI: choices saved in %s (%d starred, %d rejected)", path, len(choices.starred), len(choices.rejected))
    return choices


def keep_choices(path: str | os.PathLike[str], doc: dict[str, Any],
                 write: Callable[[str, dict[str, Any]], None]) -> None:
    """Write a new ``batch.json`` document at ``path`` through ``write(path, doc)``, keeping the stored choices.

    The manifest writer calls this, so a batch that ends, resumes or is rewritten keeps what the user chose.
    The read and the write happen under the same lock as :func:`save_choices`.
    """
    p = os.fspath(path)
    with _LOCK:
        try:
            old = _read_document(p)
        except ValueError as exc:
            logger.warning("WI: %s: previous choices not kept: %s", p, exc)
            old = None
        if old is not None and old.get(CHOICES_KEY) is not None and CHOICES_KEY not in doc:
            try:
                doc = {**doc, CHOICES_KEY: parse_choices(old[CHOICES_KEY], cell_count=_cell_count(doc)).as_dict()}
            except ValueError as exc:
                logger.warning("WI: %s: previous choices not kept: %s", p, exc)
        write(p, doc)
