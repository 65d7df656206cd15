"""``mypy --strict`` over all of ``core/`` (issue 11): the plain-Python layer is type-checked strictly, whole.

The repository root is itself the package (``__init__.py`` at the top), so mypy runs on a temporary folder
holding a link to it under the package's test name. mypy is pinned in requirements-dev.txt, which the test
command installs: a missing mypy is a failure, not a skip.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "comfyui_workflow_iterator"


def test_core_passes_mypy_strict(tmp_path):
    (tmp_path / PACKAGE).symlink_to(ROOT, target_is_directory=True)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental", f"{PACKAGE}/core"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ, "MYPYPATH": ""},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
