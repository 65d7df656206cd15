"""A real ComfyUI server for the integration tests, started once per session with this pack linked in.

Found through COMFYUI_DIR / COMFYUI_PYTHON, else /opt/ComfyUI; when none is usable every test here is skipped
and the reason is printed (pytest -rs shows it too).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tools.comfy_harness import ComfyServer, locate_comfyui  # noqa: E402

FIXTURE_NODES = Path(__file__).resolve().parent / "fixture_nodes"


def pytest_collection_modifyitems(config, items):
    found = locate_comfyui()
    if isinstance(found, str):
        reason = f"integration test skipped: {found}"
        print(f"\n[WI] {reason}", file=sys.stderr)
        for item in items:
            if "integration" in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def comfy():
    found = locate_comfyui()
    if isinstance(found, str):
        pytest.skip(f"integration test skipped: {found}")
    server = ComfyServer(extra_packs={"wi_test_nodes": FIXTURE_NODES})
    try:
        server.start()
    except RuntimeError as exc:
        server.cleanup()
        pytest.fail(f"ComfyUI is installed but did not start: {exc}")
    yield server
    server.cleanup()
