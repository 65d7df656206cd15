"""The sweep service: from a submitted prompt to a finished batch, over an injected host.

Owns the batch's journey through ComfyUI without importing ComfyUI: the onprompt handler
(:meth:`SweepService.handle_prompt`), the feeder that validates and queues the other cells once ComfyUI has
accepted the submitted one, completion (every cell ends as done, failed or cancelled), per-batch cancel, and
handing finished batches to the grid builder on a background thread.

The host (``nodes/_comfy.py`` in ComfyUI, a stand-in in tests) supplies the queue, validation, events and
threads; see :class:`Host`. Which thread calls what:

* aiohttp loop thread: ``handle_prompt``, ``on_validated``, ``on_item_put`` (from POST /prompt), the feeder
  coroutine, ``cancel`` and ``preview`` (route handlers);
* ComfyUI's worker thread: ``hold_worker``, ``on_item_started`` and ``on_item_done`` (kept short: the next
  prompt waits; with a hand-off interval ``on_item_done`` only hands the finished item to the loop, see
  :meth:`SweepService.record_handed_over`);
* the host's background executor: grid building.

Plain Python: must not import torch, comfy*, server, nodes, execution, folder_paths, comfy_execution, aiohttp.
"""
from __future__ import annotations

import asyncio
import collections
import copy
import enum
import functools
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from . import batch_outputs, dispatch, parameter_parser, planner, prompt_graph, saved_cells
from . import outputs as cell_outputs
from .errors import InvalidBatchState, ParamSyntaxError, UnknownBatchError, WIError
from .iteration_state import CELL_STATUS_CHARS, IterationStateManager
from .paths import batch_subfolder, new_batch_id
from .ports import Host, QueuedPrompt, RemoteWorkerPort
from .states import CellStatus
from .workers import WorkerDirectory

logger = logging.getLogger(__name__)

#: Cells queued ahead of the one running. Keeps ComfyUI's queue (and its memory) small for 10,000-cell
#: sweeps and makes cancel cheap, while always having the next cell in the heap before the worker asks.
DEFAULT_WINDOW = 32
#: A full window is topped up only once this fraction of it has started running, in one burst. Waking the
#: feeder for every started cell would put a loop wake-up (and a validation holding the GIL) between every
#: two cells, right when the worker thread is between prompts.
REFILL_FRACTION = 0.25
#: The feeder hands the loop back after this many cells (validation itself rarely yields).
YIELD_EVERY = 8
#: How long a submitted sweep may wait for ComfyUI to queue (or reject) its first cell.
ACCEPT_TIMEOUT_S = 600.0
#: Longest the worker waits for a starved batch's next cell before taking whatever is queued (see
#: SweepService.hold_worker): long enough for the run order of a big sweep, short enough that a stuck
#: feeder never stalls other users' prompts for more than a moment.
FEEDER_HOLD_S = 2.0
#: How often a held worker looks again (the feeder also wakes it after every put).
_HOLD_POLL_S = 0.005


GridBuilder = Callable[[str], None]

_CELL_CODES = {status.value: code for code, status in enumerate(CellStatus)}


class Phase(enum.Enum):
    """Where one batch's run stands. Only moves forward."""

    AWAITING_ACCEPTANCE = "awaiting acceptance"  # the hook returned; ComfyUI has not yet queued cell 0
    FEEDING = "feeding"  # the feeder validates and queues the other cells, a window at a time
    DRAINING = "draining"  # every cell was queued (or the batch stopped accepting); waiting for ends
    ENDED = "ended"  # no cell of the batch is open; forgotten by the service


@dataclass(eq=False)
class BatchRun:
    """Everything the service keeps about one batch while its cells run, in one object it owns.

    Created by the hook (or by resume) with the batch record already in the manager, so a worker event for
    any of its cells finds the batch; dropped when the batch has no open cell left. Its feed window
    (``queued``), wake-up and save-node ids live here, not in service-wide dicts.
    """

    batch_id: str
    plan: prompt_graph.SweepPlan
    number: float | None  # the batch's priority; None: allocated by the feeder, on the loop (resume)
    partial_targets: Any
    subfolder: str
    prompt_obj: Any = None  # the submitted cell's prompt dict (matched by identity on put), or None for resume
    prompt_id: str = ""  # the submitted cell's prompt id
    client_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    order: Sequence[int] = field(default_factory=lambda: [0])  # run order of cell indices; order[0] runs first
    phase: Phase = Phase.AWAITING_ACCEPTANCE
    settled: asyncio.Event | None = None  # accepted (template set) or rejected (rejection set)
    template: QueuedPrompt | None = None  # ComfyUI's own item for cell 0: what every clone copies
    rejection: str | None = None
    queued: set[str] = field(default_factory=set)  # prompt ids put in ComfyUI's queue, not yet started
    submitted_left_queue: bool = False  # cell 0 started (or was removed) before _start counted it as queued
    fed_until: int = 1  # positions of ``order`` before this one have been queued (or failed validation)
    wakeup: asyncio.Event | None = None
    # While the feeder waits for room: wake it once ``len(queued)`` drops to this. -1: not waiting (no wake-ups).
    refill_at: int = -1
    lock: threading.Lock = field(default_factory=threading.Lock)
    dispatch: dispatch.BatchDispatch | None = None  # set when the batch runs on several servers (issue 14)

    @property
    def save_node_ids(self) -> tuple[str, ...]:
        return self.plan.save_node_ids

    def unfed(self) -> bool:
        """Cells are left that the feeder has not queued yet."""
        return self.fed_until < len(self.order)


class CellExtras:
    """Each cell's ``extra_data``: the batch's (client id, UI workflow, ...) plus the block naming the cell.

    The parts that are the same for every cell are built once per batch; the feeder asks for one per queued
    cell. Every cell gets its own top-level and ``extra_pnginfo`` dicts (ComfyUI pops keys from the former
    when the item ends); the UI workflow inside stays shared, WISaveImage derives the cell's copy. The
    ``extra_pnginfo`` dict and the re-entry mark are :class:`prompt_graph.SharedBlock`: nothing writes to them.
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

    def for_cell(self, combination: Any) -> dict[str, Any]:
        info = self._plan.cell_info(self._batch_id, combination, self._batch_part)
        stamped = {"create_time": int(time.time() * 1000)} if "create_time" in self._extra else {}
        return {
            **self._extra,
            **stamped,  # 0.38 sorts jobs by it: each cell is created when it is queued, not with cell 0
            # Shared by ComfyUI's deep copy of the item (its worker, between two prompts), UI workflow included.
            "extra_pnginfo": prompt_graph.SharedBlock({**self._pnginfo, prompt_graph.CELL_INFO_KEY: info}),
            prompt_graph.REENTRY_KEY: prompt_graph.SharedBlock(batch_id=self._batch_id, index=combination.index),
        }


def _workflow_id(extra_data: Any) -> str | None:
    """The UI workflow's id (``extra_pnginfo.workflow.id``), which newer frontends match events against."""
    pnginfo = extra_data.get("extra_pnginfo") if isinstance(extra_data, Mapping) else None
    workflow = pnginfo.get("workflow") if isinstance(pnginfo, Mapping) else None
    found = workflow.get("id") if isinstance(workflow, Mapping) else None
    return str(found) if isinstance(found, (str, int)) else None


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
    """File refs of every output of a cell as ComfyUI reported them (``core.outputs.classify``: our save
    nodes first); text outputs have no file until :meth:`SweepService._capture` places them."""
    return [o.ref() for o in cell_outputs.classify(outputs, prefer_nodes) if o.kind != "text"]


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
        handoff_interval: float = 0.0,
        workers: WorkerDirectory | None = None,
        remote: RemoteWorkerPort | None = None,
    ) -> None:
        self.manager = manager
        self.host = host
        self.journal = journal
        self.grid_builder = grid_builder
        limits = planner.Limits.from_env()  # WI_MAX_VALUES / WI_MAX_COMBINATIONS, else the defaults
        self.max_values = limits.max_values if max_values is None else max_values
        self.max_combinations = limits.max_combinations if max_combinations is None else max_combinations
        self.window = max(2, window)
        # Issue 14: other ComfyUI servers to spread a batch over. Without a remote worker nothing changes.
        self.workers = workers
        self.remote = remote
        # One run per batch with open cells (dropped when none is left), and the runs whose submitted cell
        # ComfyUI has not queued yet, by its prompt id (also matched by prompt object identity, which survives
        # ComfyUI versions that ignore a client-chosen prompt_id).
        self._runs: dict[str, BatchRun] = {}
        self._awaiting: dict[str, BatchRun] = {}
        # Prompt ids whose interrupt a cancel asked for: stopped before their next node even when ComfyUI
        # cleared the interrupt flag by starting the prompt in between (see should_interrupt).
        self._stopping: set[str] = set()
        # The loop's tick while batches run (0: none, everything at once on the calling thread). Each tick
        # records the items ComfyUI's worker handed over (see on_item_done) and sends the wi.cell_ended
        # events gathered since the last one (see _forward_event).
        self.handoff_interval = max(0.0, float(handoff_interval))
        self._event_outbox: list[tuple[str, dict[str, Any]]] = []
        self._ticking = False
        # What the worker handed over for the tick to record, oldest first: (recorder, its arguments, when on
        # the manager's clock); and the lock that makes record_handed_over return only once all is recorded.
        self._handed: collections.deque[tuple[Callable[..., None], tuple[Any, ...], float]] = collections.deque()
        self._recording = threading.RLock()
        # Runs whose feeder a started cell should wake, held back (while the tick runs) until ComfyUI starts
        # that cell's first node: see _wake.
        self._held_wakeups: dict[str, BatchRun] = {}
        self._lock = threading.Lock()
        # Notified after every clone the feeder puts: wakes a worker held by hold_worker.
        self._fed = threading.Condition()
        manager.add_listener(self._forward_event)
        if journal is not None:
            manager.add_listener(self._journal_event)

    # ----------------------------------------------------------------- parsing helpers
    def parse(self, values_raw: str, value_type: str, *, name: str = "", options: Sequence[str] | None = None) -> list[Any]:
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
        # Creating the batch is O(1) whatever N (cells live in the lazy combination set), so the record exists
        # before the hook returns and every worker event for cell 0 finds it. What is O(N) (the journal entry,
        # the run order) is done by _start, right after the request returns. Cell 0 runs first in every order.
        batch_id = new_batch_id(plan.batch_name)
        subfolder = batch_subfolder(save_prefix, batch_id)
        first = plan.combinations[plan.first_index]  # cell 0 unless the skip list removed it
        cell_prompt = plan.cell_prompt(first, isolated=True)
        extra = CellExtras(json_data.get("extra_data"), plan, batch_id, subfolder, client_id).for_cell(first)
        self.manager.create_batch(
            batch_name=plan.batch_name, mode=plan.mode, combinations=plan.combinations, axes=plan.axes,
            client_id=client_id, batch_id=batch_id, snapshot_cells=False, skipped=plan.skipped,
            meta={
                "grid_node_id": plan.grid_node_id,
                "grid_options": plan.grid_options,
                "save_node_ids": list(plan.save_node_ids),
                "param_errors": [e.to_json() for e in plan.errors],
                "subfolder": subfolder,
                "workflow_id": _workflow_id(json_data.get("extra_data")),
            },
        )
        self.manager.attach_prompt(batch_id, first.index, prompt_id)
        run = BatchRun(
            batch_id=batch_id, plan=plan, number=number, partial_targets=json_data.get("partial_execution_targets"),
            subfolder=subfolder, prompt_obj=cell_prompt, prompt_id=prompt_id, client_id=client_id, extra=extra,
            settled=asyncio.Event(),
        )
        with self._lock:
            self._runs[batch_id] = run
            self._awaiting[prompt_id] = run
        if self.journal is not None:  # O(axes), queued before any end of its cells can be
            self._journal_batch(run)
        self._ensure_tick()
        self.host.create_task(self._start(run))
        logger.info("WI: batch %s: %d cells (%s)", batch_id, plan.total, plan.mode)
        # A new body rather than edits to the old one: ComfyUI keeps the old one if anything here raised.
        return {**json_data, "prompt": cell_prompt, "prompt_id": prompt_id, "number": number, "extra_data": extra}

    async def _start(self, run: BatchRun) -> None:
        """Journal the batch, then wait for ComfyUI to accept (or reject) the submitted cell and feed the rest."""
        plan, batch_id = run.plan, run.batch_id
        if run.settled is None:
            run.settled = asyncio.Event()
        try:
            preflight = None
            if plan.grid_node_id is not None:
                preflight = functools.partial(self.host.run_background, self._preflight, batch_id, plan, run.client_id)
            if plan.total > 1:  # an O(cells) order is built off the loop; a lazy one here (cheaper than a thread hop)
                loop = asyncio.get_running_loop()
                run.order = plan.run_order() if plan.run_order_is_lazy else await loop.run_in_executor(None, plan.run_order)
            if run.template is None and run.rejection is None:  # usually settled already by POST /prompt
                try:
                    await asyncio.wait_for(run.settled.wait(), timeout=ACCEPT_TIMEOUT_S)
                except asyncio.TimeoutError:
                    run.rejection = "the submitted prompt never reached ComfyUI's queue"
            if run.rejection is not None or run.template is None:
                self._take_awaiting(run.prompt_obj, run.prompt_id)
                self._end_rejected(run, run.rejection or "not queued")
                return
            with run.lock:
                if not run.submitted_left_queue:  # it may have started already: it then left the queue
                    run.queued.add(run.prompt_id)
            run.phase = Phase.FEEDING
            if await self._dispatched(run, run.template, start=1, preflight=preflight):
                return
            # The pre-flight (a thread competing for the GIL) starts once the queue holds its window of cells.
            await self._feed(run, run.template, start=1, when_queued=preflight)
        except Exception:
            logger.exception("WI: starting batch %s failed", batch_id)
            self._fail_unqueued(batch_id, "internal error while queueing; see the ComfyUI log")

    def _journal_batch(self, run: BatchRun) -> None:
        try:
            assert self.journal is not None
            self.journal.record_batch(self._journal_record(run.batch_id, run.plan, run.client_id, run.subfolder,
                                                           run.extra, run.partial_targets))
        except Exception:  # the journal is a safety net; the sweep goes on without its entry
            logger.exception("WI: journaling batch %s failed", run.batch_id)

    def _end_rejected(self, run: BatchRun, reason: str) -> None:
        logger.warning("WI: batch %s not started: %s", run.batch_id, reason)
        try:
            self.manager.add_warning(run.batch_id, f"not started: {reason}")
            self.manager.register_failure(run.batch_id, run.plan.first_index, reason)
            self.manager.cancel_batch(run.batch_id)
        except WIError:
            pass
        self._end_run(run.batch_id)

    def _reject(self, json_data: dict[str, Any], prompt: dict[str, Any], iterator_id: str, message: str,
                client_id: str | None) -> dict[str, Any]:
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
            "total": plan.total,  # no per-cell rows: a cell's values are its axes' (the plan), stored once
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
            journal.record_cells_cancelled(batch_id, "batch cancelled", keep=payload.get("running") or ())
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
                self._restore(record)
                restored.append(str(record["batch_id"]))
            except (ValueError, KeyError, TypeError, WIError):
                logger.exception("WI: could not restore batch %s from the journal", record.get("batch_id"))
        if restored:
            logger.info("WI: %d interrupted batch(es) can be resumed: %s", len(restored), ", ".join(restored))
        return restored

    def _plan_of(self, record: Mapping[str, Any]) -> prompt_graph.SweepPlan | None:
        plan = record.get("plan")
        if not isinstance(plan, Mapping) or "sweep" not in plan:
            return None
        return prompt_graph.SweepPlan.from_json(plan["sweep"], max_combinations=self.max_combinations)

    def _restore(self, record: Mapping[str, Any]) -> None:
        """Put a journaled batch back in the manager; a batch journaled without per-cell rows takes its cells'
        coordinates and values from its plan."""
        plan = self._plan_of(record) if record.get("sparse") else None
        if record.get("sparse") and plan is None:
            raise ValueError(f"journal record of {record.get('batch_id')!r} has neither cells nor a plan")
        self.manager.restore_batch(record, combinations=plan.combinations if plan is not None else None,
                                   skipped=plan.skipped if plan is not None else ())

    def resume(self, batch_id: str, *, output_dir: str | None = None) -> dict[str, Any]:
        """Queue exactly the cells of an interrupted batch that did not finish, with the same values and seeds.

        A cell whose images are all on disk, whole and naming this cell (its save ran before the crash, its end
        never reached the journal), is marked done, not re-run: see :mod:`core.saved_cells`. Reads the journal
        and the batch's files: the route calls it off the server loop (the feeder it starts runs on the loop).

        Raises:
            UnknownBatchError: no such batch in memory or in the journal (404).
            InvalidBatchState: the batch is not interrupted (409).
        """
        self.record_handed_over()
        record = self.journal.get_batch(batch_id) if self.journal is not None else None
        try:
            self.manager.get_status(batch_id, include_cells=False)
        except UnknownBatchError:
            if record is None:
                raise
            if record.get("state") in ("complete", "cancelled", "expired"):
                raise InvalidBatchState(f'batch "{batch_id}" is {record.get("state")}, not interrupted') from None
            self._restore(record)
        if record is None or not isinstance(record.get("plan"), Mapping) or "sweep" not in record["plan"]:
            raise InvalidBatchState(f'batch "{batch_id}" has no stored plan to resume from')
        plan = prompt_graph.SweepPlan.from_json(record["plan"]["sweep"], max_combinations=self.max_combinations)
        todo = self.manager.resume_batch(batch_id)
        subfolder = str((record.get("meta") or {}).get("subfolder") or "")
        saved: dict[int, list[dict[str, str]]] = {}
        if output_dir and subfolder:
            saved_cells.remove_leftovers(output_dir, subfolder)
            created = record.get("created_at")
            saved = saved_cells.find_saved_cells(
                output_dir, plan, batch_id=batch_id, subfolder=subfolder, indices=todo,
                since=float(created) if isinstance(created, (int, float)) else None,
                partial_targets=record["plan"].get("partial_targets"),
            )
        remaining = []
        for index in todo:
            if index in saved:
                if self.manager.register_result(batch_id, index, saved[index], {"resumed": "file already saved"}):
                    self._schedule_grid(batch_id)
            else:
                remaining.append(index)
        if not todo:
            self._schedule_grid(batch_id)
        if remaining:
            wanted = set(remaining)
            run_order = [i for i in plan.run_order() if i in wanted]
            extra_base = dict(record["plan"].get("extra_data") or {})
            run = BatchRun(
                batch_id=batch_id, plan=plan, number=None,
                partial_targets=record["plan"].get("partial_targets"), order=run_order, subfolder=subfolder,
                phase=Phase.FEEDING, fed_until=0,
            )
            with self._lock:
                self._runs[batch_id] = run
            self.host.call_soon_threadsafe(self._ensure_tick)
            template = self.host.blank_item(extra_base)
            self.host.create_task(self._resume_feed(run, template))
        logger.info("WI: resuming batch %s: %d cells to run, %d already saved", batch_id, len(remaining), len(todo) - len(remaining))
        return {"batch_id": batch_id, "state": "active" if remaining else "collecting",
                "queued": len(remaining), "already_saved": len(todo) - len(remaining)}

    def history(self, *, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """Past and present batches from the journal (they outlive the in-memory expiry)."""
        self.record_handed_over()
        if self.journal is None:
            return {"batches": [], "total": 0, "limit": limit, "offset": offset}
        return {"batches": self.journal.list_batches(limit=limit, offset=offset), "total": self.journal.count_batches(),
                "limit": limit, "offset": offset}

    def list_batches(self) -> list[dict[str, Any]]:
        """Every known batch's summary, newest first (``IterationStateManager.list_batches``)."""
        self.record_handed_over()
        return self.manager.list_batches()

    def status(self, batch_id: str, *, offset: int = 0, limit: int | None = None,
               with_values: bool = True) -> dict[str, Any]:
        """A batch's status from memory, else from the journal (after expiry or a restart); with ``limit``,
        the cells ``offset .. offset + limit`` only (``cells_page`` says which) and every cell's status in
        ``cell_statuses``. Without values, a cell names its coordinates; the values live once, on the axes."""
        self.record_handed_over()
        try:
            return self.manager.get_status(batch_id, offset=offset, limit=limit, with_values=with_values)
        except UnknownBatchError:
            record = self.journal.get_batch(batch_id) if self.journal is not None else None
            if record is None:
                raise
            record = dict(record)
            cells = self._journal_cells(record)  # needs the plan, which the answer leaves out
            record.pop("plan", None)
            record["source"] = "journal"
            start = min(max(0, offset), len(cells))
            stop = len(cells) if limit is None else min(len(cells), start + max(0, limit))
            record["cell_statuses"] = "".join(CELL_STATUS_CHARS[_CELL_CODES.get(str(c.get("status")), 0)] for c in cells)
            record["cells_page"] = {"offset": start, "count": stop - start, "total": len(cells)}
            # The live status's shape (issue 14): the journal does not keep which server ran a cell.
            record["cells"] = [{"worker": None, **(c if with_values else {k: v for k, v in c.items() if k != "values"})}
                               for c in cells[start:stop]]
            record.setdefault("workers", {})
            record.pop("sparse", None)
            return record

    def _journal_cells(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every cell of a journaled batch: its rows, and for a batch journaled without per-cell rows the
        cells that have none (queued; cancelled when the batch was), coordinates and values from its plan."""
        rows = list(record.get("cells") or [])
        plan = self._plan_of(record) if record.get("sparse") else None
        if plan is None:
            return rows
        by_index = {int(r["index"]): r for r in rows}
        default = "cancelled" if record.get("state") == "cancelled" else "queued"
        cells = []
        for combination in plan.combinations:
            row = by_index.get(combination.index)
            status = "skipped" if combination.index in plan.skipped else default
            cells.append({**(row or {"status": status, "error": None, "prompt_id": None, "files": [], "ended_at": None}),
                          "index": combination.index, "coords": list(combination.coords),
                          "values": {a.name: prompt_graph.json_ready(v) for a, v in zip(plan.axes, combination.values)}})
        return cells

    # ----------------------------------------------------------------- acceptance of the submitted prompt
    def _take_awaiting(self, prompt_obj: Any, prompt_id: Any) -> BatchRun | None:
        with self._lock:
            if not self._awaiting:
                return None
            run = self._awaiting.pop(str(prompt_id), None) if prompt_id is not None else None
            if run is not None:
                return run
            for key, candidate in self._awaiting.items():
                if candidate.prompt_obj is prompt_obj:
                    return self._awaiting.pop(key)
        return None

    def on_validated(self, prompt_obj: Any, valid: Any) -> None:
        """After ComfyUI validated a prompt: if it was a sweep's first cell and was rejected, end the batch."""
        if not self._awaiting or (isinstance(valid, (tuple, list)) and valid and valid[0]):
            return
        run = self._take_awaiting(prompt_obj, None)
        if run is None:
            return
        run.rejection = f"ComfyUI rejected the submitted prompt: {describe_validation_error(valid)}"
        if run.settled is not None:
            self.host.call_soon_threadsafe(run.settled.set)

    def expects_put(self) -> bool:
        """Whether a submitted sweep waits for ComfyUI to queue its first cell (the put hook is a no-op otherwise)."""
        return bool(self._awaiting)

    def on_item_put(self, item: QueuedPrompt) -> None:
        """Every queue put: when it is a sweep's first cell, the batch is accepted and its feeder may start."""
        if not self._awaiting:
            return
        run = self._take_awaiting(item.prompt, item.prompt_id)
        if run is None:
            return
        if item.prompt_id != run.prompt_id:  # a ComfyUI that chose its own id for the submitted prompt
            run.prompt_id = item.prompt_id
            self.manager.attach_prompt(run.batch_id, run.plan.first_index, run.prompt_id)
        # A snapshot: when an item ends ComfyUI strips the API keys from its extra_data (0.3.64 from its running
        # copy; the item itself is also handed to nodes, which may edit it), and clones queued later still need
        # them. The worker cannot have finished the item yet: this runs right after the put, holding the GIL.
        extra = item.extra_data
        run.template = QueuedPrompt(item.number, item.prompt_id, item.prompt,
                                    dict(extra) if isinstance(extra, dict) else extra, item.outputs,
                                    copy.deepcopy(item.private))
        if run.settled is not None:
            self.host.call_soon_threadsafe(run.settled.set)

    # ----------------------------------------------------------------- feeding the queue
    def _accepting(self, batch_id: str) -> bool:
        return self.manager.state_of(batch_id) in ("pending", "active")

    async def _resume_feed(self, run: BatchRun, template: QueuedPrompt) -> None:
        if not await self._dispatched(run, template, start=0):
            await self._feed(run, template, start=0)

    async def _dispatched(self, run: BatchRun, template: QueuedPrompt, *, start: int,
                          preflight: Callable[[], None] | None = None) -> bool:
        """Run the batch over several servers when remote workers are configured (issue 14); False (nothing
        done) otherwise, and the single-server feeder runs as before."""
        workers = dispatch.remote_workers(self.workers) if self.remote is not None else []
        if not workers:
            return False
        assert self.remote is not None
        if run.number is None:
            run.number = float(self.host.allocate_number(False))
        base_number, total = run.number, run.plan.total
        extras = CellExtras(template.extra_data, run.plan, run.batch_id, run.subfolder)
        ids = self.manager.prompt_ids(run.batch_id)
        queued_here = [0]

        async def queue_local(index: int, _attempt: int) -> bool:
            combination = run.plan.combinations[index]
            cell_prompt = run.plan.cell_prompt(combination)
            prompt_id = ids.for_cell(index)
            valid = await self._validate_cell(run, index, prompt_id, cell_prompt)
            if valid is None:
                return False
            if not self.manager.attach_prompt(run.batch_id, index, prompt_id, only_if_open=True):
                return False
            queued_here[0] += 1
            number = base_number + queued_here[0] / (total + 1)
            self.host.put_clone(template, number, prompt_id, cell_prompt, extras.for_cell(combination), list(valid[2]))
            return True

        run.dispatch = dispatch.BatchDispatch(
            batch_id=run.batch_id, plan=run.plan, order=list(run.order[start:]), workers=workers, port=self.remote,
            manager=self.manager, extras=extras,
            subfolder=run.subfolder, queue_local=queue_local,
            on_batch_ended=functools.partial(self._batch_ended, run.batch_id),
            send_event=lambda event, data: self.host.send_event(event, data),
            call_soon_threadsafe=self.host.call_soon_threadsafe, directory=self.workers,
            input_dir=self.host.input_dir(), local_leased=list(run.order[:start]),
        )
        if preflight is not None:
            preflight()
        try:
            await run.dispatch.run()
        except Exception:
            logger.exception("WI: dispatching batch %s stopped", run.batch_id)
            self._fail_unqueued(run.batch_id, "internal error while dispatching; see the ComfyUI log")
        finally:
            if run.phase is Phase.FEEDING:
                run.phase = Phase.DRAINING
        return True

    async def _validate_cell(self, run: BatchRun, index: int, prompt_id: str,
                             cell_prompt: dict[str, Any]) -> tuple[Any, ...] | None:
        """Validate one cell here: ``validate_prompt``'s answer, or None when it failed (the cell then ended)."""
        try:
            valid = await self.host.validate(prompt_id, cell_prompt, run.partial_targets)
        except Exception as exc:  # a custom node's VALIDATE_INPUTS may raise; that cell fails, not the batch
            logger.exception("WI: validating cell %d of %s raised", index, run.batch_id)
            valid = (False, {"message": f"{type(exc).__name__}: {exc}"}, [], {})
        if not valid[0] or not valid[2]:
            if self.manager.register_failure(run.batch_id, index, describe_validation_error(valid)):
                self._batch_ended(run.batch_id)
            return None
        return tuple(valid)

    async def _feed(self, run: BatchRun, template: QueuedPrompt, *, start: int,
                    when_queued: Callable[[], None] | None = None) -> None:
        """Validate and queue the cells of ``run.order[start:]`` in that order, keeping at most ``window``
        queued ahead of the worker. Each gets a priority just above the previous one, below ``number + 1``, so
        the batch runs contiguously and prompts posted later run after it. ``when_queued`` is called once, when
        the window is first full or the feeder stops, whichever comes first."""
        run.wakeup = asyncio.Event()
        if run.number is None:  # here, on the loop, like ComfyUI's own POST /prompt
            run.number = float(self.host.allocate_number(False))
        base_number = run.number
        plan, batch_id, total = run.plan, run.batch_id, run.plan.total
        extras = CellExtras(template.extra_data, plan, batch_id, run.subfolder)
        ids = self.manager.prompt_ids(batch_id)
        try:
            for position in range(start, len(run.order)):
                index = run.order[position]
                if len(run.queued) >= self.window:
                    if when_queued is not None:
                        announce, when_queued = when_queued, None
                        announce()
                    await self._wait_for_room(run)
                combination = plan.combinations[index]
                cell_prompt = plan.cell_prompt(combination)
                prompt_id = ids.for_cell(index)
                valid = await self._validate_cell(run, index, prompt_id, cell_prompt)
                run.fed_until = position + 1
                if valid is None:
                    continue
                # No await between this attach and the put: a cancel (also on this loop) cannot slip in between.
                if not self.manager.attach_prompt(batch_id, index, prompt_id, only_if_open=True):
                    return  # cancelled (or gone) while this cell was validated
                with run.lock:
                    run.queued.add(prompt_id)
                number = base_number + position / total
                self.host.put_clone(template, number, prompt_id, cell_prompt, extras.for_cell(combination), list(valid[2]))
                with self._fed:
                    self._fed.notify_all()
                if position % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # let routes and other requests run between runs of cells
        except Exception:
            logger.exception("WI: feeding batch %s stopped", batch_id)
            self._fail_unqueued(batch_id, "internal error while queueing; see the ComfyUI log")
        finally:
            if run.phase is Phase.FEEDING:
                run.phase = Phase.DRAINING
            if when_queued is not None:
                when_queued()

    async def _wait_for_room(self, run: BatchRun) -> None:
        """Wait until ``refill_at`` of the window's cells are left (or the batch stops accepting).

        ``refill_at`` is published under the run's lock, where the worker thread's :meth:`_wake` reads it
        after removing a started cell, so exactly the removal that reaches it wakes us (no lost wake-up: the
        ``set`` it schedules runs on this loop after the ``clear`` below)."""
        assert run.wakeup is not None
        refill_at = min(self.window - 1, int(self.window * (1 - REFILL_FRACTION)))
        try:
            while self._accepting(run.batch_id):
                with run.lock:
                    if len(run.queued) <= refill_at:
                        return
                    run.refill_at = refill_at
                    run.wakeup.clear()
                await run.wakeup.wait()
        finally:
            with run.lock:
                run.refill_at = -1

    def hold_worker(self, timeout: float | None) -> bool:
        """Called on ComfyUI's worker thread before it takes its next item: while a batch that is being fed
        has none of its cells in the queue, wait (at most ``FEEDER_HOLD_S``) for the feeder to queue the next.

        That gap opens once per batch: a fast cell 0 can end before the feeder has its run order and has
        validated cell 1, and the worker would then take a prompt posted after the batch (another user's
        sweep, say), splitting the batch. Later gaps cannot open: the feeder refills its window long before
        it empties. True when the worker's own ``timeout`` (ComfyUI shortens it before its periodic garbage
        collection) ran out first: its ``get`` then answers "nothing queued", as it would have after waiting
        that long for an empty queue, and the worker asks again after collecting."""
        if timeout is not None and timeout <= 0 or not self._runs:
            return False
        hold = FEEDER_HOLD_S if timeout is None else min(FEEDER_HOLD_S, float(timeout))
        deadline = time.monotonic() + hold
        while self._starved_run() is not None:
            if self._held_wakeups:  # the feeder waits for one of them: the worker has nothing else to do
                self._release_wakeups()
            left = deadline - time.monotonic()
            if left <= 0:
                if hold < FEEDER_HOLD_S:
                    return True
                logger.warning("WI: the next cell of a batch was not queued within %.1f s; the worker goes on "
                               "with the queue as it is", hold)
                return False
            with self._fed:
                self._fed.wait(min(left, _HOLD_POLL_S))
        return False

    def _starved_run(self) -> BatchRun | None:
        """A batch still being fed on this server with no cell of it left in ComfyUI's queue, if any."""
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            if run.template is None or run.rejection is not None or run.dispatch is not None:
                continue  # not accepted (cell 0 itself may be queued still), or spread over several servers
            with run.lock:
                if run.phase is Phase.AWAITING_ACCEPTANCE:
                    starved = run.plan.total > 1 and run.submitted_left_queue
                else:
                    starved = run.phase is Phase.FEEDING and not run.queued and run.unfed()
            if starved and self._accepting(run.batch_id):
                return run
        return None

    def _fail_unqueued(self, batch_id: str, reason: str) -> None:
        if self.manager.fail_unqueued(batch_id, reason):
            self._batch_ended(batch_id)

    def _wake(self, batch_id: str, prompt_id: str | None, *, refill: bool = True, hold: bool = False) -> BatchRun | None:
        """A cell left ComfyUI's queue (started, or removed with ``refill=False``): wake the feeder if that
        made room. Returns the run.

        A removal never wakes the feeder: a queue emptied one deletion at a time (newer frontends' Clear
        queue) must not be refilled between two deletions; the next cell to start refills as usual.

        With ``hold`` (a cell ComfyUI's worker is starting) and the tick running, the wake-up waits for that
        cell's first node (:meth:`before_node`), the tick, or a starved worker (:meth:`hold_worker`): woken
        in the gap before ``execution_start``, the loop took the GIL for the refill's validations and the
        worker waited for it, 1.5-4 ms once per refill on a 2-core machine. Woken once the cell runs, the
        refill overlaps the cell, where the worker waits on its nodes (a GPU's, in real sweeps)."""
        with self._lock:
            run = self._runs.get(batch_id)
        if run is None:
            return None
        with run.lock:
            if prompt_id is not None:
                if prompt_id == run.prompt_id:
                    run.submitted_left_queue = True
                if prompt_id not in run.queued:
                    return run  # counted already (a cell ending after it started): nothing changed for the feeder
                run.queued.discard(prompt_id)
                if not refill or len(run.queued) > run.refill_at:
                    return run  # the feeder is not waiting, or waits for fewer: no cross-thread wake-up
        if run.wakeup is not None:
            if hold and self.handoff_interval > 0:
                with self._lock:
                    if self._ticking:  # the tick releases it at the latest
                        self._held_wakeups[run.batch_id] = run
                        return run
            self.host.call_soon_threadsafe(run.wakeup.set)
        return run

    def _release_wakeups(self) -> None:
        with self._lock:
            held, self._held_wakeups = self._held_wakeups, {}
        for run in held.values():
            if run.wakeup is not None:
                self.host.call_soon_threadsafe(run.wakeup.set)

    # ----------------------------------------------------------------- completion (worker thread)
    def on_item_started(self, prompt_id: Any) -> None:
        """ComfyUI's worker took a queue item: its cell is running (recorded now, or handed to the tick with
        the time it started, see :meth:`on_item_done`), and the feeder learns there is room."""
        found = self.manager.lookup_prompt(str(prompt_id))
        if found is None:
            return
        batch_id, index = found
        if not self._hand_over(self._record_start, batch_id, index):
            self.record_handed_over()  # anything a stopped tick left, first: events keep their order
            self.manager.mark_running(batch_id, index)
        self._wake(batch_id, str(prompt_id), hold=True)

    def before_node(self, prompt_id: Any) -> bool:
        """ComfyUI's worker is about to run a node of ``prompt_id`` (after that prompt's ``execution_start``):
        the held feeder wake-ups go out now (see :meth:`_wake`). True when a cancel asked to stop that prompt
        (:meth:`should_interrupt`)."""
        if self._held_wakeups:
            self._release_wakeups()
        return self.should_interrupt(prompt_id)

    def should_interrupt(self, prompt_id: Any) -> bool:
        """Asked before each node ComfyUI runs: True when a cancel asked to stop this prompt.

        ComfyUI clears its interrupt flag when a prompt starts, so an interrupt set between the worker's
        ``get`` and that start would be lost and the cell would run to its end; this second check makes the
        cancel hold: no cell of a cancelled batch starts a node after the cancel route has returned."""
        return bool(self._stopping) and str(prompt_id) in self._stopping

    def on_item_done(self, prompt_id: Any, history_result: Any, status: Any) -> None:
        """ComfyUI finished a queue item (success, error or interrupt); its cell ends with the outcome ComfyUI
        reports, also when its batch was cancelled while it ran.

        While the loop ticks (a hand-off interval, batches running) the worker only hands the item over: a
        deque append, no wake-up. Recording a cell end (its outputs sorted, the manager's bookkeeping, the
        journal's and the events' hand-offs) took 0.2-0.3 ms of the worker's time between two prompts on a
        real ComfyUI, the whole of what made it idle longer between cells than between directly posted
        prompts (issue 11); the loop does it at its next tick, or sooner when anything needs the cells."""
        self._stopping.discard(str(prompt_id))
        if not self._hand_over(self._record_end, prompt_id, history_result, status):
            self.record_handed_over()  # anything a stopped tick left, first: ends keep their order
            self._record_end(prompt_id, history_result, status)

    def _hand_over(self, record: Callable[..., None], *args: Any) -> bool:
        """Queue ``record(*args, at=<now on the manager's clock>)`` for the tick; False (nothing queued, the
        caller records at once) when no tick runs."""
        if self.handoff_interval <= 0:
            return False
        at = self.manager.clock()
        with self._lock:
            if not self._ticking:  # the tick stops under this lock: nothing is queued after its last look
                return False
            self._handed.append((record, args, at))
        return True

    def record_handed_over(self) -> None:
        """Record the cell starts and ends the worker handed over, oldest first, each at the time it happened.

        Called by the loop's tick and first thing by everything that reads or changes cells (status, cancel,
        queue removals, resume, history), from any thread: what ComfyUI has finished is what the pack reports
        and acts on, so a cancel never counts a cell that ComfyUI finished as cancelled. Returns once every
        item handed over before the call is recorded. Never raises: one item's failure is logged and the rest
        are recorded."""
        if not self._handed:
            return
        with self._recording:
            while self._handed:
                try:
                    record, args, at = self._handed.popleft()
                except IndexError:  # another thread took the last one between the check and the pop
                    return
                try:
                    record(*args, at=at)
                except Exception:
                    logger.exception("WI: recording what ComfyUI's worker handed over (%s) failed",
                                     getattr(record, "__name__", record))

    def _record_start(self, batch_id: str, index: int, *, at: float | None = None) -> None:
        self.manager.mark_running(batch_id, index, at=at)

    def _record_end(self, prompt_id: Any, history_result: Any, status: Any, *, at: float | None = None) -> None:
        found = self.manager.lookup_prompt(str(prompt_id))
        if found is None:
            return
        batch_id, index = found
        run = self._wake(batch_id, str(prompt_id))
        outcome, reason = classify_outcome(status)
        if outcome == "done":
            outputs = history_result.get("outputs") if isinstance(history_result, Mapping) else None
            ended = self.manager.register_result(batch_id, index, self._capture(batch_id, index, run, outputs), at=at)
        elif outcome == "cancelled":
            ended = self.manager.register_cancelled(batch_id, index, reason or "interrupted", at=at)
        else:
            ended = self.manager.register_failure(batch_id, index, reason or "failed", at=at)
        if run is not None and run.dispatch is not None:
            run.dispatch.local_ended(index)  # after the record: the lease frees once the cell is recorded
        if ended:
            self._batch_ended(batch_id)

    def _capture(self, batch_id: str, index: int, run: BatchRun | None, outputs: Any) -> list[dict[str, str]]:
        """A finished cell's outputs, every node's (``core.outputs``). Temp files and texts get their names in
        the batch folder here; copying, writing and the cell's record for resume (``core.saved_cells``) happen
        on the background thread, before the grid (same thread, queued later), not on ComfyUI's worker."""
        if run is None:  # its batch ended (a cancel) while it ran: what ComfyUI reported, nothing copied
            return images_from_outputs(outputs)
        found = cell_outputs.classify(outputs, run.save_node_ids)
        ours = set(run.save_node_ids)
        if all(o.node_id in ours for o in found):  # WISaveImage files alone: recognised by name, nothing to do
            return [o.ref() for o in found]
        values = saved_cells.cell_values(run.plan, index)
        placed = cell_outputs.place(found, subfolder=run.subfolder, index=index, values=values)
        self.host.run_background(self._store_outputs, found, placed, batch_id, index, values, run.subfolder)
        return [o.ref() for o in placed]

    def _store_outputs(self, found: Sequence[cell_outputs.CellOutput], placed: Sequence[cell_outputs.CellOutput],
                       batch_id: str, index: int, values: Mapping[str, Any], subfolder: str) -> None:
        try:
            output_dir = self.host.output_dir()
            if output_dir is None:
                return
            saved_cells.store_outputs(output_dir, self.host.temp_dir(), found, placed, batch_id=batch_id, index=index,
                                      values=values, subfolder=subfolder)
        except Exception:  # the cell stays done with its refs; a storage failure must not kill the thread
            logger.exception("WI: storing the outputs of cell %d of %s failed", index, batch_id)

    def on_items_removed(self, prompt_ids: Sequence[str], *, whole_queue: bool) -> None:
        """Items deleted from ComfyUI's queue by someone else: those cells are cancelled.

        A Clear queue (``whole_queue``), or single deletions that leave a batch with none of its cells in the
        queue while it still has cells to feed (what newer frontends' "Clear queue" / "Cancel all" and the
        ``/api/jobs`` cancel routes do, one item at a time), ends the batch: the user asked for an empty
        queue, not for the sweep to refill it. Deleting one cell among others cancels only that cell. The
        cell ComfyUI is running is not stopped by either (ComfyUI's own interrupt does that) and ends with
        the outcome ComfyUI reports.
        """
        self.record_handed_over()  # a cell ComfyUI finished is not one the removal left running
        emptied: set[str] = set()
        for prompt_id in prompt_ids:
            found = self.manager.lookup_prompt(str(prompt_id))
            if found is None:
                continue
            batch_id, index = found
            run = self._wake(batch_id, str(prompt_id), refill=False)
            if self.manager.register_cancelled(batch_id, index, "removed from the queue"):
                self._batch_ended(batch_id)
            if run is not None and run.dispatch is not None:
                run.dispatch.local_ended(index)
            if run is not None and (whole_queue or (not run.queued and run.unfed())):
                emptied.add(batch_id)
        for batch_id in emptied:
            try:
                # Every cell still open after those removals is one ComfyUI runs: it reports its own end.
                outcome = self.manager.cancel(batch_id, still_running=lambda open_ids: open_ids)
            except WIError:
                continue
            self._wake(batch_id, None)
            run = self.run_of(batch_id)
            if run is not None and run.dispatch is not None:  # the batch's cells on other servers stop too
                self.host.call_soon_threadsafe(run.dispatch.cancel)
            if outcome.ended:
                self._batch_ended(batch_id)

    # ----------------------------------------------------------------- cancel and finish
    def cancel(self, batch_id: str) -> dict[str, Any]:
        """Cancel one batch: drop its queued cells, interrupt its running cell only, keep everyone else's work.

        The answer names the removed prompts and the running one asked to stop (``interrupting``); that
        cell's record follows from what ComfyUI reports for it (``cancelled`` when the interrupt stopped it,
        ``done`` when it finished first), delivered as ``wi.cell_ended``.

        Raises:
            UnknownBatchError: no such batch (404).
            InvalidBatchState: it already finished (409).
        """
        self.record_handed_over()  # a cell ComfyUI finished before the cancel stays done
        result: dict[str, Any] = {"removed": [], "interrupting": None}

        def remove_and_interrupt(open_ids: Sequence[str]) -> list[str]:
            removed, running = self.host.cancel_prompts(set(open_ids))
            result["removed"], result["interrupting"] = removed, running
            if running is not None:
                self._stopping.add(str(running))
                return [str(running)]
            return []

        run = self.run_of(batch_id)
        outcome = self.manager.cancel(batch_id, still_running=remove_and_interrupt)
        if run is not None and run.dispatch is not None:
            # The other servers: their queued cells of this batch deleted, the running one interrupted if ours.
            result["workers"] = [{"worker_id": w, "prompt_ids": ids} for w, ids in run.dispatch.cancel()]
        self._wake(batch_id, None)
        if outcome.ended:
            self._batch_ended(batch_id)
        logger.info("WI: batch %s cancelled: %d removed, interrupting %s", batch_id, len(result["removed"]),
                    result["interrupting"])
        return {"batch_id": batch_id, "state": "cancelled", **result}

    def _batch_ended(self, batch_id: str) -> None:
        """The batch has no open cell left: forget its run and build its grid (once: the manager returned True
        to exactly one caller)."""
        self._end_run(batch_id)
        self._schedule_grid(batch_id)

    def _end_run(self, batch_id: str) -> None:
        with self._lock:
            run = self._runs.pop(batch_id, None)
            if run is not None:
                run.phase = Phase.ENDED
                if self._awaiting.get(run.prompt_id) is run:
                    del self._awaiting[run.prompt_id]

    def run_of(self, batch_id: str) -> BatchRun | None:
        """The batch's run while it has open cells (None once it ended)."""
        with self._lock:
            return self._runs.get(batch_id)

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
        if event == "cell_ended" and self.handoff_interval > 0:
            # Sent by the loop's tick, not from here: a cell ends wherever it is recorded (the worker thread
            # while no tick runs, a status request's thread), and ComfyUI's send_sync from a thread other than
            # the loop's wakes the loop, once per cell.
            with self._lock:
                self._event_outbox.append((f"wi.{event}", payload))
            return
        self._send_buffered()  # the cells' ends first: events keep their order
        self.host.send_event(f"wi.{event}", payload)

    async def _tick(self) -> None:
        """While batches run, every ``handoff_interval`` seconds: wake the feeders a started cell held back,
        record the items the worker handed over, then send the buffered ``wi.cell_ended`` events (those
        ends' among them)."""
        try:
            while True:
                await asyncio.sleep(self.handoff_interval)
                self._release_wakeups()  # for cells that ran no node (all cached)
                self.record_handed_over()
                self._send_buffered()
                with self._lock:
                    if not self._runs and not self._event_outbox and not self._handed and not self._held_wakeups:
                        self._ticking = False
                        return
        except BaseException:
            with self._lock:
                self._ticking = False
            self._release_wakeups()
            self.record_handed_over()  # cancelled at shutdown, or failed: nothing handed over stays unrecorded
            raise

    def _send_buffered(self) -> None:
        with self._lock:
            pending, self._event_outbox = self._event_outbox, []
        for event, payload in pending:
            self.host.send_event(event, payload)

    def _ensure_tick(self) -> None:
        """Start the loop's tick (called on the loop when a batch starts)."""
        if self.handoff_interval <= 0:
            return
        with self._lock:
            if self._ticking:
                return
            self._ticking = True
        self.host.create_task(self._tick())
