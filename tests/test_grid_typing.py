"""``mypy --strict`` over the grid package, the manifest, the batch outputs and the values module.

Skipped (with the reason) when mypy is not installed: ``.venv/bin/pip install mypy``.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = ("core/grid", "core/manifest.py", "core/batch_outputs.py", "core/values.py", "core/records.py")


def test_grid_manifest_outputs_and_values_pass_mypy_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mypy") is None:
        print("mypy not installed; skipping the strict type check")
        pytest.skip("mypy is not installed (.venv/bin/pip install mypy)")
    # The checkout is a package (it has __init__.py); mypy needs it under a package name of its own.
    link = tmp_path / "comfyui_workflow_iterator"
    os.symlink(ROOT, link)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-error-summary",
         "--cache-dir", str(tmp_path / "cache"), *(f"comfyui_workflow_iterator/{m}" for m in MODULES)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
