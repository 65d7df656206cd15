"""core.atomic_files: a file appears whole or not at all."""
from __future__ import annotations

import os

import pytest

from comfyui_workflow_iterator.core import atomic_files


def test_write_text_replaces_the_file_whole_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "batch.json"
    target.write_text("old", encoding="utf-8")
    atomic_files.write_text(target, "new ✓")
    assert target.read_text(encoding="utf-8") == "new ✓"
    assert os.listdir(tmp_path) == ["batch.json"]


def test_a_writer_that_raises_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "grid.png"
    target.write_bytes(b"old")

    def broken(handle):
        handle.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_files.write_with(target, broken)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["grid.png"]


def test_the_temporary_name_is_recognised_as_temporary(tmp_path):
    seen = []

    def peek(handle):
        seen.extend(os.listdir(tmp_path))
        handle.write(b"x")

    atomic_files.write_with(tmp_path / "c00000_0.png", peek, durable=True)
    assert len(seen) == 1 and atomic_files.is_temporary(seen[0])
    assert not atomic_files.is_temporary("c00000_0.png")


def test_only_write_modes_are_accepted(tmp_path):
    with pytest.raises(ValueError, match="mode 'a'"):
        with atomic_files.open_atomic(tmp_path / "x", "a"):
            pass


def test_write_text_stores_a_lone_surrogate_as_a_replacement_character_and_says_so(tmp_path, caplog):
    target = tmp_path / "batch.json"
    with caplog.at_level("WARNING", logger="comfyui_workflow_iterator.core.atomic_files"):
        atomic_files.write_text(target, '{"text": "broken emoji \ud83d end", "ok": "\U0001F600"}')
    assert target.read_text(encoding="utf-8") == '{"text": "broken emoji \ufffd end", "ok": "\U0001F600"}'
    assert "surrogate" in caplog.text
    assert os.listdir(tmp_path) == ["batch.json"]
