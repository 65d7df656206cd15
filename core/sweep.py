"""The sweep service: from a submitted prompt to a finished batch, over an injected host.

Owns the batch's journey through ComfyUI without importing ComfyUI: the onprompt handler
(:meth:`SweepService.handle_prompt`), the feeder that validates and queues the other cells once ComfyUI has
accepted the submitted one, completion (every cell ends as done, failed or cancelled), per-batch cancel, and
handing finished batches to the grid builder on a background thread.

The host (``nodes/_comfy.py`` in ComfyUI, a stand-in in tests) supplies the queue, validation, events and
threads; see :class:`Host`. Which thread calls what:

* aiohttp loop thread: ``handle_prompt``, ``on_validated``, ``on_item_put`` (from POST /prompt), the feeder
  coroutine, ``cancel`` and ``preview`` (route handlers);
* ComfyUI's worker thread: ``on_item_started`` and ``on_item_done`` (kept short: the next prompt waits);
* the host's background executor: grid building.

Plain Python: must not import torch, comfy*, server, nodes, execution, folder_paths, comfy_execution, aiohttp.
"""
from __future__ import annotations

import asyncio
import copy
import functools
import logging
import os
import threading
import uuid
from dataclasses import dataclass, field
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from . import batch_outputs, parameter_parser, planner, prompt_graph
from .errors import InvalidBatchState, ParamSyntaxError, UnknownBatchError, WIError
from .iteration_state import IterationStateManager, new_batch_id
from .paths import batch_subfolder, cell_filename, resolve_inside

logger = logging.getLogger(__name__)

#: Cells queued ahead of the one running. Keeps ComfyUI's queue (and its memory) small for 10,000-cell
#: sweeps and makes cancel cheap, while always having the next cell in the heap before the worker asks.
DEFAULT_WINDOW = 32
#: A full window is topped up only once this fraction of it has started running, in one burst. Waking the
#: feeder for every started cell would put a loop wake-up (and a validation holding the GIL) between every
#: two cells, right when the worker thread is between prompts.
REFILL_FRACTION = 0.5
#: The feeder hands the loop back after this many cells (validation itself rarely yields).
YIELD_EVERY = 8
#: How long a submitted sweep may wait for ComfyUI to queue (or reject) its first cell.
ACCEPT_TIMEOUT_S = 600.0


class Host(Protocol):
    """What the service needs from ComfyUI (implemented by ``nodes/_comfy.py`` and the test stand-in)."""

    def allocate_number(self, front: bool) -> float: ...
    def call_soon_threadsafe(self, fn: Callable[..., Any], *args: Any) -> None: ...
    def create_task(self, coro: Any) -> None: ...
    async def validate(self, prompt_id: str, prompt: dict, partial_targets: Any) -> tuple: ...
    def put_clone(self, template_item: tuple, number: float, prompt_id: str, prompt: dict, extra_data: dict, outputs: list) -> None: ...
    def cancel_prompts(self, prompt_ids: set[str]) -> tuple[list[str], str | None]: ...
    def send_event(self, event: str, data: dict, sid: str | None = None) -> None: ...
    def options_for(self, class_type: str, input_name: str) -> Sequence[str] | None: ...
    def input_default(self, class_type: str, input_name: str) -> Any: ...
    def node_is_written(self, class_type: str) -> bool: ...
    def input_dir(self) -> str | None: ...
    def run_background(self, fn: Callable[..., Any], *args: Any) -> None: ...
    def item_tail(self) -> tuple: ...


GridBuilder = Callable[[str], None]


@dataclass
class _Expansion:
    """A submitted sweep between the handler and ComfyUI accepting (or rejecting) its first cell."""

    batch_id: str
    plan: prompt_graph.SweepPlan
    prompt_obj: dict
    prompt_id: str
    number: float
    partial_targets: Any
    order: list[int] = field(default_factory=lambda: [0])  # run order of cell indices; order[0] is the submitted cell
    subfolder: str = ""
    client_id: str | None = None
    extra: dict = field(default_factory=dict)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # accepted (template_item) or rejected
    template_item: tuple | None = None
    rejection: str | None = None
    early_events: list[Callable[[], None]] = field(default_factory=list)
    queued: set[str] = field(default_factory=set)
    wakeup: asyncio.Event | None = None
    # While the feeder waits for room: wake it once ``len(queued)`` drops to this. -1: not waiting (no wake-ups).
    refill_at: int = -1
    lock: threading.Lock = field(default_factory=threading.Lock)


class CellExtras:
    """Each cell's ``extra_data``: the batch's (client id, UI workflow, ...) plus the block naming the cell.

    The parts that are the same for every cell are built once per batch; the feeder asks for one per queued
    cell. Every cell gets its own top-level and ``extra_pnginfo`` dicts (ComfyUI pops keys from the former
    when the item ends); the UI workflow inside stays shared, WISaveImage derives the cell's copy.
    """

    def __init__(self, base: Any, plan: prompt_graph.SweepPlan, batch_id: str, subfolder: str, client_id: str | None = None) -> None:
        extra = dict(base) if isinstance(base, Mapping) else {}
        if client_id is not None:
            extra["client_id"] = client_id
        pnginfo = extra.get("extra_pnginfo")
        self._extra = extra
        self._pnginfo = dict(pnginfo) if isinstance(pnginfo, Mapping) else {}
        self._plan, self._batch_id = plan, batch_id
        self._batch_part = {**plan.batch_info(batch_id), "subfolder": subfolder}

    def for_cell(self, combination: Any) -> dict:
        info = self._plan.cell_info(self._batch_id, combination, self._batch_part)
        return {
            **self._extra,
            "extra_pnginfo": {**self._pnginfo, prompt_graph.CELL_INFO_KEY: info},
            prompt_graph.REENTRY_KEY: {"batch_id": self._batch_id, "index": combination.index},
        }


class PromptIds:
    """Prompt ids for one run of the feeder: UUID-shaped, a random prefix and the cell's index (unique across
    batches and runs, and a fraction of ``uuid4``'s cost per cell)."""

    def __init__(self) -> None:
        self._prefix = str(uuid.uuid4())[:24]

    def for_cell(self, index: int) -> str:
        return f"{self._prefix}{index:012x}"


def describe_validation_error(valid: Sequence[Any]) -> str:
    """One line from ``validate_prompt``'s ``(ok, error, outputs, node_errors)`` naming node and reason."""
    error = valid[1] if len(valid) > 1 else None
    node_errors = valid[3] if len(valid) > 3 else None
    parts = []
    if isinstance(node_errors, Mapping):
        for node_id, info in node_errors.items():
            for err in (info or {}).get("errors", []) if isinstance(info, Mapping) else []:
                detail = err.get("details") or err.get("message") or ""
                parts.append(f"node {node_id} ({info.get('class_type', '?')}): {detail}".strip())
    if not parts and isinstance(error, Mapping):
        parts.append(str(error.get("message") or error.get("type") or "validation failed"))
    return "validation failed: " + ("; ".join(parts) if parts else "unknown reason")


def classify_outcome(status: Any) -> tuple[str, str | None]:
    """``("done" | "failed" | "cancelled", reason)`` from ComfyUI's ``ExecutionStatus`` (or its dict form)."""
    if status is None:
        return "failed", "no execution status reported"
    if isinstance(status, Mapping):
        status_str, messages = status.get("status_str"), status.get("messages") or []
    else:
        status_str, messages = getattr(status, "status_str", None), getattr(status, "messages", None) or []
    if status_str == "success":
        return "done", None
    for message in messages:
        if isinstance(message, (list, tuple)) and message and message[0] == "execution_interrupted":
            return "cancelled", "interrupted"
    for message in messages:
        if isinstance(message, (list, tuple)) and len(message) > 1 and message[0] == "execution_error":
            data = message[1] if isinstance(message[1], Mapping) else {}
            return "failed", f"{data.get('node_type', 'node')} {data.get('node_id', '')}: {data.get('exception_message', 'error')}".strip()
    return "failed", "execution failed"


def images_from_outputs(outputs: Any, prefer_nodes: Sequence[str] = ()) -> list[dict[str, str]]:
    """Image refs from a history result's ``outputs``: our save nodes' first, else any saved, else previews."""
    if not isinstance(outputs, Mapping):
        return []

    def refs(node_ids: Sequence[str], wanted_type: str | None) -> list[dict[str, str]]:
        found = []
        for node_id in node_ids:
            ui = outputs.get(node_id)
            for image in (ui or {}).get("images", []) if isinstance(ui, Mapping) else []:
                if isinstance(image, Mapping) and "filename" in image and (wanted_type is None or image.get("type") == wanted_type):
                    found.append({"filename": str(image["filename"]), "subfolder": str(image.get("subfolder", "")), "type": str(image.get("type", "output"))})
        return found

    all_ids = sorted(outputs, key=str)
    return refs(list(prefer_nodes), None) or refs(all_ids, "output") or refs(all_ids, None)


class SweepService:
    """Turns one submitted prompt into a tracked batch of queued cells. Thread-safety: see module docstring."""

    def __init__(
        self,
        manager: IterationStateManager,
        host: Host,
        *,
        grid_builder: GridBuilder | None = None,
        max_values: int | None = None,
        max_combinations: int | None = None,
        window: int = DEFAULT_WINDOW,
        journal: Any = None,
    ) -> None:
        self.manager = manager
        self.host = host
        self.journal = journal
        self.grid_builder = grid_builder
        limits = planner.Limits.from_env()  # WI_MAX_VALUES / WI_MAX_COMBINATIONS, else the defaults
        self.max_values = limits.max_values if max_values is None else max_values
        self.max_combinations = limits.max_combinations if max_combinations is None else max_combinations
        self.window = max(2, window)
        # Keyed by the submitted prompt's id; also matched by prompt object identity, which survives ComfyUI
        # versions that ignore a client-chosen prompt_id.
        self._pending: dict[str, _Expansion] = {}
        self._feeding: dict[str, _Expansion] = {}
        # Submitted cells whose batch record is still being created (see _start), by prompt id.
        self._early: dict[str, _Expansion] = {}
        # Per batch, our save nodes: their images are the cell's result (read on the worker thread per cell).
        self._save_nodes: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()
        manager.add_listener(self._forward_event)
        if journal is not None:
            manager.add_listener(self._journal_event)

    # ----------------------------------------------------------------- parsing helpers
    def parse(self, values_raw: str, value_type: str, *, name: str = "", options: Sequence[str] | None = None) -> list:
        return parameter_parser.parse(
            values_raw, value_type, name=name, options=options, file_root=self.host.input_dir(), max_values=self.max_values
        )

    # ----------------------------------------------------------------- onprompt
    def handle_prompt(self, json_data: Any) -> Any:
        """ComfyUI's onprompt hook. Never raises; always returns a request body (the given one or a new one)."""
        try:
            return self._handle_prompt(json_data)
        except Exception:  # the boundary: a bug here must not turn the user's Queue press into HTTP 500
            logger.exception("WI: could not expand the submitted prompt; queueing it unchanged")
            return json_data

    def _handle_prompt(self, json_data: Any) -> Any:
        if not isinstance(json_data, dict):
            return json_data
        prompt = json_data.get("prompt")
        if not isinstance(prompt, dict) or prompt_graph.is_expanded(json_data):
            return json_data
        client_id = json_data.get("client_id") if isinstance(json_data.get("client_id"), str) else None
        try:
            iterator_id = prompt_graph.find_enabled_iterator(prompt)
        except prompt_graph.PlanError as exc:
            first = next(i for i, n in prompt.items() if isinstance(n, dict) and n.get("class_type") == prompt_graph.ITERATOR_CLASS)
            return self._reject(json_data, prompt, str(first), str(exc), client_id)
        if iterator_id is None:
            return json_data
        try:
            plan = prompt_graph.plan_sweep(
                prompt, iterator_id, parse=self.parse, options_for=self.host.options_for,
                input_default=self.host.input_default, node_is_written=self.host.node_is_written,
                max_combinations=self.max_combinations
            )
        except (prompt_graph.PlanError, ParamSyntaxError) as exc:
            return self._reject(json_data, prompt, iterator_id, str(exc), client_id)
        for error in plan.errors:
            logger.warning("WI: skipped %s", error.message)
            self.host.send_event("wi.param_error", dict(error.to_json(), client_id=client_id))

        # Everything that can fail on the body is read first, so a bad body never leaves an orphan batch.
        prompt_id = str(json_data.get("prompt_id") or uuid.uuid4())
        if "number" in json_data:
            number = float(json_data["number"])
        else:
            number = float(self.host.allocate_number(bool(json_data.get("front"))))
        save_prefix = "WI"
        for node_id in plan.save_node_ids:
            save_prefix = str(prompt_graph.node_inputs(prompt[node_id]).get("filename_prefix") or "WI")
            break
        # Only what the submitted cell needs happens here; the batch record (O(cells)), the journal entry, the
        # run order and the pre-flight are built by _start right after the request returns, so the hook costs
        # the same for 10 cells or 10,000. Cell 0 is the first cell of every run order.
        batch_id = new_batch_id(plan.batch_name)
        subfolder = batch_subfolder(save_prefix, batch_id)
        first = plan.combinations[0]
        cell_prompt = plan.cell_prompt(first, isolated=True)
        extra = CellExtras(json_data.get("extra_data"), plan, batch_id, subfolder, client_id).for_cell(first)
        expansion = _Expansion(
            batch_id=batch_id,
            plan=plan,
            prompt_obj=cell_prompt,
            prompt_id=prompt_id,
            number=number,
            partial_targets=json_data.get("partial_execution_targets"),
            subfolder=subfolder,
            client_id=client_id,
            extra=extra,
        )
        with self._lock:
            self._pending[prompt_id] = expansion
            self._early[prompt_id] = expansion
        self.host.create_task(self._start(expansion))
        logger.info("WI: batch %s: %d cells (%s)", batch_id, plan.total, plan.mode)
        # A new body rather than edits to the old one: ComfyUI keeps the old one if anything here raised.
        return {**json_data, "prompt": cell_prompt, "prompt_id": prompt_id, "number": number, "extra_data": extra}

    async def _start(self, expansion: _Expansion) -> None:
        """Create the batch, then wait for ComfyUI to accept (or reject) the submitted cell and feed the rest."""
        plan, batch_id = expansion.plan, expansion.batch_id
        try:
            self.manager.create_batch(
                batch_name=plan.batch_name,
                mode=plan.mode,
                combinations=plan.combinations,
                axes=plan.axes,
                client_id=expansion.client_id,
                meta={
                    "grid_node_id": plan.grid_node_id,
                    "grid_options": plan.grid_options,
                    "save_node_ids": list(plan.save_node_ids),
                    "param_errors": [e.to_json() for e in plan.errors],
                    "subfolder": expansion.subfolder,
                },
                batch_id=batch_id,
                snapshot_cells=False,
            )
            self._save_nodes[batch_id] = plan.save_node_ids
            if self.journal is not None:
                self.journal.record_batch(self._journal_record(batch_id, plan, expansion.client_id, expansion.subfolder,
                                                               expansion.extra, expansion.partial_targets))
            preflight = None
            if plan.grid_node_id is not None:
                preflight = functools.partial(self.host.run_background, self._preflight, batch_id, plan, expansion.client_id)
            expansion.order = plan.run_order()
            if not expansion.settled.is_set():  # usually set already: POST /prompt put the cell while we planned
                try:
                    await asyncio.wait_for(expansion.settled.wait(), timeout=ACCEPT_TIMEOUT_S)
                except asyncio.TimeoutError:
                    expansion.rejection = "the submitted prompt never reached ComfyUI's queue"
            if expansion.rejection is not None or expansion.template_item is None:
                self._take_pending(expansion.prompt_obj, expansion.prompt_id)
                self._end_rejected(expansion, expansion.rejection or "not queued")
                return
            with self._lock:
                self.manager.attach_prompt(batch_id, expansion.order[0], expansion.prompt_id)
                expansion.queued.add(expansion.prompt_id)
                self._feeding[batch_id] = expansion
                self._early.pop(expansion.prompt_id, None)
                early, expansion.early_events = expansion.early_events, []
            for replay in early:
                replay()
            # The pre-flight (a thread competing for the GIL) starts once the queue holds its window of cells.
            await self._feed(expansion, expansion.template_item, start=1, when_queued=preflight)
        except Exception:
            logger.exception("WI: starting batch %s failed", batch_id)
            with self._lock:
                self._early.pop(expansion.prompt_id, None)
            self._fail_unqueued(batch_id, "internal error while queueing; see the ComfyUI log")

    def _end_rejected(self, expansion: _Expansion, reason: str) -> None:
        logger.warning("WI: batch %s not started: %s", expansion.batch_id, reason)
        with self._lock:
            self._early.pop(expansion.prompt_id, None)
        try:
            self.manager.add_warning(expansion.batch_id, f"not started: {reason}")
            self.manager.register_failure(expansion.batch_id, 0, reason)
            self.manager.cancel_batch(expansion.batch_id)
        except WIError:
            pass

    def _reject(self, json_data: dict, prompt: dict, iterator_id: str, message: str, client_id: str | None) -> dict:
        logger.warning("WI: sweep not queued: %s", message)
        self.host.send_event("wi.param_error", {"node_id": iterator_id, "param": None, "message": message, "client_id": client_id})
        return {**json_data, "prompt": prompt_graph.plan_error_prompt(prompt, iterator_id, message)}

    def _preflight(self, batch_id: str, plan: prompt_graph.SweepPlan, client_id: str | None) -> None:
        """Grid size checked at queue time (on the background thread), so an oversize grid is adapted and
        announced before hours of work rather than failing at the end."""
        try:
            sized = any(site.input_name in ("width", "height") for sites in plan.sites for site in sites)
            if sized:
                sizes = [plan.image_size(c) for c in plan.combinations]
                image_sizes: Any = [s for s in sizes if s is not None] or None
            else:
                image_sizes = plan.image_size()
            warnings = batch_outputs.preflight_warnings(plan.axes, plan.mode, plan.total, image_sizes, plan.grid_options)
        except Exception:  # a pre-flight bug must not stop the sweep; the grid step adapts again at the end
            logger.exception("WI: grid pre-flight of %s failed", batch_id)
            return
        for warning in warnings:
            try:
                self.manager.add_warning(batch_id, warning)
            except WIError:
                return
            self.host.send_event("wi.size_warning", {"batch_id": batch_id, "message": warning, "client_id": client_id})

    # Keys ComfyUI's frontend puts in extra_data that must never reach the disk.
    _SECRET_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")

    def _journal_record(self, batch_id: str, plan: prompt_graph.SweepPlan, client_id: str | None, subfolder: str,
                        extra: Mapping[str, Any], partial_targets: Any) -> dict[str, Any]:
        status = self.manager.get_status(batch_id, include_cells=False)
        extra_base = {k: v for k, v in extra.items() if k not in self._SECRET_KEYS and k != prompt_graph.REENTRY_KEY}
        pnginfo = dict(extra_base.get("extra_pnginfo") or {})
        pnginfo.pop(prompt_graph.CELL_INFO_KEY, None)
        extra_base["extra_pnginfo"] = pnginfo
        sweep = plan.to_json()
        return {
            "batch_id": batch_id,
            "batch_name": plan.batch_name,
            "mode": plan.mode,
            "client_id": client_id,
            "created_at": status["created_at"],
            "axes": sweep["axes"],
            "cells": [{"index": c.index, "coords": list(c.coords), "values": [prompt_graph.json_ready(v) for v in c.values]}
                      for c in plan.combinations],
            "meta": dict(status.get("meta") or {}, subfolder=subfolder),
            "plan": {"sweep": sweep, "extra_data": extra_base, "partial_targets": partial_targets},
        }

    def _journal_event(self, event: str, payload: dict[str, Any]) -> None:
        """Mirror the manager's events into the durable journal (its writer thread does the disk work)."""
        journal = self.journal
        batch_id = payload.get("batch_id")
        if journal is None or not batch_id:
            return
        if event == "cell_ended":
            journal.record_cell_end(batch_id, payload["index"], status=payload["status"], error=payload.get("error"),
                                    prompt_id=payload.get("prompt_id"), files=payload.get("files") or [],
                                    ended_at=payload.get("ended_at"))
        elif event == "batch_cancelled":
            journal.record_cells_cancelled(batch_id, "batch cancelled")
            journal.record_state(batch_id, "cancelled")
        elif event == "batch_finished":
            journal.record_state(batch_id, payload.get("state", "collecting"), grid=payload.get("grid"))
        elif event == "batch_created" and payload.get("restored"):
            journal.record_state(batch_id, "interrupted")

    def restore_interrupted(self) -> list[str]:
        """At start-up: list the batches a previous ComfyUI left unfinished, as ``interrupted``."""
        if self.journal is None:
            return []
        restored = []
        for record in self.journal.load_unfinished():
            try:
                self.manager.restore_batch(record)
                restored.append(str(record["batch_id"]))
            except (ValueError, KeyError, TypeError, WIError):
                logger.exception("WI: could not restore batch %s from the journal", record.get("batch_id"))
        if restored:
            logger.info("WI: %d interrupted batch(es) can be resumed: %s", len(restored), ", ".join(restored))
        return restored

    def resume(self, batch_id: str, *, output_dir: str | None = None) -> dict[str, Any]:
        """Queue exactly the cells of an interrupted batch that did not finish, with the same values and seeds.

        A cell whose image file already exists (its save ran before the crash) is marked done, not re-run.

        Raises:
            UnknownBatchError: no such batch in memory or in the journal (404).
            InvalidBatchState: the batch is not interrupted (409).
        """
        record = self.journal.get_batch(batch_id) if self.journal is not None else None
        try:
            self.manager.get_status(batch_id, include_cells=False)
        except UnknownBatchError:
            if record is None:
                raise
            if record.get("state") in ("complete", "cancelled", "expired"):
                raise InvalidBatchState(f'batch "{batch_id}" is {record.get("state")}, not interrupted') from None
            self.manager.restore_batch(record)
        if record is None or not isinstance(record.get("plan"), Mapping) or "sweep" not in record["plan"]:
            raise InvalidBatchState(f'batch "{batch_id}" has no stored plan to resume from')
        plan = prompt_graph.SweepPlan.from_json(record["plan"]["sweep"], max_combinations=self.max_combinations)
        self._save_nodes[batch_id] = plan.save_node_ids
        todo = self.manager.resume_batch(batch_id)
        subfolder = str((record.get("meta") or {}).get("subfolder") or "")
        remaining = []
        for index in todo:
            existing = self._existing_output(output_dir, subfolder, plan, index)
            if existing is not None:
                if self.manager.register_result(batch_id, index, [existing], {"resumed": "file already saved"}):
                    self._schedule_grid(batch_id)
            else:
                remaining.append(index)
        if not todo:
            self._schedule_grid(batch_id)
        if remaining:
            wanted = set(remaining)
            run_order = [i for i in plan.run_order() if i in wanted]
            extra_base = dict(record["plan"].get("extra_data") or {})
            expansion = _Expansion(
                batch_id=batch_id, plan=plan, prompt_obj=None, prompt_id="", number=float(self.host.allocate_number(False)),
                partial_targets=record["plan"].get("partial_targets"), order=run_order, subfolder=subfolder,
            )
            with self._lock:
                self._feeding[batch_id] = expansion
            template = (0.0, "", None, extra_base, []) + self.host.item_tail()
            self.host.create_task(self._feed(expansion, template, start=0))
        logger.info("WI: resuming batch %s: %d cells to run, %d already saved", batch_id, len(remaining), len(todo) - len(remaining))
        return {"batch_id": batch_id, "state": "active" if remaining else "collecting",
                "queued": len(remaining), "already_saved": len(todo) - len(remaining)}

    @staticmethod
    def _existing_output(output_dir: str | None, subfolder: str, plan: prompt_graph.SweepPlan, index: int) -> dict[str, str] | None:
        if not output_dir or not subfolder:
            return None
        combination = plan.combinations[index]
        filename = cell_filename(index, {a.name: v for a, v in zip(plan.axes, combination.values)}, 0)
        try:
            path = resolve_inside(output_dir, subfolder, filename)
        except ValueError:
            return None
        return {"filename": filename, "subfolder": subfolder, "type": "output"} if os.path.isfile(path) else None

    def history(self, *, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """Past and present batches from the journal (they outlive the in-memory expiry)."""
        if self.journal is None:
            return {"batches": [], "total": 0, "limit": limit, "offset": offset}
        return {"batches": self.journal.list_batches(limit=limit, offset=offset), "total": self.journal.count_batches(),
                "limit": limit, "offset": offset}

    def status(self, batch_id: str) -> dict[str, Any]:
        """A batch's status from memory, else from the journal (after expiry or a restart)."""
        try:
            return self.manager.get_status(batch_id)
        except UnknownBatchError:
            record = self.journal.get_batch(batch_id) if self.journal is not None else None
            if record is None:
                raise
            record = dict(record)
            record.pop("plan", None)
            record["source"] = "journal"
            return record

    # ----------------------------------------------------------------- acceptance of the submitted prompt
    def _take_pending(self, prompt_obj: Any, prompt_id: Any) -> _Expansion | None:
        with self._lock:
            if not self._pending:
                return None
            for key, expansion in self._pending.items():
                if expansion.prompt_obj is prompt_obj or key == prompt_id:
                    return self._pending.pop(key)
        return None

    def on_validated(self, prompt_obj: Any, valid: Any) -> None:
        """After ComfyUI validated a prompt: if it was a sweep's first cell and was rejected, end the batch."""
        if not self._pending or (isinstance(valid, (tuple, list)) and valid and valid[0]):
            return
        expansion = self._take_pending(prompt_obj, None)
        if expansion is None:
            return
        expansion.rejection = f"ComfyUI rejected the submitted prompt: {describe_validation_error(valid)}"
        self.host.call_soon_threadsafe(expansion.settled.set)

    def on_item_put(self, item: Sequence[Any]) -> None:
        """Every queue put: when it is a sweep's first cell, the batch is accepted and its feeder may start."""
        if not self._pending:
            return
        expansion = self._take_pending(item[2], item[1])
        if expansion is None:
            return
        expansion.prompt_id = str(item[1])
        # A snapshot: when an item ends ComfyUI strips the API keys from its extra_data (0.3.64 from its running
        # copy; the item itself is also handed to nodes, which may edit it), and clones queued later still need
        # them. The worker cannot have finished the item yet: this runs right after the put, holding the GIL.
        extra = item[3]
        expansion.template_item = (*item[:3], dict(extra) if isinstance(extra, dict) else extra, *item[4:5],
                                   *copy.deepcopy(tuple(item[5:])))
        self.host.call_soon_threadsafe(expansion.settled.set)

    def _stash_early(self, prompt_id: str, replay: Callable[[], None]) -> bool:
        """Worker events for a submitted cell whose batch is still being created are replayed once it exists."""
        with self._lock:
            expansion = self._early.get(prompt_id)
            if expansion is None:
                return False
            expansion.early_events.append(replay)
            return True

    # ----------------------------------------------------------------- feeding the queue
    def _accepting(self, batch_id: str) -> bool:
        return self.manager.state_of(batch_id) in ("pending", "active")

    async def _feed(self, expansion: _Expansion, template_item: tuple, *, start: int,
                    when_queued: Callable[[], None] | None = None) -> None:
        """Validate and queue the cells of ``expansion.order[start:]`` in that order, keeping at most ``window``
        queued ahead of the worker. Each gets a priority just above the previous one, below ``number + 1``, so
        the batch runs contiguously and prompts posted later run after it. ``when_queued`` is called once, when
        the window is first full or the feeder stops, whichever comes first."""
        expansion.wakeup = asyncio.Event()
        plan, batch_id, total = expansion.plan, expansion.batch_id, expansion.plan.total
        extras = CellExtras(template_item[3], plan, batch_id, expansion.subfolder)
        ids = PromptIds()
        try:
            for position in range(start, len(expansion.order)):
                index = expansion.order[position]
                if len(expansion.queued) >= self.window:
                    if when_queued is not None:
                        when_queued, announce = None, when_queued
                        announce()
                    await self._wait_for_room(expansion)
                combination = plan.combinations[index]
                cell_prompt = plan.cell_prompt(combination)
                prompt_id = ids.for_cell(index)
                try:
                    valid = await self.host.validate(prompt_id, cell_prompt, expansion.partial_targets)
                except Exception as exc:  # a custom node's VALIDATE_INPUTS may raise; that cell fails, not the batch
                    logger.exception("WI: validating cell %d of %s raised", index, batch_id)
                    valid = (False, {"message": f"{type(exc).__name__}: {exc}"}, [], {})
                if not valid[0] or not valid[2]:
                    if self.manager.register_failure(batch_id, index, describe_validation_error(valid)):
                        self._schedule_grid(batch_id)
                    continue
                # No await between this attach and the put: a cancel (also on this loop) cannot slip in between.
                if not self.manager.attach_prompt(batch_id, index, prompt_id, only_if_open=True):
                    return  # cancelled (or gone) while this cell was validated
                with expansion.lock:
                    expansion.queued.add(prompt_id)
                number = expansion.number + position / total
                self.host.put_clone(template_item, number, prompt_id, cell_prompt, extras.for_cell(combination), list(valid[2]))
                if position % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # let routes and other requests run between runs of cells
        except Exception:
            logger.exception("WI: feeding batch %s stopped", batch_id)
            self._fail_unqueued(batch_id, "internal error while queueing; see the ComfyUI log")
        finally:
            with self._lock:
                self._feeding.pop(batch_id, None)
            if when_queued is not None:
                when_queued()

    async def _wait_for_room(self, expansion: _Expansion) -> None:
        """Wait until ``refill_at`` of the window's cells are left (or the batch stops accepting).

        ``refill_at`` is published under the expansion's lock, where the worker thread's :meth:`_wake` reads it
        after removing a started cell, so exactly the removal that reaches it wakes us (no lost wake-up: the
        ``set`` it schedules runs on this loop after the ``clear`` below)."""
        assert expansion.wakeup is not None
        refill_at = min(self.window - 1, int(self.window * (1 - REFILL_FRACTION)))
        try:
            while self._accepting(expansion.batch_id):
                with expansion.lock:
                    if len(expansion.queued) <= refill_at:
                        return
                    expansion.refill_at = refill_at
                    expansion.wakeup.clear()
                await expansion.wakeup.wait()
        finally:
            with expansion.lock:
                expansion.refill_at = -1

    def _fail_unqueued(self, batch_id: str, reason: str) -> None:
        try:
            status = self.manager.get_status(batch_id)
        except UnknownBatchError:
            return
        for cell in status["cells"]:
            if cell["status"] == "queued" and not cell.get("prompt_id"):
                if self.manager.register_failure(batch_id, cell["index"], reason):
                    self._schedule_grid(batch_id)

    def _wake(self, batch_id: str, prompt_id: str | None) -> None:
        with self._lock:
            expansion = self._feeding.get(batch_id)
        if expansion is None:
            return
        with expansion.lock:
            if prompt_id is not None:
                if prompt_id not in expansion.queued:
                    return  # counted already (a cell ending after it started): nothing changed for the feeder
                expansion.queued.discard(prompt_id)
                if len(expansion.queued) > expansion.refill_at:
                    return  # the feeder is not waiting, or waits for fewer: no cross-thread wake-up
        if expansion.wakeup is not None:
            self.host.call_soon_threadsafe(expansion.wakeup.set)

    # ----------------------------------------------------------------- completion (worker thread)
    def on_item_started(self, prompt_id: Any) -> None:
        found = self.manager.lookup_prompt(str(prompt_id))
        if found is None:
            self._stash_early(str(prompt_id), lambda: self.on_item_started(prompt_id))
            return
        batch_id, index = found
        self.manager.mark_running(batch_id, index)
        self._wake(batch_id, str(prompt_id))

    def on_item_done(self, prompt_id: Any, history_result: Any, status: Any) -> None:
        """ComfyUI finished a queue item (success, error or interrupt); ends the matching cell."""
        found = self.manager.lookup_prompt(str(prompt_id))
        if found is None:
            self._stash_early(str(prompt_id), lambda: self.on_item_done(prompt_id, history_result, status))
            return
        batch_id, index = found
        self._wake(batch_id, str(prompt_id))
        outcome, reason = classify_outcome(status)
        if outcome == "done":
            save_ids = self._save_nodes.get(batch_id, ())
            outputs = history_result.get("outputs") if isinstance(history_result, Mapping) else None
            ended = self.manager.register_result(batch_id, index, images_from_outputs(outputs, save_ids), {"prompt_id": str(prompt_id)})
        elif outcome == "cancelled":
            ended = self.manager.register_cancelled(batch_id, index, reason or "interrupted")
        else:
            ended = self.manager.register_failure(batch_id, index, reason or "failed")
        if ended:
            self._schedule_grid(batch_id)

    def on_items_removed(self, prompt_ids: Sequence[str], *, whole_queue: bool) -> None:
        """Items deleted from ComfyUI's queue by someone else: those cells are cancelled.

        ``whole_queue`` (Clear queue) also cancels the batches' cells not yet queued: the user asked for an
        empty queue, not for the sweep to refill it.
        """
        touched: set[str] = set()
        for prompt_id in prompt_ids:
            found = self.manager.lookup_prompt(str(prompt_id))
            if found is None:
                continue
            batch_id, index = found
            touched.add(batch_id)
            self._wake(batch_id, str(prompt_id))
            if self.manager.register_cancelled(batch_id, index, "removed from the queue"):
                self._schedule_grid(batch_id)
        if whole_queue:
            for batch_id in touched:
                try:
                    self.manager.cancel_batch(batch_id)
                except WIError:
                    continue
                self._wake(batch_id, None)
                self._schedule_grid(batch_id)

    # ----------------------------------------------------------------- cancel and finish
    def cancel(self, batch_id: str) -> dict[str, Any]:
        """Cancel one batch: drop its queued cells, interrupt its running cell only, keep everyone else's work.

        Raises:
            UnknownBatchError: no such batch (404).
            InvalidBatchState: it already finished (409).
        """
        prompt_ids = self.manager.cancel_batch(batch_id)
        removed, interrupted = self.host.cancel_prompts(set(prompt_ids))
        self._wake(batch_id, None)
        self._schedule_grid(batch_id)
        logger.info("WI: batch %s cancelled: %d removed, interrupted %s", batch_id, len(removed), interrupted)
        return {"batch_id": batch_id, "state": "cancelled", "removed": removed, "interrupted": interrupted}

    def _schedule_grid(self, batch_id: str) -> None:
        if self.grid_builder is None:
            return
        self.host.run_background(self._build_grid_safely, batch_id)

    def _build_grid_safely(self, batch_id: str) -> None:
        try:
            assert self.grid_builder is not None
            self.grid_builder(batch_id)
        except Exception as exc:  # the cells are saved; a grid failure must not lose them or kill the thread
            logger.exception("WI: building the grid of %s failed", batch_id)
            try:
                self.manager.add_warning(batch_id, f"grid failed: {type(exc).__name__}: {exc}")
                self.manager.set_grid(batch_id, {"error": f"{type(exc).__name__}: {exc}"})
            except (WIError, InvalidBatchState):
                pass

    # ----------------------------------------------------------------- pre-flight (the iterator badge)
    def preview(self, body: Any) -> dict[str, Any]:
        """The iterator badge (POST /wi/preview): :func:`planner.preview`, with this service's parser and limit."""
        return planner.preview(body, parse=self.parse, max_combinations=self.max_combinations, grid_estimate=batch_outputs.preview_grid)

    # ----------------------------------------------------------------- events
    def _forward_event(self, event: str, payload: dict[str, Any]) -> None:
        self.host.send_event(f"wi.{event}", payload)
