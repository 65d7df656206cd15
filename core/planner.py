"""One planner: the rules that turn a sweep's parameters into axes and combinations, for the hook and the badge.

Owns: the iterator's settings read from its inputs (:class:`SweepSettings`), a parameter's name and type
(:func:`make_spec`), parsing every parameter with all problems collected and the bad ones skipped, the rule
that two parameters may not share a name, the combination modes, the limits (:class:`Limits`: 100,000
combinations and 10,000 values per parameter by default, ``WI_MAX_COMBINATIONS`` / ``WI_MAX_VALUES`` in the
environment), and the iterator badge's preview (``POST /wi/preview``, :func:`preview`).

The onprompt hook (``prompt_graph.plan_sweep``) and :func:`preview` both call :func:`plan_axes`, so the
badge's count, its errors and its duplicate-name rule are the hook's by construction. What only the hook can
check, because only it sees the whole prompt, is passed in as ``prepare`` (where a value goes, the options of
the input it feeds); the preview gets those from the body instead.

Plain Python: must not import torch, comfy*, server, nodes, execution, folder_paths, comfy_execution, aiohttp.
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import combination_engine
from .combination_engine import Axis, CombinationSet
from .errors import LimitExceededError, ParamSyntaxError, WIError
from .parameter_parser import DEFAULT_MAX_VALUES

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_COMBINATIONS",
    "DEFAULT_MAX_VALUES",
    "ENV_MAX_COMBINATIONS",
    "ENV_MAX_VALUES",
    "MAX_PARAMETERS",
    "PREVIEW_GRID_MAX_LABELS",
    "AxesPlan",
    "AxisOutcome",
    "Limits",
    "ParameterError",
    "ParameterSpec",
    "PlanError",
    "SweepSettings",
    "make_spec",
    "plan_axes",
    "preview",
]

DEFAULT_MAX_COMBINATIONS = combination_engine.DEFAULT_MAX_COMBINATIONS
ENV_MAX_COMBINATIONS = "WI_MAX_COMBINATIONS"
ENV_MAX_VALUES = "WI_MAX_VALUES"
#: Most parameters one sweep may chain; far above any real workflow, it bounds the work of one request.
MAX_PARAMETERS = 1_000
#: The badge's grid estimate fits every label, which grows faster than the label count (0.16 s of CPU for
#: 1,000 labels, 0.7 s for 3,000, 8-20 s for 10,000 on the 2-core test machine): even on its own thread that
#: holds the GIL (and collects garbage) long enough to stall the server loop for hundreds of milliseconds. Above
#: this many labels the preview says so instead; the sweep's grid is still checked when it is queued.
PREVIEW_GRID_MAX_LABELS = 2_000

#: ``parse(values_raw, type, *, name, options) -> values``: ``parameter_parser.parse`` with the caller's file
#: root and value limit bound (``SweepService.parse``).
ParseFn = Callable[..., list[Any]]
#: Per parameter, what only the caller can know: raises ValueError when the value goes nowhere, else
#: returns the COMBO options of the input it feeds (None: unknown).
PrepareFn = Callable[["ParameterSpec"], "Sequence[str] | None"]


class PlanError(WIError, ValueError):
    """The sweep cannot be planned at all (no valid parameter, broken chain, too many combinations)."""


@dataclass(frozen=True)
class Limits:
    """How big one sweep may be. Both limits are checked before anything large is built."""

    max_values: int = DEFAULT_MAX_VALUES
    max_combinations: int = DEFAULT_MAX_COMBINATIONS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The limits set by ``WI_MAX_COMBINATIONS`` and ``WI_MAX_VALUES`` (positive whole numbers; ``_``
        separators allowed). A value that is not one is logged, naming it, and the default is used: a typo
        in the environment must not stop ComfyUI from starting."""
        env = os.environ if environ is None else environ
        return cls(
            max_values=_positive_int(env, ENV_MAX_VALUES, DEFAULT_MAX_VALUES),
            max_combinations=_positive_int(env, ENV_MAX_COMBINATIONS, DEFAULT_MAX_COMBINATIONS),
        )


def _positive_int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or not raw.strip():
        return default
    text = raw.strip().replace("_", "").replace(",", "")
    if text.isdigit() and 0 < int(text) < 10**12:
        return int(text)
    logger.warning("WI: %s=%r is not a positive whole number; using the default %s", key, raw, f"{default:,}")
    return default


@dataclass(frozen=True)
class SweepSettings:
    """The iterator's widgets that decide how parameters combine and in which order cells run."""

    mode: str = "matrix"
    cycle: bool = True
    cache_friendly: bool = True
    batch_name: str = "sweep"

    @classmethod
    def from_inputs(cls, inputs: Mapping[str, Any]) -> SweepSettings:
        """From the iterator node's inputs (the hook) or the preview body (the badge): same keys.

        Raises:
            PlanError: a mode other than matrix or linear.
        """
        mode = str(inputs.get("mode", "matrix")).strip().lower()
        if mode not in ("matrix", "linear"):
            raise PlanError(f"WIIterator mode must be 'matrix' or 'linear', not {mode!r}")
        return cls(
            mode=mode,
            cycle=str(inputs.get("unequal_lengths", "cycle")).strip().lower() != "error",
            cache_friendly=str(inputs.get("run_order", "cache-friendly")).strip().lower() != "as entered",
            batch_name=str(inputs.get("batch_name", "") or "sweep").strip() or "sweep",
        )


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter node as found in the prompt (or the preview body), before parsing."""

    node_id: str
    class_type: str
    name: str
    type: str
    values_raw: str
    target: str


def make_spec(
    node_id: str, *, class_type: str = "", name: Any = "", title: str = "", type: Any = "STRING",
    values: Any = "", target: Any = "",
) -> ParameterSpec:
    """A :class:`ParameterSpec` by the one naming rule: the ``name`` widget, else the node's title, else
    ``param <node id>``; the type upper-cased (checked when parsed)."""
    return ParameterSpec(
        node_id=str(node_id),
        class_type=class_type,
        name=str(name if name is not None else "").strip() or title or f"param {node_id}",
        type=str(type).strip().upper(),
        values_raw=str(values if values is not None else ""),
        target=str(target or ""),
    )


@dataclass(frozen=True)
class ParameterError:
    """A parameter that was skipped, with the reason (shown to the user as a ``wi.param_error``)."""

    node_id: str
    name: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"node_id": self.node_id, "param": self.name, "message": self.message}


@dataclass(frozen=True)
class AxisOutcome:
    """What became of one parameter: an axis, or the error it was skipped for."""

    spec: ParameterSpec
    axis: Axis | None
    error: ParameterError | None


@dataclass(frozen=True)
class AxesPlan:
    """Every parameter's outcome and, unless the sweep is refused, its lazy combinations.

    Attributes:
        settings: The iterator's settings the plan was made with.
        outcomes: One per parameter, in chain order (skipped ones included).
        combinations: The cells, or None when the sweep is refused.
        refusal: Why nothing can be queued (None when ``combinations`` is set).
        nothing_valid: The refusal is that every parameter was skipped (each has its own error already).
        uncapped: How many cells the valid axes make in this mode, whatever the limit (0 when refused for
            another reason), so the badge can say how far over the limit a sweep is.
    """

    settings: SweepSettings
    outcomes: tuple[AxisOutcome, ...]
    combinations: CombinationSet | None
    refusal: str | None
    nothing_valid: bool
    uncapped: int

    @property
    def axes(self) -> tuple[Axis, ...]:
        return tuple(o.axis for o in self.outcomes if o.axis is not None)

    @property
    def kept(self) -> tuple[ParameterSpec, ...]:
        return tuple(o.spec for o in self.outcomes if o.axis is not None)

    @property
    def skipped(self) -> tuple[ParameterSpec, ...]:
        return tuple(o.spec for o in self.outcomes if o.axis is None)

    @property
    def errors(self) -> list[ParameterError]:
        return [o.error for o in self.outcomes if o.error is not None]

    @property
    def count(self) -> int:
        """Prompts a Queue press queues: the cells, or 0 when refused."""
        return 0 if self.combinations is None else len(self.combinations)


def plan_axes(
    specs: Sequence[ParameterSpec],
    settings: SweepSettings,
    *,
    parse: ParseFn,
    prepare: PrepareFn | None = None,
    max_combinations: int = DEFAULT_MAX_COMBINATIONS,
) -> AxesPlan:
    """Parse every parameter, skip (and report) the bad ones, and combine the rest. Never raises for bad input.

    Args:
        specs: The parameters in chain order (the first varies slowest).
        settings: Mode and unequal-length rule.
        parse: See :data:`ParseFn`.
        prepare: See :data:`PrepareFn`; None when the caller has no prompt (the preview).
        max_combinations: Most cells allowed; checked on the count before any cell exists.
    """
    if not specs:
        return AxesPlan(settings, (), None, "connect at least one WIParameter node to the WIIterator", False, 0)
    if len(specs) > MAX_PARAMETERS:
        refusal = f"too many parameters: {len(specs):,} (at most {MAX_PARAMETERS:,} per sweep)"
        return AxesPlan(settings, (), None, refusal, False, 0)
    outcomes: list[AxisOutcome] = []
    names: set[str] = set()
    for spec in specs:
        try:
            if spec.name in names:
                raise ValueError(f'another parameter is already named "{spec.name}"; names label the grid axes and must differ')
            options = prepare(spec) if prepare is not None else None
            values = parse(spec.values_raw, spec.type, name=spec.name, options=options if spec.type == "COMBO" else None)
        except (ParamSyntaxError, ValueError) as exc:
            message = str(exc)
            if not message.startswith("parameter "):
                message = f'parameter "{spec.name}": {message}'
            outcomes.append(AxisOutcome(spec, None, ParameterError(spec.node_id, spec.name, message)))
            continue
        names.add(spec.name)
        outcomes.append(AxisOutcome(spec, Axis(name=spec.name, values=tuple(values), type=spec.type), None))

    axes = [o.axis for o in outcomes if o.axis is not None]
    if not axes:
        detail = "; ".join(o.error.message for o in outcomes if o.error is not None)
        return AxesPlan(settings, tuple(outcomes), None, f"no valid parameter remains: {detail}", True, 0)
    sizes = [len(axis.values) for axis in axes]
    uncapped = math.prod(sizes) if settings.mode == "matrix" else max(sizes)
    try:
        if settings.mode == "matrix":
            combinations = combination_engine.cartesian(axes, max_combinations=max_combinations)
        else:
            combinations = combination_engine.linear_zip(axes, cycle=settings.cycle, max_combinations=max_combinations)
    except (LimitExceededError, ParamSyntaxError, ValueError) as exc:
        return AxesPlan(settings, tuple(outcomes), None, str(exc), False, uncapped)
    return AxesPlan(settings, tuple(outcomes), combinations, None, False, uncapped)


def preview(
    body: Any,
    *,
    parse: ParseFn,
    max_combinations: int = DEFAULT_MAX_COMBINATIONS,
    grid_estimate: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """The iterator badge: what a Queue press would queue, planned by :func:`plan_axes` like the hook.

    Body: ``{"parameters": [{"name", "type", "values", "options"?, "node_id"?}], "mode"?,
    "unequal_lengths"?, "image_size"?: [w, h], "grid"?: {grid options}}`` (the iterator's widget names).

    Returns:
        ``{"count": prompts queued (0 when refused), "combinations": cells before the limit, "limit",
        "axes": [{"name", "count", "error"?}] one per body parameter, "errors": [{"param", "node_id",
        "message"}] (a refusal that is not a parameter's own error has ``param`` None), "refusal": the
        message the hook would show on the iterator or None, "grid"?: the grid estimate, or ``{"estimated":
        False, "warnings": [why]}`` above :data:`PREVIEW_GRID_MAX_LABELS` labels}``.

    Raises:
        ValueError: the body is not of that shape (HTTP 400).
    """
    if not isinstance(body, Mapping) or not isinstance(body.get("parameters"), list):
        raise ValueError('body must be a JSON object with a "parameters" list')
    try:
        settings = SweepSettings.from_inputs(body)
    except PlanError as exc:
        raise ValueError(str(exc)) from None
    specs = []
    for position, param in enumerate(body["parameters"]):
        if not isinstance(param, Mapping):
            raise ValueError(f"parameters[{position}] must be an object")
        node_id = param.get("node_id")
        specs.append(make_spec(
            str(node_id) if node_id is not None else str(position + 1),
            name=param.get("name"), type=param.get("type", "STRING"), values=param.get("values", ""),
        ))
    options_by_spec = {id(spec): _options(param) for spec, param in zip(specs, body["parameters"])}
    plan = plan_axes(specs, settings, parse=parse, prepare=lambda spec: options_by_spec[id(spec)],
                     max_combinations=max_combinations)

    axes_out: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for outcome, param in zip(plan.outcomes, body["parameters"]):
        if outcome.axis is not None:
            axes_out.append({"name": outcome.spec.name, "count": len(outcome.axis.values)})
        else:
            assert outcome.error is not None
            axes_out.append({"name": outcome.spec.name, "count": 0, "error": outcome.error.message})
            errors.append({"param": outcome.spec.name, "node_id": param.get("node_id"), "message": outcome.error.message})
    if plan.refusal is not None and not plan.nothing_valid:
        errors.append({"param": None, "node_id": None, "message": plan.refusal})
    result: dict[str, Any] = {
        "count": plan.count, "combinations": plan.uncapped, "limit": max_combinations,
        "axes": axes_out, "errors": errors, "refusal": plan.refusal,
    }
    labels = sum(len(axis.values) for axis in plan.axes)
    if plan.combinations is not None and grid_estimate is not None and labels > PREVIEW_GRID_MAX_LABELS:
        result["grid"] = {"estimated": False, "warnings": [
            f"grid size not estimated for {labels:,} labels (over {PREVIEW_GRID_MAX_LABELS:,}); it is checked when the sweep is queued"]}
    elif plan.combinations is not None and grid_estimate is not None:
        try:
            result["grid"] = grid_estimate(plan.axes, settings.mode, plan.count, body.get("image_size"), body.get("grid"))
        except Exception:  # the badge still shows the count without a grid estimate
            logger.exception("WI: grid preview failed")
    return result


def _options(param: Mapping[str, Any]) -> list[str] | None:
    options = param.get("options")
    return [str(o) for o in options] if isinstance(options, list) else None
