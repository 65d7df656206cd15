// Turns reducer state into plain display data for the panel and the indicator. Pure: the DOM layer only copies
// these fields into elements.

import { elapsedSeconds, etaSeconds, runningBatches } from "./batch_state.mjs";
import { cellChoice, choicesSummary } from "./choices.mjs";
import { formatDuration, formatEta, plural } from "./format.mjs";
import {
  cellStatusFromChar,
  cellTitle,
  displayedCellStatus,
  endedCount,
  isCancellableBatchState,
  isResumableBatchState,
  isTerminalBatchState,
  progressPercent,
  progressSegments,
  progressText,
  tileClassName,
} from "./progress.mjs";
import { batchWorkersView, workerBadge, workerName } from "./workers.mjs";

/** Tiles beyond this are summarised as "+N more": thousands of DOM nodes per batch would stall the page. */
export const MAX_TILES = 400;

const STATE_LABELS = {
  pending: "queued",
  active: "running",
  collecting: "building grid",
  complete: "complete",
  cancelled: "cancelled",
  expired: "expired",
  interrupted: "interrupted",
};

export function stateLabel(state) {
  return STATE_LABELS[state] ?? String(state ?? "unknown");
}

export function batchDisplayName(batch) {
  return batch.name || `Sweep ${String(batch.id).slice(0, 8)}`;
}

/**
 * One tile per cell (up to `maxTiles`). Each says which worker ran or runs it (`worker`: its name, `badge`: two
 * letters; only when the batch's cells name one) and whether it was starred or rejected (`choice`).
 */
export function tileViews(batch, maxTiles = MAX_TILES, { workerList = null } = {}) {
  const total = batch.counts.total;
  const shown = Math.min(total, maxTiles);
  const tiles = [];
  for (let index = 0; index < shown; index += 1) {
    // A cell heard of (events, the detail page) wins; else the status the detail gave every cell in one string.
    const cell = batch.cells[index] ?? { index, status: cellStatusFromChar(batch.cellStatuses, index) ?? "queued" };
    const status = displayedCellStatus(cell.status, batch.state, batch.counts);
    const worker = workerName(cell.worker, batch.workers, workerList);
    const choice = cellChoice(batch.choices, index);
    const lines = [cellTitle({ ...cell, index }, status, batch.axes, batch.mode)];
    if (worker) lines.push(`${status === "running" ? "running on" : "worker"}: ${worker}`);
    if (choice) lines.push(choice === "starred" ? "★ starred" : "✕ rejected");
    const className = tileClassName(status) + (choice ? ` wi-tile--${choice}` : "");
    tiles.push({ index, status, className, title: lines.join("\n"), worker, badge: worker ? workerBadge(worker) : "", choice });
  }
  return { tiles, hiddenCount: Math.max(0, total - shown) };
}

/**
 * Display data for one batch. `fileUrl(fileRef)` turns {filename, subfolder, type} into a URL
 * (api_client.fileUrl); it is injected so this stays free of any `api` object.
 */
export function batchView(batch, now, { fileUrl = () => null, maxTiles = MAX_TILES, workerList = null } = {}) {
  const finished = isTerminalBatchState(batch.state);
  const eta = etaSeconds(batch, now);
  const { tiles, hiddenCount } = tileViews(batch, maxTiles, { workerList });
  const grid = batch.grid && batch.grid.filename ? batch.grid : null;
  const viewer = grid && grid.viewer && grid.viewer.filename ? grid.viewer : null;
  return {
    id: batch.id,
    name: batchDisplayName(batch),
    mode: batch.mode,
    state: batch.state,
    stateLabel: stateLabel(batch.state),
    progressText: progressText(batch.counts),
    percent: progressPercent(batch.counts),
    segments: progressSegments(batch.counts),
    countsText: countsSummary(batch.counts),
    elapsedText: formatDuration(elapsedSeconds(batch, now) ?? Number.NaN),
    // An interrupted batch has no ETA: nothing of it runs until it is resumed.
    etaText: finished || isResumableBatchState(batch.state) ? null : formatEta(eta ?? Number.NaN),
    isFinished: finished,
    canCancel: isCancellableBatchState(batch.state),
    canResume: isResumableBatchState(batch.state),
    tiles,
    hiddenTileCount: hiddenCount,
    gridUrl: grid ? fileUrl(grid) : null,
    viewerUrl: viewer ? fileUrl(viewer) : null,
    warnings: batch.warnings,
    // Each worker's part in this batch; null (hidden) when no workers are configured.
    workers: batchWorkersView(batch.workers),
    // "★ 3 · ✕ 1" from the viewer's choices; "" when none (or the server has no choices route).
    choicesText: choicesSummary(batch.choices),
  };
}

export function countsSummary(counts) {
  const parts = [`${counts.done} done`];
  if (counts.failed) parts.push(`${counts.failed} failed`);
  if (counts.cancelled) parts.push(`${counts.cancelled} cancelled`);
  if (counts.running) parts.push(`${counts.running} running`);
  parts.push(`${counts.pending} queued`);
  return parts.join(", ");
}

/**
 * The floating pill: hidden when nothing runs; one batch reads "Sweep 12/40 · ETA 3m"; several add up,
 * with the ETA summed because the queue runs their prompts one after another.
 */
export function indicatorView(state, now) {
  const running = runningBatches(state);
  if (running.length === 0) return { visible: false, text: "", title: "" };
  const ended = running.reduce((sum, batch) => sum + endedCount(batch.counts), 0);
  const total = running.reduce((sum, batch) => sum + batch.counts.total, 0);
  const etas = running.map((batch) => etaSeconds(batch, now));
  const eta = etas.every((value) => value !== null) ? etas.reduce((sum, value) => sum + value, 0) : null;
  const label = running.length === 1 ? "Sweep" : plural(running.length, "sweep");
  const parts = [`${label} ${ended}/${total}`];
  if (running.length === 1 && running[0].state === "collecting") parts.push("building grid");
  else if (eta !== null) parts.push(`ETA ${formatEta(eta)}`);
  const title = running.map((batch) => `${batchDisplayName(batch)}: ${progressText(batch.counts)} (${stateLabel(batch.state)})`);
  return { visible: true, text: parts.join(" · "), title: title.join("\n"), progressText: `${ended}/${total}` };
}
