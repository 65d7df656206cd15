"""tests/comfy_standin.py must not drift from the real ComfyUI: checked against every backend present.

The unit tests of the interceptor, feeder and routes run against the stand-in; they prove something about
ComfyUI only while the stand-in behaves like it. So, per backend:

* every node class the stand-in declares exists in the real ``/object_info``, with the same inputs (all
  required ones, for ComfyUI's own nodes), the same types and combo options, and the same ``default`` /
  ``min`` / ``max``;
* the stand-in's queue class for that version (5-field items up to 0.3.66, 6-field from 0.3.67) has the same
  method signatures as the real ``execution.PromptQueue`` (read from the source with ``ast``, so nothing of
  ComfyUI is imported into the test process), and the same ``SENSITIVE_EXTRA_DATA_KEYS``.
"""
from __future__ import annotations

import ast
import inspect
from typing import Any

import pytest

import comfy_standin

pytestmark = pytest.mark.integration

# The queue methods the adapter wraps or calls; their parameters are the contract.
QUEUE_METHODS = ("put", "get", "task_done", "wipe_queue", "delete_queue_item")
SPEC_KEYS = ("default", "min", "max")


def _spec_parts(spec: Any) -> tuple[Any, dict]:
    """``(type or combo options, options dict)`` from an INPUT_TYPES / object_info entry, V1 or V3 combo form."""
    kind = spec[0]
    options = dict(spec[1]) if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if kind == "COMBO":  # the V3 form of a combo in object_info
        kind = list(options.pop("options", []))
    return (list(kind) if isinstance(kind, (list, tuple)) else kind), options


def _real_queue_methods(backend) -> dict[str, list[str]]:
    tree = ast.parse((backend.comfy_dir / "execution.py").read_text())
    queue = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "PromptQueue")
    methods = {}
    for node in queue.body:
        if isinstance(node, ast.FunctionDef):
            methods[node.name] = [a.arg for a in node.args.args + node.args.kwonlyargs]
    return methods


def _real_sensitive_keys(backend) -> tuple:
    tree = ast.parse((backend.comfy_dir / "execution.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SENSITIVE_EXTRA_DATA_KEYS" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    return ()


def test_standin_node_specs_match_the_real_object_info(comfy):
    version = comfy.backend.version
    drift = []
    for class_type, cls in comfy_standin.NODE_CLASS_MAPPINGS.items():
        code, info = comfy.get(f"/object_info/{class_type}")
        if code != 200 or class_type not in (info or {}):
            drift.append(f"{class_type}: no such node in ComfyUI {version}")
            continue
        real = info[class_type]["input"]
        real_required = real.get("required", {})
        real_all = {**real_required, **real.get("optional", {})}
        mine = cls.INPUT_TYPES()["required"]
        if not class_type.startswith("WI") and set(mine) != set(real_required):
            drift.append(f"{class_type}: required inputs {sorted(mine)} != real {sorted(real_required)}")
        for name, spec in mine.items():
            if name not in real_all:
                drift.append(f"{class_type}.{name}: not an input of the real node")
                continue
            kind, options = _spec_parts(spec)
            real_kind, real_options = _spec_parts(real_all[name])
            if kind != real_kind:
                drift.append(f"{class_type}.{name}: type {kind!r} != real {real_kind!r}")
            for key in SPEC_KEYS:
                if options.get(key) != real_options.get(key):
                    drift.append(f"{class_type}.{name}: {key} {options.get(key)!r} != real {real_options.get(key)!r}")
        if bool(cls.OUTPUT_NODE) != bool(info[class_type].get("output_node")):
            drift.append(f"{class_type}: OUTPUT_NODE {cls.OUTPUT_NODE} != real {info[class_type].get('output_node')}")
    assert drift == [], f"the stand-in drifted from ComfyUI {version}:\n" + "\n".join(drift)


def test_standin_queue_has_the_real_method_signatures(backend):
    real = _real_queue_methods(backend)
    standin = comfy_standin.queue_class_for(backend.version)
    for name in QUEUE_METHODS:
        mine = [p for p in inspect.signature(getattr(standin, name)).parameters]
        assert mine == real[name], f"{standin.__name__}.{name}{mine} != ComfyUI {backend.version} PromptQueue.{name}{real[name]}"
    assert ("interrupt_if_running" in real) == hasattr(standin, "interrupt_if_running")
    assert comfy_standin.SENSITIVE_EXTRA_DATA_KEYS == _real_sensitive_keys(backend)


def test_standin_item_shape_matches_the_real_worker(backend):
    """Whether the worker reads a sixth field (``item[5]``), as the stand-in assumes for this version."""
    main = (backend.comfy_dir / "main.py").read_text()
    assert comfy_standin.queue_class_for(backend.version).SIX_FIELDS == ("item[5]" in main)
