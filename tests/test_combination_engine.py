"""Tests for core/combination_engine.py: matrix and linear ordering, laziness, limits and validation."""
from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comfyui_workflow_iterator.core.combination_engine import (
    Axis,
    Combination,
    CombinationSet,
    cartesian,
    linear_zip,
)
from comfyui_workflow_iterator.core.errors import LimitExceededError, ParamSyntaxError, WIError

CFG = Axis("cfg", (5.0, 7.5, 10.0), "FLOAT")
SAMPLER = Axis("sampler", ("euler", "ddim"), "COMBO")
STEPS = Axis("steps", (20,), "INT")


def test_matrix_first_axis_varies_slowest() -> None:
    cells = cartesian([CFG, SAMPLER])
    assert [c.values for c in cells] == [
        (5.0, "euler"), (5.0, "ddim"),
        (7.5, "euler"), (7.5, "ddim"),
        (10.0, "euler"), (10.0, "ddim"),
    ]
    assert [c.index for c in cells] == list(range(6))
    assert cells[3].coords == (1, 1)


def test_linear_advances_together_and_cycles_shorter_axes() -> None:
    cells = linear_zip([CFG, SAMPLER])
    assert len(cells) == 3
    assert [c.values for c in cells] == [(5.0, "euler"), (7.5, "ddim"), (10.0, "euler")]
    assert [c.coords for c in cells] == [(0, 0), (1, 1), (2, 0)]


def test_linear_without_cycle_rejects_unequal_lengths_naming_them() -> None:
    with pytest.raises(ParamSyntaxError) as info:
        linear_zip([CFG, SAMPLER], cycle=False)
    assert info.value.param == "sampler"
    assert "cfg=3, sampler=2" in str(info.value)


def test_linear_without_cycle_accepts_equal_lengths() -> None:
    cells = linear_zip([SAMPLER, Axis("seed", (1, 2))], cycle=False)
    assert [c.values for c in cells] == [("euler", 1), ("ddim", 2)]


def test_as_dict_maps_axis_names_to_values() -> None:
    cells = cartesian([CFG, SAMPLER, STEPS])
    assert cells[5].as_dict(cells.axes) == {"cfg": 10.0, "sampler": "ddim", "steps": 20}


def test_as_dict_rejects_mismatched_axes() -> None:
    with pytest.raises(ValueError):
        cartesian([CFG, SAMPLER])[0].as_dict([CFG])


def test_negative_index_and_slice() -> None:
    cells = cartesian([CFG, SAMPLER])
    assert cells[-1] == cells[5] == Combination(5, (2, 1), (10.0, "ddim"))
    assert cells[1:3] == [cells[1], cells[2]]
    with pytest.raises(IndexError):
        cells[6]
    with pytest.raises(IndexError):
        cells[-7]


def test_count_is_known_without_materialising_a_large_product() -> None:
    axes = [Axis(f"a{i}", tuple(range(10))) for i in range(4)]
    cells = cartesian(axes, max_combinations=10**4)
    assert len(cells) == 10**4
    assert cells[1234].values == (1, 2, 3, 4)


def test_limit_is_checked_on_the_count_before_any_cell() -> None:
    # 1000 ** 8 cells: materialising any of them as a list would never finish.
    axes = [Axis(f"a{i}", tuple(range(1000))) for i in range(8)]
    with pytest.raises(LimitExceededError, match="too many combinations") as info:
        cartesian(axes)
    assert "limit is 100,000" in str(info.value)


def test_limit_is_configurable_and_inclusive() -> None:
    assert len(cartesian([CFG, SAMPLER], max_combinations=6)) == 6
    with pytest.raises(LimitExceededError):
        cartesian([CFG, SAMPLER], max_combinations=5)
    with pytest.raises(LimitExceededError):
        linear_zip([CFG], max_combinations=2)


@pytest.mark.parametrize("build", [cartesian, linear_zip])
def test_zero_axes_is_an_error(build) -> None:
    with pytest.raises(ParamSyntaxError, match="no parameters"):
        build([])


@pytest.mark.parametrize("build", [cartesian, linear_zip])
def test_axis_without_values_is_an_error(build) -> None:
    with pytest.raises(ParamSyntaxError, match="no values") as info:
        build([CFG, Axis("empty", ())])
    assert info.value.param == "empty"


@pytest.mark.parametrize("build", [cartesian, linear_zip])
def test_duplicate_axis_names_are_an_error(build) -> None:
    with pytest.raises(ParamSyntaxError, match='two parameters are named "cfg"'):
        build([CFG, Axis("cfg", (1.0,))])


def test_errors_are_wi_errors() -> None:
    with pytest.raises(WIError):
        cartesian([])


def test_axis_stores_tuples_and_checks_label_count() -> None:
    axis = Axis("lora", ["a", "b"], "STRING", labels=["A", "B"])  # type: ignore[arg-type]
    assert axis.values == ("a", "b") and axis.labels == ("A", "B")
    assert axis.label(1) == "B" and Axis("x", (1.5,)).label(0) == "1.5"
    with pytest.raises(ValueError, match="2 values but 1 labels"):
        Axis("lora", ("a", "b"), labels=("A",))


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        CombinationSet((CFG,), "diagonal")  # type: ignore[arg-type]


def test_index_of_inverts_coords_of_in_matrix_mode() -> None:
    cells = cartesian([CFG, SAMPLER, STEPS])
    for cell in cells:
        assert cells.index_of(cell.coords) == cell.index
    with pytest.raises(ValueError):
        linear_zip([CFG]).index_of((0,))


def test_iteration_is_lazy() -> None:
    axes = [Axis(f"a{i}", tuple(range(10))) for i in range(4)]
    first = next(iter(cartesian(axes)))
    assert first.values == (0, 0, 0, 0)


# ---------------------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------------------

axis_lengths = st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=4)


def _axes(lengths: list[int]) -> list[Axis]:
    return [Axis(f"p{i}", tuple(f"p{i}v{j}" for j in range(n))) for i, n in enumerate(lengths)]


@settings(max_examples=150, deadline=None)
@given(axis_lengths)
def test_matrix_count_is_the_product_and_order_matches_itertools_product(lengths: list[int]) -> None:
    axes = _axes(lengths)
    cells = cartesian(axes)
    assert len(cells) == math.prod(lengths)
    expected = list(itertools.product(*(a.values for a in axes)))
    assert [c.values for c in cells] == expected
    assert [cells[i].values for i in range(len(cells))] == expected
    assert [cells[i - len(cells)].values for i in range(len(cells))] == expected


@settings(max_examples=150, deadline=None)
@given(axis_lengths)
def test_linear_count_is_the_longest_length(lengths: list[int]) -> None:
    axes = _axes(lengths)
    cells = linear_zip(axes)
    assert len(cells) == max(lengths)
    assert [c.values for c in cells] == [cells[i].values for i in range(len(cells))]


@settings(max_examples=150, deadline=None)
@given(axis_lengths, st.sampled_from(["matrix", "linear"]))
def test_coords_map_back_to_values(lengths: list[int], mode: str) -> None:
    axes = _axes(lengths)
    cells = cartesian(axes) if mode == "matrix" else linear_zip(axes)
    for cell in cells:
        assert cell.values == tuple(axis.values[c] for axis, c in zip(axes, cell.coords))
        assert cell.coords == cells.coords_of(cell.index)
    if mode == "matrix":
        assert len({c.coords for c in cells}) == len(cells)  # every cell is a different combination
