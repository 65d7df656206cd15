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

import itertools
import logging
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import combination_engine, parameter_parser
from .combination_engine import Axis, CombinationSet
from .errors import LimitExceededError, ParamSyntaxError, WIError
from .parameter_parser import DEFAULT_MAX_VALUES
from .values import format_label

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
    "LINKED_TYPE",
    "Member",
    "Prepared",
    "make_spec",
    "member_value",
    "plan_axes",
    "skipped_cells",
    "target_parts",
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
#: It may also return a :class:`Prepared` (texts of search/replace targets, bundle targets and their types).
PrepareFn = Callable[["ParameterSpec"], "Sequence[str] | Prepared | None"]


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
    #: The iterator's exclusion list (``parameter_parser.parse_skip_rules``): cells it matches are skipped.
    skip: str = ""

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
            skip=str(inputs.get("skip", "") or ""),
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
    #: Link group: parameters with the same non-empty group advance together (one grid axis).
    link: str = ""


def target_parts(text: str) -> list[str]:
    """``"KSampler.cfg; 12.seed"`` -> ["KSampler.cfg", "12.seed"] (``;`` or new lines separate targets)."""
    parts = [part.strip() for part in str(text).replace("\n", ";").split(";")]
    return [part for part in parts if part]


def make_spec(
    node_id: str, *, class_type: str = "", name: Any = "", title: str = "", type: Any = "STRING",
    values: Any = "", target: Any = "", link: Any = "",
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
        link=str(link if link is not None else "").strip(),
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


#: The type of an axis made of linked parameters (its values are ``{parameter name: value}``).
LINKED_TYPE = "LINKED"


@dataclass(frozen=True)
class Prepared:
    """What only the caller knows about where one parameter's value goes (see :data:`PrepareFn`).

    Attributes:
        options: COMBO options of the input it feeds (None: unknown).
        texts: PROMPT_SR: ``(where, text)`` of each target input; a None text is not checked.
        keys: BUNDLE: the targets, in order (default: the ``target`` field's parts).
        key_types: BUNDLE: ``{target: (type, options)}`` of the inputs, when known.
    """

    options: tuple[str, ...] | None = None
    texts: tuple[tuple[str, str | None], ...] | None = None
    keys: tuple[str, ...] = ()
    key_types: Mapping[str, tuple[str | None, tuple[str, ...] | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class Member:
    """One valid parameter inside its axis: its values, custom labels (bundles), and how it applies.

    Attributes:
        spec: The parameter.
        values: Its values; a bundle's are ``{target: value}`` dicts.
        labels: Display labels when not the formatter's (a bundle's preset names), else None.
        search: PROMPT_SR: the text its values replace (its first value).
        keys: BUNDLE: the targets its values set.
        position: Its place in the chain (search/replace parameters apply in this order).
        random: Some value holds a ``{~a|b}`` random pick, resolved per cell from the batch's seed.
    """

    spec: ParameterSpec
    values: tuple[Any, ...]
    labels: tuple[str, ...] | None = None
    search: str | None = None
    keys: tuple[str, ...] = ()
    position: int = 0
    random: bool = False

    def label(self, index: int) -> str:
        if self.labels is not None:
            return self.labels[index]
        return format_label(self.values[index], self.spec.type)


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
        grid_axes: The axes the cells combine (one per link group), aligned with ``members``.
        members: Per axis, its parameters.
        skipped_cells: Cell indices the skip list removes (they never run).
    """

    settings: SweepSettings
    outcomes: tuple[AxisOutcome, ...]
    combinations: CombinationSet | None
    refusal: str | None
    nothing_valid: bool
    uncapped: int
    grid_axes: tuple[Axis, ...] = ()
    members: tuple[tuple[Member, ...], ...] = ()
    skipped_cells: frozenset[int] = frozenset()

    @property
    def axes(self) -> tuple[Axis, ...]:
        return self.grid_axes

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
        """Prompts a Queue press queues: the cells not skipped, or 0 when refused."""
        return 0 if self.combinations is None else len(self.combinations) - len(self.skipped_cells)


def plan_axes(
    specs: Sequence[ParameterSpec],
    settings: SweepSettings,
    *,
    parse: ParseFn,
    prepare: PrepareFn | None = None,
    max_combinations: int = DEFAULT_MAX_COMBINATIONS,
) -> AxesPlan:
    """Parse every parameter, skip (and report) the bad ones, and combine the rest. Never raises for bad input.

    Parameters sharing a ``link`` group become one axis whose values advance together (its labels join the
    members' labels with " / "); axes combine by the iterator's mode; the iterator's ``skip`` list marks the
    cells it matches as skipped (they keep their index and grid slot, but never run).

    Args:
        specs: The parameters in chain order (the first varies slowest).
        settings: Mode, unequal-length rule and skip list.
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
    members: list[Member] = []
    names: set[str] = set()
    for position, spec in enumerate(specs):
        try:
            if spec.name in names:
                raise ValueError(f'another parameter is already named "{spec.name}"; names label the grid axes and must differ')
            prepared = _prepared(prepare(spec) if prepare is not None else None)
            member = _member(spec, position, prepared, parse)
        except (ParamSyntaxError, ValueError) as exc:
            message = str(exc)
            if not message.startswith("parameter "):
                message = f'parameter "{spec.name}": {message}'
            outcomes.append(AxisOutcome(spec, None, ParameterError(spec.node_id, spec.name, message)))
            continue
        names.add(spec.name)
        members.append(member)
        own_axis = Axis(name=spec.name, values=member.values, type=spec.type, labels=member.labels)
        outcomes.append(AxisOutcome(spec, own_axis, None))

    if not members:
        detail = "; ".join(o.error.message for o in outcomes if o.error is not None)
        return AxesPlan(settings, tuple(outcomes), None, f"no valid parameter remains: {detail}", True, 0)
    try:
        groups = _link_groups(members, cycle=settings.cycle)
    except ValueError as exc:
        return AxesPlan(settings, tuple(outcomes), None, str(exc), False, 0)
    axes = tuple(_group_axis(group) for group in groups)
    sizes = [len(axis.values) for axis in axes]
    uncapped = math.prod(sizes) if settings.mode == "matrix" else max(sizes)
    try:
        if settings.mode == "matrix":
            combinations = combination_engine.cartesian(axes, max_combinations=max_combinations)
        else:
            combinations = combination_engine.linear_zip(axes, cycle=settings.cycle, max_combinations=max_combinations)
    except (LimitExceededError, ParamSyntaxError, ValueError) as exc:
        return AxesPlan(settings, tuple(outcomes), None, str(exc), False, uncapped)
    group_members = tuple(tuple(group) for group in groups)
    invalid = frozenset(o.spec.name for o in outcomes if o.axis is None)
    try:
        skipped = skipped_cells(settings.skip, group_members, combinations, invalid=invalid)
    except (ParamSyntaxError, ValueError) as exc:
        return AxesPlan(settings, tuple(outcomes), None, str(exc), False, uncapped, axes, group_members)
    if len(skipped) == len(combinations):
        refusal = f"the skip list skips all {len(combinations):,} combinations; nothing is left to run"
        return AxesPlan(settings, tuple(outcomes), None, refusal, False, uncapped, axes, group_members, skipped)
    return AxesPlan(settings, tuple(outcomes), combinations, None, False, uncapped, axes, group_members, skipped)


def _prepared(found: Any) -> Prepared:
    if isinstance(found, Prepared):
        return found
    return Prepared(options=None if found is None else tuple(str(o) for o in found))


def _member(spec: ParameterSpec, position: int, prepared: Prepared, parse: ParseFn) -> Member:
    """One parameter's values, typed and checked against what the caller knows of its targets."""
    if spec.type == "BUNDLE":
        presets = parse(spec.values_raw, spec.type, name=spec.name, options=None)
        values = tuple(_bundle_value(spec, preset, prepared) for preset in presets)
        return Member(spec, values, tuple(preset.label for preset in presets), position=position,
                      keys=_bundle_keys(spec, prepared))
    options = prepared.options if spec.type == "COMBO" else None
    values = tuple(parse(spec.values_raw, spec.type, name=spec.name, options=options))
    random_pick = spec.type in parameter_parser.TEXT_TYPES and any(parameter_parser.has_random_choices(v) for v in values)
    if spec.type != "PROMPT_SR":
        return Member(spec, values, None, position=position, random=random_pick)
    search = str(values[0])
    if not search:
        raise ValueError("the first value is the text to find; it must not be empty")
    if parameter_parser.has_random_choices(search):
        raise ValueError(f'the first value is the text to find; "{search}" cannot hold a random pick {{~...}}')
    for where, text in prepared.texts or ():
        if text is not None and search not in text:
            shown = text if len(text) <= 60 else text[:57] + "..."
            raise ValueError(f'search text "{search}" is not in the text of {where} ("{shown}"); '
                             "the first value must appear in the target text")
    return Member(spec, values, None, search=search, position=position, random=random_pick)


def _bundle_keys(spec: ParameterSpec, prepared: Prepared) -> tuple[str, ...]:
    keys = prepared.keys or tuple(target_parts(spec.target))
    if not keys:
        raise ValueError("a bundle needs its inputs in 'target', e.g. 'EmptyLatentImage.width; EmptyLatentImage.height'")
    return keys


def _bundle_value(spec: ParameterSpec, preset: Any, prepared: Prepared) -> dict[str, Any]:
    """``{target: typed value}`` of one preset: keys matched to the targets, values checked by their inputs."""
    keys = _bundle_keys(spec, prepared)
    positional = [text for key, text in preset.assignments if key is None]
    if positional and len(positional) != len(keys):
        raise ValueError(f'"{preset.label}" gives {len(positional)} values for {len(keys)} targets ({", ".join(keys)})')
    assigned: dict[str, Any] = {}
    for number, (key, text) in enumerate(preset.assignments):
        targets = [keys[number]] if key is None else _keys_named(key, keys)
        if not targets:
            raise ValueError(f'preset "{preset.label}": unknown input "{key}"; the targets are {", ".join(keys)}')
        for target in targets:
            kind, options = prepared.key_types.get(target, (None, None))
            try:
                assigned[target] = _typed(text, kind, options)
            except ParamSyntaxError as exc:
                raise ValueError(f'preset "{preset.label}": {target}={text}: {exc.message}') from None
    return {key: assigned[key] for key in keys if key in assigned}


def _keys_named(key: str, keys: Sequence[str]) -> list[str]:
    """The targets a preset key names: the target itself, else every target whose input name it is."""
    if key in keys:
        return [key]
    return [target for target in keys if target.rpartition(".")[2].strip() == key]


_INT_TEXT = re.compile(r"[+-]?\d+")


def _typed(text: str, kind: str | None, options: Sequence[str] | None) -> Any:
    """A bundle value of an input of type ``kind`` (None: unknown, so a number stays a number)."""
    if kind is None:
        if _INT_TEXT.fullmatch(text):
            return int(text)
        try:
            number = float(text)
        except ValueError:
            return text
        return number if math.isfinite(number) else text
    return parameter_parser.convert_value(text, kind, options=options if kind == "COMBO" else None)


def _link_groups(members: Sequence[Member], *, cycle: bool) -> list[list[Member]]:
    """Members grouped by link (unlinked ones alone), in the order each group first appears in the chain.

    Raises:
        ValueError: a group with lists of unequal length when ``unequal_lengths`` is ``error``.
    """
    groups: dict[str, list[Member]] = {}
    order: list[list[Member]] = []
    for member in members:
        link = member.spec.link
        if not link:
            order.append([member])
        elif link in groups:
            groups[link].append(member)
        else:
            groups[link] = [member]
            order.append(groups[link])
    if not cycle:
        for link, group in groups.items():
            lengths = {len(m.values) for m in group}
            if len(lengths) > 1:
                listing = ", ".join(f"{m.spec.name}={len(m.values)}" for m in group)
                raise ValueError(f'link group "{link}" needs lists of equal length (unequal_lengths is "error"), got {listing}')
    return order


def _group_axis(group: Sequence[Member]) -> Axis:
    """One axis per link group: a lone member's own values; linked members' values zipped (shorter ones
    cycle) into ``{parameter name: value}`` with labels joined by " / "."""
    if len(group) == 1:
        member = group[0]
        return Axis(name=member.spec.name, values=member.values, type=member.spec.type, labels=member.labels)
    length = max(len(m.values) for m in group)
    values = tuple({m.spec.name: m.values[i % len(m.values)] for m in group} for i in range(length))
    labels = tuple(" / ".join(m.label(i % len(m.values)) for m in group) for i in range(length))
    return Axis(name=" / ".join(m.spec.name for m in group), values=values, type=LINKED_TYPE, labels=labels)


def member_value(group: Sequence[Member], member: Member, axis_value: Any) -> Any:
    """A member's own value inside its axis's value (the axis value itself unless the axis is a link group)."""
    return axis_value[member.spec.name] if len(group) > 1 else axis_value


def skipped_cells(skip: str, groups: Sequence[Sequence[Member]], combinations: CombinationSet, *,
                  invalid: frozenset[str] = frozenset()) -> frozenset[int]:
    """The cells the iterator's skip list removes (see ``parameter_parser.parse_skip_rules``).

    A condition ``name=value`` holds for a cell when that parameter's value there has the label ``value``,
    or is ``value`` (numbers compared as numbers, so ``cfg=8`` matches 8.0). O(skipped cells) in matrix mode.

    Raises:
        ParamSyntaxError: a malformed rule. ValueError: a rule naming no parameter (or one in ``invalid``,
            skipped for its own error), or a value the parameter never takes (the message names the rule).
    """
    rules = parameter_parser.parse_skip_rules(skip)
    if not rules:
        return frozenset()
    where: dict[str, tuple[int, Member]] = {}
    for axis_index, group in enumerate(groups):
        for member in group:
            where[member.spec.name] = (axis_index, member)
    sizes = [len(axis.values) for axis in combinations.axes]
    skipped: set[int] = set()
    for rule in rules:
        allowed: dict[int, set[int]] = {}
        for name, text in rule.conditions:
            if name in invalid and name not in where:
                raise ValueError(f'skip rule {rule.line} "{rule.text}": parameter "{name}" was skipped for its own error; '
                                 "fix it or remove the rule")
            if name not in where:
                known = ", ".join(f'"{n}"' for n in where)
                raise ValueError(f'skip rule {rule.line} "{rule.text}": no parameter is named "{name}" (parameters: {known})')
            axis_index, member = where[name]
            own = [i for i in range(len(member.values)) if _value_matches(member, i, text)]
            if not own:
                raise ValueError(f'skip rule {rule.line} "{rule.text}": parameter "{name}" has no value "{text}"')
            own_set = set(own)
            positions = {p for p in range(sizes[axis_index]) if p % len(member.values) in own_set}
            allowed[axis_index] = allowed[axis_index] & positions if axis_index in allowed else positions
        if combinations.mode == "matrix":
            pools = [sorted(allowed[i]) if i in allowed else range(size) for i, size in enumerate(sizes)]
            skipped.update(combinations.index_of(coords) for coords in itertools.product(*pools))
        else:
            for index in range(len(combinations)):
                coords = combinations.coords_of(index)
                if all(coords[i] in positions for i, positions in allowed.items()):
                    skipped.add(index)
    return frozenset(skipped)


def _value_matches(member: Member, position: int, text: str) -> bool:
    value = member.values[position]
    if member.label(position) == text or (not isinstance(value, dict) and str(value) == text):
        return True
    if isinstance(value, bool):
        return text.lower() in (("true", "yes", "on", "1") if value else ("false", "no", "off", "0"))
    if isinstance(value, (int, float)):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    return False


def preview(
    body: Any,
    *,
    parse: ParseFn,
    max_combinations: int = DEFAULT_MAX_COMBINATIONS,
    grid_estimate: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """The iterator badge: what a Queue press would queue, planned by :func:`plan_axes` like the hook.

    Body: ``{"parameters": [{"name", "type", "values", "options"?, "node_id"?, "link"?, "target"?,
    "texts"?: [target text...]}], "mode"?, "unequal_lengths"?, "skip"?, "image_size"?: [w, h],
    "grid"?: {grid options}}`` (the iterator's and parameters' widget names; ``texts`` are the texts a
    search/replace parameter's targets hold, checked like the hook checks them).

    Returns:
        ``{"count": prompts queued (0 when refused; skipped cells not counted), "skipped": cells the skip
        list removes, "combinations": cells before the limit, "limit",
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
            target=param.get("target", ""), link=param.get("link", ""),
        ))
    prepared = {id(spec): _preview_prepared(param) for spec, param in zip(specs, body["parameters"])}
    plan = plan_axes(specs, settings, parse=parse, prepare=lambda spec: prepared[id(spec)],
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
        "count": plan.count, "skipped": len(plan.skipped_cells), "combinations": plan.uncapped, "limit": max_combinations,
        "axes": axes_out, "errors": errors, "refusal": plan.refusal,
    }
    labels = sum(len(axis.values) for axis in plan.axes)
    if plan.combinations is not None and grid_estimate is not None and labels > PREVIEW_GRID_MAX_LABELS:
        result["grid"] = {"estimated": False, "warnings": [
            f"grid size not estimated for {labels:,} labels (over {PREVIEW_GRID_MAX_LABELS:,}); it is checked when the sweep is queued"]}
    elif plan.combinations is not None and grid_estimate is not None:
        try:
            # Every cell keeps its slot, skipped ones included: the grid is the size of all the combinations.
            result["grid"] = grid_estimate(plan.axes, settings.mode, len(plan.combinations), body.get("image_size"), body.get("grid"))
        except Exception:  # the badge still shows the count without a grid estimate
            logger.exception("WI: grid preview failed")
    return result


def _preview_prepared(param: Mapping[str, Any]) -> Prepared:
    texts = param.get("texts")
    return Prepared(
        options=None if _options(param) is None else tuple(_options(param) or ()),
        texts=tuple((f"target {i + 1}", str(t)) for i, t in enumerate(texts) if isinstance(t, str))
        if isinstance(texts, list) else None,
    )


def _options(param: Mapping[str, Any]) -> list[str] | None:
    options = param.get("options")
    return [str(o) for o in options] if isinstance(options, list) else None
