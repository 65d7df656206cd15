"""Binds the pure batch-output builder to ComfyUI's output folder and websocket."""
from __future__ import annotations

from typing import Any

from ..core.batch_outputs import BatchOutputs
from . import _comfy


class GridService(BatchOutputs):
    def __init__(self, manager: Any, host: Any) -> None:
        super().__init__(manager, output_dir=_comfy.output_directory, notify=host.send_event)
