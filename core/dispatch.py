"""One sweep spread over several ComfyUI servers (issue 14): leases, affinity, faults, exclusion, cancel.

Two layers:

* :class:`Dispatcher` — the decisions, synchronous and thread-safe (the local worker's ends arrive on
  ComfyUI's worker thread): which worker gets which cell (a window per worker by weight, affinity on the most
  expensive axis, otherwise the least-loaded worker), what a lost or excluded worker's cells become, and that a
  cell is recorded once, by the worker that finished it.
* :class:`BatchDispatch` — one batch's run over a :class:`~core.ports.RemoteWorkerPort` on the server loop:
  it asks the dispatcher for assignments, queues local ones through the sweep's own local feeder (a callback),
  sends remote ones to their servers, fetches their outputs into the batch folder under the names local cells
  get (:func:`core.paths.cell_filename`), and ends each cell in the manager.

With no remote worker configured none of this runs: the sweep keeps its single-server feeder.

Plain Python: must not import torch, comfy*, server, nodes, execution, folder_paths, comfy_execution, aiohttp.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import paths, prompt_graph
from .ports import RemoteOutcome, RemoteRejected, RemoteUnavailable, RemoteWorkerPort
from .workers import LOCAL_WORKER_ID, WorkerConfig, WorkerDirectory

logger = logging.getLogger(__name__)

__all__ = ["BatchDispatch", "Dispatcher", "affinity_axis", "remote_prompt", "remote_workers", "window_for"]

#: Cells leased to a worker of weight 1: one running, one queued behind it, so its GPU never waits for a round
#: trip between two cells.
BASE_WINDOW = 2
#: How long a remote cell may go without any sign of life (an event, an answer) before its worker is lost.
CELL_TIMEOUT_S = 600.0
#: What replaces ``WISaveImage`` on a stock worker: a core node that returns its images through ``/view``.
REMOTE_SAVE_CLASS = "PreviewImage"
#: Node classes whose file inputs (under ComfyUI's input folder) a worker may lack: class -> input name.
UPLOAD_INPUTS: Mapping[str, str] = {"LoadImage": "image", "LoadImageMask": "image"}
#: This pack's node classes, which a stock worker does not have (their work is done here).
_PACK_CLASSES = frozenset({*prompt_graph.PARAMETER_CLASSES, prompt_graph.ITERATOR_CLASS, prompt_graph.GRID_CLASS,
                           prompt_graph.SAVE_CLASS})


def window_for(worker: WorkerConfig) -> int:
    """Cells a worker holds at once: :data:`BASE_WINDOW` scaled by its weight, at least one."""
    weight = worker.weight if worker.weight == worker.weight and worker.weight > 0 else 1.0
    return max(1, round(BASE_WINDOW * weight))


def remote_workers(directory: WorkerDirectory | None) -> list[WorkerConfig]:
    """The enabled workers of ``directory`` (local first) when at least one enabled worker is remote, else []:
    with no remote worker the sweep runs exactly as on one server."""
    if directory is None:
        return []
    try:
        listed = [w for w in directory.workers() if w.enabled]
    except Exception:  # a broken registry must not stop the sweep: it then runs on this server only
        logger.exception("WI: reading the worker list failed; running on this server only")
        return []
    if not any(not w.local for w in listed):
        return []
    return sorted(listed, key=lambda w: not w.local)


def affinity_axis(plan: prompt_graph.SweepPlan) -> int | None:
    """The axis whose value changes cost the most (the run-order rule's ranking, :func:`prompt_graph.axis_costs`):
    cells sharing its value go to the same worker so each worker's cache is reused. None for fewer than two axes
    or when no axis costs more than another."""
    if len(plan.sites) < 2:
        return None
    costs = prompt_graph.axis_costs(plan.template, plan.sites)
    best = max(range(len(costs)), key=lambda axis: costs[axis])
    return best if any(costs[best] > cost for cost in costs) else None


def remote_prompt(cell_prompt: Mapping[str, Any], save_node_ids: Sequence[str]) -> dict[str, Any]:
    """The cell's prompt as a stock ComfyUI runs it: this pack's nodes are removed (their values are already
    written into the cell) and each ``WISaveImage`` becomes a ``PreviewImage`` of the same id, whose images are
    fetched back and saved here. A node left linking to a removed node is removed too."""
    saves = set(save_node_ids)
    out: dict[str, Any] = {}
    for node_id, node in cell_prompt.items():
        class_type = str(node.get("class_type", "")) if isinstance(node, Mapping) else ""
        if node_id in saves:
            images = prompt_graph.node_inputs(node).get("images")
            out[node_id] = {"class_type": REMOTE_SAVE_CLASS, "inputs": {"images": images}}
        elif class_type not in _PACK_CLASSES:
            out[node_id] = node
    changed = True
    while changed:  # drop nodes fed by a removed node (rare: a parameter output used as data, not as a value)
        changed = False
        for node_id, node in list(out.items()):
            inputs = prompt_graph.node_inputs(node)
            if any(isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and v[0] not in out
                   for v in inputs.values()):
                del out[node_id]
                changed = True
    return out


def upload_names(prompt: Mapping[str, Any]) -> list[str]:
    """Input file names the prompt's loader nodes read (see :data:`UPLOAD_INPUTS`)."""
    names = []
    for node in prompt.values():
        if not isinstance(node, Mapping):
            continue
        wanted = UPLOAD_INPUTS.get(str(node.get("class_type")))
        value = prompt_graph.node_inputs(node).get(wanted) if wanted else None
        if isinstance(value, str) and value:
            names.append(value.split(" [", 1)[0])  # "name.png [input]" annotations
    return list(dict.fromkeys(names))


@dataclass
class _Worker:
    config: WorkerConfig
    window: int
    leases: dict[int, int] = field(default_factory=dict)  # cell index -> attempt
    last_key: Hashable | None = None
    out: str | None = None  # why it takes no more cells of this batch (excluded, unreachable)
    unreachable: bool = False

    @property
    def load(self) -> float:
        return len(self.leases) / self.window


class Dispatcher:
    """Which worker runs which cell of one batch. Thread-safe; every method is O(workers) per call.

    Cells wait in a pool grouped by their affinity key (the value of the most expensive axis), groups in run
    order. A worker with room takes the next cell of the group it last took from; otherwise a group no other
    worker is working on; otherwise any. Among workers with room, the least loaded is served first.
    """

    def __init__(self, order: Sequence[int], workers: Sequence[WorkerConfig], *,
                 key_of: Callable[[int], Hashable] | None = None, max_attempts: int | None = None) -> None:
        if not workers:
            raise ValueError("a dispatcher needs at least one worker")
        self._lock = threading.Lock()
        self._workers: dict[str, _Worker] = {w.id: _Worker(w, window_for(w)) for w in workers}
        self._key_of = key_of or (lambda index: None)
        self._groups: OrderedDict[Hashable, deque[int]] = OrderedDict()
        for index in order:
            self._groups.setdefault(self._key_of(index), deque()).append(index)
        self._pending = len(order)
        self._owner: dict[int, str] = {}
        self._attempts: dict[int, int] = {}
        self._finished: set[int] = set()
        self.max_attempts = max_attempts if max_attempts is not None else len(workers) + 1

    # ----------------------------------------------------------------- reading
    def worker(self, worker_id: str) -> WorkerConfig:
        return self._workers[worker_id].config

    def leases_of(self, worker_id: str) -> list[int]:
        with self._lock:
            return sorted(self._workers[worker_id].leases)

    def owner(self, index: int) -> str | None:
        with self._lock:
            return self._owner.get(index)

    def pending(self) -> int:
        with self._lock:
            return self._pending

    def open_leases(self) -> int:
        with self._lock:
            return sum(len(w.leases) for w in self._workers.values())

    def usable(self) -> list[str]:
        with self._lock:
            return [w.config.id for w in self._workers.values() if w.out is None]

    def excluded(self) -> dict[str, str]:
        with self._lock:
            return {w.config.id: w.out for w in self._workers.values() if w.out is not None}

    def stranded(self) -> bool:
        """Cells wait but no worker can take them: they must fail rather than wait forever."""
        with self._lock:
            return self._pending > 0 and all(w.out is not None for w in self._workers.values())

    # ----------------------------------------------------------------- leasing
    def assign(self, only: str | None = None) -> list[tuple[str, int]]:
        """Lease waiting cells to workers with room (least loaded first); ``only``: to that worker only."""
        given: list[tuple[str, int]] = []
        with self._lock:
            while self._pending:
                free = [w for w in self._workers.values()
                        if w.out is None and len(w.leases) < w.window and (only is None or w.config.id == only)]
                if not free:
                    break
                worker = min(free, key=lambda w: (w.load, not w.config.local))
                index = self._take_locked(worker)
                worker.leases[index] = self._attempts.get(index, 0) + 1
                self._attempts[index] = worker.leases[index]
                self._owner[index] = worker.config.id
                given.append((worker.config.id, index))
        return given

    def _take_locked(self, worker: _Worker) -> int:
        groups = self._groups
        key = worker.last_key
        if key not in groups or not groups[key]:
            held = {w.last_key for w in self._workers.values() if w is not worker and w.out is None and w.leases}
            key = next((k for k, cells in groups.items() if cells and k not in held),
                       next(k for k, cells in groups.items() if cells))
        cells = groups[key]
        index = cells.popleft()
        if not cells:
            del groups[key]
        self._pending -= 1
        worker.last_key = key
        return index

    def _return_locked(self, index: int) -> None:
        key = self._key_of(index)
        if key not in self._groups:
            self._groups[key] = deque()
            self._groups.move_to_end(key, last=False)  # a lost cell runs next, before untouched groups
        self._groups[key].appendleft(index)
        self._pending += 1
        self._owner.pop(index, None)

    def adopt(self, worker_id: str, index: int) -> None:
        """Count a cell that is already running on a worker (not from the pool) as its lease."""
        with self._lock:
            worker = self._workers.get(worker_id)
            if worker is None:  # the local server is turned off as a worker but ran the submitted cell
                worker = self._workers[worker_id] = _Worker(WorkerConfig(worker_id, worker_id, None), 1,
                                                            out="not a worker")
            worker.leases[index] = 1
            self._owner[index] = worker_id

    def finish(self, worker_id: str, index: int) -> bool:
        """The worker reports the cell ended. True exactly once per cell, for its current lease holder: a
        report from a worker that lost the lease (it was re-leased after a timeout) is dropped."""
        with self._lock:
            worker = self._workers.get(worker_id)
            if index in self._finished or worker is None or index not in worker.leases:
                return False
            del worker.leases[index]
            self._finished.add(index)
            self._owner.pop(index, None)
            return True

    def release(self, worker_id: str, index: int) -> bool:
        """The worker gives a cell back without running it (cancelled task, failed upload): it waits again."""
        with self._lock:
            worker = self._workers.get(worker_id)
            if worker is None or worker.leases.pop(index, None) is None:
                return False
            self._return_locked(index)
            return True

    def lose(self, worker_id: str, reason: str, *, unreachable: bool = True) -> list[int]:
        """The worker stops answering (``unreachable``) or refused a cell (excluded for the batch): it takes no
        more cells and its leased cells wait again, except those that used up their attempts, returned for the
        caller to fail."""
        exhausted = []
        with self._lock:
            worker = self._workers.get(worker_id)
            if worker is None:
                return []
            if worker.out is None:
                worker.out = reason
                worker.unreachable = unreachable
            for index in sorted(worker.leases, reverse=True):  # appendleft: keep their order
                if self._attempts.get(index, 0) >= self.max_attempts:
                    exhausted.append(index)
                    self._finished.add(index)
                    self._owner.pop(index, None)
                else:
                    self._return_locked(index)
            worker.leases.clear()
        return sorted(exhausted)

    def drain(self) -> list[int]:
        """Every waiting cell, removed from the pool (the batch gives them up: no worker left, or cancel)."""
        with self._lock:
            cells = [i for group in self._groups.values() for i in group]
            self._groups.clear()
            self._pending = 0
            self._finished.update(cells)
            return cells


QueueLocal = Callable[[int, int], Awaitable[bool]]


class BatchDispatch:
    """One batch's cells over several servers. Runs on the server loop; :meth:`local_ended` may be called
    from any thread.

    ``queue_local(index, attempt)`` queues a cell in this server's queue (the sweep's local feeder: validation,
    the cell's priority, ``put``) and returns False when it could not (validation failed: the callback ended the
    cell); the cell's end then comes back through :meth:`local_ended`.
    """

    def __init__(self, *, batch_id: str, plan: prompt_graph.SweepPlan, order: Sequence[int],
                 workers: Sequence[WorkerConfig], port: RemoteWorkerPort, manager: Any, extras: Any,
                 subfolder: str, queue_local: QueueLocal, on_batch_ended: Callable[[], None],
                 send_event: Callable[[str, dict[str, Any]], None], call_soon_threadsafe: Callable[..., None],
                 directory: WorkerDirectory | None = None, input_dir: str | None = None,
                 cell_timeout: float = CELL_TIMEOUT_S, local_leased: Sequence[int] = ()) -> None:
        axis = affinity_axis(plan)
        combinations = plan.combinations
        key_of: Callable[[int], Hashable] | None = (
            None if axis is None else (lambda index: combinations[index].coords[axis]))
        self.batch_id, self.plan, self.port, self.manager = batch_id, plan, port, manager
        self.extras, self.subfolder = extras, subfolder
        self.dispatcher = Dispatcher(order, workers, key_of=key_of)
        for index in local_leased:  # the submitted cell: ComfyUI queued it itself, before the dispatch existed
            self.dispatcher.adopt(LOCAL_WORKER_ID, index)
            manager.set_cell_worker(batch_id, index, LOCAL_WORKER_ID)
        self._queue_local, self._on_batch_ended, self._send = queue_local, on_batch_ended, send_event
        self._call_soon_threadsafe = call_soon_threadsafe
        self.directory, self.input_dir, self.cell_timeout = directory, input_dir, cell_timeout
        self._tasks: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._wakeup = asyncio.Event()
        self._states: dict[str, str] = {}
        self._uploaded: set[tuple[str, str]] = set()
        self.cancelled = False
        self._prompt_ids = manager.prompt_ids(batch_id)
        for worker in workers:
            manager.set_worker_info(batch_id, worker.id, name=worker.name, state="idle")

    # ----------------------------------------------------------------- from any thread
    def local_ended(self, index: int) -> None:
        """A cell queued here ended (ComfyUI's worker thread): free its lease and let the loop refill."""
        if self.dispatcher.finish(LOCAL_WORKER_ID, index):
            self._call_soon_threadsafe(self._wakeup.set)

    # ----------------------------------------------------------------- the run
    async def run(self) -> None:
        """Lease cells until none waits and no lease is open (or the batch stopped accepting)."""
        try:
            while not self.cancelled and self._accepting():
                self._wakeup.clear()
                for worker_id, index in self.dispatcher.assign():
                    await self._start_lease(worker_id, index)
                self._publish_states()
                if self.dispatcher.stranded():
                    self._fail_stranded()
                if self.dispatcher.pending() == 0 and not self._tasks:
                    if self.dispatcher.open_leases() == 0:
                        break
                await self._wakeup.wait()
        finally:
            self._publish_states()

    def _accepting(self) -> bool:
        return self.manager.state_of(self.batch_id) in ("pending", "active")

    async def _start_lease(self, worker_id: str, index: int) -> None:
        worker = self.dispatcher.worker(worker_id)
        self.manager.set_cell_worker(self.batch_id, index, worker_id)
        if worker.local:
            if not await self._queue_local(index, 0):
                self.dispatcher.finish(worker_id, index)  # validation failed here: the callback ended the cell
            return
        task = asyncio.get_running_loop().create_task(self._run_remote(worker, index))
        self._tasks[(worker_id, index)] = task

    async def _run_remote(self, worker: WorkerConfig, index: int) -> None:
        try:
            await self._remote_cell(worker, index)
        except asyncio.CancelledError:
            self.dispatcher.release(worker.id, index)
        except RemoteRejected as exc:
            self._lose(worker, f"excluded: {exc}", unreachable=False)
        except RemoteUnavailable as exc:
            self._lose(worker, f"unreachable: {exc}", unreachable=True)
        except Exception as exc:  # a bug with one cell must not stop the batch: that cell fails
            logger.exception("WI: remote cell %d of %s on %s failed", index, self.batch_id, worker.name)
            if self.dispatcher.finish(worker.id, index):
                self._end(self.manager.register_failure(self.batch_id, index, f"{type(exc).__name__}: {exc}"))
        finally:
            self._tasks.pop((worker.id, index), None)
            self._wakeup.set()

    async def _remote_cell(self, worker: WorkerConfig, index: int) -> None:
        combination = self.plan.combinations[index]
        cell_prompt = self.plan.cell_prompt(combination)
        prompt_id = self._prompt_ids.for_cell(index)
        if not self.manager.attach_prompt(self.batch_id, index, prompt_id, only_if_open=True):
            self.dispatcher.finish(worker.id, index)
            return
        extra = self.extras.for_cell(combination)
        if self.input_dir is not None:
            for name in upload_names(cell_prompt):
                if (worker.id, name) not in self._uploaded:
                    await self.port.ensure_input(worker, name, paths.resolve_inside(self.input_dir, name))
                    self._uploaded.add((worker.id, name))
        await self.port.submit(worker, prompt_id, remote_prompt(cell_prompt, self.plan.save_node_ids), extra)
        self.manager.mark_running(self.batch_id, index)
        outcome = await self.port.wait_done(worker, prompt_id, self.cell_timeout)
        if self.dispatcher.owner(index) != worker.id:
            return  # the lease was lost meanwhile (and the cell runs elsewhere): this end is not recorded
        if outcome.status == "done":
            files = await self._store_outputs(worker, index, combination, cell_prompt, extra, outcome)
            if self.dispatcher.finish(worker.id, index):
                self._end(self.manager.register_result(self.batch_id, index, files))
        elif self.dispatcher.finish(worker.id, index):
            if outcome.status == "cancelled":
                self._end(self.manager.register_cancelled(self.batch_id, index, outcome.error or "interrupted"))
            else:
                self._end(self.manager.register_failure(self.batch_id, index, outcome.error or "failed"))

    async def _store_outputs(self, worker: WorkerConfig, index: int, combination: Any,
                             cell_prompt: dict[str, Any], extra: Mapping[str, Any],
                             outcome: RemoteOutcome) -> list[dict[str, str]]:
        """Fetch the cell's images and write them where the local save node would, under its names."""
        outputs = outcome.outputs if isinstance(outcome.outputs, Mapping) else {}
        values = {axis.name: prompt_graph.json_ready(v) for axis, v in zip(self.plan.axes, combination.values)}
        node_ids = list(self.plan.save_node_ids) or sorted(outputs, key=str)
        files = []
        for node_id in node_ids:
            ui = outputs.get(node_id)
            images = [i for i in (ui.get("images") or []) if isinstance(i, Mapping)] if isinstance(ui, Mapping) else []
            for number, ref in enumerate(images):
                data = await self.port.fetch(worker, {k: str(ref.get(k, "")) for k in ("filename", "subfolder", "type")})
                filename = paths.cell_filename(index, values, number, node_id=node_id)
                self.port.store_output(data, self.subfolder, filename, cell_prompt, extra.get("extra_pnginfo"),
                                       str(node_id), number, len(images))
                files.append({"filename": filename, "subfolder": self.subfolder, "type": "output"})
        return files

    def _lose(self, worker: WorkerConfig, reason: str, *, unreachable: bool) -> None:
        first = worker.id not in self.dispatcher.excluded()
        leased = self.dispatcher.leases_of(worker.id)
        exhausted = self.dispatcher.lose(worker.id, reason, unreachable=unreachable)
        if leased:  # cells it may still hold (queued before it refused one, or before it stopped answering) run
            # elsewhere now: delete them there, best effort, so they cannot run twice once it answers again
            ids = [self._prompt_ids.for_cell(i) for i in leased]
            asyncio.get_running_loop().create_task(self._cancel_on(worker, ids))
        if first:
            logger.warning("WI: batch %s: worker %s %s", self.batch_id, worker.name, reason)
            self.manager.set_worker_info(self.batch_id, worker.id, state="unreachable" if unreachable else "disabled",
                                         excluded=reason)
            self._send("wi.worker_state", {"worker_id": worker.id, "state": "unreachable" if unreachable else "disabled",
                                           "batch_id": self.batch_id, "detail": reason})
            self._states[worker.id] = "unreachable" if unreachable else "disabled"
            if self.directory is not None and unreachable:
                try:
                    self.directory.report(worker.id, reachable=False, error=reason)
                except Exception:
                    logger.debug("WI: worker report failed", exc_info=True)
        for task_key, task in list(self._tasks.items()):
            if task_key[0] == worker.id and task is not asyncio.current_task():
                task.cancel()  # its other cells wait again (released above); their tasks stop waiting
        for index in exhausted:
            self.manager.set_cell_worker(self.batch_id, index, None)
            self._end(self.manager.register_failure(self.batch_id, index, f"no worker could run it; last: {reason}"))
        for index in self.dispatcher.leases_of(worker.id):
            self.manager.set_cell_worker(self.batch_id, index, None)

    def _fail_stranded(self) -> None:
        reasons = "; ".join(f"{self.dispatcher.worker(w).name}: {why}" for w, why in self.dispatcher.excluded().items())
        for index in self.dispatcher.drain():
            self._end(self.manager.register_failure(self.batch_id, index, f"no worker can run this cell ({reasons})"))

    def _end(self, ended: bool) -> None:
        if ended:
            self._on_batch_ended()

    def _publish_states(self) -> None:
        excluded = self.dispatcher.excluded()
        for worker_id in [*self.dispatcher.usable(), *excluded]:
            if worker_id in excluded:
                continue
            state = "busy" if self.dispatcher.leases_of(worker_id) else "idle"
            if self._states.get(worker_id) != state:
                self._states[worker_id] = state
                self.manager.set_worker_info(self.batch_id, worker_id, state=state)
                self._send("wi.worker_state", {"worker_id": worker_id, "state": state, "batch_id": self.batch_id,
                                               "detail": None})

    # ----------------------------------------------------------------- cancel
    def cancel(self) -> list[tuple[str, list[str]]]:
        """Stop leasing; ask every remote worker to delete this batch's queued cells and interrupt its running
        one (only when it is ours: the port checks). Returns what was asked of whom. Called on the loop."""
        self.cancelled = True
        self.dispatcher.drain()
        asked: list[tuple[str, list[str]]] = []
        for worker_id in self.dispatcher.usable() + list(self.dispatcher.excluded()):
            worker = self.dispatcher.worker(worker_id)
            leased = self.dispatcher.leases_of(worker_id)
            if worker.local or not leased:
                continue
            ids = [self._prompt_ids.for_cell(i) for i in leased]
            asked.append((worker_id, ids))
            asyncio.get_running_loop().create_task(self._cancel_on(worker, ids))
        for task in list(self._tasks.values()):
            task.cancel()
        self._wakeup.set()
        return asked

    async def _cancel_on(self, worker: WorkerConfig, prompt_ids: list[str]) -> None:
        try:
            await self.port.cancel(worker, prompt_ids)
        except Exception:  # an unreachable worker cannot run our cells anyway
            logger.warning("WI: cancelling batch %s on %s failed", self.batch_id, worker.name, exc_info=True)
