"""Tests for core/parameter_parser.py: every value syntax form, its errors, file: safety and limits."""
from __future__ import annotations

import csv
import math
import os
import pickle
import random
import re
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from comfyui_workflow_iterator.core import parameter_parser as pp
from comfyui_workflow_iterator.core.errors import (
    InvalidBatchState,
    LimitExceededError,
    ParamSyntaxError,
    UnknownBatchError,
    WIError,
)

SAMPLERS = ["euler", "euler_ancestral", "heun", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_sde", "ddim", "uni_pc"]


# ---------------------------------------------------------------------------------------------------------------
# Valid forms
# ---------------------------------------------------------------------------------------------------------------

VALID = [
    # (text, type, expected)
    ("1", "INT", [1]),
    ("1, 2, 3", "INT", [1, 2, 3]),
    ("+4", "INT", [4]),
    ("1-5", "INT", [1, 2, 3, 4, 5]),
    ("1 - 5", "INT", [1, 2, 3, 4, 5]),
    ("1-10 (+2)", "INT", [1, 3, 5, 7, 9]),
    ("1-10(+3)", "INT", [1, 4, 7, 10]),
    ("1-10 (2)", "INT", [1, 3, 5, 7, 9]),
    ("10-1 (-3)", "INT", [10, 7, 4, 1]),
    ("10-1", "INT", [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]),
    ("5-5", "INT", [5]),
    ("1-2 (+5)", "INT", [1]),
    ("1-10 [5]", "INT", [1, 3, 6, 8, 10]),  # 1, 3.25, 5.5, 7.75, 10 rounded half up
    ("1-4 [3]", "INT", [1, 3, 4]),  # 1, 2.5, 4: half up gives 3 where round-half-even would give 2
    ("1-10 [1]", "INT", [1]),
    ("0-4 [5]", "INT", [0, 1, 2, 3, 4]),
    ("1, 5-7, 10", "INT", [1, 5, 6, 7, 10]),
    ("-1, 5", "INT", [-1, 5]),
    ("-5..5 (+5)", "INT", [-5, 0, 5]),
    ("-10..-2 (+2)", "INT", [-10, -8, -6, -4, -2]),
    ("-2 .. -4", "INT", [-2, -3, -4]),
    ("3..1", "INT", [3, 2, 1]),
    ("-6..6 [3]", "INT", [-6, 0, 6]),
    ("1\n2\n\n3", "INT", [1, 2, 3]),  # newlines act like commas for non-STRING types
    ("1,\r\n2", "INT", [1, 2]),
    ("1,,2,", "INT", [1, 2]),  # empty items are ignored
    ("-0.5", "FLOAT", [-0.5]),
    ("7", "FLOAT", [7.0]),
    ("1e-3, 2.5E2, .5, 5.", "FLOAT", [0.001, 250.0, 0.5, 5.0]),
    ("0.5-1.5 (+0.25)", "FLOAT", [0.5, 0.75, 1.0, 1.25, 1.5]),
    ("0.1-0.3 (+0.1)", "FLOAT", [0.1, 0.2, 0.3]),
    ("0.3-0.1 (-0.1)", "FLOAT", [0.3, 0.2, 0.1]),
    ("0-1 (+0.1)", "FLOAT", [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
    ("0-2.5", "FLOAT", [0.0, 1.0, 2.0]),  # no step: moves by 1, like A1111
    ("0-1 [3]", "FLOAT", [0.0, 0.5, 1.0]),
    ("0-1 [5]", "FLOAT", [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("-1.5..1.5 (+1.5)", "FLOAT", [-1.5, 0.0, 1.5]),
    ("1e-3-3e-3 (+1e-3)", "FLOAT", [0.001, 0.002, 0.003]),
    ("0-1 (+0.3333333333)", "FLOAT", [0.0, 0.3333333333, 0.6666666666, 1.0]),  # end within 1e-9 of a step
    # A step a hair over 1/3: (end - start) / step is 2.9999999999994, within the tolerance of 3, so the end is
    # included, and snapped to exactly 1.0 rather than start + 3 * step = 1.0000000000002.
    ("0-1 (+0.3333333333334)", "FLOAT", [0.0, 0.3333333333334, 0.6666666666668, 1.0]),
    ("a, b", "STRING", ["a", "b"]),
    ('"a, b", c', "STRING", ["a, b", "c"]),
    ('"say ""hi""", x', "STRING", ['say "hi"', "x"]),
    ('  spaced  ,  out ', "STRING", ["spaced", "out"]),
    ("1-5", "STRING", ["1-5"]),  # STRING has no ranges
    ('"file:not a file"', "STRING", ["file:not a file"]),  # quoted text is always literal
    ('"", x', "STRING", ["", "x"]),  # a quoted empty value is kept on purpose
    ("a photo, detailed\n\n  a cat, cute  \n", "STRING", ["a photo, detailed", "a cat, cute"]),
    ('first, line\n"quoted, line"', "STRING", ["first, line", "quoted, line"]),
    ("true, False, YES, no, 1, 0, on, OFF", "BOOLEAN", [True, False, True, False, True, False, True, False]),
    ("euler, ddim", "COMBO", ["euler", "ddim"]),
    ("0, 18446744073709551615", "SEED", [0, 2**64 - 1]),
    ("1-3", "SEED", [1, 2, 3]),
    ("18446744073709551613..18446744073709551615", "SEED", [2**64 - 3, 2**64 - 2, 2**64 - 1]),
]


@pytest.mark.parametrize(("text", "kind", "expected"), VALID)
def test_valid_forms_expand_to_expected_values(text: str, kind: str, expected: list) -> None:
    values = pp.parse(text, kind, name="p", options=SAMPLERS if kind == "COMBO" else None)
    assert values == expected
    assert [type(v) for v in values] == [type(v) for v in expected]


@pytest.mark.parametrize(("text", "kind", "expected"), VALID)
def test_count_values_agrees_with_parse(text: str, kind: str, expected: list) -> None:
    options = SAMPLERS if kind == "COMBO" else None
    assert pp.count_values(text, kind, name="p", options=options) == len(expected)


@pytest.mark.parametrize("kind", ["int", "Int", " INT "])
def test_type_names_are_case_insensitive(kind: str) -> None:
    assert pp.parse("1-2", kind) == [1, 2]


def test_float_values_are_floats_and_int_values_are_ints() -> None:
    assert all(isinstance(v, float) for v in pp.parse("1, 2-3", "FLOAT"))
    assert all(type(v) is int for v in pp.parse("1, 2-3, 4..5 [2]", "INT"))


def test_float_range_has_no_accumulated_error() -> None:
    values = pp.parse("0-3 (+0.1)", "FLOAT")
    assert len(values) == 31
    assert values == [float(Fraction(i, 10)) for i in range(31)]


def test_multiline_string_does_not_split_on_commas_but_single_line_does() -> None:
    assert pp.parse("masterpiece, best quality", "STRING") == ["masterpiece", "best quality"]
    assert pp.parse("masterpiece, best quality\n", "STRING") == ["masterpiece, best quality"]


def test_csv_split_matches_the_csv_module_for_plain_lists() -> None:
    line = ' a , "b, c" ,d,"e ""f"""'
    expected = [v.strip() for v in next(csv.reader([line], skipinitialspace=True))]
    assert pp.parse(line, "STRING") == expected


def test_tokenize_reports_field_spans() -> None:
    source = 'ab, "c, d",  e'
    fields = pp.tokenize(source, "STRING")
    assert [(f.text, source[f.start:f.end], f.quoted) for f in fields] == [
        ("ab", "ab", False),
        ("c, d", '"c, d"', True),
        ("e", "e", False),
    ]


def test_parse_items_builds_typed_items_without_expanding() -> None:
    value_list = pp.parse_items("1, 2-10 (+2), 0..4 [3], file:x.txt", "INT", name="steps")
    kinds = [type(item).__name__ for item in value_list.items]
    assert kinds == ["ScalarItem", "IntRange", "CountRange", "FileList"]
    assert value_list.items[1] == pp.IntRange(2, 10, 2, 3, 12)
    assert value_list.name == "steps" and value_list.type == "INT"


def test_parse_items_builds_float_range_and_random_items() -> None:
    expected = pp.FloatRange(Fraction(0), Fraction(1), Fraction(1, 2), 0, 10)
    assert pp.parse_items("0-1 (+0.5)", "FLOAT").items == (expected,)
    assert pp.parse_items("random:4", "SEED").items == (pp.RandomSeeds(4, 0, 8),)


# ---------------------------------------------------------------------------------------------------------------
# Errors: message names the parameter, the offending text and its position
# ---------------------------------------------------------------------------------------------------------------

ERRORS = [
    # (text, type, offending text, position, fragment of the reason)
    ("1, x, 3", "INT", "x", 3, "invalid INT value"),
    ("1, 3.0", "INT", "3.0", 3, "whole numbers only"),
    ("1e3", "INT", "1e3", 0, "whole numbers only"),
    ("1-x", "INT", "1-x", 0, "invalid INT value or range"),
    ("2, abc", "FLOAT", "abc", 3, "invalid FLOAT value"),
    ("nan", "FLOAT", "nan", 0, "invalid FLOAT value"),
    ("1e999", "FLOAT", "1e999", 0, "out of range"),
    ("-5-3", "INT", "-5-3", 0, '"-5..3"'),
    ("0, -5 - 5 (+2)", "INT", "-5 - 5 (+2)", 3, '"-5..5 (+2)"'),
    ("5--3", "INT", "5--3", 0, '"5..-3"'),
    ("1-10 (-2)", "INT", "1-10 (-2)", 0, "step -2 goes down but the range goes up"),
    ("10-1 (+2)", "INT", "10-1 (+2)", 0, "step +2 goes up but the range goes down"),
    ("0.5-0.1 (0.1)", "FLOAT", "0.5-0.1 (0.1)", 0, "goes up but the range goes down"),
    ("1-10 (0)", "INT", "1-10 (0)", 0, "step cannot be zero"),
    ("0-1 (+0.0)", "FLOAT", "0-1 (+0.0)", 0, "step cannot be zero"),
    ("1-3 (+0.5)", "INT", "1-3 (+0.5)", 0, "must be a whole number"),
    ("1.5-3", "INT", "1.5-3", 0, "invalid INT value"),
    ("1-3 [5]", "INT", "1-3 [5]", 0, "would repeat values after rounding"),
    ("1-3 [0]", "INT", "1-3 [0]", 0, "at least 1"),
    ("2-2 [3]", "FLOAT", "2-2 [3]", 0, "cannot hold 3 different values"),
    ("maybe", "BOOLEAN", "maybe", 0, "invalid BOOLEAN value"),
    ("1, 2-3", "BOOLEAN", "2-3", 3, "invalid BOOLEAN value"),
    ("-1", "SEED", "-1", 0, "outside 0..18446744073709551615"),
    ("18446744073709551616", "SEED", "18446744073709551616", 0, "outside"),
    ("5, 18446744073709551615-18446744073709551616", "SEED", "18446744073709551615-18446744073709551616", 3, "outside"),
    ("1.5", "SEED", "1.5", 0, "whole numbers only"),
    ("random:3", "INT", "random:3", 0, "only available for SEED"),
    ("random:0", "SEED", "random:0", 0, "at least 1"),
    ('a, "b" c', "STRING", "c", 7, "after a closing quote"),
    ('a, "b', "STRING", '"b', 3, "unterminated quote"),
    ("file:", "STRING", "file:", 0, "needs a file name"),
]


@pytest.mark.parametrize(("text", "kind", "bad", "position", "reason"), ERRORS)
def test_errors_name_parameter_text_and_position(text: str, kind: str, bad: str, position: int, reason: str) -> None:
    with pytest.raises(ParamSyntaxError) as info:
        pp.parse(text, kind, name="cfg")
    err = info.value
    assert err.param == "cfg"
    assert err.source == text
    assert err.position == position
    assert err.offending_text == bad
    first_line = str(err).splitlines()[0]
    assert first_line.startswith('parameter "cfg": ')
    assert f'at position {position}: "{bad}"' in first_line
    assert reason in first_line


@pytest.mark.parametrize(("text", "kind", "bad", "position", "reason"), ERRORS)
def test_count_values_raises_the_same_errors(text: str, kind: str, bad: str, position: int, reason: str) -> None:
    with pytest.raises(ParamSyntaxError) as info:
        pp.count_values(text, kind, name="cfg")
    assert info.value.position == position


def test_error_message_underlines_the_bad_span() -> None:
    with pytest.raises(ParamSyntaxError) as info:
        pp.parse("1, 2, 1-x, 4", "INT", name="steps")
    lines = str(info.value).splitlines()
    assert lines[0] == 'parameter "steps": invalid INT value or range "1-x" at position 6: "1-x"'
    assert lines[1] == "    1, 2, 1-x, 4"
    assert lines[2] == "          ^^^"


def test_error_in_multiline_text_shows_the_right_line() -> None:
    text = "1\n2\n  oops\n4"
    with pytest.raises(ParamSyntaxError) as info:
        pp.parse(text, "INT", name="steps")
    lines = str(info.value).splitlines()
    assert "(line 3)" in lines[0] and '"oops"' in lines[0]
    assert lines[1:] == ["      oops", "      ^^^^"]


@pytest.mark.parametrize("text", ["", "   ", "\n\n", ",,", "\n   \n", " , , "])
def test_empty_input_is_an_error(text: str) -> None:
    with pytest.raises(ParamSyntaxError, match="no values") as info:
        pp.parse(text, "STRING", name="prompt")
    assert info.value.param == "prompt"


def test_unknown_type_is_an_error() -> None:
    with pytest.raises(ParamSyntaxError, match='unknown value type "LATENT"') as info:
        pp.parse("1", "LATENT", name="x")
    assert info.value.param == "x"


def test_errors_are_value_errors_and_wi_errors_and_pickle() -> None:
    with pytest.raises(ValueError) as info:
        pp.parse("x", "INT", name="n")
    err = info.value
    assert isinstance(err, WIError)
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == str(err) and copy.position == err.position


def test_non_string_input_is_an_error() -> None:
    with pytest.raises(ParamSyntaxError, match="must be a string"):
        pp.parse(5, "INT")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------
# COMBO
# ---------------------------------------------------------------------------------------------------------------

COMBO_VALID = [
    ("*", SAMPLERS),
    ("*EULER*", ["euler", "euler_ancestral"]),
    ("dpmpp_2m*", ["dpmpp_2m", "dpmpp_2m_sde"]),
    ("heun, *sde", ["heun", "dpmpp_2m_sde", "dpmpp_sde"]),
    ("d?im", ["ddim"]),
]


@pytest.mark.parametrize(("text", "expected"), COMBO_VALID)
def test_combo_wildcards_select_options_in_option_order(text: str, expected: list[str]) -> None:
    assert pp.parse(text, "COMBO", name="sampler", options=SAMPLERS) == expected


def test_combo_option_containing_a_star_is_taken_literally() -> None:
    options = ["a*b", "axb"]
    assert pp.parse("a*b", "COMBO", options=options) == ["a*b"]
    assert pp.parse("a?b", "COMBO", options=options) == ["a*b", "axb"]


@pytest.mark.parametrize(
    ("text", "suggestions"),
    [
        ("eulr", ['"euler"']),
        ("Euler", ['"euler"']),
        ("dpmpp_2", ['"dpmpp_2m"']),
    ],
)
def test_unknown_combo_value_suggests_close_matches(text: str, suggestions: list[str]) -> None:
    with pytest.raises(ParamSyntaxError) as info:
        pp.parse(f"ddim, {text}", "COMBO", name="sampler", options=SAMPLERS)
    message = str(info.value)
    assert f'"{text}" is not one of the 8 options' in message
    assert "close matches:" in message
    for suggestion in suggestions:
        assert suggestion in message
    assert info.value.position == 6


def test_combo_suggestions_are_capped_at_five() -> None:
    options = [f"model_{i}" for i in range(20)]
    with pytest.raises(ParamSyntaxError) as info:
        pp.parse("model_", "COMBO", options=options)
    hint = str(info.value).splitlines()[0].split("close matches: ")[1].split(")")[0]
    assert hint.count('"') == 10


def test_combo_pattern_matching_nothing_is_an_error() -> None:
    with pytest.raises(ParamSyntaxError, match='pattern "\\*karras\\*" matches none of the 8 options'):
        pp.parse("*karras*", "COMBO", name="sampler", options=SAMPLERS)


def test_combo_pattern_without_options_is_an_error() -> None:
    with pytest.raises(ParamSyntaxError, match="options, which is unknown"):
        pp.parse("*", "COMBO", name="sampler")


def test_combo_without_options_accepts_literal_values() -> None:
    assert pp.parse("anything, goes", "COMBO") == ["anything", "goes"]


def test_combo_count_uses_pattern_matches() -> None:
    assert pp.count_values("*, ddim", "COMBO", options=SAMPLERS) == len(SAMPLERS) + 1


# ---------------------------------------------------------------------------------------------------------------
# SEED random:N
# ---------------------------------------------------------------------------------------------------------------


def test_random_seeds_are_reproducible_with_a_seeded_rng() -> None:
    first = pp.parse("random:5", "SEED", rng=random.Random(42))
    second = pp.parse("random:5", "SEED", rng=random.Random(42))
    assert first == second
    assert len(first) == 5 and len(set(first)) == 5
    assert all(type(v) is int and 0 <= v <= pp.RANDOM_SEED_MAX for v in first)


def test_random_seeds_mix_with_fixed_seeds() -> None:
    values = pp.parse("7, random:2, 9", "SEED", rng=random.Random(1))
    assert values[0] == 7 and values[-1] == 9 and len(values) == 4


def test_random_seeds_are_drawn_from_the_given_rng() -> None:
    rng = random.Random(3)
    expected = random.Random(3).sample(range(pp.RANDOM_SEED_MAX + 1), 3)
    assert pp.parse("random:3", "SEED", rng=rng) == expected


# ---------------------------------------------------------------------------------------------------------------
# Limits: must fail before materialising (these would hang or run out of memory otherwise)
# ---------------------------------------------------------------------------------------------------------------

LIMITS = [
    ("1-1000000000000000", "INT", "1-1000000000000000"),
    ("0..1e300 (+1e-300)", "FLOAT", "0..1e300 (+1e-300)"),
    ("0-1 [999999999999999]", "FLOAT", "0-1 [999999999999999]"),
    ("random:99999999999999", "SEED", "random:99999999999999"),
    ("0-18446744073709551615", "SEED", "0-18446744073709551615"),
    ("1, 2, 0-9999", "INT", "0-9999"),  # the item that crosses the limit is underlined
]


@pytest.mark.parametrize(("text", "kind", "bad"), LIMITS)
def test_huge_lists_fail_with_limit_error_before_expanding(text: str, kind: str, bad: str) -> None:
    with pytest.raises(LimitExceededError, match="too many values") as info:
        pp.parse(text, kind, name="n")
    assert info.value.param == "n"
    assert info.value.offending_text == bad
    assert "limit 10,000" in str(info.value)


def test_max_values_is_configurable() -> None:
    assert pp.parse("1-3", "INT", max_values=3) == [1, 2, 3]
    with pytest.raises(LimitExceededError, match="too many values: 4 \\(limit 3"):
        pp.parse("1-4", "INT", max_values=3)


def test_count_values_counts_huge_ranges_without_a_limit() -> None:
    assert pp.count_values("1-1000000000000", "INT") == 10**12
    assert pp.count_values("random:99999999999", "SEED") == 99999999999


def test_count_values_enforces_max_values_when_given() -> None:
    with pytest.raises(LimitExceededError):
        pp.count_values("1-1000000000000", "INT", max_values=10)


# ---------------------------------------------------------------------------------------------------------------
# file:NAME
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture()
def root(tmp_path):
    base = tmp_path / "input"
    base.mkdir()
    (base / "prompts.txt").write_text("# prompts\na cat, sitting\n\n  a dog  \n#skip\n", encoding="utf-8")
    (base / "numbers.txt").write_text("1\n2.5\n\n-3e1\n", encoding="utf-8")
    (base / "ints.txt").write_text("4\n5\n", encoding="utf-8")
    (base / "bad_ints.txt").write_text("4\nfive\n", encoding="utf-8")
    (base / "samplers.txt").write_text("euler\nddim\n", encoding="utf-8")
    (base / "sub").mkdir()
    (base / "sub" / "nested.txt").write_text("x\n", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("top secret\n", encoding="utf-8")
    return base


def test_file_list_reads_one_value_per_line(root) -> None:
    assert pp.parse("file:prompts.txt", "STRING", file_root=root) == ["a cat, sitting", "a dog"]


def test_file_list_lines_are_typed_and_mix_with_other_items(root) -> None:
    assert pp.parse("0, file:numbers.txt", "FLOAT", file_root=str(root)) == [0.0, 1.0, 2.5, -30.0]
    assert pp.parse("file: ints.txt, 6-7", "INT", file_root=root) == [4, 5, 6, 7]


def test_file_list_in_subfolder_and_in_multiline_string(root) -> None:
    assert pp.parse("first\nfile:sub/nested.txt", "STRING", file_root=root) == ["first", "x"]


def test_file_list_combo_lines_are_checked(root) -> None:
    assert pp.parse("file:samplers.txt", "COMBO", options=SAMPLERS, file_root=root) == ["euler", "ddim"]
    with pytest.raises(ParamSyntaxError, match='line 1: "euler" is not one of'):
        pp.parse("file:samplers.txt", "COMBO", options=["ddim"], file_root=root)


def test_invalid_line_in_file_names_file_and_line(root) -> None:
    with pytest.raises(ParamSyntaxError) as info:
        pp.parse("1, file:bad_ints.txt", "INT", name="steps", file_root=root)
    assert 'file "bad_ints.txt" line 2: invalid INT value "five"' in str(info.value)
    assert info.value.offending_text == "file:bad_ints.txt"


def test_count_values_counts_file_lines(root) -> None:
    assert pp.count_values("file:prompts.txt, x", "STRING", file_root=root) == 3


def test_file_list_over_the_limit_fails(root) -> None:
    (root / "many.txt").write_text("\n".join(str(i) for i in range(50)), encoding="utf-8")
    with pytest.raises(LimitExceededError, match="more than 10"):
        pp.parse("file:many.txt", "INT", file_root=root, max_values=10)


def _file_error(text: str, root) -> str:
    with pytest.raises(ParamSyntaxError) as info:
        pp.parse(text, "STRING", name="prompt", file_root=root)
    assert info.value.param == "prompt"
    return str(info.value)


def test_file_list_without_root_is_an_error() -> None:
    assert "no input folder is configured" in _file_error("file:prompts.txt", None)


def test_missing_file_is_named(root) -> None:
    assert 'file "nope.txt" not found' in _file_error("file:nope.txt", root)


@pytest.mark.parametrize("name", ["../secret.txt", "sub/../../secret.txt", "sub\\..\\..\\secret.txt", ".."])
def test_file_list_refuses_parent_components(root, name: str) -> None:
    assert '".." is not allowed' in _file_error(f"file:{name}", root)


def test_file_list_refuses_absolute_paths(root, tmp_path) -> None:
    assert "absolute paths are not allowed" in _file_error(f"file:{tmp_path / 'secret.txt'}", root)
    assert "absolute paths are not allowed" in _file_error("file:/etc/passwd", root)


def test_file_list_refuses_nul_bytes(root) -> None:
    assert "NUL" in _file_error("file:prompts.txt\x00.png", root)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="symlinks unavailable")
def test_file_list_refuses_symlink_out_of_root(root, tmp_path) -> None:
    link = root / "escape.txt"
    try:
        link.symlink_to(tmp_path / "secret.txt")
    except OSError as exc:  # e.g. Windows without the privilege
        pytest.skip(f"cannot create symlink: {exc}")
    assert "resolves outside the input folder" in _file_error("file:escape.txt", root)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="symlinks unavailable")
def test_file_list_follows_symlink_inside_root(root) -> None:
    link = root / "alias.txt"
    try:
        link.symlink_to(root / "ints.txt")
    except OSError as exc:
        pytest.skip(f"cannot create symlink: {exc}")
    assert pp.parse("file:alias.txt", "INT", file_root=root) == [4, 5]


def test_file_list_refuses_the_root_folder_itself(root) -> None:
    assert "resolves outside" in _file_error("file:.", root)


def test_file_that_is_not_utf8_is_an_error(root) -> None:
    (root / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    assert "not UTF-8" in _file_error("file:binary.txt", root)


# ---------------------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------------------

ints = st.integers(min_value=-1000, max_value=1000)


@settings(max_examples=200, deadline=None)
@given(start=ints, end=ints, step=st.integers(min_value=1, max_value=50))
def test_int_range_values_lie_within_bounds_and_include_start(start: int, end: int, step: int) -> None:
    signed = step if end >= start else -step
    text = f"{start}..{end} ({signed:+d})"
    values = pp.parse(text, "INT")
    lo, hi = min(start, end), max(start, end)
    assert values[0] == start
    assert all(lo <= v <= hi for v in values)
    assert len(values) == abs(end - start) // step + 1
    assert pp.count_values(text, "INT") == len(values)


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(min_value=-500, max_value=500),
    steps=st.integers(min_value=0, max_value=60),
    step_hundredths=st.integers(min_value=1, max_value=300),
    down=st.booleans(),
)
def test_float_range_hits_end_when_span_is_a_whole_number_of_steps(
    start: int, steps: int, step_hundredths: int, down: bool
) -> None:
    step = Fraction(step_hundredths, 100)
    start_f = Fraction(start, 10)
    end_f = start_f - steps * step if down else start_f + steps * step
    step_text = f"{'-' if down else '+'}{float(step)!r}"
    text = f"{float(start_f)!r}..{float(end_f)!r} ({step_text})"
    values = pp.parse(text, "FLOAT")
    assert len(values) == steps + 1
    assert values[0] == float(start_f)
    assert values[-1] == float(end_f)
    lo, hi = min(start_f, end_f), max(start_f, end_f)
    assert all(float(lo) <= v <= float(hi) for v in values)


@settings(max_examples=200, deadline=None)
@given(
    start=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    end=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    count=st.integers(min_value=2, max_value=50),
)
def test_float_count_range_hits_both_ends_and_stays_within(start: float, end: float, count: int) -> None:
    if start == end:
        return
    text = f"{start!r}..{end!r} [{count}]"
    step = (Fraction(end) - Fraction(start)) / (count - 1)
    if abs(step) < 2 * Fraction(math.ulp(max(abs(start), abs(end)))):
        # Steps under about one float apart (e.g. 0.0..5e-324 [3]) may round onto each other: then refused by name.
        try:
            values = pp.parse(text, "FLOAT")
        except ParamSyntaxError as exc:
            assert "coincide after rounding" in str(exc)
            return
    else:
        values = pp.parse(text, "FLOAT")
    assert len(values) == count == len(set(values))
    assert values[0] == start and values[-1] == end
    assert all(min(start, end) <= v <= max(start, end) for v in values)


@settings(max_examples=200, deadline=None)
@given(start=ints, end=ints, count=st.integers(min_value=1, max_value=60))
def test_int_count_range_is_distinct_within_bounds_or_refused(start: int, end: int, count: int) -> None:
    text = f"{start}..{end} [{count}]"
    if count > abs(end - start) + 1:
        with pytest.raises(ParamSyntaxError, match="repeat values"):
            pp.parse(text, "INT")
        return
    values = pp.parse(text, "INT")
    assert len(values) == len(set(values)) == count
    assert values[0] == start and (count == 1 or values[-1] == end)
    assert all(min(start, end) <= v <= max(start, end) for v in values)


safe_text = st.text(alphabet=st.characters(blacklist_characters='",\r\n', blacklist_categories=("Cs",)), min_size=1)


@settings(max_examples=200, deadline=None)
@given(st.lists(safe_text, min_size=1, max_size=8))
def test_quoted_string_values_round_trip(values: list[str]) -> None:
    # Text holding a {a|b} choice or a __name__ wildcard expands, quoted or not (issue 16: quotes keep a comma
    # inside a choice); those have their own tables in test_richer_sweeps.py.
    assume(not any(re.search(r"__[A-Za-z0-9]", v) or ("|" in v and "{" in v) for v in values))
    wanted = [v.strip() for v in values]
    text = ", ".join('"' + v.replace('"', '""') + '"' for v in values)
    assert pp.parse(text, "STRING") == wanted


def test_non_ascii_digits_are_not_numbers() -> None:
    with pytest.raises(ParamSyntaxError, match="invalid INT value"):
        pp.parse("\u0663", "INT")


# ---------------------------------------------------------------------------------------------------------------
# core/errors.py formatting (the parser is its main producer)
# ---------------------------------------------------------------------------------------------------------------


def test_error_on_a_very_long_line_shows_a_short_window() -> None:
    text = "a" * 300 + ', "b'
    with pytest.raises(ParamSyntaxError) as info:
        pp.parse(text, "STRING", name="prompt")
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert all(len(line) < 200 for line in lines)
    assert lines[1].index('"b') == lines[2].index("^")


def test_error_without_parameter_or_position_is_just_the_reason() -> None:
    assert str(ParamSyntaxError("no values")) == "no values"
    assert str(ParamSyntaxError("no values", param="cfg")) == 'parameter "cfg": no values'


def test_with_param_keeps_class_and_span() -> None:
    err = LimitExceededError("too many values", source="1-99", position=0, length=4).with_param("steps")
    assert isinstance(err, LimitExceededError)
    assert err.param == "steps" and err.offending_text == "1-99"


def test_unknown_batch_error_is_a_key_error_with_a_readable_message() -> None:
    err = UnknownBatchError("abc123")
    assert isinstance(err, KeyError) and isinstance(err, WIError)
    assert str(err) == 'unknown batch "abc123"'
    assert err.batch_id == "abc123"
    assert str(pickle.loads(pickle.dumps(err))) == str(err)


def test_invalid_batch_state_is_a_wi_error() -> None:
    assert issubclass(InvalidBatchState, WIError)
    assert str(InvalidBatchState("batch is complete")) == "batch is complete"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=' ,"ab\t', min_size=1, max_size=14))
def test_field_split_agrees_with_csv_module_or_reports_bad_quotes(line: str) -> None:
    try:
        fields = pp.tokenize(line, "STRING")
    except ParamSyntaxError as exc:
        assert "quote" in exc.message and "check the quotes" not in exc.message
        return
    expected = [v.strip() for v in next(csv.reader([line], skipinitialspace=True))]
    assert [f.text for f in fields if f.text] == [v for v in expected if v]
    for f in fields:
        assert line[f.start:f.end] == line[f.start:f.end].strip()
