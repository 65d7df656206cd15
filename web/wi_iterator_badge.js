// Live badge on the WIIterator node ("40 prompts · matrix" / "grid 4096×5120") and error badges on parameter
// nodes whose values the server rejects.
//
// The badge is a DOM widget (node.addDOMWidget), not canvas drawing: the "Nodes 2.0" (Vue) renderer never calls
// onDrawForeground, and it reads node.badges only when a node is mounted, so neither would show a badge that
// changes as the user types. A DOM widget is displayed by both renderers and updated in place. It is excluded
// from the saved workflow (widgets_values) and from the prompt (serialize: false).
//
// The count and the errors come from POST /wi/preview, so the editor applies exactly the server's parsing rules.
// Requests are debounced (typing fires per keystroke) and skipped when the request body has not changed.

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { buildPreviewBody, createApiClient } from "./lib/api_client.mjs";
import { assignPreviewErrors, iteratorBadge, parameterBadge } from "./lib/badge.mjs";
import { rootGraph } from "./lib/compat.mjs";
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
import { BADGE_CSS, BADGE_STYLE_ELEMENT_ID } from "./lib/styles.mjs";

const EXTENSION_NAME = "wi.iteratorBadge";
const PREVIEW_DEBOUNCE_MS = 300;
const BADGE_WIDGET_NAME = "wi_badge";
/** Least room the canvas renderer reserves for the badge widget (one line of text and padding). */
const BADGE_MIN_HEIGHT = 24;
/** Space the canvas renderer leaves around a DOM widget (its default, 10 px, wastes a line's height). */
const BADGE_MARGIN = 4;
/** Top plus bottom padding of .wi-badge (styles.mjs BADGE_CSS). */
const BADGE_VERTICAL_PADDING = 8;

const client = createApiClient(api);
// Badge data lives in WeakMaps, not on the nodes, so it can never leak into a saved workflow.
const badgesByNode = new WeakMap();
const previewByIterator = new WeakMap();
const gateByIterator = new WeakMap();
const wrappedWidgets = new WeakSet();
/** The badge element of each node's DOM widget, and the node each element was made for. */
const badgeElements = new WeakMap();
const elementOwners = new WeakMap();

function isSweepNodeClass(className) {
  return className === ITERATOR_CLASS || String(className ?? "").startsWith(PARAMETER_CLASS_PREFIX);
}

function isSweepNode(node) {
  return isIteratorNode(node) || isParameterNode(node);
}

/** Root graph plus every subgraph definition, so iterators inside subgraphs get badges too. */
function allGraphs() {
  const root = rootGraph(app);
  if (!root) return [];
  const subgraphs = root.subgraphs && typeof root.subgraphs.values === "function" ? [...root.subgraphs.values()] : [];
  return [root, ...subgraphs];
}

function redraw() {
  const canvas = app.canvas ?? rootGraph(app)?.list_of_graphcanvas?.[0];
  canvas?.setDirty?.(true, false);
}

function setBadge(node, badge) {
  if (badge) badgesByNode.set(node, badge);
  else badgesByNode.delete(node);
  renderBadge(node);
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
    skip: settings.skip,
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
// Badge widget

function ensureBadgeStyles() {
  if (document.getElementById(BADGE_STYLE_ELEMENT_ID)) return;
  const style = document.createElement("style");
  style.id = BADGE_STYLE_ELEMENT_ID;
  style.textContent = BADGE_CSS;
  document.head.appendChild(style);
}

/** Adds the badge widget to a sweep node once; a frontend without DOM widgets simply shows no badge. */
function ensureBadgeWidget(node) {
  if (badgeElements.has(node) || typeof node.addDOMWidget !== "function") return;
  ensureBadgeStyles();
  const element = document.createElement("div");
  element.className = "wi-badge";
  element.setAttribute("data-wi-badge", "");
  element.hidden = true;
  const widget = node.addDOMWidget(BADGE_WIDGET_NAME, BADGE_WIDGET_NAME, element, {
    serialize: false,
    hideOnZoom: false,
    getValue: () => undefined,
    setValue: () => {},
    margin: BADGE_MARGIN,
    // The canvas renderer gives the element this height less both margins: the text's own height plus them, so
    // no line is cut off.
    getMinHeight: () => Math.max(BADGE_MIN_HEIGHT, textHeight(shownElement(node)) + 2 * BADGE_MARGIN),
  });
  if (widget) widget.serialize = false;
  badgeElements.set(node, element);
  elementOwners.set(element, node);
  renderBadge(node);
}

/** Height of the badge's lines plus its padding; not scrollHeight, which grows with the box it is given. */
function textHeight(element) {
  if (!element || element.hidden) return 0;
  const lines = [...element.children].reduce((sum, child) => sum + (child.offsetHeight || 0), 0);
  return lines + BADGE_VERTICAL_PADDING;
}

function isLiveNode(node) {
  return allGraphs().some((graph) => graph.getNodeById?.(node.id) === node);
}

/**
 * The element on screen for `node`. Frontend 1.35's Vue renderer keeps showing the widget element of a node with
 * the same id from the previously loaded workflow and never mounts the new node's own element (checked in the
 * browser tests); the badge then adopts that orphan (its owner is in no graph any more, and it sits inside
 * this node's Vue element), so it shows this node's badge. Elsewhere the node's own element is mounted and
 * nothing is adopted.
 */
function shownElement(node) {
  const element = badgeElements.get(node);
  if (!element || element.isConnected || typeof document.querySelectorAll !== "function") return element;
  for (const candidate of document.querySelectorAll(`[data-wi-badge-node="${CSS.escape(String(node.id))}"]`)) {
    const owner = elementOwners.get(candidate);
    if (!candidate.isConnected || owner === node || (owner && isLiveNode(owner))) continue;
    // Only an element the Vue renderer shows inside this node's own DOM: on the canvas renderer the new element
    // is merely not mounted yet, and the old one is about to go.
    if (!candidate.closest?.(`[data-node-id="${CSS.escape(String(node.id))}"]`)) continue;
    badgeElements.set(node, candidate);
    elementOwners.set(candidate, node);
    delete candidate.dataset.signature;
    return candidate;
  }
  return element;
}

/** Copies the node's badge ({lines, tone}) into its widget element. */
function renderBadge(node) {
  const element = shownElement(node);
  if (!element) return;
  const badge = badgesByNode.get(node) ?? null;
  element.setAttribute("data-wi-badge-node", String(node.id));
  element.setAttribute("data-wi-badge-tone", badge?.tone ?? "none");
  element.hidden = !badge;
  const lines = badge?.lines ?? [];
  const signature = lines.join("\n");
  if (element.dataset.signature === signature) return;
  element.dataset.signature = signature;
  element.replaceChildren(
    ...lines.map((line) => {
      const row = document.createElement("div");
      row.className = "wi-badge__line";
      row.textContent = line;
      return row;
    }),
  );
  element.title = signature;
  if (typeof requestAnimationFrame === "function") requestAnimationFrame(() => growToFit(node));
}

/**
 * A longer badge needs a taller node on the canvas renderer, which sizes nodes from their widgets only when asked.
 * Grow only: a node that shrank with every shorter badge would jump while the user types.
 */
function growToFit(node) {
  const wanted = typeof node.computeSize === "function" ? node.computeSize() : null;
  if (!wanted || !node.size || !(wanted[1] > node.size[1]) || typeof node.setSize !== "function") return;
  node.setSize([node.size[0], wanted[1]]);
  redraw();
}

function patchNodeType(nodeType) {
  const prototype = nodeType.prototype;

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
    ensureBadgeWidget(node);
    watchWidgets(node);
    scheduleRefresh();
  },

  loadedGraphNode(node) {
    if (!isSweepNode(node)) return;
    ensureBadgeWidget(node);
    watchWidgets(node);
    scheduleRefresh();
  },

  afterConfigureGraph() {
    scheduleRefresh();
  },

  /** For end-to-end tests and debugging: the badge shown on `node` ({lines, tone}) or null. */
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
