import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { winnersSweep, winnersText, winnersWorkflow } from "../viewer/export.mjs";

// Texts as core/values.py value_text writes them (the Python test suite checks they parse back).
const DATA = {
  mode: "matrix",
  axes: [
    { name: "cfg", type: "FLOAT", values: [0.1, 7.0, 8.5], value_texts: ["0.1", "7.0", "8.5"] },
    { name: "prompt", type: "STRING", values: ["a, b", "c", "x\ny"], value_texts: ['"a, b"', "c", null],
      value_text_errors: [null, null, "it has a line break"] },
  ],
  cells: [
    { index: 0, coords: [0, 0] }, { index: 1, coords: [0, 1] }, { index: 2, coords: [0, 2] },
    { index: 3, coords: [1, 0] }, { index: 4, coords: [1, 1] }, { index: 5, coords: [1, 2] },
    { index: 6, coords: [2, 0] }, { index: 7, coords: [2, 1] }, { index: 8, coords: [2, 2] },
  ],
  workflow: { nodes: [{ id: 11, type: "WIParameterFloat", widgets_values: ["cfg", "0.1", "KSampler.cfg"] },
    { id: 12, type: "WIParameter", widgets_values: ["prompt", "STRING", "c", "CLIP.text"] }, { id: 3, type: "KSampler", widgets_values: [1] }] },
  parameter_slots: [{ node_id: "11", widget: 1 }, { node_id: "12", widget: 2 }],
};

describe("Sweep the winners", () => {
  test("matrix: each parameter lists its distinct starred values in axis order", () => {
    const sweep = winnersSweep(DATA, [7, 0, 6]);
    assert.equal(sweep.count, 3);
    assert.deepEqual(sweep.params.map((p) => p.text), ["0.1, 8.5", '"a, b", c']);
    assert.deepEqual(sweep.params[0].values, [0.1, 8.5]);
    assert.deepEqual(sweep.problems, []);
    assert.equal(winnersText(sweep), 'cfg: 0.1, 8.5\nprompt: "a, b", c');
  });

  test("linear: the starred cells' values in cell order, repeats kept", () => {
    const sweep = winnersSweep({ ...DATA, mode: "linear" }, [4, 0, 3]);
    assert.deepEqual(sweep.params.map((p) => p.text), ["0.1, 7.0, 7.0", '"a, b", "a, b", c']);
  });

  test("a value the syntax cannot hold is reported, not written wrong", () => {
    const sweep = winnersSweep(DATA, [2]);
    assert.equal(sweep.params[1].text, "");
    assert.deepEqual(sweep.problems, ["prompt: it has a line break"]);
  });

  test("nothing starred: no values", () => {
    const sweep = winnersSweep(DATA, []);
    assert.equal(sweep.count, 0);
    assert.deepEqual(sweep.params.map((p) => p.text), ["", ""]);
  });

  test("the workflow gets each parameter node's values text, other nodes untouched, the original unchanged", () => {
    const sweep = winnersSweep(DATA, [0, 8]);
    const wf = winnersWorkflow(DATA, sweep);
    assert.deepEqual(wf.nodes[0].widgets_values, ["cfg", "0.1, 8.5", "KSampler.cfg"]);
    assert.deepEqual(wf.nodes[1].widgets_values, ["prompt", "STRING", '"a, b"', "CLIP.text"]);
    assert.deepEqual(wf.nodes[2].widgets_values, [1]);
    assert.equal(DATA.workflow.nodes[0].widgets_values[1], "0.1");
  });

  test("no recorded workflow: none to download", () => {
    assert.equal(winnersWorkflow({ ...DATA, workflow: null }, winnersSweep(DATA, [0])), null);
  });
});
