"""The web extension end to end: headless Chromium (playwright-core) against a real ComfyUI with this pack.

One module-scoped run starts ComfyUI (this pack plus the test-only fixture nodes), then ``run_e2e.mjs`` drives
the page through every scenario with one browser and writes ``test-artifacts/e2e/results.json`` and screenshots.
Each test below checks one scenario's result (and re-checks the server over HTTP where it matters).

Skipped, with the reason printed, when Chromium, Node/npm, playwright-core (after ``npm ci``) or ComfyUI is
missing. Environment: ``WI_CHROMIUM`` (browser binary, default /usr/bin/chromium), ``COMFYUI_DIR`` /
``COMFYUI_PYTHON`` (see tools/comfy_harness.py), ``WI_E2E_UPDATE_DOCS=1`` to copy the README screenshots into
docs/screenshots/.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

E2E_DIR = Path(__file__).resolve().parent
REPO = E2E_DIR.parents[1]
ARTIFACTS = REPO / "test-artifacts" / "e2e"
DOCS_SCREENSHOTS = REPO / "docs" / "screenshots"
FIXTURE_NODES = REPO / "tests" / "integration" / "fixture_nodes"
DRIVER = E2E_DIR / "run_e2e.mjs"
DRIVER_TIMEOUT_S = 240
# Clipped screenshots the README uses: artifact name -> docs name.
DOC_SHOTS = {
    "panel_running.png": "panel_running.png",
    "panel_finished.png": "panel_finished_grid.png",
    "panel_cancelled.png": "panel_cancelled.png",
    "toast_param_error.png": "toast_param_error.png",
}

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.comfy_harness import ComfyServer, locate_comfyui  # noqa: E402


def _skip(reason: str):
    print(f"\n[WI e2e] skipped: {reason}", file=sys.stderr)
    pytest.skip(reason)


def _node_major(node: str) -> int:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
        return int(out.lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError):
        return 0


def _ensure_playwright(npm: str) -> None:
    """Installs tests/e2e/node_modules from the lock file when absent; skips when that fails."""
    if (E2E_DIR / "node_modules" / "playwright-core" / "package.json").is_file():
        return
    attempts = [[npm, "ci", "--no-audit", "--no-fund"], [npm, "install", "--no-audit", "--no-fund"]]
    if not (E2E_DIR / "package-lock.json").is_file():
        attempts = attempts[1:]
    output = ""
    for command in attempts:
        print(f"\n[WI e2e] running {' '.join(command[1:])!r} with npm in {E2E_DIR}", file=sys.stderr)
        try:
            done = subprocess.run(command, cwd=E2E_DIR, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            output = str(exc)
            continue
        output = (done.stdout + done.stderr)[-1500:]
        if done.returncode == 0 and (E2E_DIR / "node_modules" / "playwright-core" / "package.json").is_file():
            return
    _skip(f"playwright-core is not installed and npm could not install it: {output.strip()}")


def _prerequisites() -> tuple[str, str]:
    chromium = os.environ.get("WI_CHROMIUM", "/usr/bin/chromium")
    if not (os.path.isfile(chromium) and os.access(chromium, os.X_OK)):
        _skip(f"no Chromium at {chromium} (apt-get install chromium, or set WI_CHROMIUM)")
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        _skip("node and npm are needed to drive the browser (Node 18 or newer)")
    if _node_major(node) < 18:
        _skip(f"Node 18 or newer is needed, {node} is older")
    found = locate_comfyui()
    if isinstance(found, str):
        _skip(f"integration test skipped: {found}")
    _ensure_playwright(npm)
    return chromium, node


@pytest.fixture(scope="module")
def e2e():
    """Runs every browser scenario once; yields (results by scenario name, the report, the server)."""
    chromium, node = _prerequisites()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in list(ARTIFACTS.glob("*.png")) + list(ARTIFACTS.glob("results.json")):
        old.unlink()
    server = ComfyServer(extra_packs={"wi_test_nodes": FIXTURE_NODES})
    try:
        server.start()
    except RuntimeError as exc:
        server.cleanup()
        pytest.fail(f"ComfyUI is installed but did not start: {exc}")
    try:
        env = {**os.environ, "WI_COMFY_URL": server.url, "WI_E2E_ARTIFACTS": str(ARTIFACTS), "WI_CHROMIUM": chromium}
        try:
            run = subprocess.run([node, str(DRIVER)], cwd=E2E_DIR, env=env, capture_output=True, text=True,
                                 timeout=DRIVER_TIMEOUT_S)
            output = run.stdout + run.stderr
        except subprocess.TimeoutExpired as exc:
            output = f"{exc.stdout or ''}{exc.stderr or ''}\n(driver timed out after {DRIVER_TIMEOUT_S}s)"
        print(f"\n{output}", file=sys.stderr)
        results_path = ARTIFACTS / "results.json"
        if not results_path.is_file():
            pytest.fail(f"the browser driver wrote no results; output:\n{output}\nComfyUI log:\n{server.log_tail()}")
        report = json.loads(results_path.read_text())
        by_name = {result["name"]: result for result in report["results"]}
        if os.environ.get("WI_E2E_UPDATE_DOCS") == "1":
            DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            for source, target in DOC_SHOTS.items():
                if (ARTIFACTS / source).is_file():
                    shutil.copyfile(ARTIFACTS / source, DOCS_SCREENSHOTS / target)
        yield by_name, report, server
    finally:
        server.cleanup()


def _scenario(e2e, name: str) -> dict:
    by_name, report, server = e2e
    if "setup" in by_name:
        pytest.fail(f"the page did not come up: {by_name['setup']['error']}")
    result = by_name.get(name)
    assert result is not None, f"scenario {name} did not run: {sorted(by_name)}"
    assert result["ok"], f"{name}: {result['error']}\n(see {ARTIFACTS}/FAILED_{name}.png; toasts: {result.get('toasts')})"
    return result["data"]


def test_example_sweep_reaches_9_of_9_with_grid_thumbnail(e2e):
    data = _scenario(e2e, "sweep_grid")
    server = e2e[2]
    assert data["view"]["tiles"] == ["done"] * 9
    assert data["view"]["gridSize"][0] > 0
    code, status = server.get(f"/wi/status/{data['batchId']}")
    assert code == 200 and status["state"] == "complete" and status["grid"]["filename"]


def test_cancel_from_panel_marks_batch_cancelled_and_spares_unrelated_prompt(e2e):
    data = _scenario(e2e, "cancel")
    server = e2e[2]
    assert data["cancelledView"]["stateLabel"] == "cancelled"
    code, status = server.get(f"/wi/status/{data['batchId']}")
    assert code == 200 and status["state"] == "cancelled"
    assert 1 <= status["counts"]["done"] < status["counts"]["total"]
    assert status["counts"]["cancelled"] == status["counts"]["total"] - status["counts"]["done"]
    history = server.wait_history(data["plainPromptId"], timeout=30)
    assert history["status"]["status_str"] == "success"
    image = history["outputs"]["2"]["images"][0]
    assert (server.output_dir / image["subfolder"] / image["filename"]).is_file()


def test_cancel_without_confirmation_when_setting_is_off(e2e):
    data = _scenario(e2e, "cancel_no_confirm")
    code, status = e2e[2].get(f"/wi/status/{data['batchId']}")
    assert code == 200 and status["state"] == "cancelled"


def test_bad_parameter_value_raises_toast_naming_it(e2e):
    data = _scenario(e2e, "param_error")
    assert 'Sweep parameter "radius"' in data["toast"]
    assert "Sweep not queued" in data["refusedToast"]


def test_panel_rebuilds_finished_batches_after_reload(e2e):
    data = _scenario(e2e, "reload")
    assert sorted(data["expected"].values()) == ["cancelled", "complete"]


def test_no_console_errors_from_the_pack(e2e):
    _scenario(e2e, "console_clean")
    report = e2e[1]
    assert report["console"]["ours"] == []
