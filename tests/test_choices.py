"""core/choices.py: validation of stars and rejections, their place in batch.json, and that the manifest keeps them."""
from __future__ import annotations

import json

import pytest

from core import choices, manifest


def test_choices_are_sorted_and_deduplicated():
    got = choices.parse_choices({"starred": [3, 1, 3], "rejected": [0]}, cell_count=4)
    assert got.as_dict() == {"starred": [1, 3], "rejected": [0]}


def test_missing_lists_count_as_empty():
    assert choices.parse_choices({}).as_dict() == {"starred": [], "rejected": []}


@pytest.mark.parametrize(("body", "named"), [
    ([1, 2], "must be an object"),
    ({"starred": "1,2"}, "choices.starred: must be a list"),
    ({"starred": [1.5]}, r"choices.starred\[0\]: must be a whole number"),
    ({"rejected": [True]}, r"choices.rejected\[0\]"),
    ({"starred": [0, 9]}, r"choices.starred\[1\]: 9 is not between 0 and 3"),
    ({"starred": [-1]}, r"choices.starred\[0\]: -1"),
    ({"starred": [2], "rejected": [2]}, "cell\\(s\\) 2 are both starred and rejected"),
    ({"stared": [1]}, "unknown key\\(s\\) stared"),
])
def test_bad_choices_are_refused_naming_what_was_wrong(body, named):
    with pytest.raises(ValueError, match=named):
        choices.parse_choices(body, cell_count=4)


def _manifest(tmp_path, cells=3):
    source = {"batch_id": "b_1", "mode": "matrix", "axes": [{"name": "a", "type": "INT", "values": list(range(cells))}],
              "cells": [{"index": i, "coords": [i], "status": "done", "files": []} for i in range(cells)]}
    manifest.write_manifest(source, tmp_path)
    return source


def test_saved_choices_land_in_batch_json_next_to_the_manifest(tmp_path):
    _manifest(tmp_path)
    saved = choices.save_choices(tmp_path, {"starred": [2], "rejected": [0]})
    doc = json.loads((tmp_path / "batch.json").read_text(encoding="utf-8"))
    assert doc["choices"] == {"starred": [2], "rejected": [0]} == saved.as_dict()
    assert len(doc["cells"]) == 3  # the rest of the manifest is untouched
    assert choices.read_choices(tmp_path) == saved
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_the_cell_count_of_batch_json_bounds_the_indices(tmp_path):
    _manifest(tmp_path, cells=2)
    with pytest.raises(ValueError, match="between 0 and 1"):
        choices.save_choices(tmp_path, {"starred": [2]})


def test_rewriting_the_manifest_keeps_the_choices(tmp_path):
    # Regression guard: write_manifest replaced batch.json whole, so a resumed batch lost the user's stars.
    source = _manifest(tmp_path)
    choices.save_choices(tmp_path, {"starred": [1]})
    manifest.write_manifest(source, tmp_path)
    assert choices.read_choices(tmp_path).starred == (1,)


def test_choices_before_the_manifest_exists_are_kept_when_it_is_written(tmp_path):
    choices.save_choices(tmp_path, {"starred": [0]})
    _manifest(tmp_path)
    doc = json.loads((tmp_path / "batch.json").read_text(encoding="utf-8"))
    assert doc["choices"]["starred"] == [0] and len(doc["cells"]) == 3


def test_no_batch_json_reads_as_no_choices(tmp_path):
    assert choices.read_choices(tmp_path) == choices.Choices()


def test_hand_edited_invalid_choices_read_as_empty(tmp_path):
    _manifest(tmp_path)
    doc = json.loads((tmp_path / "batch.json").read_text(encoding="utf-8"))
    doc["choices"] = {"starred": ["x"]}
    (tmp_path / "batch.json").write_text(json.dumps(doc), encoding="utf-8")
    assert choices.read_choices(tmp_path) == choices.Choices()


def test_an_unreadable_batch_json_is_an_error_not_overwritten(tmp_path):
    (tmp_path / "batch.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="batch.json cannot be read"):
        choices.save_choices(tmp_path, {"starred": [0]})
    assert (tmp_path / "batch.json").read_text(encoding="utf-8") == "{not json"
