"""core/openapi.py stays true: every /wi/ route registered is described (and nothing else), real answers
validate against the described schemas, and a schemathesis fuzz of every route finds no 500 and no answer
outside the description.

The fuzz runs against the aiohttp app with the ComfyUI stand-in (tests/comfy_standin.py) served on a real
port from a thread, not against a real ComfyUI: the handlers are the same code, and it takes seconds.
"""
from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis import checks as st_checks

from api_harness import ApiHarness, ServedHarness, plain_prompt, sweep_body
from comfyui_workflow_iterator.core import openapi

DOC = openapi.document()


def _validator(schema_name_or_schema: Any) -> Any:
    schema = schema_name_or_schema
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "components": DOC["components"]}
    return jsonschema_rs.validator_for(root)


def response_schema(method: str, path: str, status: int) -> Any:
    responses = DOC["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} answered {status}, which is not described"
    content = responses[str(status)].get("content", {})
    return content.get("application/json", {}).get("schema")


@pytest.fixture
def ah(monkeypatch, tmp_path):
    harness = ApiHarness(monkeypatch, tmp_path)
    yield harness
    harness.close()


def test_every_registered_wi_route_is_described_and_nothing_else(ah):
    registered = {(route.method, route.path) for route in ah.table if route.path.startswith("/wi/")}
    assert registered, "no /wi/ route registered"
    assert registered == openapi.operations()


def test_the_document_is_served_and_is_openapi_3_1(ah):
    status, body, _ = ah.request("GET", "/wi/openapi.json")
    assert status == 200 and body == DOC
    assert body["openapi"].startswith("3.1")
    # Every $ref points at a described schema.
    text = json.dumps(body)
    for name in {part.split('"')[0] for part in text.split("#/components/schemas/")[1:]}:
        assert name in body["components"]["schemas"], name


def _check(ah: ApiHarness, method: str, path: str, template: str, **kwargs: Any) -> tuple[int, Any]:
    status, body, text = ah.request(method, path, **kwargs)
    ah.settle()
    schema = response_schema(method, template, status)
    if schema is not None:
        errors = [str(e) for e in _validator(schema).iter_errors(body)]
        assert not errors, (method, path, status, errors, text[:500])
    return status, body


def test_real_answers_validate_against_their_schemas(ah):
    status, created = _check(ah, "POST", "/wi/batches", "/wi/batches", json=sweep_body(grid={}, idempotency_key="a"))
    assert status == 201
    batch_id = created["batch_id"]
    assert _check(ah, "POST", "/wi/batches", "/wi/batches", json=sweep_body(grid={}, idempotency_key="a"))[0] == 200
    assert _check(ah, "POST", "/wi/batches", "/wi/batches", json=sweep_body(dry_run=True))[0] == 200
    assert _check(ah, "POST", "/wi/batches", "/wi/batches", json={"prompt": plain_prompt(), "axes": [
        {"target": "EmptyImage.width", "values": "1, x"}]})[0] == 400
    assert _check(ah, "POST", "/wi/batches", "/wi/batches", json=sweep_body(axes=[
        {"target": "EmptyImage.width", "values": "0"}]))[0] == 400
    assert _check(ah, "GET", "/wi/status", "/wi/status")[0] == 200
    assert _check(ah, "GET", f"/wi/status/{batch_id}?limit=2", "/wi/status/{batch_id}")[0] == 200
    assert _check(ah, "GET", "/wi/status/nope", "/wi/status/{batch_id}")[0] == 404
    assert _check(ah, "GET", f"/wi/status/{batch_id}?limit=x", "/wi/status/{batch_id}")[0] == 400
    assert _check(ah, "GET", "/wi/batches", "/wi/batches")[0] == 200
    assert _check(ah, "POST", "/wi/preview", "/wi/preview", json={"parameters": [
        {"name": "a", "type": "INT", "values": "1-3"}]})[0] == 200
    assert _check(ah, "POST", "/wi/preview", "/wi/preview", json={"nope": 1})[0] == 400
    ah.server.run_next()
    ah.settle()
    assert _check(ah, "POST", f"/wi/cancel_batch/{batch_id}", "/wi/cancel_batch/{batch_id}")[0] == 200
    assert _check(ah, "POST", f"/wi/cancel_batch/{batch_id}", "/wi/cancel_batch/{batch_id}")[0] == 409
    assert _check(ah, "POST", "/wi/resume/nope", "/wi/resume/{batch_id}")[0] == 404
    assert _check(ah, "GET", f"/wi/batch/{batch_id}/batch.json", "/wi/batch/{batch_id}/{filename}")[0] == 404
    assert _check(ah, "GET", f"/wi/batches/{batch_id}/events", "/wi/batches/{batch_id}/events")[0] == 200
    # A finished batch's detail, with cells that ran.
    done = _check(ah, "POST", "/wi/batches", "/wi/batches", json=sweep_body())[1]
    ah.run_all()
    assert _check(ah, "GET", f"/wi/status/{done['batch_id']}", "/wi/status/{batch_id}")[1]["state"] == "complete"


# ------------------------------------------------------------------------------------------ fuzz
@pytest.fixture(scope="module")
def served():
    monkeypatch = pytest.MonkeyPatch()
    import tempfile

    tmp = tempfile.TemporaryDirectory()
    try:
        running = ServedHarness(lambda: ApiHarness(monkeypatch, tmp.name, keep_alive_s=0.05))
        assert running.harness is not None
        yield running.harness.base_url
        running.close()
    finally:
        monkeypatch.undo()
        tmp.cleanup()


schema = schemathesis.openapi.from_dict(DOC)
FUZZ_CHECKS = [st_checks.not_a_server_error, st_checks.status_code_conformance,
               st_checks.content_type_conformance, st_checks.response_schema_conformance]


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_routes_answer_within_their_description(case, served):
    case.call_and_validate(base_url=served, checks=FUZZ_CHECKS, timeout=30)


NEGATIVE_OPERATIONS = sorted(f"{method.upper()} {path}" for path, item in DOC["paths"].items() for method, op in item.items()
                             if op.get("parameters") or op.get("requestBody"))


@pytest.mark.parametrize("operation_name", NEGATIVE_OPERATIONS)
def test_fuzz_invalid_input_is_refused_without_a_server_error(operation_name, served):
    """Schema-violating parameters and bodies (schemathesis' negative mode) get a described 4xx, never a 500."""
    method, path = operation_name.split(" ", 1)
    operation = schema[path][method]

    @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=served, checks=FUZZ_CHECKS, timeout=30)

    fuzz()
