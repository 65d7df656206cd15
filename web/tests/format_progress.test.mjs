import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { formatDuration, formatEta, formatSize, plural } from "../lib/format.mjs";
import {
  batchStateRank,
  cellTitle,
  countsFromCells,
  displayedCellStatus,
  endedCount,
  moreAdvancedCounts,
  normaliseCounts,
  progressPercent,
  progressSegments,
  progressText,
  remainingCount,
  tileClassName,
} from "../lib/progress.mjs";

describe("formatDuration", () => {
  const cases = [
    [0, "0s"],
    [0.9, "0s"],
    [42, "42s"],
    [59.99, "59s"],
    [60, "1m 00s"],
    [185, "3m 05s"],
    [3599, "59m 59s"],
    [3600, "1h 00m"],
    [3725, "1h 02m"],
    [90061, "25h 01m"],
  ];
  for (const [seconds, expected] of cases) {
    test(`${seconds}s reads ${expected}`, () => assert.equal(formatDuration(seconds), expected));
  }
  test("missing or negative values read as a dash", () => {
    for (const value of [null, undefined, Number.NaN, -1, Infinity, "12"]) assert.equal(formatDuration(value), "—");
  });
});

describe("formatEta", () => {
  const cases = [
    [0, "1s"],
    [0.2, "1s"],
    [42.1, "43s"],
    [60, "1m"],
    [150, "3m"],
    [3569, "59m"],
    [3600, "1h 00m"],
    [5430, "1h 31m"],
  ];
  for (const [seconds, expected] of cases) {
    test(`${seconds}s reads ${expected}`, () => assert.equal(formatEta(seconds), expected));
  }
  test("unknown reads as a dash", () => assert.equal(formatEta(null), "—"));
});

test("formatSize and plural", () => {
  assert.equal(formatSize(1024, 768.4), "1024×768");
  assert.equal(formatSize(undefined, 3), "—");
  assert.equal(plural(1, "prompt"), "1 prompt");
  assert.equal(plural(0, "prompt"), "0 prompts");
  assert.equal(plural(2, "match", "matches"), "2 matches");
});

describe("progress maths", () => {
  const counts = { total: 10, done: 4, failed: 1, cancelled: 2, running: 1, pending: 2 };

  test("ended, remaining and k/N", () => {
    assert.equal(endedCount(counts), 7);
    assert.equal(remainingCount(counts), 3);
    assert.equal(progressText(counts), "7/10");
    assert.equal(progressPercent(counts), 70);
    assert.equal(progressText(null), "0/0");
    assert.equal(progressPercent({ total: 0 }), 0);
  });

  test("segments are in display order with fractions of the total, empty ones omitted", () => {
    assert.deepEqual(progressSegments(counts), [
      { kind: "done", count: 4, fraction: 0.4 },
      { kind: "failed", count: 1, fraction: 0.1 },
      { kind: "cancelled", count: 2, fraction: 0.2 },
      { kind: "running", count: 1, fraction: 0.1 },
    ]);
    assert.deepEqual(progressSegments({ total: 3, done: 0 }), []);
    assert.deepEqual(progressSegments({ total: 0, done: 5 }), []);
  });

  test("normaliseCounts fills gaps and derives pending", () => {
    assert.deepEqual(normaliseCounts({ total: 5, done: 2 }), { total: 5, done: 2, failed: 0, cancelled: 0, pending: 3, running: 0 });
    assert.deepEqual(normaliseCounts(null, 4), { total: 4, done: 0, failed: 0, cancelled: 0, pending: 4, running: 0 });
    assert.equal(normaliseCounts({ total: -3, done: "x" }).total, 0);
  });

  test("countsFromCells treats unknown cells as queued", () => {
    const cells = { 0: { index: 0, status: "done" }, 2: { index: 2, status: "failed" }, 3: { index: 3, status: "running" } };
    assert.deepEqual(countsFromCells(cells, 5), { total: 5, done: 1, failed: 1, cancelled: 0, pending: 2, running: 1 });
  });

  test("moreAdvancedCounts keeps whichever has more ended cells", () => {
    const older = normaliseCounts({ total: 4, done: 1 });
    const newer = normaliseCounts({ total: 4, done: 1, failed: 1 });
    assert.equal(moreAdvancedCounts(older, newer), newer);
    assert.equal(moreAdvancedCounts(newer, older), newer);
    assert.equal(moreAdvancedCounts(older, { ...older }), older, "equal content keeps the current object");
    assert.equal(moreAdvancedCounts(null, older), older);
  });

  test("batch states rank so that terminal states share the top", () => {
    assert.ok(batchStateRank("pending") < batchStateRank("active"));
    assert.ok(batchStateRank("active") < batchStateRank("collecting"));
    assert.equal(batchStateRank("complete"), batchStateRank("cancelled"));
    assert.equal(batchStateRank("bogus"), -1);
  });
});

describe("tiles", () => {
  test("class names map every status, unknown ones to queued", () => {
    for (const status of ["queued", "running", "done", "failed", "cancelled"]) {
      assert.equal(tileClassName(status), `wi-tile wi-tile--${status}`);
    }
    assert.equal(tileClassName("weird"), "wi-tile wi-tile--queued");
  });

  test("cells that never ran show as cancelled once the batch stopped", () => {
    assert.equal(displayedCellStatus("queued", "cancelled"), "cancelled");
    assert.equal(displayedCellStatus("running", "expired"), "cancelled");
    assert.equal(displayedCellStatus("done", "cancelled"), "done");
    assert.equal(displayedCellStatus("queued", "active"), "queued");
    assert.equal(displayedCellStatus(undefined, "active"), "queued");
  });

  test("a cancelled batch's open cell keeps its status until it ends (tiles agree with the counts)", () => {
    // CI, 0.3.64 + 1.58.1: after a cancel every tile read ended while the progress said 7/8.
    const stillRunning = { total: 8, done: 1, cancelled: 6, running: 1, pending: 0 };
    assert.equal(displayedCellStatus("running", "cancelled", stillRunning), "running");
    assert.equal(displayedCellStatus("queued", "cancelled", stillRunning), "queued", "not known yet which cell runs");
    assert.equal(displayedCellStatus("cancelled", "cancelled", stillRunning), "cancelled");
    const allEnded = { total: 8, done: 2, cancelled: 6, running: 0, pending: 0 };
    assert.equal(displayedCellStatus("queued", "cancelled", allEnded), "cancelled");
    assert.equal(displayedCellStatus("running", "expired", stillRunning), "cancelled", "an expired batch never reports again");
  });

  test("a tile title lists the index, status, values and error", () => {
    const title = cellTitle({ index: 2, values: { cfg: 7.5, sampler: "euler", hires: true }, error: "CUDA out of memory" }, "failed");
    assert.equal(title, "#3 · failed\ncfg = 7.5\nsampler = euler\nhires = true\nerror: CUDA out of memory");
    assert.equal(cellTitle({ index: 0 }, "queued"), "#1 · queued");
  });
});
