"""The shipped example workflows plan into the sweeps their names promise (no ComfyUI needed)."""
from __future__ import annotations

import json
from pathlib import Path

from comfyui_workflow_iterator.core import parameter_parser, prompt_graph

EXAMPLES = Path(__file__).resolve().parent.parent / "example_workflows"


def plan(name, options=None):
    prompt = json.loads((EXAMPLES / name).read_text())
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
