"""``mypy --strict`` over the planning modules (parser, combinations, planner, prompt graph, input specs, errors).

The repository root is itself the package (``__init__.py`` at the top), so mypy is run on a temporary folder
holding a link to it under the package's test name, checking only these files (imports followed silently).
Skipped, with the reason, where mypy is not installed.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "comfyui_workflow_iterator"
MODULES = ("parameter_parser", "combination_engine", "planner", "prompt_graph", "input_spec", "errors")


def test_planning_modules_pass_mypy_strict(tmp_path):
    pytest.importorskip("mypy", reason="mypy is not installed (pip install mypy)")
    (tmp_path / PACKAGE).symlink_to(ROOT, target_is_directory=True)
    files = [f"{PACKAGE}/core/{name}.py" for name in MODULES]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental", *files],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "MYPYPATH": ""},
    )
    assert result.returncode == 0, result.stdout + result.stderr
