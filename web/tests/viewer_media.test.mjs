import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { cellOutputs, isPictureOutput, kindOfPath, primaryOutput, syncedTime, valueTitle } from "../viewer/media.mjs";

describe("viewer media", () => {
  test("outputs are taken as recorded, entries without a path (or text) left out", () => {
    const cell = { outputs: [
      { kind: "audio", path: "a.wav", node_id: "9", media_type: "audio/wav" },
      { kind: "video", path: "v.webm", node_id: "8", media_type: "video/webm" },
      { kind: "text", text: "hello", node_id: "7", media_type: "text/plain" },
      { kind: "image" }, { kind: "hologram", path: "x" },
    ], files: ["ignored.png"] };
    assert.deepEqual(cellOutputs(cell).map((o) => o.kind), ["audio", "video", "text"]);
    assert.equal(primaryOutput(cell).kind, "video"); // the first visual output is the tile
  });

  test("without outputs, files are read by extension (batches written before outputs existed)", () => {
    assert.deepEqual(cellOutputs({ files: ["c.png", "d.MP4", "e.flac", "f.gif", "g.txt"] }).map((o) => o.kind),
      ["image", "video", "audio", "animated", "text"]);
    assert.equal(kindOfPath("x.webp"), "image");
    assert.deepEqual(cellOutputs(null), []);
    assert.equal(primaryOutput({ files: [] }), null);
  });

  test("an audio-only cell shows its player as the tile", () => {
    assert.equal(primaryOutput({ outputs: [{ kind: "audio", path: "a.wav" }] }).kind, "audio");
  });

  test("only image outputs can be compared pixel by pixel", () => {
    assert.ok(isPictureOutput({ kind: "animated", path: "a.webp" }));
    assert.ok(!isPictureOutput({ kind: "video", path: "a.webm" }));
    assert.ok(!isPictureOutput(null));
  });

  test("synced scrubbing: a shorter clip holds its last frame", () => {
    assert.equal(syncedTime(0.5, 10, 10), 5);
    assert.equal(syncedTime(0.5, 2, 10), 2);
    assert.equal(syncedTime(1.5, 4, 4), 4);
    assert.equal(syncedTime(0.5, NaN, 10), 0);
  });
  test("a linked group's or a bundle's value reads as name=value pairs, not [object Object]", () => {
    assert.equal(valueTitle({ sampler: "euler", cfg: 7.5 }), "sampler=euler, cfg=7.5");
    assert.equal(valueTitle({ width: 512, height: 768 }), "width=512, height=768");
    assert.equal(valueTitle("a cat, running"), "a cat, running");
    assert.equal(valueTitle(0.3), "0.3");
    assert.equal(valueTitle(false), "false");
    assert.equal(valueTitle([1, 2]), "[1,2]");
    assert.equal(valueTitle(null), "");
  });
});
