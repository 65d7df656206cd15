"""The command line every benchmark module shares: ``--quick`` and ``--json`` over its ``run`` and ``table``."""
from __future__ import annotations

import argparse
import json
from typing import Any, Callable, Sequence


def run_cli(doc: str | None, run: Callable[[bool], list[dict[str, Any]]], table: Callable[[Sequence[dict[str, Any]]], str],
            argv: list[str] | None = None, *, cleanup: Callable[[], None] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0] if doc else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args(argv)
    try:
        rows = run(args.quick)
    finally:
        if cleanup is not None:
            cleanup()
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    return 0
