import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { assignPreviewErrors, iteratorBadge, parameterBadge, wrapText } from "../lib/badge.mjs";

const parameters = [
  { nodeId: 1, name: "steps", type: "INT", values: "20, 30" },
  { nodeId: 2, name: "cfg", type: "FLOAT", values: "4-x" },
];

describe("iteratorBadge", () => {
  test("prompt count, mode and grid size", () => {
    const preview = { count: 40, axes: [], errors: [], grid: { width: 4096, height: 5120, pages: 1, downscale: 1, warnings: [] } };
    assert.deepEqual(iteratorBadge({ settings: { enabled: true, mode: "matrix" }, preview }), {
      lines: ["40 prompts · matrix", "grid 4096×5120"],
      tone: "info",
    });
  });

  test("pages, downscale and warnings appear and turn the tone to warn", () => {
    const preview = { count: 1, errors: [], grid: { width: 8000, height: 8000, pages: 3, downscale: 0.5, warnings: ["grid split into 3 pages"] } };
    assert.deepEqual(iteratorBadge({ settings: { mode: "linear" }, preview }), {
      lines: ["1 prompt · linear", "grid 8000×8000 · 3 pages · scaled to 50%", "grid split into 3 pages"],
      tone: "warn",
    });
  });

  test("invalid parameters are counted and make the badge an error", () => {
    const preview = { count: 0, errors: [{ param: "cfg", message: "bad" }], grid: null };
    assert.deepEqual(iteratorBadge({ settings: { mode: "matrix" }, preview }), {
      lines: ["0 prompts · matrix · 1 invalid parameter"],
      tone: "error",
    });
  });

  test("messages that belong to no parameter are listed on the iterator", () => {
    const preview = { count: 0, errors: [], grid: null };
    const badge = iteratorBadge({ settings: {}, preview, iteratorMessages: ["too many combinations: 20000 > 10000"] });
    assert.deepEqual(badge.lines, ["0 prompts", "too many combinations: 20000 > 10000"]);
    assert.equal(badge.tone, "error");
  });

  test("disabled, chain problems, request failure and waiting states", () => {
    assert.equal(iteratorBadge({ settings: { enabled: false } }).tone, "muted");
    assert.deepEqual(iteratorBadge({ settings: {}, problems: [{ nodeId: 1, message: "broken link" }] }), { lines: ["broken link"], tone: "error" });
    assert.deepEqual(iteratorBadge({ settings: {}, requestError: "HTTP 500" }), { lines: ["Preview unavailable: HTTP 500"], tone: "warn" });
    assert.deepEqual(iteratorBadge({ settings: {} }), { lines: ["Sweep: computing…"], tone: "muted" });
  });
});

describe("assignPreviewErrors", () => {
  test("axis errors by position, errors by name, unknown names to the iterator", () => {
    const preview = {
      axes: [{ name: "steps", count: 2 }, { name: "cfg", count: 0, error: 'invalid range at position 2: "4-x"' }],
      errors: [
        { param: "cfg", message: 'invalid range at position 2: "4-x"' },
        { param: "", message: "too many combinations" },
        { param: "ghost", message: "unknown" },
      ],
    };
    const { byNode, unassigned } = assignPreviewErrors(parameters, preview);
    assert.deepEqual([...byNode.entries()], [[2, ['invalid range at position 2: "4-x"']]]);
    assert.deepEqual(unassigned, ["too many combinations", "ghost: unknown"]);
  });

  test("an echoed node_id picks the node even when names repeat", () => {
    const twins = [{ nodeId: 1, name: "cfg" }, { nodeId: 2, name: "cfg" }];
    const { byNode, unassigned } = assignPreviewErrors(twins, { errors: [{ param: "cfg", node_id: "2", message: "bad" }, { param: null, message: "too many" }] });
    assert.deepEqual([...byNode.entries()], [[2, ["bad"]]]);
    assert.deepEqual(unassigned, ["too many"]);
  });

  test("without node_id, duplicate names flag every node with that name", () => {
    const twins = [{ nodeId: 1, name: "cfg" }, { nodeId: 2, name: "cfg" }];
    const { byNode } = assignPreviewErrors(twins, { errors: [{ param: "cfg", message: "duplicate parameter name" }] });
    assert.deepEqual([...byNode.keys()], [1, 2]);
  });

  test("axes that do not line up with the request are ignored rather than misassigned", () => {
    const { byNode } = assignPreviewErrors(parameters, { axes: [{ name: "x", error: "e" }], errors: [] });
    assert.equal(byNode.size, 0);
  });

  test("no preview assigns nothing", () => {
    const { byNode, unassigned } = assignPreviewErrors(parameters, null);
    assert.equal(byNode.size, 0);
    assert.deepEqual(unassigned, []);
  });
});

test("parameterBadge shows errors first, else the value count, else nothing", () => {
  assert.deepEqual(parameterBadge({ errors: ["bad value"], axis: { count: 3 } }), { lines: ["bad value"], tone: "error" });
  assert.deepEqual(parameterBadge({ axis: { count: 1 } }), { lines: ["1 value"], tone: "info" });
  assert.equal(parameterBadge({}), null);
});

test("wrapText breaks at spaces within the width", () => {
  assert.deepEqual(wrapText("parameter cfg: invalid range at position 4", 16), ["parameter cfg:", "invalid range at", "position 4"]);
  assert.deepEqual(wrapText("averyveryverylongword short", 5), ["averyveryverylongword", "short"]);
  assert.deepEqual(wrapText("", 10), []);
});
