"""The WIGridCompositor node's widgets come from core's GridOptions: one source of defaults and bounds."""
from __future__ import annotations

import dataclasses

import pytest

from comfyui_workflow_iterator.core.grid import GridOptions, options_from_node
from comfyui_workflow_iterator.nodes.grid_node import WIGridCompositor


def _defaults() -> dict[str, object]:
    return {f.name: f.default for f in dataclasses.fields(GridOptions)}


def test_node_input_defaults_equal_core_option_defaults() -> None:
    # The node once defaulted cell_gap to 8 while core used 4.
    required = WIGridCompositor.INPUT_TYPES()["required"]
    core = _defaults()
    for name, (_, spec) in required.items():
        expected = "" if core[name] is None else core[name]
        assert spec["default"] == expected, name


def test_node_defaults_give_exactly_the_core_defaults() -> None:
    widgets = {name: spec["default"] for name, (_, spec) in WIGridCompositor.INPUT_TYPES()["required"].items()}
    assert options_from_node(widgets) == GridOptions()


def test_node_bounds_are_the_bounds_core_accepts() -> None:
    required = WIGridCompositor.INPUT_TYPES()["required"]
    for name, (kind, spec) in required.items():
        if kind != "INT":
            continue
        assert getattr(options_from_node({name: spec["min"]}), name) == spec["min"]
        with pytest.raises(ValueError, match=name):
            options_from_node({name: spec["min"] - 1})
        if "max" in spec:
            assert getattr(options_from_node({name: spec["max"]}), name) == spec["max"]
            with pytest.raises(ValueError, match=name):
                options_from_node({name: spec["max"] + 1})


def test_node_choices_are_the_choices_core_accepts() -> None:
    required = WIGridCompositor.INPUT_TYPES()["required"]
    for name, (kind, spec) in required.items():
        if isinstance(kind, list):
            assert spec["default"] in kind
            for choice in kind:
                GridOptions(**{name: choice})


def test_node_value_out_of_range_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="cell_gap"):
        options_from_node({"cell_gap": -1})
