"""tests/ran_registry.py: the end-of-run summary says what ran and what skipped and why, and the strict switch."""
from __future__ import annotations

import pytest

import ran_registry


@pytest.fixture
def ran_file(tmp_path, monkeypatch):
    path = tmp_path / "ran.jsonl"
    monkeypatch.setenv("WI_RAN_FILE", str(path))
    monkeypatch.delenv(ran_registry.STRICT_ENV, raising=False)
    return path


def test_summary_counts_outcomes_per_backend_and_lists_skips_with_reasons(ran_file):
    ran_registry.record_outcome("backend", "ComfyUI 0.3.64", "t1", "passed")
    ran_registry.record_outcome("backend", "ComfyUI 0.3.64", "t2", "failed")
    ran_registry.record_outcome("backend", "ComfyUI at /x", "t1", "skipped")
    ran_registry.record_skip("backend", "ComfyUI at /x", "no ComfyUI at /x")
    ran_registry.record_ran("tools", "node --test", "v20")
    lines = ran_registry.summary(ran_registry.read_entries())
    assert lines[:3] == ["backend:", "  RAN      ComfyUI 0.3.64: 1 failed, 1 passed",
                         "  SKIPPED  ComfyUI at /x: no ComfyUI at /x (1 skipped)"]
    assert lines[3:5] == ["tools:", "  RAN      node --test (v20)"]
    assert lines[-1].startswith("strict switch WI_REQUIRE_INTEGRATION=1: off")


def test_a_cut_line_is_ignored_not_fatal(ran_file):
    ran_registry.record_ran("frontend", "1.58.1")
    with open(ran_file, "a") as handle:
        handle.write('{"event": "ran", "kind"')
    assert [e["name"] for e in ran_registry.read_entries()] == ["1.58.1"]


def test_skip_skips_normally_and_fails_under_the_strict_switch(ran_file, monkeypatch):
    with pytest.raises(pytest.skip.Exception):
        ran_registry.skip("frontend", "1.35.9", "not installed")
    monkeypatch.setenv(ran_registry.STRICT_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="WI_REQUIRE_INTEGRATION=1 and frontend 1.35.9 is not available"):
        ran_registry.skip("frontend", "1.35.9", "not installed")
    assert [e["event"] for e in ran_registry.read_entries()] == ["skip", "skip"]


@pytest.mark.parametrize(("value", "strict"), [("", False), ("0", False), ("no", False), ("1", True), ("yes", True)])
def test_strict_switch_values(monkeypatch, value, strict):
    monkeypatch.setenv(ran_registry.STRICT_ENV, value)
    assert ran_registry.strict() is strict


def test_command_line_skip_exits_nonzero_only_when_strict(ran_file, monkeypatch):
    assert ran_registry._main(["skip", "tools", "node --test", "node is not installed"]) == 0
    monkeypatch.setenv(ran_registry.STRICT_ENV, "1")
    assert ran_registry._main(["skip", "tools", "node --test", "node is not installed"]) == 1
    assert ran_registry._main(["bogus"]) == 2


def test_not_applicable_skips_carry_the_prefix_the_strict_hook_exempts(monkeypatch):
    monkeypatch.setenv(ran_registry.STRICT_ENV, "1")
    with pytest.raises(pytest.skip.Exception, match="^not applicable: no V3 node here$"):
        ran_registry.not_applicable("no V3 node here")
