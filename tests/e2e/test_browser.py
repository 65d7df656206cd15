"""The web extension end to end: headless Chromium (playwright-core) against a real ComfyUI, per frontend.

For each frontend in ``WI_FRONTENDS`` one ComfyUI (this pack plus the test-only fixture nodes) serves that
frontend through ``--front-end-root``; ``run_e2e.mjs`` then drives one page through every scenario, first with
the canvas node renderer, then with "Nodes 2.0" (``Comfy.VueNodes.Enabled``), and writes
``test-artifacts/e2e/<frontend>/results.json`` plus screenshots. Each test below checks one scenario's result
for one frontend (and renderer), re-checking the server over HTTP where it matters. The driver asks for a
ComfyUI restart in the ``restart_resume`` scenario: this module kills the server (SIGKILL) and starts it again
on the same base directory and port.

Environment:
  WI_FRONTENDS      frontend static roots to test, separated by ``os.pathsep`` (":"); default: every
                    ``/opt/frontends/*`` folder with an ``index.html`` (PyPI ``comfyui-frontend-package``
                    versions), or ComfyUI's own bundled frontend when there is none. A listed folder that does
                    not exist is skipped with the reason printed.
  WI_CHROMIUM       browser binary (default /usr/bin/chromium)
  COMFYUI_DIR / COMFYUI_PYTHON   see tools/comfy_harness.py
  WI_E2E_UPDATE_DOCS=1   copy the README screenshots (from the newest frontend) into docs/screenshots/

Skipped, with the reason printed, when Chromium, Node (of the version the lock file's ``engines`` ask for), npm,
playwright-core (installed only by ``npm ci`` from package-lock.json, never by a plain install) or ComfyUI is
missing.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

E2E_DIR = Path(__file__).resolve().parent
REPO = E2E_DIR.parents[1]
ARTIFACTS = REPO / "test-artifacts" / "e2e"
DOCS_SCREENSHOTS = REPO / "docs" / "screenshots"
FIXTURE_NODES = REPO / "tests" / "integration" / "fixture_nodes"
DRIVER = E2E_DIR / "run_e2e.mjs"
LOCK_FILE = E2E_DIR / "package-lock.json"
DRIVER_TIMEOUT_S = 900
FRONTENDS_ROOT = Path("/opt/frontends")
BUNDLED = "bundled"
RENDERERS = ("off", "on")
# Clipped screenshots the README uses: artifact name -> docs name.
DOC_SHOTS = {
    "panel_running.png": "panel_running.png",
    "panel_finished.png": "panel_finished_grid.png",
    "panel_cancelled.png": "panel_cancelled.png",
    "toast_param_error.png": "toast_param_error.png",
    "panel_interrupted.png": "panel_interrupted.png",
    "badges.vue.full.png": "badges_nodes2.png",
}
RESTART_REQUEST = "WI-E2E-RESTART"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.comfy_harness import Backend, ComfyServer, locate_backends, locate_comfyui  # noqa: E402

if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))
import ran_registry  # noqa: E402


def _say(message: str) -> None:
    print(f"\n[WI e2e] {message}", file=sys.stderr)


def _skip(reason: str, name: str = "browser tests"):
    """A missing prerequisite (Chromium, Node, a frontend, ComfyUI): recorded for the end-of-run summary, and a
    failure under WI_REQUIRE_INTEGRATION=1."""
    _say(f"skipped: {reason}")
    ran_registry.skip("frontend", name, reason)


def _version_key(path: Path) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"[.\-]", path.name))


def configured_frontends() -> list[str]:
    """Frontend roots to test (paths), or [BUNDLED] for ComfyUI's own frontend."""
    listed = os.environ.get("WI_FRONTENDS")
    if listed:
        return [item for item in listed.split(os.pathsep) if item.strip()]
    if FRONTENDS_ROOT.is_dir():
        found = sorted((p for p in FRONTENDS_ROOT.iterdir() if (p / "index.html").is_file()), key=_version_key)
        if found:
            return [str(p) for p in found]
    return [BUNDLED]


def frontend_label(frontend: str) -> str:
    return BUNDLED if frontend == BUNDLED else Path(frontend).name


FRONTENDS = configured_frontends()
#: Every usable ComfyUI (WI_COMFYUI_DIRS, as for the integration tests): the scenarios run on each backend with each
#: frontend. Without any, one run per frontend skips with the reason.
BACKENDS: list[Backend | None] = [found for _, found in locate_backends() if isinstance(found, Backend)] or [None]
RUNS = [(backend, frontend) for backend in BACKENDS for frontend in FRONTENDS]


def run_label(backend: Backend | None, frontend: str) -> str:
    return f"{backend.label}-{frontend_label(frontend)}" if backend is not None else frontend_label(frontend)


NEWEST = max((f for f in FRONTENDS if f != BUNDLED and (Path(f) / "index.html").is_file()), key=lambda f: _version_key(Path(f)),
             default=None)


# ------------------------------------------------------------------------------------------- prerequisites
def _lock() -> dict:
    return json.loads(LOCK_FILE.read_text())


def node_requirement(lock: dict) -> tuple[int, int, int]:
    """The highest ``>=X.Y.Z`` any package in the lock asks of Node (``engines.node``)."""
    needed = (0, 0, 0)
    for package in lock.get("packages", {}).values():
        spec = (package.get("engines") or {}).get("node")
        if not spec:
            continue
        match = re.fullmatch(r"\s*>=\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*", spec)
        if not match:
            raise ValueError(f"package-lock.json: unsupported engines.node {spec!r} (only '>=X[.Y[.Z]]' is checked)")
        needed = max(needed, tuple(int(part or 0) for part in match.groups()))
    return needed


def _node_version(node: str) -> tuple[int, int, int] | None:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
        major, minor, patch = (int(part) for part in out.lstrip("v").split(".")[:3])
        return major, minor, patch
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _installed_matches_lock(lock: dict) -> bool:
    for key, package in lock.get("packages", {}).items():
        if not key.startswith("node_modules/"):
            continue
        manifest = E2E_DIR / key / "package.json"
        if not manifest.is_file() or json.loads(manifest.read_text()).get("version") != package.get("version"):
            return False
    return True


def _ensure_playwright(npm: str, lock: dict) -> None:
    """``npm ci`` (exactly the lock file, nothing else) unless node_modules already matches the lock."""
    if _installed_matches_lock(lock):
        return
    _say(f"running 'npm ci' in {E2E_DIR}")
    try:
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=E2E_DIR, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _skip(f"npm ci could not install playwright-core from package-lock.json: {exc}")
    if done.returncode != 0 or not _installed_matches_lock(lock):
        _skip(f"npm ci could not install playwright-core from package-lock.json: {(done.stdout + done.stderr)[-1500:].strip()}")


def _prerequisites() -> tuple[str, str]:
    chromium = os.environ.get("WI_CHROMIUM", "/usr/bin/chromium")
    if not (os.path.isfile(chromium) and os.access(chromium, os.X_OK)):
        _skip(f"no Chromium at {chromium} (apt-get install chromium, or set WI_CHROMIUM)")
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        _skip("node and npm are needed to drive the browser")
    lock = _lock()
    needed = node_requirement(lock)
    have = _node_version(node)
    if have is None or have < needed:
        _skip(f"package-lock.json needs Node >={'.'.join(map(str, needed))}; {node} is "
              f"{'.'.join(map(str, have)) if have else 'unreadable'}")
    found = locate_comfyui()
    if isinstance(found, str):
        _skip(f"integration test skipped: {found}")
    _ensure_playwright(npm, lock)
    return chromium, node


# ------------------------------------------------------------------------------------------------- the run
class _Run:
    """One frontend: the server (replaced on restart) and the driver's report."""

    def __init__(self, frontend: str, backend: Backend | None = None) -> None:
        self.frontend = frontend
        self.backend = backend
        self.label = run_label(backend, frontend)
        self.artifacts = ARTIFACTS / self.label
        self.extra_args = [] if frontend == BUNDLED else ["--front-end-root", frontend]
        self.first = ComfyServer(extra_packs={"wi_test_nodes": FIXTURE_NODES}, extra_args=self.extra_args, backend=backend)
        self.server = self.first
        self.restarts = 0
        self.report: dict = {}

    def restart(self) -> None:
        """SIGKILL, then the same base directory and port, as after a crash."""
        time.sleep(0.5)  # let the journal's writer commit the ends it has been handed
        port = self.server.port
        self.server.stop(kill=True)
        again = ComfyServer(extra_packs={"wi_test_nodes": FIXTURE_NODES}, extra_args=self.extra_args,
                            base_dir=self.first.base_dir, backend=self.backend)
        again.port = port
        again.start()
        self.server = again
        self.restarts += 1

    def drive(self, chromium: str, node: str) -> str:
        env = {**os.environ, "WI_COMFY_URL": self.server.url, "WI_E2E_ARTIFACTS": str(self.artifacts),
               "WI_CHROMIUM": chromium, "WI_E2E_RENDERERS": ",".join(RENDERERS), "WI_E2E_RESTART_CONTROL": "1"}
        process = subprocess.Popen([node, str(DRIVER)], cwd=E2E_DIR, env=env, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        timer = threading.Timer(DRIVER_TIMEOUT_S, process.kill)
        timer.start()
        output = []
        try:
            assert process.stdout is not None and process.stdin is not None
            for line in process.stdout:
                output.append(line)
                if line.strip() == RESTART_REQUEST:
                    try:
                        self.restart()
                        process.stdin.write("restarted\n")
                    except RuntimeError as exc:
                        output.append(f"(restart failed: {exc})\n")
                        process.stdin.write(f"failed {exc}\n")
                    process.stdin.flush()
            process.wait()
        finally:
            timer.cancel()
            if process.poll() is None:
                process.kill()
        if process.returncode not in (0, 1):
            output.append(f"(driver exited with {process.returncode}; killed after {DRIVER_TIMEOUT_S}s?)\n")
        return "".join(output)

    def cleanup(self) -> None:
        if self.server is not self.first:
            self.server.stop()
        self.first.cleanup()


@pytest.fixture(scope="module", params=RUNS, ids=[run_label(b, f) for b, f in RUNS])
def e2e(request):
    """Runs every browser scenario once for one backend and frontend; yields the run (report and server)."""
    backend, frontend = request.param
    if frontend != BUNDLED and not (Path(frontend) / "index.html").is_file():
        _skip(f"frontend {frontend} not found (no index.html): install comfyui-frontend-package there or fix WI_FRONTENDS",
              frontend_label(frontend))
    chromium, node = _prerequisites()
    run = _Run(frontend, backend)
    run.artifacts.mkdir(parents=True, exist_ok=True)
    for old in list(run.artifacts.glob("*.png")) + list(run.artifacts.glob("results.json")):
        old.unlink()
    try:
        run.server.start()
    except RuntimeError as exc:
        run.cleanup()
        pytest.fail(f"ComfyUI is installed but did not start with frontend {run.label}: {exc}")
    try:
        started = time.monotonic()
        output = run.drive(chromium, node)
        _say(f"frontend {run.label}: driver took {time.monotonic() - started:.0f}s\n{output}")
        results_path = run.artifacts / "results.json"
        if not results_path.is_file():
            pytest.fail(f"the browser driver wrote no results; output:\n{output}\nComfyUI log:\n{run.server.log_tail()}")
        run.report = json.loads(results_path.read_text())
        _summarise(run)
        if os.environ.get("WI_E2E_UPDATE_DOCS") == "1" and frontend == NEWEST and backend is BACKENDS[0]:
            DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            for source, target in DOC_SHOTS.items():
                if (run.artifacts / source).is_file():
                    shutil.copyfile(run.artifacts / source, DOCS_SCREENSHOTS / target)
        yield run
    finally:
        run.cleanup()


def _summarise(run: _Run) -> None:
    """One line per renderer: which scenarios passed, for the README's compatibility table."""
    for renderer in RENDERERS:
        rows = [r for r in run.report["results"] if r.get("renderer") == renderer]
        failed = [r["name"] for r in rows if not r["ok"]]
        skipped = [r["name"] for r in rows if r.get("skipped")]
        verdict = "PASS" if rows and not failed else ("NOT RUN" if not rows else f"FAIL ({', '.join(failed)})")
        if skipped:
            verdict += f", skipped: {', '.join(skipped)}"
        _say(f"compatibility: frontend {run.label} x renderer {renderer}: {verdict} ({len(rows)} scenarios)")
        if rows:
            ran_registry.record_ran("frontend", f"{run.label} x renderer {renderer}", f"{verdict} ({len(rows)} scenarios)")


def _scenario(run: _Run, name: str, renderer: str = "off") -> dict:
    results = run.report["results"]
    setup = [r for r in results if r["name"] == "setup" and r.get("renderer") in (renderer, None)]
    if setup:
        pytest.fail(f"the page did not come up ({run.label}, renderer {renderer}): {setup[0]['error']}")
    result = next((r for r in results if r["name"] == name and r.get("renderer") == renderer), None)
    assert result is not None, f"scenario {name} (renderer {renderer}) did not run: {sorted({r['name'] for r in results})}"
    assert result["ok"], (f"{run.label}/{renderer}/{name}: {result['error']}\n(see {run.artifacts}/FAILED_{renderer}_{name}.png;"
                          f" toasts: {result.get('toasts')})")
    if result.get("skipped"):  # the frontend lacks what the scenario checks (a feature of later versions)
        _say(f"not applicable: {run.label}/{renderer}/{name}: {result['skipped']}")
        ran_registry.not_applicable(f"{run.label}/{renderer}/{name}: {result['skipped']}")
    return result["data"]


@pytest.mark.parametrize("renderer", RENDERERS)
def test_example_sweep_reaches_9_of_9_with_grid_thumbnail(e2e, renderer):
    data = _scenario(e2e, "sweep_grid", renderer)
    assert data["view"]["tiles"] == ["done"] * 9
    assert data["view"]["gridSize"][0] > 0
    code, status = e2e.server.get(f"/wi/status/{data['batchId']}")
    assert code == 200 and status["state"] == "complete" and status["grid"]["filename"]


@pytest.mark.parametrize("renderer", RENDERERS)
def test_badges_are_visible_text_on_the_nodes_and_turn_red_on_a_bad_value(e2e, renderer):
    data = _scenario(e2e, "badges", renderer)
    assert "4 prompts · matrix" in data["iterator"]["text"]
    assert data["color"]["text"] == "2 values"
    assert data["radius"]["tone"] == "error" and "radius" in data["radius"]["text"]
    assert not data["serialized"]["promptHasBadge"] and not data["serialized"]["workflowHasBadge"]


def test_cancel_from_panel_marks_batch_cancelled_and_spares_unrelated_prompt(e2e):
    data = _scenario(e2e, "cancel")
    assert data["confirmation"] == "dialog"
    assert data["cancelledView"]["stateLabel"] == "cancelled"
    code, status = e2e.server.get(f"/wi/status/{data['batchId']}")
    assert code == 200 and status["state"] == "cancelled"
    assert 1 <= status["counts"]["done"] < status["counts"]["total"]
    assert status["counts"]["cancelled"] == status["counts"]["total"] - status["counts"]["done"]
    # ComfyUI's history is in memory and restart_resume restarts the server later in the run: the driver read
    # the unrelated prompt's history while the first server ran; its image is on disk in the shared base dir.
    assert data["plainStatus"] == "success"
    image = data["plainOutputs"]["2"]["images"][0]
    assert (e2e.server.output_dir / image["subfolder"] / image["filename"]).is_file()


def test_progress_pill_leaves_the_canvas_toolbar_free(e2e):
    data = _scenario(e2e, "cancel")
    pill, toolbar = data["pillBox"], data["toolbarBox"]
    assert toolbar is not None
    assert (pill["x"] + pill["width"] <= toolbar["x"] or toolbar["x"] + toolbar["width"] <= pill["x"]
            or pill["y"] + pill["height"] <= toolbar["y"] or toolbar["y"] + toolbar["height"] <= pill["y"])


def test_cancel_without_confirmation_when_setting_is_off(e2e):
    data = _scenario(e2e, "cancel_no_confirm")
    code, status = e2e.server.get(f"/wi/status/{data['batchId']}")
    assert code == 200 and status["state"] == "cancelled"


@pytest.mark.parametrize("renderer", RENDERERS)
def test_bad_parameter_value_raises_toast_naming_it(e2e, renderer):
    data = _scenario(e2e, "param_error", renderer)
    assert 'Sweep parameter "radius"' in data["toast"] and data["toastKind"] == "warning"
    assert "Sweep not queued" in data["refusedToast"]
    assert data["cellCounts"]["done"] == 2 and data["cellCounts"]["failed"] == 0


def test_panel_rebuilds_finished_batches_after_reload(e2e):
    data = _scenario(e2e, "reload")
    assert sorted(data["expected"].values()) == ["cancelled", "complete"]


def test_batch_killed_with_comfyui_shows_interrupted_and_resume_finishes_it(e2e):
    data = _scenario(e2e, "restart_resume")
    assert e2e.restarts == 1
    for view in (data["live"], data["afterReload"]):
        assert view["stateLabel"] == "interrupted" and not view["resumeHidden"] and view["pillHidden"]
    code, status = e2e.server.get(f"/wi/status/{data['batchId']}")
    assert code == 200 and status["state"] == "complete" and status["counts"]["done"] == 6


def test_bottom_panel_scrolls_to_the_last_card(e2e):
    data = _scenario(e2e, "bottom_panel")
    assert data["after"]["scrollTop"] > 0 and data["after"]["cardEndInsidePanel"] and data["after"]["hitIsCard"]


@pytest.mark.parametrize("renderer", RENDERERS)
def test_no_deprecation_warning_from_the_pack(e2e, renderer):
    _scenario(e2e, "deprecations", renderer)


@pytest.mark.parametrize("renderer", RENDERERS)
def test_events_arriving_before_setup_have_a_listener(e2e, renderer):
    """Regression (CI, 0.8.0 + 1.58.1): a wi.worker_state broadcast between the socket opening and the extensions'
    setup was reported as "Unknown message type"; the pack now listens from import."""
    data = _scenario(e2e, "early_events", renderer)
    assert data["loads"] >= 1 and data["appWasStarting"][0] is True


@pytest.mark.parametrize("renderer", RENDERERS)
def test_no_console_errors_from_the_pack(e2e, renderer):
    _scenario(e2e, "console_clean", renderer)
    tag = f"[renderer {renderer}]"
    assert [entry for entry in e2e.report["console"]["ours"] if entry.startswith(tag)] == []
