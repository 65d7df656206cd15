import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  ActionType,
  MAX_FINISHED_BATCHES,
  actionFromEvent,
  batchesNeedingDetail,
  createInitialState,
  elapsedSeconds,
  etaSeconds,
  reduceBatches,
  runningBatches,
  sortedBatches,
} from "../lib/batch_state.mjs";

const T0 = 1_700_000_000_000;

function event(name, detail, now) {
  const action = actionFromEvent(name, detail, now);
  assert.ok(action, `no action for ${name}`);
  return action;
}

function reduceAll(actions, state = createInitialState()) {
  return actions.reduce(reduceBatches, state);
}

function counts(total, done, failed = 0, cancelled = 0, running = 0) {
  return { total, done, failed, cancelled, running, pending: total - done - failed - cancelled - running };
}

function created(batchId = "b1", total = 3, now = T0, extra = {}) {
  return event("wi.batch_created", { batch_id: batchId, batch_name: "cfg sweep", total, client_id: "tab-1", ...extra }, now);
}

function cellEnded(index, done, { batchId = "b1", total = 3, status = "done", failed = 0, now = T0 } = {}) {
  return event("wi.cell_ended", { batch_id: batchId, index, status, counts: counts(total, done, failed) }, now);
}

function detailSnapshot(overrides = {}) {
  return {
    batch_id: "b1",
    batch_name: "cfg sweep",
    mode: "matrix",
    state: "active",
    created_at: 100,
    updated_at: 110,
    client_id: "tab-1",
    axes: [{ name: "cfg", type: "FLOAT", values: ["4", "6", "8"] }],
    counts: counts(3, 1, 0, 0, 1),
    cells: [
      { index: 0, coords: [0], values: { cfg: 4 }, status: "done", error: null, files: [{ filename: "a.png", subfolder: "wi", type: "output" }] },
      { index: 1, coords: [1], values: { cfg: 6 }, status: "running", error: null, files: [] },
      { index: 2, coords: [2], values: { cfg: 8 }, status: "queued", error: null, files: [] },
    ],
    grid: null,
    timings: { elapsed_s: 20, seconds_per_cell: 10, eta_s: 20 },
    warnings: [],
    ...overrides,
  };
}

describe("event lifecycle", () => {
  test("created -> cell_ended x N -> finished gives a complete batch with every cell done", () => {
    const state = reduceAll([
      created("b1", 3, T0),
      cellEnded(0, 1, { now: T0 + 10_000 }),
      cellEnded(1, 2, { now: T0 + 20_000 }),
      cellEnded(2, 3, { now: T0 + 30_000 }),
      event("wi.batch_finished", { batch_id: "b1", state: "complete", grid: { filename: "grid.png", subfolder: "wi", type: "output" } }, T0 + 31_000),
    ]);
    const batch = state.batches.b1;
    assert.equal(batch.state, "complete");
    assert.equal(batch.name, "cfg sweep");
    assert.equal(batch.clientId, "tab-1");
    assert.deepEqual(batch.counts, counts(3, 3));
    assert.deepEqual(Object.values(batch.cells).map((cell) => cell.status), ["done", "done", "done"]);
    assert.equal(batch.grid.filename, "grid.png");
    assert.equal(batch.terminalAt, T0 + 31_000);
  });

  test("elapsed time freezes when the batch finishes", () => {
    const state = reduceAll([created("b1", 1, T0), cellEnded(0, 1, { total: 1, now: T0 + 5_000 }),
      event("wi.batch_finished", { batch_id: "b1", state: "complete", grid: null }, T0 + 6_000)]);
    assert.equal(elapsedSeconds(state.batches.b1, T0 + 60_000), 6);
    assert.equal(etaSeconds(state.batches.b1, T0 + 60_000), null);
  });

  test("a failed cell keeps its status and asks for the detail that carries the error", () => {
    let state = reduceAll([created("b1", 3, T0)]);
    state = reduceBatches(state, { type: ActionType.detailRequested, batchId: "b1" });
    state = reduceBatches(state, { type: ActionType.statusDetail, detail: detailSnapshot({ counts: counts(3, 0), cells: [] }), now: T0 + 1 });
    assert.deepEqual(batchesNeedingDetail(state), []);
    state = reduceBatches(state, cellEnded(1, 0, { status: "failed", failed: 1, now: T0 + 5_000 }));
    assert.equal(state.batches.b1.cells[1].status, "failed");
    assert.equal(state.batches.b1.counts.failed, 1);
    assert.deepEqual(batchesNeedingDetail(state), ["b1"]);
  });

  test("the server's two batch_finished events: collecting, then complete with the grid", () => {
    const grid = { filename: "grid.png", subfolder: "wi", type: "output" };
    let state = reduceAll([created("b1", 1, T0), cellEnded(0, 1, { total: 1, now: T0 + 1_000 })]);
    state = reduceBatches(state, event("wi.batch_finished", { batch_id: "b1", state: "collecting", grid: null, counts: counts(1, 1) }, T0 + 1_000));
    assert.equal(state.batches.b1.state, "collecting");
    assert.equal(state.batches.b1.terminalAt, null);
    assert.equal(runningBatches(state).length, 1, "still shown as running while the grid is built");
    state = reduceBatches(state, event("wi.batch_finished", { batch_id: "b1", state: "complete", grid, counts: counts(1, 1) }, T0 + 4_000));
    assert.equal(state.batches.b1.state, "complete");
    assert.deepEqual(state.batches.b1.grid, grid);
    assert.equal(elapsedSeconds(state.batches.b1, T0 + 9_000), 4);
  });

  test("the error carried by cell_ended is kept and needs no extra fetch", () => {
    let state = reduceAll([created()]);
    state = reduceBatches(state, { type: ActionType.statusDetail, detail: detailSnapshot({ counts: counts(3, 0), cells: [] }), now: T0 + 1 });
    state = reduceBatches(state, event("wi.cell_ended", { batch_id: "b1", index: 2, status: "failed", error: "OOM", counts: counts(3, 0, 1) }, T0 + 2));
    assert.equal(state.batches.b1.cells[2].error, "OOM");
    assert.deepEqual(batchesNeedingDetail(state), []);
  });

  test("batch_expired ends a batch as expired", () => {
    const state = reduceAll([created(), event("wi.batch_expired", { batch_id: "b1", state: "expired", previous_state: "active" }, T0 + 5)]);
    assert.equal(state.batches.b1.state, "expired");
    assert.equal(state.batches.b1.terminalAt, T0 + 5);
  });

  test("size warnings are collected once per message", () => {
    const warning = event("wi.size_warning", { batch_id: "b1", message: "grid downscaled to 50%" }, T0 + 1);
    const state = reduceAll([created(), warning, warning]);
    assert.deepEqual(state.batches.b1.warnings, ["grid downscaled to 50%"]);
  });
});

describe("cancel", () => {
  test("batch_cancelled moves an active batch to cancelled and freezes it", () => {
    const state = reduceAll([
      created("b1", 3, T0),
      cellEnded(0, 1, { now: T0 + 10_000 }),
      event("wi.batch_cancelled", { batch_id: "b1", removed: ["p2", "p3"], counts: counts(3, 1, 0, 2) }, T0 + 12_000),
    ]);
    const batch = state.batches.b1;
    assert.equal(batch.state, "cancelled");
    assert.deepEqual(batch.counts, counts(3, 1, 0, 2));
    assert.equal(batch.terminalAt, T0 + 12_000);
    assert.equal(elapsedSeconds(batch, T0 + 99_000), 12);
    assert.deepEqual(runningBatches(state), []);
  });

  test("the cancel response alone is enough, and the later event changes nothing", () => {
    const afterResponse = reduceAll([created(), { type: ActionType.cancelAccepted, batchId: "b1", response: {}, now: T0 + 1_000 }]);
    assert.equal(afterResponse.batches.b1.state, "cancelled");
    const afterEvent = reduceBatches(afterResponse, event("wi.batch_cancelled", { batch_id: "b1", removed: [] }, T0 + 2_000));
    assert.equal(afterEvent, afterResponse);
  });

  test("a finished event saying cancelled after the cancel event keeps the batch cancelled", () => {
    const state = reduceAll([
      created(),
      event("wi.batch_cancelled", { batch_id: "b1", removed: [] }, T0 + 1_000),
      event("wi.batch_finished", { batch_id: "b1", state: "cancelled", grid: { filename: "g.png", subfolder: "", type: "output" } }, T0 + 2_000),
    ]);
    assert.equal(state.batches.b1.state, "cancelled");
    assert.equal(state.batches.b1.grid.filename, "g.png");
    assert.equal(state.batches.b1.terminalAt, T0 + 1_000);
  });
});

describe("snapshots", () => {
  test("a detail snapshot after a reload rebuilds the batch with values, timings and ETA", () => {
    const state = reduceBatches(createInitialState(), { type: ActionType.statusDetail, detail: detailSnapshot(), now: T0 });
    const batch = state.batches.b1;
    assert.equal(batch.state, "active");
    assert.equal(batch.mode, "matrix");
    assert.deepEqual(batch.cells[0].values, { cfg: 4 });
    assert.equal(batch.cells[1].status, "running");
    assert.equal(elapsedSeconds(batch, T0 + 5_000), 25);
    assert.equal(etaSeconds(batch, T0 + 5_000), 15);
    assert.equal(batch.needsDetail, false);
  });

  test("events after the snapshot advance it; the ETA counts down from the new estimate", () => {
    let state = reduceBatches(createInitialState(), { type: ActionType.statusDetail, detail: detailSnapshot(), now: T0 });
    state = reduceBatches(state, cellEnded(1, 2, { now: T0 + 8_000 }));
    const batch = state.batches.b1;
    assert.equal(batch.cells[1].status, "done");
    assert.deepEqual(batch.counts, counts(3, 2));
    // Server measured 10 s per cell; one cell left, estimated at the event.
    assert.equal(etaSeconds(batch, T0 + 8_000), 10);
    assert.equal(etaSeconds(batch, T0 + 12_000), 6);
  });

  test("a stale snapshot never reopens cells or lowers counts an event already advanced", () => {
    let state = reduceAll([created("b1", 3, T0), cellEnded(0, 1, { now: T0 + 1 }), cellEnded(1, 2, { now: T0 + 2 })]);
    const stale = detailSnapshot({ counts: counts(3, 1, 0, 0, 1) });
    state = reduceBatches(state, { type: ActionType.statusDetail, detail: stale, now: T0 + 3 });
    const batch = state.batches.b1;
    assert.equal(batch.cells[1].status, "done");
    assert.equal(batch.counts.done, 2);
    assert.deepEqual(batch.cells[1].values, { cfg: 6 });
    assert.equal(batch.detailLoaded, true);
  });

  test("a stale snapshot's ETA is re-estimated for the cells events already ended", () => {
    let state = reduceAll([created("b1", 3, T0), cellEnded(0, 1, { now: T0 + 1 }), cellEnded(1, 2, { now: T0 + 2 })]);
    state = reduceBatches(state, { type: ActionType.statusDetail, detail: detailSnapshot(), now: T0 + 3 });
    // The snapshot says 20 s for two cells left at 10 s each; events say only one is left.
    assert.equal(etaSeconds(state.batches.b1, T0 + 3), 10);
  });

  test("a stale snapshot cannot move a finished batch back to active", () => {
    let state = reduceAll([created(), event("wi.batch_finished", { batch_id: "b1", state: "complete", grid: null }, T0 + 5)]);
    state = reduceBatches(state, { type: ActionType.statusDetail, detail: detailSnapshot({ state: "active" }), now: T0 + 6 });
    assert.equal(state.batches.b1.state, "complete");
  });

  test("a finished snapshot freezes elapsed time at the server's value", () => {
    const detail = detailSnapshot({ state: "complete", counts: counts(3, 3), timings: { elapsed_s: 42, seconds_per_cell: 14, eta_s: 0 } });
    const state = reduceBatches(createInitialState(), { type: ActionType.statusDetail, detail, now: T0 });
    assert.equal(elapsedSeconds(state.batches.b1, T0 + 100_000), 42);
  });

  test("the status list adds unseen batches and asks for their details", () => {
    const summaries = [
      { batch_id: "new", batch_name: "later", state: "active", counts: counts(4, 1), created_at: 200 },
      { batch_id: "old", batch_name: "earlier", state: "complete", counts: counts(2, 2), created_at: 100 },
    ];
    const state = reduceBatches(createInitialState(), { type: ActionType.statusList, batches: summaries, requestedAt: T0, now: T0 + 5 });
    assert.deepEqual(Object.keys(state.batches).sort(), ["new", "old"]);
    assert.deepEqual(batchesNeedingDetail(state).sort(), ["new", "old"]);
    assert.deepEqual(sortedBatches(state).map((batch) => batch.id), ["new", "old"]);
    assert.ok(state.batches.old.seq < state.batches.new.seq, "created_at order decides the sequence");
  });

  test("a running batch the server no longer lists expires, unless it changed after the request", () => {
    let state = reduceAll([created("gone", 2, T0), created("fresh", 2, T0 + 50)]);
    state = reduceBatches(state, { type: ActionType.statusList, batches: [], requestedAt: T0 + 10, now: T0 + 60 });
    assert.equal(state.batches.gone.state, "expired");
    assert.equal(state.batches.fresh.state, "active");
  });

  test("a 404 on detail expires a running batch", () => {
    const state = reduceAll([created(), { type: ActionType.statusMissing, batchId: "b1", now: T0 + 1 }]);
    assert.equal(state.batches.b1.state, "expired");
    assert.equal(state.batches.b1.needsDetail, false);
  });
});

describe("ordering and idempotence", () => {
  test("cell_ended before batch_created creates a stub that the created event completes", () => {
    const state = reduceAll([cellEnded(0, 1, { now: T0 + 1 }), created("b1", 3, T0 + 2)]);
    const batch = state.batches.b1;
    assert.equal(batch.name, "cfg sweep");
    assert.equal(batch.counts.done, 1);
    assert.equal(batch.counts.total, 3);
    assert.equal(batch.state, "active");
    assert.equal(batch.needsDetail, true, "the stub asks for the full picture");
  });

  test("cell events in reverse order end with the newest counts", () => {
    const state = reduceAll([created(), cellEnded(1, 2, { now: T0 + 2 }), cellEnded(0, 1, { now: T0 + 3 })]);
    assert.equal(state.batches.b1.counts.done, 2);
    assert.deepEqual(Object.keys(state.batches.b1.cells).sort(), ["0", "1"]);
  });

  test("finished before the last cell_ended stays finished and still records the cell", () => {
    const state = reduceAll([
      created("b1", 1, T0),
      event("wi.batch_finished", { batch_id: "b1", state: "complete", grid: null }, T0 + 5),
      cellEnded(0, 1, { total: 1, now: T0 + 6 }),
    ]);
    assert.equal(state.batches.b1.state, "complete");
    assert.equal(state.batches.b1.cells[0].status, "done");
    assert.equal(state.batches.b1.counts.done, 1);
  });

  test("duplicate events return the very same state object", () => {
    const once = reduceAll([created(), cellEnded(0, 1, { now: T0 + 1 })]);
    assert.equal(reduceBatches(once, created("b1", 3, T0 + 2)), once);
    assert.equal(reduceBatches(once, cellEnded(0, 1, { now: T0 + 3 })), once);
    const finished = reduceBatches(once, event("wi.batch_finished", { batch_id: "b1", state: "complete", grid: null }, T0 + 4));
    assert.equal(reduceBatches(finished, event("wi.batch_finished", { batch_id: "b1", state: "complete", grid: null }, T0 + 5)), finished);
  });

  test("a second ended status for the same cell does not overwrite the first", () => {
    const state = reduceAll([created(), cellEnded(0, 1, { now: T0 + 1 }), cellEnded(0, 1, { status: "cancelled", now: T0 + 2 })]);
    assert.equal(state.batches.b1.cells[0].status, "done");
  });

  test("unknown actions and malformed events leave the state untouched", () => {
    const state = reduceAll([created()]);
    assert.equal(reduceBatches(state, { type: "nope" }), state);
    assert.equal(reduceBatches(state, undefined), state);
    assert.equal(actionFromEvent("wi.cell_ended", { index: 1 }, T0), null);
    assert.equal(actionFromEvent("wi.unknown", { batch_id: "b1" }, T0), null);
    assert.equal(reduceBatches(state, event("wi.cell_ended", { batch_id: "b1", index: -1, status: "done" }, T0)), state);
  });
});

describe("several batches", () => {
  test("events for different batches never mix", () => {
    const state = reduceAll([
      created("a", 2, T0),
      created("b", 4, T0 + 1),
      cellEnded(0, 1, { batchId: "a", total: 2, now: T0 + 2 }),
      cellEnded(3, 0, { batchId: "b", total: 4, status: "failed", failed: 1, now: T0 + 3 }),
    ]);
    assert.deepEqual(state.batches.a.counts, counts(2, 1));
    assert.deepEqual(state.batches.b.counts, { ...counts(4, 0, 1), pending: 3 });
    assert.equal(state.batches.b.cells[3].status, "failed");
    assert.deepEqual(runningBatches(state).map((batch) => batch.id), ["b", "a"]);
  });

  test("running batches sort before finished ones; dismiss and clear remove only finished ones", () => {
    let state = reduceAll([
      created("done-1", 1, T0),
      event("wi.batch_finished", { batch_id: "done-1", state: "complete", grid: null }, T0 + 1),
      created("running", 1, T0 + 2),
      created("done-2", 1, T0 + 3),
      event("wi.batch_cancelled", { batch_id: "done-2", removed: [] }, T0 + 4),
    ]);
    assert.deepEqual(sortedBatches(state).map((batch) => batch.id), ["running", "done-2", "done-1"]);
    assert.equal(reduceBatches(state, { type: ActionType.dismiss, batchId: "running" }), state);
    state = reduceBatches(state, { type: ActionType.dismiss, batchId: "done-1" });
    assert.deepEqual(Object.keys(state.batches).sort(), ["done-2", "running"]);
    state = reduceBatches(state, { type: ActionType.clearFinished });
    assert.deepEqual(Object.keys(state.batches), ["running"]);
  });

  test("only the most recent finished batches are kept", () => {
    const actions = [];
    for (let index = 0; index < MAX_FINISHED_BATCHES + 5; index += 1) {
      actions.push(created(`b${index}`, 1, T0 + index));
    }
    let state = reduceAll(actions);
    const summaries = actions.map((_, index) => ({ batch_id: `b${index}`, state: "complete", counts: counts(1, 1), created_at: index }));
    state = reduceBatches(state, { type: ActionType.statusList, batches: summaries, requestedAt: T0 + 100, now: T0 + 100 });
    assert.equal(Object.keys(state.batches).length, MAX_FINISHED_BATCHES);
    assert.ok(!("b0" in state.batches));
    assert.ok(`b${MAX_FINISHED_BATCHES + 4}` in state.batches);
  });
});

describe("timing", () => {
  test("without server timings the rate is elapsed time over ended cells", () => {
    const state = reduceAll([created("b1", 4, T0), cellEnded(0, 1, { total: 4, now: T0 + 10_000 }), cellEnded(1, 2, { total: 4, now: T0 + 20_000 })]);
    const batch = state.batches.b1;
    assert.equal(batch.secondsPerCell, 10);
    assert.equal(etaSeconds(batch, T0 + 20_000), 20);
    assert.equal(etaSeconds(batch, T0 + 25_000), 15);
    assert.equal(etaSeconds(batch, T0 + 90_000), 0, "never negative");
  });

  test("an unmeasured batch has no ETA and no elapsed time", () => {
    const state = reduceAll([cellEnded(0, 1, { now: T0 })]);
    assert.equal(etaSeconds(state.batches.b1, T0 + 1), null);
    assert.equal(elapsedSeconds(state.batches.b1, T0 + 1), null);
  });

  test("a collecting batch has nothing left to wait for", () => {
    const detail = detailSnapshot({ state: "collecting", counts: counts(3, 3) });
    const state = reduceBatches(createInitialState(), { type: ActionType.statusDetail, detail, now: T0 });
    assert.equal(etaSeconds(state.batches.b1, T0), 0);
  });
});

describe("interrupted (restored after a ComfyUI restart) and resume", () => {
  /** What GET /wi/status lists after the restart: 2 of 6 cells done, the rest queued, no prompt running. */
  function interruptedSummary(overrides = {}) {
    return { batch_id: "b1", batch_name: "crashy", state: "interrupted", counts: counts(6, 2), created_at: 100, timings: { elapsed_s: 30 }, ...overrides };
  }

  function listed(summaries, requestedAt, now = requestedAt + 5) {
    return { type: ActionType.statusList, batches: summaries, requestedAt, now };
  }

  test("a batch listed as interrupted after a reload is interrupted, not queued, and does not count as running", () => {
    const state = reduceBatches(createInitialState(), listed([interruptedSummary()], T0));
    assert.equal(state.batches.b1.state, "interrupted");
    assert.deepEqual(runningBatches(state), []);
    assert.equal(etaSeconds(state.batches.b1, T0 + 60_000), null);
    // Elapsed time does not tick while nothing runs.
    assert.equal(elapsedSeconds(state.batches.b1, T0 + 60_000), elapsedSeconds(state.batches.b1, T0 + 5));
  });

  test("a tab that saw the batch running learns from the next list that ComfyUI restarted under it", () => {
    let state = reduceAll([created("b1", 6, T0), cellEnded(0, 1, { total: 6 }), cellEnded(1, 2, { total: 6 })]);
    assert.equal(state.batches.b1.state, "active");
    state = reduceBatches(state, listed([interruptedSummary()], T0 + 10_000));
    assert.equal(state.batches.b1.state, "interrupted");
    assert.deepEqual(runningBatches(state), []);
  });

  test("the server's restored batch_created event makes the batch interrupted, not active", () => {
    const state = reduceAll([created("b1", 6, T0, { restored: true })]);
    assert.equal(state.batches.b1.state, "interrupted");
  });

  test("events never make a batch interrupted, and a finished batch stays finished", () => {
    let state = reduceAll([created("b1", 2, T0), cellEnded(0, 1, { total: 2 }), cellEnded(1, 2, { total: 2 })]);
    state = reduceAll([event("wi.batch_finished", { batch_id: "b1", state: "complete", grid: { filename: "g.png" } }, T0 + 1)], state);
    state = reduceBatches(state, listed([interruptedSummary({ counts: counts(2, 2) })], T0 + 2));
    assert.equal(state.batches.b1.state, "complete");
  });

  test("resume accepted: active again, running, and a snapshot requested before the resume cannot undo it", () => {
    let state = reduceBatches(createInitialState(), listed([interruptedSummary()], T0));
    state = reduceBatches(state, { type: ActionType.resumeAccepted, batchId: "b1", response: { state: "active", queued: 4, already_saved: 0 }, now: T0 + 1000 });
    assert.equal(state.batches.b1.state, "active");
    assert.deepEqual(runningBatches(state).map((batch) => batch.id), ["b1"]);
    assert.ok(batchesNeedingDetail(state).includes("b1"));
    // A poll sent before the click answers "interrupted" after it.
    const stale = reduceBatches(state, { type: ActionType.statusDetail, detail: detailSnapshot({ state: "interrupted", counts: counts(6, 2) }), requestedAt: T0 + 500, now: T0 + 1100 });
    assert.equal(stale.batches.b1.state, "active");
    const staleList = reduceBatches(state, listed([interruptedSummary()], T0 + 500, T0 + 1100));
    assert.equal(staleList.batches.b1.state, "active");
    // A snapshot asked for after the resume is believed: ComfyUI may have died again.
    const again = reduceBatches(state, listed([interruptedSummary()], T0 + 2000));
    assert.equal(again.batches.b1.state, "interrupted");
  });

  test("resume with nothing left to run goes straight to building the grid, then completes", () => {
    let state = reduceBatches(createInitialState(), listed([interruptedSummary({ counts: counts(6, 6) })], T0));
    state = reduceBatches(state, { type: ActionType.resumeAccepted, batchId: "b1", response: { state: "collecting", queued: 0, already_saved: 0 }, now: T0 + 1 });
    assert.equal(state.batches.b1.state, "collecting");
    state = reduceAll([event("wi.batch_finished", { batch_id: "b1", state: "complete", grid: { filename: "g.png" } }, T0 + 2)], state);
    assert.equal(state.batches.b1.state, "complete");
  });

  test("another tab's resume shows up as progress: a cell event moves the batch out of interrupted", () => {
    let state = reduceBatches(createInitialState(), listed([interruptedSummary()], T0));
    state = reduceAll([cellEnded(2, 3, { total: 6, now: T0 + 5000 })], state);
    assert.equal(state.batches.b1.state, "active");
  });

  test("a resume answer for a batch that is not interrupted changes nothing", () => {
    const state = reduceAll([created()]);
    assert.equal(reduceBatches(state, { type: ActionType.resumeAccepted, batchId: "b1", response: { state: "active" }, now: T0 + 1 }), state);
  });

  test("an interrupted batch can be cancelled", () => {
    let state = reduceBatches(createInitialState(), listed([interruptedSummary()], T0));
    state = reduceBatches(state, { type: ActionType.cancelAccepted, batchId: "b1", response: {}, now: T0 + 1 });
    assert.equal(state.batches.b1.state, "cancelled");
  });
});
