import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { blendTransfer, clampFraction, diffPixels, diffSummary, nextPick, stepWipe, wipeClip } from "../viewer/compare.mjs";

function rgba(...pixels) {
  return new Uint8ClampedArray(pixels.flat());
}

describe("viewer compare", () => {
  test("the wipe shows B right of the line, clamped to the image", () => {
    assert.equal(wipeClip(0.25), "inset(0 0 0 25.00%)");
    assert.equal(wipeClip(2), "inset(0 0 0 100.00%)");
    assert.equal(clampFraction("x"), 0.5);
    assert.equal(stepWipe(0.5, 1, false), 0.55);
    assert.equal(stepWipe(0.5, -1, true), 0.49);
    assert.equal(stepWipe(0.02, -1, false), 0);
  });

  test("picking fills A, then B, then starts over; the same cell twice stays A only", () => {
    assert.deepEqual(nextPick([null, null], 3), [3, null]);
    assert.deepEqual(nextPick([3, null], 3), [3, null]);
    assert.deepEqual(nextPick([3, null], 7), [3, 7]);
    assert.deepEqual(nextPick([3, 7], 1), [1, null]);
  });

  test("equal images have no difference", () => {
    const a = rgba([10, 20, 30, 255], [200, 0, 0, 255]);
    const r = diffPixels(a, a.slice(), { threshold: 0, amplify: 4 });
    assert.equal(r.changed, 0);
    assert.equal(r.maxDiff, 0);
    assert.deepEqual([...r.data], [0, 0, 0, 255, 0, 0, 0, 255]);
    assert.equal(diffSummary(r), "identical");
  });

  test("a changed pixel shows its amplified difference and counts", () => {
    const a = rgba([10, 20, 30, 255], [200, 0, 0, 255]);
    const b = rgba([10, 20, 30, 255], [190, 0, 100, 255]);
    const r = diffPixels(a, b, { threshold: 0, amplify: 2 });
    assert.equal(r.changed, 1);
    assert.equal(r.maxDiff, 100);
    assert.deepEqual([...r.data.slice(4)], [20, 0, 200, 255]);
    assert.match(diffSummary(r), /^50\.0 % of pixels differ \(max 100\)$/);
  });

  test("the threshold hides small differences", () => {
    const a = rgba([0, 0, 0, 255], [0, 0, 0, 255]);
    const b = rgba([5, 0, 0, 255], [60, 0, 0, 255]);
    const r = diffPixels(a, b, { threshold: 10, amplify: 1 });
    assert.equal(r.changed, 1);
    assert.deepEqual([...r.data.slice(0, 4)], [0, 0, 0, 255]);
  });

  test("buffers of different sizes are refused", () => {
    assert.throws(() => diffPixels(rgba([0, 0, 0, 0]), rgba([0, 0, 0, 0], [0, 0, 0, 0])), /same size/);
  });

  test("the blend filter maps a channel to amplify * (d - threshold)", () => {
    const t = blendTransfer(51, 4);
    assert.equal(t.slope, 4);
    assert.ok(Math.abs(t.intercept - -0.8) < 1e-12);
  });
});
