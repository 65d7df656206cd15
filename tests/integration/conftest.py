"""Real ComfyUI servers for the integration tests, one per backend, each started once with this pack linked in.

Backends come from ``tools.comfy_harness.locate_backends()``: ``COMFYUI_DIR`` / ``COMFYUI_PYTHON`` for exactly one,
else the space-separated ``WI_COMFYUI_DIRS`` (default ``/opt/ComfyUI /opt/ComfyUI-0.8``). Every test that uses the
``comfy`` fixture (or ``backend``) runs once per backend, with the version in its id (``[comfyui-0.8.0]``); a
configured backend that is not installed gives one skipped test per test with the reason, and the end-of-run
summary (tests/ran_registry.py) lists it. ``WI_REQUIRE_INTEGRATION=1`` turns those skips into failures.

Pytest runs all tests of one backend before starting the next, so only one server is up at a time.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import ran_registry  # noqa: E402  (tests/ is on sys.path: tests/conftest.py puts it there)

from tools.comfy_harness import Backend, ComfyServer, locate_backends  # noqa: E402

FIXTURE_NODES = Path(__file__).resolve().parent / "fixture_nodes"
EXTRA_PACKS = {"wi_test_nodes": FIXTURE_NODES}


def _backend_params() -> list:
    params, seen = [], set()
    for directory, found in locate_backends():
        if isinstance(found, Backend):
            test_id = found.label
        else:
            test_id = "absent-" + re.sub(r"[^A-Za-z0-9.]+", "-", directory).strip("-")
        while test_id in seen:  # two checkouts of one version
            test_id += "-" + re.sub(r"[^A-Za-z0-9.]+", "-", directory).strip("-")
        seen.add(test_id)
        params.append(pytest.param((directory, found), id=test_id))
    return params


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        params = _backend_params()
        if not params:
            params = [pytest.param(("(none)", "WI_COMFYUI_DIRS is empty: no ComfyUI configured"), id="no-backend")]
        metafunc.parametrize("backend", params, indirect=True, scope="session")


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> Backend:
    """One configured ComfyUI install; skips (fails under the strict switch) when it is not usable."""
    directory, found = request.param
    if isinstance(found, str):
        ran_registry.skip("backend", f"ComfyUI at {directory}", found)
    return found


@pytest.fixture(scope="session")
def comfy(backend: Backend):
    """A running ComfyUI of ``backend`` with this pack and the test-only nodes, shared by the session."""
    server = ComfyServer(extra_packs=EXTRA_PACKS, backend=backend)
    try:
        server.start()
    except RuntimeError as exc:
        server.cleanup()
        pytest.fail(f"{backend.describe()} is installed but did not start: {exc}")
    yield server
    server.cleanup()


@pytest.fixture(autouse=True)
def _tag_backend(request: pytest.FixtureRequest) -> None:
    """Counts this test's outcome under its backend in the end-of-run summary."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is None or "backend" not in callspec.params:
        return
    directory, found = callspec.params["backend"]
    name = found.describe() if isinstance(found, Backend) else f"ComfyUI at {directory}"
    ran_registry.tag(request, "backend", name)
