"""A headless sweep request (``POST /wi/batches``) turned into the WI nodes a canvas user would have added.

Owns: the request body's shape and its checks (:func:`parse_request`, errors name the field), the type of an
axis when the request leaves it out (:func:`infer_type`, from the target input's spec), the equivalent
prompt (:func:`build_prompt`: one ``WIParameter`` per axis with its ``target`` text, a ``WIIterator``, and a
``WIGridCompositor`` when ``grid`` is given), the plan's JSON answer (:func:`plan_answer`) and the
idempotency keys (:class:`IdempotencyStore`, in memory).

It plans nothing itself: the built prompt is planned by ``prompt_graph.plan_sweep`` (the hook's own
planner, through :func:`plan`) and submitted through ComfyUI's POST /prompt handler, so the onprompt hook
creates the batch exactly as for a Queue press and every error message is the hook's.

Plain Python: must not import torch, comfy*, server, nodes, execution, folder_paths, comfy_execution, aiohttp.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import input_spec, planner, prompt_graph
from .errors import WIError
from .grid.options import NODE_OPTIONS, options_from_node
from .parameter_parser import VALUE_TYPES
from .values import format_label, json_value

logger = logging.getLogger(__name__)

__all__ = [
    "AXIS_KEYS",
    "BODY_KEYS",
    "AxisRequest",
    "BatchRequest",
    "IdempotencyStore",
    "RequestError",
    "build_prompt",
    "infer_type",
    "parse_request",
    "plan",
    "plan_answer",
]

#: Ids of the nodes a request adds; a prefix no ComfyUI graph uses (UI ids are numbers, subgraph ids "a:b").
NODE_PREFIX = "wi_api_"
ITERATOR_ID = NODE_PREFIX + "iterator"
GRID_ID = NODE_PREFIX + "grid"
PARAMETER_CLASS = "WIParameter"  # the generic node: its ``type`` widget carries the axis type

BODY_KEYS = frozenset({"prompt", "axes", "mode", "unequal_lengths", "run_order", "grid", "batch_name", "client_id",
                       "idempotency_key", "dry_run", "extra_data"})
AXIS_KEYS = frozenset({"name", "target", "type", "values"})
MODES = ("matrix", "linear")
UNEQUAL = ("cycle", "error")
RUN_ORDERS = ("cache-friendly", "as entered")
GRID_KEYS = tuple(name for name, _ in NODE_OPTIONS)
MAX_KEY_LENGTH = 200
MAX_NAME_LENGTH = 200
MAX_TARGET_LENGTH = 1_000

#: ``class_type -> INPUT_TYPES() dict | None``: the adapter's lookup of a node class's inputs.
InputTypesLookup = Callable[[str], Any]


class RequestError(WIError, ValueError):
    """The request body is malformed or cannot be planned (HTTP 400).

    Attributes:
        errors: One ``{"axis": position or None, "param": name or None, "message"}`` per problem, the
            messages being the hook's own for planning problems.
    """

    def __init__(self, message: str, errors: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(message)
        self.errors = [dict(e) for e in errors] or [{"axis": None, "param": None, "message": message}]


@dataclass(frozen=True)
class AxisRequest:
    name: str
    target: str
    type: str | None  # None: inferred from the target's input spec
    values: str


@dataclass(frozen=True)
class BatchRequest:
    prompt: Mapping[str, Any]
    axes: tuple[AxisRequest, ...]
    mode: str = "matrix"
    unequal_lengths: str = "cycle"
    run_order: str = "cache-friendly"
    grid: Mapping[str, Any] | None = None
    batch_name: str = "sweep"
    client_id: str | None = None
    idempotency_key: str | None = None
    dry_run: bool = False
    extra_data: Mapping[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """What two requests with one idempotency key must share (dry runs and keys aside)."""
        data = {"prompt": self.prompt, "axes": [vars(a) for a in self.axes], "mode": self.mode,
                "unequal_lengths": self.unequal_lengths, "run_order": self.run_order, "grid": self.grid,
                "batch_name": self.batch_name}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _string(body: Mapping[str, Any], key: str, default: str | None, *, choices: Sequence[str] = (),
            max_length: int = MAX_NAME_LENGTH, where: str = "") -> str | None:
    value = body.get(key, default)
    if value is None:
        return default
    label = f"{where}{key}"
    if not isinstance(value, str):
        raise RequestError(f"{label} must be a string, not {type(value).__name__}")
    if len(value) > max_length:
        raise RequestError(f"{label} is longer than {max_length} characters")
    if choices and value not in choices:
        raise RequestError(f"{label} must be one of {', '.join(repr(c) for c in choices)}, not {value!r}")
    return value


def _prompt(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not value:
        raise RequestError("prompt must be a non-empty object of API-format nodes ({node_id: {class_type, inputs}})")
    for node_id, node in value.items():
        if not isinstance(node, Mapping):
            raise RequestError(f"prompt[{node_id!r}] must be an object with class_type and inputs")
        if not isinstance(node.get("class_type"), str) or not node["class_type"]:
            raise RequestError(f"prompt[{node_id!r}].class_type must be a non-empty string")
        if not isinstance(node.get("inputs", {}), Mapping):
            raise RequestError(f"prompt[{node_id!r}].inputs must be an object")
        if str(node_id).startswith(NODE_PREFIX):
            raise RequestError(f"prompt node id {node_id!r}: ids starting with {NODE_PREFIX!r} are reserved for the sweep's nodes")
        if node["class_type"] == prompt_graph.ITERATOR_CLASS:
            raise RequestError(f"prompt node {node_id!r} is a WIIterator: post a prompt that declares its own sweep to "
                               "/prompt, or describe the sweep here with axes and leave the WI nodes out")
    return value


def _axis(position: int, value: Any) -> AxisRequest:
    where = f"axes[{position}]."
    if not isinstance(value, Mapping):
        raise RequestError(f"axes[{position}] must be an object with target and values", [
            {"axis": position, "param": None, "message": f"axes[{position}] must be an object"}])
    unknown = sorted(str(k) for k in value if k not in AXIS_KEYS)
    if unknown:
        raise RequestError(f"{where[:-1]} has unknown field(s) {', '.join(unknown)} (allowed: {', '.join(sorted(AXIS_KEYS))})")
    target = _string(value, "target", None, max_length=MAX_TARGET_LENGTH, where=where)
    if not target or not target.strip():
        raise RequestError(f"{where}target is required: 'node title, id or class.input name', e.g. 'KSampler.cfg'")
    values = value.get("values")
    if not isinstance(values, str):
        raise RequestError(f"{where}values must be a string in the value syntax (e.g. \"4-8 (+2)\" or \"euler, dpmpp_2m\")")
    type_ = _string(value, "type", None, where=where)
    if type_ is not None:
        type_ = type_.strip().upper()
        if type_ not in VALUE_TYPES:
            raise RequestError(f"{where}type must be one of {', '.join(VALUE_TYPES)}, not {value.get('type')!r}")
    name = _string(value, "name", None, where=where)
    if name is None or not name.strip():
        name = default_axis_name(target)
    return AxisRequest(name=name.strip(), target=target.strip(), type=type_, values=values)


def default_axis_name(target: str) -> str:
    """An axis named after its (first) target's input: ``"KSampler.cfg"`` -> ``"cfg"``."""
    first = target.replace("\n", ";").split(";")[0].strip()
    node_ref, dot, input_name = first.partition(".")
    return (input_name if dot else node_ref).strip() or first


def parse_request(body: Any) -> BatchRequest:
    """Check a ``POST /wi/batches`` body and read it into a :class:`BatchRequest`.

    Raises:
        RequestError: naming the field that is missing, of the wrong type or unknown.
    """
    if not isinstance(body, Mapping):
        raise RequestError("body must be a JSON object with prompt and axes")
    unknown = sorted(str(k) for k in body if k not in BODY_KEYS)
    if unknown:
        raise RequestError(f"unknown field(s) {', '.join(unknown)} (allowed: {', '.join(sorted(BODY_KEYS))})")
    if "prompt" not in body:
        raise RequestError("prompt is required: the API-format workflow (ComfyUI's 'Export (API)')")
    prompt = _prompt(body["prompt"])
    axes_raw = body.get("axes")
    if not isinstance(axes_raw, list) or not axes_raw:
        raise RequestError("axes must be a non-empty list of {target, values, name?, type?}")
    if len(axes_raw) > planner.MAX_PARAMETERS:
        raise RequestError(f"too many axes: {len(axes_raw):,} (at most {planner.MAX_PARAMETERS:,})")
    axes = tuple(_axis(i, a) for i, a in enumerate(axes_raw))
    grid = body.get("grid")
    if grid is not None:
        if not isinstance(grid, Mapping):
            raise RequestError("grid must be an object of grid options (or null for no grid)")
        bad = sorted(str(k) for k in grid if k not in GRID_KEYS)
        if bad:
            raise RequestError(f"grid has unknown option(s) {', '.join(bad)} (allowed: {', '.join(GRID_KEYS)})")
        for key, option in grid.items():
            if option is not None and not isinstance(option, (str, int, float, bool)):
                raise RequestError(f"grid.{key} must be a string, number or boolean")
        try:
            options_from_node({k: v for k, v in grid.items() if v is not None})
        except (ValueError, TypeError) as exc:
            raise RequestError(f"grid: {exc}") from None
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise RequestError("dry_run must be true or false")
    extra = body.get("extra_data", {})
    if not isinstance(extra, Mapping):
        raise RequestError("extra_data must be an object")
    if prompt_graph.REENTRY_KEY in extra:  # the mark of a cell the hook already expanded: it would skip the sweep
        raise RequestError(f"extra_data.{prompt_graph.REENTRY_KEY} is reserved for the sweep's own cells")
    key = _string(body, "idempotency_key", None, max_length=MAX_KEY_LENGTH)
    if key is not None and not key:
        raise RequestError("idempotency_key must not be empty")
    return BatchRequest(
        prompt=prompt, axes=axes,
        mode=_string(body, "mode", "matrix", choices=MODES) or "matrix",
        unequal_lengths=_string(body, "unequal_lengths", "cycle", choices=UNEQUAL) or "cycle",
        run_order=_string(body, "run_order", "cache-friendly", choices=RUN_ORDERS) or "cache-friendly",
        grid=None if grid is None else {k: v for k, v in grid.items() if v is not None},
        batch_name=(_string(body, "batch_name", "sweep") or "sweep").strip() or "sweep",
        client_id=_string(body, "client_id", None), idempotency_key=key, dry_run=dry_run, extra_data=dict(extra),
    )


def _type_of_spec(spec: Sequence[Any] | None) -> str | None:
    if not spec:
        return None
    kind = spec[0]
    if isinstance(kind, (list, tuple)):
        return "COMBO"
    text = str(kind).upper()
    return text if text in VALUE_TYPES else None


def _type_of_literal(value: Any) -> str | None:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "INT"
    if isinstance(value, float):
        return "FLOAT"
    if isinstance(value, str):
        return "STRING"
    return None


def infer_type(prompt: Mapping[str, Any], axis: AxisRequest, input_types: InputTypesLookup | None) -> str:
    """The axis's value type: as given, else the target input's declared type (``INT``, ``FLOAT``, a combo
    list -> ``COMBO``, ...), else the type of the literal the prompt holds there, else ``STRING``.

    A target that names nothing is not an error here: the planner reports it, with the hook's message.
    """
    if axis.type is not None:
        return axis.type
    spec = planner.make_spec("0", name=axis.name, type="STRING", values=axis.values, target=axis.target)
    try:
        sites = prompt_graph.resolve_sites(prompt, spec, {})
    except ValueError:
        return "STRING"
    for site in sites:
        node = prompt[site.node_id]
        class_type = str(node.get("class_type"))
        found = None
        if input_types is not None:
            try:
                found = _type_of_spec(input_spec.find_input(input_types(class_type), site.input_name))
            except Exception:  # another pack's INPUT_TYPES may raise: fall back to the literal
                logger.debug("WI: input spec of %s.%s unavailable", class_type, site.input_name, exc_info=True)
        if found is None:
            found = _type_of_literal(prompt_graph.node_inputs(node).get(site.input_name))
        if found is not None:
            return found
    return "STRING"


def build_prompt(request: BatchRequest, input_types: InputTypesLookup | None = None) -> dict[str, Any]:
    """The user's prompt plus the WI nodes a canvas user would have added for this sweep (a new dict)."""
    prompt: dict[str, Any] = dict(request.prompt)
    previous: list[Any] | None = None
    for position, axis in enumerate(request.axes):
        node_id = f"{NODE_PREFIX}param_{position}"
        inputs: dict[str, Any] = {"name": axis.name, "type": infer_type(request.prompt, axis, input_types),
                                  "values": axis.values, "target": axis.target}
        if previous is not None:
            inputs["previous"] = previous
        prompt[node_id] = {"class_type": PARAMETER_CLASS, "inputs": inputs, "_meta": {"title": axis.name}}
        previous = [node_id, prompt_graph.STACK_OUTPUT]
    prompt[ITERATOR_ID] = {
        "class_type": prompt_graph.ITERATOR_CLASS, "_meta": {"title": "WI Iterator"},
        "inputs": {"parameters": previous, "enabled": True, "mode": request.mode, "batch_name": request.batch_name,
                   "unequal_lengths": request.unequal_lengths, "run_order": request.run_order},
    }
    if request.grid is not None:
        prompt[GRID_ID] = {"class_type": prompt_graph.GRID_CLASS, "inputs": dict(request.grid), "_meta": {"title": "WI Grid"}}
    return prompt


def axis_position(node_id: str) -> int | None:
    """The request's axis index of a node :func:`build_prompt` added, else None."""
    prefix = f"{NODE_PREFIX}param_"
    if node_id.startswith(prefix) and node_id[len(prefix):].isdigit():
        return int(node_id[len(prefix):])
    return None


def plan(prompt: Mapping[str, Any], *, parse: planner.ParseFn, options_for: Any, input_default: Any,
         node_is_written: Any, max_combinations: int) -> prompt_graph.SweepPlan:
    """The hook's planner over the built prompt; where the hook would skip an axis, the request is refused.

    Raises:
        RequestError: with the hook's messages, each naming its parameter and axis position.
    """
    try:
        swept = prompt_graph.plan_sweep(prompt, ITERATOR_ID, parse=parse, options_for=options_for,
                                        input_default=input_default, node_is_written=node_is_written,
                                        max_combinations=max_combinations)
    except (prompt_graph.PlanError, planner.PlanError, ValueError) as exc:
        raise RequestError(str(exc), _errors_in(str(exc), prompt)) from None
    if swept.errors:
        errors = [{"axis": axis_position(e.node_id), "param": e.name, "message": e.message} for e in swept.errors]
        raise RequestError("; ".join(e.message for e in swept.errors), errors)
    return swept


def _errors_in(message: str, prompt: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A refusal names the parameters it concerns in its text (``parameter "name": ...``): point at them."""
    found = []
    for node_id, node in prompt.items():
        position = axis_position(str(node_id))
        name = prompt_graph.node_inputs(node).get("name") if position is not None else None
        if position is not None and f'parameter "{name}"' in message:
            found.append({"axis": position, "param": name, "message": message})
    return found or [{"axis": None, "param": None, "message": message}]


def plan_answer(swept: prompt_graph.SweepPlan, request: BatchRequest, grid: Mapping[str, Any] | None) -> dict[str, Any]:
    """The dry run's answer: the count, every axis with its values and labels (the one formatter), the grid."""
    axes = []
    for axis, spec in zip(swept.axes, swept.parameters):
        axes.append({"name": axis.name, "type": axis.type, "target": spec.target,
                     "values": [json_value(v) for v in axis.values],
                     "labels": [format_label(v, axis.type) for v in axis.values]})
    return {"dry_run": True, "count": swept.total, "mode": swept.mode, "batch_name": swept.batch_name,
            "axes": axes, "grid": None if grid is None else dict(grid)}


@dataclass(frozen=True)
class _Remembered:
    fingerprint: str
    answer: Mapping[str, Any]


class IdempotencyStore:
    """The first answer given for each idempotency key, in memory (a restart forgets them), oldest dropped
    first beyond ``size``. Thread-safe."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = max(1, size)
        self._answers: OrderedDict[str, _Remembered] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, fingerprint: str) -> Mapping[str, Any] | None:
        """The first answer for ``key``, or None when it is new.

        Raises:
            RequestError: the key was used for a different request.
        """
        with self._lock:
            found = self._answers.get(key)
        if found is None:
            return None
        if found.fingerprint != fingerprint:
            raise RequestError(f"idempotency_key {key!r} was already used for a different request "
                               f"(batch {found.answer.get('batch_id')})")
        return found.answer

    def remember(self, key: str, fingerprint: str, answer: Mapping[str, Any]) -> None:
        with self._lock:
            self._answers[key] = _Remembered(fingerprint, dict(answer))
            self._answers.move_to_end(key)
            while len(self._answers) > self._size:
                self._answers.popitem(last=False)
