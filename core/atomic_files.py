"""Every file the pack writes appears whole or not at all: write to a temporary name, flush, rename.

The one owner of that rule. A reader (the grid, ``/wi/batch/...``, resume after a SIGKILL) never sees a
half-written file: it either finds the old content, nothing, or the complete new file. The temporary name
starts with ``.`` and ends with ``.part``, so it is never taken for a cell image or a manifest.

Plain Python: must not import torch, comfy*, server, nodes, execution, folder_paths, comfy_execution, aiohttp.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, cast

logger = logging.getLogger(__name__)

TEMP_SUFFIX = ".part"
# Half of a UTF-16 pair: what a JavaScript client sends when it cuts an emoji in half. UTF-8 cannot hold one.
_SURROGATE = re.compile("[\ud800-\udfff]")


def is_temporary(name: str) -> bool:
    """True for a name :func:`open_atomic` uses while writing (left behind only by a kill mid-write)."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


@contextlib.contextmanager
def open_atomic(path: str | os.PathLike[str], mode: str = "wb", *, encoding: str | None = None,
                newline: str | None = None, durable: bool = False,
                exclusive: bool = False) -> Iterator[IO[str] | IO[bytes]]:
    """Open a temporary file beside ``path``; on a clean exit flush it and rename it onto ``path``.

    On an exception the temporary file is removed and ``path`` is untouched.

    Args:
        path: the final file.
        mode: ``"wb"`` or ``"w"``.
        durable: also ``fsync`` the data before the rename (survives a power cut, not only a killed process).
        exclusive: never replace an existing ``path``: the file is put in place with a hard link, which fails
            when the name is taken (a rename would silently clobber it).

    Raises:
        FileExistsError: ``exclusive`` and ``path`` already exists (nothing was written to it).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"open_atomic writes new files only, not mode {mode!r}")
    target = os.fspath(path)
    folder, name = os.path.split(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=TEMP_SUFFIX, dir=folder or ".")
    try:
        with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None,
                       newline=newline if "b" not in mode else None) as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        if exclusive:
            _link_new(tmp, target)
        else:
            os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _link_new(tmp: str, target: str) -> None:
    """``tmp`` appears whole at ``target`` unless ``target`` exists (FileExistsError); ``tmp`` is removed."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError:
        # A file system without hard links: reserve the name first (O_EXCL cannot clobber), then fill it by
        # rename. The reserved name is empty for that instant, the one case where a reader could see it so.
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        os.replace(tmp, target)
        return
    os.unlink(tmp)


def write_bytes(path: str | os.PathLike[str], data: bytes, *, durable: bool = False) -> None:
    """``path`` gets exactly ``data``, atomically."""
    with open_atomic(path, "wb", durable=durable) as handle:
        cast(IO[bytes], handle).write(data)


def write_text(path: str | os.PathLike[str], text: str, *, durable: bool = False) -> None:
    """``path`` gets exactly ``text`` (UTF-8), atomically.

    A lone UTF-16 surrogate (which UTF-8 cannot encode) is written as U+FFFD, with a warning, instead of
    losing the whole file to a UnicodeEncodeError.
    """
    if not text.isascii() and _SURROGATE.search(text) is not None:
        logger.warning("WI: %s: a lone UTF-16 surrogate (half of an emoji?) is written as U+FFFD", os.fspath(path))
        text = _SURROGATE.sub("\ufffd", text)
    with open_atomic(path, "w", encoding="utf-8", newline="", durable=durable) as handle:
        cast(IO[str], handle).write(text)


def write_with(path: str | os.PathLike[str], writer: Callable[[IO[bytes]], None], *, durable: bool = False,
               exclusive: bool = False) -> None:
    """``writer(file)`` fills ``path`` atomically, e.g. ``lambda f: image.save(f, "PNG")``.

    Raises:
        FileExistsError: ``exclusive`` and ``path`` already exists (see :func:`open_atomic`).
    """
    with open_atomic(path, "wb", durable=durable, exclusive=exclusive) as handle:
        writer(cast(IO[bytes], handle))
