"""The OpenAPI 3.1 description of every ``/wi/`` route, served at ``GET /wi/openapi.json``.

Owns the wire contract of the HTTP routes: their paths, parameters, bodies and answers, as JSON Schema.
tests/test_openapi.py checks that every route ``nodes/routes.py`` and ``nodes/api_routes.py`` register is
described here (and nothing else), that real answers validate, and fuzzes the routes against it.

ComfyUI serves every route under ``/api`` too (``/api/wi/...``); the description names the short form.

Plain Python: must not import torch, comfy*, server, nodes, execution, folder_paths, comfy_execution, aiohttp.
"""
from __future__ import annotations

import copy
from typing import Any

from .states import BatchStatus, CellStatus

__all__ = ["document", "operations"]

_NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}
_NUMBER_OR_NULL: dict[str, Any] = {"type": ["number", "null"]}
CELL_STATUSES = [status.value for status in CellStatus]  # the one state module's, so they cannot drift
BATCH_STATES = [state.value for state in BatchStatus]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Bad input (the detail names what was wrong)", 404: "Unknown batch or file",
            409: "The batch already finished", 413: "Request body too large", 502: "ComfyUI did not start the sweep"}
    return {str(code): _json(_ref("Error"), text[code]) for code in codes}


_BATCH_ID = {"name": "batch_id", "in": "path", "required": True, "description": "A batch id (from POST /wi/batches "
             "or /wi/status)", "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,100}$"}}


def _query_int(name: str, low: int, high: int, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": "integer", "minimum": low, "maximum": high}}


_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error", "detail"],
        "properties": {
            "error": {"type": "string"}, "detail": {"type": "string"},
            "errors": {"type": "array", "items": _ref("AxisError")},
            "node_errors": {"type": "object"},
        },
    },
    "AxisError": {
        "type": "object", "required": ["message"],
        "properties": {"axis": {"type": ["integer", "null"]}, "param": _NULLABLE_STRING, "message": {"type": "string"}},
    },
    "Counts": {
        "type": "object", "required": ["total", "done", "failed", "cancelled", "pending", "running"],
        "properties": {k: {"type": "integer", "minimum": 0}
                       for k in ("total", "done", "failed", "cancelled", "pending", "running", "skipped")},
    },
    "Axis": {
        "type": "object", "required": ["name", "type", "values", "labels"],
        "properties": {"name": {"type": "string"}, "type": {"type": "string"}, "target": {"type": "string"},
                       "values": {"type": "array"}, "labels": {"type": "array", "items": {"type": "string"}}},
    },
    "FileRef": {
        "type": "object", "required": ["filename"],
        "properties": {"filename": {"type": "string"}, "subfolder": {"type": "string"}, "type": {"type": "string"}},
    },
    "Cell": {
        "type": "object", "required": ["index", "status"],
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "coords": {"type": "array", "items": {"type": "integer"}},
            "values": {"type": "object"},
            "status": {"type": "string", "enum": CELL_STATUSES},
            "error": _NULLABLE_STRING, "prompt_id": _NULLABLE_STRING,
            "files": {"type": "array", "items": _ref("FileRef")},
            "started_at": _NUMBER_OR_NULL, "ended_at": _NUMBER_OR_NULL,
            "worker": _NULLABLE_STRING,
        },
    },
    "BatchSummary": {
        "type": "object", "required": ["batch_id", "state", "total", "counts"],
        "properties": {
            "batch_id": {"type": "string"}, "batch_name": {"type": "string"}, "mode": {"type": "string"},
            "state": {"type": "string", "enum": BATCH_STATES}, "created_at": _NUMBER_OR_NULL,
            "updated_at": _NUMBER_OR_NULL, "client_id": _NULLABLE_STRING, "total": {"type": "integer", "minimum": 0},
            "counts": _ref("Counts"), "grid": {"type": ["object", "null"]},
            "warnings": {"type": "array", "items": {"type": "string"}}, "meta": {"type": ["object", "null"]},
            "timings": {"type": "object"},
        },
    },
    "BatchDetail": {
        "allOf": [_ref("BatchSummary"), {
            "type": "object",
            "properties": {
                "axes": {"type": "array", "items": _ref("Axis")},
                "cells": {"type": "array", "items": _ref("Cell")},
                "cells_page": {"type": "object", "required": ["offset", "count", "total"],
                               "properties": {k: {"type": "integer", "minimum": 0} for k in ("offset", "count", "total")}},
                "cell_statuses": {"type": "string", "description": "One character per cell: q r d f c (s: skipped)"},
                "workers": {"type": "object"},
            },
        }],
    },
    "History": {
        "type": "object", "required": ["batches", "total", "limit", "offset"],
        "properties": {"batches": {"type": "array", "items": {"type": "object"}}, "total": {"type": "integer"},
                       "limit": {"type": "integer"}, "offset": {"type": "integer"}},
    },
    "Resumed": {
        "type": "object", "required": ["batch_id", "state", "queued", "already_saved"],
        "properties": {"batch_id": {"type": "string"}, "state": {"type": "string"},
                       "queued": {"type": "integer"}, "already_saved": {"type": "integer"}},
    },
    "Cancelled": {
        "type": "object", "required": ["batch_id", "state", "removed", "interrupting"],
        "properties": {"batch_id": {"type": "string"}, "state": {"const": "cancelled"},
                       "removed": {"type": "array", "items": {"type": "string"}}, "interrupting": _NULLABLE_STRING},
    },
    "PreviewRequest": {
        "type": "object", "required": ["parameters"],
        "properties": {
            "parameters": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "type": {"type": "string"}, "values": {"type": "string"},
                "options": {"type": "array", "items": {"type": "string"}}, "node_id": {"type": ["string", "integer"]}}}},
            "mode": {"type": "string"}, "unequal_lengths": {"type": "string"},
            "image_size": {"type": "array", "items": {"type": "integer"}}, "grid": {"type": "object"},
        },
    },
    "Preview": {
        "type": "object", "required": ["count", "combinations", "limit", "axes", "errors", "refusal"],
        "properties": {
            "count": {"type": "integer"}, "combinations": {"type": "integer"}, "limit": {"type": "integer"},
            "axes": {"type": "array", "items": {"type": "object", "required": ["name", "count"]}},
            "errors": {"type": "array", "items": {"type": "object"}}, "refusal": _NULLABLE_STRING,
            "grid": {"type": "object"},
        },
    },
    "AxisRequest": {
        "type": "object", "required": ["target", "values"], "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "description": "Axis label (default: the target's input name)"},
            "target": {"type": "string", "description": "Where the values go: 'Class.input', 'id.input' or "
                       "'Title.input'; several separated by ';'"},
            "type": {"type": "string", "enum": ["INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", "SEED"],
                     "description": "Default: the target input's type"},
            "values": {"type": "string", "description": "The value syntax (docs/value-syntax.md), e.g. '4-8 (+2)'"},
        },
    },
    "BatchRequest": {
        "type": "object", "required": ["prompt", "axes"], "additionalProperties": False,
        "properties": {
            "prompt": {"type": "object", "minProperties": 1, "description": "API-format workflow, without WI nodes",
                       "additionalProperties": {"type": "object", "required": ["class_type"],
                                                "properties": {"class_type": {"type": "string", "minLength": 1},
                                                               "inputs": {"type": "object"}}}},
            "axes": {"type": "array", "minItems": 1, "items": _ref("AxisRequest")},
            "mode": {"type": "string", "enum": ["matrix", "linear"]},
            "unequal_lengths": {"type": "string", "enum": ["cycle", "error"]},
            "run_order": {"type": "string", "enum": ["cache-friendly", "as entered"]},
            "grid": {"type": ["object", "null"], "description": "Grid options (WIGridCompositor inputs); absent or "
                     "null: no grid"},
            "batch_name": {"type": "string"}, "client_id": {"type": "string"},
            "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 200},
            "dry_run": {"type": "boolean"}, "extra_data": {"type": "object"},
        },
    },
    "BatchCreated": {
        "type": "object", "required": ["batch_id", "count", "grid"],
        "properties": {"batch_id": {"type": "string"}, "count": {"type": "integer", "minimum": 1},
                       "grid": {"type": ["object", "null"]}, "prompt_id": {"type": "string"}},
    },
    "BatchPlan": {
        "type": "object", "required": ["dry_run", "count", "axes", "grid"],
        "properties": {"dry_run": {"const": True}, "count": {"type": "integer", "minimum": 1},
                       "mode": {"type": "string"}, "batch_name": {"type": "string"},
                       "axes": {"type": "array", "items": _ref("Axis")}, "grid": {"type": ["object", "null"]}},
    },
}

_PATHS: dict[str, Any] = {
    "/wi/status": {"get": {
        "operationId": "listBatches", "summary": "Every batch in memory, newest first (summaries, no cells)",
        "responses": {"200": _json({"type": "object", "required": ["batches"], "properties": {
            "batches": {"type": "array", "items": _ref("BatchSummary")}}}, "Batch summaries")},
    }},
    "/wi/status/{batch_id}": {"get": {
        "operationId": "getBatch", "summary": "One batch with one page of its cells",
        "parameters": [_BATCH_ID, _query_int("offset", 0, 10**9, "First cell of the page"),
                       _query_int("limit", 1, 1000, "Cells per page (default 200)")],
        "responses": {"200": _json(_ref("BatchDetail"), "The batch"), **_errors(400, 404)},
    }},
    "/wi/batches": {
        "get": {
            "operationId": "batchHistory", "summary": "Past and present batches from the journal",
            "parameters": [_query_int("limit", 1, 500, "Batches per page (default 50)"),
                           _query_int("offset", 0, 10**9, "Batches to skip")],
            "responses": {"200": _json(_ref("History"), "A page of the history"), **_errors(400)},
        },
        "post": {
            "operationId": "createBatch",
            "summary": "Start a sweep over an API-format workflow (or plan it, with dry_run)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("BatchRequest")}}},
            "responses": {
                "201": _json(_ref("BatchCreated"), "The batch was queued"),
                "200": _json({"oneOf": [_ref("BatchPlan"), _ref("BatchCreated")]},
                             "dry_run: the plan; a repeated idempotency_key: the first batch"),
                **_errors(400, 413, 502),
            },
        },
    },
    "/wi/batches/{batch_id}/events": {"get": {
        "operationId": "batchEvents",
        "summary": "Server-sent events of one batch: snapshot, cell_ended, batch_cancelled, batch_finished, "
                   "batch_expired; the stream ends when the batch does",
        "parameters": [_BATCH_ID],
        "responses": {"200": {"description": "An event stream", "content": {"text/event-stream": {
            "schema": {"type": "string"}}}}, **_errors(404)},
    }},
    "/wi/resume/{batch_id}": {"post": {
        "operationId": "resumeBatch", "summary": "Re-queue an interrupted batch's unfinished cells",
        "parameters": [_BATCH_ID],
        "responses": {"200": _json(_ref("Resumed"), "Resumed"), **_errors(400, 404, 409)},
    }},
    "/wi/cancel_batch/{batch_id}": {"post": {
        "operationId": "cancelBatch", "summary": "Cancel one batch (its queued cells; its running cell is interrupted)",
        "parameters": [_BATCH_ID],
        "responses": {"200": _json(_ref("Cancelled"), "Cancelled"), **_errors(404, 409)},
    }},
    "/wi/batch/{batch_id}/{filename}": {"get": {
        "operationId": "batchFile", "summary": "A file of the batch's folder (grid, batch.json, viewer.html, ...)",
        "parameters": [_BATCH_ID, {"name": "filename", "in": "path", "required": True,
                                   "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$"}}],
        "responses": {"200": {"description": "The file", "content": {"*/*": {"schema": {"type": "string",
                                                                                         "format": "binary"}}}},
                      **_errors(404)},
    }},
    "/wi/preview": {"post": {
        "operationId": "previewSweep", "summary": "The iterator badge: what a Queue press would queue",
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("PreviewRequest")}}},
        "responses": {"200": _json(_ref("Preview"), "The preview"), **_errors(400, 413)},
    }},
    "/wi/openapi.json": {"get": {
        "operationId": "openapi", "summary": "This description",
        "responses": {"200": _json({"type": "object", "required": ["openapi", "paths"]}, "OpenAPI 3.1 document")},
    }},
}


_WORKER: dict[str, Any] = {
    "type": "object", "required": ["id", "name", "url", "local", "weight", "enabled", "has_auth", "health", "state"],
    "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "url": _NULLABLE_STRING, "local": {"type": "boolean"},
        "weight": {"type": "number"}, "enabled": {"type": "boolean"}, "has_auth": {"type": "boolean"},
        "health": {"type": "object", "required": ["reachable", "queue_depth", "last_seen", "error"], "properties": {
            "reachable": {"type": "boolean"}, "queue_depth": {"type": ["integer", "null"]},
            "last_seen": _NUMBER_OR_NULL, "error": _NULLABLE_STRING}},
        "state": {"type": "string", "enum": ["idle", "busy", "unreachable", "disabled"]},
    },
}
_CHOICES: dict[str, Any] = {
    "type": "object", "required": ["starred", "rejected"],
    "properties": {"starred": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                   "rejected": {"type": "array", "items": {"type": "integer", "minimum": 0}}},
}

#: The worker routes (issue 14, nodes/worker_routes.py) and the viewer's choices (issue 17). GET
#: ``/wi/batch/{batch_id}/choices`` is also matched by ``/wi/batch/{batch_id}/{filename}``: aiohttp takes the route
#: registered first, so nodes/routes.py registers the choices route before the files route.
_PATHS.update({
    "/wi/workers": {
        "get": {"operationId": "listWorkers", "summary": "The ComfyUI servers cells can run on (auth values never sent)",
                "responses": {"200": _json({"type": "object", "required": ["workers"],
                                            "properties": {"workers": {"type": "array", "items": _WORKER}}}, "Workers")}},
        "post": {"operationId": "saveWorker", "summary": "Add a worker (no id) or change one (id)",
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "required": ["url"], "properties": {
                         "id": {"type": "string"}, "name": {"type": "string"}, "url": {"type": "string"},
                         "auth_header": {"type": "string"}, "weight": {"type": "number"}, "enabled": {"type": "boolean"}}}}}},
                 "responses": {"200": _json(_WORKER, "The worker entry"), **_errors(400, 404)}},
    },
    "/wi/workers/{worker_id}": {"delete": {
        "operationId": "deleteWorker", "summary": "Remove a worker",
        "parameters": [{"name": "worker_id", "in": "path", "required": True,
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}}],
        "responses": {"200": _json({"type": "object", "required": ["deleted"], "properties": {"deleted": {"type": "string"}}},
                                   "Removed"), **_errors(400, 404)}}},
    "/wi/batch/{batch_id}/choices": {
        "get": {"operationId": "getChoices", "summary": "The cells starred and rejected in the viewer",
                "parameters": [_BATCH_ID], "responses": {"200": _json(_CHOICES, "The choices"), **_errors(404)}},
        "put": {"operationId": "putChoices", "summary": "Save the choices (into batch.json, atomically)",
                "parameters": [_BATCH_ID],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _CHOICES}}},
                "responses": {"200": _json(_CHOICES, "The saved choices"), **_errors(400, 404)}},
    },
})


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh copy: callers may change it)."""
    return copy.deepcopy({
        "openapi": "3.1.0",
        "info": {"title": "ComfyUI Workflow Iterator", "version": "1",
                 "description": "Parameter sweeps in ComfyUI: start, watch, cancel and collect batches. Every path "
                                "is also served under /api (e.g. /api/wi/status)."},
        "paths": _PATHS,
        "components": {"schemas": _SCHEMAS},
    })


def operations() -> set[tuple[str, str]]:
    """Every described ``(METHOD, path)`` (paths in aiohttp's ``{name}`` form, the same as OpenAPI's)."""
    return {(method.upper(), path) for path, item in _PATHS.items() for method in item}
