"""``python -m workflow_iterator``: run, watch, cancel and collect sweeps from a terminal (standard library only)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from .client import DEFAULT_SERVER, ApiError, Batch, Client, parse_axis

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_CELLS_NOT_DONE = 1
EXIT_BAD_REQUEST = 2
EXIT_SERVER = 3
EXIT_INTERRUPTED = 130

EPILOG = f"""\
axis syntax:
  TARGET=VALUES or TARGET:TYPE=VALUES, where TARGET is Class.input, node-id.input or Title.input
  (several targets separated by ';') and VALUES the value syntax: "4-8 (+2)", "0.5-1.5 [5]", "euler, dpmpp_2m",
  "random:4" (SEED). TYPE (INT, FLOAT, STRING, BOOLEAN, COMBO, SEED) defaults to the target input's type.

examples:
  python -m workflow_iterator sweep workflow_api.json --axis "KSampler.cfg=4-8 (+2)" \\
      --axis "KSampler.sampler_name=euler, dpmpp_2m" --server http://127.0.0.1:8188 --out results/
  python -m workflow_iterator sweep workflow_api.json --axis "3.seed:SEED=random:4" --dry-run
  python -m workflow_iterator ls
  python -m workflow_iterator status <batch_id> --json

exit codes:
  {EXIT_OK}    every cell of the batch is done (sweep, resume, status) / the command succeeded
  {EXIT_CELLS_NOT_DONE}    the batch ended with failed or cancelled cells (or is not finished, for status)
  {EXIT_BAD_REQUEST}    bad arguments or a request the server refused (bad axis, unknown batch, ...)
  {EXIT_SERVER}    the server could not be reached or answered an unexpected error
  {EXIT_INTERRUPTED}  interrupted with Ctrl+C (a running sweep is cancelled on the server first)

The server is --server, else $WI_SERVER, else {DEFAULT_SERVER}.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workflow_iterator", description="Parameter sweeps on a ComfyUI server with the "
        "Workflow Iterator pack: queue them without the canvas, follow them, collect their files.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=os.environ.get("WI_SERVER", DEFAULT_SERVER), help="ComfyUI's URL")
    parser.add_argument("--json", action="store_true", help="machine-readable output: one JSON object per line")
    commands = parser.add_subparsers(dest="command", required=True)
    # --json and --server are also accepted after the command ("status X --json"); SUPPRESS keeps the global value otherwise.
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")
    json_flag.add_argument("--server", default=argparse.SUPPRESS, help="ComfyUI's URL")

    sweep = commands.add_parser("sweep", parents=[json_flag], help="queue a sweep of an API-format workflow and follow it",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("workflow", help="the workflow in API format (ComfyUI: Export (API)), a JSON file")
    sweep.add_argument("--axis", action="append", required=True, metavar="TARGET=VALUES",
                       help="one axis (repeat for more; the first varies slowest)")
    sweep.add_argument("--mode", choices=("matrix", "linear"), default="matrix")
    sweep.add_argument("--name", dest="batch_name", default=None, help="batch name (names its folder and grid)")
    sweep.add_argument("--no-grid", action="store_true", help="no grid image (the manifest and viewer are still written)")
    sweep.add_argument("--grid", action="append", default=[], metavar="OPTION=VALUE",
                       help="a grid option, e.g. x_axis=cfg, y_axis=sampler_name, cell_gap=4 (repeatable)")
    sweep.add_argument("--key", dest="idempotency_key", default=None,
                       help="idempotency key: the same key again attaches to the first batch instead of a new one")
    sweep.add_argument("--dry-run", action="store_true", help="print the plan only; queue nothing")
    sweep.add_argument("--out", default=None, help="download the grid, manifest and cell images into this folder")
    sweep.add_argument("--detach", action="store_true", help="print the batch id and return without waiting")

    status = commands.add_parser("status", parents=[json_flag], help="one batch's state and counts")
    status.add_argument("batch_id")
    commands.add_parser("ls", parents=[json_flag], help="the batches the server holds, newest first")
    cancel = commands.add_parser("cancel", parents=[json_flag], help="cancel a batch")
    cancel.add_argument("batch_id")
    resume = commands.add_parser("resume", parents=[json_flag], help="re-queue an interrupted batch's unfinished cells and follow it")
    resume.add_argument("batch_id")
    resume.add_argument("--out", default=None, help="download its files into this folder when it ends")
    resume.add_argument("--detach", action="store_true", help="return without waiting")
    download = commands.add_parser("download", parents=[json_flag], help="download a batch's grid, manifest and cell images")
    download.add_argument("batch_id")
    download.add_argument("--out", required=True)
    return parser


class Output:
    """Human lines, or one JSON object per line with ``--json``; the progress bar only on a terminal."""

    def __init__(self, as_json: bool, stream: TextIO) -> None:
        self.as_json, self.stream = as_json, stream
        self.tty = (not as_json) and stream.isatty()
        self._bar_shown = False

    def emit(self, kind: str, data: Mapping[str, Any], text: str) -> None:
        self._end_bar()
        if self.as_json:
            self.stream.write(json.dumps({"type": kind, **data}, default=str) + "\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def progress(self, counts: Mapping[str, Any], started: float, ended_index: int | None = None,
                 status: str | None = None) -> None:
        total = int(counts.get("total") or 0)
        done, failed = int(counts.get("done") or 0), int(counts.get("failed") or 0)
        ended = done + failed + int(counts.get("cancelled") or 0) + int(counts.get("skipped") or 0)
        eta = format_eta(time.monotonic() - started, ended, total)
        if self.as_json:
            self.emit("progress", {"counts": dict(counts), "eta_s": eta[1]}, "")
            return
        if self.tty:
            width = 30
            filled = int(width * ended / total) if total else width
            line = f"\r[{'#' * filled}{'-' * (width - filled)}] {done} done, {failed} failed of {total}  ETA {eta[0]}"
            self.stream.write(line)
            self.stream.flush()
            self._bar_shown = True
        elif ended_index is not None:
            self.stream.write(f"cell {ended_index} {status}: {done} done, {failed} failed of {total}, ETA {eta[0]}\n")
            self.stream.flush()

    def _end_bar(self) -> None:
        if self._bar_shown:
            self.stream.write("\n")
            self._bar_shown = False


def format_eta(elapsed: float, ended: int, total: int) -> tuple[str, float | None]:
    """``("m:ss", seconds)`` left at the pace so far; ``("?", None)`` before the first cell ends."""
    if total and ended >= total:
        return "0:00", 0.0
    if ended <= 0 or elapsed <= 0:
        return "?", None
    seconds = elapsed / ended * (total - ended)
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return (f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"), seconds


def _grid_options(items: Sequence[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--grid {item!r} must look like OPTION=VALUE")
        text = value.strip()
        parsed: Any = text
        if text.lower() in ("true", "false"):
            parsed = text.lower() == "true"
        elif text.lstrip("-").isdigit():
            parsed = int(text)
        options[key.strip()] = parsed
    return options


def _plan_text(plan: Mapping[str, Any]) -> str:
    lines = [f"plan: {plan.get('count')} cells ({plan.get('mode')})"]
    for axis in plan.get("axes") or []:
        labels = list(axis.get("labels") or [])
        shown = ", ".join(labels[:12]) + (f", ... ({len(labels)} values)" if len(labels) > 12 else "")
        lines.append(f"  {axis.get('name')} [{axis.get('type')}] -> {axis.get('target')}: {shown}")
    grid = plan.get("grid")
    if isinstance(grid, Mapping):
        size = grid.get("width"), grid.get("height")
        lines.append("  grid: " + (f"{size[0]} x {size[1]} px" if all(size) else "yes")
                     + "".join(f"\n  warning: {w}" for w in grid.get("warnings") or []))
    else:
        lines.append("  grid: none")
    return "\n".join(lines)


def _follow(batch: Batch, out: Output, out_dir: str | None) -> int:
    """Follow a batch to its end (Ctrl+C cancels it), download its files, and give the exit code."""
    started = time.monotonic()

    def on_event(event: str, data: Mapping[str, Any]) -> None:
        counts = data.get("counts")
        if not isinstance(counts, Mapping):
            return
        if event == "cell_ended":
            out.progress(counts, started, data.get("index"), data.get("status"))
        elif event in ("snapshot", "status"):
            out.progress(counts, started)

    try:
        final = batch.wait(on_event=on_event)
    except KeyboardInterrupt:
        out.emit("interrupted", {"batch_id": batch.id}, f"\ninterrupted: cancelling batch {batch.id} ...")
        try:
            answer = batch.cancel()
            out.emit("cancelled", answer, f"cancelled batch {batch.id}")
        except ApiError as exc:
            out.emit("error", {"message": str(exc)}, f"cancel failed: {exc}")
        return EXIT_INTERRUPTED
    counts = final.get("counts") or {}
    out.emit("finished", {"batch_id": batch.id, "state": final.get("state"), "counts": counts},
             f"batch {batch.id} {final.get('state')}: {counts.get('done', 0)} done, {counts.get('failed', 0)} failed, "
             f"{counts.get('cancelled', 0)} cancelled of {counts.get('total', 0)}")
    if out_dir is not None:
        def on_file(remote: Any, path: str) -> None:
            out.emit("file", {"kind": remote.kind, "path": path, "url": remote.url}, f"  {remote.kind}: {path}")

        written = batch.download(os.path.join(out_dir, batch.id), on_file=on_file)
        out.emit("downloaded", {"count": len(written), "folder": os.path.join(out_dir, batch.id)},
                 f"downloaded {len(written)} files into {os.path.join(out_dir, batch.id)}")
    total = int(counts.get("total") or 0)
    return EXIT_OK if total and int(counts.get("done") or 0) == total else EXIT_CELLS_NOT_DONE


def run(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    """The command line; returns the exit code (see ``--help``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output(args.json, stdout or sys.stdout)
    client = Client(args.server)
    try:
        return _dispatch(args, client, out)
    except ApiError as exc:
        code = EXIT_SERVER if exc.status == 0 or exc.status >= 500 else EXIT_BAD_REQUEST
        body = exc.body if isinstance(exc.body, Mapping) else {}
        detail = "".join(f"\n  axis {e.get('axis')} ({e.get('param')}): {e.get('message')}"
                         for e in body.get("errors") or [] if isinstance(e, Mapping) and e.get("axis") is not None)
        out.emit("error", {"status": exc.status, "message": str(exc), "body": exc.body}, f"error: {exc}{detail}")
        return code
    except (ValueError, OSError) as exc:  # bad --axis / --grid text, unreadable workflow file
        out.emit("error", {"message": str(exc)}, f"error: {exc}")
        return EXIT_BAD_REQUEST
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _dispatch(args: argparse.Namespace, client: Client, out: Output) -> int:
    if args.command == "sweep":
        axes = [parse_axis(text) for text in args.axis]
        options: dict[str, Any] = {"mode": args.mode, "batch_name": args.batch_name,
                                   "grid": None if args.no_grid else _grid_options(args.grid)}
        plan = client.plan(args.workflow, axes, **options)
        out.emit("plan", plan, _plan_text(plan))
        if args.dry_run:
            return EXIT_OK
        batch = client.sweep(args.workflow, axes, idempotency_key=args.idempotency_key, **options)
        out.emit("queued", {"batch_id": batch.id, "count": batch.count}, f"queued batch {batch.id}: {batch.count} cells")
        return EXIT_OK if args.detach else _follow(batch, out, args.out)
    if args.command == "status":
        status = client.status(args.batch_id, limit=1)
        status.pop("cells", None)
        counts = status.get("counts") or {}
        out.emit("status", status, f"{status.get('batch_id')} {status.get('state')}: {counts.get('done', 0)} done, "
                 f"{counts.get('failed', 0)} failed, {counts.get('cancelled', 0)} cancelled, "
                 f"{counts.get('pending', 0)} queued, {counts.get('running', 0)} running of {status.get('total')}")
        return EXIT_OK if status.get("state") == "complete" and counts.get("done") == status.get("total") else EXIT_CELLS_NOT_DONE
    if args.command == "ls":
        batches = client.batches()
        if args.json:
            for summary in batches:
                out.emit("batch", summary, "")
        else:
            for s in batches:
                c = s.get("counts") or {}
                out.emit("batch", s, f"{s.get('batch_id')}  {s.get('state'):<11} {c.get('done', 0)}/{s.get('total')} done"
                         f"  {c.get('failed', 0)} failed  {s.get('batch_name')}")
            if not batches:
                out.emit("batch", {}, "no batches")
        return EXIT_OK
    if args.command == "cancel":
        answer = client.cancel(args.batch_id)
        out.emit("cancelled", answer, f"cancelled {args.batch_id}: {len(answer.get('removed') or [])} queued cells removed"
                 + (f", interrupting {answer['interrupting']}" if answer.get("interrupting") else ""))
        return EXIT_OK
    if args.command == "resume":
        answer = client.resume(args.batch_id)
        out.emit("resumed", answer, f"resumed {args.batch_id}: {answer.get('queued')} cells queued, "
                 f"{answer.get('already_saved')} already saved")
        return EXIT_OK if args.detach else _follow(client.batch(args.batch_id), out, args.out)
    if args.command == "download":
        batch = client.batch(args.batch_id)
        folder = os.path.join(args.out, batch.id)
        written = batch.download(folder)
        out.emit("downloaded", {"count": len(written), "folder": folder}, f"downloaded {len(written)} files into {folder}")
        return EXIT_OK
    raise ValueError(f"unknown command {args.command!r}")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    sys.exit(run())
