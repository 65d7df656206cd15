"""Tests for core/manifest.py: batch.json, batch.csv, embedded sweep metadata and the HTML viewer."""
from __future__ import annotations

import csv
import html
import http.server
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from comfyui_workflow_iterator.core import grid, manifest

EVIL = 'a </script><img src=x onerror="alert(1)"> & <!-- cat'
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _status(root: Path) -> dict[str, Any]:
    img_dir = root / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    axes = [
        {"name": "prompt", "type": "STRING", "values": [EVIL, "a dog"]},
        {"name": "cfg", "type": "FLOAT", "values": [3.0, 0.1 + 0.2]},
        {"name": "seed", "type": "SEED", "values": [42]},
    ]
    cells = []
    for k, (i, j) in enumerate(itertools.product(range(2), range(2))):
        path = img_dir / f"cell {k:03d}.png"
        Image.new("RGB", (32, 32), (40 * k, 80, 120)).save(path)
        status = "failed" if k == 3 else "done"
        cells.append({
            "index": k, "coords": [i, j, 0],
            "values": {"prompt": axes[0]["values"][i], "cfg": axes[1]["values"][j], "seed": 42},
            "status": status, "error": "CUDA <oom>" if status == "failed" else None,
            "files": [] if status == "failed" else [str(path)],
        })
    return {"batch_id": "b-1", "batch_name": "sweep </title><b>", "mode": "matrix", "state": "complete",
            "axes": axes, "cells": cells, "counts": {"total": 4, "done": 3, "failed": 1}}


# ------------------------------------------------------------------------------------ json / csv
def test_batch_json_lists_every_cell_with_relative_paths(tmp_path: Path) -> None:
    status = _status(tmp_path)
    out = manifest.write_manifest(status, tmp_path)
    doc = json.loads(Path(out["json"]).read_text(encoding="utf-8"))
    assert doc["format"] == manifest.MANIFEST_FORMAT and doc["batch_id"] == "b-1" and doc["mode"] == "matrix"
    assert [a["name"] for a in doc["axes"]] == ["prompt", "cfg", "seed"]
    assert len(doc["cells"]) == 4
    c0 = doc["cells"][0]
    assert c0 == {"index": 0, "coords": [0, 0, 0], "seed": 42, "status": "done", "error": None,
                  "files": ["images/cell 000.png"],
                  "outputs": [{"path": "images/cell 000.png", "kind": "image", "node_id": "", "media_type": "image/png"}]}
    # values live once, on the axis: the cell's coords point at them
    assert {a["name"]: a["values"][k] for a, k in zip(doc["axes"], doc["cells"][1]["coords"])} == {
        "prompt": EVIL, "cfg": 0.1 + 0.2, "seed": 42}
    assert doc["cells"][3]["status"] == "failed" and doc["cells"][3]["error"] == "CUDA <oom>"
    assert doc["cells"][3]["files"] == []


def test_batch_json_paths_relative_to_given_root(tmp_path: Path) -> None:
    status = _status(tmp_path / "batch")
    out = manifest.write_manifest(status, tmp_path / "batch", relative_to=tmp_path)
    doc = json.loads(Path(out["json"]).read_text(encoding="utf-8"))
    assert doc["cells"][0]["files"] == ["batch/images/cell 000.png"]


def test_batch_csv_has_one_row_per_cell_and_one_column_per_axis(tmp_path: Path) -> None:
    status = _status(tmp_path)
    out = manifest.write_manifest(status, tmp_path)
    with open(out["csv"], encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0].keys()) == ["index", "coords", "prompt", "cfg", "seed", "resolved_seed", "status", "error", "file", "files"]
    assert len(rows) == 4
    assert rows[0]["prompt"] == EVIL and float(rows[1]["cfg"]) == 0.1 + 0.2
    assert rows[0]["coords"] == "0;0;0" and rows[0]["file"] == "images/cell 000.png"
    assert rows[0]["seed"] == "42" and rows[0]["resolved_seed"] == "42"
    assert rows[3]["status"] == "failed" and rows[3]["error"] == "CUDA <oom>" and rows[3]["file"] == ""


def test_csv_axis_named_like_a_fixed_column_is_prefixed(tmp_path: Path) -> None:
    status = {"axes": [{"name": "status", "type": "STRING", "values": ["x"]}],
              "cells": [{"index": 0, "coords": [0], "values": {"status": "x"}, "status": "done", "files": []}]}
    out = manifest.write_manifest(status, tmp_path)
    with open(out["csv"], encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh))
    assert "param:status" in header and header.count("status") == 1


def test_seed_comes_from_cell_metadata_when_given(tmp_path: Path) -> None:
    status = {"axes": [{"name": "cfg", "type": "FLOAT", "values": [1.0]}],
              "cells": [{"index": 0, "coords": [0], "values": {"cfg": 1.0}, "status": "done", "files": [],
                         "metadata": {"seed": 123456789}}]}
    doc = json.loads(Path(manifest.write_manifest(status, tmp_path)["json"]).read_text(encoding="utf-8"))
    assert doc["cells"][0]["seed"] == 123456789


# -------------------------------------------------------------------------------- sweep metadata
@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_grid_image_carries_the_sweep_definition(tmp_path: Path, fmt: str) -> None:
    status = _status(tmp_path)
    axes, cells, mode = grid.axes_and_cells_from_status(status)
    plan = grid.plan_grid(axes, len(cells), (32, 32), grid.GridOptions(format=fmt), mode=mode)
    sweep = manifest.sweep_definition(status)
    pages = grid.compose_grid(plan, cells, tmp_path / "grid", "grid", sweep=sweep)
    got = manifest.read_sweep(pages[0].path)
    assert got == json.loads(json.dumps(sweep))
    assert got is not None and got["axes"][0]["values"][0] == EVIL


def test_huge_sweep_definition_falls_back_to_sidecar_for_jpeg(tmp_path: Path) -> None:
    status = {"batch_id": "b", "axes": [{"name": "prompt", "type": "STRING", "values": ["x" * 70_000]}],
              "cells": [{"index": 0, "coords": [0], "status": "failed", "files": []}]}
    axes, cells, mode = grid.axes_and_cells_from_status(status)
    plan = grid.plan_grid(axes, 1, (32, 32), grid.GridOptions(format="jpeg"))
    (page,) = grid.compose_grid(plan, cells, tmp_path, "grid", sweep=manifest.sweep_definition(status))
    assert Path(page.path).with_suffix(".json").exists()
    got = manifest.read_sweep(page.path)
    assert got is not None and got["axes"][0]["values"][0] == "x" * 70_000


# ----------------------------------------------------------------------------------------- viewer
def _embedded(page: str) -> Any:
    m = re.search(r'<script type="application/json" id="wi-data">(.*?)</script>', page, re.S)
    assert m is not None
    return json.loads(m.group(1))


def test_viewer_embeds_the_batch_as_json_that_parses_back(tmp_path: Path) -> None:
    status = _status(tmp_path)
    path = manifest.write_viewer(status, tmp_path)
    page = Path(path).read_text(encoding="utf-8")
    data = _embedded(page)
    assert data == json.loads(json.dumps(manifest.viewer_data(status, root=str(tmp_path))))
    assert data["axes"][0]["values"][0] == EVIL
    assert data["axes"][1]["labels"] == ["3.0", "0.3"]
    assert [c["files"] for c in data["cells"]][:1] == [["images/cell 000.png"]]


def test_viewer_escapes_script_breakouts_and_title(tmp_path: Path) -> None:
    page = Path(manifest.write_viewer(_status(tmp_path), tmp_path)).read_text(encoding="utf-8")
    # only the two real script elements close; the value's </script> and <!-- are JSON-escaped
    assert page.count("</script>") == 2
    assert "<!--" not in page and 'onerror="alert' not in page
    assert f"<title>{html.escape('sweep </title><b>')}</title>" in page


def test_viewer_is_self_contained(tmp_path: Path) -> None:
    page = Path(manifest.write_viewer(_status(tmp_path), tmp_path)).read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=", page)
    assert not re.search(r"<link[^>]+href=", page)
    assert "http://" not in page and "https://" not in page


def test_viewer_filename_must_be_plain_html(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="filename"):
        manifest.write_viewer(_status(tmp_path), tmp_path, filename="../x.html")


def _dump_dom(url: str) -> str:
    assert CHROMIUM is not None
    # A profile of its own: a Chromium left running by another test would otherwise take the call over.
    with tempfile.TemporaryDirectory(prefix="wi-chromium-") as profile:
        proc = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-extensions", "--disable-quic", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=3000", "--dump-dom", url],
            capture_output=True, text=True, timeout=120, check=False,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture
def chromium() -> str:
    if CHROMIUM is None:
        print("chromium not found; skipping the headless viewer check")
        pytest.skip("chromium not installed (apt-get install chromium to run the headless viewer test)")
    return CHROMIUM


def test_viewer_renders_cells_in_headless_chromium(tmp_path: Path, chromium: str) -> None:
    path = manifest.write_viewer(_status(tmp_path), tmp_path)
    dom = _dump_dom(Path(path).as_uri())
    assert 'id="grid"' in dom
    # default axes: X = last axis (seed, 1 value), Y = cfg; prompt is fixed to its first value
    for k in (0, 1):
        assert f'data-index="{k}"' in dom
    assert 'src="images/cell%20000.png"' in dom
    assert "3 shown" not in dom and "2 shown of 4 cells" in dom
    assert "<img src=\"x\"" not in dom  # the prompt stayed text


def test_viewer_x_y_choice_shows_failed_placeholder(tmp_path: Path, chromium: str) -> None:
    status = _status(tmp_path)
    # two real axes only, so the default X/Y covers every cell including the failed one
    status["axes"] = status["axes"][:2]
    for c in status["cells"]:
        c["coords"] = c["coords"][:2]
    path = manifest.write_viewer(status, tmp_path)
    dom = _dump_dom(Path(path).as_uri())
    assert "4 shown of 4 cells" in dom
    assert 'data-status="failed"' in dom and "CUDA &lt;oom&gt;" in dom
    assert all(f'data-index="{k}"' in dom for k in range(4))


class _ViewHandler(http.server.SimpleHTTPRequestHandler):
    """A stand-in for ComfyUI's /view: serves <root>/<subfolder>/<filename>."""

    root = "."

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        url = urllib.parse.urlparse(self.path)
        if url.path not in ("/view", "/api/view"):
            self.send_error(404)
            return
        q = urllib.parse.parse_qs(url.query)
        target = Path(self.root, q.get("subfolder", [""])[0], q["filename"][0])
        if not target.is_file():
            self.send_error(404)
            return
        body = target.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if target.suffix == ".html" else "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def view_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    handler = type("H", (_ViewHandler,), {"root": str(tmp_path)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()


def test_viewer_served_through_view_builds_view_urls(view_server: tuple[str, Path], chromium: str) -> None:
    base, root = view_server
    batch = root / "wi" / "b1"
    manifest.write_viewer(_status(batch), batch)
    dom = _dump_dom(f"{base}/api/view?filename=viewer.html&subfolder=wi%2Fb1&type=output")
    assert 'data-index="0"' in dom
    want = "/api/view?filename=cell%20000.png&amp;subfolder=wi%2Fb1%2Fimages&amp;type=output"
    assert f'src="{want}"' in dom
