"""WIParameter nodes: a typed, chainable stack of sweep parameters.

Each node consumes the previous stack (optional) and emits a larger one; the iterator reads the chain from
the submitted prompt, so execution only matters when a sweep is off: then the ``value`` output gives the
parameter's first value and the graph runs as a normal single prompt.
"""
from __future__ import annotations

import logging
from typing import Any

from ..core import parameter_parser
from ..core.prompt_graph import PARAMETER_CLASSES
from . import _comfy

logger = logging.getLogger(__name__)

VALUE_TYPES = list(parameter_parser.VALUE_TYPES)  # new types are appended: saved workflows keep their choice
STACK_TYPE = "WI_PARAMS"


class AnyType(str):
    """A socket type that ComfyUI's validation accepts for any input (``validate_node_input`` compares with !=)."""

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__


ANY = AnyType("*")
_OUTPUT_TYPE = {"INT": "INT", "FLOAT": "FLOAT", "STRING": "STRING", "BOOLEAN": "BOOLEAN", "SEED": "INT", "COMBO": ANY,
                "PROMPT_SR": "STRING", "BUNDLE": ANY}

_VALUES_TOOLTIP = (
    "Values in the sweep syntax: comma list (quotes allow commas), ranges 1-5, 1-10 (+2), 0.5-1.5 [5], "
    "negative ranges with '..' (-5..5), file:name.txt, COMBO wildcards * and *euler*, SEED random:N; "
    "STRING takes one value per line when the text has several lines; {a|b|c} and __wildcard__ expand into values; {~a|b|c} picks one at random per cell. "
    "PROMPT_SR: the first value is the text to find in the target text, each value replaces it. "
    "BUNDLE: 512x768 (one number per target) or presets 'fast: steps=12, cfg=4; quality: steps=40, cfg=7'."
)
_LINK_TOOLTIP = ("Link group: parameters with the same group name advance together (like linear mode) and form one "
                 "grid axis; groups still combine as a matrix. Empty: this parameter is its own axis.")


def _input_types(value_type: str | None) -> dict[str, Any]:
    required: dict[str, Any] = {
        "name": ("STRING", {"default": "param", "tooltip": "Axis label in the grid and key in the metadata; unique per sweep."}),
    }
    if value_type is None:
        required["type"] = (VALUE_TYPES, {"default": "STRING", "tooltip": "How the values are parsed and checked."})
    required["values"] = ("STRING", {"multiline": True, "default": "", "tooltip": _VALUES_TOOLTIP})
    return {
        "required": required,
        "optional": {
            "target": ("STRING", {"default": "", "tooltip": "Where the value goes when wiring is awkward: node title or id, a dot, "
                                  "the input name (e.g. 'KSampler.cfg' or '3.seed'); several separated by ';'."}),
            "previous": (STACK_TYPE, {"tooltip": "The stack from the previous parameter node; this one is added after it."}),
            "link": ("STRING", {"default": "", "tooltip": _LINK_TOOLTIP}),
        },
    }


class _ParameterNode:
    VALUE_TYPE: str | None = None
    CATEGORY = "WI/parameters"
    FUNCTION = "build"
    RETURN_NAMES = ("parameters", "value")
    DESCRIPTION = "One sweep axis. Chain parameter nodes into a WIIterator; wire 'value' into the input to sweep."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return _input_types(cls.VALUE_TYPE)

    def build(self, name: str, values: str, type: str | None = None, target: str = "", previous: list | None = None,
              link: str = ""):
        value_type = (self.VALUE_TYPE or type or "STRING").upper()
        parsed = parameter_parser.parse(values, value_type, name=name, file_root=_comfy.input_directory())
        first = parsed[0]
        if isinstance(first, parameter_parser.Preset):  # a bundle outside a sweep: its first preset, as text
            first = {key: text for key, text in first.assignments}
        stack = list(previous or []) + [{"name": name, "type": value_type, "values": parsed, "target": target, "link": link}]
        return (stack, first)


def _make_class(class_name: str, value_type: str | None) -> type:
    output = _OUTPUT_TYPE[value_type] if value_type else ANY
    return type(class_name, (_ParameterNode,), {"VALUE_TYPE": value_type, "RETURN_TYPES": (STACK_TYPE, output)})


PARAMETER_NODE_CLASSES = {name: _make_class(name, value_type) for name, value_type in PARAMETER_CLASSES.items()}
DISPLAY_NAMES = {
    "WIParameter": "WI Parameter",
    "WIParameterInt": "WI Parameter (INT)",
    "WIParameterFloat": "WI Parameter (FLOAT)",
    "WIParameterString": "WI Parameter (STRING)",
    "WIParameterBoolean": "WI Parameter (BOOLEAN)",
    "WIParameterCombo": "WI Parameter (COMBO)",
    "WIParameterSeed": "WI Parameter (SEED)",
    "WIParameterPromptSR": "WI Parameter (Prompt S/R)",
    "WIParameterBundle": "WI Parameter (Bundle)",
}
