// A cell's outputs for the viewer: the "outputs" entries of batch.json / the viewer data (image, animated, video,
// audio, text), or, for batches written before outputs existed, its "files" read by extension. Pure; no DOM.

const VIDEO_EXTENSIONS = [".mp4", ".webm", ".mov", ".mkv", ".m4v"];
const AUDIO_EXTENSIONS = [".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac"];
const ANIMATED_EXTENSIONS = [".gif", ".apng"];
export const OUTPUT_KINDS = ["image", "animated", "video", "audio", "text"];

/** The kind of an old-style "files" entry, by its extension (the outputs list says it exactly when present). */
export function kindOfPath(path) {
  const low = String(path).toLowerCase().split("?")[0];
  if (VIDEO_EXTENSIONS.some((e) => low.endsWith(e))) return "video";
  if (AUDIO_EXTENSIONS.some((e) => low.endsWith(e))) return "audio";
  if (ANIMATED_EXTENSIONS.some((e) => low.endsWith(e))) return "animated";
  if (low.endsWith(".txt")) return "text";
  return "image";
}

/**
 * Every output of a cell as `{kind, path?, text?, media_type?, node_id?}`, in the order the batch recorded them.
 * Entries of unknown kind or without a path (or text, for text outputs) are left out.
 */
export function cellOutputs(cell) {
  if (!cell) return [];
  if (Array.isArray(cell.outputs)) {
    return cell.outputs.filter((o) => o && OUTPUT_KINDS.includes(o.kind) &&
      (o.kind === "text" ? typeof o.text === "string" || typeof o.path === "string" : typeof o.path === "string"));
  }
  return (Array.isArray(cell.files) ? cell.files : []).filter((f) => typeof f === "string")
    .map((path) => ({ kind: kindOfPath(path), path }));
}

/** The output a grid tile shows: the first visual one (image, animated, video), else the first of any kind. */
export function primaryOutput(cell) {
  const outputs = cellOutputs(cell);
  return outputs.find((o) => o.kind === "image" || o.kind === "animated" || o.kind === "video") || outputs[0] || null;
}

/** Whether two cells can be compared pixel by pixel (both show a still or animated image). */
export function isPictureOutput(output) {
  return !!output && (output.kind === "image" || output.kind === "animated") && typeof output.path === "string";
}

/**
 * The time every synced video shows when the shared scrubber says `fraction` (0..1) of the longest one: each video
 * clamps to its own length, so a shorter clip holds its last frame rather than jumping.
 */
export function syncedTime(fraction, duration, longest) {
  if (!Number.isFinite(duration) || duration <= 0) return 0;
  const f = Math.min(1, Math.max(0, Number(fraction) || 0));
  const target = f * (Number.isFinite(longest) && longest > 0 ? longest : duration);
  return Math.min(target, duration);
}

/** The full text of an axis value for tooltips and the cell view: text as it is, a linked group's or a bundle's
 * `{name: value}` object as `name=value` pairs (String() would print "[object Object]"), anything else as JSON. */
export function valueTitle(value) {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  if (typeof value === "object" && !Array.isArray(value)) {
    return Object.entries(value).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ");
  }
  return typeof value === "number" || typeof value === "boolean" ? String(value) : JSON.stringify(value);
}
