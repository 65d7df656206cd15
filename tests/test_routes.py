"""HTTP routes (nodes/routes.py) over a real SweepService and the ComfyUI stand-in, with aiohttp's test utilities.

Everything runs on one event loop (the stand-in server's), so the feeder tasks the service schedules and the
aiohttp test server share it, like in ComfyUI. ``RouteHarness`` is also used by tests/test_fuzz.py.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import comfy_standin
from comfyui_workflow_iterator.core.iteration_state import IterationStateManager
from comfyui_workflow_iterator.core.sweep import SweepService
from comfyui_workflow_iterator.nodes import _comfy, routes

LIMIT = routes.MAX_BODY_BYTES


def sweep_prompt(values_a: str = "1, 2, 3", values_b: str = "10, 20, 30", mode: str = "matrix") -> dict:
    return {
        "1": {"class_type": "WIParameterInt", "inputs": {"name": "width", "values": values_a}},
        "2": {"class_type": "WIParameter", "inputs": {"name": "height", "type": "INT", "values": values_b, "previous": ["1", 0]}},
        "3": {"class_type": "WIIterator", "inputs": {"parameters": ["2", 0], "enabled": True, "mode": mode, "batch_name": "routes"}},
        "4": {"class_type": "EmptyImage", "inputs": {"width": ["1", 1], "height": ["2", 1], "batch_size": 1, "color": 0}},
        "5": {"class_type": "WISaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "WI"}},
    }


def plain_prompt() -> dict:
    return {
        "4": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 7}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "plain"}},
    }


class RouteHarness:
    """A SweepService over the stand-in, its routes on an aiohttp test server, all on one loop."""

    def __init__(self, monkeypatch: Any, tmp_path: Any, window: int = 4, journal: Any = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = comfy_standin.install(monkeypatch, self.loop, tmp_path=tmp_path)
        self.manager = IterationStateManager()
        self.host = _comfy.ComfyHost(self.server)
        self.host.run_background = lambda fn, *a: fn(*a)  # type: ignore[method-assign]
        self.grids: list[str] = []
        self.service = SweepService(self.manager, self.host, grid_builder=self.grids.append, window=window, journal=journal)
        self.host.install(self.service)
        table = web.RouteTableDef()
        routes.add_routes(table, self.service)
        app = web.Application()
        app.add_routes(table)
        self.client: TestClient = self.run(self._start(app))

    @staticmethod
    async def _start(app: web.Application) -> TestClient:
        client = TestClient(TestServer(app))
        await client.start_server()
        return client

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def settle(self, rounds: int = 50) -> None:
        for _ in range(rounds):
            self.run(asyncio.sleep(0))

    def close(self) -> None:
        self.run(self.client.close())
        self.host._executor.shutdown(wait=False)
        comfy_standin.close_loop(self.loop)

    # ---------------------------------------------------------------- HTTP
    def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, str]:
        """``(status, parsed JSON or None, raw text)``; ``path`` is sent as is (already percent-encoded)."""

        async def go() -> tuple[int, Any, str]:
            from yarl import URL

            url = self.client.make_url(URL(path, encoded=True))
            async with self.client.session.request(method, url, **kwargs) as response:
                text = await response.text()
                try:
                    body = json.loads(text)
                except ValueError:
                    body = None
                return response.status, body, text

        return self.run(go())

    def get(self, path: str, **kwargs: Any) -> tuple[int, Any, str]:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> tuple[int, Any, str]:
        return self.request("POST", path, **kwargs)

    # ---------------------------------------------------------------- ComfyUI side
    def post_prompt(self, body: dict) -> tuple[int, dict]:
        answer = self.run(self.server.post_prompt(body))
        self.settle()
        return answer

    def run_all(self, limit: int = 1000) -> list:
        ran = []
        for _ in range(limit):
            self.settle()
            item = self.server.run_next()
            if item is None:
                self.settle()
                if self.server.run_next() is None:
                    break
                continue
            ran.append(item)
        return ran

    def only_batch_id(self) -> str:
        (summary,) = self.manager.list_batches()
        return summary["batch_id"]


@pytest.fixture
def rh(monkeypatch, tmp_path):
    harness = RouteHarness(monkeypatch, tmp_path)
    yield harness
    harness.close()


def assert_error(status: int, body: Any, expected_status: int) -> None:
    assert status == expected_status, body
    assert isinstance(body, dict) and set(body) == {"error", "detail"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["detail"], str)


# ------------------------------------------------------------------------------------------ GET /wi/status


def test_status_list_is_empty_at_first(rh):
    status, body, _ = rh.get("/wi/status")
    assert status == 200 and body == {"batches": []}


def test_status_list_has_one_summary_per_batch_newest_first(rh):
    rh.post_prompt({"prompt": sweep_prompt("1", "10"), "client_id": "a"})
    rh.post_prompt({"prompt": sweep_prompt("1, 2", "10"), "client_id": "b"})
    status, body, _ = rh.get("/wi/status")
    assert status == 200
    batches = body["batches"]
    assert [b["client_id"] for b in batches] == ["b", "a"]
    assert [b["total"] for b in batches] == [2, 1]
    assert all("cells" not in b for b in batches)  # summaries only
    assert all(b["batch_name"] == "routes" and b["mode"] == "matrix" for b in batches)


# ------------------------------------------------------------------------------------------ GET /wi/status/{id}


def test_status_detail_has_counts_cells_and_timings(rh):
    code, _ = rh.post_prompt({"prompt": sweep_prompt("1, 2", "10, 20, 30"), "client_id": "tab"})
    assert code == 200
    batch_id = rh.only_batch_id()
    rh.server.run_next()  # one cell done, the rest queued
    rh.settle()
    status, body, _ = rh.get(f"/wi/status/{batch_id}")
    assert status == 200
    assert body["batch_id"] == batch_id and body["batch_name"] == "routes" and body["client_id"] == "tab"
    assert body["mode"] == "matrix" and body["state"] == "active"
    assert [(a["name"], a["type"]) for a in body["axes"]] == [("width", "INT"), ("height", "INT")]
    counts = body["counts"]
    assert counts["total"] == 6 and counts["done"] == 1
    assert counts["done"] + counts["failed"] + counts["cancelled"] + counts["pending"] + counts["running"] == 6
    cells = body["cells"]
    assert [c["index"] for c in cells] == list(range(6))
    # A cell names its coordinates; its values live once, on the axes.
    assert [a["values"] for a in body["axes"]] == [[1, 2], [10, 20, 30]]
    assert [a["labels"] for a in body["axes"]] == [["1", "2"], ["10", "20", "30"]]
    assert cells[0]["status"] == "done" and cells[0]["files"] and cells[0]["coords"] == [0, 0]
    assert cells[5]["coords"] == [1, 2] and "values" not in cells[5]
    assert body["cell_statuses"] == "dqqqqq"[:1] + body["cell_statuses"][1:] and len(body["cell_statuses"]) == 6
    assert body["cell_statuses"][0] == "d" and set(body["cell_statuses"][1:]) <= {"q", "r"}
    assert body["cells_page"] == {"offset": 0, "count": 6, "total": 6}
    for key in ("elapsed_s", "seconds_per_cell", "eta_s"):
        assert key in body["timings"]
    assert body["grid"] is None and isinstance(body["warnings"], list)


def test_status_detail_is_paged_and_every_cells_status_is_one_character(rh):
    rh.post_prompt({"prompt": sweep_prompt("1-5", "1-4")})
    batch_id = rh.only_batch_id()
    rh.run_all()
    status, body, _ = rh.get(f"/wi/status/{batch_id}?offset=15&limit=3")
    assert status == 200
    assert [c["index"] for c in body["cells"]] == [15, 16, 17]
    assert body["cells"][0]["coords"] == [3, 3]
    assert body["cells_page"] == {"offset": 15, "count": 3, "total": 20}
    assert body["cell_statuses"] == "d" * 20
    status, body, _ = rh.get(f"/wi/status/{batch_id}?limit=0")
    assert status == 400 and "limit" in body["detail"]


def test_status_detail_of_a_huge_value_holds_it_once_not_once_per_cell(rh):
    """Issue 11, defect 7: a 100,000-character STRING value swept over 300 cells made a 30 MB status body."""
    huge = "x" * 100_000
    prompt = sweep_prompt("1-300", "10")
    prompt["6"] = {"class_type": "WIParameter", "inputs": {"name": "text", "type": "STRING", "values": huge,
                                                               "target": "5.filename_prefix", "previous": ["2", 0]}}
    prompt["3"]["inputs"]["parameters"] = ["6", 0]
    code, answer = rh.post_prompt({"prompt": prompt})
    assert code == 200, answer
    batch_id = rh.only_batch_id()
    status, body, raw = rh.get(f"/wi/status/{batch_id}?limit=1000")
    assert status == 200 and body["total"] == 300 and len(body["cells"]) == 300
    assert [a["name"] for a in body["axes"]] == ["width", "height", "text"]
    assert len(raw) < 400_000, f"status body is {len(raw)} bytes"


def test_status_detail_of_a_finished_batch(rh):
    rh.post_prompt({"prompt": sweep_prompt("1, 2", "10")})
    rh.run_all()
    batch_id = rh.only_batch_id()
    status, body, _ = rh.get(f"/wi/status/{batch_id}")
    assert status == 200
    assert body["counts"]["done"] == 2 and body["state"] in ("collecting", "complete")
    assert all(c["status"] == "done" and c["ended_at"] is not None for c in body["cells"])
    assert rh.grids == [batch_id]


@pytest.mark.parametrize("batch_id", ["nope_00000000", "x", "a" * 100, "unknown-batch"])
def test_status_detail_unknown_batch_is_404(rh, batch_id):
    status, body, _ = rh.get(f"/wi/status/{batch_id}")
    assert_error(status, body, 404)
    assert batch_id in body["detail"]


@pytest.mark.parametrize(
    "raw_id",
    [
        "..%2F..",
        "..%2F..%2Fetc%2Fpasswd",
        "%2E%2E",
        "a.b",
        "a%20b",
        "a%00b",
        "%C3%A9t%C3%A9",
        "a" * 101,
        "%5C..%5C",
        "batch%3Bdrop",
    ],
)
def test_status_detail_bad_characters_are_404_json(rh, raw_id):
    rh.post_prompt({"prompt": sweep_prompt("1", "10")})  # a real batch exists; it must not leak
    status, body, _ = rh.get(f"/wi/status/{raw_id}")
    assert_error(status, body, 404)
    assert body["error"] == "unknown batch"


# ------------------------------------------------------------------------------------------ POST /wi/cancel_batch


def test_cancel_batch_removes_queued_cells_and_interrupts_the_running_one(rh):
    rh.post_prompt({"prompt": sweep_prompt("1, 2, 3", "10, 20")})
    rh.post_prompt({"prompt": plain_prompt(), "client_id": "other"})
    (running, _) = rh.server.prompt_queue.get(timeout=0)  # the worker starts cell 0
    rh.settle()
    batch_id = rh.only_batch_id()
    queued_ids = {item[1] for item in rh.server.prompt_queue.queue if "wi" in item[3]}
    assert queued_ids
    status, body, _ = rh.post(f"/wi/cancel_batch/{batch_id}")
    assert status == 200
    assert body["batch_id"] == batch_id and body["state"] == "cancelled"
    assert body["interrupting"] == running[1]
    assert set(body["removed"]) == queued_ids
    assert comfy_standin.INTERRUPTS == [True]
    rh.settle()
    remaining = rh.server.prompt_queue.queue
    assert len(remaining) == 1 and "wi" not in remaining[0][3]  # the unrelated prompt survives
    _, detail, _ = rh.get(f"/wi/status/{batch_id}")
    assert detail["state"] == "cancelled" and detail["counts"]["cancelled"] >= 5


def test_cancel_batch_without_a_running_cell_interrupts_nothing(rh):
    rh.post_prompt({"prompt": sweep_prompt("1, 2", "10")})
    status, body, _ = rh.post(f"/wi/cancel_batch/{rh.only_batch_id()}")
    assert status == 200 and body["interrupting"] is None and len(body["removed"]) == 2
    assert comfy_standin.INTERRUPTS == []


def test_cancel_batch_twice_is_409(rh):
    rh.post_prompt({"prompt": sweep_prompt("1, 2", "10")})
    batch_id = rh.only_batch_id()
    assert rh.post(f"/wi/cancel_batch/{batch_id}")[0] == 200
    status, body, _ = rh.post(f"/wi/cancel_batch/{batch_id}")
    assert_error(status, body, 409)


def test_cancel_finished_batch_is_409(rh):
    rh.post_prompt({"prompt": sweep_prompt("1", "10")})
    rh.run_all()
    status, body, _ = rh.post(f"/wi/cancel_batch/{rh.only_batch_id()}")
    assert_error(status, body, 409)
    assert body["error"] == "batch already finished"


@pytest.mark.parametrize("raw_id", ["nope_00000000", "..%2F..", "a.b", "a" * 101])
def test_cancel_unknown_or_bad_batch_is_404(rh, raw_id):
    status, body, _ = rh.post(f"/wi/cancel_batch/{raw_id}")
    assert_error(status, body, 404)


def test_cancel_is_post_only(rh):
    rh.post_prompt({"prompt": sweep_prompt("1", "10")})
    status, _, _ = rh.get(f"/wi/cancel_batch/{rh.only_batch_id()}")
    assert status == 405


# ------------------------------------------------------------------------------------------ GET /wi/batch/{id}/{file}


def _batch_folder(rh: RouteHarness, tmp_path: Any) -> tuple[str, Any]:
    rh.post_prompt({"prompt": sweep_prompt("1", "10")})
    batch_id = rh.only_batch_id()
    folder = tmp_path / "output" / rh.manager.get_status(batch_id, include_cells=False)["meta"]["subfolder"]
    folder.mkdir(parents=True)
    return batch_id, folder


def test_a_batch_file_is_served(rh, tmp_path):
    batch_id, folder = _batch_folder(rh, tmp_path)
    (folder / "c00000_a-1_n5_0.png").write_bytes(b"cell image")
    status, _, text = rh.get(f"/wi/batch/{batch_id}/c00000_a-1_n5_0.png")
    assert status == 200 and text == "cell image"


def test_a_link_in_the_batch_folder_to_another_file_of_the_output_folder_is_not_served(rh, tmp_path):
    batch_id, folder = _batch_folder(rh, tmp_path)
    (tmp_path / "output" / "other").mkdir()
    (tmp_path / "output" / "other" / "secret.png").write_bytes(b"not this batch's")
    (folder / "sibling.png").symlink_to("../../other/secret.png")
    status, body, text = rh.get(f"/wi/batch/{batch_id}/sibling.png")
    assert_error(status, body, 404)
    assert "not this batch" not in text


def test_a_link_that_stays_inside_the_batch_folder_is_served(rh, tmp_path):
    batch_id, folder = _batch_folder(rh, tmp_path)
    (folder / "grid_1.png").write_bytes(b"grid")
    (folder / "grid.png").symlink_to("grid_1.png")
    status, _, text = rh.get(f"/wi/batch/{batch_id}/grid.png")
    assert status == 200 and text == "grid"


# ------------------------------------------------------------------------------------------ GET /wi/batches, POST /wi/resume


def test_history_without_a_journal_is_an_empty_page(rh):
    rh.post_prompt({"prompt": sweep_prompt("1", "10")})
    status, body, _ = rh.get("/wi/batches")
    assert status == 200 and body == {"batches": [], "total": 0, "limit": 50, "offset": 0}
    status, body, _ = rh.get("/wi/batches?limit=10&offset=5")
    assert status == 200 and (body["limit"], body["offset"]) == (10, 5)


@pytest.mark.parametrize(
    "query", ["limit=abc", "limit=0", "limit=501", "limit=-1", "offset=-1", "offset=x", "limit=1.5", "offset=1000000001", "limit=" + "9" * 40]
)
def test_history_bad_paging_is_400(rh, query):
    status, body, _ = rh.get(f"/wi/batches?{query}")
    assert_error(status, body, 400)


@pytest.mark.parametrize("raw_id", ["nope_00000000", "..%2F..", "a.b"])
def test_resume_unknown_or_bad_batch_is_404(rh, raw_id):
    status, body, _ = rh.post(f"/wi/resume/{raw_id}")
    assert_error(status, body, 404)


def test_resume_a_batch_that_is_not_interrupted_is_409(rh):
    rh.post_prompt({"prompt": sweep_prompt("1, 2", "10")})
    status, body, _ = rh.post(f"/wi/resume/{rh.only_batch_id()}")
    assert_error(status, body, 409)


def test_journal_history_restart_and_resume_through_the_routes(monkeypatch, tmp_path):
    from comfyui_workflow_iterator.core import journal as journal_module  # an import error must fail, not skip
    journal = journal_module.BatchJournal(tmp_path / "journal.sqlite")
    try:
        first = RouteHarness(monkeypatch, tmp_path, journal=journal)
        first.post_prompt({"prompt": sweep_prompt("1, 2, 3", "10")})
        batch_id = first.only_batch_id()
        first.server.run_next()  # one cell done, then ComfyUI "dies"
        first.settle()
        journal.flush()
        first.close()

        second = RouteHarness(monkeypatch, tmp_path, journal=journal)  # a restarted ComfyUI
        try:
            assert second.service.restore_interrupted() == [batch_id]
            status, body, _ = second.get("/wi/batches?limit=5")
            assert status == 200 and body["total"] == 1 and [b["batch_id"] for b in body["batches"]] == [batch_id]
            status, body, _ = second.get(f"/wi/status/{batch_id}")
            assert status == 200 and body["state"] == "interrupted"
            status, body, _ = second.post(f"/wi/resume/{batch_id}")
            assert status == 200, body
            assert body["batch_id"] == batch_id and body["queued"] == 2
            ran = second.run_all()
            assert sorted(item[3]["wi"]["index"] for item in ran) == [1, 2]  # only the unfinished cells
            status, body, _ = second.get(f"/wi/status/{batch_id}")
            assert body["counts"]["done"] == 3 and body["state"] in ("collecting", "complete")
            status, body, _ = second.post(f"/wi/resume/{batch_id}")
            assert_error(status, body, 409)
        finally:
            second.close()
    finally:
        journal.close()


# ------------------------------------------------------------------------------------------ POST /wi/preview


def preview_body(**extra: Any) -> dict:
    body = {
        "mode": "matrix",
        "parameters": [
            {"name": "a", "type": "INT", "values": "1-4"},
            {"name": "b", "type": "FLOAT", "values": "0.1-0.3 (+0.1)"},
            {"name": "c", "type": "INT", "values": "x"},
        ],
    }
    body.update(extra)
    return body


def test_preview_counts_axes_and_errors(rh):
    status, body, _ = rh.post("/wi/preview", json=preview_body(image_size=[64, 32]))
    assert status == 200
    assert body["count"] == 12
    assert [(a["name"], a["count"]) for a in body["axes"]] == [("a", 4), ("b", 3), ("c", 0)]
    assert "error" in body["axes"][2] and "error" not in body["axes"][0]
    assert [e["param"] for e in body["errors"]] == ["c"]
    assert 'parameter "c"' in body["errors"][0]["message"]
    grid = body["grid"]
    assert {"width", "height", "pages", "downscale", "warnings"} <= set(grid)


def test_preview_linear_mode_counts_the_longest_axis(rh):
    status, body, _ = rh.post("/wi/preview", json=preview_body(mode="linear"))
    assert status == 200 and body["count"] == 4


def test_preview_over_the_combination_limit_reports_it(rh):
    body = {"parameters": [{"name": "a", "type": "INT", "values": "1-1000"}, {"name": "b", "type": "INT", "values": "1-1000"}]}
    status, answer, _ = rh.post("/wi/preview", json=body)
    # The hook refuses such a sweep, so the badge says 0 prompts and how many cells it would have made.
    assert status == 200 and answer["count"] == 0 and answer["combinations"] == 1_000_000
    assert any(e["param"] is None and "too many combinations: 1,000,000" in e["message"] for e in answer["errors"])


def test_preview_empty_body_is_400(rh):
    # An empty body reads as {} which has no "parameters" list.
    status, body, _ = rh.post("/wi/preview", data=b"")
    assert_error(status, body, 400)


@pytest.mark.parametrize("raw", [b"{", b"not json", b'{"parameters": [}', b"\xff\xfe\x00", b"{'a': 1}", b"[1, 2"])
def test_preview_malformed_json_is_400(rh, raw):
    status, body, _ = rh.post("/wi/preview", data=raw, headers={"Content-Type": "application/json"})
    assert_error(status, body, 400)


@pytest.mark.parametrize(
    "payload",
    [
        [],
        [1, 2],
        "parameters",
        42,
        None,
        {},
        {"parameters": "1-3"},
        {"parameters": {"name": "a"}},
        {"parameters": [1]},
        {"parameters": ["a"]},
        {"parameters": [None]},
        {"parameters": [{"name": "a", "values": "1"}], "mode": "diagonal"},
    ],
)
def test_preview_wrong_shape_is_400(rh, payload):
    status, body, _ = rh.post("/wi/preview", data=json.dumps(payload), headers={"Content-Type": "application/json"})
    assert_error(status, body, 400)


def test_preview_odd_but_valid_parameter_fields_are_not_errors_of_the_request(rh):
    body = {"parameters": [{"name": None, "type": 5, "values": ["x"], "options": "no"}, {}], "image_size": "big", "grid": []}
    status, answer, _ = rh.post("/wi/preview", json=body)
    assert status == 200
    assert len(answer["axes"]) == 2 and answer["axes"][0]["name"] == "param 1"


def test_preview_body_at_the_limit_is_accepted(rh):
    raw = json.dumps(preview_body()).encode()
    raw += b" " * (LIMIT - len(raw))
    assert len(raw) == LIMIT
    status, body, _ = rh.post("/wi/preview", data=raw)
    assert status == 200 and body["count"] == 12


def test_preview_body_over_the_limit_with_content_length_is_413(rh):
    raw = json.dumps(preview_body()).encode()
    raw += b" " * (LIMIT + 1 - len(raw))
    status, body, _ = rh.post("/wi/preview", data=raw)
    assert_error(status, body, 413)


def test_preview_huge_body_with_content_length_is_413(rh):
    status, body, _ = rh.post("/wi/preview", data=b"[" + b"0," * (600 * 1024) + b"0]")
    assert_error(status, body, 413)


def _chunks(raw: bytes, size: int = 16 * 1024):
    async def gen():
        for start in range(0, len(raw), size):
            yield raw[start : start + size]

    return gen()


def test_preview_body_over_the_limit_chunked_without_content_length_is_413(rh):
    raw = json.dumps(preview_body()).encode()
    raw += b" " * (LIMIT + 1 - len(raw))
    status, body, _ = rh.post("/wi/preview", data=_chunks(raw))
    assert_error(status, body, 413)


def test_preview_chunked_body_under_the_limit_is_accepted(rh):
    raw = json.dumps(preview_body()).encode() + b" " * 1000
    status, body, _ = rh.post("/wi/preview", data=_chunks(raw, 100))
    assert status == 200 and body["count"] == 12


def _slow_chunks(*pieces: bytes, pause: float = 0.05):
    """A chunked body whose pieces arrive apart, as over a real network."""

    async def gen():
        for piece in pieces:
            yield piece
            await asyncio.sleep(pause)

    return gen()


_PARTIAL_READ = (
    "routes._json_body: request.content.read(MAX_BODY_BYTES + 1) returns only the bytes buffered so far, not up "
    "to the limit; a body arriving in several pieces is truncated (valid JSON -> 400 'body is not JSON', oversize "
    "-> 400 instead of 413). Fix: read in a loop until EOF or more than MAX_BODY_BYTES"
)


def test_preview_body_arriving_in_pieces_is_read_whole(rh):
    raw = json.dumps(preview_body()).encode()
    status, body, _ = rh.post("/wi/preview", data=_slow_chunks(raw[:10], raw[10:]))
    assert status == 200 and body["count"] == 12


def test_preview_oversize_body_arriving_in_pieces_is_413(rh):
    status, body, _ = rh.post("/wi/preview", data=_slow_chunks(b"{", b" " * (LIMIT + 10), b"}"))
    assert_error(status, body, 413)


def test_preview_body_with_content_length_arriving_in_pieces_is_read_whole(rh):
    # An explicit Content-Length (no chunked encoding) over pieces that arrive apart, as a large body over a
    # real network does.
    raw = b"{" + b" " * (LIMIT - 100) + b"}"  # under the limit: must be read whole and parsed
    status, body, _ = rh.post(
        "/wi/preview", data=_slow_chunks(raw[:10], raw[10:]), headers={"Content-Length": str(len(raw))}
    )
    assert status == 400 and "parameters" in body["detail"], body  # the shape error, not "body is not JSON"


def test_server_keeps_serving_after_a_413(rh):
    rh.post("/wi/preview", data=_chunks(b" " * (LIMIT + 10)))
    status, body, _ = rh.get("/wi/status")
    assert status == 200 and body == {"batches": []}


# A 200 KB body of nested arrays is under the size limit, but json.loads raises RecursionError (a
# RuntimeError, not a ValueError), which _guarded maps to 500 "internal error".
def test_preview_deeply_nested_json_is_400_not_500(rh):
    depth = 100_000
    status, body, _ = rh.post("/wi/preview", data=b"[" * depth + b"]" * depth)
    assert_error(status, body, 400)


def test_preview_float_range_at_the_float_maximum_is_not_500(rh):
    values = "-1.7976931348623157e308..1.7976931348623157e308 (+1.1984620899481592029982720e+308)"
    status, body, _ = rh.post("/wi/preview", json={"parameters": [{"name": "cfg", "type": "FLOAT", "values": values}]})
    assert status == 200 and body["count"] == 4, body


def test_errors_are_json_with_error_and_detail(rh):
    cases = [
        ("GET", "/wi/status/nope_1", 404),
        ("POST", "/wi/cancel_batch/nope_1", 404),
        ("POST", "/wi/preview", 400),
    ]
    for method, path, expected in cases:
        status, body, _ = rh.request(method, path, data=b"{bad")
        assert_error(status, body, expected)


def test_status_bodies_are_reused_until_a_batch_changes(rh):
    rh.post_prompt({"prompt": sweep_prompt("1, 2", "10, 20")})
    batch_id = rh.only_batch_id()
    calls = []
    original = rh.service.status
    rh.service.status = lambda b, **kw: calls.append(b) or original(b, **kw)  # count how often the body is rebuilt
    bodies = [rh.get(f"/wi/status/{batch_id}")[1] for _ in range(6)]
    first = bodies[0]
    # Six answers, at most two builds (a one-second bucket may roll over once); without the cache: six.
    assert all(body["counts"] == first["counts"] for body in bodies) and len(calls) <= 2
    rh.server.run_next()  # a cell ends: the next answer must show it
    rh.settle()
    third = rh.get(f"/wi/status/{batch_id}")[1]
    assert third["counts"]["done"] == first["counts"]["done"] + 1
