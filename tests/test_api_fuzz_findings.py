"""Defects the schemathesis fuzz of the /wi/ routes found, each pinned by a regression test."""
from __future__ import annotations

import logging

import pytest

from api_harness import ApiHarness


@pytest.fixture
def ah(monkeypatch, tmp_path):
    harness = ApiHarness(monkeypatch, tmp_path)
    yield harness
    harness.close()


@pytest.mark.parametrize("grid", [["x_axis"], "cell_gap=4", 3])
def test_preview_with_grid_options_that_are_not_an_object_is_a_400_naming_grid(ah, caplog, grid):
    # Found by the negative fuzz: the badge's grid estimate crashed on them (a logged traceback) and the
    # answer silently had no estimate.
    with caplog.at_level(logging.ERROR):
        status, body, _ = ah.request("POST", "/wi/preview", json={"parameters": [{"name": "a", "type": "INT",
                                                                                    "values": "1-3"}], "grid": grid})
    assert status == 400, body
    assert "grid" in body["detail"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
