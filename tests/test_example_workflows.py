"""The shipped example workflows: the API-format copies plan into the sweeps their names promise, and the
UI-format files ComfyUI's Templates browser lists are well-formed graphs of the same prompts, each with its
thumbnail (no ComfyUI needed; tests/integration/test_example_workflows_ui.py checks widget values against the
real node definitions)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from comfyui_workflow_iterator.core import parameter_parser, prompt_graph

EXAMPLES = Path(__file__).resolve().parent.parent / "example_workflows"
API = EXAMPLES / "api"
UI_FILES = sorted(EXAMPLES.glob("*.json"))  # exactly what ComfyUI's /workflow_templates lists


def plan(name, options=None):
    prompt = json.loads((API / name).read_text())
    iterator = prompt_graph.find_enabled_iterator(prompt)
    return prompt_graph.plan_sweep(prompt, iterator, parse=parameter_parser.parse, options_for=options)


def test_model_free_example_is_a_three_by_three_sweep():
    result = plan("model_free_sweep_api.json")
    assert [a.name for a in result.axes] == ["blur_radius", "sigma"]
    assert result.total == 9 and not result.errors and result.grid_node_id == "21"


def test_txt2img_example_sweeps_checkpoint_slowest_then_sampler_and_cfg():
    checkpoints = ["a.safetensors", "b.safetensors"]
    samplers = ["euler", "dpmpp_2m", "uni_pc", "ddim"]

    def options(class_type, input_name):
        return {"ckpt_name": checkpoints, "sampler_name": samplers}.get(input_name)

    result = plan("txt2img_checkpoint_sampler_cfg_api.json", options)
    assert [a.name for a in result.axes] == ["checkpoint", "sampler", "cfg"]
    assert result.total == 2 * 3 * 3 and not result.errors
    first, last = result.combinations[0], result.combinations[-1]
    assert first.values == ("a.safetensors", "euler", 4.0) and last.values == ("b.safetensors", "uni_pc", 8.0)
    cell = result.cell_prompt(result.combinations[1])
    assert cell["4"]["inputs"]["ckpt_name"] == "a.safetensors" and cell["3"]["inputs"]["cfg"] == 6.0


def test_every_template_is_a_ui_workflow_with_a_thumbnail_and_an_api_copy():
    names = [p.stem for p in UI_FILES]
    assert names == ["model_free_sweep", "txt2img_checkpoint_sampler_cfg"]
    assert sorted(p.name for p in API.glob("*.json")) == [f"{n}_api.json" for n in names]
    for path in UI_FILES:
        workflow = json.loads(path.read_text())
        assert {"nodes", "links", "groups", "version"} <= set(workflow), path.name  # not an API-format prompt
        with Image.open(path.with_suffix(".jpg")) as thumbnail:  # the frontend asks for <name>.jpg
            assert thumbnail.format == "JPEG" and thumbnail.width >= 256


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_ui_graph_is_consistent_and_is_the_api_copy(path):
    workflow = json.loads(path.read_text())
    api = json.loads((API / f"{path.stem}_api.json").read_text())
    nodes = {node["id"]: node for node in workflow["nodes"]}
    assert {str(i): n["type"] for i, n in nodes.items()} == {i: n["class_type"] for i, n in api.items()}
    assert workflow["last_node_id"] == max(nodes) and workflow["last_link_id"] == max(l[0] for l in workflow["links"])
    edges = set()
    for link_id, source, slot, target, target_slot, link_type in workflow["links"]:
        output = nodes[source]["outputs"][slot]
        socket = nodes[target]["inputs"][target_slot]
        assert link_id in output["links"] and socket["link"] == link_id
        assert link_type == output["type"]
        assert socket["type"] in (link_type, "COMBO", "*") or link_type == "*"
        edges.add((str(target), socket["name"], str(source), slot))
    api_edges = {(i, name, str(v[0]), v[1]) for i, n in api.items() for name, v in n["inputs"].items() if isinstance(v, list)}
    assert edges == api_edges
    for node in workflow["nodes"]:
        assert len(node["pos"]) == 2 and node["size"][0] > 0 and node["size"][1] > 0
        literals = [v for v in api[str(node["id"])]["inputs"].values() if not isinstance(v, list)]
        assert all(v in node["widgets_values"] for v in literals), (node["type"], literals, node["widgets_values"])
    for group in workflow["groups"]:
        x, y, w, h = group["bounding"]
        inside = [n for n in workflow["nodes"] if x <= n["pos"][0] and n["pos"][0] + n["size"][0] <= x + w
                  and y <= n["pos"][1] and n["pos"][1] + n["size"][1] <= y + h]
        assert inside, group["title"]
