"""Every benchmark, one command: ``python -m bench`` (``--quick`` for a smoke run).

Each benchmark measures its baseline in the same run and prints ratios, so the numbers compare on a noisy
machine. Targets and how to read the output: bench/README.md.
"""
from __future__ import annotations

import sys

from . import grid_bench


def main(argv: list[str] | None = None) -> int:
    return grid_bench.main(argv)


if __name__ == "__main__":
    sys.exit(main())
