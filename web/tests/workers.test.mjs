import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { WIApiError, createApiClient } from "../lib/api_client.mjs";
import { ActionType, createInitialState, reduceBatches } from "../lib/batch_state.mjs";
import { ChoicesSupport, cellChoice, choicesFailure, choicesSummary, normaliseChoices, shouldAskChoices } from "../lib/choices.mjs";
import { batchView } from "../lib/view_model.mjs";
import {
  applyWorkerStateEvent,
  batchWorkersView,
  formErrorFromResponse,
  lastSeenText,
  workerBadge,
  workerFormValues,
  workerName,
  workerRequestBody,
  workersView,
} from "../lib/workers.mjs";

const NOW = 1_700_000_000_000;

/** Entries shaped exactly as GET /wi/workers answers (the issue 14 contract). */
function entry(overrides = {}) {
  return {
    id: "w-1",
    name: "gpu2",
    url: "http://10.0.0.2:8188",
    local: false,
    weight: 1,
    enabled: true,
    has_auth: false,
    health: { reachable: true, queue_depth: 0, last_seen: NOW / 1000 - 12, error: null },
    state: "idle",
    ...overrides,
  };
}

const LOCAL = entry({ id: "local", name: "This server", url: null, local: true, health: { reachable: true, queue_depth: 0, last_seen: null, error: null } });

describe("workersView", () => {
  test("the local server alone reads 'this server only' and cannot be deleted", () => {
    const view = workersView([LOCAL], NOW);
    assert.equal(view.summary, "this server only");
    assert.equal(view.remoteCount, 0);
    assert.deepEqual(view.rows.map((r) => [r.id, r.url, r.canDelete, r.lastSeen]), [["local", "this server", false, ""]]);
  });

  test("rows carry state, detail and last seen; the summary counts available workers", () => {
    const view = workersView([
      LOCAL,
      entry(),
      entry({ id: "w-2", name: "box", state: "busy", health: { reachable: true, queue_depth: 3, last_seen: NOW / 1000 - 2, error: null } }),
      entry({ id: "w-3", name: "dead", state: "unreachable", health: { reachable: false, queue_depth: null, last_seen: null, error: "cannot connect: Connection refused" } }),
      entry({ id: "w-4", name: "off", state: "disabled", enabled: false, has_auth: true, weight: 2 }),
    ], NOW);
    assert.equal(view.summary, "3 of 5 available");
    const byId = Object.fromEntries(view.rows.map((row) => [row.id, row]));
    assert.equal(byId["w-1"].lastSeen, "seen 12s ago");
    assert.equal(byId["w-2"].detail, "3 in queue");
    assert.equal(byId["w-3"].detail, "cannot connect: Connection refused");
    assert.equal(byId["w-3"].lastSeen, "never answered");
    assert.equal(byId["w-3"].className, "wi-worker wi-worker--unreachable");
    assert.deepEqual([byId["w-4"].stateLabel, byId["w-4"].enabled, byId["w-4"].hasAuth, byId["w-4"].weight], ["disabled", false, true, 2]);
  });

  test("an unknown state from a newer server is shown as unknown, never as idle", () => {
    const [row] = workersView([entry({ state: "draining" })], NOW).rows;
    assert.equal(row.state, "unknown");
    assert.equal(row.stateLabel, "unknown");
  });

  test("garbage in the list is skipped", () => {
    assert.deepEqual(workersView([null, 3, { name: "no id" }], NOW).rows, []);
    assert.deepEqual(workersView(undefined, NOW).rows, []);
  });

  test("last seen is relative to the page's clock", () => {
    assert.equal(lastSeenText(entry({ health: { last_seen: NOW / 1000 - 125 } }), NOW), "seen 2m 05s ago");
  });
});

describe("the worker form", () => {
  test("a new worker sends url, name, weight and enabled; no id", () => {
    const form = { ...workerFormValues(), url: " http://10.0.0.2:8188 ", name: "gpu2", weight: "2", enabled: true };
    assert.deepEqual(workerRequestBody(form), { body: { url: "http://10.0.0.2:8188", name: "gpu2", weight: 2, enabled: true } });
  });

  test("an edit sends the id; an empty auth field keeps the saved header, clearAuth removes it", () => {
    const values = workerFormValues(entry({ has_auth: true }));
    assert.equal(values.authHeader, "", "the auth value is never put back into the form");
    assert.equal(values.hasAuth, true);
    const kept = workerRequestBody(values).body;
    assert.equal(kept.id, "w-1");
    assert.equal("auth_header" in kept, false);
    assert.equal(workerRequestBody({ ...values, clearAuth: true }).body.auth_header, "");
    assert.equal(workerRequestBody({ ...values, authHeader: "X-Key: abc" }).body.auth_header, "X-Key: abc");
  });

  test("the local server's form sends neither url nor auth header", () => {
    const body = workerRequestBody({ ...workerFormValues(LOCAL), enabled: false }).body;
    assert.deepEqual(body, { id: "local", name: "This server", weight: 1, enabled: false });
  });

  test("what the page can tell at once is refused naming the field", () => {
    const base = workerFormValues();
    assert.equal(workerRequestBody({ ...base, url: "" }).field, "url");
    assert.equal(workerRequestBody({ ...base, url: "10.0.0.2:8188" }).field, "url");
    assert.equal(workerRequestBody({ ...base, url: "http://a:1", weight: "0" }).field, "weight");
    assert.equal(workerRequestBody({ ...base, url: "http://a:1", weight: "x" }).field, "weight");
    assert.equal(workerRequestBody({ ...base, url: "http://a:1", authHeader: "just-a-token" }).field, "auth_header");
  });

  test("the server's 400 is shown beside the field it names", () => {
    const error = new WIApiError("bad worker: url: ...", { status: 400, detail: "url: 'ftp://x' must start with http://", field: "url" });
    assert.deepEqual(formErrorFromResponse(error), { field: "url", message: "url: 'ftp://x' must start with http://" });
    assert.equal(formErrorFromResponse(new WIApiError("x", { status: 400, detail: "weight: must be greater than 0" })).field, "weight");
    assert.equal(formErrorFromResponse(new Error("network down")).message, "network down");
  });
});

describe("wi.worker_state", () => {
  test("moves one worker's state and health; the same state changes nothing", () => {
    const list = [LOCAL, entry()];
    const next = applyWorkerStateEvent(list, { worker_id: "w-1", state: "unreachable", batch_id: null, detail: "no answer within 3 s" });
    assert.notEqual(next, list);
    assert.equal(next[1].state, "unreachable");
    assert.equal(next[1].health.error, "no answer within 3 s");
    assert.equal(next[0], list[0]);
    assert.equal(applyWorkerStateEvent(next, { worker_id: "w-1", state: "unreachable" }), next);
    assert.equal(applyWorkerStateEvent(null, { worker_id: "w-1", state: "idle" }), null);
  });

  test("an event about one batch (a worker excluded from that sweep) leaves the list alone", () => {
    const list = [LOCAL, entry()];
    assert.equal(applyWorkerStateEvent(list, { worker_id: "w-1", state: "disabled", batch_id: "b1", detail: "missing model" }), list);
  });
});

describe("per batch: workers and the worker of each cell", () => {
  const detail = {
    batch_id: "b1",
    state: "active",
    counts: { total: 4, done: 2, running: 1 },
    cells: [
      { index: 0, status: "done", worker: "local" },
      { index: 1, status: "done", worker: "w-1" },
      { index: 2, status: "running", worker: "w-1" },
      { index: 3, status: "queued", worker: null },
    ],
    workers: {
      local: { name: "This server", state: "idle", running: 0, done: 1, failed: 0, excluded: null },
      "w-1": { name: "gpu2", state: "busy", running: 1, done: 1, failed: 0, excluded: null },
      "w-3": { name: "box", state: "idle", running: 0, done: 0, failed: 0, excluded: "validation failed: ckpt missing" },
    },
  };

  function loaded() {
    return reduceBatches(createInitialState(), { type: ActionType.statusDetail, detail, now: NOW });
  }

  test("the detail's cells keep their worker and the batch keeps its workers", () => {
    const batch = loaded().batches.b1;
    assert.equal(batch.cells[1].worker, "w-1");
    assert.equal(batch.cells[3].worker, null);
    assert.deepEqual(Object.keys(batch.workers), ["local", "w-1", "w-3"]);
  });

  test("tiles say which worker ran or runs each cell", () => {
    const view = batchView(loaded().batches.b1, NOW);
    assert.deepEqual(view.tiles.map((tile) => tile.worker), ["This server", "gpu2", "gpu2", null]);
    assert.match(view.tiles[1].title, /\nworker: gpu2$/);
    assert.match(view.tiles[2].title, /\nrunning on: gpu2$/);
    assert.doesNotMatch(view.tiles[3].title, /worker/);
    assert.equal(view.tiles[1].badge, "g2");
  });

  test("each worker's part in the batch, an exclusion with its reason", () => {
    const rows = batchView(loaded().batches.b1, NOW).workers;
    assert.deepEqual(rows.map((row) => [row.id, row.stateLabel, row.countsText]), [
      ["local", "idle", "1 done"],
      ["w-1", "busy", "1 running, 1 done"],
      ["w-3", "excluded", "0 done"],
    ]);
    assert.match(rows[2].title, /excluded from this sweep: validation failed: ckpt missing/);
  });

  test("no workers configured ({} or absent) hides the section and the tile lines", () => {
    for (const workers of [{}, undefined]) {
      const plain = { ...detail, workers, cells: detail.cells.map(({ worker, ...cell }) => cell) };
      const batch = reduceBatches(createInitialState(), { type: ActionType.statusDetail, detail: plain, now: NOW }).batches.b1;
      const view = batchView(batch, NOW);
      assert.equal(view.workers, null);
      assert.ok(view.tiles.every((tile) => tile.worker === null && !/worker/.test(tile.title)));
    }
  });

  test("a worker id unknown to the batch is named from the worker list, else shown as the id", () => {
    assert.equal(workerName("w-9", {}, [{ id: "w-9", name: "late" }]), "late");
    assert.equal(workerName("w-9", {}, null), "w-9");
    assert.equal(workerName(null, {}, null), null);
  });

  test("a cell_ended event naming its worker is kept, and a later snapshot without it does not erase it", () => {
    let state = reduceBatches(createInitialState(), { type: ActionType.statusDetail, detail: { ...detail, cells: [] }, now: NOW });
    state = reduceBatches(state, { type: ActionType.cellEnded, detail: { batch_id: "b1", index: 0, status: "done", worker: "w-1" }, now: NOW + 1 });
    assert.equal(state.batches.b1.cells[0].worker, "w-1");
    state = reduceBatches(state, { type: ActionType.statusDetail, detail: { ...detail, cells: [{ index: 0, status: "done" }] }, now: NOW + 2 });
    assert.equal(state.batches.b1.cells[0].worker, "w-1");
  });

  test("badges are two letters", () => {
    assert.equal(workerBadge("This server"), "tr");
    assert.equal(workerBadge("gpu-2"), "g2");
    assert.equal(workerBadge(""), "");
  });

  test("batchWorkersView ignores what is not an object", () => {
    assert.equal(batchWorkersView(null), null);
    assert.equal(batchWorkersView({ a: null }), null);
  });
});

describe("choices (stars and rejects from the viewer)", () => {
  test("normalised from the route's answer; a star wins over a reject of the same cell", () => {
    assert.deepEqual(normaliseChoices({ starred: [3, 1, 1, -1, "x"], rejected: [2, 3] }), { starred: [1, 3], rejected: [2] });
    assert.equal(normaliseChoices({ error: "unknown" }), null);
    assert.equal(normaliseChoices(null), null);
  });

  test("the batch row counts them and tiles carry a star", () => {
    const choices = normaliseChoices({ starred: [0, 2], rejected: [1] });
    assert.equal(choicesSummary(choices), "★ 2 · ✕ 1");
    assert.equal(choicesSummary(normaliseChoices({ starred: [], rejected: [] })), "");
    assert.equal(cellChoice(choices, 2), "starred");
    assert.equal(cellChoice(choices, 1), "rejected");
    assert.equal(cellChoice(null, 1), null);

    const detail = { batch_id: "b1", state: "complete", counts: { total: 3, done: 3 }, cells: [0, 1, 2].map((index) => ({ index, status: "done" })) };
    let state = reduceBatches(createInitialState(), { type: ActionType.statusDetail, detail, now: NOW });
    assert.equal(batchView(state.batches.b1, NOW).choicesText, "", "nothing shown before the route answers");
    state = reduceBatches(state, { type: ActionType.choicesLoaded, batchId: "b1", choices });
    const view = batchView(state.batches.b1, NOW);
    assert.equal(view.choicesText, "★ 2 · ✕ 1");
    assert.deepEqual(view.tiles.map((tile) => tile.choice), ["starred", "rejected", "starred"]);
    assert.match(view.tiles[0].className, /wi-tile--starred/);
    assert.match(view.tiles[0].title, /★ starred/);
    assert.equal(reduceBatches(state, { type: ActionType.choicesLoaded, batchId: "b1", choices: normaliseChoices({ starred: [0, 2], rejected: [1] }) }), state,
      "the same choices again change nothing");
  });
});

describe("when to ask for choices", () => {
  test("a server known to have the route is asked on load; an unknown one only on a user's cue", () => {
    assert.equal(shouldAskChoices(ChoicesSupport.yes), true);
    assert.equal(shouldAskChoices(ChoicesSupport.unknown), false, "no request per batch on every page load");
    assert.equal(shouldAskChoices(ChoicesSupport.unknown, { cue: "visible" }), true);
    assert.equal(shouldAskChoices(ChoicesSupport.unknown, { cue: "refresh" }), true);
  });

  test("a server without the route is asked again only when the user presses Refresh", () => {
    assert.equal(shouldAskChoices(ChoicesSupport.no), false);
    assert.equal(shouldAskChoices(ChoicesSupport.no, { cue: "visible" }), false);
    assert.equal(shouldAskChoices(ChoicesSupport.no, { cue: "refresh" }), true);
  });

  test("a 404 from the batch file route means no route; the route's own 404 means this batch only", () => {
    assert.equal(choicesFailure(new WIApiError("x", { status: 404, error: "unknown file", detail: "choices" })), "absent");
    assert.equal(choicesFailure(new WIApiError("x", { status: 404 })), "absent", "a 404 page without our JSON");
    assert.equal(choicesFailure(new WIApiError("x", { status: 404, error: "unknown batch folder" })), "batch");
    assert.equal(choicesFailure(new WIApiError("x", { status: 500, error: "internal error" })), "transient");
    assert.equal(choicesFailure(new TypeError("Failed to fetch")), "transient");
  });
});

describe("api client: workers and choices routes", () => {
  function recordingApi(responses) {
    const calls = [];
    return {
      calls,
      async fetchApi(route, init) {
        calls.push({ route, init });
        const next = responses.shift() ?? { status: 200, body: {} };
        const text = JSON.stringify(next.body);
        return { ok: next.status >= 200 && next.status < 300, status: next.status, text: async () => text };
      },
    };
  }

  test("list, save, delete and choices hit the contract's routes", async () => {
    const api = recordingApi([
      { status: 200, body: { workers: [LOCAL] } },
      { status: 200, body: entry() },
      { status: 200, body: { deleted: "w 1" } },
      { status: 200, body: { starred: [1], rejected: [] } },
    ]);
    const client = createApiClient(api);
    assert.deepEqual(await client.listWorkers(), [LOCAL]);
    await client.saveWorker({ url: "http://a:1" });
    await client.deleteWorker("w 1");
    assert.deepEqual(await client.getChoices("b/1"), { starred: [1], rejected: [] });
    assert.deepEqual(api.calls.map((call) => [call.init.method, call.route]), [
      ["GET", "/wi/workers"],
      ["POST", "/wi/workers"],
      ["DELETE", "/wi/workers/w%201"],
      ["GET", "/wi/batch/b%2F1/choices"],
    ]);
    assert.equal(api.calls[1].init.body, JSON.stringify({ url: "http://a:1" }));
    assert.equal(api.calls[1].init.headers["Content-Type"], "application/json");
  });

  test("the list says why the server cannot use its workers file", async () => {
    const api = recordingApi([
      { status: 200, body: { workers: [LOCAL], file_error: "workers.json: workers[0].url: ..." } },
      { status: 200, body: { workers: [LOCAL], file_error: null } },
    ]);
    const client = createApiClient(api);
    assert.deepEqual(await client.listWorkersWithStatus(), { workers: [LOCAL], fileError: "workers.json: workers[0].url: ..." });
    assert.deepEqual(await client.listWorkersWithStatus(), { workers: [LOCAL], fileError: null });
  });

  test("a 400 names the field on the error", async () => {
    const api = recordingApi([{ status: 400, body: { error: "bad worker", detail: "url: no host", field: "url" } }]);
    await assert.rejects(createApiClient(api).saveWorker({ url: "http://" }), (error) => error.status === 400 && error.field === "url");
  });
});
