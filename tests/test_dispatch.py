"""Issue 14: one sweep over several servers — the dispatcher's decisions and a batch run over a fake remote port
(the local server is the ComfyUI stand-in; remote servers are a fake RemoteWorkerPort)."""
from __future__ import annotations

import asyncio

import pytest

from comfyui_workflow_iterator.core import dispatch
from comfyui_workflow_iterator.core.dispatch import Dispatcher, remote_prompt
from comfyui_workflow_iterator.core.ports import RemoteOutcome, RemoteRejected, RemoteUnavailable
from comfyui_workflow_iterator.core.workers import LOCAL_WORKER_ID, WorkerConfig, WorkerHealth

from test_sweep_service import Harness, sweep_prompt

LOCAL = WorkerConfig(LOCAL_WORKER_ID, "this server", None)
A = WorkerConfig("a", "gpu-a", "http://a")
B = WorkerConfig("b", "gpu-b", "http://b")


# ------------------------------------------------------------------------------------------ the dispatcher
def test_windows_follow_weight_and_the_least_loaded_worker_is_served_first() -> None:
    heavy = WorkerConfig("h", "heavy", "http://h", weight=2.0)
    d = Dispatcher(range(10), [A, heavy])
    given = d.assign()
    assert sorted(w for w, _ in given) == ["a", "a", "h", "h", "h", "h"]  # windows 2 and 4
    d.finish("h", d.leases_of("h")[0])
    d.finish("a", d.leases_of("a")[0])
    # a: 1/2 loaded, h: 3/4 loaded -> a is served first, then both are full again
    assert [w for w, _ in d.assign()] == ["a", "h"]


def test_cells_sharing_the_affinity_value_stay_on_one_worker() -> None:
    # 12 cells, key = index // 4 (three "checkpoints" of four cells each)
    d = Dispatcher(range(12), [A, B], key_of=lambda i: i // 4)
    ran: dict[str, list[int]] = {"a": [], "b": []}
    while d.pending() or d.open_leases():
        for worker_id, index in d.assign():
            ran[worker_id].append(index)
        for worker_id in ("a", "b"):
            leases = d.leases_of(worker_id)
            if leases:
                d.finish(worker_id, leases[0])
    keys = {w: [i // 4 for i in cells] for w, cells in ran.items()}
    # while an untouched group is left, a free worker starts it rather than join another worker's group;
    # the last group is shared rather than leave a worker idle
    assert sorted([keys["a"][:4], keys["b"][:4]]) == [[0, 0, 0, 0], [1, 1, 1, 1]], keys
    assert sorted(keys["a"][4:] + keys["b"][4:]) == [2, 2, 2, 2]


def test_a_lost_worker_gives_its_cells_to_the_others_and_a_cell_is_recorded_once() -> None:
    d = Dispatcher(range(4), [A, B])
    given = dict((i, w) for w, i in d.assign())
    a_cells = [i for i, w in given.items() if w == "a"]
    assert d.lose("a", "unreachable: timeout") == []
    assert d.leases_of("a") == [] and d.pending() == 2
    again = d.assign()
    assert again == [] or all(w == "b" for w, _ in again)
    for index in d.leases_of("b"):
        d.finish("b", index)
    again = d.assign()
    assert {i for _, i in again} == set(a_cells) and all(w == "b" for w, _ in again)
    # the lost worker comes back with a result for a cell b now holds: dropped; b's end counts once
    assert d.finish("a", a_cells[0]) is False
    assert d.finish("b", a_cells[0]) is True
    assert d.finish("b", a_cells[0]) is False


def test_a_cell_that_outlives_every_attempt_is_given_up_and_no_worker_left_strands_the_rest() -> None:
    d = Dispatcher(range(3), [A], max_attempts=1)
    d.assign()
    assert d.lose("a", "unreachable: refused") == [0, 1]  # their one attempt is used up
    assert d.stranded()
    assert d.drain() == [2]


# ------------------------------------------------------------------------------------------ remote prompt
def test_remote_prompt_drops_pack_nodes_and_turns_save_nodes_into_previews() -> None:
    prompt = {
        "1": {"class_type": "WIParameterInt", "inputs": {"name": "w", "values": "1"}},
        "3": {"class_type": "WIIterator", "inputs": {"parameters": ["1", 0]}},
        "4": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}},
        "5": {"class_type": "WISaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "WI"}},
        "6": {"class_type": "WIGridCompositor", "inputs": {}},
        "7": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},  # fed by a pack node: dropped
        "8": {"class_type": "WIDEFilter", "inputs": {"image": ["4", 0]}},  # another pack's "WI..." node: kept
    }
    out = remote_prompt(prompt, ["5"])
    assert out == {"4": prompt["4"], "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
                   "8": prompt["8"]}


# ------------------------------------------------------------------------------------------ a batch over servers
class Directory:
    def __init__(self, workers: list[WorkerConfig]) -> None:
        self.listed = workers
        self.reports: list[tuple[str, bool, str | None]] = []

    def workers(self) -> list[WorkerConfig]:
        return self.listed

    def health(self, worker_id: str) -> WorkerHealth:
        return WorkerHealth(reachable=True)

    def report(self, worker_id: str, *, reachable: bool, queue_depth: int | None = None,
               error: str | None = None) -> None:
        self.reports.append((worker_id, reachable, error))


class FakePort:
    """Remote servers that finish a cell once the test lets them (``auto`` finishes at once)."""

    def __init__(self) -> None:
        self.submitted: list[tuple[str, str, dict]] = []
        self.stored: list[tuple[str, str]] = []
        self.cancelled: list[tuple[str, list[str]]] = []
        self.down: set[str] = set()
        self.rejecting: dict[str, str] = {}
        self.auto = True
        self.hold: dict[str, asyncio.Event] = {}

    async def submit(self, worker, prompt_id, prompt, extra_data):
        if worker.id in self.down:
            raise RemoteUnavailable("connection refused")
        if worker.id in self.rejecting:
            raise RemoteRejected(self.rejecting[worker.id])
        self.submitted.append((worker.id, prompt_id, prompt))

    async def wait_done(self, worker, prompt_id, timeout):
        if not self.auto:
            event = self.hold.setdefault(prompt_id, asyncio.Event())
            await event.wait()
        if worker.id in self.down:
            raise RemoteUnavailable("socket dropped")
        outputs = {node_id: {"images": [{"filename": f"{prompt_id}.png", "subfolder": "", "type": "temp"}]}
                   for node_id, node in self.prompt_of(prompt_id).items() if node["class_type"] == "PreviewImage"}
        return RemoteOutcome("done", None, outputs)

    def prompt_of(self, prompt_id):
        return next(p for _, pid, p in reversed(self.submitted) if pid == prompt_id)

    async def fetch(self, worker, ref):
        return b"png:" + ref["filename"].encode()

    async def ensure_input(self, worker, name, local_path):
        pass

    async def cancel(self, worker, prompt_ids):
        self.cancelled.append((worker.id, list(prompt_ids)))

    def store_output(self, data, subfolder, filename, prompt, extra_pnginfo, node_id, number, count):
        self.stored.append((subfolder, filename))


class Multi(Harness):
    def __init__(self, monkeypatch, tmp_path, workers, window=4):
        super().__init__(monkeypatch, tmp_path, window=window)
        self.port = FakePort()
        self.directory = Directory(workers)
        self.service.workers = self.directory
        self.service.remote = self.port


def _status(h, prompt_id):
    batch_id = h.manager.lookup_prompt(prompt_id)[0]
    return h.manager.get_status(batch_id)


def test_a_sweep_over_three_servers_records_every_cell_once_with_its_worker(monkeypatch, tmp_path) -> None:
    h = Multi(monkeypatch, tmp_path, [LOCAL, A, B])
    try:
        code, answer = h.post({"prompt": sweep_prompt(), "client_id": "c"})
        assert code == 200
        local = h.run_all()
        status = _status(h, answer["prompt_id"])
        assert status["state"] in ("collecting", "complete") and status["counts"]["done"] == 9
        by_worker = {c["index"]: c["worker"] for c in status["cells"]}
        remote_cells = [i for i, w in by_worker.items() if w in ("a", "b")]
        assert remote_cells and {w for w in by_worker.values()} <= {"local", "a", "b"}
        assert len(local) + len(h.port.submitted) == 9  # every cell ran exactly once, somewhere
        assert sorted(int(pid[-12:], 16) for _, pid, _ in h.port.submitted) == sorted(remote_cells)
        for cell in status["cells"]:
            if cell["worker"] in ("a", "b"):  # fetched here under the local naming rule
                assert cell["files"] and cell["files"][0]["filename"].startswith(f"c{cell['index']:05d}")
        assert set(status["workers"]) == {"local", "a", "b"}
        assert sum(w["done"] for w in status["workers"].values()) == 9
        assert h.grids == [status["batch_id"]]
    finally:
        h.close()


def test_a_worker_that_rejects_the_prompt_is_excluded_with_its_reason(monkeypatch, tmp_path) -> None:
    h = Multi(monkeypatch, tmp_path, [LOCAL, A, B])
    h.port.rejecting["b"] = "node 4 (CheckpointLoaderSimple): value not in list: ckpt_name"
    try:
        code, answer = h.post({"prompt": sweep_prompt(), "client_id": "c"})
        h.run_all()
        status = _status(h, answer["prompt_id"])
        assert status["counts"]["done"] == 9
        assert "ckpt_name" in status["workers"]["b"]["excluded"]
        assert status["workers"]["b"]["done"] == 0
        assert all(c["worker"] != "b" for c in status["cells"])
        states = [e for e in h.events("wi.worker_state") if e["worker_id"] == "b"]
        assert states and states[-1]["state"] == "disabled" and "ckpt_name" in states[-1]["detail"]
    finally:
        h.close()


def test_a_dead_worker_loses_its_leases_and_the_cells_run_elsewhere(monkeypatch, tmp_path) -> None:
    h = Multi(monkeypatch, tmp_path, [LOCAL, A, B])
    h.port.auto = False
    try:
        code, answer = h.post({"prompt": sweep_prompt(), "client_id": "c"})
        h.settle()
        held_by_a = [pid for w, pid, _ in h.port.submitted if w == "a"]
        assert held_by_a
        h.port.down.add("a")  # killed: its sockets drop
        for event in list(h.port.hold.values()):
            event.set()
        h.port.auto = True
        for event in list(h.port.hold.values()):
            event.set()
        for _ in range(20):
            h.run_all()
            for event in list(h.port.hold.values()):
                event.set()
        status = _status(h, answer["prompt_id"])
        assert status["counts"]["done"] == 9, status["counts"]
        assert status["workers"]["a"]["state"] == "unreachable" and status["workers"]["a"]["done"] == 0
        lost = {int(pid[-12:], 16) for pid in held_by_a}
        assert all(c["worker"] in ("local", "b") for c in status["cells"] if c["index"] in lost)
        assert ("a", False, status["workers"]["a"]["excluded"]) in h.directory.reports
        # what it held is deleted there (best effort): it cannot run those cells a second time if it comes back
        assert {pid for w, ids in h.port.cancelled if w == "a" for pid in ids} == set(held_by_a)
    finally:
        h.close()


def test_every_worker_excluded_fails_the_remaining_cells_with_the_reason(monkeypatch, tmp_path) -> None:
    # the local server is turned off as a worker; the only remote one is down
    h = Multi(monkeypatch, tmp_path, [A])
    h.port.down.add("a")
    try:
        code, answer = h.post({"prompt": sweep_prompt(), "client_id": "c"})
        h.run_all()  # the submitted cell 0 still runs here (ComfyUI queued it itself)
        status = _status(h, answer["prompt_id"])
        assert status["state"] in ("collecting", "complete")
        failed = [c for c in status["cells"] if c["status"] == "failed"]
        assert len(failed) == 8 and all("connection refused" in c["error"] for c in failed)
    finally:
        h.close()


def test_cancel_reaches_every_worker(monkeypatch, tmp_path) -> None:
    h = Multi(monkeypatch, tmp_path, [LOCAL, A, B])
    h.port.auto = False
    try:
        code, answer = h.post({"prompt": sweep_prompt(), "client_id": "c"})
        h.settle()
        batch_id = h.manager.lookup_prompt(answer["prompt_id"])[0]
        remote = {w: sorted(pid for ww, pid, _ in h.port.submitted if ww == w) for w in ("a", "b")}
        assert remote["a"] and remote["b"]
        result = h.service.cancel(batch_id) if False else h.loop.run_until_complete(_cancel(h, batch_id))
        h.settle()
        asked = {w: sorted(ids) for w, ids in h.port.cancelled}
        assert asked == remote
        assert {entry["worker_id"] for entry in result["workers"]} == {"a", "b"}
        h.run_all()
        status = h.manager.get_status(batch_id)
        assert status["state"] in ("cancelled",)
        assert status["counts"]["done"] <= 1  # at most the local running cell finished
        assert not any(c["status"] in ("queued", "running") for c in status["cells"])
        before = len(h.port.submitted)
        h.settle()
        assert len(h.port.submitted) == before  # nothing is sent after the cancel
    finally:
        h.close()


async def _cancel(h, batch_id):
    return h.service.cancel(batch_id)


def test_with_only_the_local_worker_nothing_changes(monkeypatch, tmp_path) -> None:
    h = Multi(monkeypatch, tmp_path, [LOCAL])
    try:
        code, answer = h.post({"prompt": sweep_prompt(), "client_id": "c"})
        ran = h.run_all()
        status = _status(h, answer["prompt_id"])
        assert len(ran) == 9 and h.port.submitted == []
        assert status["workers"] == {} and all(c["worker"] is None for c in status["cells"])
        assert h.service.run_of(status["batch_id"]) is None
    finally:
        h.close()


def test_the_remote_workers_list_ignores_disabled_and_local_only_directories() -> None:
    assert dispatch.remote_workers(None) == []
    assert dispatch.remote_workers(Directory([LOCAL])) == []
    off = WorkerConfig("a", "a", "http://a", enabled=False)
    assert dispatch.remote_workers(Directory([LOCAL, off])) == []
    assert [w.id for w in dispatch.remote_workers(Directory([A, LOCAL]))] == ["local", "a"]


# ------------------------------------------------------------------------------------------ resume
def test_an_interrupted_batch_resumes_over_the_workers_and_a_spread_one_resumes_here(monkeypatch, tmp_path) -> None:
    from comfyui_workflow_iterator.core.journal import BatchJournal
    from test_resume_edges import interrupted_batch
    from test_routes import RouteHarness

    journal = BatchJournal(tmp_path / "journal.sqlite")
    try:
        # ran here, resumed over the workers
        batch_id, _ = interrupted_batch(monkeypatch, tmp_path, journal)
        second = RouteHarness(monkeypatch, tmp_path, journal=journal)
        port = FakePort()
        second.service.workers, second.service.remote = Directory([LOCAL, A]), port
        try:
            second.service.restore_interrupted()
            status, body, _ = second.post(f"/wi/resume/{batch_id}")
            assert status == 200 and body["queued"] == 2, body
            second.run_all()
            second.settle()
            done = second.manager.get_status(batch_id)
            assert done["counts"]["done"] == 3, done["counts"]
            assert any(c["worker"] == "a" for c in done["cells"]) and port.submitted
            journal.flush()
        finally:
            second.close()
        # spread over a worker that "died" with the master mid-batch, resumed on this server alone
        first = RouteHarness(monkeypatch, tmp_path, journal=journal)
        held = FakePort()
        held.auto = False
        first.service.workers, first.service.remote = Directory([LOCAL, A]), held
        try:
            first.post_prompt({"prompt": sweep_prompt("1, 2, 3", "10")})
            spread_id = next(b["batch_id"] for b in first.manager.list_batches() if b["batch_id"] != batch_id)
            first.run_all()
            assert held.submitted  # cells were out on worker a when everything stopped
            journal.flush()
        finally:
            first.close()
        third = RouteHarness(monkeypatch, tmp_path, journal=journal)
        try:
            third.service.restore_interrupted()
            status, body, _ = third.post(f"/wi/resume/{spread_id}")
            assert status == 200 and body["queued"] >= 1, body
            third.run_all()
            third.settle()
            assert third.manager.get_status(spread_id)["counts"]["done"] == 3
        finally:
            third.close()
    finally:
        journal.close()


def test_clearing_this_servers_queue_also_stops_the_batchs_cells_on_the_workers(monkeypatch, tmp_path) -> None:
    h = Multi(monkeypatch, tmp_path, [LOCAL, A])
    h.port.auto = False
    try:
        code, answer = h.post({"prompt": sweep_prompt(), "client_id": "c"})
        h.settle()
        batch_id = h.manager.lookup_prompt(answer["prompt_id"])[0]
        remote = sorted(pid for w, pid, _ in h.port.submitted if w == "a")
        assert remote
        h.server.prompt_queue.wipe_queue()  # the frontend's "Clear queue" on the master
        h.settle()
        assert h.manager.get_status(batch_id)["state"] == "cancelled"
        assert [(w, sorted(ids)) for w, ids in h.port.cancelled] == [("a", remote)]
    finally:
        h.close()


def test_affinity_follows_the_checkpoint_axis_whatever_the_users_order() -> None:
    from comfyui_workflow_iterator.core import parameter_parser, prompt_graph

    prompt = {
        "1": {"class_type": "WIParameterFloat", "inputs": {"name": "cfg", "values": "5, 7", "target": "5.cfg"}},
        "2": {"class_type": "WIParameterString", "inputs": {"name": "ckpt", "values": "a.safetensors, b.safetensors",
                                                            "target": "4.ckpt_name", "previous": ["1", 0]}},
        "3": {"class_type": "WIIterator", "inputs": {"parameters": ["2", 0], "enabled": True, "mode": "matrix"}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"}},
        "5": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "cfg": 7}},
        "6": {"class_type": "WISaveImage", "inputs": {"images": ["5", 0]}},
    }
    plan = prompt_graph.plan_sweep(prompt, "3", parse=parameter_parser.parse)
    names = [axis.name for axis in plan.axes]
    assert dispatch.affinity_axis(plan) == names.index("ckpt")
    # with it, each checkpoint's cells go to one worker of two free ones
    axis = names.index("ckpt")
    d = Dispatcher(plan.run_order(), [A, B], key_of=lambda i: plan.combinations[i].coords[axis])
    given = d.assign()
    by_worker = {w: {plan.combinations[i].coords[axis] for ww, i in given if ww == w} for w in ("a", "b")}
    assert by_worker["a"] != by_worker["b"] and all(len(v) == 1 for v in by_worker.values()), (
        by_worker, [(a.name, a.values) for a in plan.axes], list(plan.run_order()), given)


def test_a_status_served_from_the_journal_keeps_the_worker_fields(monkeypatch, tmp_path) -> None:
    """After the manager forgot a batch its status comes from the journal: same shape (``worker`` on every cell,
    ``workers`` on the batch), the worker unknown there."""
    from comfyui_workflow_iterator.core.journal import BatchJournal

    journal = BatchJournal(str(tmp_path / "j.sqlite3"))
    h = Harness(monkeypatch, tmp_path)
    h.service.journal = journal
    h.manager.add_listener(h.service._journal_event)
    try:
        code, answer = h.post({"prompt": sweep_prompt("1, 2", "10"), "client_id": "c"})
        h.run_all()
        batch_id = h.manager.lookup_prompt(answer["prompt_id"])[0]
        assert journal.flush()
        h.manager.cleanup_batch(batch_id)
        body = h.service.status(batch_id, with_values=False)
        assert body["source"] == "journal"
        assert all("worker" in c and c["worker"] is None for c in body["cells"]) and body["workers"] == {}
    finally:
        h.close()
        journal.close()
