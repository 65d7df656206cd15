"""The client package ships to scripts outside ComfyUI: it is standard library only and ``mypy --strict`` clean."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "workflow_iterator"


def test_client_passes_mypy_strict(tmp_path):
    # Copied alone: mypy must not see the pack (the repository root is a package of its own).
    shutil.copytree(PACKAGE, tmp_path / "workflow_iterator", ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "workflow_iterator"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ, "MYPYPATH": ""})
    assert result.returncode == 0, result.stdout + result.stderr


def test_client_imports_only_the_standard_library():
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top == "__future__", f"{path.name} imports {name}"
