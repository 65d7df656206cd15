"""The UI-format example workflows against every real ComfyUI: ComfyUI lists exactly them (not the API copies)
in its Templates route and serves their thumbnails, and each one, read with that version's node definitions,
is the prompt of its API-format copy (tools/ui_workflow.py wrote them from those copies)."""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tools.comfy_harness import PACK_LINK_NAME
from tools.ui_workflow import API_DIR, EXAMPLES, _default, _input_order, ui_to_api

pytestmark = pytest.mark.integration

NAMES = sorted(p.stem for p in EXAMPLES.glob("*.json"))


def test_templates_route_lists_the_ui_workflows_and_serves_their_thumbnails(comfy):
    code, templates = comfy.get("/workflow_templates")
    assert code == 200
    assert sorted(templates[PACK_LINK_NAME]) == NAMES == ["model_free_sweep", "txt2img_checkpoint_sampler_cfg"]
    for name in NAMES:
        with urllib.request.urlopen(f"{comfy.url}/api/workflow_templates/{PACK_LINK_NAME}/{name}.jpg") as resp:
            assert resp.headers["Content-Type"] == "image/jpeg" and resp.read(3) == b"\xff\xd8\xff"
        with urllib.request.urlopen(f"{comfy.url}/api/workflow_templates/{PACK_LINK_NAME}/{name}.json") as resp:
            assert json.loads(resp.read())["nodes"]


@pytest.mark.parametrize("name", NAMES)
def test_ui_workflow_is_its_api_copy_with_this_versions_node_definitions(comfy, name):
    code, object_info = comfy.get("/object_info")
    assert code == 200
    workflow = json.loads((EXAMPLES / f"{name}.json").read_text())
    api = json.loads((API_DIR / f"{name}_api.json").read_text())
    derived = ui_to_api(workflow, object_info)
    assert set(derived) == set(api)
    for node_id, node in api.items():
        got = derived[node_id]["inputs"]
        for input_name, value in node["inputs"].items():
            assert got.get(input_name) == value, (node_id, input_name, got.get(input_name), value)
        # Inputs the API copy leaves out get their defaults, nothing else.
        specs = {n: s for n, s, _ in _input_order(object_info[node["class_type"]])}
        for input_name in set(got) - set(node["inputs"]):
            assert got[input_name] == _default(specs[input_name]), (node_id, input_name, got[input_name])
