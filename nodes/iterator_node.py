"""WIIterator: declares the sweep. The onprompt hook reads it from the submitted prompt; it never executes."""
from __future__ import annotations

from typing import Any

from .parameter_nodes import STACK_TYPE


class WIIterator:
    CATEGORY = "WI"
    FUNCTION = "declare"
    RETURN_TYPES = ()
    DESCRIPTION = ("Turns one Queue press into a sweep: one prompt per combination of the chained parameters "
                   "(matrix = every combination, first parameter slowest; linear = lists advance together).")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "parameters": (STACK_TYPE, {"tooltip": "The last WIParameter node of the chain."}),
                "enabled": ("BOOLEAN", {"default": True, "tooltip": "Off: the workflow runs once, with each parameter's first value."}),
                "mode": (["matrix", "linear"], {"default": "matrix", "tooltip": "matrix: cartesian product; linear: zip the lists."}),
                "batch_name": ("STRING", {"default": "sweep", "tooltip": "Names the batch, its folder and its grid."}),
            },
            "optional": {
                "unequal_lengths": (["cycle", "error"], {"default": "cycle",
                                    "tooltip": "linear mode with lists of different lengths: cycle the shorter ones, or refuse."}),
                "run_order": (["cache-friendly", "as entered"], {"default": "cache-friendly",
                              "tooltip": "cache-friendly: the parameter that forces the most expensive re-work (e.g. a checkpoint) "
                                         "changes least often, so ComfyUI's cache reuses it; the grid keeps your order either way."}),
                "skip": ("STRING", {"multiline": True, "default": "",
                         "tooltip": "Combinations not to run, one rule per line: 'sampler=ddim & cfg=8' skips every cell with "
                                    "both; values by label or value; # starts a comment. Skipped cells keep their grid slot."}),
            },
        }

    def declare(self, **_: Any) -> tuple:
        return ()


class WIPlanError:
    """Stands in for the iterator when a sweep cannot be planned, so ComfyUI rejects the Queue press with our
    message attached to the iterator's node id instead of running an unexpanded prompt."""

    CATEGORY = "WI/internal"
    FUNCTION = "fail"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    DESCRIPTION = "Internal: carries a sweep planning error back to the user. Not for use in workflows."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"message": ("STRING", {"default": "", "tooltip": "The planning error."})}}

    @classmethod
    def VALIDATE_INPUTS(cls, message: str) -> str:
        return message or "the sweep could not be planned"

    def fail(self, message: str) -> tuple:
        raise ValueError(message)
