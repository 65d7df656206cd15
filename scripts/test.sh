#!/usr/bin/env bash
# The project's test command: installs the pinned test dependencies into .venv, then runs every test.
#   - web UI logic: Node's built-in test runner (skipped, with the reason, when node is missing)
#   - Python: unit tests, then the integration tests against every real ComfyUI configured (WI_COMFYUI_DIRS,
#     default "/opt/ComfyUI /opt/ComfyUI-0.8"; or COMFYUI_DIR / COMFYUI_PYTHON for exactly one) and the browser
#     tests; each missing backend, frontend or tool is skipped with the reason printed.
# It ends with one summary of what the integration and browser tests ran against and what skipped and why
# (tests/ran_registry.py; docs/testing.md). WI_REQUIRE_INTEGRATION=1 turns every such skip into a failure.
# Extra arguments go to pytest (e.g. scripts/test.sh -k grid).
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python_bin" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt

# One record of what ran for every step below (pytest and the shell alike).
mkdir -p test-artifacts
export WI_RAN_FILE="$PWD/test-artifacts/ran.jsonl" WI_RAN_KEEP=1
rm -f "$WI_RAN_FILE"

status=0
if command -v node >/dev/null 2>&1; then
  echo "== web UI unit tests (node --test) =="
  node --test web/tests/ || status=$?
  .venv/bin/python tests/ran_registry.py ran tools "node --test" "$(node --version)"
else
  echo "== web UI unit tests SKIPPED: node is not installed =="
  .venv/bin/python tests/ran_registry.py skip tools "node --test" "node is not installed" || status=1
fi

echo "== Python tests (pytest) =="
# pytest prints the summary of what ran (its last section), including the node step recorded above.
.venv/bin/python -m pytest tests -rs "$@" || status=$?
exit "$status"
