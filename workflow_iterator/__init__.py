"""Client and command line of the ComfyUI Workflow Iterator's HTTP API (standard library only).

Run ``python -m workflow_iterator --help`` from the repository root (elsewhere: put the repository root on
``PYTHONPATH``). The library: :class:`Client` (``Client(url).sweep(...)``) and its :class:`Batch` handles.
"""
from __future__ import annotations

from .client import ApiError, Batch, Client, RemoteFile, parse_axis

__all__ = ["ApiError", "Batch", "Client", "RemoteFile", "parse_axis"]
