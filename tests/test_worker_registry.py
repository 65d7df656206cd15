"""core/worker_registry.py: the worker list in its file, entry validation, health and the state rule."""
from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from comfyui_workflow_iterator.core import worker_registry as wr
from comfyui_workflow_iterator.core.worker_registry import (
    UnknownWorkerError,
    WorkerConfigError,
    WorkerRegistry,
    normalise_url,
    parse_auth_header,
    queue_depth_from_answer,
    worker_state,
    workers_file_path,
)
from comfyui_workflow_iterator.core.workers import LOCAL_WORKER_ID, WorkerConfig, WorkerHealth


@pytest.fixture
def path(tmp_path):
    return workers_file_path(str(tmp_path / "user"))


def registry(path, **kwargs):
    return WorkerRegistry(path, **kwargs)


# ------------------------------------------------------------------------------------------ no file
def test_without_a_file_only_the_local_worker_is_listed_and_nothing_is_written(path):
    reg = registry(path)
    workers = reg.workers()
    assert [(w.id, w.url, w.enabled, w.local) for w in workers] == [(LOCAL_WORKER_ID, None, True, True)]
    assert reg.state(LOCAL_WORKER_ID) == "idle"
    assert not os.path.exists(path)


def test_the_file_lives_outside_the_folder_comfyui_serves_as_userdata(tmp_path):
    user = str(tmp_path / "user")
    served = os.path.join(user, "default")
    assert os.path.commonpath([served, workers_file_path(user)]) != served


def test_in_memory_registry_refuses_to_save(tmp_path):
    reg = WorkerRegistry(None)
    with pytest.raises(WorkerConfigError, match="no user directory"):
        reg.save({"url": "http://10.0.0.2:8188"})


# ------------------------------------------------------------------------------------------ round trip
def test_added_worker_round_trips_through_the_file(path):
    reg = registry(path)
    added = reg.save({"url": "HTTP://Box.local:8188/", "name": "  big   GPU ", "weight": 2,
                      "auth_header": "Authorization:   Bearer s3cret", "enabled": False})
    assert added.url == "http://box.local:8188" and added.name == "big GPU"
    assert added.weight == 2.0 and added.enabled is False and added.auth_header == "Authorization: Bearer s3cret"
    again = registry(path)
    assert [w for w in again.workers() if not w.local] == [added]
    on_disk = json.loads(open(path, encoding="utf-8").read())
    assert on_disk["version"] == 1 and on_disk["workers"][0]["id"] == added.id


def test_the_file_is_readable_by_its_owner_only(path):
    registry(path).save({"url": "http://10.0.0.2:8188", "auth_header": "X-Key: k"})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_edit_keeps_the_fields_it_leaves_out(path):
    reg = registry(path)
    added = reg.save({"url": "http://10.0.0.2:8188", "auth_header": "X-Key: k", "weight": 3})
    changed = reg.save({"id": added.id, "name": "renamed"})
    assert changed.name == "renamed" and changed.auth_header == "X-Key: k" and changed.weight == 3.0
    assert changed.url == added.url


def test_a_saved_auth_header_does_not_follow_a_changed_url(path):
    reg = registry(path)
    added = reg.save({"url": "http://10.0.0.2:8188", "auth_header": "X-Key: k"})
    moved = reg.save({"id": added.id, "url": "http://evil.example:8188"})
    assert moved.auth_header is None
    again = reg.save({"id": added.id, "url": "http://10.0.0.2:8188/", "auth_header": "X-Key: new"})
    assert again.auth_header == "X-Key: new"
    assert reg.save({"id": added.id, "url": "HTTP://10.0.0.2:8188"}).auth_header == "X-Key: new", "same URL, other spelling"


def test_an_empty_auth_header_in_an_edit_removes_it(path):
    reg = registry(path)
    added = reg.save({"url": "http://10.0.0.2:8188", "auth_header": "X-Key: k"})
    assert reg.save({"id": added.id, "auth_header": ""}).auth_header is None


def test_default_name_is_host_and_port(path):
    assert registry(path).save({"url": "https://gpu2.lan:8443/comfy/"}).name == "gpu2.lan:8443/comfy"


def test_the_local_worker_can_be_turned_off_and_on(path):
    reg = registry(path)
    reg.save({"id": LOCAL_WORKER_ID, "enabled": False})
    assert [w.id for w in reg.workers()] == []
    assert [(w.id, w.enabled) for w in reg.entries()] == [(LOCAL_WORKER_ID, False)]
    assert registry(path).state(LOCAL_WORKER_ID) == "disabled"
    assert json.loads(open(path).read())["local_enabled"] is False
    reg.save({"id": LOCAL_WORKER_ID, "enabled": True})
    assert [w.id for w in registry(path).workers()] == [LOCAL_WORKER_ID]


def test_local_first_then_remote_workers_in_file_order(path):
    reg = registry(path)
    a = reg.save({"url": "http://10.0.0.2:8188"})
    b = reg.save({"url": "http://10.0.0.3:8188"})
    assert [w.id for w in reg.workers()] == [LOCAL_WORKER_ID, a.id, b.id]


def test_delete_removes_the_worker_from_the_file(path):
    reg = registry(path)
    a = reg.save({"url": "http://10.0.0.2:8188"})
    reg.remove(a.id)
    assert [w.id for w in registry(path).workers()] == [LOCAL_WORKER_ID]
    with pytest.raises(UnknownWorkerError):
        reg.remove(a.id)


def test_the_local_worker_cannot_be_deleted(path):
    with pytest.raises(WorkerConfigError, match="cannot be deleted") as info:
        registry(path).remove(LOCAL_WORKER_ID)
    assert info.value.field == "id"


def test_editing_an_unknown_id_is_unknown_worker(path):
    with pytest.raises(UnknownWorkerError, match="nope"):
        registry(path).save({"id": "nope", "url": "http://10.0.0.2:8188"})


# ------------------------------------------------------------------------------------------ atomic write
def test_a_failed_write_leaves_the_previous_file_whole(path, monkeypatch):
    reg = registry(path)
    reg.save({"url": "http://10.0.0.2:8188"})
    before = open(path, encoding="utf-8").read()

    def broken_encode(config):
        raise OSError("disk full")

    monkeypatch.setattr(wr, "_encode", broken_encode)
    with pytest.raises(OSError):
        reg.save({"url": "http://10.0.0.3:8188"})
    assert open(path, encoding="utf-8").read() == before
    assert [n for n in os.listdir(os.path.dirname(path)) if n != "workers.json"] == []


def test_writes_go_through_atomic_files(path, monkeypatch):
    written = []
    real = wr.write_text
    monkeypatch.setattr(wr, "write_text", lambda p, text, **kw: (written.append(p), real(p, text, **kw)))
    registry(path).save({"url": "http://10.0.0.2:8188"})
    assert written == [path]


# ------------------------------------------------------------------------------------------ re-read
def test_a_file_changed_by_someone_else_is_read_again(path):
    reg = registry(path)
    reg.save({"url": "http://10.0.0.2:8188"})
    other = registry(path)
    other.save({"url": "http://10.0.0.3:8188"})
    assert sorted(w.url for w in reg.workers() if w.url) == ["http://10.0.0.2:8188", "http://10.0.0.3:8188"]


def test_a_hand_edited_file_is_picked_up(path):
    reg = registry(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"version": 1, "workers": [{"id": "gpu2", "url": "http://10.0.0.9:8188"}]}, handle)
    assert [w.id for w in reg.workers()] == [LOCAL_WORKER_ID, "gpu2"]


def test_a_corrupt_file_keeps_the_last_good_list_and_refuses_edits(path):
    reg = registry(path)
    reg.save({"url": "http://10.0.0.2:8188"})
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("{ not json")
    assert [w.url for w in reg.workers()] == [None, "http://10.0.0.2:8188"]
    assert "not JSON" in reg.file_error
    with pytest.raises(WorkerConfigError, match="fix or delete the workers file") as info:
        reg.save({"url": "http://10.0.0.3:8188"})
    assert info.value.field == "file"
    assert open(path, encoding="utf-8").read() == "{ not json"


@pytest.mark.parametrize(("content", "field"), [
    ({"version": 2}, "version"),
    ({"workers": {}}, "workers"),
    ({"workers": [{"url": "http://a:1"}]}, "workers[0]"),
    ({"workers": [{"id": "a", "url": "ftp://a"}]}, "workers[0].url"),
    ({"workers": [{"id": "a", "url": "http://a:1", "weight": 0}]}, "workers[0].weight"),
    ({"workers": [{"id": "local", "url": "http://a:1"}]}, "workers[0].url"),
    ({"local_enabled": "yes"}, "local_enabled"),
    ({"workers": [{"id": "a", "url": "http://a:1"}, {"id": "b", "url": "http://A:1/"}]}, "url"),
    ({"workers": [{"id": "a", "url": "http://a:1"}, {"id": "a", "url": "http://b:1"}]}, "id"),
])
def test_a_bad_file_is_reported_naming_the_field(path, content, field):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(content, handle)
    reg = registry(path)
    assert reg.file_error is not None and f"{field}:" in reg.file_error
    assert [w.id for w in reg.workers()] == [LOCAL_WORKER_ID]


# ------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(("url", "expected"), [
    ("http://10.0.0.2:8188", "http://10.0.0.2:8188"),
    ("HTTPS://GPU.example.com:443/", "https://gpu.example.com"),
    ("http://host:80", "http://host"),
    ("http://[::1]:8188/", "http://[::1]:8188"),
    ("  http://host:8188/prefix/  ", "http://host:8188/prefix"),
])
def test_urls_are_normalised(url, expected):
    assert normalise_url(url) == expected


@pytest.mark.parametrize(("url", "message"), [
    ("", "needs a URL"),
    (None, "needs a URL"),
    (8188, "needs a URL"),
    ("10.0.0.2:8188", "http:// or https://"),
    ("ftp://host", "http:// or https://"),
    ("http://", "no host"),
    ("http://host:99999", "invalid port"),
    ("http://host:0", "invalid port"),
    ("http://host:abc", "invalid port"),
    ("http://user:pw@host:8188", "credentials"),
    ("http://host:8188/?a=1", "no query"),
    ("http://host:8188/#x", "no query"),
    ("http://ho st:8188", "spaces"),
])
def test_bad_urls_are_refused_naming_the_url_field(url, message):
    with pytest.raises(WorkerConfigError, match=message) as info:
        normalise_url(url)
    assert info.value.field == "url"


def test_credentials_in_a_refused_url_are_not_echoed():
    with pytest.raises(WorkerConfigError) as info:
        normalise_url("http://user:topsecret@host:8188")
    assert "topsecret" not in str(info.value)


@pytest.mark.parametrize(("spec", "field"), [
    ({"url": "http://a:1", "weight": 0}, "weight"),
    ({"url": "http://a:1", "weight": -1}, "weight"),
    ({"url": "http://a:1", "weight": float("nan")}, "weight"),
    ({"url": "http://a:1", "weight": True}, "weight"),
    ({"url": "http://a:1", "weight": "2"}, "weight"),
    ({"url": "http://a:1", "enabled": "true"}, "enabled"),
    ({"url": "http://a:1", "name": 5}, "name"),
    ({"url": "http://a:1", "name": "x" * 101}, "name"),
    ({"url": "http://a:1", "auth_header": "Bearer abc"}, "auth_header"),
    ({"url": "http://a:1", "auth_header": "Authorization:"}, "auth_header"),
    ({"url": "http://a:1", "auth_header": "Bad Name: x"}, "auth_header"),
    ({"url": "http://a:1", "auth_header": "X-Key: a\r\nX-Other: b"}, "auth_header"),
    ({"url": "http://a:1", "colour": "red"}, "colour"),
    ({"id": "../etc", "url": "http://a:1"}, "id"),
    ({"id": "local", "url": "http://a:1"}, "url"),
    ({}, "url"),
])
def test_bad_entries_are_refused_naming_the_field(path, spec, field):
    reg = registry(path)
    with pytest.raises(WorkerConfigError) as info:
        reg.save(spec)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert not os.path.exists(path)


def test_a_duplicate_url_is_refused_naming_the_other_worker(path):
    reg = registry(path)
    reg.save({"url": "http://10.0.0.2:8188", "name": "gpu A"})
    with pytest.raises(WorkerConfigError, match='already the worker "gpu A"') as info:
        reg.save({"url": "HTTP://10.0.0.2:8188/"})
    assert info.value.field == "url"


def test_changing_a_worker_to_another_ones_url_is_refused(path):
    reg = registry(path)
    reg.save({"url": "http://10.0.0.2:8188"})
    b = reg.save({"url": "http://10.0.0.3:8188"})
    with pytest.raises(WorkerConfigError, match="already"):
        reg.save({"id": b.id, "url": "http://10.0.0.2:8188"})


def test_parse_auth_header_splits_name_and_value():
    assert parse_auth_header("Authorization: Bearer a:b") == ("Authorization", "Bearer a:b")


# ------------------------------------------------------------------------------------------ health and state
REMOTE = WorkerConfig(id="w", name="w", url="http://a:1")


@pytest.mark.parametrize(("config", "health", "state"), [
    (REMOTE, WorkerHealth(reachable=True, queue_depth=0), "idle"),
    (REMOTE, WorkerHealth(reachable=True, queue_depth=None), "idle"),
    (REMOTE, WorkerHealth(reachable=True, queue_depth=2), "busy"),
    (REMOTE, WorkerHealth(reachable=False), "unreachable"),
    (WorkerConfig(id="w", name="w", url="http://a:1", enabled=False), WorkerHealth(reachable=True), "disabled"),
    (WorkerConfig(id="w", name="w", url="http://a:1", enabled=False), WorkerHealth(reachable=False), "disabled"),
])
def test_worker_state_rule(config, health, state):
    assert worker_state(config, health) == state


def test_a_new_remote_worker_is_unreachable_until_it_answers(path):
    reg = registry(path)
    worker = reg.save({"url": "http://10.0.0.2:8188"})
    assert reg.state(worker.id) == "unreachable" and reg.health(worker.id).last_seen is None


def test_reports_update_health_and_last_seen(path):
    now = [1000.0]
    reg = registry(path, clock=lambda: now[0])
    worker = reg.save({"url": "http://10.0.0.2:8188"})
    reg.report(worker.id, reachable=True, queue_depth=3)
    assert reg.health(worker.id) == WorkerHealth(reachable=True, queue_depth=3, last_seen=1000.0, error=None)
    assert reg.state(worker.id) == "busy"
    now[0] = 1010.0
    reg.report(worker.id, reachable=False, error="timeout after 3 s")
    assert reg.health(worker.id) == WorkerHealth(reachable=False, queue_depth=None, last_seen=1000.0,
                                                  error="timeout after 3 s")
    assert reg.state(worker.id) == "unreachable"


def test_a_report_for_an_unknown_worker_is_ignored(path):
    reg = registry(path)
    reg.report("gone", reachable=True, queue_depth=0)
    # A worker deleted while the dispatcher still talks to it: its health reads "not checked", never the report.
    assert reg.health("gone") == WorkerHealth(reachable=False, error="not checked yet")
    with pytest.raises(UnknownWorkerError):
        reg.state("gone")


def test_a_deleted_worker_forgets_its_health(path):
    def write(entries):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"version": 1, "workers": entries}, handle)

    write([{"id": "gpu2", "url": "http://10.0.0.2:8188"}])
    reg = registry(path)
    reg.report("gpu2", reachable=True, queue_depth=0)
    assert reg.state("gpu2") == "idle"
    reg.remove("gpu2")
    write([{"id": "gpu2", "url": "http://10.0.0.99:8188"}])  # the id comes back, for another machine
    assert reg.state("gpu2") == "unreachable" and reg.health("gpu2").last_seen is None


def test_listeners_hear_each_state_change_once(path):
    reg = registry(path)
    heard = []
    reg.add_listener(lambda *change: heard.append(change))
    worker = reg.save({"url": "http://10.0.0.2:8188"})
    reg.report(worker.id, reachable=False, error="refused")  # still unreachable: no second event
    reg.report(worker.id, reachable=True, queue_depth=0)
    reg.report(worker.id, reachable=True, queue_depth=0)
    reg.report(worker.id, reachable=True, queue_depth=2)
    reg.save({"id": worker.id, "enabled": False})
    reg.remove(worker.id)
    assert heard == [(worker.id, "unreachable", "not checked yet"), (worker.id, "idle", None),
                     (worker.id, "busy", "2 in queue"), (worker.id, "disabled", None), (worker.id, None, "removed")]


def test_a_raising_listener_does_not_stop_the_next_one_or_the_caller(path):
    reg = registry(path)
    heard = []

    def broken(*change):
        raise RuntimeError("boom")

    reg.add_listener(broken)
    reg.add_listener(lambda *change: heard.append(change[1]))
    worker = reg.save({"url": "http://10.0.0.2:8188"})
    reg.report(worker.id, reachable=True, queue_depth=0)
    assert heard == ["unreachable", "idle"]


def test_listeners_run_after_the_lock_is_released(path):
    reg = registry(path)
    inside = []
    reg.add_listener(lambda worker_id, *rest: inside.append(reg.health(worker_id)))  # would deadlock under the lock
    reg.save({"url": "http://10.0.0.2:8188"})
    assert len(inside) == 1


@pytest.mark.parametrize(("payload", "depth"), [
    ({"queue_running": [[1]], "queue_pending": [[2], [3]]}, 3),
    ({"queue_running": [], "queue_pending": []}, 0),
])
def test_queue_depth_is_running_plus_pending(payload, depth):
    assert queue_depth_from_answer(payload) == depth


@pytest.mark.parametrize("payload", [[], {"queue_running": 1, "queue_pending": []}, {"detail": "login"}, None])
def test_an_answer_that_is_not_a_comfyui_queue_is_an_error(payload):
    with pytest.raises(ValueError, match="ComfyUI"):
        queue_depth_from_answer(payload)


# ------------------------------------------------------------------------------------------ concurrency
def test_concurrent_adds_through_one_registry_keep_every_worker(path):
    reg = registry(path)
    count = 12
    barrier = threading.Barrier(count)

    def add(n):
        barrier.wait()
        reg.save({"url": f"http://10.0.{n}.1:8188"})

    threads = [threading.Thread(target=add, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([w for w in registry(path).workers() if not w.local]) == count


def test_reports_from_many_threads_while_the_file_changes(path):
    reg = registry(path)
    worker = reg.save({"url": "http://10.0.0.2:8188"})
    stop = threading.Event()
    failures = []

    def reporter():
        while not stop.is_set():
            try:
                reg.report(worker.id, reachable=True, queue_depth=1)
                reg.state(worker.id)
            except UnknownWorkerError:
                pass
            except Exception as exc:  # collected, asserted below
                failures.append(exc)
                return

    threads = [threading.Thread(target=reporter) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for n in range(20):
            reg.save({"id": worker.id, "weight": n + 1})
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert reg.get(worker.id).weight == 20.0
