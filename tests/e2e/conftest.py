"""Registers the ``e2e`` marker for the browser tests in this folder (``pytest -m e2e`` selects them)."""


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: end-to-end test in a real headless Chromium against a real ComfyUI")
