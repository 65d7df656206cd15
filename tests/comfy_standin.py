"""A small stand-in of ComfyUI's server surface with the real semantics that matter to the sweep.

Copied behaviour (ComfyUI 0.3.64, execution.py / server.py / main.py): a heap-ordered ``PromptQueue`` under
an RLock whose ``get`` deep-copies the item into ``currently_running``; ``delete_queue_item`` takes a predicate
and removes only the first match (emptying a one-item queue through ``wipe_queue``); ``task_done(item_id,
history_result, status)`` pops the running item, strips ``SENSITIVE_EXTRA_DATA_KEYS`` from its extra_data and
writes history; ``post_prompt`` runs the onprompt handlers first, then numbering, an **async**
``validate_prompt`` that mutates the prompt, and ``put``.

With ``six_fields=True`` it mimics ComfyUI 0.3.67 - 0.8.0 instead (:class:`SixFieldPromptQueue`): POST /prompt
moves the sensitive keys out of extra_data into a sixth item field, the worker reads ``item[5]``, and
``task_done`` takes ``process_item``, which the worker passes to drop that field from history.

tests/integration/test_standin_fidelity.py compares the node specs and queue signatures here with every real
ComfyUI present, and fails on drift.

Tests install it with :func:`install` (monkeypatching ``sys.modules``), never session-wide.
"""
from __future__ import annotations

import asyncio
import copy
import heapq
import threading
import types
import uuid
from typing import Any, Callable, NamedTuple


class ExecutionStatus(NamedTuple):
    status_str: str
    completed: bool
    messages: list


SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")


class PromptQueue:
    """ComfyUI 0.3.64's queue: five-field items."""

    SIX_FIELDS = False

    def __init__(self, server: "PromptServer") -> None:
        self.server = server
        self.mutex = threading.RLock()
        self.not_empty = threading.Condition(self.mutex)
        self.task_counter = 0
        self.queue: list = []
        self.currently_running: dict = {}
        self.history: dict = {}

    def put(self, item: tuple) -> None:
        with self.mutex:
            heapq.heappush(self.queue, item)
            self.server.queue_updated()
            self.not_empty.notify()

    def get(self, timeout: float | None = None):
        with self.not_empty:
            while len(self.queue) == 0:
                self.not_empty.wait(timeout=timeout)
                if timeout is not None and len(self.queue) == 0:
                    return None
            item = heapq.heappop(self.queue)
            i = self.task_counter
            self.currently_running[i] = copy.deepcopy(item)
            self.task_counter += 1
            self.server.queue_updated()
            return (item, i)

    def task_done(self, item_id, history_result, status):
        with self.mutex:
            prompt = self.currently_running.pop(item_id)
            for key in SENSITIVE_EXTRA_DATA_KEYS:  # 0.3.64 strips them from the running copy's extra_data
                if key in prompt[3]:
                    prompt[3].pop(key)
            self._record(prompt, history_result, status)

    def _record(self, prompt: tuple, history_result: dict, status: Any) -> None:
        self.history[prompt[1]] = {"prompt": prompt, "outputs": {}, "status": copy.deepcopy(status._asdict()) if status else None}
        self.history[prompt[1]].update(history_result)
        self.server.queue_updated()

    def wipe_queue(self) -> None:
        with self.mutex:
            self.queue = []
            self.server.queue_updated()

    def delete_queue_item(self, function: Callable[[Any], bool]) -> bool:
        with self.mutex:
            for x in range(len(self.queue)):
                if function(self.queue[x]):
                    if len(self.queue) == 1:
                        self.wipe_queue()
                    else:
                        self.queue.pop(x)
                        heapq.heapify(self.queue)
                    self.server.queue_updated()
                    return True
        return False


class SixFieldPromptQueue(PromptQueue):
    """ComfyUI 0.3.67 - 0.8.0's queue: six-field items (the sixth holds the sensitive extra_data keys)."""

    SIX_FIELDS = True

    def task_done(self, item_id, history_result, status, process_item=None):
        with self.mutex:
            prompt = self.currently_running.pop(item_id)
            if process_item is not None:
                prompt = process_item(prompt)
            self._record(prompt, history_result, status)


def queue_class_for(version: str) -> type[PromptQueue]:
    """The stand-in queue that mimics ComfyUI ``version`` (``"0.3.64"``, ``"0.8.0"``)."""
    parts = tuple(int(p) if p.isdigit() else 0 for p in version.split(".")[:3])
    return SixFieldPromptQueue if parts >= (0, 3, 67) else PromptQueue


class RouteTable(list):
    def _add(self, method: str, path: str):
        def decorator(fn):
            self.append((method, path, fn))
            return fn

        return decorator

    def get(self, path: str):
        return self._add("GET", path)

    def post(self, path: str):
        return self._add("POST", path)


class PromptServer:
    instance: "PromptServer | None" = None

    def __init__(self, loop: asyncio.AbstractEventLoop, six_fields: bool = False) -> None:
        PromptServer.instance = self
        self.loop = loop
        self.number = 0
        self.on_prompt_handlers: list = []
        self.routes = RouteTable()
        self.prompt_queue = (SixFieldPromptQueue if six_fields else PromptQueue)(self)
        self.sent: list[tuple[str, Any, Any]] = []
        self.queue_updates = 0

    def add_on_prompt_handler(self, handler) -> None:
        self.on_prompt_handlers.append(handler)

    def trigger_on_prompt(self, json_data: dict) -> dict:
        for handler in self.on_prompt_handlers:
            try:
                json_data = handler(json_data)
            except Exception:  # ComfyUI logs and goes on with the previous value
                pass
        return json_data

    def queue_updated(self) -> None:
        self.queue_updates += 1

    def send_sync(self, event: str, data: Any, sid: Any = None) -> None:
        self.sent.append((event, data, sid))

    async def post_prompt(self, json_data: dict) -> tuple[int, dict]:
        """``POST /prompt`` as server.py 0.3.64 does it, returning ``(status, body)``."""
        json_data = self.trigger_on_prompt(json_data)
        if "number" in json_data:
            number = float(json_data["number"])
        else:
            number = self.number
            if "front" in json_data and json_data["front"]:
                number = -number
            self.number += 1
        if "prompt" not in json_data:
            return 400, {"error": {"type": "no_prompt"}, "node_errors": {}}
        prompt = json_data["prompt"]
        prompt_id = str(json_data.get("prompt_id", uuid.uuid4()))
        replacer = getattr(self, "node_replace_manager", None)
        if replacer is not None:  # as 0.38's post_prompt does, after the onprompt hooks
            replacer.apply_replacements(prompt)
        valid = await sys_modules()["execution"].validate_prompt(prompt_id, prompt, json_data.get("partial_execution_targets"))
        extra_data = json_data.get("extra_data", {})
        if "client_id" in json_data:
            extra_data["client_id"] = json_data["client_id"]
        if valid[0]:
            item: tuple = (number, prompt_id, prompt, extra_data, valid[2])
            if self.prompt_queue.SIX_FIELDS:  # 0.3.67+: the sensitive keys travel in their own field
                item = item + ({key: extra_data.pop(key) for key in SENSITIVE_EXTRA_DATA_KEYS if key in extra_data},)
            self.prompt_queue.put(item)
            return 200, {"prompt_id": prompt_id, "number": number, "node_errors": valid[3]}
        return 400, {"error": valid[1], "node_errors": valid[3]}

    # -------------------------------------------------------------- a worker that "executes" items
    def run_next(self, execute: Callable[[dict, tuple], tuple[str, list, dict]] | None = None,
                 timeout: float = 0) -> tuple | None:
        """Take the next item like ComfyUI's worker and finish it.

        ``execute(prompt, item) -> (status_str, messages, outputs)``; the default succeeds and reports one
        saved image per WISaveImage node. ``timeout``: how long to wait for an item (ComfyUI's worker waits
        on its own thread; on the loop's thread only 0 makes sense).
        """
        got = self.prompt_queue.get(timeout=timeout)
        if got is None:
            return None
        item, item_id = got
        status_str, messages, outputs = (execute or default_execute)(item[2], item)
        status = ExecutionStatus(status_str, status_str == "success", messages)
        if self.prompt_queue.SIX_FIELDS:
            sensitive = item[5]  # like main.py 0.3.67+: a missing sixth field is an IndexError in the worker
            assert isinstance(sensitive, dict), item
            self.prompt_queue.task_done(item_id, {"outputs": outputs, "meta": {}}, status=status,
                                        process_item=lambda prompt: prompt[:5] + prompt[6:])
        else:
            self.prompt_queue.task_done(item_id, {"outputs": outputs, "meta": {}}, status=status)
        return item


def default_execute(prompt: dict, item: tuple) -> tuple[str, list, dict]:
    outputs = {}
    for node_id, node in prompt.items():
        if node["class_type"] == "WISaveImage":
            outputs[node_id] = {"images": [{"filename": f"{item[1]}.png", "subfolder": "WI/x", "type": "output"}]}
    return "success", [("execution_start", {"prompt_id": item[1]}), ("execution_success", {"prompt_id": item[1]})], outputs


# ------------------------------------------------------------------ node classes known to validation
class _Node:
    OUTPUT_NODE = False
    REQUIRED: dict[str, Any] = {}

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": dict(cls.REQUIRED)}


def _node(name: str, required: dict, output: bool = False) -> type:
    return type(name, (_Node,), {"REQUIRED": required, "OUTPUT_NODE": output})


_MAX_RESOLUTION = 16384  # nodes.MAX_RESOLUTION in 0.3.64 and 0.8.0

# Specs copied from the real nodes (defaults, min, max, combo options); test_standin_fidelity.py keeps them so.
NODE_CLASS_MAPPINGS: dict[str, type] = {
    "EmptyImage": _node("EmptyImage", {"width": ("INT", {"default": 512, "min": 1, "max": _MAX_RESOLUTION}),
                                       "height": ("INT", {"default": 512, "min": 1, "max": _MAX_RESOLUTION}),
                                       "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
                                       "color": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFF})}),
    "ImageScale": _node("ImageScale", {"image": ("IMAGE",), "upscale_method": (["nearest-exact", "bilinear", "area", "bicubic", "lanczos"],),
                                       "width": ("INT", {"default": 512, "min": 0, "max": _MAX_RESOLUTION}),
                                       "height": ("INT", {"default": 512, "min": 0, "max": _MAX_RESOLUTION}),
                                       "crop": (["disabled", "center"],)}),
    # Like the real one (nodes/save_node.py), with IS_CHANGED: ComfyUI memoises into its prompt dict.
    "WISaveImage": type("WISaveImage", (_Node,), {"REQUIRED": {"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "WI"})},
                                                  "OUTPUT_NODE": True, "IS_CHANGED": classmethod(lambda cls, **kw: float("nan"))}),
    "SaveImage": _node("SaveImage", {"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "ComfyUI"})}, output=True),
    "WIIterator": _node("WIIterator", {"parameters": ("WI_PARAMS",), "enabled": ("BOOLEAN", {"default": True}),
                                       "mode": (["matrix", "linear"], {"default": "matrix"}), "batch_name": ("STRING", {"default": "sweep"})}),
    "WIParameter": _node("WIParameter", {"name": ("STRING", {"default": "param"}), "values": ("STRING", {"default": ""})}),
    "WIParameterInt": _node("WIParameterInt", {"name": ("STRING", {"default": "param"}), "values": ("STRING", {"default": ""})}),
    "WIGridCompositor": _node("WIGridCompositor", {}),
    # tests/integration/fixture_nodes: an INT widget that declares no default, so a skipped parameter wired into it
    # has nothing to fall back to (ComfyUI's own model-free nodes all declare defaults).
    "WITestNoDefault": _node("WITestNoDefault", {"image": ("IMAGE",), "amount": ("INT", {"min": 0, "max": 100})}),
}


def _plan_error_node():
    class WIPlanError(_Node):
        OUTPUT_NODE = True
        REQUIRED = {"message": ("STRING", {"default": ""})}

    return WIPlanError


NODE_CLASS_MAPPINGS["WIPlanError"] = _plan_error_node()


async def validate_prompt(prompt_id: str, prompt: dict, partial_execution_list: Any = None) -> tuple:
    """Enough of ComfyUI 0.3.64's validation (execution.py ``validate_inputs`` / ``validate_prompt``): known
    classes, required inputs present, INT / FLOAT coercion with min and max, combo membership, and the
    outputs to run (only ``partial_execution_list`` when given). Coerced values are written back into the
    prompt, as the real one does."""
    await asyncio.sleep(0)
    outputs, node_errors = [], {}
    for node_id, node in prompt.items():
        cls = NODE_CLASS_MAPPINGS.get(node.get("class_type"))
        if cls is None:
            return (False, {"type": "invalid_prompt", "message": f"Cannot execute because node {node.get('class_type')} does not exist."}, [], {})
        errors = []
        for name, spec in cls.INPUT_TYPES()["required"].items():
            if name not in node["inputs"]:
                errors.append({"type": "required_input_missing", "message": "Required input is missing", "details": name})
                continue
            value = node["inputs"][name]
            if isinstance(value, list):
                continue
            options = spec[1] if len(spec) > 1 else {}
            if name == "message" and node["class_type"] == "WIPlanError":
                errors.append({"type": "custom_validation_failed", "message": "Failed to validate", "details": value})
            elif spec[0] in ("INT", "FLOAT"):
                try:
                    node["inputs"][name] = int(value) if spec[0] == "INT" else float(value)
                except (TypeError, ValueError, OverflowError):
                    errors.append({"type": "invalid_input_type", "message": f"Failed to convert an input value to a {spec[0]} value",
                                   "details": f"{name}, {value}"})
                    continue
                if "min" in options and node["inputs"][name] < options["min"]:
                    errors.append({"type": "value_smaller_than_min", "message": f"Value {value} smaller than min of {options['min']}",
                                   "details": f"{name}"})
                if "max" in options and node["inputs"][name] > options["max"]:
                    errors.append({"type": "value_bigger_than_max", "message": f"Value {value} bigger than max of {options['max']}",
                                   "details": f"{name}"})
            elif isinstance(spec[0], list) and value not in spec[0]:
                errors.append({"type": "value_not_in_list", "message": "Value not in list", "details": f"{name}: {value!r}"})
        if errors:
            node_errors[node_id] = {"errors": errors, "dependent_outputs": [], "class_type": node["class_type"]}
        if cls.OUTPUT_NODE and (partial_execution_list is None or node_id in partial_execution_list):
            outputs.append(node_id)
    # Like the real one: an output is good when neither it nor anything upstream of it has an error; errors of
    # nodes no output depends on are not reported. Some good output is enough to queue the prompt.
    good, reported = [], {}
    for output in outputs:
        upstream, stack = set(), [output]
        while stack:
            current = stack.pop()
            if current in upstream or current not in prompt:
                continue
            upstream.add(current)
            stack.extend(str(v[0]) for v in prompt[current]["inputs"].values() if isinstance(v, list) and v)
        failing = sorted(upstream & set(node_errors))
        if not failing:
            good.append(output)
        for node_id in failing:
            reported.setdefault(node_id, {**node_errors[node_id], "dependent_outputs": []})["dependent_outputs"].append(output)
    if not outputs:
        return (False, {"type": "prompt_no_outputs", "message": "Prompt has no outputs"}, [], {})
    if not good:
        return (False, {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation"}, [], reported)
    return (True, None, good, reported)


INTERRUPTS: list[bool] = []


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks still pending on ``loop`` (feeders waiting for a worker when a test ends mid-batch,
    hooks scheduled from outside the loop), let them finish cancelling, then close it."""
    loop.run_until_complete(asyncio.sleep(0))  # callbacks scheduled from outside the loop create their tasks now
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()


def install(monkeypatch, loop: asyncio.AbstractEventLoop, *, six_fields: bool = False, tmp_path=None) -> PromptServer:
    """Put stand-in ``server``, ``execution``, ``nodes`` and ``folder_paths`` modules into ``sys.modules``."""
    server_module = types.ModuleType("server")
    server_module.PromptServer = PromptServer  # type: ignore[attr-defined]
    execution_module = types.ModuleType("execution")
    execution_module.validate_prompt = validate_prompt  # type: ignore[attr-defined]
    nodes_module = types.ModuleType("nodes")
    nodes_module.NODE_CLASS_MAPPINGS = NODE_CLASS_MAPPINGS  # type: ignore[attr-defined]
    INTERRUPTS.clear()
    nodes_module.interrupt_processing = lambda value=True: INTERRUPTS.append(value)  # type: ignore[attr-defined]
    folder_module = types.ModuleType("folder_paths")
    base = str(tmp_path) if tmp_path is not None else "/nonexistent"
    folder_module.get_output_directory = lambda: base + "/output"  # type: ignore[attr-defined]
    folder_module.get_input_directory = lambda: base + "/input"  # type: ignore[attr-defined]
    folder_module.get_temp_directory = lambda: base + "/temp"  # type: ignore[attr-defined]
    for name, module in (("server", server_module), ("execution", execution_module), ("nodes", nodes_module), ("folder_paths", folder_module)):
        monkeypatch.setitem(sys_modules(), name, module)
    # post_prompt looks validate_prompt up on the module at call time, like server.py does.
    return PromptServer(loop, six_fields=six_fields)


def sys_modules() -> dict:
    import sys

    return sys.modules
