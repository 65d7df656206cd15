"""workflow_iterator (client and CLI) against the pack's routes over the ComfyUI stand-in, served on a real port."""
from __future__ import annotations

import io
import json
import os

import pytest

from api_harness import ApiHarness, ServedHarness, plain_prompt
from workflow_iterator import ApiError, Client, cli, parse_axis
from workflow_iterator.client import is_settled


@pytest.fixture
def served(tmp_path):
    monkeypatch = pytest.MonkeyPatch()
    try:
        running = ServedHarness(lambda: ApiHarness(monkeypatch, tmp_path, real_outputs=True, keep_alive_s=0.2))
        yield running
        running.close()
    finally:
        monkeypatch.undo()


@pytest.fixture
def workflow(tmp_path):
    path = tmp_path / "workflow_api.json"
    path.write_text(json.dumps(plain_prompt()))
    return str(path)


AXES = ["EmptyImage.width=8, 16", "canvas.height:INT=8-24 (+8)"]


@pytest.mark.parametrize("text, expected", [
    ("KSampler.cfg=4-8 (+2)", {"target": "KSampler.cfg", "values": "4-8 (+2)"}),
    ("KSampler.cfg:FLOAT=4-8", {"target": "KSampler.cfg", "type": "FLOAT", "values": "4-8"}),
    ("3.seed:seed=random:4", {"target": "3.seed", "type": "SEED", "values": "random:4"}),
    ("My: title.text=a=b, c", {"target": "My: title.text", "values": "a=b, c"}),
    ("KSampler.sampler_name = euler, dpmpp_2m", {"target": "KSampler.sampler_name", "values": "euler, dpmpp_2m"}),
])
def test_axis_text(text, expected):
    assert parse_axis(text) == expected


@pytest.mark.parametrize("text", ["KSampler.cfg", "=1,2", "KSampler.cfg=", "  = "])
def test_bad_axis_text_names_the_form(text):
    with pytest.raises(ValueError, match="TARGET=VALUES"):
        parse_axis(text)


def test_library_sweep_wait_files_download(served, workflow, tmp_path):
    client = Client(served.harness.base_url)
    batch = client.sweep(workflow, AXES, grid={"x_axis": "width"}, batch_name="lib")
    assert batch.count == 6
    seen = []
    final = batch.wait(on_event=lambda event, data: seen.append(event), timeout=60)
    assert final["state"] == "complete" and final["counts"]["done"] == 6
    assert seen[0] == "snapshot" and "batch_finished" in seen
    kinds = sorted({f.kind for f in batch.files()})
    assert kinds == ["cell", "grid", "manifest", "viewer"]
    out = tmp_path / "results"
    written = batch.download(out)
    folder = os.path.join(served.harness.output_dir, final["meta"]["subfolder"])
    names = sorted(os.path.basename(p) for p in written)
    assert "batch.json" in names and "viewer.html" in names and "batch.csv" in names
    assert len([n for n in names if n.startswith("c0")]) == 6 and any(n.startswith("grid") for n in names)
    for path in written:  # byte for byte what the server has
        with open(path, "rb") as mine, open(os.path.join(folder, os.path.basename(path)), "rb") as theirs:
            assert mine.read() == theirs.read(), path


def test_plan_and_errors(served, workflow):
    client = Client(served.harness.base_url)
    plan = client.plan(workflow, AXES)
    assert plan["count"] == 6 and [a["labels"] for a in plan["axes"]] == [["8", "16"], ["8", "16", "24"]]
    with pytest.raises(ApiError) as caught:
        client.sweep(workflow, ["EmptyImage.width=8, x"])
    assert caught.value.status == 400 and caught.value.body["errors"][0]["axis"] == 0
    with pytest.raises(ApiError) as missing:
        client.status("nope")
    assert missing.value.status == 404


def test_unreachable_server_is_status_0():
    with pytest.raises(ApiError) as caught:
        Client("http://127.0.0.1:9", timeout=2).batches()
    assert caught.value.status == 0


def _cli(served, *args):
    stream = io.StringIO()
    code = cli.run(["--server", served.harness.base_url, *args], stdout=stream)
    return code, stream.getvalue()


def test_cli_sweep_prints_plan_progress_and_downloads(served, workflow, tmp_path):
    out = tmp_path / "out"
    code, text = _cli(served, "sweep", workflow, "--axis", AXES[0], "--axis", AXES[1], "--out", str(out))
    assert code == cli.EXIT_OK, text
    assert text.startswith("plan: 6 cells (matrix)")
    assert "width [INT] -> EmptyImage.width: 8, 16" in text
    assert "batch " in text and "complete: 6 done, 0 failed" in text
    (folder,) = os.listdir(out)
    assert "batch.json" in os.listdir(out / folder)


def test_cli_json_lines(served, workflow):
    code, text = _cli(served, "--json", "sweep", workflow, "--axis", AXES[0], "--no-grid")
    assert code == cli.EXIT_OK
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["type"] == "plan" and lines[0]["count"] == 2 and lines[0]["grid"] is None
    assert lines[1]["type"] == "queued"
    assert lines[-1]["type"] == "finished" and lines[-1]["counts"]["done"] == 2
    batch_id = lines[1]["batch_id"]
    code, text = _cli(served, "status", batch_id, "--json")
    assert code == cli.EXIT_OK and json.loads(text)["state"] == "complete"
    code, text = _cli(served, "ls", "--json")
    assert code == cli.EXIT_OK and batch_id in [json.loads(line)["batch_id"] for line in text.splitlines()]


def test_cli_dry_run_queues_nothing(served, workflow):
    code, text = _cli(served, "sweep", workflow, "--axis", AXES[0], "--dry-run")
    assert code == cli.EXIT_OK and text.startswith("plan: 2 cells")
    assert served.call(lambda: served.harness.manager.list_batches()) == []


def test_cli_bad_axis_exits_2_naming_the_axis(served, workflow):
    code, text = _cli(served, "sweep", workflow, "--axis", "EmptyImage.width=8, x")
    assert code == cli.EXIT_BAD_REQUEST
    assert "axis 0 (width)" in text and 'parameter "width"' in text
    code, text = _cli(served, "sweep", workflow, "--axis", "no equals sign")
    assert code == cli.EXIT_BAD_REQUEST and "TARGET=VALUES" in text


def test_cli_cancel_and_a_cancelled_sweep_exits_1(served, workflow):
    client = Client(served.harness.base_url)
    batch = client.sweep(workflow, ["EmptyImage.width=1-40"], batch_name="long")
    code, text = _cli(served, "cancel", batch.id)
    assert code == cli.EXIT_OK and f"cancelled {batch.id}" in text
    final = batch.wait(timeout=60)
    assert final["state"] == "cancelled" and is_settled(final)
    code, _ = _cli(served, "status", batch.id)
    assert code == cli.EXIT_CELLS_NOT_DONE


def test_cli_unreachable_server_exits_3(workflow):
    code = cli.run(["--server", "http://127.0.0.1:9", "sweep", workflow, "--axis", AXES[0]], stdout=io.StringIO())
    assert code == cli.EXIT_SERVER


def test_downloads_never_leave_the_folder(monkeypatch, tmp_path):
    client = Client("http://127.0.0.1:9")
    status = {"meta": {"subfolder": "WI/b"}, "grid": None}
    cells = [{"files": [{"filename": "../../evil.png", "subfolder": "../..", "type": "output"}]}]
    monkeypatch.setattr(client, "all_cells", lambda batch_id: (status, cells))
    monkeypatch.setattr(client, "read_bytes", lambda url: b"x")
    (remote,) = client.batch("b").files()
    assert remote.local == "other/_/_/evil.png" and "/view?" in remote.url
    written = client.batch("b").download(tmp_path / "o")
    assert [os.path.relpath(p, tmp_path) for p in written] == ["o/other/_/_/evil.png"]
    assert not (tmp_path / "evil.png").exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise():
    counts = {"total": 6, "done": 2, "failed": 1, "cancelled": 0}
    terminal = _Terminal()
    out = cli.Output(False, terminal)
    out.progress(counts, started=0.0, ended_index=2, status="failed")
    out.emit("finished", {}, "done")
    text = terminal.getvalue()
    assert text.startswith("\r[###############---------------] 2 done, 1 failed of 6  ETA ")
    assert text.endswith("\ndone\n")  # the bar's line is ended before the next message
    piped = io.StringIO()
    cli.Output(False, piped).progress(counts, started=0.0, ended_index=2, status="failed")
    assert piped.getvalue().startswith("cell 2 failed: 2 done, 1 failed of 6, ETA ") and "\r" not in piped.getvalue()


@pytest.mark.parametrize("elapsed, ended, total, text", [
    (10.0, 0, 6, "?"), (10.0, 2, 6, "0:20"), (3600.0, 1, 3, "2:00:00"), (5.0, 6, 6, "0:00")])
def test_eta(elapsed, ended, total, text):
    assert cli.format_eta(elapsed, ended, total)[0] == text
