// The Workers section of the Sweeps panel (issue 14): display data for the worker list (GET /wi/workers), the
// body the add/edit form sends (POST /wi/workers), and the per-batch worker summary from GET /wi/status/{id}
// (`"workers"` on the batch, `"worker"` on each cell). Pure: no DOM, no `api`, no clock reads.

import { formatDuration } from "./format.mjs";

/** Worker states as the server sends them (core/workers.py WorkerState), with the text the list shows. */
export const WORKER_STATES = Object.freeze(["idle", "busy", "unreachable", "disabled"]);
const STATE_LABELS = Object.freeze({ idle: "idle", busy: "busy", unreachable: "unreachable", disabled: "disabled" });
export const LOCAL_WORKER_ID = "local";

export function workerStateLabel(state) {
  return STATE_LABELS[state] ?? "unknown";
}

function knownState(state) {
  return WORKER_STATES.includes(state) ? state : "unknown";
}

/** "seen 12s ago", "never answered", or "" for the local server (it is this page's own server). */
export function lastSeenText(worker, nowMs) {
  if (worker.local) return "";
  const seen = worker.health?.last_seen;
  if (typeof seen !== "number") return "never answered";
  return `seen ${formatDuration(Math.max(0, nowMs / 1000 - seen))} ago`;
}

/** One line under the name: what the state means ("3 in queue", the probe's error). */
function detailText(worker) {
  const health = worker.health ?? {};
  if (worker.state === "unreachable") return health.error ? String(health.error) : "";
  if (worker.state === "busy" && Number.isInteger(health.queue_depth)) return `${health.queue_depth} in queue`;
  return "";
}

/**
 * Rows of the Workers list. `remoteCount` is the number of other servers: with none, sweeps run here as always
 * and the section's summary says so.
 */
export function workersView(workers, nowMs) {
  const list = Array.isArray(workers) ? workers.filter((w) => w && typeof w.id === "string") : [];
  const rows = list.map((worker) => {
    const state = knownState(worker.state);
    return {
      id: worker.id,
      name: String(worker.name || worker.url || worker.id),
      url: worker.local ? "this server" : String(worker.url ?? ""),
      local: Boolean(worker.local),
      state,
      stateLabel: workerStateLabel(state),
      className: `wi-worker wi-worker--${state}`,
      detail: detailText(worker),
      lastSeen: lastSeenText(worker, nowMs),
      weight: typeof worker.weight === "number" ? worker.weight : 1,
      enabled: worker.enabled !== false,
      hasAuth: Boolean(worker.has_auth),
      canDelete: !worker.local,
    };
  });
  const remote = rows.filter((row) => !row.local);
  const usable = rows.filter((row) => row.state === "idle" || row.state === "busy");
  let summary;
  if (remote.length === 0) summary = "this server only";
  else summary = `${usable.length} of ${rows.length} available`;
  return { rows, remoteCount: remote.length, summary };
}

/** The form's starting values: empty for a new worker, the entry's for an edit (never an auth value: it is not sent). */
export function workerFormValues(worker = null) {
  if (!worker) return { id: null, url: "", name: "", authHeader: "", clearAuth: false, weight: "1", enabled: true, local: false, hasAuth: false };
  return {
    id: worker.id,
    url: worker.local ? "" : String(worker.url ?? ""),
    name: String(worker.name ?? ""),
    authHeader: "",
    clearAuth: false,
    weight: String(worker.weight ?? 1),
    enabled: worker.enabled !== false,
    local: Boolean(worker.local),
    hasAuth: Boolean(worker.has_auth),
  };
}

/**
 * The POST /wi/workers body from the form, or `{error, field}` for what the page can tell at once (the server
 * checks everything again and names the field itself). An empty auth field keeps the stored header on an edit;
 * `clearAuth` removes it.
 */
export function workerRequestBody(form) {
  const body = {};
  if (form.id) body.id = form.id;
  if (!form.local) {
    const url = String(form.url ?? "").trim();
    if (!url) return { error: "Enter the worker's URL, e.g. http://192.168.1.20:8188", field: "url" };
    if (!/^https?:\/\//i.test(url)) return { error: "The URL must start with http:// or https://", field: "url" };
    body.url = url;
  }
  const name = String(form.name ?? "").trim();
  if (name || form.id) body.name = name;
  const weightText = String(form.weight ?? "").trim();
  const weight = weightText === "" ? 1 : Number(weightText);
  if (!Number.isFinite(weight) || weight <= 0) return { error: "Weight must be a number greater than 0", field: "weight" };
  body.weight = weight;
  body.enabled = Boolean(form.enabled);
  if (!form.local) {
    const auth = String(form.authHeader ?? "").trim();
    if (auth) {
      if (!/^[^:\s]+:\s*\S/.test(auth)) return { error: 'The auth header reads "Name: value", e.g. "Authorization: Bearer …"', field: "auth_header" };
      body.auth_header = auth;
    } else if (form.clearAuth) {
      body.auth_header = "";
    }
  }
  return { body };
}

/** The server's 400 names the field (`field`); the form puts the message beside it. */
export function formErrorFromResponse(error) {
  const payloadField = typeof error?.field === "string" ? error.field : null;
  const field = payloadField ?? (/^(url|name|weight|enabled|auth_header|id)\b/.exec(String(error?.detail ?? ""))?.[1] ?? null);
  return { field, message: String(error?.detail || error?.message || "Could not save the worker") };
}

/**
 * Applies a `wi.worker_state` event to a list read earlier; returns the same array when nothing changed. An event
 * naming a batch (`batch_id`) is about that batch only (a worker excluded from one sweep is still enabled for
 * the others): the list is left alone and the batch's status says the rest.
 */
export function applyWorkerStateEvent(workers, detail) {
  if (!Array.isArray(workers) || !detail || typeof detail.worker_id !== "string") return workers;
  if (typeof detail.batch_id === "string" && detail.batch_id) return workers;
  let changed = false;
  const next = workers.map((worker) => {
    if (worker.id !== detail.worker_id || worker.state === detail.state) return worker;
    changed = true;
    const health = { ...(worker.health ?? {}) };
    if (detail.state === "unreachable") {
      health.reachable = false;
      if (detail.detail) health.error = detail.detail;
    } else if (detail.state === "idle" || detail.state === "busy") {
      health.reachable = true;
      health.error = null;
    }
    return { ...worker, state: detail.state, health };
  });
  return changed ? next : workers;
}

// ---------------------------------------------------------------------------------------------------------------
// Per batch: which worker ran each cell, each worker's part in the batch

/** The name of a worker id for a batch: the batch's own record, then the configured list, then the id itself. */
export function workerName(workerId, batchWorkers = null, workerList = null) {
  if (typeof workerId !== "string" || !workerId) return null;
  const own = batchWorkers?.[workerId]?.name;
  if (own) return String(own);
  const listed = Array.isArray(workerList) ? workerList.find((w) => w.id === workerId)?.name : null;
  return listed ? String(listed) : workerId;
}

/**
 * The batch's "workers" field as rows for its card: hidden (null) when the batch has none (no workers configured,
 * or a server without the dispatcher).
 */
export function batchWorkersView(batchWorkers) {
  if (!batchWorkers || typeof batchWorkers !== "object") return null;
  const entries = Object.entries(batchWorkers).filter(([, info]) => info && typeof info === "object");
  if (entries.length === 0) return null;
  return entries.map(([id, info]) => {
    const state = knownState(info.state);
    const counts = [];
    const number = (value) => (Number.isInteger(value) && value > 0 ? value : 0);
    if (number(info.running)) counts.push(`${info.running} running`);
    counts.push(`${number(info.done)} done`);
    if (number(info.failed)) counts.push(`${info.failed} failed`);
    return {
      id,
      name: String(info.name || id),
      state,
      stateLabel: info.excluded ? "excluded" : workerStateLabel(state),
      className: `wi-batch-worker wi-worker--${info.excluded ? "excluded" : state}`,
      countsText: counts.join(", "),
      excluded: info.excluded ? String(info.excluded) : null,
      title: info.excluded ? `${info.name || id}: excluded from this sweep: ${info.excluded}` : `${info.name || id}: ${workerStateLabel(state)}`,
    };
  });
}

/** Two letters for a tile's corner badge ("g2" for "gpu2"); the tooltip holds the full name. */
export function workerBadge(name) {
  if (!name) return "";
  const compact = String(name).replace(/[^A-Za-z0-9]/g, "");
  return (compact.slice(0, 1) + compact.slice(-1)).toLowerCase() || String(name).slice(0, 2);
}
