"""A small mutation run over the critical core modules: does a one-line bug make the tests fail?

For each target module, every mutation site is found with ``ast`` (a comparison flipped, ``+``/``-`` swapped,
``and``/``or`` swapped, a ``not`` dropped, ``True``/``False`` swapped, an integer constant moved by one, an
``+=`` turned into ``-=``, a call statement deleted). Each mutant is written into a private copy of the
repository (the checkout itself is never touched) and the target's own tests run against it: a failing run
(or one past the timeout) kills the mutant, a passing run lets it survive. The run ends with the survivor rate
per target and overall, and lists every survivor with its line.

Not part of CI (minutes to hours): run it by hand after changing a target or its tests::

    .venv/bin/python tools/mutation.py                  # 40 sampled mutants per target, seed 0 (about 20 min)
    .venv/bin/python tools/mutation.py --all            # every site (hours on a 2-core machine)
    .venv/bin/python tools/mutation.py --target paths --target parser --sample 100 --seed 3
    .venv/bin/python tools/mutation.py --list           # the sites only, nothing runs

A mutant that runs past ``--timeout-factor`` times the unmutated run counts as killed (an endless loop is a
bug the tests caught) and is counted apart in the summary: on a loaded machine, read those by hand.

Exit status: 0 when the overall survivor rate is at most ``--max-survivors`` (default 10 %), 1 otherwise.
Lines marked ``# no-mutate``, ``logger.*`` calls, f-strings, decorators and annotations are never mutated
(a log line, a message's text or ``slots=True`` change nothing the tests should notice).
"""
from __future__ import annotations

import argparse
import ast
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger("wi.mutation")

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    """A module, the tests that guard it, and optionally the functions of it that are meant (a name regex)."""

    name: str
    path: str
    tests: tuple[str, ...]
    functions: str | None = None
    pytest_args: tuple[str, ...] = ()


TARGETS = (
    Target("state", "core/iteration_state.py",
           ("tests/test_iteration_state.py", "tests/test_iteration_state_concurrency.py", "tests/test_iteration_state_edges.py")),
    Target("parser", "core/parameter_parser.py", ("tests/test_parameter_parser.py", "tests/test_parameter_parser_edges.py")),
    Target("planner", "core/prompt_graph.py", ("tests/test_prompt_graph.py", "tests/test_prompt_graph_edges.py")),
    Target("paths", "core/paths.py", ("tests/test_fuzz.py", "tests/test_parameter_parser.py"),
           pytest_args=("-k", "safe or subfolder or cell_filename or resolve_inside or file_list")),
    # Journal resume: what survives a restart, and how a resumed batch is rebuilt and re-queued.
    Target("resume", "core/journal.py", ("tests/test_journal.py", "tests/test_journal_edges.py"),
           functions=r"^(load_unfinished|get_batch|record_cell_end|record_cells_cancelled|_op_cell_end|_op_cells_cancelled|_op_interrupt|_op_state)$"),
    Target("resume-service", "core/sweep.py", ("tests/test_resume_edges.py", "tests/test_sweep_service.py", "tests/test_routes.py"),
           functions=r"^(resume|restore_interrupted|_existing_output)$", pytest_args=("-k", "resume or restart or interrupted or journal or restore or saved or grid")),
    Target("resume-state", "core/iteration_state.py",
           ("tests/test_iteration_state.py", "tests/test_iteration_state_edges.py", "tests/test_routes.py", "tests/test_sweep_service.py"),
           functions=r"^(restore_batch|resume_batch)$"),
)


_COMPARE_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
                 ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
_BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add}


@dataclass
class Site:
    """One mutation: the ``ast.walk`` position of the node to change and what to do to it."""

    node_index: int
    kind: str
    line: int
    function: str
    description: str


@dataclass
class Result:
    target: Target
    site: Site
    outcome: str  # killed | survived | timeout
    seconds: float
    source_line: str = ""


@dataclass
class Summary:
    results: list[Result] = field(default_factory=list)

    def by_target(self) -> dict[str, list[Result]]:
        out: dict[str, list[Result]] = {}
        for result in self.results:
            out.setdefault(result.target.name, []).append(result)
        return out


def _out(text: str) -> None:
    """The run's report is the tool's output (stdout), not a log record."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _enclosing_function(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return node.name
    return "<module>"


def _is_logging_call(node: ast.Call) -> bool:
    func = node.func
    return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in ("logger", "logging")


def _inside_annotation_or_docstring(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Also decorators (``dataclass(slots=True)``), f-strings and log calls: text and declarations, where a
    mutant either changes nothing observable or only a message."""
    child = node
    while child in parents:
        parent = parents[child]
        if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and child in parent.decorator_list:
            return True
        if isinstance(parent, ast.JoinedStr) or (isinstance(parent, ast.Call) and _is_logging_call(parent)):
            return True
        if isinstance(parent, (ast.arg, ast.AnnAssign)) and child is getattr(parent, "annotation", None):
            return True
        if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)) and child is parent.returns:
            return True
        child = parent
    return False


def find_sites(source: str, functions: str | None = None) -> list[Site]:
    """Every mutation site of ``source`` (optionally only inside functions whose name matches ``functions``)."""
    tree = ast.parse(source)
    parents = _parents(tree)
    lines = source.splitlines()
    wanted = re.compile(functions) if functions else None
    sites: list[Site] = []
    for index, node in enumerate(ast.walk(tree)):
        line = getattr(node, "lineno", 0)
        if line and "no-mutate" in lines[line - 1]:
            continue
        if _inside_annotation_or_docstring(node, parents):
            continue
        function = _enclosing_function(node, parents)
        if wanted is not None and not wanted.search(function):
            continue
        found: list[tuple[str, str]] = []
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE_SWAP:
            op = type(node.ops[0])
            found.append(("compare", f"{op.__name__} -> {_COMPARE_SWAP[op].__name__}"))
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINOP_SWAP:
            op = type(node.op)
            found.append(("binop", f"{op.__name__} -> {_BINOP_SWAP[op].__name__}"))
        elif isinstance(node, ast.AugAssign) and type(node.op) in _BINOP_SWAP:
            op = type(node.op)
            found.append(("augassign", f"{op.__name__}= -> {_BINOP_SWAP[op].__name__}="))
        elif isinstance(node, ast.BoolOp):
            found.append(("boolop", "and -> or" if isinstance(node.op, ast.And) else "or -> and"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            found.append(("not", "drop `not`"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            found.append(("bool", f"{node.value} -> {not node.value}"))
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            found.append(("int", f"{node.value} -> {node.value + 1}"))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and not _is_logging_call(node.value):
            found.append(("delete", "delete the call statement"))
        for kind, description in found:
            sites.append(Site(index, kind, line, function, description))
    return sites


def apply(source: str, site: Site) -> str:
    """``source`` with ``site`` mutated (re-parsed, so ``ast.walk`` positions match :func:`find_sites`)."""
    tree = ast.parse(source)
    node = list(ast.walk(tree))[site.node_index]
    if site.kind == "compare":
        node.ops = [_COMPARE_SWAP[type(node.ops[0])]()]  # type: ignore[attr-defined]
    elif site.kind in ("binop", "augassign"):
        node.op = _BINOP_SWAP[type(node.op)]()  # type: ignore[attr-defined]
    elif site.kind == "boolop":
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()  # type: ignore[attr-defined]
    elif site.kind == "not":
        parents = _parents(tree)
        parent = parents[node]
        for name, value in ast.iter_fields(parent):
            if value is node:
                setattr(parent, name, node.operand)  # type: ignore[attr-defined]
            elif isinstance(value, list):
                setattr(parent, name, [node.operand if v is node else v for v in value])  # type: ignore[attr-defined]
    elif site.kind == "bool":
        node.value = not node.value  # type: ignore[attr-defined]
    elif site.kind == "int":
        node.value = node.value + 1  # type: ignore[attr-defined]
    elif site.kind == "delete":
        node.value = ast.Constant(value=None)  # type: ignore[attr-defined]  # the call is gone, the statement stays
    else:
        raise ValueError(f"unknown mutation kind {site.kind!r}")
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def _copy_repo(destination: Path) -> None:
    ignore = shutil.ignore_patterns(".git", ".venv", "node_modules", "test-artifacts", "__pycache__", ".hypothesis",
                                    "bench/results", "*.pyc", "wi-example-output")
    shutil.copytree(REPO, destination, ignore=ignore, symlinks=True)


def _python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _run_tests(copy: Path, target: Target, timeout: float) -> tuple[str, float]:
    tests = [t for t in target.tests if (copy / t).exists()]
    command = [_python(), "-m", "pytest", *tests, "-x", "-q", "-p", "no:cacheprovider", *target.pytest_args]
    # A tenth of the fuzz examples per mutant: the properties still run every @example (the inputs that once
    # found bugs) plus a hundred or so generated ones, at a tenth of the time.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "WI_RAN_FILE": str(copy / "ran.jsonl"),
           "WI_FUZZ_SCALE": os.environ.get("WI_FUZZ_SCALE", "0.1")}
    started = time.monotonic()
    try:
        proc = subprocess.run(command, cwd=copy, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - started
    # pytest: 0 all passed, 1 some failed, 2 interrupted (a collection/import error), 5 nothing collected.
    if proc.returncode == 5:
        raise RuntimeError(f"{target.name}: the tests selected nothing: {' '.join(command)}")
    return ("survived" if proc.returncode == 0 else "killed"), time.monotonic() - started


def run(targets: list[Target], *, sample: int | None, seed: int, timeout_factor: float, progress: bool = True) -> Summary:
    summary = Summary()
    with tempfile.TemporaryDirectory(prefix="wi-mutation-") as tmp:
        copy = Path(tmp) / "repo"
        _copy_repo(copy)
        for target in targets:
            module = copy / target.path
            original = module.read_text(encoding="utf-8")
            sites = find_sites(original, target.functions)
            if sample is not None and len(sites) > sample:
                sites = sorted(random.Random(f"{seed}:{target.name}").sample(sites, sample), key=lambda s: s.node_index)
            outcome, baseline = _run_tests(copy, target, timeout=1800)
            if outcome != "survived":
                raise RuntimeError(f"{target.name}: the tests fail without any mutation ({outcome}); fix them first")
            timeout = max(30.0, baseline * timeout_factor)
            lines = original.splitlines()
            if progress:
                _out(f"== {target.name} ({target.path}): {len(sites)} mutants, baseline {baseline:.1f}s")
            try:
                for number, site in enumerate(sites, 1):
                    module.write_text(apply(original, site), encoding="utf-8")
                    outcome, seconds = _run_tests(copy, target, timeout)
                    result = Result(target, site, outcome, seconds, lines[site.line - 1].strip() if site.line else "")
                    summary.results.append(result)
                    if progress:
                        _out(f"  [{number}/{len(sites)}] {outcome:8s} line {site.line} {site.function}: {site.description}")
            finally:
                module.write_text(original, encoding="utf-8")
    return summary


def report(summary: Summary) -> tuple[list[str], float]:
    lines = ["", "== mutation run: survivors per target"]
    total = survived = 0
    for name, results in summary.by_target().items():
        alive = [r for r in results if r.outcome == "survived"]
        total += len(results)
        survived += len(alive)
        rate = 100.0 * len(alive) / len(results) if results else 0.0
        timeouts = sum(1 for r in results if r.outcome == "timeout")
        lines.append(f"{name:16s} {len(results):4d} mutants, {len(results) - len(alive):4d} killed"
                     f" ({timeouts} by timeout), {len(alive):3d} survived ({rate:.1f} %)")
    rate = 100.0 * survived / total if total else 0.0
    lines.append(f"{'overall':16s} {total:4d} mutants, {total - survived:4d} killed, {survived:3d} survived ({rate:.1f} %)")
    alive = [r for r in summary.results if r.outcome == "survived"]
    if alive:
        lines.append("")
        lines.append("survivors (a one-line bug no test noticed):")
        for r in alive:
            lines.append(f"  {r.target.path}:{r.site.line} in {r.site.function}: {r.site.description}   | {r.source_line}")
    return lines, rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", action="append", choices=[t.name for t in TARGETS], help="only these targets (repeatable)")
    parser.add_argument("--sample", type=int, default=40, help="mutants per target, sampled with --seed (default 40)")
    parser.add_argument("--all", action="store_true", help="every site, no sampling")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout-factor", type=float, default=4.0, help="a run longer than this times the baseline is a kill")
    parser.add_argument("--max-survivors", type=float, default=10.0, help="percent; above it the exit status is 1")
    parser.add_argument("--list", action="store_true", help="print the sites and stop")
    args = parser.parse_args(argv)
    targets = [t for t in TARGETS if not args.target or t.name in args.target]
    if args.list:
        for target in targets:
            sites = find_sites((REPO / target.path).read_text(encoding="utf-8"), target.functions)
            _out(f"== {target.name} ({target.path}): {len(sites)} sites")
            for site in sites:
                _out(f"  line {site.line} {site.function}: {site.description}")
        return 0
    summary = run(targets, sample=None if args.all else args.sample, seed=args.seed, timeout_factor=args.timeout_factor)
    lines, rate = report(summary)
    _out("\n".join(lines))
    return 0 if rate <= args.max_survivors else 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(main())
