"""Registers the repository root as the package ``comfyui_workflow_iterator``.

The pack uses relative imports only, so ComfyUI can load it from any folder name; tests need a stable
package name to import it by, whatever folder the checkout lives in.
"""
from __future__ import annotations

import importlib.util
import pathlib
import sys

PACKAGE = "comfyui_workflow_iterator"
ROOT = pathlib.Path(__file__).resolve().parent.parent


def _register_package() -> None:
    if PACKAGE in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        PACKAGE, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    spec.loader.exec_module(module)


_register_package()
