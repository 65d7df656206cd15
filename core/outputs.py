"""What a cell produced: ComfyUI's output entries classified into typed outputs, and where each one lives.

This module owns one rule: how an entry of a history result's ``outputs`` (``{node id: ui dict}``, what every
output node returns as ``{"ui": ...}``) becomes a typed output of kind ``image``, ``animated``, ``video``,
``audio`` or ``text``, with its node id and media type. Every other module (the sweep's result capture,
resume, the records, the grid, the manifest) asks this one. What ComfyUI reports, in 0.3.64, 0.8.0 and 0.38
alike (``comfy_api/latest/_ui.py``, ``nodes.py``, ``comfy_extras``):

* ``SaveImage``/``PreviewImage``: ``{"images": [{filename, subfolder, type}]}``; V3 previews add
  ``"animated": (False,)``. ``PreviewImage`` writes to the temp folder (``type: "temp"``), wiped on restart.
* ``SaveAnimatedWEBP``/``SaveAnimatedPNG``: ``{"images": [...], "animated": (True,)}``.
* ``SaveVideo``/``SaveWEBM`` (``PreviewVideo``): ``{"images": [{... .mp4/.webm}], "animated": (True,)}``: the
  extension tells a video from an animated image.
* ``SaveAudio``/``SaveAudioMP3``/``SaveAudioOpus``/``PreviewAudio``: ``{"audio": [{filename, subfolder, type}]}``.
* ``PreviewAny`` and text nodes: ``{"text": (value,)}`` (a list or tuple of strings).
* Custom nodes: ``gifs`` (VideoHelperSuite's ``{..., "format": "video/h264-mp4"}``) and ``video`` lists.

Text outputs have no file in ComfyUI; :func:`place` gives each one a file in the batch folder (the sweep
writes it), so text cells survive a restart and resume like any other. Temp outputs get a batch-folder name
the same way (the sweep copies them). Names come from ``core.paths`` (the one naming rule).

Plain Python, standard library only: must not import torch, ``comfy*``, ``server``, ``nodes``,
``folder_paths`` or aiohttp.
"""
from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from . import paths

logger = logging.getLogger(__name__)

__all__ = [
    "KINDS", "VISUAL_KINDS", "CellOutput", "Kind", "Origin", "classify", "describe_file", "kind_of_file",
    "media_type_of", "origin", "place",
]

Kind = Literal["image", "animated", "video", "audio", "text"]
KINDS: Final[tuple[str, ...]] = ("image", "animated", "video", "audio", "text")
#: Kinds a grid tile can show a picture of.
VISUAL_KINDS: Final[frozenset[str]] = frozenset({"image", "animated", "video"})

_VIDEO_EXT: Final[frozenset[str]] = frozenset({"mp4", "webm", "mov", "mkv", "avi", "m4v", "gifv"})
_AUDIO_EXT: Final[frozenset[str]] = frozenset({"flac", "wav", "mp3", "opus", "ogg", "m4a", "aac"})
#: Containers that may hold several frames: an entry marked ``animated`` in one of these is an animation.
_ANIMATED_EXT: Final[frozenset[str]] = frozenset({"webp", "png", "apng", "gif"})
#: Media types by extension: ``mimetypes`` depends on the system's tables (webp, flac and opus are missing on
#: some), and a manifest must not change with the machine that wrote it.
_MEDIA_TYPES: Final[dict[str, str]] = {
    "png": "image/png", "apng": "image/apng", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
    "gif": "image/gif", "bmp": "image/bmp", "tif": "image/tiff", "tiff": "image/tiff",
    "mp4": "video/mp4", "m4v": "video/mp4", "webm": "video/webm", "mov": "video/quicktime",
    "mkv": "video/x-matroska", "avi": "video/x-msvideo",
    "flac": "audio/flac", "wav": "audio/wav", "mp3": "audio/mpeg", "opus": "audio/ogg", "ogg": "audio/ogg",
    "m4a": "audio/mp4", "aac": "audio/aac",
    "txt": "text/plain",
}
_DEFAULT_MEDIA: Final[dict[str, str]] = {
    "image": "image/png", "animated": "image/webp", "video": "video/mp4", "audio": "audio/flac",
    "text": "text/plain",
}
#: The ui keys holding file entries, and the kind their entries have when the extension does not say more.
_FILE_KEYS: Final[tuple[tuple[str, str], ...]] = (("images", "image"), ("gifs", "animated"), ("video", "video"),
                                                 ("audio", "audio"))
TEXT_EXTENSION: Final[str] = "txt"


@dataclass(frozen=True, slots=True)
class Origin:
    """Which node made an output and what it is: shared by every file of that node and kind (see
    :func:`origin`), so a cell's file reference pays one pointer for it."""

    node_id: str
    kind: str
    media_type: str


@functools.lru_cache(maxsize=4096)
def origin(node_id: str, kind: str, media_type: str) -> Origin:
    """The one shared :class:`Origin` of this node, kind and media type."""
    if kind not in KINDS:
        raise ValueError(f"output kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return Origin(str(node_id), kind, str(media_type))


@dataclass(frozen=True, slots=True)
class CellOutput:
    """One output of one cell, as ComfyUI reported it (``filename``/``subfolder``/``type``) or as the batch
    folder holds it after :func:`place`.

    ``number`` is the output's position among its node's outputs of the cell (the file name's image number);
    ``text`` is the value of a text output (its file, once placed, holds the same text).
    """

    filename: str
    subfolder: str
    type: str
    node_id: str
    kind: str
    media_type: str
    number: int = 0
    text: str | None = None

    def ref(self) -> dict[str, str]:
        """The file reference the batch manager and journal keep (all strings; never the text itself)."""
        return {"filename": self.filename, "subfolder": self.subfolder, "type": self.type,
                "node_id": self.node_id, "kind": self.kind, "media_type": self.media_type}


def _extension(filename: str) -> str:
    return os.path.splitext(filename)[1].lower().lstrip(".")


def kind_of_file(filename: str, *, animated: bool = False, default: str = "image") -> str:
    """The kind of a file an output node reported: its extension first (a video or audio container is what
    it is, whatever key it came under), then the node's ``animated`` flag, then ``default``."""
    ext = _extension(filename)
    if ext in _VIDEO_EXT:
        return "video"
    if ext in _AUDIO_EXT:
        return "audio"
    if ext == TEXT_EXTENSION:
        return "text"
    if ext == "gif" or (animated and ext in _ANIMATED_EXT):
        return "animated"
    if default in ("video", "animated") and ext in _ANIMATED_EXT:
        return "animated"  # a custom node's "video"/"gifs" entry that is an animated image
    return default


def media_type_of(filename: str, kind: str, reported: object = None) -> str:
    """The media type of an output: by extension; else a reported ``format`` that looks like one; else the
    kind's usual one."""
    known = _MEDIA_TYPES.get(_extension(filename))
    if known is not None:
        return known
    if isinstance(reported, str) and "/" in reported:
        return reported
    return _DEFAULT_MEDIA.get(kind, "application/octet-stream")


def describe_file(filename: str, *, node_id: str = "", animated: bool = False) -> Origin:
    """The origin of a file known only by its name (a reference journaled before outputs were typed)."""
    kind = kind_of_file(filename, animated=animated)
    return origin(node_id, kind, media_type_of(filename, kind))


def _animated_flag(ui: Mapping[str, Any]) -> bool:
    flag = ui.get("animated")
    if isinstance(flag, (list, tuple)):
        return bool(flag) and any(bool(f) for f in flag)
    return bool(flag)


def _node_outputs(node_id: str, ui: Mapping[str, Any]) -> list[CellOutput]:
    found: list[CellOutput] = []
    animated = _animated_flag(ui)
    for key, default in _FILE_KEYS:
        entries = ui.get(key)
        if not isinstance(entries, (list, tuple)):
            continue
        for entry in entries:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("filename"), str) or not entry["filename"]:
                continue
            filename = str(entry["filename"])
            reported = entry.get("format")
            if key == "gifs" and isinstance(reported, str) and reported.startswith("video/"):
                kind = kind_of_file(filename, default="video")
            else:
                kind = kind_of_file(filename, animated=animated or key == "gifs", default=default)
            found.append(CellOutput(
                filename=filename, subfolder=str(entry.get("subfolder") or ""), type=str(entry.get("type") or "output"),
                node_id=node_id, kind=kind, media_type=media_type_of(filename, kind, reported),
            ))
    texts = ui.get("text")
    if isinstance(texts, str):
        texts = [texts]
    if isinstance(texts, (list, tuple)):
        for value in texts:
            if isinstance(value, str):
                found.append(CellOutput(filename="", subfolder="", type="text", node_id=node_id, kind="text",
                                        media_type="text/plain", text=value))
    numbered: list[CellOutput] = []
    for number, out in enumerate(found):
        numbered.append(CellOutput(out.filename, out.subfolder, out.type, out.node_id, out.kind, out.media_type,
                                   number, out.text))
    return numbered


def _node_order(node_id: str) -> tuple[int, int, str]:
    # Numeric ids in numeric order ("10" after "9"), subgraph ids ("5:3") and others after them by text.
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def classify(outputs: Any, prefer_nodes: Sequence[str] = ()) -> list[CellOutput]:
    """Every output of a cell from its history result's ``outputs``: ``prefer_nodes`` (the pack's save nodes)
    first, then the other nodes in id order; within a node, in the order it reported them.

    Entries that are not what ComfyUI reports (no file name, not a mapping) are skipped; anything that is not
    a mapping gives no outputs. Never raises on bad input: it runs on ComfyUI's worker thread.
    """
    if not isinstance(outputs, Mapping):
        return []
    preferred = [str(n) for n in prefer_nodes if str(n) in outputs or n in outputs]
    rest = sorted((str(n) for n in outputs if str(n) not in preferred), key=_node_order)
    found: list[CellOutput] = []
    for node_id in (*preferred, *rest):
        ui = outputs.get(node_id, outputs.get(int(node_id)) if node_id.isdigit() else None)
        if isinstance(ui, Mapping):
            found.extend(_node_outputs(node_id, ui))
    return found


def place(found: Sequence[CellOutput], *, subfolder: str, index: int, values: Mapping[str, object]) -> list[CellOutput]:
    """Where each output lives for good: files ComfyUI saved (``type: "output"``) stay where they are; temp
    files and text values get a name in the batch folder (``subfolder``), from ``paths.cell_filename`` with
    the output's node and number, and the temp file's own extension (or ``.txt``).

    The caller copies the temp files and writes the texts to those names (see ``core.saved_cells``).
    """
    placed: list[CellOutput] = []
    for out in found:
        if out.type == "output":
            placed.append(out)
            continue
        ext = TEXT_EXTENSION if out.kind == "text" else (_extension(out.filename) or "bin")
        name = paths.cell_filename(index, values, out.number, node_id=out.node_id, extension=ext)
        placed.append(CellOutput(name, subfolder, "output", out.node_id, out.kind, out.media_type, out.number, out.text))
    return placed
