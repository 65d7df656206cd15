"""A small stand-in of ComfyUI's server surface with the real semantics that matter to the sweep.

Copied behaviour (ComfyUI 0.3.64, execution.py / server.py): a heap-ordered ``PromptQueue`` under an RLock
whose ``get`` deep-copies the item into ``currently_running``; ``delete_queue_item`` takes a predicate and
removes only the first match (emptying a one-item queue through ``wipe_queue``); ``task_done`` pops the
running item and writes history; ``post_prompt`` runs the onprompt handlers first, then numbering, an
**async** ``validate_prompt`` that mutates the prompt, and ``put``. Queue items have 5 fields, or 6 with
``six_fields=True`` (ComfyUI >= 0.3.67, where the worker reads ``item[5]``).

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


class PromptQueue:
    def __init__(self, server: "PromptServer", six_fields: bool = False) -> None:
        self.server = server
        self.six_fields = six_fields
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

    def task_done(self, item_id, history_result, status, process_item=None):  # 0.3.67+ signature
        with self.mutex:
            prompt = self.currently_running.pop(item_id)
            self.history[prompt[1]] = {"prompt": prompt, "outputs": {}, "status": status._asdict() if status else None}
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
        self.prompt_queue = PromptQueue(self, six_fields=six_fields)
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
            item = (number, prompt_id, prompt, extra_data, valid[2])
            if self.prompt_queue.six_fields:
                item = item + ({},)
            self.prompt_queue.put(item)
            return 200, {"prompt_id": prompt_id, "number": number, "node_errors": valid[3]}
        return 400, {"error": valid[1], "node_errors": valid[3]}

    # -------------------------------------------------------------- a worker that "executes" items
    def run_next(self, execute: Callable[[dict, tuple], tuple[str, list, dict]] | None = None) -> tuple | None:
        """Take the next item like ComfyUI's worker and finish it.

        ``execute(prompt, item) -> (status_str, messages, outputs)``; the default succeeds and reports one
        saved image per WISaveImage node.
        """
        got = self.prompt_queue.get(timeout=0)
        if got is None:
            return None
        item, item_id = got
        status_str, messages, outputs = (execute or default_execute)(item[2], item)
        self.prompt_queue.task_done(
            item_id, {"outputs": outputs, "meta": {}},
            status=ExecutionStatus(status_str, status_str == "success", messages),
        )
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


NODE_CLASS_MAPPINGS: dict[str, type] = {
    "EmptyImage": _node("EmptyImage", {"width": ("INT", {"default": 512, "min": 1, "max": 4096}), "height": ("INT", {"default": 512, "min": 1, "max": 4096}),
                                       "batch_size": ("INT", {"min": 1, "max": 64}), "color": ("INT", {"min": 0})}),
    "ImageScale": _node("ImageScale", {"image": ("IMAGE",), "upscale_method": (["nearest-exact", "bilinear", "area", "bicubic", "lanczos"],),
                                       "width": ("INT", {"min": 0}), "height": ("INT", {"min": 0}), "crop": (["disabled", "center"],)}),
    # Like the real one (nodes/save_node.py), with IS_CHANGED: ComfyUI memoises into its prompt dict.
    "WISaveImage": type("WISaveImage", (_Node,), {"REQUIRED": {"images": ("IMAGE",), "filename_prefix": ("STRING",)},
                                                  "OUTPUT_NODE": True, "IS_CHANGED": classmethod(lambda cls, **kw: float("nan"))}),
    "SaveImage": _node("SaveImage", {"images": ("IMAGE",), "filename_prefix": ("STRING",)}, output=True),
    "WIIterator": _node("WIIterator", {"parameters": ("WI_PARAMS",), "enabled": ("BOOLEAN",), "mode": (["matrix", "linear"],), "batch_name": ("STRING",)}),
    "WIParameter": _node("WIParameter", {"name": ("STRING",), "values": ("STRING",)}),
    "WIParameterInt": _node("WIParameterInt", {"name": ("STRING",), "values": ("STRING",)}),
    "WIGridCompositor": _node("WIGridCompositor", {}),
}


def _plan_error_node():
    class WIPlanError(_Node):
        OUTPUT_NODE = True
        REQUIRED = {"message": ("STRING",)}

    return WIPlanError


NODE_CLASS_MAPPINGS["WIPlanError"] = _plan_error_node()


async def validate_prompt(prompt_id: str, prompt: dict, partial_execution_list: Any = None) -> tuple:
    """Enough of ComfyUI's validation: known classes, INT coercion and min/max, combo membership, outputs."""
    await asyncio.sleep(0)
    outputs, node_errors = [], {}
    for node_id, node in prompt.items():
        cls = NODE_CLASS_MAPPINGS.get(node.get("class_type"))
        if cls is None:
            return (False, {"type": "invalid_prompt", "message": f"Cannot execute because node {node.get('class_type')} does not exist."}, [], {})
        errors = []
        for name, spec in cls.INPUT_TYPES()["required"].items():
            value = node["inputs"].get(name)
            if isinstance(value, list):
                continue
            if name == "message" and node["class_type"] == "WIPlanError":
                errors.append({"type": "custom_validation_failed", "message": "Failed to validate", "details": value})
            elif spec[0] == "INT":
                try:
                    node["inputs"][name] = int(value)
                except (TypeError, ValueError):
                    errors.append({"type": "invalid_input_type", "message": "bad INT", "details": f"{name}: {value!r}"})
                    continue
                if node["inputs"][name] < spec[1].get("min", -(1 << 63)):
                    errors.append({"type": "value_smaller_than_min", "message": "Value smaller than min", "details": f"{name}: {value}"})
            elif isinstance(spec[0], list) and value not in spec[0]:
                errors.append({"type": "value_not_in_list", "message": "Value not in list", "details": f"{name}: {value!r}"})
        if cls.OUTPUT_NODE:
            if errors:
                node_errors[node_id] = {"errors": errors, "dependent_outputs": [node_id], "class_type": node["class_type"]}
            else:
                outputs.append(node_id)
        elif errors:
            node_errors[node_id] = {"errors": errors, "dependent_outputs": [], "class_type": node["class_type"]}
    if node_errors and not outputs:
        return (False, {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation"}, [], node_errors)
    if not outputs:
        return (False, {"type": "prompt_no_outputs", "message": "Prompt has no outputs"}, [], {})
    if node_errors:
        return (False, {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation"}, [], node_errors)
    return (True, None, outputs, {})


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
