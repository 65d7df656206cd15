""""Sweep the winners": each value's text in the value syntax reads back exactly through the real parser, and the
workflow a cell (or the viewer's export) fills in uses that one rule."""
from __future__ import annotations

import pytest

from core import prompt_graph
from core.parameter_parser import parse
from core.values import value_text

AWKWARD = [
    ("STRING", ["a, b", 'say "hi"', "file:prompts.txt", "FILE:x", "1-5", "", "ünïcødé ✓ 日本", "*x?", "random:3",
                "plain", '"leading quote', "tab\tinside", "a,b,,c", "0.1"]),
    ("FLOAT", [0.1, 0.30000000000000004, 1e-05, 1e20, -0.5, 7.0, 2.5e-300, 0.0]),
    ("INT", [-1, 0, 5, 10**18]),
    ("SEED", [0, 42, 18446744073709551615]),
    ("BOOLEAN", [True, False]),
    ("COMBO", ["euler", "dpmpp_2m*", "a, b"]),
]


@pytest.mark.parametrize(("type_", "values"), AWKWARD, ids=[t for t, _ in AWKWARD])
def test_joined_value_texts_parse_back_to_the_values(type_, values):
    text = ", ".join(value_text(v, type_) for v in values)
    options = [str(v) for v in values] if type_ == "COMBO" else None
    assert parse(text, type_, options=options) == values


@pytest.mark.parametrize("value", ["a, b", "file:x", "*", "", 'q"q'])
def test_each_awkward_string_alone_parses_back(value):
    assert parse(value_text(value), "STRING") == [value]


def test_floats_are_written_exactly_not_as_labels():
    assert value_text(0.1, "FLOAT") == "0.1"
    assert value_text(0.1 + 0.2, "FLOAT") == "0.30000000000000004"  # the label says 0.3; the value is not 0.3


@pytest.mark.parametrize(("value", "reason"), [("two\nlines", "line break"), (" padded", "trimmed"),
                                                (float("nan"), "finite"), (None, "None")])
def test_values_the_syntax_cannot_hold_are_refused_with_the_reason(value, reason):
    with pytest.raises(ValueError, match=reason):
        value_text(value)


def test_a_cell_workflow_keeps_a_file_like_value_literal():
    # Regression: the cell PNG's workflow wrote "file:prompts.txt" unquoted, so loading it read a file instead.
    workflow = {"nodes": [{"id": 4, "type": "WIParameterString", "widgets_values": ["p", "file:a.txt, b", ""]}]}
    cell = prompt_graph.workflow_for_cell(workflow, {"4": "file:prompts.txt"})
    text = cell["nodes"][0]["widgets_values"][1]
    assert parse(text, "STRING") == ["file:prompts.txt"]


def test_workflow_with_values_text_fills_only_parameter_nodes():
    workflow = {"nodes": [{"id": 1, "type": "WIParameter", "widgets_values": ["cfg", "FLOAT", "1, 2", "KSampler.cfg"]},
                          {"id": 2, "type": "KSampler", "widgets_values": [1, 2, 3]}]}
    out = prompt_graph.workflow_with_values_text(workflow, {"1": "7.0, 8.5", "2": "x"})
    assert out["nodes"][0]["widgets_values"] == ["cfg", "FLOAT", "7.0, 8.5", "KSampler.cfg"]
    assert out["nodes"][1]["widgets_values"] == [1, 2, 3]
    assert workflow["nodes"][0]["widgets_values"][2] == "1, 2"  # not modified in place
