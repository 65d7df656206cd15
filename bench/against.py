"""``python -m bench --only NAME --against REV``: the same benchmark run on an earlier revision and on this tree,
alternating, on this machine, in one command.

Issue 11 asks that no existing benchmark row get more than 10 % worse. A ratio written down on another day is
no yardstick for that: each session here may get another machine, and the ratios move with the machine and its
load. So the earlier revision is exported with
``git archive`` into a temporary folder and both trees run the benchmark with this interpreter, each in its
own process (both import their code as the same package), ``rounds`` times in turns, earlier revision first in
odd rounds. Per row and ratio column (``ratio`` or ``*_ratio``: higher is better) the medians over the rounds
are compared; the change is this tree's against the revision's.
"""
from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from .interception_bench import ROOT, format_table

logger = logging.getLogger(__name__)

#: Beyond this change for the worse a row misses issue 11's "within 10 %" target.
TOLERANCE = 0.10


def ratio_columns(row: Mapping[str, Any]) -> list[str]:
    """The columns of a row that are throughput ratios (higher is better)."""
    return [key for key, value in row.items()
            if (key == "ratio" or key.endswith("_ratio")) and isinstance(value, (int, float)) and not isinstance(value, bool)]


def row_label(row: Mapping[str, Any]) -> str:
    """What names a row across runs: its first column (``n`` for the interception benchmark)."""
    if not row:
        return "?"
    key, value = next(iter(row.items()))
    return f"{key}={value}"


def compare(earlier_runs: Sequence[Sequence[Mapping[str, Any]]],
            current_runs: Sequence[Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """One row per benchmark row and ratio column: the median over the runs of each side, the change and the
    verdict. Rows are matched by their label (:func:`row_label`); a row or column one side lacks is left out."""
    def by_label(runs: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, list[Mapping[str, Any]]]:
        found: dict[str, list[Mapping[str, Any]]] = {}
        for rows in runs:
            for row in rows:
                found.setdefault(row_label(row), []).append(row)
        return found

    earlier, current = by_label(earlier_runs), by_label(current_runs)
    out: list[dict[str, Any]] = []
    for label, then_rows in earlier.items():
        now_rows = current.get(label)
        if not now_rows:
            continue
        for column in ratio_columns(then_rows[0]):
            then = [float(r[column]) for r in then_rows if isinstance(r.get(column), (int, float))]
            now = [float(r[column]) for r in now_rows if isinstance(r.get(column), (int, float))]
            if not then or not now:
                continue
            then_median, now_median = statistics.median(then), statistics.median(now)
            change = now_median / then_median - 1 if then_median else float("nan")
            out.append({"row": label, "column": column, "revision": then_median, "this_tree": now_median,
                        "change_pct": 100 * change, "runs": f"{len(then)}/{len(now)}",
                        "within_10pct": "met" if change >= -TOLERANCE else "MISSED"})
    return out


def export_revision(revision: str, into: Path) -> Path:
    """``git archive`` of ``revision`` of this repository, unpacked into ``into`` (no work tree is touched)."""
    archive = into / "tree.tar"
    with archive.open("wb") as fh:
        done = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", revision], stdout=fh,
                              stderr=subprocess.PIPE, text=False, check=False)
    if done.returncode != 0:
        raise ValueError(f"--against {revision!r}: git archive failed: {done.stderr.decode(errors='replace').strip()}")
    tree = into / "tree"
    tree.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    archive.unlink()
    return tree


def run_tree(tree: Path, name: str, quick: bool) -> list[dict[str, Any]]:
    """One benchmark's rows from ``python -m bench --only name --json`` run in ``tree``."""
    command = [sys.executable, "-m", "bench", "--only", name, "--json"] + (["--quick"] if quick else [])
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True, check=False)
    try:
        rows = json.loads(done.stdout)[name]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise RuntimeError(f"{name} in {tree} printed no rows (exit {done.returncode}):\n{done.stderr[-2000:]}") from None
    if not isinstance(rows, list):
        raise RuntimeError(f"{name} in {tree} failed:\n{rows}")
    return rows


def run_against(revision: str, names: Sequence[str], quick: bool, rounds: int) -> dict[str, list[dict[str, Any]]]:
    """Every named benchmark on ``revision`` and on this tree, ``rounds`` times in turns: compared rows per name."""
    results: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="wi-bench-against-") as folder:
        earlier_tree = export_revision(revision, Path(folder))
        for name in names:
            earlier: list[list[dict[str, Any]]] = []
            current: list[list[dict[str, Any]]] = []
            for round_number in range(rounds):
                order = [(earlier_tree, earlier), (ROOT, current)]
                if round_number % 2:
                    order.reverse()
                for tree, runs in order:
                    logger.info("%s on %s, round %d", name, tree, round_number + 1)
                    runs.append(run_tree(tree, name, quick))
            results[name] = compare(earlier, current)
    return results


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    return format_table(rows, ["row", "column", "revision", "this_tree", "change_pct", "runs", "within_10pct"])
