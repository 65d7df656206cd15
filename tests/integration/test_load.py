"""Many sweeps from several clients at once, with random cancels and a hammered status route, on a real ComfyUI."""
from __future__ import annotations

import random
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from .test_real_comfyui import plain_prompt, sweep

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BATCHES, CELLS, CLIENTS = 20, 50, 4


def test_twenty_batches_from_four_clients_with_random_cancels_account_for_every_cell(comfy):
    rng = random.Random(20261128)
    cancel_plan = set(rng.sample(range(BATCHES), 6))
    submitted: list[tuple[int, str, str]] = []  # (batch number, client, prompt id)
    plain_ids: list[str] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        name = f"client{number}"
        for k in range(number, BATCHES, CLIENTS):
            colors = ", ".join(str(c) for c in range(k * 100, k * 100 + CELLS // 2))
            code, answer = comfy.queue_prompt(sweep(colors, "1, 2", name=f"load{k}", grid=(k % 5 == 0)), client_id=name)
            assert code == 200, answer
            code, plain = comfy.queue_prompt(plain_prompt(color=k), client_id=name)
            assert code == 200
            with lock:
                submitted.append((k, name, answer["prompt_id"]))
                plain_ids.append(plain["prompt_id"])

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client, range(CLIENTS)))
    batch_ids = {k: comfy.batch_for_prompt(pid)["batch_id"] for k, _, pid in submitted}

    cancel_times: dict[str, float] = {}
    for k in sorted(cancel_plan):
        batch_id = batch_ids[k]
        code, answer = comfy.post(f"/wi/cancel_batch/{batch_id}", {})
        if code == 200:
            cancel_times[batch_id] = time.time()
            assert answer["state"] == "cancelled"
        else:
            assert code == 409  # it had already finished: cancelling a finished batch is refused, not ignored

    finals = {k: comfy.wait_batch(b, timeout=600) for k, b in batch_ids.items()}
    for k, status in finals.items():
        counts = status["counts"]
        assert counts["done"] + counts["failed"] + counts["cancelled"] == CELLS == counts["total"], (k, counts)
        assert all(c["status"] in ("done", "failed", "cancelled") for c in status["cells"])
        if status["batch_id"] in cancel_times:
            assert status["state"] == "cancelled"
            started_late = []
            for cell in status["cells"]:
                if not cell["prompt_id"]:
                    continue
                history = comfy.get(f"/history/{cell['prompt_id']}")[1].get(cell["prompt_id"])
                if not history:
                    continue
                starts = [m[1]["timestamp"] / 1000 for m in history["status"]["messages"] if m[0] == "execution_start"]
                if starts and starts[0] > cancel_times[status["batch_id"]]:
                    started_late.append(cell["index"])
            assert started_late == [], f"cells of cancelled batch {status['batch_id']} started after the cancel: {started_late}"
        else:
            assert status["state"] == "complete"
        if k % 5 == 0 and status["state"] == "complete":
            folder = comfy.output_dir / status["grid"]["subfolder"]
            assert len(list(folder.glob("grid*.png"))) == 1  # built exactly once
    for pid in plain_ids:  # no unrelated prompt lost
        assert comfy.wait_history(pid, timeout=120)["status"]["status_str"] == "success"


def test_status_route_under_load_answers_every_request(comfy):
    code, answer = comfy.queue_prompt(sweep(", ".join(str(c) for c in range(40)), "1", name="loaded", grid=False, seconds=0.5))
    assert code == 200
    batch_id = comfy.batch_for_prompt(answer["prompt_id"])["batch_id"]
    errors: list[str] = []
    done = threading.Event()
    sent = [0]

    def hammer() -> None:
        # About 200 requests/s in total from 4 threads, for at most 30 s or until the sweep ends.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not done.is_set():
            for path in ("/wi/status", f"/api/wi/status/{batch_id}"):
                try:
                    with urllib.request.urlopen(comfy.url + path, timeout=10) as resp:
                        if resp.status != 200:
                            errors.append(f"{path}: {resp.status}")
                except Exception as exc:  # any failure is what this test looks for
                    errors.append(f"{path}: {exc}")
                sent[0] += 1
            time.sleep(0.02)

    started = time.monotonic()
    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        status = comfy.wait_batch(batch_id, timeout=120)
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert status["counts"]["done"] == 40
    print(f"\n[WI] status route: {sent[0]} requests while a 40-cell sweep ran in {time.monotonic() - started:.1f}s, no errors",
          file=sys.stderr)
