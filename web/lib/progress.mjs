// Progress maths over the server's counts and cell statuses. Pure.

export const CELL_STATUSES = Object.freeze(["queued", "running", "done", "failed", "cancelled"]);
const TERMINAL_CELL_STATUSES = new Set(["done", "failed", "cancelled"]);

export const BATCH_STATES = Object.freeze(["pending", "active", "collecting", "complete", "cancelled", "expired", "interrupted"]);
const TERMINAL_BATCH_STATES = new Set(["complete", "cancelled", "expired"]);

export function isTerminalCellStatus(status) {
  return TERMINAL_CELL_STATUSES.has(status);
}

export function isTerminalBatchState(state) {
  return TERMINAL_BATCH_STATES.has(state);
}

/**
 * A batch occupies the queue (or is composing its grid) until it reaches a terminal state. An `interrupted`
 * batch (ComfyUI stopped under it; restored after the restart) is neither running nor finished: nothing of it
 * is queued until someone resumes it.
 */
export function isRunningBatchState(state) {
  return state === "pending" || state === "active" || state === "collecting";
}

/** Only batches with cells left to run can be cancelled; the server answers 409 for the rest. */
export function isCancellableBatchState(state) {
  return state === "pending" || state === "active" || state === "interrupted";
}

/** `POST /wi/resume/{id}` accepts interrupted batches only. */
export function isResumableBatchState(state) {
  return state === "interrupted";
}

/**
 * Lifecycle order used to merge information that arrives out of order: a state never moves backwards.
 * All terminal states share the highest rank so an authoritative snapshot can correct one terminal state to another.
 * `interrupted` has no rank: it is entered from and left to running states (batch_state.mjs moveState).
 */
export function batchStateRank(state) {
  switch (state) {
    case "pending":
      return 0;
    case "active":
      return 1;
    case "collecting":
      return 2;
    case "complete":
    case "cancelled":
    case "expired":
      return 3;
    default:
      return -1;
  }
}

/** Same idea for cells: queued < running < any ended status. */
export function cellStatusRank(status) {
  if (status === "queued") return 0;
  if (status === "running") return 1;
  if (isTerminalCellStatus(status)) return 2;
  return -1;
}

function count(value) {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? Math.floor(value) : 0;
}

/** Normalises a server counts object; missing fields become 0 and pending is derived when absent. */
export function normaliseCounts(counts, fallbackTotal = 0) {
  const source = counts ?? {};
  const total = count(source.total) || count(fallbackTotal);
  const done = count(source.done);
  const failed = count(source.failed);
  const cancelled = count(source.cancelled);
  const running = count(source.running);
  const pending =
    source.pending === undefined ? Math.max(0, total - done - failed - cancelled - running) : count(source.pending);
  return { total, done, failed, cancelled, pending, running };
}

/** Cells that will not run any more. This is the "k" of "k/N". */
export function endedCount(counts) {
  if (!counts) return 0;
  return count(counts.done) + count(counts.failed) + count(counts.cancelled);
}

export function remainingCount(counts) {
  if (!counts) return 0;
  return Math.max(0, count(counts.total) - endedCount(counts));
}

/** Counts rebuilt from known cells; cells never reported are queued. */
export function countsFromCells(cells, total) {
  const counts = { total: count(total), done: 0, failed: 0, cancelled: 0, pending: 0, running: 0 };
  let known = 0;
  for (const cell of Object.values(cells ?? {})) {
    if (!cell || cell.index >= counts.total) continue;
    known += 1;
    if (cell.status === "queued") counts.pending += 1;
    else if (cell.status in counts) counts[cell.status] += 1;
    else counts.pending += 1;
  }
  counts.pending += Math.max(0, counts.total - known);
  return counts;
}

/** Of two counts snapshots, the one with more ended cells is the newer one (ended cells never come back). */
export function moreAdvancedCounts(current, incoming) {
  if (!incoming) return current;
  if (!current) return incoming;
  const difference = endedCount(incoming) - endedCount(current);
  if (difference > 0) return incoming;
  if (difference < 0) return current;
  const keys = ["total", "done", "failed", "cancelled", "pending", "running"];
  return keys.every((key) => current[key] === incoming[key]) ? current : incoming;
}

export function progressText(counts) {
  return `${endedCount(counts)}/${count(counts?.total)}`;
}

/**
 * Bar segments in display order, each with a fraction of the total (0..1).
 * Empty segments are omitted so the DOM does not carry zero-width elements.
 */
export function progressSegments(counts) {
  const total = count(counts?.total);
  if (total === 0) return [];
  const order = ["done", "failed", "cancelled", "running"];
  const segments = [];
  for (const kind of order) {
    const value = count(counts[kind]);
    if (value > 0) segments.push({ kind, count: value, fraction: Math.min(1, value / total) });
  }
  return segments;
}

/** Percentage of ended cells, 0..100, for aria-valuenow. */
export function progressPercent(counts) {
  const total = count(counts?.total);
  if (total === 0) return 0;
  return Math.min(100, Math.round((endedCount(counts) / total) * 100));
}

/**
 * Status a tile shows. Once a batch has stopped and its counts hold no open cell, cells not heard of as ended
 * never will be: they show as cancelled before the server's detail says so. While a cancelled batch's counts
 * still hold an open cell (ComfyUI finishing or stopping the one it was running: its own end follows and says
 * which), tiles keep what is known, so the tiles never show more ended cells than the progress text counts.
 * A complete or expired batch's cells never report again: every open one shows as cancelled.
 */
export function displayedCellStatus(cellStatus, batchState, counts = null) {
  const status = CELL_STATUSES.includes(cellStatus) ? cellStatus : "queued";
  if (isTerminalCellStatus(status) || !isTerminalBatchState(batchState)) return status;
  if (batchState === "cancelled" && remainingCount(counts) > 0) return status;
  return "cancelled";
}

export function tileClassName(status) {
  const known = CELL_STATUSES.includes(status) ? status : "queued";
  return `wi-tile wi-tile--${known}`;
}

function formatValue(value) {
  if (typeof value === "string") return value;
  if (value === null || value === undefined) return "";
  return JSON.stringify(value);
}

/** `GET /wi/status/{id}` gives every cell's status as one character (`cell_statuses`). */
const STATUS_BY_CHAR = Object.freeze({ q: "queued", r: "running", d: "done", f: "failed", c: "cancelled", s: "skipped" });

export function cellStatusFromChar(statuses, index) {
  return typeof statuses === "string" ? STATUS_BY_CHAR[statuses[index]] ?? null : null;
}

/**
 * A cell's position on each axis, from its index: matrix mode varies the first axis slowest; linear mode
 * advances every axis together, shorter ones cycling. Null when the axes are unknown.
 */
export function coordsOfCell(index, axes, mode) {
  if (!Array.isArray(axes) || axes.length === 0) return null;
  const lengths = axes.map((axis) => (Array.isArray(axis.labels) ? axis.labels : axis.values ?? []).length);
  if (lengths.some((n) => n === 0)) return null;
  if (mode === "linear") return lengths.map((n) => index % n);
  const coords = [];
  let rest = index;
  for (let i = lengths.length - 1; i >= 0; i -= 1) {
    coords.unshift(rest % lengths[i]);
    rest = Math.floor(rest / lengths[i]);
  }
  return coords;
}

/** A cell's values by axis name: its own, else its axes' labels at its coordinates (the server sends each value once). */
export function cellValues(cell, axes, mode) {
  if (cell.values) return cell.values;
  const coords = Array.isArray(cell.coords) ? cell.coords : coordsOfCell(cell.index, axes, mode);
  if (!coords || !Array.isArray(axes)) return {};
  const values = {};
  axes.forEach((axis, position) => {
    const shown = Array.isArray(axis.labels) ? axis.labels : axis.values;
    if (Array.isArray(shown) && coords[position] in shown) values[axis.name] = shown[coords[position]];
  });
  return values;
}

/** Tooltip text for one tile: "#3 · done", then one "name = value" line per axis, then the error if any. */
export function cellTitle(cell, status, axes = null, mode = null) {
  const lines = [`#${cell.index + 1} · ${status}`];
  for (const [name, value] of Object.entries(cellValues(cell, axes, mode))) {
    lines.push(`${name} = ${formatValue(value)}`);
  }
  if (cell.error) lines.push(`error: ${cell.error}`);
  return lines.join("\n");
}
