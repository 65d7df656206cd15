"""Planning a sweep from an API prompt: chains, targets, errors, cell prompts and cell workflows."""
from __future__ import annotations

import copy
import json

import pytest

from comfyui_workflow_iterator.core import parameter_parser, prompt_graph
from comfyui_workflow_iterator.core.prompt_graph import PlanError


def base_prompt(target_a="", target_b="", values_a="1, 2", values_b="a, b, c"):
    return {
        "1": {"class_type": "WIParameterInt", "inputs": {"name": "steps", "values": values_a, "target": target_a}},
        "2": {"class_type": "WIParameter", "inputs": {"name": "text", "type": "STRING", "values": values_b, "target": target_b, "previous": ["1", 0]}},
        "3": {"class_type": "WIIterator", "inputs": {"parameters": ["2", 0], "enabled": True, "mode": "matrix", "batch_name": "b"}},
        "7": {"class_type": "KSampler", "_meta": {"title": "Sampler A"}, "inputs": {"steps": 20, "cfg": 7.0}},
        "8": {"class_type": "CLIPTextEncode", "_meta": {"title": "positive"}, "inputs": {"text": "x"}},
        "9": {"class_type": "CLIPTextEncode", "_meta": {"title": "negative"}, "inputs": {"text": ["2", 1]}},
    }


def plan(prompt):
    return prompt_graph.plan_sweep(prompt, prompt_graph.find_enabled_iterator(prompt), parse=parameter_parser.parse,
                                   input_default=lambda class_type, input_name: "default")


@pytest.mark.parametrize("target,expected", [
    ("Sampler A.steps", ["7"]),        # by title
    ("7.steps", ["7"]),                # by id
    ("#7.steps", ["7"]),               # by id with a hash
    ("KSampler.steps", ["7"]),         # by class
])
def test_named_targets_resolve_by_title_id_or_class(target, expected):
    result = plan(base_prompt(target_a=target))
    assert [s.node_id for s in result.sites[0]] == expected


def test_wired_value_output_and_title_target_both_receive_the_value():
    result = plan(base_prompt(target_a="Sampler A.steps", target_b="positive.text"))
    assert {(s.node_id, s.input_name) for s in result.sites[1]} == {("9", "text"), ("8", "text")}
    cell = result.cell_prompt(result.combinations[4])  # steps=2, text=b
    assert cell["7"]["inputs"]["steps"] == 2 and cell["8"]["inputs"]["text"] == "b" and cell["9"]["inputs"]["text"] == "b"


def test_first_parameter_in_the_chain_is_the_slowest_axis():
    result = plan(base_prompt(target_a="7.steps"))
    assert [c.values for c in result.combinations] == [(1, "a"), (1, "b"), (1, "c"), (2, "a"), (2, "b"), (2, "c")]


@pytest.mark.parametrize("target,message", [
    ("Nope.steps", "no node has the id, title or type 'Nope'"),
    ("7.nope", "has no input 'nope'"),
    ("steps", "must look like"),
])
def test_bad_targets_skip_the_parameter_with_a_clear_reason(target, message):
    result = plan(base_prompt(target_a=target))
    assert [a.name for a in result.axes] == ["text"]
    assert result.errors[0].name == "steps" and message in result.errors[0].message


def test_a_parameter_whose_value_goes_nowhere_is_reported():
    result = plan(base_prompt())
    assert result.errors[0].name == "steps" and "goes nowhere" in result.errors[0].message


def test_nothing_valid_raises_plan_error_naming_every_problem():
    with pytest.raises(PlanError) as info:
        plan(base_prompt(target_a="7.steps", values_a="x", values_b=""))
    assert "steps" in str(info.value) and "text" in str(info.value)


def test_cycles_and_duplicate_names_are_errors():
    prompt = base_prompt(target_a="7.steps")
    prompt["1"]["inputs"]["previous"] = ["2", 0]
    with pytest.raises(PlanError, match="cycle"):
        plan(prompt)
    prompt = base_prompt(target_a="7.steps")
    prompt["2"]["inputs"]["name"] = "steps"
    result = plan(prompt)
    assert "already named" in result.errors[0].message


def test_two_enabled_iterators_are_refused_and_disabled_ones_ignored():
    prompt = base_prompt(target_a="7.steps")
    prompt["4"] = copy.deepcopy(prompt["3"])
    with pytest.raises(PlanError, match="only one WIIterator"):
        prompt_graph.find_enabled_iterator(prompt)
    prompt["4"]["inputs"]["enabled"] = False
    assert prompt_graph.find_enabled_iterator(prompt) == "3"


def test_planning_never_mutates_the_prompt_and_cells_are_independent():
    prompt = base_prompt(target_a="7.steps")
    before = copy.deepcopy(prompt)
    result = plan(prompt)
    a, b = result.cell_prompt(result.combinations[0]), result.cell_prompt(result.combinations[0])
    a["7"]["inputs"]["cfg"] = 1.0
    assert prompt == before and b["7"]["inputs"]["cfg"] == 7.0


def test_plan_error_prompt_keeps_only_the_error_node_under_the_iterator_id():
    error_prompt = prompt_graph.plan_error_prompt(base_prompt(), "3", "bad")
    assert error_prompt == {"3": {"class_type": "WIPlanError", "inputs": {"message": "bad"}, "_meta": {"title": "WIIterator"}}}


@pytest.mark.parametrize("value", ["plain", "a, b", "line1, line2", 'say "hi"', 7, -3, 0.1, True, False])
def test_format_value_round_trips_through_the_parser(value):
    value_type = {bool: "BOOLEAN", int: "INT", float: "FLOAT", str: "STRING"}[type(value)]
    assert parameter_parser.parse(prompt_graph.format_value(value), value_type) == [value]


def test_workflow_for_cell_sets_parameter_widgets_only():
    workflow = {"nodes": [
        {"id": 1, "type": "WIParameterInt", "widgets_values": ["steps", "1, 2", ""]},
        {"id": 2, "type": "WIParameter", "widgets_values": ["text", "STRING", "a, b, c", ""]},
        {"id": 7, "type": "KSampler", "widgets_values": [1, "fixed", 20]},
    ], "links": []}
    cell = prompt_graph.workflow_for_cell(workflow, {"1": 2, "2": "b, c"})
    assert cell["nodes"][0]["widgets_values"][1] == "2"
    assert cell["nodes"][1]["widgets_values"][2] == '"b, c"'
    assert cell["nodes"][2] is workflow["nodes"][2] and workflow["nodes"][0]["widgets_values"][1] == "1, 2"
    json.dumps(cell)


def test_cell_info_names_batch_index_coords_and_values():
    result = plan(base_prompt(target_a="7.steps"))
    info = result.cell_info("b_12345678", result.combinations[5])
    assert info == {"batch_id": "b_12345678", "index": 5, "total": 6, "mode": "matrix", "coords": [1, 2],
                    "axes": ["steps", "text"], "parameter_nodes": ["1", "2"], "values": {"steps": 2, "text": "c"}}


def loader_prompt():
    return {
        "1": {"class_type": "WIParameterFloat", "inputs": {"name": "cfg", "values": "4, 6, 8", "target": "ks.cfg"}},
        "2": {"class_type": "WIParameterCombo", "inputs": {"name": "ckpt", "values": "a, b", "target": "ckpt.ckpt_name", "previous": ["1", 0]}},
        "3": {"class_type": "WIIterator", "inputs": {"parameters": ["2", 0], "enabled": True, "mode": "matrix", "batch_name": "o"}},
        "4": {"class_type": "CheckpointLoaderSimple", "_meta": {"title": "ckpt"}, "inputs": {"ckpt_name": "a"}},
        "5": {"class_type": "KSampler", "_meta": {"title": "ks"}, "inputs": {"model": ["4", 0], "cfg": 7.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["4", 2]}},
        "7": {"class_type": "WISaveImage", "inputs": {"images": ["6", 0]}},
    }


def test_the_axis_feeding_a_loader_varies_slowest_in_run_order_but_not_in_cell_order():
    result = plan(loader_prompt())
    assert [c.values for c in result.combinations][:3] == [(4.0, "a"), (4.0, "b"), (6.0, "a")]  # user order
    order = result.run_order()
    ran = [result.combinations[i].values for i in order]
    assert ran == [(4.0, "a"), (6.0, "a"), (8.0, "a"), (4.0, "b"), (6.0, "b"), (8.0, "b")]
    assert sorted(order) == list(range(6))
    ckpt_changes = sum(1 for a, b in zip(ran, ran[1:]) if a[1] != b[1])
    assert ckpt_changes == 1  # the loader re-runs once per distinct checkpoint


def test_run_order_keeps_the_user_order_when_the_first_axis_is_already_the_expensive_one():
    prompt = loader_prompt()
    prompt["1"]["inputs"]["target"], prompt["2"]["inputs"]["target"] = "ckpt.ckpt_name", "ks.cfg"
    prompt["1"]["class_type"], prompt["2"]["class_type"] = "WIParameterCombo", "WIParameterFloat"
    prompt["1"]["inputs"]["values"], prompt["2"]["inputs"]["values"] = "a, b", "4, 6, 8"
    result = plan(prompt)
    assert list(result.run_order()) == list(range(6))


def test_linear_sweeps_run_in_user_order():
    prompt = loader_prompt()
    prompt["3"]["inputs"]["mode"] = "linear"
    assert list(plan(prompt).run_order()) == [0, 1, 2]


def test_plan_round_trips_through_json_for_resume():
    result = plan(loader_prompt())
    again = prompt_graph.SweepPlan.from_json(json.loads(json.dumps(result.to_json())))
    assert [c.values for c in again.combinations] == [c.values for c in result.combinations]
    assert again.cell_prompt(again.combinations[3]) == result.cell_prompt(result.combinations[3])
    assert list(again.run_order()) == list(result.run_order())


def test_run_order_as_entered_keeps_the_user_order():
    prompt = loader_prompt()
    prompt["3"]["inputs"]["run_order"] = "as entered"
    result = plan(prompt)
    assert list(result.run_order()) == list(range(6))
    assert list(prompt_graph.SweepPlan.from_json(result.to_json()).run_order()) == list(range(6))


def test_a_skipped_wired_parameter_gives_its_inputs_their_default():
    result = plan(base_prompt(target_a="7.steps", values_b="a, \"b"))  # unterminated quote: "text" is skipped
    assert [a.name for a in result.axes] == ["steps"]
    cell = result.cell_prompt(result.combinations[0])
    assert cell["9"]["inputs"]["text"] == "default"
    assert "9.text uses its default 'default'" in result.errors[0].message


def test_a_skipped_wired_parameter_without_a_default_is_a_plan_error():
    prompt = base_prompt(target_a="7.steps", values_b="a, \"b")
    with pytest.raises(PlanError, match="no default"):
        prompt_graph.plan_sweep(prompt, "3", parse=parameter_parser.parse, input_default=lambda c, i: None)


# ----------------------------------------------------------------------------- what each cell owns
def sharing_prompt():
    prompt = base_prompt(target_a="7.steps")
    prompt["10"] = {"class_type": "LoadImage", "inputs": {"image": "a.png"}}                    # IS_CHANGED: written
    prompt["11"] = {"class_type": "ImageBlur", "inputs": {"image": ["10", 0], "blur_radius": 1}}  # never written
    prompt["12"] = {"class_type": "PrimitiveString", "inputs": {"value": {"__value__": ["x"]}}}  # unwrapped in place
    return prompt


def plan_sharing(prompt):
    return prompt_graph.plan_sweep(prompt, "3", parse=parameter_parser.parse, node_is_written=lambda c: c == "LoadImage")


def test_cells_own_the_swept_memoised_and_dict_literal_nodes_and_share_the_rest():
    result = plan_sharing(sharing_prompt())
    # 7 and 9 receive values; 10 is memoised into; 12 holds a {"__value__": ...} literal.
    assert result.private_nodes == frozenset({"7", "9", "10", "12"})
    a, b = result.cell_prompt(result.combinations[0]), result.cell_prompt(result.combinations[5])
    for node_id in ("7", "9", "10", "12"):
        assert a[node_id] is not b[node_id] and a[node_id]["inputs"] is not b[node_id]["inputs"]
    for node_id in ("8", "11"):
        assert a[node_id] is b[node_id]
    assert not {"1", "2", "3"} & (a.keys() | b.keys())  # the parameters and the iterator: see the next test
    assert (a["7"]["inputs"]["steps"], a["9"]["inputs"]["text"]) == (1, "a")
    assert (b["7"]["inputs"]["steps"], b["9"]["inputs"]["text"]) == (2, "c")
    a["10"]["is_changed"] = [1.0]  # what ComfyUI's executor writes: never seen by another cell
    a["12"]["inputs"]["value"] = ["x"]  # what validation's unwrap writes
    assert "is_changed" not in b["10"] and b["12"]["inputs"]["value"] == {"__value__": ["x"]}
    assert "is_changed" not in result.cell_prompt(result.combinations[1])["10"]


def test_cells_leave_out_the_iterator_and_the_parameters_that_nothing_reads():
    """ComfyUI's queue deep-copies every node of an item on the worker thread between two prompts, and nothing
    in a cell reads the declarations once its values are written; the cell's prompt (history, PNG metadata)
    is then exactly what ran, and re-queued it runs that one cell instead of starting the sweep again."""
    prompt = base_prompt(target_a="7.steps")
    result = plan(prompt)
    for isolated in (False, True):
        cell = result.cell_prompt(result.combinations[3], isolated=isolated)
        assert set(cell) == set(prompt) - {"1", "2", "3"}
        assert not any(prompt_graph.ITERATOR_CLASS == n["class_type"] or n["class_type"] in prompt_graph.PARAMETER_CLASSES
                       for n in cell.values())
    assert set(result.template) == set(prompt)  # the journal and the run order still see the whole prompt
    prompt["13"] = {"class_type": "Note", "inputs": "not a dict"}  # deep-copied cells leave them out too
    malformed = plan(prompt)
    assert set(malformed.cell_prompt(malformed.combinations[0])) == set(prompt) - {"1", "2", "3"}


def test_a_parameter_read_as_data_stays_in_the_cell_with_what_it_reads():
    prompt = base_prompt(target_a="7.steps")
    prompt["13"] = {"class_type": "ShowAny", "inputs": {"anything": ["2", 0]}}  # reads parameter 2's chain output
    result = plan(prompt)
    cell = result.cell_prompt(result.combinations[0])
    assert {"1", "2"} <= set(cell) and "3" not in set(cell)  # 2 reads 1 through 'previous'; nothing reads 3
    assert cell["13"]["inputs"]["anything"] == ["2", 0]
    # A parameter whose own input receives a value stays too (the write needs its node).
    plain = plan(base_prompt(target_a="7.steps"))
    assert prompt_graph.unread_declarations(plain.template, "3", plain.sites) == frozenset({"1", "2", "3"})
    sites = [*plain.sites, (prompt_graph.Site("1", "values"),)]
    assert prompt_graph.unread_declarations(plain.template, "3", sites) == frozenset({"2", "3"})


def test_an_isolated_cell_and_a_plan_without_the_host_lookup_own_every_node():
    prompt = sharing_prompt()
    result = plan_sharing(prompt)
    isolated, other = result.cell_prompt(result.combinations[0], isolated=True), result.cell_prompt(result.combinations[0])
    assert all(isolated[n] is not other[n] and isolated[n]["inputs"] is not other[n]["inputs"] for n in isolated)
    assert isolated == other
    safe = prompt_graph.plan_sweep(prompt, "3", parse=parameter_parser.parse)
    assert safe.private_nodes is None
    a, b = safe.cell_prompt(safe.combinations[0]), safe.cell_prompt(safe.combinations[0])
    assert all(a[n] is not b[n] for n in a)


def test_shared_nodes_are_never_the_submitted_prompts_own_dicts():
    prompt = sharing_prompt()
    before = copy.deepcopy(prompt)
    result = plan_sharing(prompt)
    cell = result.cell_prompt(result.combinations[0])
    assert all(cell[n] is not prompt[n] and cell[n]["inputs"] is not prompt[n]["inputs"] for n in cell)
    prompt["11"]["inputs"]["blur_radius"] = 9  # the caller edits its prompt afterwards: the plan does not see it
    assert result.cell_prompt(result.combinations[1])["11"]["inputs"]["blur_radius"] == 1
    prompt["11"]["inputs"]["blur_radius"] = 1
    assert prompt == before


def test_the_private_node_set_survives_the_journal_and_old_journals_copy_everything():
    result = plan_sharing(sharing_prompt())
    stored = json.loads(json.dumps(result.to_json()))
    assert prompt_graph.SweepPlan.from_json(stored).private_nodes == result.private_nodes
    del stored["private_nodes"]
    old = prompt_graph.SweepPlan.from_json(stored)
    assert old.private_nodes is None
    assert old.cell_prompt(old.combinations[4]) == result.cell_prompt(result.combinations[4])


def test_a_malformed_node_makes_every_cell_a_deep_copy():
    prompt = sharing_prompt()
    prompt["13"] = {"class_type": "Note", "inputs": "not a dict"}
    result = plan_sharing(prompt)
    assert result.private_nodes is None
    a, b = result.cell_prompt(result.combinations[0]), result.cell_prompt(result.combinations[0])
    assert a == b and a["13"] is not b["13"] and a["11"]["inputs"]["image"] is not b["11"]["inputs"]["image"]


def test_run_order_of_a_big_sweep_is_lazy_and_a_permutation():
    """At 100,000 cells the order is computed per position (no list on the server loop), and it is still
    every cell exactly once with the expensive axis slowest."""
    prompt = loader_prompt()
    prompt["1"]["inputs"]["values"] = "1-1000"   # cfg, cheap: 1,000 values
    prompt["2"]["inputs"]["values"] = ", ".join(f"m{i}" for i in range(100))  # checkpoints, expensive
    prompt["1"]["class_type"] = "WIParameterInt"
    result = prompt_graph.plan_sweep(prompt, "3", parse=parameter_parser.parse,
                                     input_default=lambda c, i: "default", max_combinations=100_000)
    order = result.run_order()
    assert isinstance(order, prompt_graph.NestedOrder) and len(order) == 100_000
    assert sorted(order) == list(range(100_000))
    first = [result.combinations[i].values for i in order[:3]]
    assert first == [(1, "m0"), (2, "m0"), (3, "m0")]
    assert result.combinations[order[-1]].values == (1000, "m99") and order[-1] == order[99_999]


def test_a_skipped_parameter_does_not_copy_the_prompts_text_in_the_hook():
    """The template used to be a JSON round trip of the whole prompt when a parameter was skipped: every
    string copied (a skipped parameter's values text may be megabytes) inside the onprompt hook."""
    big = "1," * 200_000 + "x"
    result = plan(base_prompt(target_a="7.steps", values_b=big))  # "text" is skipped (invalid), wired into 9.text
    assert [a.name for a in result.axes] == ["steps"]
    assert result.template["2"]["inputs"]["values"] is big  # shared, not copied
    assert result.template["9"]["inputs"]["text"] == "default"


def test_a_skipped_parameter_next_to_a_non_json_literal_still_plans():
    """Another pack's onprompt handler may leave a literal JSON cannot encode; the JSON round trip raised
    TypeError there, and the hook's boundary then queued the sweep unexpanded."""
    prompt = base_prompt(target_a="7.steps", values_b='a, "b')  # "text" is skipped: unterminated quote
    marker = {1, 2}  # a set: not JSON
    prompt["8"]["inputs"]["extra"] = marker
    result = plan(prompt)
    assert [a.name for a in result.axes] == ["steps"] and result.template["8"]["inputs"]["extra"] is marker


def test_a_shared_block_is_not_copied_by_deepcopy_and_encodes_as_a_plain_dict():
    """Issue 11 (worker idle between cells): ComfyUI deep-copies each queue item as it starts; the cell's own
    read-only blocks are shared by that copy instead of copied."""
    import copy
    import json

    from comfyui_workflow_iterator.core.prompt_graph import SharedBlock

    block = SharedBlock(batch_id="b", index=3, values={"cfg": 7.5})
    extra = {"client_id": "c", "extra_pnginfo": {"wi_cell": block}}
    copied = copy.deepcopy(extra)
    assert copied["extra_pnginfo"] is not extra["extra_pnginfo"]  # everything else is copied as before
    assert copied["extra_pnginfo"]["wi_cell"] is block
    assert json.loads(json.dumps(copied)) == {"client_id": "c", "extra_pnginfo": {"wi_cell": {"batch_id": "b", "index": 3, "values": {"cfg": 7.5}}}}
