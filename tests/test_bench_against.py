"""``python -m bench --against REV``: the comparison of an earlier revision's benchmark rows with this tree's
(bench/against.py). The arithmetic is checked on made-up rows; one smoke run exports this repository's HEAD
and runs the quick interception benchmark on both trees (shape only, nothing about speed)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import __main__ as bench_main  # noqa: E402
from bench import against  # noqa: E402


def test_ratio_columns_are_the_ratio_named_numbers():
    row = {"n": 10, "ratio": 11.0, "path_ratio": 2.5, "ours_us_per_clone": 30.0, "ratio_ge_5x": "met", "cpu_ratio": None}
    assert against.ratio_columns(row) == ["ratio", "path_ratio"]


def test_compare_takes_medians_per_row_and_judges_the_change():
    earlier = [[{"n": 10, "ratio": 10.0}, {"n": 100, "ratio": 20.0}],
               [{"n": 10, "ratio": 12.0}, {"n": 100, "ratio": 22.0}],
               [{"n": 10, "ratio": 11.0}, {"n": 100, "ratio": 100.0}]]
    current = [[{"n": 10, "ratio": 10.0}, {"n": 100, "ratio": 17.0}],
               [{"n": 10, "ratio": 10.5}, {"n": 100, "ratio": 18.0}],
               [{"n": 10, "ratio": 1.0}, {"n": 100, "ratio": 19.0}]]
    rows = {r["row"]: r for r in against.compare(earlier, current)}
    assert rows["n=10"]["revision"] == 11.0 and rows["n=10"]["this_tree"] == 10.0
    assert rows["n=10"]["change_pct"] == pytest.approx(-100 / 11)
    assert rows["n=10"]["within_10pct"] == "met"
    assert rows["n=100"]["revision"] == 22.0 and rows["n=100"]["this_tree"] == 18.0
    assert rows["n=100"]["within_10pct"] == "MISSED"  # -18 %
    assert rows["n=100"]["runs"] == "3/3"


def test_compare_leaves_out_rows_one_side_lacks():
    rows = against.compare([[{"n": 10, "ratio": 2.0}, {"n": 20, "ratio": 2.0}]], [[{"n": 10, "ratio": 3.0}]])
    assert [r["row"] for r in rows] == ["n=10"]
    assert rows[0]["change_pct"] == pytest.approx(50.0)


def test_an_unknown_revision_is_named_in_the_error(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not applicable: needs git and this repository's history")
    with pytest.raises(ValueError, match="no-such-revision"):
        against.export_revision("no-such-revision", tmp_path)


def test_against_needs_only(capsys):
    with pytest.raises(SystemExit):
        bench_main.main(["--against", "HEAD"])
    assert "--against needs --only" in capsys.readouterr().err


def test_against_head_runs_both_trees(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not applicable: needs git and this repository's history")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    tree = against.export_revision(head.stdout.strip(), tmp_path)
    assert (tree / "bench" / "__main__.py").is_file() and not (tree / ".git").exists()
    results = against.run_against("HEAD", ["interception"], quick=True, rounds=1)
    rows = results["interception"]
    assert {r["row"] for r in rows} == {"n=10", "n=100", "n=1000"}
    assert {r["column"] for r in rows} >= {"ratio", "path_ratio"}
    assert all(r["revision"] > 0 and r["this_tree"] > 0 and r["runs"] == "1/1" for r in rows)
