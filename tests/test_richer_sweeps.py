"""Issue 16: search/replace, bundles, linked axes, skip rules, choices and wildcards: parser and planner
tables (exact error texts), cell prompts, the hook over the ComfyUI stand-in, and hypothesis properties."""
from __future__ import annotations

import asyncio
import itertools
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import comfy_standin
from comfyui_workflow_iterator.core import parameter_parser, planner, prompt_graph
from comfyui_workflow_iterator.core.errors import ParamSyntaxError
from comfyui_workflow_iterator.core.iteration_state import IterationStateManager
from comfyui_workflow_iterator.core.sweep import SweepService
from comfyui_workflow_iterator.nodes import _comfy

parse = parameter_parser.parse


def text_prompt(params: list[dict[str, Any]], *, mode: str = "matrix", unequal: str = "cycle", skip: str = "",
                text: str = "a photo of a cat, by day") -> dict[str, Any]:
    """Parameter nodes "10", "11", ... chained in order; node "4" is a text node ("Text": text, width,
    height, steps, cfg, sampler) that each parameter names in its target unless it gives its own."""
    prompt: dict[str, Any] = {
        "4": {"class_type": "Text", "inputs": {"text": text, "width": 64, "height": 64, "steps": 20, "cfg": 7.0,
                                                "sampler": "euler"}, "_meta": {"title": "Text"}},
    }
    previous = None
    for position, param in enumerate(params):
        node_id = str(10 + position)
        inputs: dict[str, Any] = {"name": param["name"], "values": param["values"],
                                  "target": param.get("target", "4.text"), "link": param.get("link", "")}
        cls = {"PROMPT_SR": "WIParameterPromptSR", "BUNDLE": "WIParameterBundle"}.get(param["type"], "WIParameter")
        if cls == "WIParameter":
            inputs["type"] = param["type"]
        if previous is not None:
            inputs["previous"] = [previous, 0]
        prompt[node_id] = {"class_type": cls, "inputs": inputs}
        previous = node_id
    prompt["3"] = {"class_type": "WIIterator", "inputs": {"enabled": True, "mode": mode, "unequal_lengths": unequal,
                                                           "batch_name": "t", "skip": skip, "parameters": [previous, 0]}}
    return prompt


def plan(params: list[dict[str, Any]], **kw: Any) -> prompt_graph.SweepPlan:
    prompt = text_prompt(params, **kw)
    return prompt_graph.plan_sweep(prompt, "3", parse=parse, options_for=_options, input_default=_default)


def _options(class_type: str, input_name: str) -> list[str] | None:
    return ["euler", "ddim", "dpmpp_2m"] if (class_type, input_name) == ("Text", "sampler") else None


def _default(class_type: str, input_name: str) -> Any:
    return {"width": 512, "height": 512, "steps": 20, "cfg": 8.0, "text": ""}.get(input_name) if class_type == "Text" else None


def cell_inputs(sweep: prompt_graph.SweepPlan, index: int) -> dict[str, Any]:
    return sweep.cell_prompt(sweep.combinations[index])["4"]["inputs"]


def error_of(sweep: prompt_graph.SweepPlan) -> str:
    (error,) = sweep.errors
    return error.message


# ============================================================================================ choices / wildcards
@pytest.mark.parametrize(("text", "expected"), [
    ("a {red|blue} cat", ["a red cat", "a blue cat"]),
    ("{a|b} {c|d}", ["a c", "a d", "b c", "b d"]),  # several groups: cartesian, the first slowest
    ("{a|{b|c}} x", ["a x", "b x", "c x"]),  # nested groups flatten in order
    ("{solo}", ["{solo}"]),  # no "|": literal braces
    ("{open|ended", ["{open|ended"]),  # never closed: literal
    ("plain, words", ["plain", "words"]),
    ('"a, {red|blue}"', ["a, red", "a, blue"]),  # quoted: commas kept, choices still expand
    ("x {|y}", ["x ", "x y"]),  # an empty alternative is a value
])
def test_choices_expand_into_values_in_order(text: str, expected: list[str]) -> None:
    assert parse(text, "STRING") == expected
    assert parameter_parser.count_values(text, "STRING") == len(expected)


def test_choices_in_a_multiline_text_keep_commas() -> None:
    assert parse("a, {red|blue} cat\nplain", "STRING") == ["a, red cat", "a, blue cat", "plain"]


def test_choices_do_not_expand_in_other_types() -> None:
    with pytest.raises(ParamSyntaxError, match=r'invalid INT value or range "\{1\|2\}"'):
        parse("{1|2}", "INT")


def test_choice_expansion_respects_the_value_limit() -> None:
    with pytest.raises(parameter_parser.LimitExceededError, match="too many values: 1,000"):
        parse("{a|b|c|d|e|f|g|h|i|j}{a|b|c|d|e|f|g|h|i|j}{a|b|c|d|e|f|g|h|i|j}", "STRING", max_values=999)


@pytest.fixture
def input_dir(tmp_path: Path) -> Path:
    wild = tmp_path / "input" / "wildcards"
    (wild / "sub").mkdir(parents=True)
    (wild / "colors.txt").write_text("# colours\nred\n\nblue  \ngreen\n", encoding="utf-8")
    (wild / "sub" / "pets.txt").write_text("cat\ndog\n", encoding="utf-8")
    (wild / "empty.txt").write_text("# nothing\n", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("x\n", encoding="utf-8")
    return tmp_path / "input"


def test_wildcards_read_one_value_per_line_from_the_input_folder(input_dir: Path) -> None:
    assert parse("a __colors__ __sub/pets__", "STRING", file_root=input_dir) == [
        "a red cat", "a red dog", "a blue cat", "a blue dog", "a green cat", "a green dog"]
    assert parameter_parser.count_values("__colors__ {x|y}", "STRING", file_root=input_dir) == 6


@pytest.mark.parametrize(("text", "message"), [
    ("__nope__", 'wildcard "__nope__": no file wildcards/nope.txt in the input folder'),
    ("__sub/../../../secret__", "wildcard \"__sub/../../../secret__\" resolves outside the input folder's wildcards/ folder"),
    ("__empty__", 'wildcard "__empty__": wildcards/empty.txt has no values'),
])
def test_wildcard_errors_name_the_file(input_dir: Path, text: str, message: str) -> None:
    with pytest.raises(ParamSyntaxError) as info:
        parse(text, "STRING", name="p", file_root=input_dir)
    assert info.value.message == message and info.value.param == "p"


def test_a_wildcard_without_an_input_folder_is_an_error() -> None:
    with pytest.raises(ParamSyntaxError, match='wildcard "__colors__" needs the input folder'):
        parse("__colors__", "STRING")


# ============================================================================================ bundles (parser)
def test_presets_parse_with_labels_and_raw_assignments() -> None:
    presets = parse("fast: steps=12, cfg=4; quality: steps=40, cfg=7", "BUNDLE")
    assert [(p.label, p.assignments) for p in presets] == [
        ("fast", (("steps", "12"), ("cfg", "4"))), ("quality", (("steps", "40"), ("cfg", "7")))]
    positional = parse("512x768, 640 x 640\n1024X1024", "BUNDLE")
    assert [(p.label, p.assignments) for p in positional] == [
        ("512x768", ((None, "512"), (None, "768"))), ("640 x 640", ((None, "640"), (None, "640"))),
        ("1024X1024", ((None, "1024"), (None, "1024")))]


@pytest.mark.parametrize(("text", "message"), [
    ("512", 'invalid bundle value "512": write numbers joined by x (e.g. 512x768) or named presets '
            '(e.g. "fast: steps=12, cfg=4; quality: steps=40, cfg=7")'),
    (": steps=1", 'preset ": steps=1" needs a name before ":" (e.g. "fast: steps=12, cfg=4")'),
    ("fast: steps", 'preset "fast": "steps" must look like input=value (e.g. steps=12)'),
    ("fast: steps=1, steps=2", 'preset "fast" sets "steps" twice'),
    ("fast: steps=1; fast: steps=2", 'preset "fast" is defined twice'),
    ("fast:", 'preset "fast" sets nothing (e.g. "fast: steps=12, cfg=4")'),
    ("", "no values"),
])
def test_bundle_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(ParamSyntaxError) as info:
        parse(text, "BUNDLE", name="b")
    assert info.value.message == message and info.value.param == "b"


# ============================================================================================ skip rules (parser)
def test_skip_rules_parse_one_per_line() -> None:
    rules = parameter_parser.parse_skip_rules("sampler=ddim & cfg=8\n# a comment\n\n steps = 12  # trailing")
    assert [(r.line, r.conditions) for r in rules] == [(1, (("sampler", "ddim"), ("cfg", "8"))), (4, (("steps", "12"),))]


@pytest.mark.parametrize(("text", "message"), [
    ("sampler", 'skip rule 1 "sampler": "sampler" must look like name=value (e.g. sampler=ddim & cfg=8)'),
    ("a=1 & =2", 'skip rule 1 "a=1 & =2": "=2" must look like name=value (e.g. sampler=ddim & cfg=8)'),
    ("\na=", 'skip rule 2 "a=": "a=" must look like name=value (e.g. sampler=ddim & cfg=8)'),
])
def test_skip_rule_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(ParamSyntaxError) as info:
        parameter_parser.parse_skip_rules(text)
    assert info.value.message == message


# ============================================================================================ search/replace
def test_search_replace_replaces_the_first_value_with_each_value_and_labels_show_the_replacement() -> None:
    sweep = plan([{"name": "animal", "type": "PROMPT_SR", "values": "cat, dog, owl"}])
    assert [cell_inputs(sweep, i)["text"] for i in range(3)] == [
        "a photo of a cat, by day", "a photo of a dog, by day", "a photo of a owl, by day"]
    (axis,) = sweep.axes
    assert (axis.name, axis.values, axis.type) == ("animal", ("cat", "dog", "owl"), "PROMPT_SR")
    record = sweep.cell_info("b", sweep.combinations[1])
    assert record["values"] == {"animal": "dog"}


def test_several_search_replace_axes_apply_in_chain_order_after_plain_values() -> None:
    """The second replacement sees the first one's result: "cat" -> "big cat" -> "big striped cat"."""
    sweep = plan([
        {"name": "a", "type": "PROMPT_SR", "values": "cat, big cat"},
        {"name": "b", "type": "PROMPT_SR", "values": "day, night"},
        {"name": "c", "type": "PROMPT_SR", "values": "big, big striped"},
        {"name": "steps", "type": "INT", "values": "5", "target": "4.steps"},
    ], text="a cat by day, big")
    texts = [cell_inputs(sweep, i)["text"] for i in range(len(sweep.combinations))]
    assert texts == ["a cat by day, big", "a cat by day, big striped", "a cat by night, big",
                     "a cat by night, big striped", "a big cat by day, big", "a big striped cat by day, big striped",
                     "a big cat by night, big", "a big striped cat by night, big striped"]


def test_search_replace_acts_on_the_values_of_a_parameter_writing_the_same_input() -> None:
    sweep = plan([{"name": "prompt", "type": "STRING", "values": "a cat\nthe cat sat"},
                  {"name": "animal", "type": "PROMPT_SR", "values": "cat, dog"}])
    assert [cell_inputs(sweep, i)["text"] for i in range(4)] == ["a cat", "a dog", "the cat sat", "the dog sat"]


@pytest.mark.parametrize(("values", "target", "message"), [
    ("horse, dog", "4.text", 'parameter "animal": search text "horse" is not in the text of 4.text '
                             '("a photo of a cat, by day"); the first value must appear in the target text'),
    ("cat, dog", "4.steps", 'parameter "animal": target 4.steps holds int 20, not text; '
                            "search/replace edits text written in the node"),
    ('"", dog', "4.text", 'parameter "animal": the first value is the text to find; it must not be empty'),
])
def test_search_replace_errors_at_planning_time(values: str, target: str, message: str) -> None:
    with pytest.raises(prompt_graph.PlanError) as info:
        plan([{"name": "animal", "type": "PROMPT_SR", "values": values, "target": target}])
    assert str(info.value) == f"no valid parameter remains: {message}"


def test_the_badge_checks_the_search_text_with_the_same_rule() -> None:
    body = {"parameters": [{"name": "animal", "type": "PROMPT_SR", "values": "horse, dog", "texts": ["a cat"]}]}
    answer = planner.preview(body, parse=parse)
    assert answer["count"] == 0
    assert answer["errors"][0]["message"] == ('parameter "animal": search text "horse" is not in the text of target 1 '
                                              '("a cat"); the first value must appear in the target text')
    body["parameters"][0]["values"] = "cat, dog, {owl|bat}"
    assert planner.preview(body, parse=parse)["count"] == 4


# ============================================================================================ bundles (planner)
def test_a_positional_bundle_sets_several_inputs_with_one_value() -> None:
    sweep = plan([{"name": "size", "type": "BUNDLE", "values": "512x768, 768x512", "target": "Text.width; Text.height"}])
    assert [(cell_inputs(sweep, i)["width"], cell_inputs(sweep, i)["height"]) for i in range(2)] == [(512, 768), (768, 512)]
    (axis,) = sweep.axes
    assert axis.labels == ("512x768", "768x512")
    assert axis.values == ({"Text.width": 512, "Text.height": 768}, {"Text.width": 768, "Text.height": 512})


def test_named_presets_set_inputs_by_name_typed_by_the_input() -> None:
    sweep = plan([{"name": "preset", "type": "BUNDLE", "values": "fast: steps=12, cfg=4; quality: steps=40, cfg=7.5, sampler=ddim",
                   "target": "4.steps; 4.cfg; 4.sampler"}])
    first, second = cell_inputs(sweep, 0), cell_inputs(sweep, 1)
    assert (first["steps"], first["cfg"], first["sampler"]) == (12, 4.0, "euler")  # unset inputs keep the prompt's
    assert type(first["cfg"]) is float and type(first["steps"]) is int
    assert (second["steps"], second["cfg"], second["sampler"]) == (40, 7.5, "ddim")
    assert sweep.axes[0].labels == ("fast", "quality")


@pytest.mark.parametrize(("values", "target", "message"), [
    ("fast: stepz=12", "4.steps", 'preset "fast": unknown input "stepz"; the targets are 4.steps'),
    ("fast: steps=12.5", "4.steps", 'preset "fast": 4.steps=12.5: invalid INT value "12.5" (whole numbers only)'),
    ("fast: sampler=eulr", "4.sampler", 'preset "fast": 4.sampler=eulr: "eulr" is not one of the 3 options (close matches: "euler")'),
    ("512x768x2", "4.width; 4.height", '"512x768x2" gives 3 values for 2 targets (4.width, 4.height)'),
    ("512x768", "", "a bundle needs its inputs in 'target', e.g. 'EmptyLatentImage.width; EmptyLatentImage.height'"),
    ("512x768", "4.width; Nope.height", "target Nope.height: no node has the id, title or type 'Nope'"),
])
def test_bundle_errors_name_the_parameter_and_the_preset(values: str, target: str, message: str) -> None:
    with pytest.raises(prompt_graph.PlanError) as info:
        plan([{"name": "b", "type": "BUNDLE", "values": values, "target": target}])
    assert str(info.value) == f'no valid parameter remains: parameter "b": {message}'


# ============================================================================================ linked axes
def test_linked_parameters_advance_together_while_groups_cross() -> None:
    sweep = plan([
        {"name": "sampler", "type": "COMBO", "values": "euler, ddim", "target": "4.sampler", "link": "pair"},
        {"name": "cfg", "type": "FLOAT", "values": "4, 8, 12", "target": "4.cfg"},
        {"name": "steps", "type": "INT", "values": "10, 30", "target": "4.steps", "link": "pair"},
    ])
    assert [a.name for a in sweep.axes] == ["sampler / steps", "cfg"]
    assert sweep.axes[0].labels == ("euler / 10", "ddim / 30")
    cells = [(c["sampler"], c["steps"], c["cfg"]) for c in (cell_inputs(sweep, i) for i in range(len(sweep.combinations)))]
    assert cells == [("euler", 10, 4.0), ("euler", 10, 8.0), ("euler", 10, 12.0),
                     ("ddim", 30, 4.0), ("ddim", 30, 8.0), ("ddim", 30, 12.0)]
    assert sweep.cell_info("b", sweep.combinations[3])["values"] == {"sampler / steps": {"sampler": "ddim", "steps": 30}, "cfg": 4.0}


def test_a_linked_group_of_unequal_lengths_cycles_or_is_refused_as_the_iterator_says() -> None:
    params = [{"name": "a", "type": "INT", "values": "1, 2, 3", "target": "4.steps", "link": "g"},
              {"name": "b", "type": "INT", "values": "7, 8", "target": "4.width", "link": "g"}]
    sweep = plan(params)
    assert [(cell_inputs(sweep, i)["steps"], cell_inputs(sweep, i)["width"]) for i in range(3)] == [(1, 7), (2, 8), (3, 7)]
    with pytest.raises(prompt_graph.PlanError) as info:
        plan(params, unequal="error")
    assert str(info.value) == 'link group "g" needs lists of equal length (unequal_lengths is "error"), got a=3, b=2'


def test_the_badge_counts_link_groups_like_the_hook() -> None:
    body = {"parameters": [{"name": "a", "type": "INT", "values": "1-3", "link": "g"},
                           {"name": "b", "type": "INT", "values": "1-3", "link": "g"},
                           {"name": "c", "type": "INT", "values": "1-4"}]}
    assert planner.preview(body, parse=parse)["count"] == 12


# ============================================================================================ skip rules (planner)
def test_skip_rules_remove_cells_by_label_or_value() -> None:
    sweep = plan([{"name": "sampler", "type": "COMBO", "values": "euler, ddim", "target": "4.sampler"},
                  {"name": "cfg", "type": "FLOAT", "values": "4, 8", "target": "4.cfg"}],
                 skip="sampler=ddim & cfg=8\n# euler keeps both")
    assert sweep.total == 4 and sweep.skipped == frozenset({3}) and sweep.count == 3
    assert list(sweep.run_order()) == [0, 1, 2]


def test_skip_rules_match_members_of_link_groups_and_bundle_labels() -> None:
    sweep = plan([{"name": "size", "type": "BUNDLE", "values": "512x768, 768x512", "target": "4.width; 4.height", "link": "g"},
                  {"name": "steps", "type": "INT", "values": "10, 20", "target": "4.steps", "link": "g"},
                  {"name": "cfg", "type": "FLOAT", "values": "4, 8, 12", "target": "4.cfg"}],
                 skip="size=768x512 & cfg=12.0\nsteps=10 & cfg=4")
    assert sweep.skipped == frozenset({5, 0})


def test_when_the_first_cell_is_skipped_the_submitted_cell_is_the_first_left() -> None:
    sweep = plan([{"name": "cfg", "type": "FLOAT", "values": "4, 8, 12", "target": "4.cfg"}], skip="cfg=4")
    assert sweep.first_index == 1 and list(sweep.run_order()) == [1, 2]


@pytest.mark.parametrize(("skip", "message"), [
    ("cfgg=8", 'skip rule 1 "cfgg=8": no parameter is named "cfgg" (parameters: "cfg")'),
    ("cfg=9", 'skip rule 1 "cfg=9": parameter "cfg" has no value "9"'),
    ("cfg", 'skip rule 1 "cfg": "cfg" must look like name=value (e.g. sampler=ddim & cfg=8)'),
    ("cfg=4\ncfg=8", "the skip list skips all 2 combinations; nothing is left to run"),
])
def test_skip_rule_errors_refuse_the_sweep(skip: str, message: str) -> None:
    with pytest.raises(prompt_graph.PlanError) as info:
        plan([{"name": "cfg", "type": "FLOAT", "values": "4, 8", "target": "4.cfg"}], skip=skip)
    assert str(info.value) == message


def test_the_badge_shows_the_count_after_skips() -> None:
    body = {"parameters": [{"name": "a", "type": "INT", "values": "1-3"}, {"name": "b", "type": "INT", "values": "1-2"}],
            "skip": "a=2\na=3 & b=1"}
    answer = planner.preview(body, parse=parse)
    assert (answer["count"], answer["skipped"], answer["combinations"]) == (3, 3, 6)


def test_a_plan_with_writers_and_skips_survives_the_journal_round_trip() -> None:
    sweep = plan([{"name": "size", "type": "BUNDLE", "values": "512x768, 768x512", "target": "4.width; 4.height", "link": "g"},
                  {"name": "animal", "type": "PROMPT_SR", "values": "cat, dog", "link": "g"},
                  {"name": "cfg", "type": "FLOAT", "values": "4, 8", "target": "4.cfg"}], skip="animal=dog & cfg=8")
    import json
    again = prompt_graph.SweepPlan.from_json(json.loads(json.dumps(sweep.to_json())))
    assert again.skipped == sweep.skipped == frozenset({3})
    assert [a.labels for a in again.axes] == [a.labels for a in sweep.axes]
    for index in range(sweep.total):
        assert again.cell_prompt(again.combinations[index]) == sweep.cell_prompt(sweep.combinations[index])


# ============================================================================================ skipped cells, end to end
def image_sweep(skip: str) -> dict[str, Any]:
    """EmptyImage (a stand-in ComfyUI validates) swept by a width/height bundle linked with a color list,
    crossed with a batch size, saved by WISaveImage."""
    return {
        "4": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "5": {"class_type": "WISaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "WI"}},
        "10": {"class_type": "WIParameterBundle", "inputs": {"name": "size", "values": "8x8, 16x8", "target": "4.width; 4.height",
                                                             "link": "g"}},
        "11": {"class_type": "WIParameterInt", "inputs": {"name": "color", "values": "1, 2", "target": "4.color", "link": "g",
                                                          "previous": ["10", 0]}},
        "12": {"class_type": "WIParameterInt", "inputs": {"name": "n", "values": "1, 2, 3", "target": "4.batch_size",
                                                          "previous": ["11", 0]}},
        "3": {"class_type": "WIIterator", "inputs": {"enabled": True, "mode": "matrix", "batch_name": "skips", "skip": skip,
                                                      "parameters": ["12", 0]}},
    }


class Runner:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = comfy_standin.install(monkeypatch, self.loop, tmp_path=tmp_path)
        for cls in ("WIParameterBundle", "WIParameterPromptSR"):  # the pack registers these in a real ComfyUI
            monkeypatch.setitem(comfy_standin.NODE_CLASS_MAPPINGS, cls, comfy_standin._node(
                cls, {"name": ("STRING", {"default": "param"}), "values": ("STRING", {"default": ""})}))
        self.manager = IterationStateManager()
        self.host = _comfy.ComfyHost(self.server)
        self.grids: list[str] = []
        self.host.run_background = lambda fn, *a: fn(*a)
        self.service = SweepService(self.manager, self.host, grid_builder=self.grids.append, window=2)
        self.host.install(self.service)

    def settle(self) -> None:
        for _ in range(50):
            self.loop.run_until_complete(asyncio.sleep(0))

    def run_all(self) -> list[tuple]:
        ran = []
        for _ in range(100):
            self.settle()
            item = self.server.run_next()
            if item is None:
                self.settle()
                item = self.server.run_next()
                if item is None:
                    break
            ran.append(item)
        return ran


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    r = Runner(monkeypatch, tmp_path)
    yield r
    r.settle()
    comfy_standin.close_loop(r.loop)


def test_skipped_cells_are_created_skipped_never_queued_and_the_batch_completes_without_them(runner: Runner) -> None:
    status, _ = runner.loop.run_until_complete(runner.server.post_prompt({"prompt": image_sweep("size=8x8 & n=1\nn=3 & color=2")}))
    assert status == 200
    ran = runner.run_all()
    (batch,) = runner.manager.list_batches()
    detail = runner.manager.get_status(batch["batch_id"])
    assert detail["counts"]["skipped"] == 2 and detail["counts"]["done"] == 4 and detail["counts"]["total"] == 6
    assert [c["status"] for c in detail["cells"]] == ["skipped", "done", "done", "done", "done", "skipped"]
    assert detail["state"] in ("collecting", "complete") and runner.grids == [batch["batch_id"]]
    # every cell that ran got its own values; the skipped ones never reached the queue
    infos = sorted((item[3]["extra_pnginfo"]["wi_cell"]["index"], item[2]["4"]["inputs"]) for item in ran)
    assert [i for i, _ in infos] == [1, 2, 3, 4]
    assert [(p["width"], p["height"], p["color"], p["batch_size"]) for _, p in infos] == [
        (8, 8, 1, 2), (8, 8, 1, 3), (16, 8, 2, 1), (16, 8, 2, 2)]
    assert detail["cell_statuses"] == "sdddds"


def test_a_skip_list_that_names_an_unknown_parameter_refuses_the_queue_press(runner: Runner) -> None:
    status, answer = runner.loop.run_until_complete(runner.server.post_prompt({"prompt": image_sweep("sampler=ddim")}))
    assert status == 400 and runner.manager.list_batches() == []
    assert 'skip rule 1 "sampler=ddim": no parameter is named "sampler"' in str(answer)


def test_the_grid_keeps_a_skipped_cells_slot_with_a_skipped_placeholder(tmp_path: Path) -> None:
    from PIL import Image

    from comfyui_workflow_iterator.core import grid
    from comfyui_workflow_iterator.core.grid import GridAxis, GridCell

    good = tmp_path / "good.png"
    Image.new("RGB", (80, 80), (10, 200, 10)).save(good)
    cells = [GridCell(index=0, coords=(0,), files=(good,)), GridCell(index=1, coords=(1,), status="skipped")]
    layout = grid.plan_grid([GridAxis("a", (1, 2), "INT")], 2, (80, 80))
    (page,) = grid.compose_grid(layout, cells, tmp_path / "out", "g")
    img = Image.open(page.path).convert("RGB")
    s0, s1 = sorted(layout.pages[0].slots, key=lambda s: s.coords)
    assert img.getpixel((s0.x + 2, s0.y + 2)) == (10, 200, 10)
    assert img.getpixel((s1.x + 1, s1.y + 1)) == grid.PLACEHOLDER_COLORS["skipped"]


def test_a_restored_batch_keeps_its_skipped_cells_skipped(runner: Runner) -> None:
    sweep = plan([{"name": "cfg", "type": "FLOAT", "values": "4, 8, 12", "target": "4.cfg"}], skip="cfg=8")
    record = {"batch_id": "b_1", "batch_name": "b", "mode": "matrix", "axes": sweep.to_json()["axes"], "cells": []}
    runner.manager.restore_batch(record, combinations=sweep.combinations, skipped=sweep.skipped)
    assert runner.manager.resume_batch("b_1") == [0, 2]
    assert runner.manager.get_status("b_1")["counts"]["skipped"] == 1


# ============================================================================================ properties
_GROUP = st.sampled_from(["", "", "g", "h"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lengths=st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=4),
    links=st.lists(_GROUP, min_size=4, max_size=4),
    rules=st.lists(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=2), max_size=3),
    mode=st.sampled_from(["matrix", "linear"]),
)
def test_cell_count_is_the_product_of_group_lengths_minus_skips_and_every_cell_gets_its_values(
        lengths: list[int], links: list[str], rules: list[list[tuple[int, int]]], mode: str) -> None:
    names = [f"p{i}" for i in range(len(lengths))]
    params = [{"name": name, "type": "INT", "values": ", ".join(str(100 * i + v) for v in range(n)),
               "target": f"4.in{i}", "link": links[i]} for i, (name, n) in enumerate(zip(names, lengths))]
    skip = "\n".join(" & ".join(f"{names[p % len(names)]}={100 * (p % len(names)) + v % lengths[p % len(names)]}"
                                for p, v in rule) for rule in rules)
    prompt = text_prompt(params, mode=mode, skip=skip)
    prompt["4"]["inputs"].update({f"in{i}": -1 for i in range(len(lengths))})
    # The model: groups in first-appearance order, members zipped (cycling), groups crossed (or zipped in linear).
    groups: list[list[int]] = []
    seen: dict[str, list[int]] = {}
    for i, link in enumerate(links[: len(lengths)]):
        if link and link in seen:
            seen[link].append(i)
        else:
            groups.append([i])
            if link:
                seen[link] = groups[-1]
    sizes = [max(lengths[i] for i in g) for g in groups]
    total = math.prod(sizes) if mode == "matrix" else max(sizes)
    positions = list(itertools.product(*(range(s) for s in sizes))) if mode == "matrix" else [
        tuple(k % s for s in sizes) for k in range(total)]
    expected_values = [{i: 100 * i + (pos[g] % lengths[i]) for g, members in enumerate(groups) for i in members}
                       for pos in positions]
    expected_skipped = {k for k, vals in enumerate(expected_values)
                        if any(all(vals[p % len(names)] == 100 * (p % len(names)) + v % lengths[p % len(names)]
                                   for p, v in rule) for rule in rules)}
    try:
        sweep = prompt_graph.plan_sweep(prompt, "3", parse=parse)
    except prompt_graph.PlanError as exc:
        assert len(expected_skipped) == total and "skips all" in str(exc)
        return
    assert sweep.total == total and sweep.skipped == expected_skipped
    assert sweep.count == total - len(expected_skipped)
    assert sorted(sweep.run_order()) == sorted(set(range(total)) - expected_skipped)
    for index in sweep.run_order():
        inputs = sweep.cell_prompt(sweep.combinations[index])["4"]["inputs"]
        assert {i: inputs[f"in{i}"] for i in range(len(lengths))} == expected_values[index]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.text(alphabet="abc", min_size=0, max_size=3), min_size=2, max_size=3), min_size=1, max_size=3))
def test_choice_groups_expand_to_the_product_of_their_sizes(groups: list[list[str]]) -> None:
    text = "x".join("{" + "|".join(options) + "}" for options in groups)
    expected = ["x".join(combo) for combo in itertools.product(*groups)]
    assert parse(text, "STRING") == expected
    assert parameter_parser.count_values(text, "STRING") == math.prod(len(options) for options in groups)


# ============================================================================================ outputs
def test_batch_csv_writes_link_group_and_bundle_values_as_json_and_keeps_skipped_cells(tmp_path: Path) -> None:
    import csv
    import json

    from comfyui_workflow_iterator.core import manifest

    status = {"axes": [{"name": "a / b", "type": "LINKED", "values": [{"a": 1, "b": "x"}], "labels": ["1 / x"]},
                       {"name": "size", "type": "BUNDLE", "values": [{"4.width": 8}, {"4.width": 16}], "labels": ["s", "l"]}],
              "cells": [{"index": 0, "coords": [0, 0], "status": "done", "files": []},
                        {"index": 1, "coords": [0, 1], "status": "skipped", "files": []}]}
    out = manifest.write_manifest(status, tmp_path)
    with open(out["csv"], encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert json.loads(rows[0]["a / b"]) == {"a": 1, "b": "x"} and json.loads(rows[1]["size"]) == {"4.width": 16}
    assert [r["status"] for r in rows] == ["done", "skipped"]
    document = json.loads(Path(out["json"]).read_text(encoding="utf-8"))
    assert [c["status"] for c in document["cells"]] == ["done", "skipped"]
    assert document["axes"][1]["labels"] == ["s", "l"]


# ============================================================================================ random picks (only when asked)
def test_a_random_pick_stays_one_value_and_is_not_expanded() -> None:
    assert parse("a {~red|blue} cat {x|y}", "STRING") == ["a {~red|blue} cat x", "a {~red|blue} cat y"]
    assert parameter_parser.count_values("{~a|b|c}", "STRING") == 1
    assert parameter_parser.has_random_choices("a {~red|blue}") and not parameter_parser.has_random_choices("{~solo}")


def test_random_picks_are_resolved_per_cell_recorded_and_repeated_after_a_journal_round_trip() -> None:
    import dataclasses
    import json

    sweep = plan([{"name": "color", "type": "STRING", "values": "a {~red|blue|green} cat"},
                  {"name": "steps", "type": "INT", "values": "1-12", "target": "4.steps"}])
    sweep = dataclasses.replace(sweep, seed=1234)
    texts = [cell_inputs(sweep, i)["text"] for i in range(12)]
    assert set(texts) == {"a red cat", "a blue cat", "a green cat"}  # cells draw independently
    assert texts == [cell_inputs(sweep, i)["text"] for i in range(12)]  # the same cell always gets the same pick
    picks = [sweep.cell_info("b", sweep.combinations[i])["picks"] for i in range(12)]
    assert picks == [{"color": text} for text in texts]
    again = prompt_graph.SweepPlan.from_json(json.loads(json.dumps(sweep.to_json())))
    assert [again.cell_prompt(again.combinations[i])["4"]["inputs"]["text"] for i in range(12)] == texts
    other = dataclasses.replace(sweep, seed=99)
    assert [cell_inputs(other, i)["text"] for i in range(12)] != texts  # another batch draws again


def test_a_plan_without_random_picks_has_no_seed_and_no_picks() -> None:
    sweep = plan([{"name": "animal", "type": "PROMPT_SR", "values": "cat, dog"}])
    assert sweep.seed == 0 and "picks" not in sweep.cell_info("b", sweep.combinations[0])


def test_search_replace_may_pick_its_replacement_at_random_but_not_its_search_text() -> None:
    sweep = plan([{"name": "animal", "type": "PROMPT_SR", "values": "cat, {~dog|owl}"}])
    assert sweep.seed != 0 and cell_inputs(sweep, 1)["text"] in ("a photo of a dog, by day", "a photo of a owl, by day")
    with pytest.raises(prompt_graph.PlanError) as info:
        plan([{"name": "animal", "type": "PROMPT_SR", "values": "{~cat|dog}, owl"}])
    assert str(info.value) == ('no valid parameter remains: parameter "animal": the first value is the text to find; '
                               '"{~cat|dog}" cannot hold a random pick {~...}')


def test_a_skip_rule_naming_a_parameter_skipped_for_its_own_error_says_so() -> None:
    with pytest.raises(prompt_graph.PlanError) as info:
        plan([{"name": "cfg", "type": "FLOAT", "values": "4, 8", "target": "4.cfg"},
              {"name": "steps", "type": "INT", "values": "x", "target": "4.steps"}], skip="steps=3")
    assert str(info.value) == 'skip rule 1 "steps=3": parameter "steps" was skipped for its own error; fix it or remove the rule'


def test_a_search_replace_wired_into_an_input_is_refused() -> None:
    prompt = text_prompt([{"name": "animal", "type": "PROMPT_SR", "values": "cat, dog", "target": ""}])
    prompt["4"]["inputs"]["text"] = ["10", 1]
    with pytest.raises(prompt_graph.PlanError) as info:
        prompt_graph.plan_sweep(prompt, "3", parse=parse)
    assert str(info.value) == ('no valid parameter remains: parameter "animal": search/replace edits the text of the inputs '
                               "named in its 'target' (e.g. positive.text); leave its 'value' output unconnected")


@pytest.mark.parametrize("mode", ["matrix", "linear"])
def test_the_badges_grid_estimate_keeps_the_skipped_cells_slots(mode: str) -> None:
    from comfyui_workflow_iterator.core import batch_outputs

    body = {"parameters": [{"name": "a", "type": "INT", "values": "1-3"}, {"name": "b", "type": "INT", "values": "1-3"}],
            "mode": mode}
    full = planner.preview(body, parse=parse, grid_estimate=batch_outputs.preview_grid)
    skipping = planner.preview({**body, "skip": "a=2"}, parse=parse, grid_estimate=batch_outputs.preview_grid)
    assert skipping["count"] < full["count"]
    assert skipping["grid"] == full["grid"]


def test_a_resumed_batch_after_a_restart_never_runs_its_skipped_cells(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Through the journal: the skipped cells have no journal rows; the plan's skip set keeps them skipped."""
    from comfyui_workflow_iterator.core.journal import BatchJournal
    from test_routes import RouteHarness, sweep_prompt

    journal = BatchJournal(tmp_path / "journal.sqlite")
    prompt = sweep_prompt("1, 2", "10, 20")
    prompt["3"]["inputs"]["skip"] = "width=2 & height=10"
    first = RouteHarness(monkeypatch, tmp_path, journal=journal)
    try:
        first.post_prompt({"prompt": prompt})
        batch_id = first.only_batch_id()
        first.server.run_next()  # cell 0 ends; ComfyUI then "dies"
        first.settle()
        journal.flush()
    finally:
        first.close()
    second = RouteHarness(monkeypatch, tmp_path, journal=journal)
    try:
        assert second.service.restore_interrupted() == [batch_id]
        status, body, _ = second.post(f"/wi/resume/{batch_id}")
        assert status == 200 and body["queued"] == 2, body
        ran = second.run_all()
        assert sorted(item[3]["wi"]["index"] for item in ran) == [1, 3]
        detail = second.manager.get_status(batch_id)
        assert [c["status"] for c in detail["cells"]] == ["done", "done", "skipped", "done"]
    finally:
        second.close()
        journal.close()
