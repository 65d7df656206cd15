"""core/parameter_parser.py: limits are checked WHILE tokenising, and the lazy scanner keeps csv's rules.

Issue 12.5: ``POST /prompt`` with 20 MB of ``1,`` as INT values blocked ComfyUI for 41-53 s, because the whole
text was tokenised (and every field converted) before the value limit was checked. These tests count work,
not time: fields read from the scanner and fields converted.
"""
from __future__ import annotations

import csv
import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comfyui_workflow_iterator.core import parameter_parser as pp
from comfyui_workflow_iterator.core.errors import LimitExceededError, ParamSyntaxError


@pytest.fixture
def converted(monkeypatch):
    """How many fields the parser converted into items."""
    calls = []
    original = pp._parse_field

    def counting(field, ctx):
        calls.append(field)
        return original(field, ctx)

    monkeypatch.setattr(pp, "_parse_field", counting)
    return calls


@pytest.fixture
def scanned(monkeypatch):
    """How many fields the parser pulled from the scanner."""
    pulled = []
    original = pp.iter_fields

    def counting(*args, **kwargs):
        for field in original(*args, **kwargs):
            pulled.append(field)
            yield field

    monkeypatch.setattr(pp, "iter_fields", counting)
    return pulled


def test_too_many_fields_stop_the_scan_after_max_values_plus_one(scanned, converted):
    text = "1," * 50_000
    with pytest.raises(LimitExceededError, match="too many values: more than 100") as info:
        pp.parse(text, "INT", name="n", max_values=100)
    assert len(scanned) == 101 and converted == []
    assert info.value.position == 200 and info.value.param == "n"  # the first field over the limit


def test_ranges_over_the_limit_stop_the_conversion_at_the_item_that_passes_it(converted):
    text = ", ".join(["1-100"] * 1_000)
    with pytest.raises(LimitExceededError, match="too many values: at least 5,100") as info:
        pp.parse(text, "INT", name="n", max_values=5_000)
    assert len(converted) == 51
    assert info.value.offending_text == "1-100"


def test_the_total_is_exact_when_the_item_over_the_limit_is_the_last():
    with pytest.raises(LimitExceededError, match=r"too many values: 10,002 \(limit 10,000"):
        pp.parse("1, 2, 0-9999", "INT")


def test_count_values_stops_early_too(scanned):
    with pytest.raises(LimitExceededError):
        pp.count_values("x," * 10_000, "STRING", max_values=10)
    assert len(scanned) == 11


def test_the_scanner_is_lazy_so_a_later_quote_error_is_not_reached():
    fields = list(itertools.islice(pp.iter_fields('a, b, c, "unterminated', "STRING"), 3))
    assert [f.text for f in fields] == ["a", "b", "c"]
    with pytest.raises(ParamSyntaxError, match="unterminated quote"):
        pp.tokenize('a, b, c, "unterminated', "STRING")


# ---------------------------------------------------------------------------------------------------- csv rules
def _csv_values(text: str) -> list[str]:
    """The oracle: csv.reader with skipinitialspace, line by line, values trimmed, blank ones dropped."""
    values = []
    for line in re.split(r"[\r\n]+", text):
        if line:
            values.extend(v.strip() for v in next(csv.reader([line], skipinitialspace=True), []))
    return [v for v in values if v]


@settings(max_examples=1500, deadline=None)
@given(text=st.text(alphabet=' ,"\tab1\r\n\x0b', max_size=24))
def test_the_scanner_splits_like_the_csv_module(text):
    try:
        fields = pp.tokenize(text, "INT")
    except ParamSyntaxError as exc:
        # Only the quoting csv would silently accept is refused.
        assert "quote" in exc.message
        return
    assert [f.text for f in fields if f.text] == _csv_values(text)
    for field in fields:  # spans point at the field in the source
        raw = text[field.start:field.end]
        assert (raw[1:-1].replace('""', '"').strip() if field.quoted else raw) == field.text
