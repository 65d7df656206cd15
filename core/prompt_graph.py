"""Pure planning over ComfyUI API-format prompts: from a submitted prompt to one prompt per sweep cell.

Owns: finding the enabled ``WIIterator``, walking its chain of ``WIParameter*`` nodes, resolving where each
parameter's value goes (inputs wired to the parameter's value output, and named targets such as
``KSampler.cfg``), parsing every parameter (all errors collected, bad parameters skipped), expanding the
combinations, and building each cell's prompt, PNG-info marker and workflow.

It never mutates the prompt it is given: ComfyUI keeps the handler's input when a handler raises, so a
half-edited prompt must never exist. Cell prompts are built from one private template by copying only what
ComfyUI may write into (see :meth:`SweepPlan.cell_prompt`), at a small fraction of ``copy.deepcopy``'s cost.

Plain Python: must not import torch, comfy*, server, nodes, execution, folder_paths, comfy_execution, aiohttp.
"""
from __future__ import annotations

import copy
import csv
import functools
import io
import json
import logging
import random
from dataclasses import dataclass, field
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeGuard, overload

from . import combination_engine, parameter_parser
from .combination_engine import DEFAULT_MAX_COMBINATIONS, Axis, Combination, CombinationSet
# Re-exported: these moved to the planner, which the badge's preview shares with plan_sweep.
from .planner import ParameterError as ParameterError
from .planner import ParameterSpec as ParameterSpec
from .planner import PlanError as PlanError
from .planner import Member, Prepared, SweepSettings, make_spec, plan_axes, target_parts
from .values import json_value, value_text

logger = logging.getLogger(__name__)

ITERATOR_CLASS = "WIIterator"
GRID_CLASS = "WIGridCompositor"
SAVE_CLASS = "WISaveImage"
PLAN_ERROR_CLASS = "WIPlanError"

#: Parameter node classes and the value type each implies (None: read from the node's ``type`` widget).
PARAMETER_CLASSES: dict[str, str | None] = {
    "WIParameter": None,
    "WIParameterInt": "INT",
    "WIParameterFloat": "FLOAT",
    "WIParameterString": "STRING",
    "WIParameterBoolean": "BOOLEAN",
    "WIParameterCombo": "COMBO",
    "WIParameterSeed": "SEED",
    "WIParameterPromptSR": "PROMPT_SR",
    "WIParameterBundle": "BUNDLE",
}
#: Output slots of every parameter node: 0 = the growing stack, 1 = this parameter's value.
STACK_OUTPUT = 0
VALUE_OUTPUT = 1

#: Key under ``extra_data`` that marks a body this pack has already expanded (re-entry guard), and key
#: under ``extra_data["extra_pnginfo"]`` naming the cell (ComfyUI writes every extra_pnginfo key into PNGs).
REENTRY_KEY = "wi"
CELL_INFO_KEY = "wi_cell"


class SharedBlock(dict[str, Any]):
    """A JSON block of a queued cell's ``extra_data`` that nothing writes to (its ``extra_pnginfo``, with the
    ``wi_cell`` info and the UI workflow, and the re-entry mark): a deep copy shares it instead of copying it.

    ComfyUI deep-copies every queue item on its worker thread as the item starts, between two prompts; these
    blocks made a cell's copy take 39 µs against 24 µs for the same prompt posted directly (without a UI
    workflow, which both would copy again for every prompt). A JSON encoder sees a plain dict."""

    __slots__ = ()

    def __deepcopy__(self, memo: dict[int, Any]) -> "SharedBlock":
        return self

# Widget order of our own nodes in the UI workflow, so a cell's workflow can carry the cell's values.
_PARAM_WIDGETS_GENERIC = ("name", "type", "values", "target")
_PARAM_WIDGETS_TYPED = ("name", "values", "target")
#: Parameter classes whose cell value cannot be written back as a one-value list (a search/replace value
#: needs its search text first; a bundle's is a preset): their widgets stay as entered.
_NOT_REWRITTEN = ("WIParameterPromptSR", "WIParameterBundle")

ParseFn = Callable[..., list[Any]]
OptionsLookup = Callable[[str, str], "Sequence[str] | None"]


@dataclass(frozen=True)
class Site:
    """A node input that receives a parameter's value."""

    node_id: str
    input_name: str


@dataclass(frozen=True)
class Writer:
    """How one parameter puts its value into a cell's prompt.

    ``kind`` is ``"set"`` (the value replaces each site's input), ``"replace"`` (search/replace: ``search`` is
    replaced by the value inside each site's text, after every ``set``, in chain ``position`` order) or
    ``"bundle"`` (the value is ``{target: value}``; ``keyed`` gives each target's sites).
    """

    name: str
    node_id: str
    kind: str
    sites: tuple[Site, ...]
    search: str = ""
    keyed: tuple[tuple[str, tuple[Site, ...]], ...] = ()
    position: int = 0
    #: The values hold ``{~a|b}`` random picks: each cell resolves them (see :func:`cell_pick`).
    random: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "node_id": self.node_id, "kind": self.kind, "search": self.search,
                "position": self.position, "random": self.random,
                "sites": [[s.node_id, s.input_name] for s in self.sites],
                "keyed": [[key, [[s.node_id, s.input_name] for s in sites]] for key, sites in self.keyed]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Writer:
        return cls(
            name=str(data["name"]), node_id=str(data["node_id"]), kind=str(data["kind"]),
            sites=tuple(Site(str(n), str(i)) for n, i in data.get("sites", ())), search=str(data.get("search", "")),
            keyed=tuple((str(k), tuple(Site(str(n), str(i)) for n, i in sites)) for k, sites in data.get("keyed", ())),
            position=int(data.get("position", 0)), random=bool(data.get("random", False)),
        )


def cell_pick(text: Any, *, seed: int, index: int, name: str) -> Any:
    """A random-pick value resolved for one cell: the same batch seed, cell and parameter always give the same
    text (a resumed batch repeats it), different cells draw independently."""
    if not isinstance(text, str):
        return text
    return parameter_parser.resolve_random_choices(text, random.Random(f"{seed}:{index}:{name}"))


def write_values(prompt: dict[str, Any], writers: Sequence[Sequence[Writer]], values: Sequence[Any], *,
                 index: int = 0, seed: int = 0) -> None:
    """Write one cell's axis values into ``prompt``, whose nodes at the writers' sites are private copies.

    Plain values and bundles first, then search/replace in chain order: a replacement acts on the text
    the input holds after every other parameter wrote its value. Random picks are resolved for cell ``index``
    from the batch's ``seed``."""
    replacements: list[tuple[int, Writer, Any]] = []
    for axis_writers, value in zip(writers, values):
        linked = len(axis_writers) > 1
        for writer in axis_writers:
            own = value[writer.name] if linked else value
            if writer.random:
                own = cell_pick(own, seed=seed, index=index, name=writer.name)
            if writer.kind == "set":
                for site in writer.sites:
                    prompt[site.node_id]["inputs"][site.input_name] = own
            elif writer.kind == "bundle":
                for key, sites in writer.keyed:
                    if key in own:
                        for site in sites:
                            prompt[site.node_id]["inputs"][site.input_name] = own[key]
            else:
                replacements.append((writer.position, writer, own))
    for _, writer, own in sorted(replacements, key=lambda r: r[0]):
        for site in writer.sites:
            inputs = prompt[site.node_id]["inputs"]
            text = inputs.get(site.input_name)
            if isinstance(text, str):
                inputs[site.input_name] = text.replace(writer.search, str(own))


@dataclass
class SweepPlan:
    """Everything needed to queue a sweep; built once per submitted prompt."""

    iterator_id: str
    mode: str
    batch_name: str
    axes: tuple[Axis, ...]
    parameters: tuple[ParameterSpec, ...]
    sites: tuple[tuple[Site, ...], ...]
    combinations: CombinationSet
    errors: list[ParameterError] = field(default_factory=list)
    grid_node_id: str | None = None
    grid_options: dict[str, Any] = field(default_factory=dict)
    save_node_ids: tuple[str, ...] = ()
    template: dict[str, Any] = field(default_factory=dict)
    cache_friendly: bool = True
    #: Nodes every cell gets its own node and inputs dicts of (see cell_prompt); None: every node.
    private_nodes: frozenset[str] | None = None
    #: Per axis, how its parameters write their values (empty: each axis sets its ``sites``, as plans
    #: journaled before link groups, bundles and search/replace did).
    writers: tuple[tuple[Writer, ...], ...] = ()
    #: Cells the iterator's skip list removes: they keep their index but never run.
    skipped: frozenset[int] = frozenset()
    #: Seeds the per-cell random picks (``{~a|b}``); drawn once when planned and journaled with the plan.
    seed: int = 0

    def picks(self, combination: Combination) -> dict[str, Any]:
        """The random picks of one cell, by parameter name (empty without ``{~a|b}`` values)."""
        found: dict[str, Any] = {}
        for axis_writers, value in zip(self.writers, combination.values):
            for writer in axis_writers:
                if writer.random:
                    own = value[writer.name] if len(axis_writers) > 1 else value
                    found[writer.name] = cell_pick(own, seed=self.seed, index=combination.index, name=writer.name)
        return found

    @property
    def first_index(self) -> int:
        """The cell the Queue press submits: the first of the run order (0 unless the skip list removes it)."""
        if not self.skipped:
            return 0
        return next(iter(self.run_order()))

    @property
    def count(self) -> int:
        """Cells that run (the total minus the skipped)."""
        return self.total - len(self.skipped)

    @functools.cached_property
    def template_json(self) -> str:
        """The template as JSON (for the journal; built on first use, after the onprompt hook returned)."""
        # default=str: another pack's onprompt handler may have left a non-JSON literal in the prompt.
        return json.dumps(self.template, default=str)

    @property
    def total(self) -> int:
        return len(self.combinations)

    def to_json(self) -> dict[str, Any]:
        """Everything needed to rebuild the plan after a restart (stored in the batch journal)."""
        return {
            "iterator_id": self.iterator_id,
            "mode": self.mode,
            "batch_name": self.batch_name,
            "cycle": getattr(self.combinations, "cycle", True),
            "axes": [{"name": a.name, "type": a.type, "values": [json_ready(v) for v in a.values],
                      **({"labels": list(a.labels)} if a.labels is not None else {})} for a in self.axes],
            "writers": [[w.to_json() for w in axis_writers] for axis_writers in self.writers],
            "skipped": sorted(self.skipped),
            "seed": self.seed,
            "parameters": [vars(p) for p in self.parameters],
            "sites": [[[site.node_id, site.input_name] for site in axis_sites] for axis_sites in self.sites],
            "grid_node_id": self.grid_node_id,
            "grid_options": self.grid_options,
            "save_node_ids": list(self.save_node_ids),
            "template_json": self.template_json,
            "cache_friendly": self.cache_friendly,
            "private_nodes": None if self.private_nodes is None else sorted(self.private_nodes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, max_combinations: int = DEFAULT_MAX_COMBINATIONS) -> SweepPlan:
        axes = tuple(Axis(name=a["name"], values=tuple(a["values"]), type=a.get("type", "STRING"), labels=a.get("labels"))
                     for a in data["axes"])
        if data["mode"] == "matrix":
            combinations = combination_engine.cartesian(axes, max_combinations=max_combinations)
        else:
            combinations = combination_engine.linear_zip(axes, cycle=bool(data.get("cycle", True)), max_combinations=max_combinations)
        return cls(
            iterator_id=str(data["iterator_id"]),
            mode=str(data["mode"]),
            batch_name=str(data["batch_name"]),
            axes=axes,
            parameters=tuple(ParameterSpec(**p) for p in data.get("parameters", ())),
            sites=tuple(tuple(Site(str(n), str(i)) for n, i in axis_sites) for axis_sites in data["sites"]),
            combinations=combinations,
            grid_node_id=data.get("grid_node_id"),
            grid_options=dict(data.get("grid_options") or {}),
            save_node_ids=tuple(data.get("save_node_ids") or ()),
            template=json.loads(str(data["template_json"])),
            cache_friendly=bool(data.get("cache_friendly", True)),
            # Journals written before this field existed rebuild every node per cell (always safe).
            private_nodes=None if data.get("private_nodes") is None else frozenset(str(n) for n in data["private_nodes"]),
            writers=tuple(tuple(Writer.from_json(w) for w in axis_writers) for axis_writers in data.get("writers") or ()),
            skipped=frozenset(int(i) for i in data.get("skipped") or ()),
            seed=int(data.get("seed") or 0),
        )

    def cell_prompt(self, combination: Combination, *, isolated: bool = False) -> dict[str, Any]:
        """A fresh prompt dict for one cell (combination values written into every site).

        What ComfyUI writes into a queued prompt (0.3.x ``execution.py``): validation replaces ``inputs[x]``
        with its coerced value (the same value for every cell, as those inputs do not vary) and unwraps
        ``{"__value__": ...}`` literals in place; the executor memoises ``node["is_changed"]`` for classes with
        ``IS_CHANGED`` / ``fingerprint_inputs``. So a cell owns the node and inputs dicts of
        :attr:`private_nodes` (the nodes receiving swept values, nodes of those classes or of unknown classes,
        nodes with dict literals) and shares every other node dict with the template and the other cells;
        link lists, ``_meta`` and nested literals are shared read-only. That copy is one small dict per
        private node instead of a deep copy of the whole tree, which keeps both the copy and the garbage
        collector's work per queued cell small.

        ``isolated=True`` gives every node its own dicts (the submitted cell, which other ``onprompt``
        handlers of other packs may still edit in place).
        """
        template, well_formed = self._template
        if not well_formed:
            prompt = copy.deepcopy(template)
        elif isolated or self.private_nodes is None:
            prompt = {node_id: {**node, "inputs": node["inputs"].copy()} for node_id, node in template.items()}
        else:
            prompt = template.copy()
            for node_id in self.private_nodes:
                node = template.get(node_id)
                if node is not None:  # None: a declaration left out of the cells (unread_declarations)
                    prompt[node_id] = {**node, "inputs": node["inputs"].copy()}
        if not self._plain:
            write_values(prompt, self.writers, combination.values, index=combination.index, seed=self.seed)
            return prompt
        for axis_sites, value in zip(self.sites, combination.values):
            for site in axis_sites:
                prompt[site.node_id]["inputs"][site.input_name] = value
        return prompt

    def cell_info(self, batch_id: str, combination: Combination, batch_part: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The compact block naming the cell: stored in PNG metadata and used as the re-entry marker.

        ``batch_part`` is :meth:`batch_info` of the same batch, when the caller builds many cells' blocks.
        """
        if batch_part is None:
            batch_part = self.batch_info(batch_id)
        json_values = self._json_axis_values
        info = {
            **batch_part,
            "index": combination.index,
            "coords": list(combination.coords),
            "values": {name: values[c] for (name, values), c in zip(json_values, combination.coords)},
        }
        if self._has_random:
            info["picks"] = self.picks(combination)  # what this cell's {~a|b} values resolved to
        return info

    # The cached properties below are read once per queued cell, on the feeder's hot path: each is decided
    # once per plan (a plan's fields are not changed after it is built).
    @functools.cached_property
    def _plain(self) -> bool:
        """Every axis is one parameter whose value goes as it is into its sites: the feeder's hot path then
        skips the writers (no per-cell list or sort), as before link groups, bundles and search/replace."""
        return all(len(ws) == 1 and ws[0].kind == "set" and not ws[0].random for ws in self.writers)

    @functools.cached_property
    def _has_random(self) -> bool:
        """Some parameter has ``{~a|b}`` values: each cell's info then names its picks."""
        return any(writer.random for axis_writers in self.writers for writer in axis_writers)

    @functools.cached_property
    def _json_axis_values(self) -> tuple[tuple[str, tuple[Any, ...]], ...]:
        """Each axis value's JSON form, converted once per plan instead of once per queued cell."""
        return tuple((axis.name, tuple(json_ready(v) for v in axis.values)) for axis in self.axes)

    def batch_info(self, batch_id: str) -> dict[str, Any]:
        """The part of every cell's :meth:`cell_info` that is the same for the whole batch."""
        return {
            "batch_id": batch_id,
            "total": self.total,
            "mode": self.mode,
            "axes": [axis.name for axis in self.axes],
            # Aligned with the axes (the save node pairs them with the cell's values to rewrite the workflow):
            # "" where an axis is not one plain parameter (a link group, a bundle, a search/replace).
            "parameter_nodes": self._axis_parameter_nodes(),
        }

    def _axis_parameter_nodes(self) -> list[str]:
        if not self.writers:
            return [spec.node_id for spec in self.parameters]
        return [w[0].node_id if len(w) == 1 and w[0].kind == "set" else "" for w in self.writers]

    @functools.cached_property
    def _template(self) -> tuple[dict[str, Any], bool]:
        """The template the cells are copied from (its unread declarations left out) and whether every node
        is a dict with an inputs dict. Never mutated: cells get copies of what may be written into (see
        cell_prompt)."""
        unused = unread_declarations(self.template, self.iterator_id, self.sites)
        template = {node_id: node for node_id, node in self.template.items() if node_id not in unused}
        well_formed = all(type(n) is dict and type(n.get("inputs")) is dict for n in template.values())
        return template, well_formed

    @property
    def run_order_is_lazy(self) -> bool:
        """Whether :meth:`run_order` is lazy (a range or a nesting of the axes), so cheap to build anywhere."""
        return not self.skipped

    def run_order(self) -> Sequence[int]:
        """Cell indices in the order to run them (lazy): see :func:`cache_friendly_order`. Skipped cells are
        left out (a list then: O(cells), built off the server loop by the feeder's start)."""
        order = range(self.total) if not self.cache_friendly else cache_friendly_order(self.template, self.sites, self.combinations)
        if self.run_order_is_lazy:
            return order
        skipped = self.skipped
        return [index for index in order if index not in skipped]

    def image_size(self, combination: Combination | None = None) -> tuple[int, int] | None:
        """Best guess of a cell's image size from literal width/height inputs (for the grid pre-flight)."""
        template = self.template
        if combination is not None:
            template = dict(template)  # copies of the swept nodes only: the pre-flight asks this per cell
            if self.writers:
                for node_id in {site.node_id for axis_sites in self.sites for site in axis_sites}:
                    node = template[node_id]
                    template[node_id] = {**node, "inputs": dict(node_inputs(node))}
                write_values(template, self.writers, combination.values, index=combination.index, seed=self.seed)
                return guess_image_size(template)
            for axis_sites, value in zip(self.sites, combination.values):
                for site in axis_sites:
                    node = template[site.node_id]
                    template[site.node_id] = {**node, "inputs": {**node_inputs(node), site.input_name: value}}
        return guess_image_size(template)


#: The pack's one JSON converter (``core.values``); the old name stays for its many call sites.
json_ready = json_value


def _is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], (str, int))
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def _is_mapping(value: Any) -> TypeGuard[Mapping[str, Any]]:
    # Prompts are JSON, so nearly always plain dicts: skip the ABC check (these run per node in the hook).
    return type(value) is dict or isinstance(value, Mapping)


def node_inputs(node: Any) -> Mapping[str, Any]:
    """A node's inputs, or an empty mapping for malformed nodes (the hook sees whatever clients post)."""
    inputs = node.get("inputs") if _is_mapping(node) else None
    return inputs if _is_mapping(inputs) else {}


def _class(node: Any) -> str:
    class_type = node.get("class_type") if _is_mapping(node) else None
    return class_type if isinstance(class_type, str) else ""


def _node_title(node: Any) -> str:
    meta = node.get("_meta") if _is_mapping(node) else None
    title = meta.get("title") if _is_mapping(meta) else None
    return title if isinstance(title, str) else ""


def is_expanded(json_data: Mapping[str, Any]) -> bool:
    """True for a body this pack produced or already expanded (so the hook never expands twice)."""
    extra = json_data.get("extra_data")
    return isinstance(extra, Mapping) and REENTRY_KEY in extra


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def find_enabled_iterator(prompt: Mapping[str, Any]) -> str | None:
    """Id of the enabled ``WIIterator`` in the prompt, or None when there is none.

    Raises:
        PlanError: when more than one iterator is enabled (which one should win is not ours to guess).
    """
    enabled = [
        str(node_id)
        for node_id, node in prompt.items()
        if _is_mapping(node)
        and _class(node) == ITERATOR_CLASS
        and _truthy(node_inputs(node).get("enabled", True))
    ]
    if len(enabled) > 1:
        raise PlanError(f"only one WIIterator may be enabled per workflow; found {len(enabled)} (nodes {', '.join(sorted(enabled))})")
    return enabled[0] if enabled else None


def unread_declarations(template: Mapping[str, Any], iterator_id: str,
                        sites: Sequence[Sequence[Site]]) -> frozenset[str]:
    """The iterator and the parameter nodes that no other node of a cell reads once its values are written.

    ComfyUI never executes them (WIIterator is no output node; a parameter feeds only the chain and the inputs
    its values replace), yet its queue deep-copies every node of a queued item on the worker thread between two
    prompts, and a cell's saved prompt re-runs exactly that cell without them. A parameter whose output is read
    elsewhere (as data, not at a swept input), or whose own inputs receive a value, stays, with what it reads."""
    written = {(site.node_id, site.input_name) for axis_sites in sites for site in axis_sites}
    declared = {node_id for node_id, node in template.items()
                if node_id == iterator_id or _class(node) in PARAMETER_CLASSES}
    needed = {node_id for node_id, _ in written if node_id in declared}
    for node_id, node in template.items():
        if node_id in declared:
            continue
        for name, value in node_inputs(node).items():
            # Cheap tests first: most inputs are literals, and this runs inside the onprompt hook.
            if (type(value) is list and len(value) == 2 and str(value[0]) in declared and _is_link(value)
                    and (node_id, name) not in written):
                needed.add(str(value[0]))
    pending = list(needed)
    while pending:  # what a needed declaration reads is needed too
        for value in node_inputs(template.get(pending.pop())).values():
            source = str(value[0]) if _is_link(value) else None
            if source in declared and source not in needed:
                needed.add(source)
                pending.append(source)
    return frozenset(declared - needed)


def collect_parameters(prompt: Mapping[str, Any], iterator_id: str) -> list[ParameterSpec]:
    """The iterator's parameter chain, first-connected parameter first (it becomes axis 0, the slowest)."""
    link = node_inputs(prompt[iterator_id]).get("parameters")
    chain: list[ParameterSpec] = []
    seen: set[str] = set()
    while link is not None:
        if not _is_link(link):
            raise PlanError(f"WIIterator {iterator_id}: 'parameters' must be connected to a WIParameter node")
        node_id = str(link[0])
        if node_id in seen:
            raise PlanError(f"parameter chain has a cycle at node {node_id}")
        seen.add(node_id)
        node = prompt.get(node_id)
        if _class(node) not in PARAMETER_CLASSES:
            raise PlanError(f"node {node_id} in the parameter chain is not a WIParameter node")
        if link[1] != STACK_OUTPUT:
            raise PlanError(f"node {node_id}: connect its 'parameters' output (not 'value') to the next node in the chain")
        inputs = node_inputs(node)
        implied = PARAMETER_CLASSES[_class(node)]
        chain.append(make_spec(
            node_id, class_type=_class(node), name=inputs.get("name", ""), title=_node_title(node),
            type=implied or inputs.get("type", "STRING"), values=inputs.get("values", ""), target=inputs.get("target", ""),
            link=inputs.get("link", ""),
        ))
        link = inputs.get("previous")
    chain.reverse()
    return chain


_TARGET_FORM = "'node title or id.input name', e.g. 'KSampler.cfg'"


_target_parts = target_parts  # the planner owns the rule (the badge's preview reads bundle targets with it)


def _nodes_named(prompt: Mapping[str, Any], node_ref: str) -> list[str]:
    """A node id first, else every node with that title, else every node of that class."""
    if node_ref in prompt:
        return [node_ref]
    matches = [str(i) for i, n in prompt.items() if isinstance(n, Mapping) and _node_title(n) == node_ref]
    return matches or [str(i) for i, n in prompt.items() if _class(n) == node_ref]


def resolve_target(prompt: Mapping[str, Any], part: str) -> list[Site]:
    """The inputs one target names, resolved against the nodes' actual input names.

    Input names may contain dots (V3 dynamic inputs: ``resize_type.multiplier``, ``images.image0``) and so
    may titles, so the target is split at each dot from the left, that is the longest input name first; the
    first split whose node reference names nodes that all have that input wins.

    Raises:
        ValueError: no split names a node with that input (the message says what was missing).
    """
    missing_input: str | None = None
    position = part.find(".")
    while position != -1:
        node_ref, input_name = part[:position].strip().lstrip("#"), part[position + 1:].strip()
        position = part.find(".", position + 1)
        if not node_ref or not input_name:
            continue
        matches = _nodes_named(prompt, node_ref)
        lacking = [n for n in matches if input_name not in node_inputs(prompt[n])]
        if matches and not lacking:
            return [Site(node_id, input_name) for node_id in matches]
        if lacking and missing_input is None:
            node = prompt[lacking[0]]
            missing_input = f"target {node_ref}.{input_name}: node {lacking[0]} ({_class(node) or '?'}) has no input {input_name!r}"
    if missing_input is not None:
        raise ValueError(missing_input)
    node_ref, dot, input_name = part.rpartition(".")
    if not dot or not node_ref.strip().lstrip("#") or not input_name.strip():
        raise ValueError(f"target {part!r} must look like {_TARGET_FORM}")
    node_ref = node_ref.strip().lstrip("#")
    raise ValueError(f"target {node_ref}.{input_name.strip()}: no node has the id, title or type {node_ref!r}")


def wired_sites(prompt: Mapping[str, Any], parameter_ids: set[str]) -> dict[str, list[Site]]:
    """Per parameter node id, the inputs wired to its value output, in prompt order (one pass for all)."""
    found: dict[str, list[Site]] = {}
    for node_id, node in prompt.items():
        for input_name, value in node_inputs(node).items():
            # Cheap tests first: most inputs are literals, and this runs inside the onprompt hook.
            if type(value) is list and len(value) == 2 and value[1] == VALUE_OUTPUT and _is_link(value):
                source = str(value[0])
                if source in parameter_ids:
                    found.setdefault(source, []).append(Site(str(node_id), input_name))
    return found


def resolve_sites(prompt: Mapping[str, Any], spec: ParameterSpec, wired: Mapping[str, Sequence[Site]] | None = None) -> tuple[Site, ...]:
    """Every input that receives ``spec``'s value: inputs wired to its value output, then named targets.

    A named target matches a node id first, else every node with that title, else every node of that class
    (see :func:`resolve_target` for dotted input names). ``wired`` is :func:`wired_sites` of the prompt when the caller resolves several parameters.

    Raises:
        ValueError: a target that names no node, or a node without that input.
    """
    if wired is None:
        wired = wired_sites(prompt, {spec.node_id})
    sites: list[Site] = list(wired.get(spec.node_id, ()))
    for part in _target_parts(spec.target):
        sites.extend(resolve_target(prompt, part))
    # One site may be both wired and named; keep the first of each.
    return tuple(dict.fromkeys(sites))


def _combo_options(prompt: Mapping[str, Any], sites: Sequence[Site], options_for: OptionsLookup | None) -> list[str] | None:
    if options_for is None:
        return None
    for site in sites:
        options = options_for(str(prompt[site.node_id].get("class_type")), site.input_name)
        if options is not None:
            return list(options)
    return None


def _find_grid_node(prompt: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    for node_id, node in prompt.items():
        if _class(node) == GRID_CLASS:
            inputs = node_inputs(node)
            return str(node_id), {k: v for k, v in inputs.items() if not _is_link(v)}
    return None, {}


def plan_sweep(
    prompt: Mapping[str, Any],
    iterator_id: str,
    *,
    parse: ParseFn,
    options_for: OptionsLookup | None = None,
    input_default: Callable[[str, str], Any] | None = None,
    node_is_written: Callable[[str], bool] | None = None,
    max_combinations: int = DEFAULT_MAX_COMBINATIONS,
) -> SweepPlan:
    """Parse every parameter, skip (and report) the bad ones, and expand the combinations.

    Args:
        prompt: The submitted API prompt (not modified).
        iterator_id: From :func:`find_enabled_iterator`.
        parse: ``parameter_parser.parse`` with the caller's roots and limits bound.
        options_for: ``(class_type, input_name) -> allowed options | None`` for COMBO checks and wildcards.
        input_default: ``(class_type, input_name) -> default value | None``: what a skipped parameter's wired
            inputs get.
        node_is_written: ``class_type -> bool``: whether ComfyUI stores per-run data in nodes of that class
            (True for unknown classes). Without it every cell copies every node.
        max_combinations: Batch limit, checked before anything is materialised.

    Raises:
        PlanError: nothing valid remains, or the chain or the combination count is unusable.
    """
    settings = SweepSettings.from_inputs(node_inputs(prompt[iterator_id]))
    specs = collect_parameters(prompt, iterator_id)
    wired = wired_sites(prompt, {spec.node_id for spec in specs})
    sites_of: dict[str, tuple[Site, ...]] = {}
    keyed_of: dict[str, tuple[tuple[str, tuple[Site, ...]], ...]] = {}
    written = _sites_written_by_parameters(prompt, specs, wired)

    def prepare(spec: ParameterSpec) -> Sequence[str] | Prepared | None:
        if spec.type == "BUNDLE":
            return _prepare_bundle(prompt, spec, wired, options_for, input_default, sites_of, keyed_of)
        spec_sites = resolve_sites(prompt, spec, wired)
        if not spec_sites:
            raise ValueError("its value goes nowhere: wire its 'value' output into an input, or set 'target' (e.g. KSampler.cfg)")
        sites_of[spec.node_id] = spec_sites
        if spec.type == "PROMPT_SR":
            if wired.get(spec.node_id):
                raise ValueError("search/replace edits the text of the inputs named in its 'target' "
                                 "(e.g. positive.text); leave its 'value' output unconnected")
            return Prepared(texts=tuple(_replace_text(prompt, site, written) for site in spec_sites))
        return _combo_options(prompt, spec_sites, options_for) if spec.type == "COMBO" else None

    # The same function the badge's preview calls: counts, errors and name rules cannot disagree.
    axes_plan = plan_axes(specs, settings, parse=parse, prepare=prepare, max_combinations=max_combinations)
    if axes_plan.nothing_valid or not specs:
        raise PlanError(axes_plan.refusal or "no valid parameter remains")
    errors = axes_plan.errors
    # A skipped parameter's wired inputs fall back to the input's own default, so its node (whose values do
    # not parse) never runs inside a cell; without a known default the sweep cannot honestly run.
    template = _with_skipped_defaults(prompt, axes_plan.skipped, input_default, errors)
    if axes_plan.combinations is None:
        raise PlanError(axes_plan.refusal or "the sweep cannot be planned")
    combinations = axes_plan.combinations
    kept = axes_plan.kept
    writers = tuple(tuple(_writer(member, sites_of, keyed_of) for member in group) for group in axes_plan.members)
    # Per axis, every input it writes (the cache-friendly order, private nodes and the size pre-flight read it).
    sites = [tuple(dict.fromkeys(site for writer in axis_writers for site in writer.sites)) for axis_writers in writers]
    mode, batch_name, cache_friendly = settings.mode, settings.batch_name, settings.cache_friendly
    axes = axes_plan.axes

    grid_node_id, grid_options = _find_grid_node(prompt)
    save_ids = tuple(str(i) for i, n in prompt.items() if _class(n) == SAVE_CLASS)
    return SweepPlan(
        iterator_id=iterator_id,
        mode=mode,
        batch_name=batch_name,
        axes=axes,
        parameters=kept,
        sites=tuple(sites),
        combinations=combinations,
        errors=errors,
        grid_node_id=grid_node_id,
        grid_options=grid_options,
        save_node_ids=save_ids,
        template=template,
        cache_friendly=cache_friendly,
        private_nodes=private_node_ids(template, sites, node_is_written),
        writers=writers,
        skipped=axes_plan.skipped_cells,
        # Only a sweep with random picks needs one; drawn here, once, and journaled, so a resume repeats them.
        seed=random.SystemRandom().randrange(2**32) if any(w.random for ws in writers for w in ws) else 0,
    )


def _writer(member: Member, sites_of: Mapping[str, tuple[Site, ...]],
            keyed_of: Mapping[str, tuple[tuple[str, tuple[Site, ...]], ...]]) -> Writer:
    spec = member.spec
    if spec.type == "BUNDLE":
        keyed = keyed_of[spec.node_id]
        every = tuple(dict.fromkeys(site for _, key_sites in keyed for site in key_sites))
        return Writer(spec.name, spec.node_id, "bundle", every, keyed=keyed, position=member.position)
    if spec.type == "PROMPT_SR":
        return Writer(spec.name, spec.node_id, "replace", sites_of[spec.node_id], search=member.search or "",
                      position=member.position, random=member.random)
    return Writer(spec.name, spec.node_id, "set", sites_of[spec.node_id], position=member.position, random=member.random)


def _sites_written_by_parameters(prompt: Mapping[str, Any], specs: Sequence[ParameterSpec],
                                 wired: Mapping[str, Sequence[Site]]) -> set[Site]:
    """Inputs a plain parameter writes (wired or named): a search/replace there acts on that parameter's
    values, so the prompt's own text is not what it must find."""
    found = {site for sites in wired.values() for site in sites}
    for spec in specs:
        if spec.type in ("PROMPT_SR", "BUNDLE"):
            continue
        for part in _target_parts(spec.target):
            try:
                found.update(resolve_target(prompt, part))
            except ValueError:
                continue  # reported on that parameter itself
    return found


def _replace_text(prompt: Mapping[str, Any], site: Site, written: set[Site]) -> tuple[str, str | None]:
    """``(where, text)`` a search/replace target holds, for the planner's check (None: not checkable here).

    Raises:
        ValueError: the input holds no text (a link to another node, a number).
    """
    where = f"{site.node_id}.{site.input_name}"
    if site in written:
        return where, None
    value = node_inputs(prompt[site.node_id]).get(site.input_name)
    if not isinstance(value, str):
        shown = "a link to another node" if _is_link(value) else f"{type(value).__name__} {value!r}"
        raise ValueError(f"target {where} holds {shown}, not text; search/replace edits text written in the node")
    return where, value


def _prepare_bundle(
    prompt: Mapping[str, Any], spec: ParameterSpec, wired: Mapping[str, Sequence[Site]],
    options_for: OptionsLookup | None, input_default: Callable[[str, str], Any] | None,
    sites_of: dict[str, tuple[Site, ...]], keyed_of: dict[str, tuple[tuple[str, tuple[Site, ...]], ...]],
) -> Prepared:
    """A bundle's targets (each resolved like a ``target``) and the type of each input they name."""
    if wired.get(spec.node_id):
        raise ValueError("a bundle sets the inputs named in its 'target'; leave its 'value' output unconnected")
    keys = tuple(dict.fromkeys(_target_parts(spec.target)))
    if not keys:
        raise ValueError("a bundle needs its inputs in 'target', e.g. 'EmptyLatentImage.width; EmptyLatentImage.height'")
    keyed = tuple((key, tuple(resolve_target(prompt, key))) for key in keys)
    key_types: dict[str, tuple[str | None, tuple[str, ...] | None]] = {}
    for key, key_sites in keyed:
        key_types[key] = _input_type(prompt, key_sites[0], options_for, input_default)
    keyed_of[spec.node_id] = keyed
    sites_of[spec.node_id] = tuple(dict.fromkeys(site for _, key_sites in keyed for site in key_sites))
    return Prepared(keys=keys, key_types=key_types)


def _input_type(prompt: Mapping[str, Any], site: Site, options_for: OptionsLookup | None,
                input_default: Callable[[str, str], Any] | None) -> tuple[str | None, tuple[str, ...] | None]:
    """The value type of one input: COMBO with its options, else the type of its default, else of the
    literal it holds; (None, None) when nothing says (the bundle's value then keeps its own form)."""
    class_type = _class(prompt[site.node_id])
    options = options_for(class_type, site.input_name) if options_for is not None else None
    if options is not None:
        return "COMBO", tuple(str(o) for o in options)
    default = input_default(class_type, site.input_name) if input_default is not None else None
    literal = node_inputs(prompt[site.node_id]).get(site.input_name)
    for sample in (default, literal):
        if isinstance(sample, bool):
            return "BOOLEAN", None
        if isinstance(sample, int):
            return "INT", None
        if isinstance(sample, float):
            return "FLOAT", None
        if isinstance(sample, str):
            return "STRING", None
    return None, None


def _private_copy(prompt: Mapping[str, Any]) -> dict[str, Any]:
    """Node and inputs dicts of our own (nested literals shared: nothing writes into them)."""
    if all(type(n) is dict and type(n.get("inputs")) is dict for n in prompt.values()):
        return {node_id: {**node, "inputs": node["inputs"].copy()} for node_id, node in prompt.items()}
    return copy.deepcopy(dict(prompt))


def private_node_ids(
    template: Mapping[str, Any], sites: Sequence[Sequence[Site]], node_is_written: Callable[[str], bool] | None
) -> frozenset[str] | None:
    """The nodes each cell needs its own node and inputs dicts of (see :meth:`SweepPlan.cell_prompt`).

    Those receiving a swept value, those whose class ComfyUI memoises ``is_changed`` into (or whose class is
    unknown: ``node_is_written`` says), and those holding a dict literal (``{"__value__": ...}`` is unwrapped
    in place). None, meaning every node, without ``node_is_written`` or when a node is not a plain dict.
    """
    if node_is_written is None:
        return None
    private = {site.node_id for axis_sites in sites for site in axis_sites}
    written: dict[str, bool] = {}
    for node_id, node in template.items():
        inputs = node.get("inputs") if type(node) is dict else None
        if type(inputs) is not dict:
            return None
        if node_id in private:
            continue
        class_type = _class(node)
        if class_type not in written:
            written[class_type] = node_is_written(class_type)
        if written[class_type] or dict in map(type, inputs.values()):  # (in C: this runs per node in the hook)
            private.add(node_id)
    return frozenset(private)


#: Relative cost of re-running a node, by class-name fragment: loading weights dwarfs sampling, which dwarfs
#: image maths. Unknown nodes cost 1, so without loaders the count of invalidated nodes decides.
_NODE_COSTS = (("loader", 1000), ("load", 200), ("sampler", 50), ("encode", 5), ("decode", 5))


@functools.lru_cache(maxsize=1024)
def node_cost(class_type: str) -> int:
    name = class_type.lower()
    return next((cost for fragment, cost in _NODE_COSTS if fragment in name), 1)


def _consumers(prompt: Mapping[str, Any]) -> dict[str, set[str]]:
    """Per node id, the ids of the nodes reading one of its outputs."""
    consumers: dict[str, set[str]] = {}
    for node_id, node in prompt.items():
        for value in node_inputs(node).values():
            if type(value) is list and _is_link(value):
                consumers.setdefault(str(value[0]), set()).add(str(node_id))
    return consumers


def invalidated_nodes(prompt: Mapping[str, Any], sources: Sequence[str], consumers: Mapping[str, set[str]] | None = None) -> set[str]:
    """The nodes that must run again when ``sources`` change: themselves and everything downstream.

    ``consumers`` is ``_consumers(prompt)`` when the caller asks for several sets of sources.
    """
    if consumers is None:
        consumers = _consumers(prompt)
    seen: set[str] = set()
    stack = [str(s) for s in sources]
    while stack:
        node_id = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        stack.extend(consumers.get(node_id, ()))
    return seen


def axis_costs(prompt: Mapping[str, Any], sites: Sequence[Sequence[Site]]) -> list[int]:
    """Per axis: the summed cost of the nodes a change of its value makes ComfyUI re-run."""
    consumers = _consumers(prompt)
    return [
        sum(node_cost(_class(prompt[n])) for n in invalidated_nodes(prompt, [s.node_id for s in axis_sites], consumers) if n in prompt)
        for axis_sites in sites
    ]


class NestedOrder(Sequence[int]):
    """A matrix sweep's cells with the axes nested in another order, computed one position at a time.

    Position ``p`` written in the mixed radix of the axis sizes taken in ``nesting`` order (the first
    nesting axis slowest) gives each axis's coordinate; the cell is the user-order index of those
    coordinates. O(axes) per position and O(1) to build, so a 100,000-cell sweep never holds its order as a
    list on the server loop.
    """

    def __init__(self, combinations: CombinationSet, nesting: Sequence[int]) -> None:
        self._combinations = combinations
        self._nesting = tuple(nesting)
        self._sizes = tuple(len(axis.values) for axis in combinations.axes)
        self._length = len(combinations)

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, position: int) -> int: ...

    @overload
    def __getitem__(self, position: slice) -> list[int]: ...

    def __getitem__(self, position: int | slice) -> int | list[int]:
        if isinstance(position, slice):
            return [self[p] for p in range(*position.indices(self._length))]
        p = position + self._length if position < 0 else position
        if not 0 <= p < self._length:
            raise IndexError(f"run order position {position} out of range for {self._length} cells")
        coords = [0] * len(self._sizes)
        for axis in reversed(self._nesting):  # the last nesting axis varies fastest
            p, coords[axis] = divmod(p, self._sizes[axis])
        return self._combinations.index_of(coords)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(other) == self._length and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def cache_friendly_order(prompt: Mapping[str, Any], sites: Sequence[Sequence[Site]], combinations: CombinationSet) -> Sequence[int]:
    """The order to run a matrix sweep's cells so ComfyUI's cache re-runs expensive nodes least.

    ComfyUI reuses every node whose inputs did not change since the previous prompt, so the axis that
    invalidates the most expensive work (a checkpoint loader, say) should change least often: axes are
    nested by descending cost, ties keeping the user's order. Linear sweeps change every axis each cell and
    keep their order. Grids and manifests always use the user's order (cell index), never this one.

    Returns:
        A lazy sequence of cell indices (``range`` when the user's order is already the best).
    """
    total = len(combinations)
    if combinations.mode != "matrix" or len(sites) < 2:
        return range(total)
    costs = axis_costs(prompt, sites)
    nesting = sorted(range(len(sites)), key=lambda axis: -costs[axis])  # stable: ties keep user order
    if nesting == list(range(len(sites))):
        return range(total)
    return NestedOrder(combinations, nesting)


def _with_skipped_defaults(
    prompt: Mapping[str, Any],
    skipped: Sequence[ParameterSpec],
    input_default: Callable[[str, str], Any] | None,
    errors: list[ParameterError],
) -> dict[str, Any]:
    """A private copy of ``prompt`` with every input wired to a skipped parameter's value set to that input's
    default.

    Raises:
        PlanError: a wired input has no known default (the sweep would run with a broken node).
    """
    # Own node and inputs dicts, nested literals shared: a JSON round trip here copied every string of the
    # prompt (a skipped parameter's values text may be megabytes) inside the onprompt hook.
    template = _private_copy(prompt)
    if not skipped:
        return template
    for spec in skipped:
        for node_id, node in prompt.items():
            for input_name, value in node_inputs(node).items():
                if not (_is_link(value) and str(value[0]) == spec.node_id and value[1] == VALUE_OUTPUT):
                    continue
                default = input_default(_class(node), input_name) if input_default is not None else None
                if default is None:
                    raise PlanError(
                        f'parameter "{spec.name}" has invalid values and is wired into node {node_id}.{input_name}, '
                        f"which has no default to fall back to; fix the values ({_error_for(errors, spec)})"
                    )
                template[node_id]["inputs"][input_name] = default
                for error in errors:
                    if error.node_id == spec.node_id and "uses its default" not in error.message:
                        index = errors.index(error)
                        errors[index] = ParameterError(
                            error.node_id, error.name, f"{error.message} (skipped: {node_id}.{input_name} uses its default {default!r})"
                        )
    return template


def _error_for(errors: Sequence[ParameterError], spec: ParameterSpec) -> str:
    return next((e.message.splitlines()[0] for e in errors if e.node_id == spec.node_id), "invalid values")


def plan_error_prompt(prompt: Mapping[str, Any], iterator_id: str, message: str) -> dict[str, Any]:
    """A prompt that ComfyUI rejects with ``message`` attached to the iterator's node id.

    Only the error node is kept: ComfyUI runs a prompt as long as *one* output validates, so any other
    output left in would run unexpanded. The user sees the reason on the iterator and nothing is queued.
    """
    return {
        iterator_id: {
            "class_type": PLAN_ERROR_CLASS,
            "inputs": {"message": message},
            "_meta": {"title": _node_title(prompt.get(iterator_id, {})) or "WIIterator"},
        }
    }


def guess_image_size(prompt: Mapping[str, Any]) -> tuple[int, int] | None:
    """Width and height from the first node (by id) with literal integer ``width`` and ``height`` inputs."""

    def sort_key(node_id: str) -> tuple[int, str]:
        return (int(node_id), "") if str(node_id).isdigit() else (1 << 62, str(node_id))

    for node_id in sorted(prompt, key=sort_key):
        node = prompt[node_id]
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        if not isinstance(inputs, Mapping):
            continue
        width, height = inputs.get("width"), inputs.get("height")
        if isinstance(width, int) and isinstance(height, int) and not isinstance(width, bool) and width > 0 and height > 0:
            return width, height
    return None


def format_value(value: Any) -> str:
    """A single value written in the value syntax, so a parameter node holding it parses back to it.

    The rule is ``core.values.value_text`` (the viewer's "Sweep the winners" uses it too); text it refuses (a
    line break, which no parsed value holds) is still written quoted, and the parser then names the problem.
    """
    try:
        return value_text(value)
    except ValueError:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="", quoting=csv.QUOTE_ALL).writerow([str(value)])
        return buffer.getvalue()


def values_widget_index(node: Any) -> int | None:
    """Where a parameter node of a UI workflow keeps its ``values`` text in ``widgets_values``; None for any other node."""
    if not isinstance(node, Mapping) or node.get("type") not in PARAMETER_CLASSES or node.get("type") in _NOT_REWRITTEN:
        return None
    order = _PARAM_WIDGETS_GENERIC if node["type"] == "WIParameter" else _PARAM_WIDGETS_TYPED
    return order.index("values")


def workflow_with_values_text(workflow: Any, texts: Mapping[str, str]) -> Any:
    """The UI workflow with the ``values`` widget of each parameter node in ``texts`` (by node id) set to its text.

    Args:
        workflow: ``extra_pnginfo["workflow"]`` as the frontend sent it (not modified).
        texts: ``{parameter node id: values text}``.
    """
    if not isinstance(workflow, Mapping) or not isinstance(workflow.get("nodes"), list):
        return workflow
    updated = dict(workflow)
    nodes = []
    for node in workflow["nodes"]:
        node_id = str(node.get("id")) if isinstance(node, Mapping) else None
        position = values_widget_index(node)
        if node_id is not None and node_id in texts and position is not None and isinstance(node.get("widgets_values"), list):
            widgets = list(node["widgets_values"])
            if position < len(widgets):
                widgets[position] = texts[node_id]
                node = dict(node, widgets_values=widgets)
        nodes.append(node)
    updated["nodes"] = nodes
    return updated


def workflow_for_cell(workflow: Any, cell_values: Mapping[str, Any]) -> Any:
    """The UI workflow with every parameter node's ``values`` widget set to this cell's single value.

    Loading a cell image's workflow and queueing it therefore re-runs exactly that cell (a one-cell sweep).

    Args:
        workflow: ``extra_pnginfo["workflow"]`` as the frontend sent it (not modified).
        cell_values: ``{parameter node id: value}``.
    """
    return workflow_with_values_text(workflow, {str(k): format_value(v) for k, v in cell_values.items()})
