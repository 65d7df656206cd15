// Client-side model of every batch this page knows about, reduced from server events and status payloads.
//
// reduceBatches(state, action) -> state is pure: actions carry their own receive time (`now`, ms) so timing
// maths is testable. The reducer returns the same state object when an action changes nothing, which makes
// duplicate events (several tabs, reconnects, a poll racing an event) cheap to detect and harmless.
//
// Merging rules, because events and polled snapshots can arrive in any order:
// - a batch state never moves backwards (batchStateRank); snapshots may correct one terminal state to another;
// - a cell status never moves backwards (cellStatusRank) and its first ended status wins;
// - of two counts, the one with more ended cells wins;
// - `interrupted` (a batch restored after ComfyUI restarted) is entered only from a server snapshot of a batch
//   that had not finished, and left by progress (events, snapshots) or by this tab's resume; a snapshot
//   requested before this tab resumed the batch cannot put it back to interrupted.

import {
  batchStateRank,
  cellStatusRank,
  countsFromCells,
  endedCount,
  isRunningBatchState,
  isTerminalBatchState,
  isTerminalCellStatus,
  moreAdvancedCounts,
  normaliseCounts,
  remainingCount,
} from "./progress.mjs";

/** Finished batches kept for the "recent" list; older ones are dropped first. */
export const MAX_FINISHED_BATCHES = 20;

const INTERRUPTED = "interrupted";

export const ActionType = Object.freeze({
  batchCreated: "event/batch_created",
  cellEnded: "event/cell_ended",
  batchFinished: "event/batch_finished",
  batchCancelled: "event/batch_cancelled",
  batchExpired: "event/batch_expired",
  sizeWarning: "event/size_warning",
  statusList: "status/list",
  statusDetail: "status/detail",
  statusMissing: "status/missing",
  cancelAccepted: "cancel/accepted",
  resumeAccepted: "resume/accepted",
  detailRequested: "detail/requested",
  choicesLoaded: "choices/loaded",
  dismiss: "batches/dismiss",
  clearFinished: "batches/clear_finished",
});

/** Maps a websocket event name ("wi.cell_ended") to the action the reducer understands, or null. */
export function actionFromEvent(eventName, detail, now) {
  const types = {
    "wi.batch_created": ActionType.batchCreated,
    "wi.cell_ended": ActionType.cellEnded,
    "wi.batch_finished": ActionType.batchFinished,
    "wi.batch_cancelled": ActionType.batchCancelled,
    "wi.batch_expired": ActionType.batchExpired,
    "wi.size_warning": ActionType.sizeWarning,
  };
  const type = types[eventName];
  if (!type || !detail || typeof detail.batch_id !== "string") return null;
  return { type, detail, now };
}

export function createInitialState() {
  return { batches: {}, nextSeq: 0 };
}

function newBatch(batchId, seq, now) {
  return {
    id: batchId,
    seq,
    name: "",
    mode: null,
    state: "pending",
    clientId: null,
    counts: normaliseCounts(null, 0),
    cells: {},
    axes: [],
    cellStatuses: null, // every cell's status, one character each (GET /wi/status/{id}); cells heard of win
    grid: null,
    warnings: [],
    // GET /wi/status/{id} "workers": {id: {name, state, running, done, failed, excluded}}; {} without workers.
    workers: null,
    // GET /wi/batch/{id}/choices normalised (lib/choices.mjs); null until read, or when the server has no route.
    choices: null,
    // Elapsed time is anchored to the client clock at the moment the server (or an event) told us about it,
    // so server/client clock skew never matters: elapsed(now) = clock.elapsedS + (now - clock.at) / 1000.
    clock: null,
    terminalAt: null,
    secondsPerCell: null,
    serverSecondsPerCell: false,
    eta: null,
    // When this tab resumed the batch (client clock): older snapshots still say "interrupted".
    resumedAt: null,
    detailLoaded: false,
    needsDetail: true,
    updatedAt: now,
  };
}

function withBatch(state, batch) {
  if (state.batches[batch.id] === batch) return state;
  return { ...state, batches: { ...state.batches, [batch.id]: batch } };
}

/** Returns the batch for an id, creating a stub (which asks for a detail fetch) when the page has not seen it. */
function ensureBatch(state, batchId, now) {
  const existing = state.batches[batchId];
  if (existing) return { state, batch: existing };
  const batch = newBatch(batchId, state.nextSeq, now);
  return { state: { ...withBatch(state, batch), nextSeq: state.nextSeq + 1 }, batch };
}

/** Elapsed seconds at `now`; frozen once the batch reached a terminal state or was interrupted. Null when never measured. */
export function elapsedSeconds(batch, now) {
  if (!batch.clock) return null;
  const until = batch.terminalAt ?? (batch.state === INTERRUPTED ? batch.clock.at : now);
  return Math.max(0, batch.clock.elapsedS + Math.max(0, until - batch.clock.at) / 1000);
}

/** Remaining seconds at `now`: the last estimate counted down since it was made. Null when unknown. */
export function etaSeconds(batch, now) {
  if (isTerminalBatchState(batch.state) || batch.state === INTERRUPTED) return null;
  if (batch.state === "collecting" || remainingCount(batch.counts) === 0) return 0;
  if (batch.eta) return Math.max(0, batch.eta.seconds - Math.max(0, now - batch.eta.at) / 1000);
  if (batch.secondsPerCell !== null) return remainingCount(batch.counts) * batch.secondsPerCell;
  return null;
}

/**
 * `fromSnapshot`: the state comes from GET /wi/status (authoritative, may correct one terminal state to another
 * and may report `interrupted`); `requestedAt` is when that snapshot was asked for (client clock), if known.
 */
function moveState(batch, nextState, { fromSnapshot, requestedAt = null }) {
  if (typeof nextState !== "string" || nextState === batch.state) return batch;
  if (nextState === INTERRUPTED) {
    if (!fromSnapshot || isTerminalBatchState(batch.state)) return batch;
    const stale = batch.resumedAt !== null && (typeof requestedAt !== "number" || requestedAt < batch.resumedAt);
    return stale ? batch : { ...batch, state: INTERRUPTED, eta: null };
  }
  if (batchStateRank(nextState) < 0) return batch;
  // Leaving interrupted: any sign of progress (a running state or an end) means the batch was resumed.
  if (batch.state === INTERRUPTED) return nextState === "pending" ? batch : { ...batch, state: nextState };
  const currentRank = batchStateRank(batch.state);
  const nextRank = batchStateRank(nextState);
  const advances = nextRank > currentRank;
  const corrects = fromSnapshot && nextRank === currentRank;
  if (!advances && !corrects) return batch;
  return { ...batch, state: nextState };
}

function freezeIfTerminal(batch, now) {
  if (!isTerminalBatchState(batch.state) || batch.terminalAt !== null) return batch;
  return { ...batch, terminalAt: now, eta: null };
}

/**
 * Re-estimates after progress changed. The server's measured seconds-per-cell is the better rate (it times
 * each cell); without it, elapsed / ended cells is the rate this page can measure from events alone.
 */
function reestimate(batch, now) {
  if (isTerminalBatchState(batch.state)) return batch;
  const ended = endedCount(batch.counts);
  let secondsPerCell = batch.secondsPerCell;
  if (!batch.serverSecondsPerCell) {
    const elapsed = elapsedSeconds(batch, now);
    secondsPerCell = elapsed !== null && ended > 0 ? elapsed / ended : null;
  }
  const eta = secondsPerCell === null ? null : { seconds: remainingCount(batch.counts) * secondsPerCell, at: now };
  return { ...batch, secondsPerCell, eta };
}

function mergeCell(existing, incoming) {
  if (!existing) return cellFromSnapshot(incoming);
  const existingRank = cellStatusRank(existing.status);
  const incomingRank = cellStatusRank(incoming.status);
  // The first ended status wins; a snapshot never reopens a cell an event already closed.
  const keepStatus = incomingRank < existingRank || (incomingRank === existingRank && isTerminalCellStatus(existing.status));
  const merged = {
    ...existing,
    ...incoming,
    status: keepStatus ? existing.status : incoming.status,
    values: incoming.values ?? existing.values,
    error: incoming.error ?? existing.error ?? null,
    files: incoming.files ?? existing.files,
    worker: incoming.worker ?? existing.worker ?? null,
  };
  return shallowEqual(existing, merged) ? existing : merged;
}

function shallowEqual(a, b) {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) {
    if (a[key] !== b[key]) return false;
  }
  return true;
}

function cellFromSnapshot(raw) {
  return {
    index: raw.index,
    status: raw.status,
    values: raw.values ?? null,
    coords: raw.coords ?? null,
    error: raw.error ?? null,
    files: Array.isArray(raw.files) ? raw.files : null,
    worker: typeof raw.worker === "string" ? raw.worker : null,
  };
}

function withCounts(batch, incomingCounts) {
  let counts = moreAdvancedCounts(batch.counts, incomingCounts);
  if (batch.detailLoaded) counts = moreAdvancedCounts(counts, countsFromCells(batch.cells, counts.total));
  return counts === batch.counts ? batch : { ...batch, counts };
}

function touch(batch, original, now) {
  return batch === original ? batch : { ...batch, updatedAt: now };
}

function onBatchCreated(state, { detail, now }) {
  const ensured = ensureBatch(state, detail.batch_id, now);
  const original = ensured.batch;
  let batch = original;
  if (detail.batch_name && !batch.name) batch = { ...batch, name: String(detail.batch_name) };
  if (detail.client_id && !batch.clientId) batch = { ...batch, clientId: detail.client_id };
  if (detail.mode && !batch.mode) batch = { ...batch, mode: detail.mode };
  if (batch.counts.total === 0 && detail.total > 0) {
    batch = { ...batch, counts: normaliseCounts({ total: detail.total }) };
  }
  if (!batch.clock) batch = { ...batch, clock: { elapsedS: 0, at: now } };
  // The server re-announces batches it restored from its journal after a restart: they wait for a resume.
  batch = detail.restored
    ? moveState(batch, INTERRUPTED, { fromSnapshot: true, requestedAt: now })
    : moveState(batch, "active", { fromSnapshot: false });
  return withBatch(ensured.state, touch(batch, original, now));
}

function onCellEnded(state, { detail, now }) {
  if (!Number.isInteger(detail.index) || detail.index < 0) return state;
  const ensured = ensureBatch(state, detail.batch_id, now);
  const original = ensured.batch;
  let batch = original;
  const incomingCell = { index: detail.index, status: detail.status, error: detail.error ?? null, worker: detail.worker ?? null };
  const previousCell = batch.cells[detail.index];
  const cell = mergeCell(previousCell, incomingCell);
  if (cell !== previousCell) batch = { ...batch, cells: { ...batch.cells, [detail.index]: cell } };
  const incomingCounts = detail.counts ? normaliseCounts(detail.counts, batch.counts.total) : null;
  batch = withCounts(batch, incomingCounts);
  batch = moveState(batch, "active", { fromSnapshot: false });
  if (batch === original) return ensured.state;
  if (endedCount(batch.counts) !== endedCount(original.counts)) batch = reestimate(batch, now);
  // Events do not carry the cell's values (tile tooltips) nor, from older servers, the failure message.
  const missingError = detail.status === "failed" && !detail.error;
  if (missingError || !batch.detailLoaded) batch = { ...batch, needsDetail: true };
  return withBatch(ensured.state, touch(batch, original, now));
}

function eventCounts(batch, detail) {
  return detail.counts ? withCounts(batch, normaliseCounts(detail.counts, batch.counts.total)) : batch;
}

/** Sent twice by the server: "collecting" once every cell ended, then the final state with the grid. */
function onBatchFinished(state, { detail, now }) {
  const ensured = ensureBatch(state, detail.batch_id, now);
  const original = ensured.batch;
  let batch = moveState(original, detail.state ?? "complete", { fromSnapshot: false });
  // The final batch_finished may correct one terminal state to another, as a snapshot does.
  if (batch === original && isTerminalBatchState(detail.state) && isTerminalBatchState(original.state)) {
    batch = moveState(original, detail.state, { fromSnapshot: true });
  }
  batch = eventCounts(batch, detail);
  if (detail.grid && batch.grid === null) batch = { ...batch, grid: detail.grid };
  if (batch === original) return ensured.state;
  batch = freezeIfTerminal(batch, now);
  return withBatch(ensured.state, touch({ ...batch, needsDetail: true }, original, now));
}

function onBatchCancelled(state, { detail, now }) {
  return onStopped(state, detail, "cancelled", now);
}

function onBatchExpired(state, { detail, now }) {
  return onStopped(state, detail, "expired", now);
}

function onStopped(state, detail, nextState, now) {
  const ensured = ensureBatch(state, detail.batch_id, now);
  const original = ensured.batch;
  let batch = moveState(original, nextState, { fromSnapshot: false });
  batch = eventCounts(batch, detail);
  if (batch === original) return ensured.state;
  batch = freezeIfTerminal(batch, now);
  return withBatch(ensured.state, touch({ ...batch, needsDetail: true }, original, now));
}

function onSizeWarning(state, { detail, now }) {
  const message = typeof detail.message === "string" ? detail.message : "";
  if (!message) return state;
  const ensured = ensureBatch(state, detail.batch_id, now);
  const original = ensured.batch;
  if (original.warnings.includes(message)) return state;
  return withBatch(ensured.state, touch({ ...original, warnings: [...original.warnings, message] }, original, now));
}

/** Fields shared by the list summary and the detail payload. */
function applySummary(batch, summary, now, requestedAt = null) {
  let next = batch;
  if (summary.batch_name !== undefined && summary.batch_name !== next.name) next = { ...next, name: String(summary.batch_name ?? "") };
  if (summary.mode && summary.mode !== next.mode) next = { ...next, mode: summary.mode };
  if (summary.client_id && summary.client_id !== next.clientId) next = { ...next, clientId: summary.client_id };
  if (summary.counts || summary.total) {
    next = withCounts(next, normaliseCounts(summary.counts, summary.total ?? next.counts.total));
  }
  next = moveState(next, summary.state, { fromSnapshot: true, requestedAt });
  if (summary.grid && !shallowEqual(summary.grid, next.grid ?? {})) next = { ...next, grid: summary.grid };
  if (Array.isArray(summary.warnings)) {
    const warnings = [...new Set([...next.warnings, ...summary.warnings.map(String)])];
    if (warnings.length !== next.warnings.length) next = { ...next, warnings };
  }
  const timings = summary.timings;
  if (timings && typeof timings.elapsed_s === "number") {
    next = { ...next, clock: { elapsedS: timings.elapsed_s, at: now } };
    // A snapshot's elapsed time is already final for a finished batch: freeze it right here.
    if (isTerminalBatchState(next.state)) next = { ...next, terminalAt: now, eta: null };
  } else {
    next = freezeIfTerminal(next, now);
  }
  if (timings && typeof timings.seconds_per_cell === "number" && timings.seconds_per_cell > 0) {
    next = { ...next, secondsPerCell: timings.seconds_per_cell, serverSecondsPerCell: true };
  }
  if (timings && typeof timings.eta_s === "number" && !isTerminalBatchState(next.state)) {
    next = { ...next, eta: { seconds: Math.max(0, timings.eta_s), at: now } };
    // Events may have advanced the batch past this snapshot; the estimate must then count fewer cells left.
    if (summary.counts && endedCount(next.counts) > endedCount(normaliseCounts(summary.counts, next.counts.total))) {
      next = reestimate(next, now);
    }
  }
  return next;
}

function onStatusList(state, { batches, requestedAt, now }) {
  const summaries = (Array.isArray(batches) ? batches : []).filter((item) => item && typeof item.batch_id === "string");
  // Oldest first, so batches first seen through this list keep the server's creation order.
  const ordered = [...summaries].sort((a, b) => numericTime(a.created_at) - numericTime(b.created_at));
  let next = state;
  for (const summary of ordered) {
    const ensured = ensureBatch(next, summary.batch_id, now);
    const original = ensured.batch;
    let batch = applySummary(original, summary, now, requestedAt);
    if (!batch.detailLoaded || !isTerminalBatchState(batch.state)) batch = { ...batch, needsDetail: true };
    next = withBatch(ensured.state, touch(batch, original, now));
  }
  // A running batch the server no longer lists has been cleaned up there; do not show it running forever.
  // Only batches untouched since the request was sent qualify, so a batch created meanwhile is not lost.
  const listed = new Set(summaries.map((item) => item.batch_id));
  for (const batch of Object.values(next.batches)) {
    if (listed.has(batch.id) || isTerminalBatchState(batch.state)) continue;
    if (typeof requestedAt === "number" && batch.updatedAt > requestedAt) continue;
    next = withBatch(next, { ...batch, state: "expired", terminalAt: now, eta: null, needsDetail: false, updatedAt: now });
  }
  return pruneFinished(next);
}

function numericTime(value) {
  if (typeof value === "number") return value;
  const parsed = Date.parse(value);
  return Number.isNaN(parsed) ? 0 : parsed;
}

function onStatusDetail(state, { detail, now, requestedAt = null }) {
  const ensured = ensureBatch(state, detail.batch_id, now);
  const original = ensured.batch;
  let batch = original;
  if (Array.isArray(detail.axes)) batch = { ...batch, axes: detail.axes };
  if (typeof detail.cell_statuses === "string") batch = { ...batch, cellStatuses: detail.cell_statuses };
  if (detail.workers && typeof detail.workers === "object" && !Array.isArray(detail.workers)) batch = { ...batch, workers: detail.workers };
  if (Array.isArray(detail.cells)) {
    let cells = batch.cells;
    for (const raw of detail.cells) {
      if (!raw || !Number.isInteger(raw.index)) continue;
      const merged = mergeCell(cells[raw.index], cellFromSnapshot(raw));
      if (merged !== cells[raw.index]) cells = { ...cells, [raw.index]: merged };
    }
    if (cells !== batch.cells) batch = { ...batch, cells };
  }
  batch = { ...batch, detailLoaded: true };
  batch = applySummary(batch, detail, now, requestedAt);
  batch = { ...batch, needsDetail: false, updatedAt: now };
  return pruneFinished(withBatch(ensured.state, batch));
}

function onStatusMissing(state, { batchId, now }) {
  const batch = state.batches[batchId];
  if (!batch) return state;
  if (isTerminalBatchState(batch.state)) return withBatch(state, { ...batch, needsDetail: false });
  return withBatch(state, { ...batch, state: "expired", terminalAt: now, eta: null, needsDetail: false, updatedAt: now });
}

function onCancelAccepted(state, { batchId, now }) {
  return onBatchCancelled(state, { detail: { batch_id: batchId }, now });
}

/** POST /wi/resume answered: the batch runs again (`active`), or builds its grid when no cell was left. */
function onResumeAccepted(state, { batchId, response, now }) {
  const batch = state.batches[batchId];
  if (!batch || batch.state !== INTERRUPTED) return state;
  const nextState = response?.state === "collecting" ? "collecting" : "active";
  const clock = { elapsedS: elapsedSeconds(batch, now) ?? 0, at: now };
  return withBatch(state, { ...batch, state: nextState, resumedAt: now, clock, needsDetail: true, updatedAt: now });
}

/** GET /wi/batch/{id}/choices answered (`choices` normalised by lib/choices.mjs, or null: nothing to show). */
function onChoicesLoaded(state, { batchId, choices }) {
  const batch = state.batches[batchId];
  if (!batch) return state;
  const same = JSON.stringify(batch.choices) === JSON.stringify(choices ?? null);
  return same ? state : withBatch(state, { ...batch, choices: choices ?? null });
}

function onDetailRequested(state, { batchId }) {
  const batch = state.batches[batchId];
  if (!batch || !batch.needsDetail) return state;
  return withBatch(state, { ...batch, needsDetail: false });
}

function onDismiss(state, { batchId }) {
  const batch = state.batches[batchId];
  if (!batch || !isTerminalBatchState(batch.state)) return state;
  const batches = { ...state.batches };
  delete batches[batchId];
  return { ...state, batches };
}

function onClearFinished(state) {
  const batches = {};
  let removed = false;
  for (const batch of Object.values(state.batches)) {
    if (isTerminalBatchState(batch.state)) removed = true;
    else batches[batch.id] = batch;
  }
  return removed ? { ...state, batches } : state;
}

function pruneFinished(state) {
  const finished = Object.values(state.batches)
    .filter((batch) => isTerminalBatchState(batch.state))
    .sort((a, b) => b.seq - a.seq);
  if (finished.length <= MAX_FINISHED_BATCHES) return state;
  const batches = { ...state.batches };
  for (const batch of finished.slice(MAX_FINISHED_BATCHES)) delete batches[batch.id];
  return { ...state, batches };
}

const handlers = {
  [ActionType.batchCreated]: onBatchCreated,
  [ActionType.cellEnded]: onCellEnded,
  [ActionType.batchFinished]: onBatchFinished,
  [ActionType.batchCancelled]: onBatchCancelled,
  [ActionType.batchExpired]: onBatchExpired,
  [ActionType.sizeWarning]: onSizeWarning,
  [ActionType.statusList]: onStatusList,
  [ActionType.statusDetail]: onStatusDetail,
  [ActionType.statusMissing]: onStatusMissing,
  [ActionType.cancelAccepted]: onCancelAccepted,
  [ActionType.resumeAccepted]: onResumeAccepted,
  [ActionType.detailRequested]: onDetailRequested,
  [ActionType.choicesLoaded]: onChoicesLoaded,
  [ActionType.dismiss]: onDismiss,
  [ActionType.clearFinished]: onClearFinished,
};

export function reduceBatches(state, action) {
  const handler = action && handlers[action.type];
  if (!handler) return state;
  const needsBatchId = action.type.startsWith("event/") || action.type === ActionType.statusDetail;
  if (needsBatchId && (!action.detail || typeof action.detail.batch_id !== "string")) return state;
  return handler(state, action);
}

/** Batches for display: running ones first, then by most recently created. */
export function sortedBatches(state) {
  return Object.values(state.batches).sort((a, b) => {
    const runningDifference = Number(isTerminalBatchState(a.state)) - Number(isTerminalBatchState(b.state));
    return runningDifference !== 0 ? runningDifference : b.seq - a.seq;
  });
}

/** Batches in the queue or building their grid; interrupted ones wait for a resume and do not count. */
export function runningBatches(state) {
  return sortedBatches(state).filter((batch) => isRunningBatchState(batch.state));
}

/** Ids whose detail the page should (re)fetch now. */
export function batchesNeedingDetail(state) {
  return Object.values(state.batches)
    .filter((batch) => batch.needsDetail)
    .map((batch) => batch.id);
}
