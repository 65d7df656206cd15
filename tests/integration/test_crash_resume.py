"""A sweep survives ComfyUI being SIGKILLed: after a restart the batch is listed as interrupted with its finished
cells, and resume runs exactly the cells that did not finish."""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tools.comfy_harness import ComfyServer

from .test_crash_files import forget_cell_end, whole_png_info
from .test_real_comfyui import plain_prompt, sweep

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIXTURE_NODES = Path(__file__).resolve().parent / "fixture_nodes"


@pytest.fixture
def base_dir(backend):
    path = Path(tempfile.mkdtemp(prefix="wi-crash-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_killed_batch_is_listed_interrupted_and_resume_runs_only_the_unfinished_cells(backend, base_dir):
    first = ComfyServer(extra_packs={"wi_test_nodes": FIXTURE_NODES}, base_dir=base_dir, backend=backend).start()
    try:
        code, answer = first.queue_prompt(sweep("1, 2, 3, 4, 5, 6", "1", seconds=0.8, name="crashy"))
        assert code == 200, answer
        batch_id = first.batch_for_prompt(answer["prompt_id"])["batch_id"]
        deadline = time.monotonic() + 60
        while first.get(f"/wi/status/{batch_id}")[1]["counts"]["done"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # let the journal's writer commit the ends it has been handed
    finally:
        first.stop(kill=True)
    # As if the kill had come within the journal's burst window after that cell's save: resume must know the
    # cell from its file alone (and a recognition that always answers "not saved" fails here).
    forgotten = forget_cell_end(base_dir, batch_id)

    second = ComfyServer(extra_packs={"wi_test_nodes": FIXTURE_NODES}, base_dir=base_dir, backend=backend).start()
    try:
        code, listing = second.get("/wi/status")
        assert code == 200
        summary = next(b for b in listing["batches"] if b["batch_id"] == batch_id)
        assert summary["state"] == "interrupted"
        status = second.get(f"/wi/status/{batch_id}")[1]
        done_before = {c["index"] for c in status["cells"] if c["status"] == "done"}
        assert len(done_before) >= 1 and forgotten not in done_before
        for cell in status["cells"]:
            if cell["status"] == "done":
                ref = cell["files"][0]
                assert (second.output_dir / ref["subfolder"] / ref["filename"]).is_file()
        files_before = {p.name: p.stat().st_mtime_ns for p in (second.output_dir / "WI" / batch_id).glob("c*.png")}
        on_disk_only = {json.loads(whole_png_info(second.output_dir / "WI" / batch_id / name)["wi_cell"])["index"]
                        for name in files_before} - done_before
        assert forgotten in on_disk_only

        code, resumed = second.post(f"/wi/resume/{batch_id}", {})
        assert code == 200, resumed
        # Cells whose image was saved before the kill are not run again.
        assert resumed["queued"] + resumed["already_saved"] == 6 - len(done_before)
        assert resumed["already_saved"] == len(on_disk_only) >= 1
        assert resumed["queued"] == 6 - len(files_before)
        final = second.wait_batch(batch_id, timeout=120, need_grid=True)
        assert final["state"] == "complete" and final["counts"]["done"] == 6
        for name, mtime in files_before.items():
            assert (second.output_dir / "WI" / batch_id / name).stat().st_mtime_ns == mtime  # not re-run
        assert len(list((second.output_dir / "WI" / batch_id).glob("c*.png"))) == 6
        # Resumed cells are queued before this server put any item of its own, so their shape comes from the
        # adapter's guess for this version (5 fields on 0.3.64; 6 from 0.3.67, whose worker reads item[5]):
        # they must look exactly like ComfyUI's own items, down to what history keeps of them.
        code, plain = second.queue_prompt(plain_prompt())
        assert code == 200
        plain_shape = len(second.wait_history(plain["prompt_id"])["prompt"])
        resumed_ids = [c["prompt_id"] for c in final["cells"] if c["files"][0]["filename"] not in files_before]
        assert len(resumed_ids) == resumed["queued"]
        assert [len(second.wait_history(pid)["prompt"]) for pid in resumed_ids] == [plain_shape] * len(resumed_ids)
        code, again = second.post(f"/wi/resume/{batch_id}", {})
        assert code == 409
        code, history = second.get("/wi/batches?limit=5")
        assert code == 200 and any(b["batch_id"] == batch_id for b in history["batches"])
    finally:
        second.cleanup()
