// Text of the live badges drawn on the iterator node and on parameter nodes. Pure.

import { formatSize, plural, withoutCaretSnippets } from "./format.mjs";

/**
 * Badge for the iterator. Returns {lines: [string], tone: "info"|"warn"|"error"|"muted"}.
 * `problems` are chain problems found locally; `preview` is the server's /wi/preview answer (or null while
 * none has arrived); `requestError` is set when the preview request itself failed.
 */
export function iteratorBadge({ settings, preview = null, problems = [], requestError = null, iteratorMessages = [] }) {
  if (settings && settings.enabled === false) return { lines: ["Sweep off: queues one prompt"], tone: "muted" };
  if (problems.length > 0) return { lines: problems.map((problem) => problem.message), tone: "error" };
  if (requestError) return { lines: [`Preview unavailable: ${requestError}`], tone: "warn" };
  if (!preview) return { lines: ["Sweep: computing…"], tone: "muted" };

  const count = Number.isFinite(preview.count) ? preview.count : 0;
  const errors = Array.isArray(preview.errors) ? preview.errors : [];
  const lines = [];
  const head = [`${plural(count, "prompt")}`];
  if (settings?.mode) head.push(settings.mode);
  // The count is after the skip list; say how many combinations it removed.
  if (Number.isFinite(preview.skipped) && preview.skipped > 0) head.push(`${preview.skipped} skipped`);
  if (errors.length > 0) head.push(plural(errors.length, "invalid parameter"));
  lines.push(head.join(" · "));

  const grid = preview.grid;
  if (grid && Number.isFinite(grid.width) && Number.isFinite(grid.height) && count > 0) {
    const parts = [`grid ${formatSize(grid.width, grid.height)}`];
    if (Number.isFinite(grid.pages) && grid.pages > 1) parts.push(`${grid.pages} pages`);
    if (Number.isFinite(grid.downscale) && grid.downscale > 0 && grid.downscale < 1) {
      parts.push(`scaled to ${Math.round(grid.downscale * 100)}%`);
    }
    lines.push(parts.join(" · "));
  }
  for (const message of iteratorMessages) lines.push(message);
  const warnings = Array.isArray(grid?.warnings) ? grid.warnings.map(String) : [];
  for (const warning of warnings) lines.push(warning);

  let tone = "info";
  if (warnings.length > 0 || count === 0) tone = "warn";
  if (errors.length > 0 || iteratorMessages.length > 0) tone = "error";
  return { lines, tone };
}

/**
 * Assigns the preview's errors to parameter nodes. Axes are matched by position (the request listed the
 * parameters in this order), `errors` by the echoed `node_id`, else by parameter name; errors naming no known
 * parameter (for example the total combination limit) are returned as `unassigned` for the iterator badge.
 * Returns { byNode: Map<nodeId, string[]>, unassigned: string[] }.
 */
export function assignPreviewErrors(parameters, preview) {
  const byNode = new Map();
  const unassigned = [];
  const add = (nodeId, message) => {
    const list = byNode.get(nodeId) ?? [];
    if (!list.includes(message)) list.push(message);
    byNode.set(nodeId, list);
  };
  const axes = Array.isArray(preview?.axes) ? preview.axes : [];
  if (axes.length === parameters.length) {
    axes.forEach((axis, position) => {
      if (axis && axis.error) add(parameters[position].nodeId, String(axis.error));
    });
  }
  for (const error of Array.isArray(preview?.errors) ? preview.errors : []) {
    const message = String(error?.message ?? "invalid value");
    const hasNodeId = error?.node_id !== undefined && error?.node_id !== null;
    const owners = hasNodeId
      ? parameters.filter((parameter) => String(parameter.nodeId) === String(error.node_id))
      : parameters.filter((parameter) => error?.param && parameter.name === error.param);
    if (owners.length === 0) unassigned.push(error?.param ? `${error.param}: ${message}` : message);
    for (const owner of owners) add(owner.nodeId, message);
  }
  return { byNode, unassigned };
}

/** Badge for one parameter node: its value count when valid, the server's message when not. */
export function parameterBadge({ errors = [], axis = null }) {
  if (errors.length > 0) return { lines: errors.map(withoutCaretSnippets), tone: "error" };
  if (axis && Number.isFinite(axis.count)) return { lines: [plural(axis.count, "value")], tone: "info" };
  return null;
}

/** Splits a long message into lines of at most `width` characters at spaces, so it fits under a node. */
export function wrapText(text, width) {
  const words = String(text).split(/\s+/).filter(Boolean);
  const lines = [];
  let line = "";
  for (const word of words) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines;
}
