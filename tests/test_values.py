"""Tests for core/values.py: the one label formatter and the one JSON converter, and that others use them."""
from __future__ import annotations

import json
from enum import Enum
from fractions import Fraction

import pytest

from comfyui_workflow_iterator.core import grid, iteration_state, manifest, paths, prompt_graph, values


@pytest.mark.parametrize(("value", "type_", "label"), [
    (0.1 + 0.2, "FLOAT", "0.3"),
    (7.0, "FLOAT", "7.0"),
    (-2.0, "FLOAT", "-2.0"),
    (1e-5, "FLOAT", "1e-05"),
    (float("nan"), "FLOAT", "nan"),
    (True, "BOOLEAN", "true"),
    (42, "SEED", "42"),
    (None, "STRING", "\u2014"),
    ("sdxl/juggernaut_v9.safetensors", "COMBO", "juggernaut_v9"),
    ("C:\\models\\x.ckpt", "STRING", "x"),
    ("red/blue hair", "STRING", "red/blue hair"),
    ("a/b", "INT", "a/b"),
])
def test_format_label(value: object, type_: str, label: str) -> None:
    assert values.format_label(value, type_) == label


def test_grid_and_manifest_use_the_one_formatter() -> None:
    assert grid.format_value is values.format_label
    record = manifest.batch_record({"axes": [{"name": "cfg", "type": "FLOAT", "values": [0.1 + 0.2]}], "cells": []})
    assert record.axes[0].display_labels() == ("0.3",)
    assert manifest.sweep_definition(record)["axes"][0]["labels"] == ["0.3"]


def test_cell_file_names_format_values_with_the_one_formatter() -> None:
    assert paths.cell_filename(0, {"cfg": 0.1 + 0.2}, 0, node_id="9") == "c00000_cfg-0.3_n9_0.png"
    assert paths.cell_filename(1, {"ckpt": "sdxl/juggernaut_v9.safetensors"}, 0, node_id="9") == "c00001_ckpt-juggernaut_v9_n9_0.png"


class _Colour(str, Enum):
    RED = "red"


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), ("x", "x"), (True, True), (3, 3), (0.5, 0.5),
    (float("inf"), "inf"), (float("nan"), "nan"),
    (_Colour.RED, "red"), (Fraction(1, 2), 0.5),
    ((1, [2, (3,)]), [1, [2, [3]]]), ({1: {"a": (1,)}}, {"1": {"a": [1]}}),
    (object.__new__(type("Thing", (), {"__str__": lambda self: "thing"})), "thing"),
])
def test_json_value(value: object, expected: object) -> None:
    got = values.json_value(value)
    assert got == expected and type(got) is type(expected)
    json.dumps(got, allow_nan=False)


def test_json_value_cuts_only_fallback_text_never_user_strings() -> None:
    long = "p" * (values.MAX_FALLBACK_TEXT * 3)
    assert values.json_value(long) == long
    blob = type("Blob", (), {"__str__": lambda self: long})()
    assert len(values.json_value(blob)) == values.MAX_FALLBACK_TEXT


def test_deep_nesting_is_stringified() -> None:
    nested: list[object] = []
    for _ in range(values.MAX_DEPTH + 5):
        nested = [nested]
    json.dumps(values.json_value(nested), allow_nan=False)


def test_the_other_modules_convert_through_the_one_converter() -> None:
    for value in (float("nan"), (1, 2), {"a": {1}}, _Colour.RED):
        expected = values.json_value(value)
        assert prompt_graph.json_ready(value) == expected
        assert iteration_state._json_ready(value) == expected
