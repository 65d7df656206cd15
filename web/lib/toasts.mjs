// Toast contents for server events: {severity, summary, detail, life}, shown through lib/compat.mjs showToast. Pure.

import { batchDisplayName } from "./view_model.mjs";
import { formatDuration, plural, withoutCaretSnippets } from "./format.mjs";

const LIFE_SHORT_MS = 5000;
const LIFE_LONG_MS = 10000;

/**
 * Events carry the client id of the tab that queued the sweep. Other tabs still update their panels, but
 * only the originating tab (or every tab when the id is unknown) raises a toast.
 */
export function isForThisClient(eventClientId, ownClientId) {
  return !eventClientId || !ownClientId || eventClientId === ownClientId;
}

/**
 * `wi.param_error` comes in two kinds: with a `param`, a parameter whose bad values were skipped while the sweep
 * still ran; without one, a sweep the server refused to queue (the message names the parameter when one is at fault).
 */
export function paramErrorToast(detail) {
  const message = withoutCaretSnippets(detail?.message || "invalid value");
  if (!detail?.param) return { severity: "error", summary: "Sweep not queued", detail: message, life: LIFE_LONG_MS };
  return { severity: "warn", summary: `Sweep parameter "${detail.param}"`, detail: message, life: LIFE_LONG_MS };
}

export function sizeWarningToast(detail, batch) {
  const name = batch ? batchDisplayName(batch) : "sweep";
  return { severity: "warn", summary: `Grid size: ${name}`, detail: String(detail?.message ?? ""), life: LIFE_LONG_MS };
}

/** `elapsedS` is passed in (not read from the batch) so the caller decides the clock. */
export function batchFinishedToast(batch, elapsedS) {
  const name = batchDisplayName(batch);
  const counts = batch.counts;
  if (batch.state === "cancelled") return batchCancelledToast(batch, null);
  const parts = [`${counts.done} of ${counts.total} done`];
  if (counts.failed) parts.push(`${counts.failed} failed`);
  if (counts.cancelled) parts.push(`${counts.cancelled} cancelled`);
  if (elapsedS !== null && elapsedS !== undefined) parts.push(`in ${formatDuration(elapsedS)}`);
  return {
    severity: counts.failed ? "warn" : "success",
    summary: `Sweep finished: ${name}`,
    detail: parts.join(", "),
    life: LIFE_SHORT_MS,
  };
}

export function batchCancelledToast(batch, removed) {
  const name = batch ? batchDisplayName(batch) : "sweep";
  const detail = Array.isArray(removed) ? `${plural(removed.length, "queued prompt")} removed` : "remaining cells will not run";
  return { severity: "info", summary: `Sweep cancelled: ${name}`, detail, life: LIFE_SHORT_MS };
}

export function requestFailedToast(action, error) {
  return { severity: "error", summary: `Sweeps: ${action} failed`, detail: String(error?.message ?? error), life: LIFE_LONG_MS };
}

/** Answer of POST /wi/resume: {queued, already_saved}. */
export function batchResumedToast(batch, response) {
  const name = batch ? batchDisplayName(batch) : "sweep";
  const parts = [`${plural(Number(response?.queued) || 0, "cell")} queued again`];
  if (Number(response?.already_saved) > 0) parts.push(`${plural(Number(response.already_saved), "cell")} already saved`);
  return { severity: "info", summary: `Sweep resumed: ${name}`, detail: parts.join(", "), life: LIFE_SHORT_MS };
}
