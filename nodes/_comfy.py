"""The one adapter to ComfyUI's internals: the only module that imports ``server``, ``execution``, ``nodes``,
``folder_paths``, ``comfy.cli_args``, ``comfy_api`` or ``comfy_execution``.

Every call into ComfyUI is guarded here and version differences are absorbed here:

* ``validate_prompt``: sync ``(prompt)`` up to 0.3.43, async ``(prompt_id, prompt)`` in 0.3.44-0.3.46, async
  ``(prompt_id, prompt, partial_execution_list)`` from 0.3.47;
* queue items: 5 fields in 0.3.64, 6 (``sensitive``) from about 0.3.67 — clones copy the shape of the real item
  ComfyUI put for the submitted prompt, so they always match the running version;
* ``task_done(item_id, history_result, status[, process_item])``: the wrapper passes everything through.

The queue is observed by wrapping the bound methods of the one ``PromptQueue`` (put, get, task_done,
wipe_queue, delete_queue_item) and the module function ``execution.validate_prompt``; each wrapper calls the
original first or last as the comment says, and never lets our bookkeeping raise into ComfyUI.
"""
from __future__ import annotations

import asyncio
import copy
import heapq
import inspect
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

from ..core.ports import QueuedPrompt

from ..core import input_spec

logger = logging.getLogger(__name__)

_INSTALLED_FLAG = "_wi_installed"


def prompt_server() -> Any | None:
    try:
        import server  # type: ignore[import-not-found]
    except ImportError:
        return None
    return getattr(server.PromptServer, "instance", None)


def output_directory() -> str | None:
    try:
        import folder_paths  # type: ignore[import-not-found]
    except ImportError:
        return None
    return folder_paths.get_output_directory()


def temp_directory() -> str | None:
    """ComfyUI's temp folder (``PreviewImage`` and other previews; wiped when ComfyUI starts)."""
    try:
        import folder_paths  # type: ignore[import-not-found]
    except ImportError:
        return None
    return folder_paths.get_temp_directory()


def user_directory() -> str | None:
    try:
        import folder_paths  # type: ignore[import-not-found]
    except ImportError:
        return None
    getter = getattr(folder_paths, "get_user_directory", None)
    return getter() if getter is not None else None


def local_queue_depth(server_instance: Any) -> int | None:
    """Prompts running + pending in this ComfyUI's queue (the local worker's health), or None when unknown."""
    try:
        return int(server_instance.prompt_queue.get_tasks_remaining())
    except Exception:  # a queue without the method (or mid-shutdown): the depth is simply unknown
        logger.debug("WI: get_tasks_remaining failed", exc_info=True)
        return None


def input_directory() -> str | None:
    try:
        import folder_paths  # type: ignore[import-not-found]
    except ImportError:
        return None
    return folder_paths.get_input_directory()


def metadata_disabled() -> bool:
    """ComfyUI's ``--disable-metadata``; honoured by our save node like core SaveImage does."""
    try:
        from comfy.cli_args import args  # type: ignore[import-not-found]
    except ImportError:
        return False
    return bool(getattr(args, "disable_metadata", False))


def _input_types(class_type: str) -> Any:
    """``INPUT_TYPES()`` of a registered class, or None (unknown class, or its INPUT_TYPES raised)."""
    try:
        import nodes as comfy_nodes  # type: ignore[import-not-found]

        node_class = comfy_nodes.NODE_CLASS_MAPPINGS.get(class_type)
        return node_class.INPUT_TYPES() if node_class is not None else None
    except Exception:  # a custom node's INPUT_TYPES may raise; then the options are simply unknown
        logger.debug("WI: INPUT_TYPES of %s failed", class_type, exc_info=True)
        return None


def combo_options(class_type: str, input_name: str) -> list[str] | None:
    """Allowed values of a COMBO input (V1 list form, ``("COMBO", {"options": [...]})``, a V3 dynamic combo's
    keys, or a nested input such as ``resize_type.scale_method``), else None."""
    return input_spec.input_options(_input_types(class_type), input_name)


def input_default(class_type: str, input_name: str) -> Any:
    """The default an input shows in a new node (a combo's first option; nested V3 inputs by their dotted
    name), or None when unknown."""
    return input_spec.input_default(_input_types(class_type), input_name)


#: node_is_written's answers by node class object (a class re-registered under the same name is asked anew).
_WRITTEN_BY_CLASS: dict[Any, bool] = {}


def node_is_written(class_type: str) -> bool:
    """Whether ComfyUI stores per-run data in the prompt dicts of nodes of this class: the executor memoises
    ``node["is_changed"]`` for V1 classes with ``IS_CHANGED`` and V3 classes overriding ``fingerprint_inputs``
    (the same test as ``execution.IsChangedCache``). True for unknown classes and whenever in doubt. Such
    nodes get a private copy in every cell."""
    try:
        import nodes as comfy_nodes  # type: ignore[import-not-found]

        node_class = comfy_nodes.NODE_CLASS_MAPPINGS.get(class_type)
    except Exception:  # no node registry to ask: assume the worst
        return True
    if node_class is None:
        return True
    try:
        return _WRITTEN_BY_CLASS[node_class]
    except (KeyError, TypeError):  # TypeError: an unhashable registry entry, asked every time
        pass
    written = _class_is_written(node_class)
    try:
        _WRITTEN_BY_CLASS[node_class] = written
    except TypeError:
        pass
    return written


def _class_is_written(node_class: Any) -> bool:
    if hasattr(node_class, "IS_CHANGED"):
        return True
    if not hasattr(node_class, "fingerprint_inputs"):
        return False
    try:  # V3 (0.3.4x+): every class has the attribute; only a real override is memoised
        from comfy_api.internal import _ComfyNodeInternal, first_real_override  # type: ignore[import-not-found]

        if isinstance(node_class, type) and issubclass(node_class, _ComfyNodeInternal):
            return first_real_override(node_class, "fingerprint_inputs") is not None
    except Exception:  # another layout of comfy_api: keep the safe answer
        logger.debug("WI: cannot tell whether %r overrides fingerprint_inputs", node_class, exc_info=True)
    return True


def interrupt_processing() -> None:
    import nodes as comfy_nodes  # type: ignore[import-not-found]

    comfy_nodes.interrupt_processing()


class _InProcessRequest:
    """What ComfyUI's ``post_prompt`` reads of a request (0.3.64: ``json()``; 0.38: also ``headers``)."""

    def __init__(self, body: dict) -> None:
        self._body = body
        self.headers: dict[str, str] = {}
        self.method, self.path = "POST", "/prompt"
        self.match_info: dict[str, str] = {}
        self.query: dict[str, str] = {}

    async def json(self) -> dict:
        return self._body


class ComfyHost:
    """The :class:`core.sweep.Host` over a live ``PromptServer``."""

    def __init__(self, server_instance: Any, execution_module: Any | None = None) -> None:
        self.server = server_instance
        self.queue = server_instance.prompt_queue
        if execution_module is None:
            import execution as execution_module  # type: ignore[import-not-found,no-redef]
        self.execution = execution_module
        self._validate_original: Callable[..., Any] = execution_module.validate_prompt
        self._validate_arity = len(inspect.signature(self._validate_original).parameters)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wi-grid")
        # Queue items past the fifth field (0.3.67+: the sensitive dict). Learnt from the last real item put;
        # before any, guessed from task_done's signature, which gained ``process_item`` with the sixth field.
        try:
            six = "process_item" in inspect.signature(self.queue.task_done).parameters
        except (TypeError, ValueError):
            six = False
        self._tail: tuple = ({},) if six else ()

    # ------------------------------------------------------------------ loop and threads
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.server.loop

    def call_soon_threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.loop.call_soon(fn, *args)  # on the loop already (POST /prompt's put): no self-pipe wake-up
        else:
            self.loop.call_soon_threadsafe(fn, *args)

    def create_task(self, coro: Any) -> None:
        """Schedule a coroutine on the server loop from any thread."""
        def start() -> None:
            self.loop.create_task(coro)

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            start()
        else:
            self.loop.call_soon_threadsafe(start)

    def run_background(self, fn: Callable[..., Any], *args: Any) -> None:
        self._executor.submit(fn, *args)

    # ------------------------------------------------------------------ queue
    def allocate_number(self, front: bool) -> float:
        """The submitted prompt's priority. Bumps ``server.number`` ourselves, because an explicit ``number``
        in the body stops ComfyUI from doing it, and prompts posted later must sort after the whole batch."""
        number = self.server.number
        self.server.number += 1
        return float(-number if front else number)

    async def validate(self, prompt_id: str, prompt: dict, partial_targets: Any) -> tuple:
        # 0.38+: POST /prompt swaps replaced node types (node_replace_manager) after the onprompt hooks, so only
        # the submitted cell gets them; every other cell is replaced here the same way before validation.
        replacer = getattr(getattr(self.server, "node_replace_manager", None), "apply_replacements", None)
        if callable(replacer):
            replacer(prompt)
        fn, params = self._validate_original, self._validate_arity
        if params >= 3:
            result = fn(prompt_id, prompt, partial_targets)
        elif params == 2:
            result = fn(prompt_id, prompt)
        else:
            result = fn(prompt)
        if inspect.isawaitable(result):
            result = await result
        return tuple(result)

    # The queue item's shape is this adapter's alone: core reads and writes QueuedPrompt records.
    @staticmethod
    def to_record(item: Sequence[Any]) -> QueuedPrompt:
        return QueuedPrompt(number=float(item[0]), prompt_id=str(item[1]), prompt=item[2], extra_data=item[3],
                            outputs=tuple(item[4]) if len(item) > 4 and item[4] is not None else (),
                            private=tuple(item[5:]))

    def blank_item(self, extra_data: dict) -> QueuedPrompt:
        """A template for cells queued without a submitted item (resume): the running version's shape."""
        return QueuedPrompt(0.0, "", {}, extra_data, (), tuple(copy.deepcopy(field) for field in self._tail))

    def put_clone(self, template: QueuedPrompt, number: float, prompt_id: str, prompt: dict, extra_data: dict,
                  outputs: list) -> None:
        # Fields past the fifth (0.3.67+: the sensitive dict) are copied from ComfyUI's own item for the batch.
        item = (number, prompt_id, prompt, extra_data, outputs)
        if template.private:
            item += tuple(copy.deepcopy(field) for field in template.private)
        self.queue.put(item)

    def cancel_prompts(self, prompt_ids: set[str]) -> tuple[list[str], str | None]:
        """Remove these pending items and interrupt the running one if it is among them, atomically.

        Holding the queue's RLock means the worker can neither start another item nor finish this one while
        we decide, so an unrelated prompt is never interrupted (a leftover flag is cleared when the next
        prompt starts).
        """
        queue = self.queue
        interrupt_if_running = getattr(queue, "interrupt_if_running", None)  # newer ComfyUI: its own atomic check
        with queue.mutex:
            kept, removed = [], []
            for item in queue.queue:
                (removed if item[1] in prompt_ids else kept).append(item)
            if removed:
                heapq.heapify(kept)
                queue.queue = kept
            interrupted = None
            for item in list(queue.currently_running.values()):
                if item[1] in prompt_ids:
                    interrupted = item[1]
                    if callable(interrupt_if_running):
                        interrupt_if_running(item[1])
                    else:
                        interrupt_processing()
                    break
        if removed:
            self.server.queue_updated()
        return [str(item[1]) for item in removed], interrupted

    async def submit_prompt(self, body: dict) -> tuple[int, dict]:
        """``(status, JSON answer)`` of ComfyUI's own POST /prompt handler for ``body``: the path a Queue press
        takes (onprompt hooks, numbering, node replacements, validation, the queue item of this version),
        called in-process so nothing of it is copied here. Runs on the loop, like any request.

        Raises:
            RuntimeError: this ComfyUI registers no POST /prompt handler on ``PromptServer.routes``.
        """
        handler = next((route.handler for route in getattr(self.server, "routes", ())
                        if getattr(route, "method", None) == "POST" and getattr(route, "path", None) == "/prompt"), None)
        if handler is None:
            raise RuntimeError("ComfyUI's POST /prompt handler was not found on PromptServer.routes")
        response = await handler(_InProcessRequest(body))
        raw = getattr(response, "body", None) or b"{}"
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = {"error": raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)}
        return int(response.status), answer if isinstance(answer, dict) else {"answer": answer}

    # ------------------------------------------------------------------ events and lookups
    def send_event(self, event: str, data: dict, sid: str | None = None) -> None:
        try:
            self.server.send_sync(event, data, sid)
        except Exception:  # a closed socket or a stopping server must not break the caller
            logger.debug("WI: send_sync(%s) failed", event, exc_info=True)

    def options_for(self, class_type: str, input_name: str) -> Sequence[str] | None:
        return combo_options(class_type, input_name)

    def input_default(self, class_type: str, input_name: str) -> Any:
        return input_default(class_type, input_name)

    def node_is_written(self, class_type: str) -> bool:
        return node_is_written(class_type)

    def input_dir(self) -> str | None:
        return input_directory()

    def output_dir(self) -> str | None:
        return output_directory()

    def temp_dir(self) -> str | None:
        return temp_directory()

    def _guard_node_starts(self, service: Any) -> None:
        """Ask the service before every node ComfyUI starts whether its prompt must stop.

        ComfyUI checks its interrupt flag before each node (``nodes.before_node_execution``, looked up on the
        module at call time in every version) but clears it when a prompt starts, so an interrupt landing
        between the worker's ``get`` and that start is lost. Re-raising it here, for the prompt a cancel asked
        to stop, makes a cancel hold. Costs one set lookup per node when no cancel is pending.
        """
        try:
            import nodes as comfy_nodes  # type: ignore[import-not-found]
        except ImportError:
            return
        original = getattr(comfy_nodes, "before_node_execution", None)
        if original is None or getattr(original, "_wi_guard", False):
            return
        server = self.server

        def before_node_execution(*args: Any, **kwargs: Any) -> Any:
            try:
                if service.before_node(getattr(server, "last_prompt_id", None)):
                    comfy_nodes.interrupt_processing(True)
            except Exception:
                logger.exception("WI: interrupt check failed")
            return original(*args, **kwargs)

        before_node_execution._wi_guard = True  # type: ignore[attr-defined]
        before_node_execution.__wrapped__ = original  # type: ignore[attr-defined]
        comfy_nodes.before_node_execution = before_node_execution

    # ------------------------------------------------------------------ installing the hooks
    def install(self, service: Any) -> bool:
        """Register the onprompt handler and wrap the queue; idempotent (a second call does nothing)."""
        queue = self.queue
        if getattr(queue, _INSTALLED_FLAG, False):
            return False
        setattr(queue, _INSTALLED_FLAG, True)
        self.server.add_on_prompt_handler(service.handle_prompt)

        original_put = queue.put

        def put(item: Any) -> Any:
            result = original_put(item)
            if len(item) > 5:
                self._tail = tuple({} if isinstance(field, dict) else field for field in item[5:])
            elif len(item) == 5:
                self._tail = ()
            try:
                if service.expects_put():  # every clone is put too: only a sweep's first cell is awaited
                    service.on_item_put(self.to_record(item))
            except Exception:
                logger.exception("WI: put hook failed")
            return result

        original_get = queue.get

        def get(*args: Any, **kwargs: Any) -> Any:
            try:
                if service.hold_worker(kwargs.get("timeout", args[0] if args else None)):
                    return None  # its timeout ran out while a batch's next cell was on its way (see hold_worker)
            except Exception:
                logger.exception("WI: holding the worker for a batch's next cell failed")
            result = original_get(*args, **kwargs)
            if result is not None:
                try:
                    service.on_item_started(result[0][1])
                except Exception:
                    logger.exception("WI: get hook failed")
            return result

        original_task_done = queue.task_done

        def task_done(item_id: Any, history_result: Any, *args: Any, **kwargs: Any) -> Any:
            # Read the prompt id before the original pops the running item.
            running = queue.currently_running.get(item_id)
            result = original_task_done(item_id, history_result, *args, **kwargs)
            try:
                status = kwargs.get("status", args[0] if args else None)
                if running is not None:
                    service.on_item_done(running[1], history_result, status)
            except Exception:
                logger.exception("WI: task_done hook failed")
            return result

        original_wipe = queue.wipe_queue
        inside_delete = threading.local()

        def wipe_queue(*args: Any, **kwargs: Any) -> Any:
            with queue.mutex:
                ids = [item[1] for item in queue.queue]
                result = original_wipe(*args, **kwargs)
            if getattr(inside_delete, "active", False):
                return result  # delete_queue_item empties a one-item queue through wipe_queue: not a Clear
            try:
                service.on_items_removed(ids, whole_queue=True)
            except Exception:
                logger.exception("WI: wipe_queue hook failed")
            return result

        original_delete = queue.delete_queue_item

        def delete_queue_item(function: Callable[[Any], bool], *args: Any, **kwargs: Any) -> Any:
            with queue.mutex:
                # The same first match the original will remove.
                match = next((item[1] for item in queue.queue if function(item)), None)
                inside_delete.active = True
                try:
                    result = original_delete(function, *args, **kwargs)
                finally:
                    inside_delete.active = False
            if result and match is not None:
                try:
                    service.on_items_removed([match], whole_queue=False)
                except Exception:
                    logger.exception("WI: delete_queue_item hook failed")
            return result

        queue.put, queue.get, queue.task_done = put, get, task_done
        queue.wipe_queue, queue.delete_queue_item = wipe_queue, delete_queue_item
        self._guard_node_starts(service)

        execution = self.execution
        original_validate = execution.validate_prompt

        if inspect.iscoroutinefunction(original_validate):
            async def validate_prompt(*args: Any, **kwargs: Any) -> Any:
                result = await original_validate(*args, **kwargs)
                _after_validate(args, kwargs, result)
                return result
        else:
            def validate_prompt(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
                result = original_validate(*args, **kwargs)
                _after_validate(args, kwargs, result)
                return result

        def _after_validate(args: tuple, kwargs: dict, result: Any) -> None:
            try:
                prompt = kwargs.get("prompt") or next((a for a in args if isinstance(a, dict)), None)
                service.on_validated(prompt, result)
            except Exception:
                logger.exception("WI: validate_prompt hook failed")

        validate_prompt.__wrapped__ = original_validate  # type: ignore[attr-defined]
        execution.validate_prompt = validate_prompt
        return True
