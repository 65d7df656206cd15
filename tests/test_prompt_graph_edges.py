"""Edges of core.prompt_graph that a mutation run (tools/mutation.py) showed no other test pinned: each test
here fails under the one-line bug named in its docstring."""
from __future__ import annotations

import pytest

from comfyui_workflow_iterator.core import parameter_parser, prompt_graph


def test_guess_image_size_takes_the_lowest_node_with_literal_positive_sizes():
    """``if not isinstance(inputs, Mapping): continue`` (dropping the ``not`` finds nothing)."""
    prompt = {
        "10": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 32}},
        "2": {"class_type": "Odd", "inputs": "not a mapping"},
        "3": {"class_type": "EmptyLatentImage", "inputs": {"width": True, "height": 8}},  # a bool is not a size
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": ["1", 0], "height": 8}},  # a link is not a size
        "x": {"class_type": "Later", "inputs": {"width": 1, "height": 1}},  # non-numeric ids sort last
    }
    assert prompt_graph.guess_image_size(prompt) == (64, 32)
    assert prompt_graph.guess_image_size({"1": {"inputs": {"width": 0, "height": 5}}}) is None


@pytest.mark.parametrize(("class_type", "cost"), [("CheckpointLoaderSimple", 1000), ("LoadImage", 200),
                                                  ("KSampler", 50), ("CLIPTextEncode", 5), ("VAEDecode", 5),
                                                  ("ImageBlur", 1)])
def test_node_cost_ranks_loaders_over_samplers_over_image_maths(class_type, cost):
    """``fragment in name`` (not ``not in``): the first matching fragment decides the cost."""
    assert prompt_graph.node_cost(class_type) == cost


def test_invalidated_nodes_are_the_sources_and_everything_downstream_of_them():
    """``_consumers`` follows links that are lists (``type(value) is list``, not ``is not``)."""
    prompt = {
        "1": {"class_type": "A", "inputs": {"x": 1}},
        "2": {"class_type": "B", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "C", "inputs": {"image": ["2", 0], "other": ["4", 0]}},
        "4": {"class_type": "D", "inputs": {}},
    }
    assert prompt_graph.invalidated_nodes(prompt, ["1"]) == {"1", "2", "3"}
    assert prompt_graph.invalidated_nodes(prompt, ["4"]) == {"4", "3"}


def test_each_skipped_parameter_names_only_its_own_defaulted_input():
    """The note "uses its default" is added to the skipped parameter's own error only (``and``, not ``or``)."""
    prompt = {
        "1": {"class_type": "WIParameterInt", "inputs": {"name": "w", "values": "1, x"}},
        "2": {"class_type": "WIParameterInt", "inputs": {"name": "h", "values": "2, y", "previous": ["1", 0]}},
        "5": {"class_type": "WIParameterInt", "inputs": {"name": "ok", "values": "3, 4", "previous": ["2", 0]}},
        "3": {"class_type": "WIIterator", "inputs": {"parameters": ["5", 0], "enabled": True, "mode": "matrix", "batch_name": "t"}},
        "4": {"class_type": "EmptyImage", "inputs": {"width": ["1", 1], "height": ["2", 1], "batch_size": 1, "color": ["5", 1]}},
        "6": {"class_type": "WISaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "WI"}},
    }
    plan = prompt_graph.plan_sweep(prompt, "3", parse=parameter_parser.parse, input_default=lambda c, i: {"width": 512, "height": 256}[i])
    notes = {e.name: e.message.split("(skipped: ")[1:] for e in plan.errors}
    assert notes == {"w": ["4.width uses its default 512)"], "h": ["4.height uses its default 256)"]}
    assert plan.total == 2
