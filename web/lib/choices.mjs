// Stars and rejects of a batch (issue 17, "shown in the Sweeps panel"): GET /wi/batch/{id}/choices answers
// {"starred": [cell index...], "rejected": [cell index...]}. A server without the route (404) shows nothing.
// Pure: no DOM, no `api`.

function indexSet(values) {
  return new Set(Array.isArray(values) ? values.filter((value) => Number.isInteger(value) && value >= 0) : []);
}

/** Normalises an answer; null for anything that is not the contract's shape (then nothing is shown). */
export function normaliseChoices(payload) {
  if (!payload || typeof payload !== "object" || Array.isArray(payload)) return null;
  if (!Array.isArray(payload.starred) && !Array.isArray(payload.rejected)) return null;
  const starred = indexSet(payload.starred);
  const rejected = indexSet(payload.rejected);
  // A cell is either starred or rejected; if a file says both, the star wins (the viewer toggles one off).
  for (const index of starred) rejected.delete(index);
  return { starred: [...starred].sort((a, b) => a - b), rejected: [...rejected].sort((a, b) => a - b) };
}

/** "★ 3 · ✕ 1" for the batch row, or "" when nothing is chosen. */
export function choicesSummary(choices) {
  if (!choices) return "";
  const parts = [];
  if (choices.starred.length) parts.push(`★ ${choices.starred.length}`);
  if (choices.rejected.length) parts.push(`✕ ${choices.rejected.length}`);
  return parts.join(" · ");
}

/** "starred" | "rejected" | null for one cell. */
export function cellChoice(choices, index) {
  if (!choices) return null;
  if (choices.starred.includes(index)) return "starred";
  if (choices.rejected.includes(index)) return "rejected";
  return null;
}

/**
 * Whether this server has the choices route: "unknown" until it answers, "yes" after a 200, "no" after the 404
 * of a server without it. While unknown the panel asks only on a user's cue (Refresh, coming back to this tab
 * from the viewer), so a server without the route never sees a request per batch on every page load; a browser
 * that saw the route answer remembers it (localStorage) and asks on load from then on.
 */
export const ChoicesSupport = Object.freeze({ unknown: "unknown", yes: "yes", no: "no" });

/**
 * Whether to ask for a batch's choices now. `cue`: what the user did that may have changed them: "refresh" (the
 * panel's Refresh: always asks, so a server that gained the route is noticed) or "visible" (back from another
 * tab: asks unless the server said it has no route).
 */
export function shouldAskChoices(support, { cue = null } = {}) {
  if (support === ChoicesSupport.yes || cue === "refresh") return true;
  return support === ChoicesSupport.unknown && cue === "visible";
}

/**
 * What a failed GET /wi/batch/{id}/choices says: "absent" (no such route: a server without issue 17 answers
 * through its batch file route, error "unknown file"), "batch" (the route exists but not for this batch), or
 * "transient" (anything else: ask again later).
 */
export function choicesFailure(error) {
  if (error?.status !== 404) return "transient";
  return error.error === "unknown file" || !error.error ? "absent" : "batch";
}
