"""core/planner.py: the badge's preview and the onprompt hook plan with one function, so they cannot disagree."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import comfy_standin
from comfyui_workflow_iterator.core import parameter_parser, planner, prompt_graph
from comfyui_workflow_iterator.core.iteration_state import IterationStateManager
from comfyui_workflow_iterator.core.sweep import SweepService
from comfyui_workflow_iterator.nodes import _comfy

SAMPLERS = ["euler", "euler_ancestral", "ddim", "dpmpp_2m"]


def chain_prompt(params: list[dict[str, Any]], *, mode: str = "matrix", unequal: str = "cycle", wired: bool = True) -> dict[str, Any]:
    """Parameter nodes "10", "11", ... chained in order, each wired into its own input of node "99" (or naming
    it as a target: a skipped parameter's target needs no default, a wired input does)."""
    prompt: dict[str, Any] = {}
    previous = None
    sink: dict[str, Any] = {}
    for position, param in enumerate(params):
        node_id = str(10 + position)
        inputs: dict[str, Any] = {"name": param["name"], "type": param["type"], "values": param["values"]}
        if previous is not None:
            inputs["previous"] = [previous, 0]
        prompt[node_id] = {"class_type": "WIParameter", "inputs": inputs}
        sink[f"in{position}"] = [node_id, 1] if wired else 0
        if not wired:
            inputs["target"] = f"99.in{position}"
        previous = node_id
    prompt["3"] = {"class_type": "WIIterator", "inputs": {"enabled": True, "mode": mode, "unequal_lengths": unequal, "batch_name": "t"}}
    if previous is not None:
        prompt["3"]["inputs"]["parameters"] = [previous, 0]
    prompt["99"] = {"class_type": "Sink", "inputs": sink}
    return prompt


def image_prompt(params: list[dict[str, Any]], *, mode: str = "matrix", unequal: str = "cycle") -> dict[str, Any]:
    """The chain naming inputs of a stand-in EmptyImage as targets (width, height, color), saved by WISaveImage:
    a prompt ComfyUI (the stand-in) validates."""
    prompt = chain_prompt(params, mode=mode, unequal=unequal, wired=False)
    del prompt["99"]
    for position in range(len(params)):
        prompt[str(10 + position)]["inputs"]["target"] = f"4.{('width', 'height', 'color')[position]}"
    prompt["4"] = {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}
    prompt["5"] = {"class_type": "WISaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "WI"}}
    return prompt


def preview_body(params: list[dict[str, Any]], *, mode: str = "matrix", unequal: str = "cycle") -> dict[str, Any]:
    """What the web badge sends for the same chain (web/lib/api_client.mjs buildPreviewBody)."""
    parameters = []
    for position, param in enumerate(params):
        item = {"name": param["name"], "type": param["type"], "values": param["values"], "node_id": str(10 + position)}
        if str(param["type"]).upper() == "COMBO":
            item["options"] = SAMPLERS
        parameters.append(item)
    return {"parameters": parameters, "mode": mode, "unequal_lengths": unequal}


def options_for(class_type: str, input_name: str) -> list[str] | None:
    return SAMPLERS if class_type == "Sink" else None


class Hook:
    """The real onprompt hook (SweepService.handle_prompt) over the ComfyUI stand-in."""

    def __init__(self, monkeypatch, tmp_path, *, max_combinations: int = planner.DEFAULT_MAX_COMBINATIONS) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = comfy_standin.install(monkeypatch, self.loop, tmp_path=tmp_path)
        self.host = _comfy.ComfyHost(self.server)
        self.host.run_background = lambda fn, *a: None
        self.host.options_for = options_for  # type: ignore[method-assign]
        self.service = SweepService(IterationStateManager(), self.host, max_combinations=max_combinations)
        self.host.install(self.service)

    def queue_press(self, prompt: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        status, answer = self.loop.run_until_complete(self.server.post_prompt({"prompt": prompt}))
        for _ in range(20):
            self.loop.run_until_complete(asyncio.sleep(0))
        return status, answer

    def cells(self) -> int:
        batches = self.service.manager.list_batches()
        return sum(b["counts"]["total"] for b in batches)

    def close(self) -> None:
        comfy_standin.close_loop(self.loop)


@pytest.fixture
def hook(monkeypatch, tmp_path):
    h = Hook(monkeypatch, tmp_path)
    yield h
    h.close()


# ------------------------------------------------------------------------------------------------ regressions
def test_linear_unequal_lists_with_error_rule_are_refused_by_badge_and_hook_alike(hook):
    """Issue 11.4: the badge said "3 prompts" while the Queue press was refused."""
    params = [{"name": "a", "type": "INT", "values": "1, 2, 3"}, {"name": "b", "type": "INT", "values": "1, 2"}]
    status, _ = hook.queue_press(image_prompt(params, mode="linear", unequal="error"))
    assert status == 400 and hook.cells() == 0
    answer = hook.service.preview(preview_body(params, mode="linear", unequal="error"))
    assert answer["count"] == 0
    assert answer["refusal"] and "linear mode needs lists of equal length" in answer["refusal"]
    assert [e["message"] for e in answer["errors"] if e["param"] is None] == [answer["refusal"]]


def test_two_parameters_with_one_name_count_like_the_hook(hook):
    """Issue 11.4: two parameters named alike: the badge said 6, the hook ran 3 (the second is skipped)."""
    params = [{"name": "a", "type": "INT", "values": "1, 2, 3"}, {"name": "a", "type": "INT", "values": "10, 20"}]
    status, _ = hook.queue_press(image_prompt(params))
    assert status == 200 and hook.cells() == 3
    answer = hook.service.preview(preview_body(params))
    assert answer["count"] == 3
    (error,) = answer["errors"]
    assert error["node_id"] == "11" and 'already named "a"' in error["message"]


def test_preview_over_the_limit_says_how_far_over(hook):
    params = [{"name": "a", "type": "INT", "values": "1-1000"}, {"name": "b", "type": "INT", "values": "1-1000"}]
    answer = hook.service.preview(preview_body(params))
    assert answer["count"] == 0 and answer["combinations"] == 1_000_000 and answer["limit"] == 100_000
    assert "too many combinations: 1,000,000" in answer["refusal"]


def test_sweep_service_preview_is_a_delegation_to_the_planner(hook, monkeypatch):
    """One planner: the service has no preview rules of its own."""
    seen = []
    monkeypatch.setattr(planner, "preview", lambda body, **kw: seen.append(kw) or {"count": -1})
    assert hook.service.preview({"parameters": []}) == {"count": -1}
    assert seen[0]["parse"] == hook.service.parse and seen[0]["max_combinations"] == hook.service.max_combinations


def test_the_badge_does_not_estimate_the_grid_of_a_10000_value_axis():
    """Issue 12.5: that estimate took seconds of CPU and stalled the server loop even off it; the badge says
    why there is no grid size instead (the sweep's grid is still checked when queued)."""
    asked = []
    body = {"parameters": [{"name": "seed", "type": "SEED", "values": "1-10000"}], "image_size": [512, 512]}
    answer = planner.preview(body, parse=parameter_parser.parse, grid_estimate=lambda *a: asked.append(a) or {"width": 1})
    assert asked == [] and answer["count"] == 10_000
    assert answer["grid"]["estimated"] is False and "10,000 labels" in answer["grid"]["warnings"][0]
    small = {"parameters": [{"name": "seed", "type": "SEED", "values": "1-2000"}]}
    assert planner.preview(small, parse=parameter_parser.parse, grid_estimate=lambda *a: {"width": 1})["grid"] == {"width": 1}


# ------------------------------------------------------------------------------------------------ limits
def test_the_combination_limit_is_100000_by_default():
    axes = [planner.Axis(name=f"a{i}", values=tuple(range(10))) for i in range(5)]
    plan = planner.plan_axes([], planner.SweepSettings(), parse=parameter_parser.parse)
    assert plan.refusal and "connect at least one" in plan.refusal
    assert len(planner.combination_engine.cartesian(axes)) == 100_000
    assert planner.Limits() == planner.Limits(max_values=10_000, max_combinations=100_000)


@pytest.mark.parametrize("env,expected", [
    ({}, planner.Limits(10_000, 100_000)),
    ({"WI_MAX_COMBINATIONS": "250000", "WI_MAX_VALUES": "20_000"}, planner.Limits(20_000, 250_000)),
    ({"WI_MAX_COMBINATIONS": " 1,000 "}, planner.Limits(10_000, 1_000)),
    ({"WI_MAX_COMBINATIONS": "lots"}, planner.Limits(10_000, 100_000)),
    ({"WI_MAX_COMBINATIONS": "0"}, planner.Limits(10_000, 100_000)),
    ({"WI_MAX_COMBINATIONS": "-5"}, planner.Limits(10_000, 100_000)),
])
def test_limits_come_from_the_environment(env, expected):
    assert planner.Limits.from_env(env) == expected


def test_a_bad_limit_in_the_environment_is_logged_by_name(caplog):
    planner.Limits.from_env({"WI_MAX_COMBINATIONS": "lots"})
    assert "WI_MAX_COMBINATIONS='lots'" in caplog.text


def test_the_service_takes_its_limit_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("WI_MAX_COMBINATIONS", "4")
    h = Hook(monkeypatch, tmp_path, max_combinations=None)  # type: ignore[arg-type]
    try:
        assert h.service.max_combinations == 4
        params = [{"name": "a", "type": "INT", "values": "1-5"}]
        status, _ = h.queue_press(image_prompt(params))
        assert status == 400 and h.cells() == 0
        assert "the limit is 4" in h.service.preview(preview_body(params))["refusal"]
    finally:
        h.close()


# ------------------------------------------------------------------------------------------------ property
_VALUES = st.sampled_from(["1, 2", "1-3", "5", "x", "", "1-100", "1-20000", "random:3", "euler, ddim", "*", "*euler*",
                           "nope", "true, false", "0.5-1.5 (+0.5)", '"a, b", c', "1..", "a\nb\nc"])
_PARAMS = st.lists(st.fixed_dictionaries({
    "name": st.sampled_from(["a", "b", "c", "", " a "]),
    "type": st.sampled_from(["INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", "SEED", "seed", "bogus"]),
    "values": _VALUES,
}), min_size=0, max_size=5)


def _fixed_seeds(values_raw: str, value_type: str, **kwargs: Any) -> list[Any]:
    import random

    return parameter_parser.parse(values_raw, value_type, rng=random.Random(0), **kwargs)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=_PARAMS, mode=st.sampled_from(["matrix", "linear"]), unequal=st.sampled_from(["cycle", "error"]),
       limit=st.sampled_from([1, 6, 50, 100_000]))
def test_preview_count_and_errors_equal_what_the_hook_plans(params, mode, unequal, limit):
    body = preview_body(params, mode=mode, unequal=unequal)
    answer = planner.preview(body, parse=_fixed_seeds, max_combinations=limit)
    prompt = chain_prompt(params, mode=mode, unequal=unequal)
    try:
        plan = prompt_graph.plan_sweep(prompt, "3", parse=_fixed_seeds, options_for=options_for,
                                       input_default=lambda c, i: 0, max_combinations=limit)
    except prompt_graph.PlanError as exc:
        assert answer["count"] == 0
        assert answer["refusal"] == str(exc) or str(exc).startswith("no valid parameter remains")
        return
    assert answer["count"] == plan.total and answer["refusal"] is None
    assert [a["count"] for a in answer["axes"] if "error" not in a] == [len(a.values) for a in plan.axes]
    hook_errors = {(e.node_id, e.name): e.message for e in plan.errors}
    badge_errors = {(e["node_id"], e["param"]): e["message"] for e in answer["errors"]}
    assert hook_errors.keys() == badge_errors.keys()
    # The hook adds which default a skipped wired input falls back to; the reason itself is the same.
    assert all(hook_errors[key].startswith(badge_errors[key]) for key in hook_errors)
