"""The seams between the sweep and the ComfyUI it runs in: typed ports instead of one wide host.

``nodes/_comfy.py`` implements them over a live ComfyUI (and absorbs its versions); tests use a stand-in. A
later port (a remote ComfyUI server) plugs in here. Core never indexes a queue tuple: the adapter turns
ComfyUI's item into a :class:`QueuedPrompt` and back, so the item's shape (5 fields in 0.3.64, 6 from
0.3.67) is the adapter's alone.

Plain Python: must not import torch, comfy*, server, nodes, execution, folder_paths, comfy_execution, aiohttp.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from .workers import WorkerConfig

__all__ = ["Folders", "Host", "NodeRegistry", "PromptSubmitter", "QueuePort", "QueuedPrompt", "RemoteOutcome",
           "RemoteRejected", "RemoteUnavailable", "RemoteWorkerPort", "Runtime"]


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


class PromptSubmitter(Protocol):
    """Submits a request body the way a canvas Queue press does (ComfyUI's own POST /prompt handler, with
    every onprompt hook, its validation and its queue), for sweeps started without a browser."""

    async def submit_prompt(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]: ...


class Host(QueuePort, NodeRegistry, Folders, Runtime, Protocol):
    """Everything the sweep service needs, as one object (``nodes/_comfy.py`` ``ComfyHost``)."""


# ---------------------------------------------------------------------------------------------- remote servers
class RemoteUnavailable(Exception):
    """The worker did not answer (refused connection, timeout, dropped socket, a 5xx): its leases go elsewhere."""


class RemoteRejected(Exception):
    """The worker refused the cell's prompt (the 400 of ``POST /prompt``: a missing model or node). The worker
    is excluded for the batch; the message says why."""


@dataclass(frozen=True, slots=True)
class RemoteOutcome:
    """How a cell ended on a worker: ``done`` with the history ``outputs``, or ``failed`` / ``cancelled``."""

    status: Literal["done", "failed", "cancelled"]
    error: str | None = None
    outputs: Any = None


class RemoteWorkerPort(Protocol):
    """Another ComfyUI server, over its own HTTP + websocket API (``nodes/remote_comfy.py``).

    Every method raises :class:`RemoteUnavailable` when the worker does not answer in time.
    """

    async def submit(self, worker: WorkerConfig, prompt_id: str, prompt: dict[str, Any],
                     extra_data: dict[str, Any]) -> None:
        """Queue ``prompt`` under ``prompt_id`` (chosen by the caller). Idempotent: a prompt id the worker
        already queued, runs or ran is not posted again. Raises :class:`RemoteRejected` on a 400."""
        ...

    async def wait_done(self, worker: WorkerConfig, prompt_id: str, timeout: float) -> RemoteOutcome:
        """Until the prompt ended (websocket, ``/history`` as fallback); RemoteUnavailable after ``timeout``
        seconds without any sign of life from the worker."""
        ...

    async def fetch(self, worker: WorkerConfig, ref: Mapping[str, str]) -> bytes:
        """An output file (``{"filename", "subfolder", "type"}``) through ``/view``."""
        ...

    async def ensure_input(self, worker: WorkerConfig, name: str, local_path: str) -> None:
        """Upload an input file (``LoadImage``'s) unless the worker has one by that name."""
        ...

    async def cancel(self, worker: WorkerConfig, prompt_ids: Sequence[str]) -> None:
        """Delete these queued prompts and interrupt the running one only when it is one of them."""
        ...

    def store_output(self, data: bytes, subfolder: str, filename: str, prompt: dict[str, Any],
                     extra_pnginfo: Any, node_id: str, number: int, count: int) -> None:
        """Write a fetched image as ``output/<subfolder>/<filename>``, as the local save node would (its PNG
        metadata, an atomic write, the path checked against the output root)."""
        ...
