"""Issue 13.6: V3 dynamic inputs have dotted names; targets and combo options/defaults must find them.

The stand-in spec mimics ComfyUI 0.8.0's ``ResizeImageMaskNode`` (comfy_extras/nodes_post_processing.py: a
``DynamicCombo`` ``resize_type`` whose options hold ``multiplier`` / ``width`` / ``crop`` ...) and an
``Autogrow`` input, as ``INPUT_TYPES()`` returns them through ``comfy_api.latest._io.add_to_dict_v1``.
"""
from __future__ import annotations

import types

import pytest

from comfyui_workflow_iterator.core import input_spec, parameter_parser, prompt_graph
from comfyui_workflow_iterator.nodes import _comfy

CROP = ("COMBO", {"options": ["disabled", "center"], "default": "center"})
RESIZE_TYPES = {
    "required": {
        "input": ("COMFY_MATCHTYPE_V3", {}),
        "resize_type": ("COMFY_DYNAMICCOMBO_V3", {"options": [
            {"key": "scale by multiplier", "inputs": {"required": {"multiplier": ("FLOAT", {"default": 1.0, "min": 0.01})}}},
            {"key": "scale dimensions", "inputs": {"required": {
                "width": ("INT", {"default": 512}), "height": ("INT", {"default": 512}), "crop": CROP}}},
            {"key": "nested", "inputs": {"required": {"sub": ("COMFY_DYNAMICCOMBO_V3", {"options": [
                {"key": "deep", "inputs": {"required": {"method": (["nearest", "bilinear"], {})}}}]})}}},
        ]}),
        "scale_method": (["nearest-exact", "bilinear", "area"], {"default": "area"}),
    },
    "optional": {
        "steps": ("COMFY_AUTOGROW_V3", {"template": {"input": {"required": {"step": ("INT", {"default": 20})}},
                                                      "prefix": "step", "min": 1, "max": 3}}),
        "named": ("COMFY_AUTOGROW_V3", {"template": {"input": {"required": {"x": ("FLOAT", {"default": 0.5})}},
                                                      "names": ["left", "right"], "min": 1}}),
        "slot": ("COMFY_DYNAMICSLOT_V3", {"inputs": {"required": {"strength": ("FLOAT", {"default": 0.75})}}}),
        "legacy.dotted": ("INT", {"default": 7}),
    },
}


class ResizeImageMaskNode:
    @classmethod
    def INPUT_TYPES(cls):
        return RESIZE_TYPES


@pytest.fixture
def comfy_nodes(monkeypatch):
    module = types.ModuleType("nodes")
    module.NODE_CLASS_MAPPINGS = {"ResizeImageMaskNode": ResizeImageMaskNode}  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "nodes", module)
    return module


def resize_prompt(target: str, values: str = "1, 2", value_type: str = "FLOAT", title: str = "Resize") -> dict:
    return {
        "1": {"class_type": "WIParameter", "inputs": {"name": "p", "type": value_type, "values": values, "target": target}},
        "3": {"class_type": "WIIterator", "inputs": {"parameters": ["1", 0], "enabled": True, "mode": "matrix"}},
        "5": {"class_type": "ResizeImageMaskNode", "_meta": {"title": title},
              "inputs": {"input": ["4", 0], "resize_type": "scale by multiplier", "resize_type.multiplier": 1.0,
                         "steps.step0": 20, "legacy.dotted": 7}},
    }


def plan(prompt, **kwargs):
    return prompt_graph.plan_sweep(prompt, "3", parse=parameter_parser.parse, **kwargs)


# ------------------------------------------------------------------------------------------------ targets
@pytest.mark.parametrize("target", ["ResizeImageMaskNode.resize_type.multiplier", "Resize.resize_type.multiplier",
                                    "5.resize_type.multiplier", "#5.resize_type.multiplier"])
def test_a_target_with_a_dotted_input_name_resolves_to_that_input(target):
    result = plan(resize_prompt(target))
    assert not result.errors
    assert [(s.node_id, s.input_name) for s in result.sites[0]] == [("5", "resize_type.multiplier")]
    assert result.cell_prompt(result.combinations[1])["5"]["inputs"]["resize_type.multiplier"] == 2.0


def test_a_title_with_dots_still_resolves():
    result = plan(resize_prompt("v1.5 resize.resize_type.multiplier", title="v1.5 resize"))
    assert [(s.node_id, s.input_name) for s in result.sites[0]] == [("5", "resize_type.multiplier")]


def test_the_longest_input_name_that_exists_wins_over_a_shorter_one():
    prompt = resize_prompt("Resize.legacy.dotted", value_type="INT")
    prompt["6"] = {"class_type": "Other", "_meta": {"title": "Resize.legacy"}, "inputs": {"dotted": 0}}
    result = plan(prompt)
    assert [(s.node_id, s.input_name) for s in result.sites[0]] == [("5", "legacy.dotted")]


@pytest.mark.parametrize("target,message", [
    ("Resize.resize_type.nope", "node 5 (ResizeImageMaskNode) has no input 'resize_type.nope'"),
    ("Nope.resize_type.multiplier", "no node has the id, title or type 'Nope.resize_type'"),
    ("resize_type", "must look like"),
    (".multiplier", "must look like"),
])
def test_unresolvable_dotted_targets_say_what_is_missing(target, message):
    prompt = resize_prompt(target)
    prompt["2"] = {"class_type": "WIParameterInt", "inputs": {"name": "ok", "values": "1", "target": "5.steps.step0",
                                                             "previous": ["1", 0]}}
    prompt["3"]["inputs"]["parameters"] = ["2", 0]
    result = plan(prompt)
    assert [a.name for a in result.axes] == ["ok"]
    assert message in result.errors[0].message


# ------------------------------------------------------------------------------------------------ options / defaults
@pytest.mark.parametrize("name,options", [
    ("resize_type", ["scale by multiplier", "scale dimensions", "nested"]),      # a dynamic combo's own keys
    ("resize_type.crop", ["disabled", "center"]),                               # V3 combo nested in an option
    ("resize_type.sub.method", ["nearest", "bilinear"]),                        # two levels deep, V1 list form
    ("scale_method", ["nearest-exact", "bilinear", "area"]),                    # top level, as before
    ("resize_type.multiplier", None),                                           # not a combo
    ("resize_type.nope", None),
])
def test_combo_options_of_nested_inputs(comfy_nodes, name, options):
    assert _comfy.combo_options("ResizeImageMaskNode", name) == options


@pytest.mark.parametrize("name,default", [
    ("resize_type.multiplier", 1.0),
    ("resize_type.width", 512),
    ("resize_type.crop", "center"),
    ("resize_type", "scale by multiplier"),
    ("steps.step0", 20), ("steps.step2", 20), ("steps.step3", None),           # autogrow: prefix + index < max
    ("named.right", 0.5), ("named.middle", None),                               # autogrow: fixed names
    ("slot.strength", 0.75),
    ("legacy.dotted", 7),                                                      # an exact dotted V1 name first
    ("scale_method", "area"),
])
def test_defaults_of_nested_inputs(comfy_nodes, name, default):
    assert _comfy.input_default("ResizeImageMaskNode", name) == default


def test_a_combo_sweep_over_a_nested_input_expands_its_wildcard(comfy_nodes):
    prompt = resize_prompt("Resize.resize_type.crop", values="*", value_type="COMBO")
    prompt["5"]["inputs"]["resize_type.crop"] = "center"
    result = plan(prompt, options_for=_comfy.combo_options)
    assert result.axes[0].values == ("disabled", "center")


def test_a_skipped_parameter_wired_into_a_nested_input_falls_back_to_its_default(comfy_nodes):
    prompt = resize_prompt("", values="oops")
    prompt["5"]["inputs"]["resize_type.multiplier"] = ["1", 1]
    prompt["2"] = {"class_type": "WIParameterInt", "inputs": {"name": "ok", "values": "1, 2", "target": "5.steps.step0",
                                                             "previous": ["1", 0]}}
    prompt["3"]["inputs"]["parameters"] = ["2", 0]
    result = plan(prompt, input_default=_comfy.input_default)
    assert result.template["5"]["inputs"]["resize_type.multiplier"] == 1.0
    assert "uses its default 1.0" in result.errors[0].message


def test_a_self_referencing_spec_does_not_recurse_forever():
    looping: dict = {"required": {}}
    looping["required"]["a"] = ("COMFY_DYNAMICSLOT_V3", {"inputs": looping})
    assert input_spec.find_input(looping, "a." * 40 + "b") is None
