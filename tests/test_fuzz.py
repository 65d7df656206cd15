"""Property-based fuzzing (hypothesis), CI-sized: the parser, the onprompt hook, the routes and the path helpers.

Each property runs 500-1,800 generated inputs (11,500 in all); the file takes about 25 s of CPU on a 2-core
machine. Every bug fuzzing found is fixed; the input that found it is kept as an ``@example`` of the property
(hypothesis runs those first, every time) and, where it needs explaining, as a named test next to it. No
property ``assume``s inputs away except for limits outside the pack (aiohttp's request-line size).

``handle_prompt`` may answer a body in three ways, all checked: the same object (not a sweep, or it could not
be expanded), a rejection (the prompt replaced by one ``WIPlanError`` node on the iterator's id, no batch), or
an expansion (cell 0 of a new batch, with ``prompt_id``, ``number`` and the ``wi`` re-entry marker).
"""
from __future__ import annotations

import asyncio
import copy
import json
import math
import os
import random
import re
import urllib.parse
from decimal import Decimal, getcontext
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import comfy_standin
from comfyui_workflow_iterator.core import parameter_parser, paths, prompt_graph
from comfyui_workflow_iterator.core.errors import ParamSyntaxError
from comfyui_workflow_iterator.core.iteration_state import IterationStateManager
from comfyui_workflow_iterator.core.sweep import SweepService
from comfyui_workflow_iterator.nodes import _comfy
from test_routes import RouteHarness, sweep_prompt


# WI_FUZZ_SCALE scales every property's example count (tools/mutation.py runs them at 0.1 per mutant); the
# CI run uses the counts as written.
_SCALE = float(os.environ.get("WI_FUZZ_SCALE") or 1.0)


def fuzz(max_examples: int) -> settings:
    return settings(
        max_examples=max(10, round(max_examples * _SCALE)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )


TYPES = parameter_parser.VALUE_TYPES

# ============================================================================================ (a) the parser

_NUMBERS = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from([
        "0", "-0", "+3", ".5", "5.", "1e3", "1E+2", "1e-3", "1e999", "-1e999", "1e-999", "9" * 101, "0x10",
        "1_000", "nan", "inf", "--1", "1.7976931348623157e308", "-1.7976931348623157e308", "4.9e-324",
        "18446744073709551615", "18446744073709551616", "4294967295",
    ]),
)
_SUFFIXES = st.one_of(
    st.just(""),
    st.builds(lambda s: f" (+{s})", _NUMBERS),
    st.builds(lambda s: f" ({s})", _NUMBERS),
    st.builds(lambda s: f"({s})", _NUMBERS),
    st.builds(lambda n: f" [{n}]", st.integers(0, 50)),
    st.builds(lambda n: f" [{n}]", st.sampled_from(["100000", "9" * 120, "-1", "x"])),
)
_FILE_NAMES = st.sampled_from([
    "prompts.txt", "numbers.txt", "binary.txt", "empty.txt", "sub", "sub/inner.txt", "missing.txt", "../outside.txt",
    "/etc/passwd", "link_out.txt", "link_in.txt", "loop", "", "  ", "a\x00b", "C:\\x.txt", "\\\\server\\share",
    "sub/../prompts.txt", "./prompts.txt",
])
_WORDS = st.sampled_from([
    "true", "False", "yes", "NO", "on", "off", "1", "0", "euler", "euler_ancestral", "dpmpp_2m", "*", "*euler*", "?uler",
    "[ab]*", "normal", "karras", "a photo of a cat", "", " ", "\t", "é", "🙂", "\\", "'", '"', "#comment",
])
_ATOMS = st.one_of(
    _NUMBERS,
    _WORDS,
    st.builds(lambda a, b, sep, suf: f"{a}{sep}{b}{suf}", _NUMBERS, _NUMBERS, st.sampled_from(["-", "..", " - ", " .. ", "--", "...", "-+"]), _SUFFIXES),
    st.builds(lambda n: f"random:{n}", st.one_of(st.integers(0, 30).map(str), st.sampled_from(["", "x", "100000", "9" * 120, " 3"]))),
    st.builds(lambda name: f"file:{name}", _FILE_NAMES),
    st.builds(lambda t: '"' + t.replace('"', '""') + '"', st.text(max_size=8)),
    st.sampled_from(['"unterminated', '"a"b', '""', '"a,b"', '"x" , y', "FILE: prompts.txt", "Random:2"]),
    st.text(max_size=6),
)
_SEPARATORS = st.sampled_from([", ", ",", "\n", "\r\n", "\r", ",,", " , ", ";", " ", ",\n"])


@st.composite
def value_texts(draw: Any) -> str:
    atoms = draw(st.lists(_ATOMS, min_size=0, max_size=6))
    out = ""
    for i, atom in enumerate(atoms):
        if i:
            out += draw(_SEPARATORS)
        out += atom
    return out


_PARAM_NAMES = st.text(min_size=1, max_size=12).filter(lambda s: s.strip() != "")
_TYPE_NAMES = st.one_of(st.sampled_from(TYPES), st.sampled_from(["int", " Float ", "string", "bogus", "", "COMBO\n"]))
_OPTIONS = st.one_of(
    st.none(),
    st.just(["euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde", "ddim", "a*b", "?"]),
    st.lists(st.text(max_size=6), max_size=6),
)


@pytest.fixture(scope="module")
def file_root(tmp_path_factory):
    base = tmp_path_factory.mktemp("parser_files")
    root = base / "input"
    (root / "sub").mkdir(parents=True)
    (root / "prompts.txt").write_text("# prompts\na cat\n\na dog, running\n  \"quoted\"  \n", encoding="utf-8")
    (root / "numbers.txt").write_text("1\n2.5\nx\n", encoding="utf-8")
    (root / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    (root / "empty.txt").write_text("\n# only a comment\n", encoding="utf-8")
    (root / "sub" / "inner.txt").write_text("7\n8\n", encoding="utf-8")
    (base / "outside.txt").write_text("secret\n", encoding="utf-8")
    os.symlink(base / "outside.txt", root / "link_out.txt")
    os.symlink(root / "prompts.txt", root / "link_in.txt")
    os.symlink(root / "loop", root / "loop")
    return str(root)


def check_parse(text: str, value_type: str, name: str, options: Any, file_root: str, max_values: int) -> None:
    """The parser's contract for any input: values of the right type, or a ParamSyntaxError naming the parameter."""
    try:
        values = parameter_parser.parse(
            text, value_type, name=name, options=options, file_root=file_root, max_values=max_values, rng=random.Random(1)
        )
    except ParamSyntaxError as exc:
        assert isinstance(exc, ValueError)
        assert exc.param == name
        message = str(exc)
        assert message.startswith(f'parameter "{name}": '), message
        assert exc.message and exc.message in message
        if exc.position is not None:
            assert 0 <= exc.position <= len(text)
        return
    kind = value_type.strip().upper()
    assert kind in TYPES
    assert 1 <= len(values) <= max_values
    for value in values:
        if kind in ("INT", "SEED"):
            assert type(value) is int
            if kind == "SEED":
                assert 0 <= value <= parameter_parser.SEED_MAX
        elif kind == "FLOAT":
            assert type(value) is float and math.isfinite(value)
        elif kind == "BOOLEAN":
            assert type(value) is bool
        elif kind == "BUNDLE":  # each value sets several inputs: typed later, against its targets (issue 16)
            assert type(value) is parameter_parser.Preset and value.assignments
        else:
            assert type(value) is str
    if kind == "COMBO" and options is not None:
        assert all(v in [str(o) for o in options] for v in values)


@fuzz(1500)
@given(text=st.text(max_size=60), value_type=_TYPE_NAMES, name=_PARAM_NAMES, options=_OPTIONS, max_values=st.sampled_from([1, 3, 50, 10_000]))
def test_parse_arbitrary_text_raises_only_named_param_errors(file_root, text, value_type, name, options, max_values):
    check_parse(text, value_type, name, options, file_root, max_values)


@fuzz(1800)
@given(text=value_texts(), value_type=_TYPE_NAMES, name=_PARAM_NAMES, options=_OPTIONS, max_values=st.sampled_from([1, 3, 50, 10_000]))
@example(text="0..1e308 (+1e-308)", value_type="FLOAT", name="cfg", options=None, max_values=10_000)
@example(text="1-1000000000", value_type="INT", name="n", options=None, max_values=10_000)
@example(text="random:10001", value_type="SEED", name="s", options=None, max_values=10_000)
@example(text="file:loop, file:link_out.txt", value_type="STRING", name="p", options=None, max_values=10_000)
@example(text="0..1e-320 [3]", value_type="FLOAT", name="f", options=None, max_values=10_000)
@example(text='"' + "x" * 140_000 + '"', value_type="STRING", name="big", options=None, max_values=10_000)
def test_parse_value_syntax_raises_only_named_param_errors(file_root, text, value_type, name, options, max_values):
    check_parse(text, value_type, name, options, file_root, max_values)


def test_file_lists_never_leave_the_input_folder(file_root):
    for name in ("link_out.txt", "../outside.txt", "/etc/passwd", "sub/../../outside.txt", "loop", "C:\\x.txt"):
        with pytest.raises(ParamSyntaxError) as info:
            parameter_parser.parse(f"file:{name}", "STRING", name="p", file_root=file_root)
        assert str(info.value).startswith('parameter "p": ') and "secret" not in str(info.value)
    assert parameter_parser.parse("file:link_in.txt", "STRING", name="p", file_root=file_root) == [
        "a cat", "a dog, running", '"quoted"'
    ]


def _float_overflow_text() -> str:
    getcontext().prec = 40
    top = Decimal("1.7976931348623157e308")
    step = (2 * top) / (Decimal(3) - Decimal("1e-10"))  # 3 steps land 1e-10 of a step past the end
    return f"-1.7976931348623157e308..1.7976931348623157e308 (+{step:.25e})"


def test_float_range_ending_at_the_float_maximum_does_not_overflow():
    values = parameter_parser.parse(_float_overflow_text(), "FLOAT", name="cfg")
    assert len(values) == 4 and values[-1] == 1.7976931348623157e308


# ============================================================================================ (b) the onprompt hook

_JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=6,
)
_NODE_IDS = st.sampled_from(["1", "2", "3", "4", "5", "6", "7", "10"])
_CLASSES = st.sampled_from([
    "WIIterator", "WIIterator", "WIParameter", "WIParameterInt", "WIParameterFloat", "WIParameterString",
    "WIParameterBoolean", "WIParameterCombo", "WIParameterSeed", "EmptyImage", "ImageScale", "WISaveImage",
    "SaveImage", "WIGridCompositor", "WIPlanError", "Unknown",
])
_LINKS = st.builds(lambda n, slot: [n, slot], _NODE_IDS, st.sampled_from([0, 1, 1, 2, -1]))
_INPUT_VALUES = st.one_of(
    _LINKS, value_texts(), _JSON_SCALARS, _JSON, st.sampled_from(["matrix", "linear", "Matrix ", "diagonal", "error", "cycle"]),
    st.sampled_from(["KSampler.cfg", "4.width; 4.height", "EmptyImage.width", "5.missing", ".x", "nothing", "#4.color"]),
    st.sampled_from(TYPES),
)
_INPUT_NAMES = st.sampled_from([
    "name", "values", "type", "target", "previous", "parameters", "enabled", "mode", "batch_name", "unequal_lengths",
    "width", "height", "batch_size", "color", "images", "filename_prefix", "upscale_method", "crop", "image",
    "columns", "format", "label_font_size", "max_megapixels",
])
_NODES = st.one_of(
    st.fixed_dictionaries(
        {"class_type": _CLASSES, "inputs": st.dictionaries(_INPUT_NAMES, _INPUT_VALUES, max_size=4)},
        optional={"_meta": st.one_of(st.fixed_dictionaries({"title": st.text(max_size=8)}), _JSON)},
    ),
    st.fixed_dictionaries({"class_type": st.one_of(_CLASSES, _JSON), "inputs": _JSON}),
    _JSON,
)
_PROMPTS = st.one_of(st.dictionaries(_NODE_IDS, _NODES, max_size=6), _JSON)


@st.composite
def mutated_sweeps(draw: Any) -> dict:
    """A valid sweep with a few of its nodes or inputs replaced: reaches planning and expansion more often."""
    values = st.one_of(value_texts(), st.sampled_from(["1, 2", "1-3", "8", "2..6 (+2)", "1, 1", "0, 1", "4 [2]"]))
    prompt = sweep_prompt(draw(values), draw(values), mode=draw(st.sampled_from(["matrix", "linear", "zigzag"])))
    if draw(st.booleans()):
        prompt["6"] = {"class_type": "WIGridCompositor", "inputs": draw(st.dictionaries(_INPUT_NAMES, _INPUT_VALUES, max_size=3))}
    for _ in range(draw(st.integers(0, 4))):
        node_id = draw(st.sampled_from(sorted(prompt) + ["7", "8"]))
        action = draw(st.integers(0, 4))
        node = prompt.get(node_id)
        if action == 0 or not isinstance(node, dict):
            prompt[node_id] = draw(_NODES)
        elif action == 1 and isinstance(node.get("inputs"), dict):
            node["inputs"][draw(_INPUT_NAMES)] = draw(_INPUT_VALUES)
        elif action == 2 and isinstance(node.get("inputs"), dict):
            node["inputs"]["previous"] = draw(_LINKS)  # cycles, self-links, links to non-parameters
        elif action == 3:
            node["class_type"] = draw(_CLASSES)
        else:
            prompt.pop(node_id, None)
    return prompt


_BODIES = st.one_of(
    _JSON,
    st.fixed_dictionaries(
        {"prompt": st.one_of(_PROMPTS, mutated_sweeps(), mutated_sweeps(), mutated_sweeps())},
        optional={
            "client_id": st.one_of(st.text(max_size=6), _JSON_SCALARS),
            "number": st.one_of(st.integers(-5, 5), st.floats(-10, 10), st.sampled_from(["3", "1.5", " 2 "])),
            "front": _JSON_SCALARS,
            "prompt_id": st.one_of(st.text(max_size=8), st.integers(), st.none()),
            "extra_data": st.one_of(
                _JSON, st.fixed_dictionaries({"extra_pnginfo": _JSON}), st.fixed_dictionaries({"wi": _JSON})
            ),
            "partial_execution_targets": _JSON,
        },
    ),
)


@pytest.fixture(scope="module")
def hook_host(tmp_path_factory):
    """The stand-in ComfyUI and one host over it; each example gets a fresh manager and service."""
    with pytest.MonkeyPatch.context() as mp:
        loop = asyncio.new_event_loop()
        server = comfy_standin.install(mp, loop, tmp_path=tmp_path_factory.mktemp("hook"))
        host = _comfy.ComfyHost(server)
        host.run_background = lambda fn, *a: fn(*a)  # pre-flight inline, deterministic
        yield host
        host._executor.shutdown(wait=False)
        loop.close()


def _batches_after_start(loop: asyncio.AbstractEventLoop, manager: IterationStateManager) -> list:
    """The batch record is created by a task the hook schedules (so the hook stays O(1)): let it run, then
    stop it (no ComfyUI will ever accept these prompts) and list what exists."""
    for _ in range(3):
        loop.run_until_complete(asyncio.sleep(0))
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    return manager.list_batches()


def check_handle_prompt(host: Any, body: Any) -> None:
    manager = IterationStateManager()
    service = SweepService(manager, host, max_values=200, max_combinations=200)
    before = copy.deepcopy(body)
    result = service.handle_prompt(body)  # must not raise
    assert body == before, "handle_prompt mutated the submitted body"
    batches = _batches_after_start(host.loop, manager)
    if not isinstance(body, dict) or not isinstance(body.get("prompt"), dict):
        assert result is body
        assert batches == []
        return
    assert isinstance(result, dict)
    if result is body:
        assert batches == [], "a batch was created but the body was queued unchanged"
        return
    assert set(body) - {"prompt", "prompt_id", "number", "extra_data"} <= set(result)
    prompt = result["prompt"]
    assert isinstance(prompt, dict)
    extra = result.get("extra_data")
    if not (isinstance(extra, dict) and prompt_graph.REENTRY_KEY in extra):
        # A rejected sweep: only the error node is left, on the iterator's id, so ComfyUI queues nothing.
        ((node_id, node),) = prompt.items()
        assert node["class_type"] == prompt_graph.PLAN_ERROR_CLASS and isinstance(node["inputs"]["message"], str)
        assert body["prompt"][node_id]["class_type"] == prompt_graph.ITERATOR_CLASS
        assert batches == []
        return
    # An expanded sweep: cell 0 of a new batch, numbered, tagged, JSON-ready.
    assert isinstance(result["prompt_id"], str) and result["prompt_id"]
    assert isinstance(result["number"], float)
    assert result["prompt"] is not body["prompt"]
    info = result["extra_data"][prompt_graph.REENTRY_KEY]
    assert info["index"] == 0
    (summary,) = batches
    assert summary["batch_id"] == info["batch_id"] and 1 <= summary["total"] <= 200
    assert result["extra_data"]["extra_pnginfo"][prompt_graph.CELL_INFO_KEY]["batch_id"] == info["batch_id"]
    json.dumps(result)
    assert service.handle_prompt(result) is result  # never expanded twice


@fuzz(1500)
@given(body=_BODIES)
@example(body={"prompt": sweep_prompt(), "extra_data": "not a dict", "client_id": 5})
@example(body={"prompt": {"3": {"class_type": "WIIterator", "inputs": [1, 2]}}})
@example(body={"prompt": {"3": {"class_type": "WIIterator", "inputs": {"parameters": ["3", 0]}}}})
@example(body={"prompt": {**sweep_prompt(), "7": {"class_type": "WIIterator", "inputs": {"enabled": "yes"}}}})
@example(body={"prompt": sweep_prompt("1, 2", "10"), "number": "soon"})
def test_handle_prompt_never_raises_and_answers_a_well_formed_body(hook_host, body):
    check_handle_prompt(hook_host, body)


def test_unparseable_number_leaves_no_orphan_batch(hook_host):
    check_handle_prompt(hook_host, {"prompt": sweep_prompt("1, 2", "10"), "number": "soon"})


# ============================================================================================ (c) the routes


@pytest.fixture(scope="module")
def route_harness(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        harness = RouteHarness(mp, tmp_path_factory.mktemp("routes"))
        status, _ = harness.post_prompt({"prompt": sweep_prompt("1, 2, 3", "10, 20")})
        assert status == 200
        yield harness
        harness.close()


def _check_response(status: int, body: Any, text: str) -> None:
    assert status != 500 and status < 500, text
    if status >= 400:
        assert isinstance(body, dict) and set(body) == {"error", "detail"}, (status, text)


_PARAM_OBJECTS = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(_PARAM_NAMES, _JSON_SCALARS),
        "type": st.one_of(_TYPE_NAMES, _JSON_SCALARS),
        "values": st.one_of(value_texts(), _JSON),
        "options": st.one_of(_OPTIONS, _JSON),
        "node_id": _JSON_SCALARS,
    },
)
_PREVIEW_BODIES = st.one_of(
    _JSON,
    st.fixed_dictionaries(
        {"parameters": st.one_of(st.lists(st.one_of(_PARAM_OBJECTS, _PARAM_OBJECTS, _JSON), max_size=4), _JSON)},
        optional={
            "mode": st.one_of(st.sampled_from(["matrix", "linear", "MATRIX", ""]), _JSON_SCALARS),
            "image_size": st.one_of(st.lists(st.integers(-5, 100_000), max_size=3), _JSON),
            "grid": st.one_of(st.dictionaries(_INPUT_NAMES, _INPUT_VALUES, max_size=4), _JSON),
            "unequal_lengths": _JSON_SCALARS,
        },
    ),
)
_RAW_BODIES = st.one_of(
    _PREVIEW_BODIES.map(lambda b: json.dumps(b).encode()),
    st.binary(max_size=64),
    st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"", b"null", b"NaN", b"[", b"{" * 50, b'{"parameters": [' * 30, b"\x00", b"\xef\xbb\xbf{}"]),
)


@fuzz(1000)
@given(raw=_RAW_BODIES)
@example(raw=b"[" * 5000)  # deep enough for json.loads to raise RecursionError
def test_preview_never_answers_500(route_harness, raw):
    status, body, text = route_harness.post("/wi/preview", data=raw, headers={"Content-Type": "application/json"})
    _check_response(status, body, text)
    if status == 200:
        assert isinstance(body["count"], int) and body["count"] >= 0
        assert isinstance(body["axes"], list) and isinstance(body["errors"], list)


_VALID_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


@fuzz(1000)
@given(
    batch_id=st.one_of(
        st.text(min_size=1, max_size=30),
        st.text(alphabet="abc_-.%/\\", min_size=1, max_size=8),
        st.from_regex(_VALID_ID, fullmatch=True),
        st.sampled_from(["..", ".", "...", "..%2F..", "%2e%2e", "a" * 101, "routes_00000000"]),
    ),
    method=st.sampled_from(["GET /wi/status/", "POST /wi/cancel_batch/", "POST /wi/resume/"]),
    quote=st.booleans(),
)
def test_batch_routes_never_answer_500(route_harness, batch_id, method, quote):
    verb, prefix = method.split(" ")
    raw_id = urllib.parse.quote(batch_id, safe="") if quote else urllib.parse.quote(batch_id, safe="%/")
    status, body, text = route_harness.request(verb, prefix + raw_id)
    assert status < 500, text
    if body is not None or status not in (404, 405):
        # Reached our handler: JSON, and only a well-formed id can be anything but 404.
        _check_response(status, body, text)
        if status != 200:
            assert status in (404, 409)
        else:
            assert _VALID_ID.match(urllib.parse.unquote(raw_id))
    # Anything else is aiohttp's own "no such route" (the id normalised away, or a '/' or '{' in it).


_QUERY_VALUES = st.one_of(
    st.integers(-10, 10**10).map(str), st.text(max_size=12), st.sampled_from(["", " 5 ", "1_0", "٥", "0x10", "1e3", "9" * 4400])
)


@fuzz(500)
@given(query=st.dictionaries(st.sampled_from(["limit", "offset", "page", ""]), _QUERY_VALUES, max_size=3))
def test_history_paging_never_answers_500(route_harness, query):
    path = "/wi/batches?" + urllib.parse.urlencode(query)
    assume(len(path) < 8000)  # aiohttp itself refuses request lines over 8190 bytes (a plain-text 400)
    status, body, text = route_harness.get(path)
    _check_response(status, body, text)
    assert status in (200, 400)
    if status == 200:
        assert body["batches"] == [] and 1 <= body["limit"] <= 500 and body["offset"] >= 0


def test_real_batch_id_through_the_routes(route_harness):
    batch_id = route_harness.manager.list_batches()[-1]["batch_id"]
    status, body, _ = route_harness.get(f"/wi/status/{batch_id}")
    assert status == 200 and body["batch_id"] == batch_id


# ============================================================================================ (d) paths

_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_HOSTILE = st.one_of(
    st.text(max_size=80),
    st.text(alphabet="./\\\x00 :_-aCoNnUlLPT1$*?<>|\"'\t\n", max_size=30),
    st.builds(
        lambda name, ext, case: (name.lower() if case else name) + ext,
        st.sampled_from(sorted(_RESERVED) + ["CONIN$", "CONOUT$", "COM0", "LPT0", "CLOCK$"]),
        st.sampled_from(["", ".txt", ".tar.gz", ".", "..", " ", " .png", "  ", "_"]),
        st.booleans(),
    ),
    st.sampled_from(["..", ".", "...", "../..", "/", "\\", "C:", "C:\\Windows", "\x00", "", " ", "~", "a/../../b", "//x"]),
    st.integers(),
    st.floats(),
    st.none(),
)


def _assert_safe_name(name: str, *, max_length: int) -> None:
    assert isinstance(name, str) and name
    assert len(name) <= max_length, (len(name), name)
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert name not in (".", "..") and not name.startswith(".")
    assert re.fullmatch(r"[A-Za-z0-9._-]+", name), name
    assert name.split(".")[0].upper() not in _RESERVED, name
    assert name.rstrip(". ").split(".")[0].upper() not in _RESERVED, name


@fuzz(1500)
@given(text=_HOSTILE, max_length=st.sampled_from([1, 3, 4, 8, 16, 24, 64]))
@example(text="CON", max_length=3)  # a reserved name at the limit: its "_" prefix once pushed it past
@example(text="LPT1.txt" + "x" * 100, max_length=8)
def test_safe_component_is_one_safe_bounded_name(text, max_length):
    name = paths.safe_component(text, max_length=max_length)
    _assert_safe_name(name, max_length=max_length)


def test_safe_component_reserved_name_respects_max_length():
    assert len(paths.safe_component("CON." + "x" * 100)) <= paths.MAX_COMPONENT
    assert len(paths.safe_component("nul", max_length=3)) <= 3


@fuzz(800)
@given(prefix=st.one_of(_HOSTILE, st.lists(_HOSTILE.map(str), max_size=8).map("/".join), st.lists(_HOSTILE.map(str), max_size=8).map("\\".join)))
@example(prefix="a/NUL." + "x" * 200 + "/CON")
def test_safe_subfolder_is_relative_and_never_climbs(prefix):
    folder = paths.safe_subfolder(prefix)
    assert folder and "\x00" not in folder and "\\" not in folder
    assert not folder.startswith("/") and not os.path.isabs(folder)
    parts = folder.split("/")
    assert 1 <= len(parts) <= 4
    for part in parts:
        _assert_safe_name(part, max_length=paths.MAX_COMPONENT)
    assert os.path.normpath(folder) == folder  # nothing to collapse: no '.', '..' or empty parts


@fuzz(500)
@given(prefix=_HOSTILE, batch_id=_HOSTILE)
@example(prefix="COM1." + "x" * 100 + "/PRN", batch_id="AUX." + "x" * 200)
def test_batch_subfolder_is_safe(prefix, batch_id):
    folder = paths.batch_subfolder(prefix, str(batch_id))
    parts = folder.split("/")
    assert 2 <= len(parts) <= 5
    for part in parts:
        _assert_safe_name(part, max_length=paths.MAX_COMPONENT)
    assert os.path.normpath(folder) == folder


@fuzz(600)
@given(
    index=st.integers(0, 10**6),
    values=st.dictionaries(_HOSTILE.map(str), _HOSTILE, max_size=6),
    image_number=st.integers(0, 9999),
    node_id=_HOSTILE,
)
def test_cell_filename_is_one_safe_png_name(index, values, image_number, node_id):
    name = paths.cell_filename(index, values, image_number, node_id=node_id)
    assert len(name) <= 120, name
    assert name.endswith(f"_{image_number}.png") and name.startswith(f"c{index:05d}")
    assert "/" not in name and "\\" not in name and "\x00" not in name and name not in (".", "..")
    assert re.fullmatch(r"[A-Za-z0-9._-]+", name), name
    assert name.split(".")[0].upper() not in _RESERVED


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    base = tmp_path_factory.mktemp("resolve")
    root = base / "root"
    (root / "a" / "b").mkdir(parents=True)
    (base / "outside").mkdir()
    (base / "rootsibling").mkdir()  # shares a string prefix with "root"
    os.symlink(base / "outside", root / "link_out")
    os.symlink(root / "a", root / "link_in")
    os.symlink("../../outside", root / "a" / "rel_out")
    os.symlink("/", root / "slash")
    os.symlink(root / "cycle", root / "cycle")
    os.symlink(base / "missing", root / "dangling_out")
    return base, root


_PARTS = st.sampled_from([
    "a", "b", "a/b", "..", ".", "../..", "../outside", "../rootsibling", "link_out", "link_in", "rel_out", "slash",
    "cycle", "dangling_out", "new.png", "", "/", "//", "/etc", "x/../..", "a/./../..", "~", "link_in/../../outside",
])


@fuzz(800)
@given(parts=st.lists(st.one_of(_PARTS, st.text(alphabet="ab./", max_size=6)), min_size=1, max_size=4), absolute=st.sampled_from([None, "inside", "outside", "root"]))
def test_resolve_inside_refuses_every_escape(sandbox, parts, absolute):
    base, root = sandbox
    parts = list(parts)
    if absolute == "inside":
        parts.insert(0, str(root / "a"))
    elif absolute == "outside":
        parts.insert(0, str(base / "outside"))
    elif absolute == "root":
        parts.insert(0, str(root))
    real_root = os.path.realpath(root)
    expected = os.path.realpath(os.path.join(real_root, *parts))
    inside = expected == real_root or expected.startswith(real_root + os.sep)
    try:
        result = paths.resolve_inside(str(root), *parts)
    except ValueError:
        assert not inside, (parts, expected)
        return
    assert inside, (parts, result)
    assert result == expected
    assert os.path.commonpath([real_root, result]) == real_root


def test_resolve_inside_named_escapes(sandbox):
    base, root = sandbox
    for parts in (("..",), ("link_out",), ("link_out", "x.png"), ("a", "rel_out"), ("slash", "etc"), (str(base / "outside"),),
                  ("../rootsibling",), ("dangling_out",), ("link_in", "..", "..", "outside")):
        with pytest.raises(ValueError):
            paths.resolve_inside(str(root), *parts)
    with pytest.raises(ValueError):
        paths.resolve_inside(str(root), "a\x00b")  # NUL: refused, never truncated to "a"
    assert paths.resolve_inside(str(root), "link_in", "b") == os.path.realpath(root / "a" / "b")
    assert paths.resolve_inside(str(root), "a", "..", "new.png") == os.path.realpath(root / "new.png")


# Named examples of the path helpers, pinned exactly: the properties above check that every answer is safe,
# these that the safe answer is also the expected one (a helper answering "WI" to everything would be safe).
@pytest.mark.parametrize(("prefix", "expected"), [
    ("sweeps/portraits", "sweeps/portraits"),
    ("../a/./b//c", "a/b/c"),
    ("a\\b", "a/b"),
    ("..", "WI"),
    ("/abs/olute", "abs/olute"),
    ("1/2/3/4/5/6", "1/2/3/4"),  # at most four levels
])
def test_safe_subfolder_keeps_the_users_folders(prefix, expected):
    assert paths.safe_subfolder(prefix) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("COM9", "_COM9"), ("COM10", "COM10"), ("lpt1.txt", "_lpt1.txt"), ("LPT10", "LPT10"), ("nul", "_nul"),
    ("a b/c", "a_b_c"), ("..hidden", "hidden"), ("", "x"),
    ("y" * 100, "y" * 64),  # components are cut at 64 characters
])
def test_safe_component_named_examples(text, expected):
    assert paths.safe_component(text) == expected


def test_cell_filename_is_cut_to_its_length_but_keeps_index_node_and_image_number():
    name = paths.cell_filename(7, {"prompt": "p" * 300}, 2, node_id="20")
    assert name == "c00007_prompt-" + "p" * 24 + "_n20_2.png"  # a key keeps 16 characters, a value 24
    long = paths.cell_filename(7, {f"k{i}" * 9: "v" * 22 for i in range(5)}, 2, node_id="20")
    # The label stops at the length limit less room for the node and image parts (120 - 3 - 12 = 105); the
    # cut lands inside a value, so a budget one off either way shows.
    full = "c00007_" + "_".join(f"{f'k{i}' * 8}-{'v' * 22}" for i in range(5))
    assert full[104] == "v" and full[103] == "-"
    assert long == full[:105] + "_n20_2.png" and len(long) <= paths.MAX_CELL_FILENAME
    assert paths.cell_filename(3, {}, 0, node_id="20") == "c00003_n20_0.png"
