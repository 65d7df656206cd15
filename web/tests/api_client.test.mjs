import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { WIApiError, buildPreviewBody, buildViewRoute, createApiClient } from "../lib/api_client.mjs";

/** Stands in for ComfyUI's `api`: records every fetchApi call and answers from a queue of canned responses. */
function recordingApi(responses = [], { withApiUrl = true } = {}) {
  const calls = [];
  const api = {
    calls,
    async fetchApi(route, init) {
      calls.push({ route, init });
      const next = responses.shift() ?? { status: 200, body: {} };
      const text = typeof next.body === "string" ? next.body : JSON.stringify(next.body);
      return { ok: next.status >= 200 && next.status < 300, status: next.status, text: async () => text };
    },
  };
  if (withApiUrl) api.apiURL = (route) => `/base/api${route}`;
  return api;
}

describe("requests", () => {
  test("listBatches GETs /wi/status and returns the batches array", async () => {
    const api = recordingApi([{ status: 200, body: { batches: [{ batch_id: "b1" }] } }]);
    assert.deepEqual(await createApiClient(api).listBatches(), [{ batch_id: "b1" }]);
    assert.deepEqual(api.calls, [{ route: "/wi/status", init: { method: "GET" } }]);
  });

  test("a list without batches is an empty list", async () => {
    const api = recordingApi([{ status: 200, body: {} }]);
    assert.deepEqual(await createApiClient(api).listBatches(), []);
  });

  test("getBatch and cancelBatch escape the id into the path", async () => {
    const api = recordingApi([{ status: 200, body: { batch_id: "a/b" } }, { status: 200, body: { state: "cancelled" } }]);
    const client = createApiClient(api);
    await client.getBatch("a/b");
    await client.cancelBatch("a b");
    assert.deepEqual(api.calls, [
      { route: "/wi/status/a%2Fb", init: { method: "GET" } },
      { route: "/wi/cancel_batch/a%20b", init: { method: "POST" } },
    ]);
  });

  test("resumeBatch POSTs /wi/resume/{id}; a 409 becomes a WIApiError with the server's reason", async () => {
    const api = recordingApi([
      { status: 200, body: { batch_id: "b 1", state: "active", queued: 4, already_saved: 0 } },
      { status: 409, body: { error: "invalid_state", detail: 'batch "b1" is complete, not interrupted' } },
    ]);
    const client = createApiClient(api);
    assert.deepEqual(await client.resumeBatch("b 1"), { batch_id: "b 1", state: "active", queued: 4, already_saved: 0 });
    await assert.rejects(client.resumeBatch("b1"), (error) => error instanceof WIApiError && error.status === 409 && /not interrupted/.test(error.message));
    assert.deepEqual(api.calls.map((call) => [call.route, call.init.method]), [["/wi/resume/b%201", "POST"], ["/wi/resume/b1", "POST"]]);
  });

  test("preview POSTs a JSON body with the parameters as typed", async () => {
    const api = recordingApi([{ status: 200, body: { count: 4, axes: [], errors: [], grid: null } }]);
    const signal = new AbortController().signal;
    const result = await createApiClient(api).preview(
      { parameters: [{ nodeId: 3, name: "cfg", type: "FLOAT", values: "4, 6" }], mode: "linear", imageSize: [832, 1216] },
      { signal },
    );
    assert.equal(result.count, 4);
    const [{ route, init }] = api.calls;
    assert.equal(route, "/wi/preview");
    assert.equal(init.method, "POST");
    assert.equal(init.headers["Content-Type"], "application/json");
    assert.equal(init.signal, signal);
    assert.deepEqual(JSON.parse(init.body), {
      parameters: [{ name: "cfg", type: "FLOAT", values: "4, 6", node_id: "3" }],
      mode: "linear",
      image_size: [832, 1216],
    });
  });
});

describe("errors", () => {
  test("a JSON error body becomes a WIApiError with status, error and detail", async () => {
    const api = recordingApi([{ status: 409, body: { error: "invalid state", detail: "batch already complete" } }]);
    await assert.rejects(createApiClient(api).cancelBatch("b1"), (error) => {
      assert.ok(error instanceof WIApiError);
      assert.equal(error.status, 409);
      assert.equal(error.error, "invalid state");
      assert.equal(error.detail, "batch already complete");
      assert.equal(error.message, "invalid state: batch already complete");
      assert.equal(error.route, "/wi/cancel_batch/b1");
      return true;
    });
  });

  test("a non-JSON error body still gives the HTTP status", async () => {
    const api = recordingApi([{ status: 404, body: "404: Not Found" }]);
    await assert.rejects(createApiClient(api).getBatch("x"), { name: "WIApiError", status: 404, message: "HTTP 404" });
  });

  test("an empty success body is an error, not a silent null", async () => {
    const api = recordingApi([{ status: 200, body: "" }]);
    await assert.rejects(createApiClient(api).getBatch("x"), /empty or invalid JSON/);
  });
});

describe("request building", () => {
  test("preview body defaults: matrix mode, STRING type, no image size, options only as a list", () => {
    assert.deepEqual(buildPreviewBody({ parameters: [{ name: "p", values: "a", options: ["a", "b"] }, { name: "q", options: "a" }], mode: "zigzag" }), {
      parameters: [
        { name: "p", type: "STRING", values: "a", options: ["a", "b"] },
        { name: "q", type: "STRING", values: "" },
      ],
      mode: "matrix",
    });
    assert.equal(buildPreviewBody({ parameters: [], unequalLengths: "error" }).unequal_lengths, "error");
    assert.equal(buildPreviewBody({ parameters: [], unequalLengths: "sometimes" }).unequal_lengths, undefined);
    assert.equal(buildPreviewBody({ parameters: [], imageSize: [0, 512] }).image_size, undefined);
    assert.deepEqual(buildPreviewBody({}).parameters, []);
  });

  test("view routes encode the file reference and default to output", () => {
    assert.equal(buildViewRoute({ filename: "grid 1.png", subfolder: "wi/b1" }), "/view?filename=grid+1.png&subfolder=wi%2Fb1&type=output");
    assert.equal(buildViewRoute({ filename: "v.html", subfolder: "", type: "temp" }), "/view?filename=v.html&subfolder=&type=temp");
    // The viewer names its own route so it opens as a page; foreign routes are ignored.
    assert.equal(buildViewRoute({ filename: "viewer.html", subfolder: "WI/b", route: "/wi/batch/b/viewer.html" }), "/wi/batch/b/viewer.html");
    assert.equal(buildViewRoute({ filename: "x.png", subfolder: "", route: "https://evil.example/x" }), "/view?filename=x.png&subfolder=&type=output");
  });

  test("fileUrl uses api.apiURL when present, /api otherwise", () => {
    const file = { filename: "g.png", subfolder: "", type: "output" };
    assert.equal(createApiClient(recordingApi()).fileUrl(file), "/base/api/view?filename=g.png&subfolder=&type=output");
    assert.equal(createApiClient(recordingApi([], { withApiUrl: false })).fileUrl(file), "/api/view?filename=g.png&subfolder=&type=output");
  });
});
