"""ComfyUI Workflow Iterator: one Queue press, a whole parameter sweep.

Loaded by ComfyUI as ``custom_nodes/<any folder>``; every import inside the pack is relative. Importing it
outside ComfyUI (tests, tools) only defines the node classes: ``register()`` finds no server and does nothing.
"""
from __future__ import annotations

import logging

from .nodes import register as _register
from .nodes.grid_node import WIGridCompositor
from .nodes.iterator_node import WIIterator, WIPlanError
from .nodes.parameter_nodes import DISPLAY_NAMES as _PARAMETER_DISPLAY_NAMES
from .nodes.parameter_nodes import PARAMETER_NODE_CLASSES
from .nodes.save_node import WISaveImage

logger = logging.getLogger(__name__)

NODE_CLASS_MAPPINGS = {
    **PARAMETER_NODE_CLASSES,
    "WIIterator": WIIterator,
    "WISaveImage": WISaveImage,
    "WIGridCompositor": WIGridCompositor,
    "WIPlanError": WIPlanError,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    **_PARAMETER_DISPLAY_NAMES,
    "WIIterator": "WI Iterator",
    "WISaveImage": "WI Save Image",
    "WIGridCompositor": "WI Grid Compositor",
    "WIPlanError": "WI Plan Error (internal)",
}
WEB_DIRECTORY = "./web"

_register()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
