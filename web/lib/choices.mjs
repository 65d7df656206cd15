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
