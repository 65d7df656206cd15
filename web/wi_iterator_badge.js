// Live badge on the WIIterator node ("40 prompts · matrix" / "grid 4096×5120") and error badges on parameter
// nodes whose values the server rejects.
//
// The count and the errors come from POST /wi/preview, so the editor applies exactly the server's parsing rules.
// Requests are debounced (typing fires per keystroke) and skipped when the request body has not changed.

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { buildPreviewBody, createApiClient } from "./lib/api_client.mjs";
import { assignPreviewErrors, iteratorBadge, parameterBadge, wrapText } from "./lib/badge.mjs";
import {
  collectParameterChain,
  findImageSize,
  findIterators,
  graphNodes,
  isIteratorNode,
  isParameterNode,
  ITERATOR_CLASS,
  PARAMETER_CLASS_PREFIX,
  readIteratorSettings,
} from "./lib/graph_walk.mjs";
import { createLatestGate, debounce } from "./lib/schedule.mjs";

const EXTENSION_NAME = "wi.iteratorBadge";
const PREVIEW_DEBOUNCE_MS = 300;
const BADGE_FONT = "12px sans-serif";
const BADGE_LINE_HEIGHT = 16;
const BADGE_PADDING = 6;
const BADGE_GAP_BELOW_NODE = 6;
const APPROX_CHAR_WIDTH = 6.5;
const TONE_COLOURS = { info: "#2f5f8f", warn: "#8a6a12", error: "#a33030", muted: "#4a4a4a" };

const client = createApiClient(api);
// Badge data lives in WeakMaps, not on the nodes, so it can never leak into a saved workflow.
const badgesByNode = new WeakMap();
const previewByIterator = new WeakMap();
const gateByIterator = new WeakMap();
const wrappedWidgets = new WeakSet();

function isSweepNodeClass(className) {
  return className === ITERATOR_CLASS || String(className ?? "").startsWith(PARAMETER_CLASS_PREFIX);
}

function isSweepNode(node) {
  return isIteratorNode(node) || isParameterNode(node);
}

/** Root graph plus every subgraph definition, so iterators inside subgraphs get badges too. */
function allGraphs() {
  const root = app.graph;
  if (!root) return [];
  const subgraphs = root.subgraphs && typeof root.subgraphs.values === "function" ? [...root.subgraphs.values()] : [];
  return [root, ...subgraphs];
}

function redraw() {
  const canvas = app.canvas ?? app.graph?.list_of_graphcanvas?.[0];
  canvas?.setDirty?.(true, false);
}

function setBadge(node, badge) {
  if (badge) badgesByNode.set(node, badge);
  else badgesByNode.delete(node);
}

function previewErrorText(error) {
  if (error?.status === 404) return "the server has no /wi/preview route (restart ComfyUI after updating)";
  return error?.message ?? String(error);
}

function applyPreview(graph, iterator, chain, settings, { preview = null, error = null }) {
  const { byNode, unassigned } = preview ? assignPreviewErrors(chain.parameters, preview) : { byNode: new Map(), unassigned: [] };
  setBadge(iterator, iteratorBadge({ settings, preview, requestError: error, iteratorMessages: unassigned }));
  const axes = Array.isArray(preview?.axes) && preview.axes.length === chain.parameters.length ? preview.axes : [];
  chain.parameters.forEach((parameter, position) => {
    const node = graph.getNodeById(parameter.nodeId);
    if (node) setBadge(node, parameterBadge({ errors: byNode.get(parameter.nodeId) ?? [], axis: axes[position] ?? null }));
  });
  redraw();
}

function clearParameterBadges(graph, chain) {
  for (const parameter of chain.parameters) {
    const node = graph.getNodeById(parameter.nodeId);
    if (node) setBadge(node, null);
  }
}

async function refreshIterator(graph, iterator, conflict) {
  const settings = readIteratorSettings(iterator);
  const chain = collectParameterChain(graph, iterator);
  if (!settings.enabled) {
    setBadge(iterator, iteratorBadge({ settings }));
    clearParameterBadges(graph, chain);
    return chain;
  }
  if (conflict) {
    setBadge(iterator, { lines: [conflict], tone: "error" });
    clearParameterBadges(graph, chain);
    return chain;
  }
  if (chain.problems.length > 0) {
    setBadge(iterator, iteratorBadge({ settings, problems: chain.problems }));
    clearParameterBadges(graph, chain);
    for (const problem of chain.problems) {
      const node = graph.getNodeById(problem.nodeId);
      if (node && isParameterNode(node)) setBadge(node, { lines: [problem.message], tone: "error" });
    }
    return chain;
  }
  if (chain.parameters.length === 0) {
    setBadge(iterator, { lines: ['Connect parameter nodes to "parameters"'], tone: "warn" });
    return chain;
  }

  const request = {
    parameters: chain.parameters,
    mode: settings.mode,
    unequalLengths: settings.unequalLengths,
    imageSize: findImageSize(graph),
  };
  const key = JSON.stringify(buildPreviewBody(request));
  const cached = previewByIterator.get(iterator);
  if (cached?.key === key) {
    applyPreview(graph, iterator, chain, settings, cached.result);
    return chain;
  }
  const gate = gateByIterator.get(iterator) ?? createLatestGate();
  gateByIterator.set(iterator, gate);
  const token = gate.begin();
  let result;
  try {
    result = { preview: await client.preview(request) };
  } catch (error) {
    result = { error: previewErrorText(error) };
  }
  if (!gate.isCurrent(token)) return chain;
  // Failed requests are not cached, so the next edit (or graph change) tries again.
  if (result.preview) previewByIterator.set(iterator, { key, result });
  applyPreview(graph, iterator, chain, settings, result);
  return chain;
}

/** The server refuses a prompt with several enabled iterators; say so before the Queue press. */
function enabledIteratorConflict(graphs) {
  const enabled = graphs.flatMap((graph) => findIterators(graph)).filter((node) => readIteratorSettings(node).enabled);
  if (enabled.length <= 1) return null;
  return `only one WIIterator may be enabled per workflow; found ${enabled.length}`;
}

async function refreshAll() {
  const graphs = allGraphs();
  const conflict = enabledIteratorConflict(graphs);
  for (const graph of graphs) {
    const iterators = findIterators(graph);
    const chains = await Promise.all(iterators.map((iterator) => refreshIterator(graph, iterator, conflict).catch(reportFailure)));
    // Parameter nodes no longer in any chain must not keep a stale badge.
    const chained = new Set(chains.flatMap((chain) => (chain ? chain.parameters.map((parameter) => parameter.nodeId) : [])));
    for (const node of graphNodes(graph)) {
      if (isParameterNode(node) && !chained.has(node.id)) {
        const problemOnNode = chains.some((chain) => chain?.problems.some((problem) => problem.nodeId === node.id));
        if (!problemOnNode) setBadge(node, null);
      }
    }
  }
  redraw();
}

function reportFailure(error) {
  console.error(`[${EXTENSION_NAME}] preview refresh failed:`, error);
  return null;
}

const scheduleRefresh = debounce(() => {
  refreshAll().catch(reportFailure);
}, PREVIEW_DEBOUNCE_MS);

// ---------------------------------------------------------------------------------------------------------------
// Drawing

function roundedRect(ctx, x, y, width, height, radius) {
  ctx.beginPath();
  if (typeof ctx.roundRect === "function") ctx.roundRect(x, y, width, height, radius);
  else ctx.rect(x, y, width, height);
}

/** Draws the badge just below the node, where it covers no widget or slot. */
function drawBadge(ctx, node, badge) {
  const width = Math.max(120, node.size?.[0] ?? 120);
  const charsPerLine = Math.max(12, Math.floor((width - 2 * BADGE_PADDING) / APPROX_CHAR_WIDTH));
  const lines = badge.lines.flatMap((line) => wrapText(line, charsPerLine));
  if (lines.length === 0) return;
  const top = (node.size?.[1] ?? 0) + BADGE_GAP_BELOW_NODE;
  const height = lines.length * BADGE_LINE_HEIGHT + BADGE_PADDING;
  ctx.save();
  ctx.font = BADGE_FONT;
  ctx.fillStyle = TONE_COLOURS[badge.tone] ?? TONE_COLOURS.info;
  roundedRect(ctx, 0, top, width, height, 4);
  ctx.fill();
  ctx.fillStyle = "#ffffff";
  ctx.textAlign = "left";
  ctx.textBaseline = "top";
  lines.forEach((line, index) => ctx.fillText(line, BADGE_PADDING, top + BADGE_PADDING / 2 + index * BADGE_LINE_HEIGHT + 2));
  ctx.restore();
}

function patchNodeType(nodeType) {
  const prototype = nodeType.prototype;

  const originalDrawForeground = prototype.onDrawForeground;
  prototype.onDrawForeground = function (ctx, ...rest) {
    const result = originalDrawForeground?.apply(this, [ctx, ...rest]);
    const badge = badgesByNode.get(this);
    if (badge && !this.flags?.collapsed) drawBadge(ctx, this, badge);
    return result;
  };

  const originalConnectionsChange = prototype.onConnectionsChange;
  prototype.onConnectionsChange = function (...args) {
    const result = originalConnectionsChange?.apply(this, args);
    scheduleRefresh();
    return result;
  };

  const originalWidgetChanged = prototype.onWidgetChanged;
  prototype.onWidgetChanged = function (...args) {
    const result = originalWidgetChanged?.apply(this, args);
    scheduleRefresh();
    return result;
  };

  const originalRemoved = prototype.onRemoved;
  prototype.onRemoved = function (...args) {
    const result = originalRemoved?.apply(this, args);
    scheduleRefresh();
    return result;
  };
}

/** Text areas report every keystroke through widget.callback; canvas widgets through onWidgetChanged too. */
function watchWidgets(node) {
  for (const widget of node.widgets ?? []) {
    if (wrappedWidgets.has(widget)) continue;
    wrappedWidgets.add(widget);
    const originalCallback = widget.callback;
    widget.callback = function (...args) {
      const result = originalCallback?.apply(this, args);
      scheduleRefresh();
      return result;
    };
  }
}

app.registerExtension({
  name: EXTENSION_NAME,

  beforeRegisterNodeDef(nodeType, nodeData) {
    if (isSweepNodeClass(nodeData?.name)) patchNodeType(nodeType);
  },

  nodeCreated(node) {
    if (!isSweepNode(node)) return;
    watchWidgets(node);
    scheduleRefresh();
  },

  loadedGraphNode(node) {
    if (!isSweepNode(node)) return;
    watchWidgets(node);
    scheduleRefresh();
  },

  afterConfigureGraph() {
    scheduleRefresh();
  },

  /** For end-to-end tests and debugging: the badge drawn on `node` ({lines, tone}) or null. */
  badgeFor(node) {
    return badgesByNode.get(node) ?? null;
  },

  /** Runs a pending refresh immediately (skipping the debounce); resolves once badges are updated. */
  refreshNow() {
    scheduleRefresh.cancel();
    return refreshAll();
  },

  setup() {
    // Catch-all for edits that reach neither a widget callback nor a connection hook (undo, paste, bypass).
    api.addEventListener("graphChanged", () => scheduleRefresh());
    scheduleRefresh();
  },
});
