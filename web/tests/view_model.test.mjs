import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ActionType, actionFromEvent, createInitialState, reduceBatches } from "../lib/batch_state.mjs";
import { batchCancelledToast, batchFinishedToast, isForThisClient, paramErrorToast, sizeWarningToast } from "../lib/toasts.mjs";
import { batchView, indicatorView } from "../lib/view_model.mjs";

const T0 = 1_700_000_000_000;

function reduceEvents(events) {
  return events.reduce((state, [name, detail, now]) => reduceBatches(state, actionFromEvent(name, detail, now)), createInitialState());
}

function runningState() {
  return reduceEvents([
    ["wi.batch_created", { batch_id: "b1", batch_name: "cfg", total: 40, client_id: "c" }, T0],
    ...Array.from({ length: 12 }, (_, index) => [
      "wi.cell_ended",
      { batch_id: "b1", index, status: "done", counts: { total: 40, done: index + 1, failed: 0, cancelled: 0, running: 0 } },
      T0 + (index + 1) * 10_000,
    ]),
  ]);
}

describe("indicatorView", () => {
  test("hidden when nothing runs", () => {
    assert.deepEqual(indicatorView(createInitialState(), T0), { visible: false, text: "", title: "" });
  });

  test("one running batch reads 'Sweep k/N · ETA'", () => {
    const view = indicatorView(runningState(), T0 + 120_000);
    assert.equal(view.visible, true);
    assert.equal(view.text, "Sweep 12/40 · ETA 5m");
    assert.equal(view.progressText, "12/40");
    assert.equal(view.title, "cfg: 12/40 (running)");
  });

  test("several running batches add up", () => {
    const state = reduceBatches(runningState(), actionFromEvent("wi.batch_created", { batch_id: "b2", total: 10 }, T0 + 120_000));
    const view = indicatorView(state, T0 + 120_000);
    assert.equal(view.text, "2 sweeps 12/50", "no ETA while one batch is unmeasured");
  });

  test("a collecting batch says it is building the grid", () => {
    const detail = { batch_id: "b1", state: "collecting", counts: { total: 2, done: 2 }, cells: [] };
    const state = reduceBatches(createInitialState(), { type: ActionType.statusDetail, detail, now: T0 });
    assert.equal(indicatorView(state, T0).text, "Sweep 2/2 · building grid");
  });
});

describe("batchView", () => {
  test("a running batch shows progress, elapsed, ETA and a cancel button", () => {
    const view = batchView(runningState().batches.b1, T0 + 125_000);
    assert.equal(view.name, "cfg");
    assert.equal(view.stateLabel, "running");
    assert.equal(view.progressText, "12/40");
    assert.equal(view.percent, 30);
    assert.equal(view.elapsedText, "2m 05s");
    assert.equal(view.etaText, "5m");
    assert.equal(view.canCancel, true);
    assert.equal(view.isFinished, false);
    assert.equal(view.tiles.length, 40);
    assert.equal(view.tiles[0].className, "wi-tile wi-tile--done");
    assert.equal(view.tiles[39].status, "queued");
    assert.equal(view.gridUrl, null);
  });

  test("tiles beyond the cap are summarised", () => {
    const view = batchView(runningState().batches.b1, T0, { maxTiles: 10 });
    assert.equal(view.tiles.length, 10);
    assert.equal(view.hiddenTileCount, 30);
  });

  test("a finished batch links its grid and viewer, and has no ETA or cancel", () => {
    const grid = { filename: "grid.png", subfolder: "wi", type: "output", viewer: { filename: "index.html", subfolder: "wi", type: "output" } };
    const state = reduceBatches(runningState(), actionFromEvent("wi.batch_finished", { batch_id: "b1", state: "complete", grid }, T0 + 130_000));
    const view = batchView(state.batches.b1, T0 + 500_000, { fileUrl: (file) => `url:${file.filename}` });
    assert.equal(view.gridUrl, "url:grid.png");
    assert.equal(view.viewerUrl, "url:index.html");
    assert.equal(view.etaText, null);
    assert.equal(view.canCancel, false);
    assert.equal(view.isFinished, true);
    assert.equal(view.elapsedText, "2m 10s");
    assert.equal(view.tiles[39].status, "cancelled", "cells that never ran read as cancelled");
  });

  test("after a cancel, the tiles show no more ended cells than the progress text until the running cell ends", () => {
    const total = 8;
    const counts = (done, cancelled, running) => ({ total, done, failed: 0, cancelled, running, pending: total - done - cancelled - running });
    let state = reduceEvents([
      ["wi.batch_created", { batch_id: "b1", batch_name: "cancel", total }, T0],
      ["wi.cell_ended", { batch_id: "b1", index: 0, status: "done", counts: counts(1, 0, 0) }, T0 + 1000],
      ["wi.batch_cancelled", { batch_id: "b1", counts: counts(1, 6, 1) }, T0 + 2000],
    ]);
    const ended = (view) => view.tiles.filter((tile) => tile.status !== "queued" && tile.status !== "running").length;
    let view = batchView(state.batches.b1, T0 + 2000);
    assert.equal(view.progressText, "7/8");
    assert.ok(ended(view) <= 7, `tiles: ${view.tiles.map((tile) => tile.status)}`);
    // The detail names the running cell; its end (ComfyUI stopped it) closes the batch's last cell.
    const detail = { batch_id: "b1", state: "cancelled", counts: counts(1, 6, 1), cell_statuses: "drcccccc", cells: [] };
    state = reduceBatches(state, { type: ActionType.statusDetail, detail, now: T0 + 2100 });
    view = batchView(state.batches.b1, T0 + 2100);
    assert.equal(view.tiles[1].status, "running");
    assert.equal(ended(view), 7);
    state = reduceBatches(state, actionFromEvent("wi.cell_ended", { batch_id: "b1", index: 1, status: "cancelled", counts: counts(1, 7, 0) }, T0 + 2500));
    view = batchView(state.batches.b1, T0 + 2500);
    assert.equal(view.progressText, "8/8");
    assert.equal(ended(view), 8);
  });

  test("an unnamed batch gets a short id-based name", () => {
    const state = reduceEvents([["wi.batch_created", { batch_id: "0123456789abcdef", total: 1 }, T0]]);
    assert.equal(batchView(state.batches["0123456789abcdef"], T0).name, "Sweep 01234567");
  });
});

describe("toasts", () => {
  test("param error names the parameter and the problem", () => {
    assert.deepEqual(paramErrorToast({ param: "cfg", message: 'skipped "4-x": invalid range at position 2' }), {
      severity: "warn",
      summary: 'Sweep parameter "cfg"',
      detail: 'skipped "4-x": invalid range at position 2',
      life: 10000,
    });
  });

  test("a param error without a parameter is a sweep the server refused", () => {
    assert.deepEqual(paramErrorToast({ node_id: "9", param: null, message: 'parameter "cfg": empty value list' }), {
      severity: "error",
      summary: "Sweep not queued",
      detail: 'parameter "cfg": empty value list',
      life: 10000,
    });
  });

  test("size warning, finished and cancelled", () => {
    const batch = runningState().batches.b1;
    assert.equal(sizeWarningToast({ message: "too big" }, batch).severity, "warn");
    const finished = { ...batch, state: "complete", counts: { total: 40, done: 38, failed: 2, cancelled: 0, running: 0, pending: 0 } };
    assert.deepEqual(batchFinishedToast(finished, 125), {
      severity: "warn",
      summary: "Sweep finished: cfg",
      detail: "38 of 40 done, 2 failed, in 2m 05s",
      life: 5000,
    });
    assert.equal(batchFinishedToast({ ...finished, counts: { ...finished.counts, done: 40, failed: 0 } }, null).severity, "success");
    assert.equal(batchCancelledToast(batch, ["p1", "p2"]).detail, "2 queued prompts removed");
    assert.equal(batchFinishedToast({ ...batch, state: "cancelled" }, 1).summary, "Sweep cancelled: cfg");
  });

  test("only the originating tab toasts, unless the origin is unknown", () => {
    assert.equal(isForThisClient("a", "a"), true);
    assert.equal(isForThisClient("a", "b"), false);
    assert.equal(isForThisClient(null, "b"), true);
    assert.equal(isForThisClient("a", undefined), true);
  });
});

describe("interrupted batches in the panel and the pill", () => {
  function interruptedState() {
    const summary = {
      batch_id: "b1",
      batch_name: "crashy",
      state: "interrupted",
      counts: { total: 6, done: 2, failed: 0, cancelled: 0, running: 0, pending: 4 },
      created_at: 100,
    };
    return reduceBatches(createInitialState(), { type: ActionType.statusList, batches: [summary], requestedAt: T0, now: T0 });
  }

  test("the card reads 'interrupted', offers Resume (and Cancel), and shows no ETA", () => {
    const view = batchView(interruptedState().batches.b1, T0 + 1000);
    assert.equal(view.stateLabel, "interrupted");
    assert.equal(view.canResume, true);
    assert.equal(view.canCancel, true);
    assert.equal(view.isFinished, false);
    assert.equal(view.etaText, null);
    assert.equal(view.progressText, "2/6");
  });

  test("the pill does not count an interrupted batch as a running sweep", () => {
    assert.equal(indicatorView(interruptedState(), T0 + 1000).visible, false);
  });

  test("a running batch offers no Resume", () => {
    assert.equal(batchView(runningState().batches.b1, T0 + 130_000).canResume, false);
  });
});
