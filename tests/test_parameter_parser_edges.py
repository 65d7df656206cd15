"""Edges of core.parameter_parser that a mutation run (tools/mutation.py) showed no other test pinned: each
test here fails under the one-line bug named in its docstring."""
from __future__ import annotations

import pytest

from comfyui_workflow_iterator.core import parameter_parser as pp
from comfyui_workflow_iterator.core.errors import ParamSyntaxError


def test_a_float_token_of_exactly_the_length_limit_is_read_and_one_longer_is_refused():
    """``len(text) > _MAX_NUMBER_CHARS`` (not ``>=``)."""
    at_limit = "1." + "0" * (pp._MAX_NUMBER_CHARS - 2)
    assert len(at_limit) == pp._MAX_NUMBER_CHARS and pp.parse(at_limit, "FLOAT") == [1.0]
    with pytest.raises(ParamSyntaxError, match="invalid FLOAT value"):
        pp.parse(at_limit + "0", "FLOAT")


def test_a_whole_quoted_line_of_a_multiline_string_list_is_literal_text():
    """``_string_line_field`` marks the field ``quoted=True``, which keeps ``"file:..."`` from being read as a file."""
    assert pp.parse('"file:missing.txt"\nplain', "STRING") == ["file:missing.txt", "plain"]
    with pytest.raises(ParamSyntaxError, match="missing.txt"):
        pp.parse("file:missing.txt\nplain", "STRING")  # unquoted it is a file list (and there is no root)


@pytest.mark.parametrize(("text", "expected"), [("2.5-0", [2.5, 1.5, 0.5]), ("0-2.5", [0.0, 1.0, 2.0])])
def test_a_float_range_without_step_moves_by_one_either_way(text, expected):
    """``Fraction(1 if hi >= lo else -1)``: down ranges step by -1, not -2."""
    assert pp.parse(text, "FLOAT") == expected
