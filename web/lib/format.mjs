// Duration and ETA text. Pure functions; no DOM, no clock reads (callers pass seconds).

const MISSING = "—";

function isUsableNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

function pad2(value) {
  return String(value).padStart(2, "0");
}

/**
 * Precise, compact duration for elapsed times: "0s", "42s", "3m 05s", "1h 02m".
 * Seconds are dropped past an hour because they are noise at that scale.
 */
export function formatDuration(seconds) {
  if (!isUsableNumber(seconds) || seconds < 0) return MISSING;
  const total = Math.floor(seconds);
  if (total < 60) return `${total}s`;
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return `${minutes}m ${pad2(total % 60)}s`;
  const hours = Math.floor(minutes / 60);
  return `${hours}h ${pad2(minutes % 60)}m`;
}

/**
 * Coarse remaining time: an estimate deserves no more precision than "3m".
 * Seconds are shown only under a minute, rounded up so an estimate never reads "0s" while work remains.
 */
export function formatEta(seconds) {
  if (!isUsableNumber(seconds) || seconds < 0) return MISSING;
  if (seconds < 60) return `${Math.max(1, Math.ceil(seconds))}s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  return `${hours}h ${pad2(minutes % 60)}m`;
}

/** "1024×768"; the multiplication sign reads better than "x" in a badge. */
export function formatSize(width, height) {
  if (!isUsableNumber(width) || !isUsableNumber(height)) return MISSING;
  return `${Math.round(width)}×${Math.round(height)}`;
}

/** Plural helper for short labels: plural(1, "prompt") -> "1 prompt", plural(3, "prompt") -> "3 prompts". */
export function plural(count, noun, pluralNoun = `${noun}s`) {
  return `${count} ${count === 1 ? noun : pluralNoun}`;
}

export { MISSING };

/**
 * Server parse errors end with the source text and a caret line under the bad part (indented 4 spaces). Toasts
 * and canvas badges collapse leading spaces, which puts the caret under the wrong character, and the first line
 * already quotes the bad part and its position; so both drop the snippet. Other text is kept as is.
 */
export function withoutCaretSnippets(message) {
  return String(message).replace(/\n {4}[^\n]*\n {4} *\^+/g, "");
}
