// The status detail is paged (issue 11, 12.6): cells carry coordinates, each value is sent once on its axis,
// and every cell's status comes as one character in `cell_statuses`.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ActionType, createInitialState, reduceBatches } from "../lib/batch_state.mjs";
import { cellStatusFromChar, cellTitle, cellValues, coordsOfCell } from "../lib/progress.mjs";
import { tileViews } from "../lib/view_model.mjs";

const AXES = [
  { name: "cfg", type: "FLOAT", values: [0.30000000000000004, 7], labels: ["0.3", "7"] },
  { name: "sampler", type: "COMBO", values: ["euler", "ddim", "dpm"], labels: ["euler", "ddim", "dpm"] },
];

function pagedDetail(extra = {}) {
  return {
    batch_id: "b1", batch_name: "paged", mode: "matrix", state: "active", total: 6,
    counts: { total: 6, done: 3, failed: 1, cancelled: 0, pending: 1, running: 1 },
    axes: AXES, cell_statuses: "ddfdrq", cells_page: { offset: 0, count: 2, total: 6 },
    cells: [
      { index: 0, coords: [0, 0], status: "done", error: null, files: [] },
      { index: 1, coords: [0, 1], status: "done", error: null, files: [] },
    ],
    ...extra,
  };
}

describe("paged status detail", () => {
  test("coordinates follow the planner: first axis slowest in matrix mode, axes advance together in linear", () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => coordsOfCell(i, AXES, "matrix")), [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]);
    assert.deepEqual([0, 1, 2, 3].map((i) => coordsOfCell(i, AXES, "linear")), [[0, 0], [1, 1], [0, 2], [1, 0]]);
    assert.equal(coordsOfCell(0, [], "matrix"), null);
  });

  test("a cell's values are its axes' labels at its coordinates", () => {
    assert.deepEqual(cellValues({ index: 4, coords: [1, 1] }, AXES, "matrix"), { cfg: "7", sampler: "ddim" });
    assert.deepEqual(cellValues({ index: 2 }, AXES, "matrix"), { cfg: "0.3", sampler: "dpm" });
    assert.deepEqual(cellValues({ index: 0, values: { cfg: 4 } }, AXES, "matrix"), { cfg: 4 });
    assert.equal(cellTitle({ index: 0, coords: [0, 0] }, "done", AXES, "matrix"), "#1 · done\ncfg = 0.3\nsampler = euler");
  });

  test("one character per cell", () => {
    assert.equal(cellStatusFromChar("qrdfc", 3), "failed");
    assert.equal(cellStatusFromChar("qrdfc", 9), null);
    assert.equal(cellStatusFromChar(null, 0), null);
  });

  test("tiles of cells outside the page take their status from cell_statuses, and their values from the axes", () => {
    const state = reduceBatches(createInitialState(), { type: ActionType.statusDetail, detail: pagedDetail(), now: 1 });
    const { tiles } = tileViews(state.batches.b1);
    assert.deepEqual(tiles.map((t) => t.status), ["done", "done", "failed", "done", "running", "queued"]);
    assert.match(tiles[4].title, /cfg = 7\nsampler = ddim/);
  });
});
