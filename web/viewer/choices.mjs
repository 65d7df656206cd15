// Stars and rejections: the same object as core/choices.py ({starred: [cell index], rejected: [cell index]},
// sorted, no duplicates, no cell in both). Pure; the page stores it (route or localStorage).

export function emptyChoices() {
  return { starred: [], rejected: [] };
}

function indices(list, cellCount) {
  if (!Array.isArray(list)) return [];
  const out = new Set();
  for (const item of list) {
    if (Number.isInteger(item) && item >= 0 && (cellCount === undefined || item < cellCount)) out.add(item);
  }
  return [...out].sort((a, b) => a - b);
}

/** A valid choices object from anything (stored, imported, served): bad entries are dropped; a star wins over a
 * rejection of the same cell. */
export function normalizeChoices(value, cellCount) {
  if (!value || typeof value !== "object") return emptyChoices();
  const starred = indices(value.starred, cellCount);
  const rejected = indices(value.rejected, cellCount).filter((i) => !starred.includes(i));
  return { starred, rejected };
}

/** "starred", "rejected" or null. */
export function choiceOf(choices, index) {
  if (choices.starred.includes(index)) return "starred";
  if (choices.rejected.includes(index)) return "rejected";
  return null;
}

/** A new choices object with `index` set to `mark` ("starred", "rejected" or null). */
export function setChoice(choices, index, mark) {
  const starred = choices.starred.filter((i) => i !== index);
  const rejected = choices.rejected.filter((i) => i !== index);
  if (mark === "starred") starred.push(index);
  if (mark === "rejected") rejected.push(index);
  return { starred: starred.sort((a, b) => a - b), rejected: rejected.sort((a, b) => a - b) };
}

/** Pressing the star (or reject) key again on a cell that has it clears it. */
export function toggleChoice(choices, index, mark) {
  return setChoice(choices, index, choiceOf(choices, index) === mark ? null : mark);
}

/** The localStorage key of a batch's choices when the viewer is opened as a file. */
export function storageKey(batchId) {
  return `wi.viewer.choices.${batchId || "unnamed"}`;
}

/** The exported choices file: the batch id plus the choices, so an import into another batch's viewer is refused. */
export function choicesFileText(batchId, choices) {
  return JSON.stringify({ format: "wi-choices/1", batch_id: batchId ?? null, ...normalizeChoices(choices) }, null, 2);
}

/**
 * Read an exported choices file. Throws an Error naming the problem (not JSON, another batch's file, not a choices
 * file) instead of importing something half-right.
 */
export function parseChoicesFile(text, batchId, cellCount) {
  let obj;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    throw new Error(`not a choices file: ${err.message}`);
  }
  if (!obj || typeof obj !== "object" || !Array.isArray(obj.starred) || !Array.isArray(obj.rejected)) {
    throw new Error("not a choices file: expected 'starred' and 'rejected' lists");
  }
  if (obj.batch_id != null && batchId != null && obj.batch_id !== batchId) {
    throw new Error(`these choices belong to batch ${obj.batch_id}, not ${batchId}`);
  }
  return normalizeChoices(obj, cellCount);
}
