"""GET/PUT /wi/batch/{id}/choices over a real SweepService and the ComfyUI stand-in (tests/test_routes.py's harness)."""
from __future__ import annotations

import json

import pytest

from test_routes import RouteHarness, assert_error, sweep_prompt


@pytest.fixture
def rh(monkeypatch, tmp_path):
    harness = RouteHarness(monkeypatch, tmp_path)
    yield harness
    harness.close()


def _batch(rh, tmp_path):
    rh.post_prompt({"prompt": sweep_prompt("1, 2", "10")})  # 2 cells
    batch_id = rh.only_batch_id()
    folder = tmp_path / "output" / rh.manager.get_status(batch_id, include_cells=False)["meta"]["subfolder"]
    return batch_id, folder


def test_put_saves_the_choices_into_batch_json_and_get_reads_them(rh, tmp_path):
    batch_id, folder = _batch(rh, tmp_path)
    status, body, _ = rh.request("PUT", f"/wi/batch/{batch_id}/choices", json={"starred": [1], "rejected": [0]})
    assert status == 200 and body == {"starred": [1], "rejected": [0]}
    doc = json.loads((folder / "batch.json").read_text(encoding="utf-8"))
    assert doc["choices"] == {"starred": [1], "rejected": [0]}
    status, body, _ = rh.get(f"/wi/batch/{batch_id}/choices")
    assert status == 200 and body == {"starred": [1], "rejected": [0]}


def test_get_without_choices_is_empty_lists(rh, tmp_path):
    batch_id, _ = _batch(rh, tmp_path)
    status, body, _ = rh.get(f"/wi/batch/{batch_id}/choices")
    assert status == 200 and body == {"starred": [], "rejected": []}


@pytest.mark.parametrize(("payload", "named"), [
    ({"starred": [5]}, "between 0 and 1"),
    ({"starred": ["a"]}, "choices.starred[0]"),
    ({"favourites": []}, "favourites"),
])
def test_bad_choices_are_a_400_naming_the_problem(rh, tmp_path, payload, named):
    batch_id, folder = _batch(rh, tmp_path)
    status, body, _ = rh.request("PUT", f"/wi/batch/{batch_id}/choices", json=payload)
    assert_error(status, body, 400)
    assert named in body["detail"]
    assert not (folder / "batch.json").exists()


def test_a_body_that_is_not_json_is_a_400(rh, tmp_path):
    batch_id, _ = _batch(rh, tmp_path)
    status, body, _ = rh.request("PUT", f"/wi/batch/{batch_id}/choices", data=b"{nope")
    assert_error(status, body, 400)


def test_choices_of_an_unknown_batch_are_a_404(rh):
    status, body, _ = rh.request("PUT", "/wi/batch/nope_12345678/choices", json={"starred": []})
    assert_error(status, body, 404)


def test_the_file_route_still_serves_batch_files(rh, tmp_path):
    batch_id, folder = _batch(rh, tmp_path)
    folder.mkdir(parents=True)
    (folder / "viewer.html").write_text("<p>v</p>", encoding="utf-8")
    status, _, text = rh.get(f"/wi/batch/{batch_id}/viewer.html")
    assert status == 200 and text == "<p>v</p>"
