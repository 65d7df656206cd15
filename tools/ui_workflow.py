"""The example workflows in ComfyUI's UI format, made from their API-format copies, with thumbnails.

ComfyUI lists every ``*.json`` directly in a pack's ``example_workflows/`` in its Templates browser (server
route ``/workflow_templates``) and shows ``<name>.jpg`` beside it as the thumbnail; the frontend loads the file
as a graph, so those files must be UI-format workflows (nodes with positions, links, groups). The API-format
copies, which scripts and tests post to ``/prompt``, live in ``example_workflows/api/`` where the Templates
browser does not look.

The conversion needs each node's inputs in widget order, which only ComfyUI knows: this tool starts a real
ComfyUI (tools/comfy_harness.py) and reads its ``/object_info``. ``tests/integration/test_example_workflows_ui.py``
converts the UI files back with :func:`ui_to_api` on every backend and compares them with the API copies.

    .venv/bin/python tools/ui_workflow.py            # rewrite example_workflows/*.json and *.jpg

Thumbnails: the model-free example's is its real grid, from running it on that ComfyUI; the checkpoint
example needs models, so its thumbnail is the pack's own grid layout of that sweep drawn over plain tiles.
"""
from __future__ import annotations

import io
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "example_workflows"
API_DIR = EXAMPLES / "api"
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
NODE_WIDTH, COLUMN_GAP, ROW_GAP = 320, 60, 40
THUMBNAIL_WIDTH = 512

logger = logging.getLogger("wi.ui_workflow")


def _input_order(info: dict[str, Any]) -> list[tuple[str, list[Any], bool]]:
    """``(name, spec, required)`` in the node's declared order (``input_order`` when ComfyUI gives it)."""
    inputs = info.get("input", {})
    order = info.get("input_order") or {k: list(v) for k, v in inputs.items()}
    out = []
    for category in ("required", "optional"):
        for name in order.get(category, []):
            if name in inputs.get(category, {}):
                out.append((name, list(inputs[category][name]), category == "required"))
    return out


def _is_widget(spec: list[Any]) -> bool:
    kind = spec[0]
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if options.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def _has_control(spec: list[Any]) -> bool:
    """INT widgets like ``seed`` carry a second, hidden widget value: the control-after-generate choice."""
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return bool(options.get("control_after_generate"))


def _default(spec: list[Any]) -> Any:
    kind = spec[0]
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if "default" in options:
        return options["default"]
    if isinstance(kind, list):
        return kind[0] if kind else ""
    if kind == "COMBO":
        return (options.get("options") or [""])[0]
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(kind)


def _depths(prompt: dict[str, Any]) -> dict[str, int]:
    """Column of each node: one more than the deepest node feeding it."""
    memo: dict[str, int] = {}

    def depth(node_id: str, seen: frozenset[str] = frozenset()) -> int:
        if node_id in memo:
            return memo[node_id]
        sources = [str(v[0]) for v in prompt[node_id]["inputs"].values() if isinstance(v, list) and str(v[0]) in prompt]
        memo[node_id] = 1 + max((depth(s, seen | {node_id}) for s in sources if s not in seen), default=-1)
        return memo[node_id]

    return {node_id: depth(node_id) for node_id in prompt}


def api_to_ui(prompt: dict[str, Any], object_info: dict[str, Any]) -> dict[str, Any]:
    """A UI-format workflow (version 0.4) of an API-format prompt, laid out in columns by depth."""
    depths = _depths(prompt)
    order = sorted(prompt, key=lambda n: (depths[n], int(n) if n.isdigit() else n))
    links: list[list[Any]] = []
    nodes: dict[str, dict[str, Any]] = {}
    for node_id in order:
        node = prompt[node_id]
        info = object_info[node["class_type"]]
        inputs, widgets = [], []
        for name, spec, required in _input_order(info):
            value = node["inputs"].get(name)
            linked = isinstance(value, list)
            if _is_widget(spec):
                widgets.append(_default(spec) if linked or name not in node["inputs"] else value)
                if _has_control(spec):
                    widgets.append("fixed")
                if linked:
                    inputs.append({"name": name, "type": "COMBO" if isinstance(spec[0], list) else spec[0],
                                   "widget": {"name": name}, "link": None})
            else:
                inputs.append({"name": name, "type": spec[0], "link": None, **({} if required else {"shape": 7})})
        outputs = [{"name": out_name, "type": out_type, "links": [], "slot_index": slot}
                   for slot, (out_type, out_name) in enumerate(zip(info["output"], info.get("output_name") or info["output"]))]
        nodes[node_id] = {
            "id": int(node_id), "type": node["class_type"], "pos": [0, 0], "size": [NODE_WIDTH, 0], "flags": {},
            "order": len(nodes), "mode": 0, "inputs": inputs, "outputs": outputs,
            "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": widgets,
        }
        title = (node.get("_meta") or {}).get("title")
        if title and title != info.get("display_name"):
            nodes[node_id]["title"] = title
    for node_id in order:
        for name, value in prompt[node_id]["inputs"].items():
            if not isinstance(value, list):
                continue
            source, slot = str(value[0]), int(value[1])
            target_input = next(i for i in nodes[node_id]["inputs"] if i["name"] == name)
            link_id = len(links) + 1
            link_type = nodes[source]["outputs"][slot]["type"]
            links.append([link_id, int(source), slot, int(node_id), nodes[node_id]["inputs"].index(target_input), link_type])
            target_input["link"] = link_id
            nodes[source]["outputs"][slot]["links"].append(link_id)
    # Layout: one column per depth, nodes stacked; sizes from the number of rows each node shows.
    column_y: dict[int, float] = {}
    for node_id in order:
        ui = nodes[node_id]
        rows = max(len(ui["inputs"]) - sum(1 for i in ui["inputs"] if "widget" in i), len(ui["outputs"])) + len(ui["widgets_values"])
        ui["size"] = [NODE_WIDTH, 46 + 24 * rows]
        column = depths[node_id]
        y = column_y.get(column, 40.0)
        ui["pos"] = [40 + column * (NODE_WIDTH + COLUMN_GAP), y]
        column_y[column] = y + ui["size"][1] + ROW_GAP
    groups = _groups(prompt, nodes)
    return {
        "last_node_id": max(int(n) for n in prompt), "last_link_id": len(links),
        "nodes": [nodes[n] for n in order], "links": links, "groups": groups,
        "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4,
    }


def _groups(prompt: dict[str, Any], nodes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Two groups: the sweep (parameters and iterator) and the saved outputs (save and grid nodes)."""
    def bounding(ids: list[str]) -> list[float]:
        x0 = min(nodes[i]["pos"][0] for i in ids) - 20
        y0 = min(nodes[i]["pos"][1] for i in ids) - 60
        x1 = max(nodes[i]["pos"][0] + nodes[i]["size"][0] for i in ids) + 20
        y1 = max(nodes[i]["pos"][1] + nodes[i]["size"][1] for i in ids) + 20
        return [x0, y0, x1 - x0, y1 - y0]

    sweep = [i for i, n in prompt.items() if n["class_type"].startswith("WIParameter") or n["class_type"] == "WIIterator"]
    outputs = [i for i, n in prompt.items() if n["class_type"] in ("WISaveImage", "WIGridCompositor")]
    out = []
    for title, ids, color in (("Sweep: parameters and iterator", sweep, "#3f789e"), ("Saved cells and grid", outputs, "#8A8")):
        if ids:
            out.append({"id": len(out) + 1, "title": title, "bounding": bounding(ids), "color": color, "font_size": 24, "flags": {}})
    return out


def ui_to_api(workflow: dict[str, Any], object_info: dict[str, Any]) -> dict[str, Any]:
    """The API-format prompt the frontend would queue for a UI workflow (links and widget values only)."""
    links = {link[0]: link for link in workflow["links"]}
    prompt: dict[str, Any] = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) != 0:
            continue
        info = object_info[node["type"]]
        values = list(node.get("widgets_values") or [])
        inputs: dict[str, Any] = {}
        for name, spec, _ in _input_order(info):
            if _is_widget(spec):
                inputs[name] = values.pop(0)
                if _has_control(spec):
                    values.pop(0)
        for socket in node["inputs"]:
            if socket.get("link") is not None:
                link = links[socket["link"]]
                inputs[socket["name"]] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def _model_free_thumbnail(server: Any, prompt: dict[str, Any]) -> bytes:
    from PIL import Image

    code, answer = server.queue_prompt(prompt)
    if code != 200:
        raise RuntimeError(f"ComfyUI refused the example: {answer}")
    status = server.wait_batch(server.batch_for_prompt(answer["prompt_id"])["batch_id"], need_grid=True)
    grid = status["grid"]
    with Image.open(server.output_dir / grid["subfolder"] / grid["filename"]) as image:
        return _jpeg(image.convert("RGB"))


def _layout_thumbnail(prompt: dict[str, Any], options_for: dict[str, list[str]]) -> bytes:
    """The pack's grid layout of a sweep that needs models, over plain tiles tinted per cell."""
    sys.path.insert(0, str(REPO / "tests"))
    import conftest  # noqa: F401  (registers the package comfyui_workflow_iterator)
    from comfyui_workflow_iterator.core import grid, parameter_parser, prompt_graph
    from PIL import Image

    iterator = prompt_graph.find_enabled_iterator(prompt)
    plan = prompt_graph.plan_sweep(prompt, iterator, parse=parameter_parser.parse,
                                   options_for=lambda c, i: options_for.get(i))
    grid_inputs = prompt[plan.grid_node_id]["inputs"]
    options = grid.GridOptions(x_axis=grid_inputs["x_axis"], y_axis=grid_inputs["y_axis"], label_font_size=28,
                               cell_gap=8, margin=16)
    axes = [grid.GridAxis(a.name, tuple(v for v in a.values), a.type) for a in plan.axes]
    with tempfile.TemporaryDirectory() as tmp:
        cells = []
        for combination in plan.combinations:
            path = Path(tmp) / f"c{combination.index}.png"
            tint = (60 + 40 * combination.coords[1], 90 + 30 * combination.coords[2], 150 - 30 * combination.coords[0])
            Image.new("RGB", (128, 128), tint).save(path)
            cells.append(grid.GridCell(combination.index, tuple(combination.coords), tuple(combination.values), files=(str(path),)))
        layout = grid.plan_grid(axes, cells, (128, 128), options)
        pages = grid.compose_grid(layout, cells, tmp, "thumb")
        with Image.open(pages[0].path) as image:  # the first checkpoint's page: sampler x cfg
            return _jpeg(image.convert("RGB"))


def _jpeg(image: Any) -> bytes:
    if image.width > THUMBNAIL_WIDTH:
        image = image.resize((THUMBNAIL_WIDTH, round(image.height * THUMBNAIL_WIDTH / image.width)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88)
    return out.getvalue()


def main() -> int:
    sys.path.insert(0, str(REPO))
    from core.atomic_files import write_bytes
    from tools.comfy_harness import ComfyServer

    fixture_nodes = REPO / "tests" / "integration" / "fixture_nodes"
    with ComfyServer(extra_packs={"wi_test_nodes": fixture_nodes}) as server:
        code, object_info = server.get("/object_info")
        if code != 200:
            raise RuntimeError(f"/object_info answered {code}")
        for api_file in sorted(API_DIR.glob("*_api.json")):
            prompt = json.loads(api_file.read_text(encoding="utf-8"))
            name = api_file.name[: -len("_api.json")]
            workflow = api_to_ui(prompt, object_info)
            write_bytes(EXAMPLES / f"{name}.json", (json.dumps(workflow, indent=1) + "\n").encode())
            if name == "model_free_sweep":
                thumbnail = _model_free_thumbnail(server, prompt)
            else:
                thumbnail = _layout_thumbnail(prompt, {"ckpt_name": ["model_a.safetensors", "model_b.safetensors"],
                                                       "sampler_name": ["euler", "dpmpp_2m", "uni_pc"]})
            write_bytes(EXAMPLES / f"{name}.jpg", thumbnail)
            logger.info("wrote %s.json and %s.jpg", name, name)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(main())
