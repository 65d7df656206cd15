"""A schemathesis fuzz of every described /wi/ route against a real ComfyUI (both backends): no 500s, and
every answer within core/openapi.py's description. tests/test_openapi.py runs the same fuzz, with more
examples, against the stand-in app."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks as st_checks

from comfyui_workflow_iterator.core import openapi

pytestmark = pytest.mark.integration

CHECKS = [st_checks.not_a_server_error, st_checks.status_code_conformance, st_checks.content_type_conformance,
          st_checks.response_schema_conformance]
EXAMPLES = 15  # per operation: about a minute on the 2-core test machine for both backends


def test_fuzz_every_route_against_the_real_comfyui(comfy):
    schema = schemathesis.openapi.from_dict(openapi.document())
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=comfy.url, checks=CHECKS, timeout=30)

        try:
            fuzz()
        except Exception as exc:  # collected: one report naming every operation that failed
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures) + "\n" + comfy.log_tail()
