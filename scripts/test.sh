#!/usr/bin/env bash
# The project's test command: installs the test dependencies into .venv, then runs every test.
#   - web UI logic: Node's built-in test runner (skipped, with the reason, when node is missing)
#   - Python: unit tests, then the integration and browser tests against a real ComfyUI found through
#     COMFYUI_DIR / COMFYUI_PYTHON (default /opt/ComfyUI); those skip with the reason printed when absent.
# Extra arguments go to pytest (e.g. scripts/test.sh -k grid).
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python_bin" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt

if command -v node >/dev/null 2>&1; then
  echo "== web UI unit tests (node --test) =="
  node --test web/tests/
else
  echo "== web UI unit tests SKIPPED: node is not installed =="
fi

echo "== Python tests (pytest) =="
.venv/bin/python -m pytest tests -rs "$@"
