"""The seams between the sweep and the ComfyUI it runs in: typed ports instead of one wide host.

``nodes/_comfy.py`` implements them over a live ComfyUI (and absorbs its versions); tests use a stand-in. A
later port (a remote ComfyUI server) plugs in here. Core never indexes a queue tuple: the adapter turns
ComfyUI's item into a :class:`QueuedPrompt` and back, so the item's shape (5 fields in 0.3.64, 6 from
0.3.67) is the adapter's alone.

Plain Python: must not import torch, comfy*, server, nodes, execution, folder_paths, comfy_execution, aiohttp.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Folders", "Host", "NodeRegistry", "QueuePort", "QueuedPrompt", "Runtime"]


@dataclass(frozen=True, slots=True)
class QueuedPrompt:
    """One prompt as ComfyUI's queue holds it.

    ``private`` carries the fields core must copy but never read (0.3.67+: the sensitive dict of API keys
    ComfyUI strips from ``extra_data``); ``put_clone`` deep-copies it into each cell.
    """

    number: float
    prompt_id: str
    prompt: Any
    extra_data: Any
    outputs: Sequence[str] = ()
    private: tuple[Any, ...] = field(default=())


class QueuePort(Protocol):
    """ComfyUI's prompt queue, validation and priorities."""

    def allocate_number(self, front: bool) -> float: ...
    async def validate(self, prompt_id: str, prompt: dict[str, Any], partial_targets: Any) -> tuple[Any, ...]: ...
    def put_clone(self, template: QueuedPrompt, number: float, prompt_id: str, prompt: dict[str, Any],
                  extra_data: dict[str, Any], outputs: list[str]) -> None: ...
    def cancel_prompts(self, prompt_ids: set[str]) -> tuple[list[str], str | None]: ...
    def blank_item(self, extra_data: dict[str, Any]) -> QueuedPrompt: ...


class NodeRegistry(Protocol):
    """What the node classes say about their inputs."""

    def options_for(self, class_type: str, input_name: str) -> Sequence[str] | None: ...
    def input_default(self, class_type: str, input_name: str) -> Any: ...
    def node_is_written(self, class_type: str) -> bool: ...


class Folders(Protocol):
    def input_dir(self) -> str | None: ...
    def output_dir(self) -> str | None: ...
    def temp_dir(self) -> str | None: ...


class Runtime(Protocol):
    """The server loop, background work and websocket events."""

    def call_soon_threadsafe(self, fn: Callable[..., Any], *args: Any) -> None: ...
    def create_task(self, coro: Any) -> None: ...
    def run_background(self, fn: Callable[..., Any], *args: Any) -> None: ...
    def send_event(self, event: str, data: dict[str, Any], sid: str | None = None) -> None: ...


class Host(QueuePort, NodeRegistry, Folders, Runtime, Protocol):
    """Everything the sweep service needs, as one object (``nodes/_comfy.py`` ``ComfyHost``)."""
