"""The one label formatter and the one JSON converter for parameter values.

This module owns two rules that every other module calls instead of writing its own copy:

* :func:`format_label` — the display text of one swept value. Grid headers, the manifest's and the viewer's
  ``labels``, the batch manager's axis labels (``/wi/status``) and anything else that shows a value to a
  person use it, so ``0.1 + 0.2`` reads ``0.3`` everywhere (two formatters once printed
  ``0.30000000000000004`` on one path and ``0.3`` on the other).
* :func:`json_value` — a JSON-ready deep copy of a value. Status dicts, ``batch.json``, the viewer's data,
  the plan stored in the journal and the PNG metadata all convert through it, so an axis value and a cell's
  value come out with the same JSON type.

Plain Python, standard library only: must not import torch, ``comfy*``, ``server``, ``nodes``,
``folder_paths`` or aiohttp (tests/test_core_imports.py enforces it), nor Pillow: the manifest and the batch
manager use it without drawing anything.
"""
from __future__ import annotations

import logging
import math
import numbers
import re
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["MODEL_EXTENSIONS", "format_label", "json_value", "value_text"]

#: Extensions of model files: a value ending in one is shown by its base name without the extension.
MODEL_EXTENSIONS: tuple[str, ...] = (".safetensors", ".ckpt", ".pt", ".bin", ".pth", ".sft", ".gguf", ".onnx")
#: Further extensions dropped from path-like labels (images and text lists picked from folders).
_OTHER_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".txt", ".json", ".yaml")
_SEPARATOR_RE = re.compile(r"[\\/]")
_SPACE_RE = re.compile(r"\s")

#: ``str()`` fallbacks of :func:`json_value` are cut here, so a stray repr or traceback cannot bloat a status
#: body or a manifest. Strings themselves are never cut: they are user values (prompts) and must round-trip.
MAX_FALLBACK_TEXT = 2000
#: Deeper nesting than this is stringified (metadata from other packs may be cyclic or absurdly deep).
MAX_DEPTH = 32


def _is_pathlike(text: str) -> bool:
    # A slash alone is not enough ("red/blue hair" is a prompt): no whitespace, or a model extension.
    low = text.lower()
    return low.endswith(MODEL_EXTENSIONS) or (bool(_SEPARATOR_RE.search(text)) and not _SPACE_RE.search(text))


def format_label(value: Any, type_: str = "STRING") -> str:
    """Display text of one parameter value: compact floats, base names for model and file paths.

    ``0.1 + 0.2`` shows as ``0.3``; ``7.0`` as ``7.0``; ``True`` as ``true``; ``None`` as an em dash;
    ``"sdxl/juggernaut_v9.safetensors"`` (STRING or COMBO) as ``juggernaut_v9``. Other text is returned
    unchanged (long prompts are shortened by the grid's legend, not here).

    Args:
        value: a parsed parameter value (int, float, str, bool) or its JSON form.
        type_: the parameter type (``INT``, ``FLOAT``, ``STRING``, ``BOOLEAN``, ``COMBO``, ``SEED``); only
            STRING and COMBO values are shortened as paths.

    Returns:
        The label text.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        text = f"{value:.6g}"
        if "e" not in text and "." not in text:
            text += ".0"  # a float axis keeps looking like floats: 7.0, not 7
        return text
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "\u2014"
    text = str(value)
    stripped = text.strip()
    if type_ in ("STRING", "COMBO") and "\n" not in text and _is_pathlike(stripped):
        base = _SEPARATOR_RE.split(stripped)[-1]
        low = base.lower()
        for ext in MODEL_EXTENSIONS + _OTHER_EXTENSIONS:
            if low.endswith(ext) and len(base) > len(ext):
                base = base[: -len(ext)]
                break
        return base or text
    return text


def _fallback_text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_FALLBACK_TEXT else text[: MAX_FALLBACK_TEXT - 1] + "\u2026"


def json_value(value: Any, _depth: int = 0) -> Any:
    """Return a JSON-ready deep copy of ``value``.

    None, bool, str, integral and finite real numbers pass through as plain Python types (``str`` and ``int``
    subclasses such as enums become their plain value); mappings become dicts with string keys; lists and
    tuples become lists; anything else (including NaN and infinities, which JSON cannot hold, and nesting
    deeper than :data:`MAX_DEPTH`) becomes its ``str()``, cut to :data:`MAX_FALLBACK_TEXT` characters.
    Callers must not hand in tensors or images: they would only be stringified.

    The result always encodes with ``json.dumps(..., allow_nan=False)``.
    """
    if value is None or type(value) is str or type(value) is bool or type(value) is int:
        return value
    if type(value) is float:
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else str(number)
    if _depth >= MAX_DEPTH:
        return _fallback_text(value)
    if isinstance(value, Mapping):
        return {str(k): json_value(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v, _depth + 1) for v in value]
    return _fallback_text(value)


#: Text that the value syntax would not read as a plain value when unquoted: separators, quotes, patterns.
_NEEDS_QUOTES = re.compile(r'[,"*?]')
_FILE_PREFIX = re.compile(r"\s*file\s*:", re.IGNORECASE)


def value_text(value: Any, type_: str = "STRING") -> str:
    """One value written in the pack's value syntax (docs/value-syntax.md), so the parser reads it back exactly.

    Several values joined with ``", "`` form a parameter's values text (the viewer's "Sweep the winners" does
    that): numbers are written exactly (``repr`` for floats: ``0.1`` stays 0.1), booleans as ``true``/``false``,
    and text that would otherwise be split, unquoted or read as a pattern, a range or a ``file:`` list is
    CSV-quoted (``"a, b"``, ``"file:x"``, an empty text as ``""``; a quote inside is doubled).

    Args:
        value: a parsed parameter value (int, float, str, bool) or its JSON form.
        type_: the parameter type, named in errors (a quoted item is a plain value for every type, so the
            quoting rule is the same for all).

    Returns:
        The value's text.

    Raises:
        ValueError: the value cannot be written so that it reads back: text with a line break or with spaces
            at either end (the parser trims every value), or a number that is not finite.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"value {value!r} of a {type_} parameter cannot be written: not a finite number")
        return repr(value)
    if value is None:
        raise ValueError(f"a {type_} parameter has no value to write (None)")
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError(f"value {_fallback_text(text)!r} cannot be written in the value syntax: it has a line break")
    if text != text.strip():
        raise ValueError(f"value {_fallback_text(text)!r} cannot be written in the value syntax: "
                         "values are trimmed, so spaces at either end would be lost")
    if not text or _NEEDS_QUOTES.search(text) or _FILE_PREFIX.match(text) or text.lower().startswith("random:"):
        return '"' + text.replace('"', '""') + '"'
    return text
