"""What the integration and browser tests really ran against, and what they skipped and why.

One tiny API shared by every test family that needs a real ComfyUI, a frontend, Chromium or Node:

* ``tag(request, kind, name)`` inside a fixture or test: "this test ran against ``name``" (for example
  ``tag(request, "backend", "ComfyUI 0.8.0")`` or ``tag(request, "frontend", "1.58.1 vue-nodes")``). Each
  tagged test's outcome is counted under that name in the end-of-run summary.
* ``record_ran(kind, name, detail="")``: the same, for code with no test at hand (a session fixture).
* ``record_skip(kind, name, reason)``: ``name`` was not run, and why (a backend that is not installed).
* ``skip(kind, name, reason)``: ``record_skip`` then ``pytest.skip`` — or ``pytest.fail`` under the strict
  switch ``WI_REQUIRE_INTEGRATION=1``, so a machine that is meant to have everything cannot pass with holes.
* ``not_applicable(reason)``: skip a test that does not apply to this backend or frontend (a node that arrived
  in a later version); such skips stay skips under the strict switch.

Entries are appended as JSON lines to the file named by ``WI_RAN_FILE`` (default ``test-artifacts/ran.jsonl``).
A pytest session without ``WI_RAN_FILE`` uses a file of its own, ``test-artifacts/ran-<pid>.jsonl``, removed at
the end (subprocesses inherit the variable, so a driver script can add lines too). ``scripts/test.sh`` sets
``WI_RAN_FILE`` and ``WI_RAN_KEEP=1`` so that its steps outside pytest add to the same file from the command
line::

    python tests/ran_registry.py skip web-unit "node --test" "node is not installed"

``tests/conftest.py`` empties the file when a pytest session starts (unless ``WI_RAN_KEEP=1``) and prints
:func:`summary` at the end. docs/testing.md documents the kinds in use.
"""
from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, NoReturn

REPO = Path(__file__).resolve().parent.parent
STRICT_ENV = "WI_REQUIRE_INTEGRATION"
# A user property with this key marks a test as run against (kind, name); tests/conftest.py counts outcomes.
PROPERTY = "wi_ran"


def ran_file() -> Path:
    return Path(os.environ.get("WI_RAN_FILE") or REPO / "test-artifacts" / "ran.jsonl")


def strict() -> bool:
    """True when every skip of a real-ComfyUI / browser test must fail the run instead."""
    return os.environ.get(STRICT_ENV, "").strip() not in ("", "0", "false", "no")


def _append(entry: dict[str, Any]) -> None:
    path = ran_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    # One short line per write in append mode: concurrent writers (pytest and a subprocess) do not interleave.
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")


def record_ran(kind: str, name: str, detail: str = "") -> None:
    _append({"event": "ran", "kind": kind, "name": name, "detail": detail})


def record_skip(kind: str, name: str, reason: str) -> None:
    _append({"event": "skip", "kind": kind, "name": name, "reason": reason})


def record_outcome(kind: str, name: str, test: str, outcome: str) -> None:
    _append({"event": "outcome", "kind": kind, "name": name, "test": test, "outcome": outcome})


def tag(request: Any, kind: str, name: str) -> None:
    """Mark the requesting test as run against ``name``; works from function- or session-scoped fixtures."""
    node = getattr(request, "node", request)
    if hasattr(node, "user_properties"):
        node.user_properties.append((PROPERTY, (kind, name)))
    if getattr(request, "scope", "function") != "function":
        record_ran(kind, name)


def skip(kind: str, name: str, reason: str) -> NoReturn:
    """Record the skip, print it, and skip the test — or fail it under ``WI_REQUIRE_INTEGRATION=1``."""
    import pytest

    record_skip(kind, name, reason)
    print(f"\n[WI] {kind} {name} skipped: {reason}", file=sys.stderr)
    if strict():
        pytest.fail(f"{STRICT_ENV}=1 and {kind} {name} is not available: {reason}", pytrace=False)
    pytest.skip(f"{kind} {name}: {reason}")


NOT_APPLICABLE = "not applicable:"


def not_applicable(reason: str) -> NoReturn:
    """Skip a test that does not apply here (a feature this ComfyUI version lacks): never a strict failure."""
    import pytest

    pytest.skip(f"{NOT_APPLICABLE} {reason}")


def read_entries(path: Path | None = None) -> list[dict[str, Any]]:
    path = path or ran_file()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a killed writer: the rest still counts
    return entries


def summary(entries: list[dict[str, Any]]) -> list[str]:
    """The end-of-run report: per kind, what ran (with test outcomes) and what was skipped and why."""
    outcomes: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    ran: dict[tuple[str, str], str] = {}
    skipped: dict[tuple[str, str], set[str]] = defaultdict(set)
    for entry in entries:
        key = (str(entry.get("kind")), str(entry.get("name")))
        if entry.get("event") == "outcome":
            outcomes[key][str(entry.get("outcome"))] += 1
            ran.setdefault(key, "")
        elif entry.get("event") == "ran":
            ran[key] = str(entry.get("detail") or ran.get(key, ""))
        elif entry.get("event") == "skip":
            skipped[key].add(str(entry.get("reason")))
    if not ran and not skipped:
        return ["no integration or browser test asked for a real ComfyUI, frontend or browser in this run"]
    lines = []
    for kind in sorted({k for k, _ in ran} | {k for k, _ in skipped}):
        lines.append(f"{kind}:")
        for key in sorted(set(ran) | set(skipped)):
            if key[0] != kind:
                continue
            counts = outcomes.get(key, {})
            tally = ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
            really_ran = any(o != "skipped" for o in counts) or (key in ran and key not in skipped and not counts)
            if really_ran:
                detail = ran.get(key, "")
                lines.append(f"  RAN      {key[1]}{f' ({detail})' if detail else ''}{f': {tally}' if tally else ''}")
            if key in skipped or not really_ran:
                reasons = "; ".join(sorted(skipped.get(key, set()))) or "see the skipped tests above"
                lines.append(f"  SKIPPED  {key[1]}: {reasons}{f' ({tally})' if tally and not really_ran else ''}")
    lines.append(f"strict switch {STRICT_ENV}=1: {'ON (a skip above is a failure)' if strict() else 'off (skips above did not fail the run)'}")
    return lines


def _main(argv: list[str]) -> int:
    usage = "usage: ran_registry.py (ran KIND NAME [DETAIL] | skip KIND NAME REASON | summary | reset)"
    if not argv:
        print(usage, file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    if command == "ran" and len(args) in (2, 3):
        record_ran(*args)
    elif command == "skip" and len(args) == 3:
        record_skip(*args)
        if strict():
            print(f"{STRICT_ENV}=1 and {args[0]} {args[1]} is not available: {args[2]}", file=sys.stderr)
            return 1
    elif command == "summary" and not args:
        sys.stdout.write("\n".join(summary(read_entries())) + "\n")
    elif command == "reset" and not args:
        ran_file().unlink(missing_ok=True)
    else:
        print(usage, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
