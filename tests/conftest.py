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


# ------------------------------------------------------------------ what ran (tests/ran_registry.py)
import os  # noqa: E402

import pytest  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
import ran_registry  # noqa: E402

# Tests that need something outside the repository: a skip of one of these is a hole in the run.
_REAL_MARKERS = ("integration", "e2e")


_collected_real: list[bool] = [False]


_own_ran_file: list[str] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    if not os.environ.get("WI_RAN_FILE"):
        # A file of this session's own (subprocesses inherit the variable), so two pytest runs in one checkout
        # never mix their entries; scripts/test.sh sets WI_RAN_FILE itself to gather every step in one file.
        os.environ["WI_RAN_FILE"] = str(ROOT / "test-artifacts" / f"ran-{os.getpid()}.jsonl")
        _own_ran_file.append(os.environ["WI_RAN_FILE"])
    if not os.environ.get("WI_RAN_KEEP"):
        ran_registry.ran_file().unlink(missing_ok=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    for path in _own_ran_file:
        pathlib.Path(path).unlink(missing_ok=True)
        os.environ.pop("WI_RAN_FILE", None)


def pytest_collection_finish(session: pytest.Session) -> None:
    _collected_real[0] = any(item.get_closest_marker(name) for item in session.items for name in _REAL_MARKERS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    needs_real = any(item.get_closest_marker(name) for name in _REAL_MARKERS)
    if report.skipped and needs_real and ran_registry.strict() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if ran_registry.NOT_APPLICABLE not in reason:  # a version lacking a feature is no hole in the run
            report.outcome = "failed"
            report.longrepr = f"{ran_registry.STRICT_ENV}=1 turns this skip into a failure: {reason}"
    # One outcome per test: the first phase that did not pass, else the call.
    decisive = report.when == "call" or (report.when == "setup" and not report.passed)
    if decisive:
        for key, value in item.user_properties:
            if key == ran_registry.PROPERTY:
                kind, name = value
                ran_registry.record_outcome(kind, name, item.nodeid, report.outcome)


def pytest_terminal_summary(terminalreporter: object, exitstatus: int, config: pytest.Config) -> None:
    entries = ran_registry.read_entries()
    if not entries and not _collected_real[0]:
        return  # a unit-test run: nothing real was asked for
    lines = ran_registry.summary(entries)
    terminalreporter.section("WI: what the integration and browser tests ran against")  # type: ignore[attr-defined]
    for line in lines:
        terminalreporter.write_line(line)  # type: ignore[attr-defined]
