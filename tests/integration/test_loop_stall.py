"""Issue 12.5 on a real ComfyUI: no request of ours stalls the server loop.

Before: ``POST /wi/preview`` with one 10,000-value SEED axis blocked every other request for 3-5 s, and
``POST /prompt`` with 20 MB of ``1,`` as INT values blocked ``/queue`` for 41-53 s before answering 400.
``/queue`` is polled every 20 ms while each is sent (bench/loop_stall_bench.py, which holds the strict 100 ms
target); the bound here is generous so a loaded test machine does not fail it, and far below the old stalls.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import loop_stall_bench  # noqa: E402

pytestmark = pytest.mark.integration

BOUND_MS = 1000.0


def test_the_worst_preview_answers_at_once_without_stalling_the_loop(comfy):
    result = loop_stall_bench.measure(comfy.url, loop_stall_bench.post_json(comfy.url, "/wi/preview",
                                                                          loop_stall_bench.worst_preview_body()))
    assert result["status"] == 200
    assert result["max_ms"] < BOUND_MS, result
    assert result["answer_s"] < 5.0, result  # it used to take seconds of grid fitting


def test_the_preview_answer_is_the_hooks_count(comfy):
    code, answer = comfy.post("/wi/preview", loop_stall_bench.worst_preview_body())
    assert code == 200 and answer["count"] == 10_000 and answer["errors"] == []
    assert answer["grid"]["estimated"] is False


def test_a_20_mb_value_text_is_refused_at_once_without_stalling_the_loop(comfy):
    prompt = loop_stall_bench.worst_prompt(20)
    result = loop_stall_bench.measure(comfy.url, loop_stall_bench.post_json(comfy.url, "/prompt", {"prompt": prompt}))
    assert result["status"] == 400
    assert result["max_ms"] < BOUND_MS, result
    assert result["answer_s"] < 10.0, result


def test_the_refusal_names_the_parameter_and_the_limit(comfy):
    code, answer = comfy.post("/prompt", {"prompt": loop_stall_bench.worst_prompt(2)})
    assert code == 400
    text = json.dumps(answer)
    assert 'parameter \\"color\\": too many values: more than 10,000' in text
    assert len(text) < 20_000  # the message quotes a window of the text, not the megabytes
