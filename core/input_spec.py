"""Reading a node class's ``INPUT_TYPES()`` dict: an input's spec by the name it has in an API prompt.

Owns the shape knowledge only; the adapter (``nodes/_comfy.py`` ``combo_options`` / ``input_default``) calls
``INPUT_TYPES()`` and hands the dict here. Shapes (ComfyUI 0.3.64 to 0.8):

* V1: ``{"required": {name: (TYPE or [options...], {"default": ...})}, "optional": {...}}``;
* a V3 combo (and some V1 nodes, e.g. LoadImage): ``("COMBO", {"options": [...], "default"?: ...})``;
* V3 dynamic inputs, whose nested inputs appear in the API prompt under dotted names:
  ``("COMFY_DYNAMICCOMBO_V3", {"options": [{"key": k, "inputs": {"required": {...}}}]})`` gives
  ``resize_type`` (one of the keys) and ``resize_type.multiplier``; ``("COMFY_AUTOGROW_V3", {"template":
  {"input": {"required": {"image": spec}}, "prefix": "image", "max": 10}})`` gives ``images.image0`` ...;
  ``("COMFY_DYNAMICSLOT_V3", {"inputs": {...}})`` gives ``slot.<nested>``. Nesting repeats (``a.b.c``).

A nested name found under several options of a dynamic combo takes the first option declaring it: the
selected key is in the prompt, not in the class, and options rarely declare one name twice.

Plain Python: must not import torch, comfy*, server, nodes, execution, folder_paths, comfy_execution, aiohttp.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["find_input", "input_options", "input_default"]

DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
AUTOGROW = "COMFY_AUTOGROW_V3"
DYNAMIC_SLOT = "COMFY_DYNAMICSLOT_V3"
_SECTIONS = ("required", "optional")
#: Deepest nesting followed: real schemas nest two or three levels; this bounds a malformed self-reference.
_MAX_DEPTH = 16

Spec = tuple[Any, ...]


def _section_entries(input_types: Any) -> list[tuple[str, Spec]]:
    entries: list[tuple[str, Spec]] = []
    if not isinstance(input_types, Mapping):
        return entries
    for section in _SECTIONS:
        inputs = input_types.get(section)
        if isinstance(inputs, Mapping):
            for name, entry in inputs.items():
                if isinstance(entry, (tuple, list)) and entry:
                    entries.append((str(name), tuple(entry)))
    return entries


def _extras(entry: Spec) -> Mapping[str, Any]:
    return entry[1] if len(entry) > 1 and isinstance(entry[1], Mapping) else {}


def find_input(input_types: Any, input_name: str, *, _depth: int = 0) -> Spec | None:
    """The spec tuple of the input called ``input_name`` in an API prompt, or None when the class has none.

    An exact top-level name wins (V1 names may contain dots); otherwise the name is split at each dot, left
    to right, and the part after it looked up inside the dynamic input named by the part before it.
    """
    entries = _section_entries(input_types)
    for name, entry in entries:
        if name == input_name:
            return entry
    if _depth >= _MAX_DEPTH:
        return None
    by_name = dict(entries)
    position = input_name.find(".")
    while position != -1:
        parent = by_name.get(input_name[:position])
        if parent is not None:
            found = _find_nested(parent, input_name[position + 1:], _depth + 1)
            if found is not None:
                return found
        position = input_name.find(".", position + 1)
    return None


def _find_nested(parent: Spec, child: str, depth: int) -> Spec | None:
    kind, extras = parent[0], _extras(parent)
    if kind == DYNAMIC_COMBO:
        for option in extras.get("options") or ():
            if isinstance(option, Mapping):
                found = find_input(option.get("inputs"), child, _depth=depth)
                if found is not None:
                    return found
        return None
    if kind == DYNAMIC_SLOT:
        return find_input(extras.get("inputs"), child, _depth=depth)
    if kind == AUTOGROW:
        template = extras.get("template")
        if not isinstance(template, Mapping):
            return None
        entries = _section_entries(template.get("input"))
        if not entries:
            return None
        names = template.get("names")
        if isinstance(names, list):
            allowed = child in [str(n) for n in names]
        else:
            prefix, maximum = str(template.get("prefix", "")), template.get("max", 0)
            suffix = child[len(prefix):] if child.startswith(prefix) else ""
            allowed = suffix.isdigit() and isinstance(maximum, int) and int(suffix) < maximum
        return entries[0][1] if allowed else None
    return None


def input_options(input_types: Any, input_name: str) -> list[str] | None:
    """Allowed values of a COMBO input (V1 list form, ``("COMBO", {"options": [...]})``, or a dynamic combo's
    keys), else None."""
    entry = find_input(input_types, input_name)
    if entry is None:
        return None
    kind, extras = entry[0], _extras(entry)
    if isinstance(kind, (list, tuple)):
        return [str(o) for o in kind]
    options = extras.get("options")
    if kind == "COMBO" and isinstance(options, list):
        return [str(o) for o in options]
    if kind == DYNAMIC_COMBO and isinstance(options, list):
        return [str(o["key"]) for o in options if isinstance(o, Mapping) and "key" in o]
    return None


def input_default(input_types: Any, input_name: str) -> Any:
    """The default an input shows in a new node (a combo's first option), or None when unknown."""
    entry = find_input(input_types, input_name)
    if entry is None:
        return None
    extras = _extras(entry)
    if "default" in extras:
        return extras["default"]
    options = input_options(input_types, input_name)
    return options[0] if options else None
