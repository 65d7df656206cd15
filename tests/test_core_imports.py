"""core/ must stay plain Python: importing any core module must not load torch, ComfyUI or aiohttp.

Each module is imported in a fresh interpreter (so nothing else in the test session has already loaded the
forbidden modules), with the repository registered as the package ``comfyui_workflow_iterator`` WITHOUT running
the pack's root ``__init__.py`` (which is allowed to talk to ComfyUI). Modules are discovered from the file
system, so new core modules are covered automatically.
"""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "comfyui_workflow_iterator"
FORBIDDEN = (
    "torch",
    "comfy",
    "comfy_execution",
    "comfy_api",
    "comfy_extras",
    "server",
    "nodes",
    "execution",
    "folder_paths",
    "aiohttp",
)

# Runs in the child: argv = [root, package, module, forbidden...]; prints a JSON list of forbidden modules loaded.
CHECKER = r"""
import importlib, json, sys, types
root, package, module = sys.argv[1:4]
forbidden = sys.argv[4:]

def loaded():
    return sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in forbidden))

before = loaded()
if before:
    print(json.dumps({"error": "already loaded before import: %s" % before}))
    sys.exit(0)
pkg = types.ModuleType(package)
pkg.__path__ = [root]
pkg.__package__ = package
sys.modules[package] = pkg
importlib.import_module(package + "." + module)
print(json.dumps({"forbidden": loaded()}))
"""


def _core_modules(root: pathlib.Path) -> list[str]:
    core = root / "core"
    names = []
    for path in sorted(core.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def _forbidden_after_import(root: pathlib.Path, module: str, extra_path: str | None = None) -> list[str]:
    env_path = [str(extra_path)] if extra_path else []
    code = CHECKER if not env_path else f"import sys; sys.path[:0] = {env_path!r}\n" + CHECKER
    result = subprocess.run(
        [sys.executable, "-c", code, str(root), PACKAGE, module, *FORBIDDEN],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"importing {module} failed:\n{result.stderr}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "error" not in report, report.get("error")
    return report["forbidden"]


MODULES = _core_modules(ROOT)


def test_core_modules_are_discovered() -> None:
    assert "core" in MODULES
    for expected in ("core.errors", "core.parameter_parser", "core.combination_engine"):
        assert expected in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_core_module_imports_nothing_forbidden(module: str) -> None:
    assert _forbidden_after_import(ROOT, module) == []


def test_checker_detects_a_forbidden_import(tmp_path: pathlib.Path) -> None:
    # A stand-in package whose core module imports a stub "torch": the checker must report it, proving the
    # test above can fail.
    pack = tmp_path / "pack"
    (pack / "core").mkdir(parents=True)
    (pack / "__init__.py").write_text("", encoding="utf-8")
    (pack / "core" / "__init__.py").write_text("", encoding="utf-8")
    (pack / "core" / "bad.py").write_text("from __future__ import annotations\nimport torch\n", encoding="utf-8")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "torch.py").write_text("", encoding="utf-8")
    assert _core_modules(pack) == ["core", "core.bad"]
    assert _forbidden_after_import(pack, "core.bad", extra_path=str(stubs)) == ["torch"]
