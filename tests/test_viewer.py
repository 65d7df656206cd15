"""core/viewer.py: the data embedded in viewer.html and the page built from web/viewer/ (browser behaviour is in
tests/e2e/test_viewer_browser.py)."""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from core import choices, manifest, viewer
from core.parameter_parser import parse


def _embedded(page: str) -> Any:
    m = re.search(r'<script type="application/json" id="wi-data">(.*?)</script>', page, re.S)
    assert m is not None
    return json.loads(m.group(1))


def _status(folder: Path, *, name: str = "sweep", metadata: bool = True) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    workflow = {"nodes": [{"id": 5, "type": "WIParameterString", "widgets_values": ["prompt", "x", ""]},
                          {"id": 6, "type": "WIParameter", "widgets_values": ["cfg", "FLOAT", "1", "KSampler.cfg"]},
                          {"id": 7, "type": "KSampler", "widgets_values": []}]}
    cells = []
    for k in range(4):
        info = PngInfo()
        if metadata:
            info.add_text("workflow", json.dumps(workflow))
            info.add_text("wi_cell", json.dumps({"axes": ["prompt", "cfg"], "parameter_nodes": ["5", "6"], "index": k}))
        path = folder / f"c{k}.png"
        Image.new("RGB", (8, 8), (k * 50, 0, 0)).save(path, pnginfo=info)
        cells.append({"index": k, "coords": [k // 2, k % 2], "status": "done", "files": [str(path)]})
    return {"batch_id": "b_00000001", "batch_name": name, "mode": "matrix",
            "axes": [{"name": "prompt", "type": "STRING", "values": ["a, b", "file:x.txt"]},
                     {"name": "cfg", "type": "FLOAT", "values": [0.1, 0.30000000000000004]}],
            "cells": cells}


def test_each_axis_value_carries_its_text_in_the_value_syntax(tmp_path: Path) -> None:
    data = manifest.viewer_data(_status(tmp_path), root=str(tmp_path))
    prompt, cfg = data["axes"]
    assert parse(", ".join(prompt["value_texts"]), "STRING") == ["a, b", "file:x.txt"]
    assert parse(", ".join(cfg["value_texts"]), "FLOAT") == [0.1, 0.30000000000000004]
    assert cfg["labels"] == ["0.1", "0.3"]  # the labels stay the display text
    assert prompt["value_text_errors"] == [None, None]


def test_a_value_the_syntax_cannot_hold_has_no_text_and_says_why(tmp_path: Path) -> None:
    status = _status(tmp_path)
    status["axes"][0]["values"] = ["two\nlines", "ok"]
    data = manifest.viewer_data(status, root=str(tmp_path))
    assert data["axes"][0]["value_texts"] == [None, "ok"]
    assert "line break" in data["axes"][0]["value_text_errors"][0]


def test_the_workflow_and_parameter_slots_come_from_a_cell_png(tmp_path: Path) -> None:
    data = manifest.viewer_data(_status(tmp_path), root=str(tmp_path))
    assert [n["id"] for n in data["workflow"]["nodes"]] == [5, 6, 7]
    # WIParameterString keeps values at widget 1, the generic WIParameter at widget 2 (core/prompt_graph.py).
    assert data["parameter_slots"] == [{"node_id": "5", "widget": 1}, {"node_id": "6", "widget": 2}]


def test_without_png_metadata_there_is_no_workflow_to_export(tmp_path: Path) -> None:
    data = manifest.viewer_data(_status(tmp_path, metadata=False), root=str(tmp_path))
    assert data["workflow"] is None and data["parameter_slots"] == [None, None]


def test_stored_choices_are_embedded_for_the_offline_page(tmp_path: Path) -> None:
    status = _status(tmp_path)
    manifest.write_manifest(status, tmp_path)
    choices.save_choices(tmp_path, {"starred": [3], "rejected": [1]})
    page = Path(manifest.write_viewer(status, tmp_path)).read_text(encoding="utf-8")
    assert _embedded(page)["choices"] == {"starred": [3], "rejected": [1]}


def test_a_title_holding_a_placeholder_stays_text(tmp_path: Path) -> None:
    # Regression: the placeholders were replaced one after another, so a batch named "@@DATA@@" got the whole
    # data JSON pasted into its <title> (and "@@SCRIPT@@" in a value would have pulled in the script).
    page = Path(manifest.write_viewer(_status(tmp_path, name="x @@DATA@@ @@SCRIPT@@"), tmp_path)).read_text(encoding="utf-8")
    assert "<title>x @@DATA@@ @@SCRIPT@@</title>" in page
    assert page.count("</script>") == 2


def test_the_page_inlines_every_module_with_no_import_or_export_left(tmp_path: Path) -> None:
    script = viewer.viewer_script()
    for name in viewer.VIEWER_MODULES:
        assert f"// ---- web/viewer/{name}" in script
    assert not re.search(r"^\s*(import|export)\b", script, re.M)
    page = Path(manifest.write_viewer(_status(tmp_path), tmp_path)).read_text(encoding="utf-8")
    assert script in page
    assert "http://" not in page and "https://" not in page and not re.search(r"<script[^>]+src=", page)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_inlined_script_is_valid_javascript(tmp_path: Path) -> None:
    path = tmp_path / "viewer.js"
    path.write_text(viewer.viewer_script(), encoding="utf-8")
    done = subprocess.run(["node", "--check", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_module_importing_a_later_module_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in viewer.VIEWER_MODULES:
        (tmp_path / name).write_text("export const x = 1;\n", encoding="utf-8")
    (tmp_path / "media.mjs").write_text('import { x } from "./app.mjs";\nexport const y = x;\n', encoding="utf-8")
    monkeypatch.setattr(viewer, "WEB_VIEWER_DIR", tmp_path)
    viewer.viewer_script.cache_clear()
    try:
        with pytest.raises(ValueError, match="media.mjs: imports app.mjs"):
            viewer.viewer_script()
    finally:
        viewer.viewer_script.cache_clear()


def test_a_module_ending_the_script_element_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in viewer.VIEWER_MODULES:
        (tmp_path / name).write_text('export const s = "</script>";\n', encoding="utf-8")
    monkeypatch.setattr(viewer, "WEB_VIEWER_DIR", tmp_path)
    viewer.viewer_script.cache_clear()
    try:
        with pytest.raises(ValueError, match="</script"):
            viewer.viewer_script()
    finally:
        viewer.viewer_script.cache_clear()


def test_the_title_is_escaped(tmp_path: Path) -> None:
    page = Path(manifest.write_viewer(_status(tmp_path, name="<b>x</b>"), tmp_path)).read_text(encoding="utf-8")
    assert f"<title>{html.escape('<b>x</b>')}</title>" in page
