// Reads a sweep's parameters from the editor graph: from the iterator's `parameters` input back through each
// parameter node's `previous` input. Works on a minimal interface so tests use plain objects:
//   graph: { getNodeById(id), links: Map | object, getLink?(id), nodes?|_nodes? }
//   node:  { id, type, comfyClass?, inputs: [{name, link}], widgets: [{name, value}], mode? }, or a LiteGraph
//          node with getInputLink / isInputConnected / getOutputNodes (read through lib/compat.mjs, never input.link)
//   link:  { origin_id, origin_slot }

import { getLink, inputLink, isInputConnected, outputTargets } from "./compat.mjs";

export { getLink };

export const ITERATOR_CLASS = "WIIterator";
export const PARAMETER_CLASS_PREFIX = "WIParameter";
/** Typed parameter classes have no `type` widget: the class implies it (mirrors core/prompt_graph.py). */
export const IMPLIED_PARAMETER_TYPES = Object.freeze({
  WIParameterInt: "INT",
  WIParameterFloat: "FLOAT",
  WIParameterString: "STRING",
  WIParameterBoolean: "BOOLEAN",
  WIParameterCombo: "COMBO",
  WIParameterSeed: "SEED",
  WIParameterPromptSR: "PROMPT_SR",
  WIParameterBundle: "BUNDLE",
});
/** Output 0 of a parameter node is the growing stack; output 1 is its single value. */
const STACK_OUTPUT_SLOT = 0;
const VALUE_OUTPUT_SLOT = 1;
/** LiteGraph node modes: 2 = muted ("never"), 4 = bypassed. */
const MODE_MUTED = 2;
const MODE_BYPASSED = 4;
const REROUTE_CLASS = "Reroute";
/** Far beyond any real chain; stops a corrupted graph from looping even if the visited check were bypassed. */
const MAX_CHAIN_LENGTH = 1000;

export function nodeClass(node) {
  return node?.comfyClass ?? node?.type ?? "";
}

export function isIteratorNode(node) {
  return nodeClass(node) === ITERATOR_CLASS;
}

export function isParameterNode(node) {
  return nodeClass(node).startsWith(PARAMETER_CLASS_PREFIX);
}

export function graphNodes(graph) {
  const nodes = graph?.nodes ?? graph?._nodes ?? [];
  return Array.isArray(nodes) ? nodes : [...nodes];
}

export function findInput(node, name) {
  return (node?.inputs ?? []).find((input) => input?.name === name);
}

function findInputIndex(node, name) {
  return (node?.inputs ?? []).findIndex((input) => input?.name === name);
}

export function findWidget(node, name) {
  return (node?.widgets ?? []).find((widget) => widget?.name === name);
}

export function widgetValue(node, name, fallback = undefined) {
  const widget = findWidget(node, name);
  return widget === undefined ? fallback : widget.value;
}

/** The node feeding input `slot` of `node`, skipping legacy Reroute nodes; or a problem message. */
function upstreamNode(graph, node, slot, visited) {
  const inputName = node.inputs?.[slot]?.name;
  let current = node;
  let currentSlot = slot;
  for (let hops = 0; hops < MAX_CHAIN_LENGTH; hops += 1) {
    const link = inputLink(graph, current, currentSlot);
    if (!link || link.missing) return { problem: `input "${inputName}" has a broken link (${link?.id ?? "missing"})` };
    const origin = graph.getNodeById(link.origin_id);
    if (!origin) return { problem: `input "${inputName}" links to a missing node (${link.origin_id})` };
    if (nodeClass(origin) !== REROUTE_CLASS) return { node: origin, originSlot: link.origin_slot };
    if (visited.has(origin.id)) return { problem: "the parameter chain loops back on itself" };
    visited.add(origin.id);
    if (!origin.inputs?.[0] || !isInputConnected(origin, 0)) return { node: null };
    current = origin;
    currentSlot = 0;
  }
  return { problem: "the parameter chain is too long" };
}

/**
 * Choices a COMBO parameter may take: the combo list of the first input its `value` output (slot 1) feeds,
 * e.g. KSampler's sampler names. Null when it feeds no combo widget.
 */
export function comboOptions(graph, node) {
  for (const { node: target, inputIndex } of outputTargets(graph, node, VALUE_OUTPUT_SLOT)) {
    const inputName = target?.inputs?.[inputIndex]?.name;
    const choices = inputName === undefined ? undefined : findWidget(target, inputName)?.options?.values;
    if (Array.isArray(choices)) return choices;
  }
  return null;
}

/** `"KSampler.cfg; 12.seed"` -> ["KSampler.cfg", "12.seed"] (mirrors core/planner.py `target_parts`). */
export function targetParts(text) {
  return String(text ?? "")
    .replace(/\n/g, ";")
    .split(";")
    .map((part) => part.trim())
    .filter(Boolean);
}

/** Nodes a target's node reference names: the id, else every node with that title, else of that class. */
function nodesNamed(graph, ref) {
  const nodes = graphNodes(graph);
  const byId = nodes.filter((node) => String(node.id) === ref);
  if (byId.length > 0) return byId;
  const byTitle = nodes.filter((node) => node.title === ref);
  return byTitle.length > 0 ? byTitle : nodes.filter((node) => nodeClass(node) === ref);
}

/**
 * The texts a search/replace parameter's targets hold in the editor (the widget values), so the preview can
 * check the search text like the Queue press does. Targets whose node or widget is not found are left out:
 * the server reports those when the sweep is queued.
 */
export function targetTexts(graph, target) {
  const texts = [];
  for (const part of targetParts(target)) {
    const dot = part.lastIndexOf(".");
    if (dot <= 0) continue;
    const ref = part.slice(0, dot).trim().replace(/^#/, "");
    const inputName = part.slice(dot + 1).trim();
    for (const node of nodesNamed(graph, ref)) {
      const value = widgetValue(node, inputName);
      if (typeof value === "string") texts.push(value);
    }
  }
  return texts;
}

/**
 * The values a parameter node sends to the server, as typed by the user. Name and type follow the server's
 * rules: a blank name falls back to the node title, then to "param <id>"; a typed class implies its type.
 * With `graph`, a COMBO parameter also carries the choices of the input it feeds.
 */
export function readParameter(node, graph = null) {
  const implied = IMPLIED_PARAMETER_TYPES[nodeClass(node)];
  const name = String(widgetValue(node, "name", "") ?? "").trim() || node.title || `param ${node.id}`;
  const parameter = {
    nodeId: node.id,
    name,
    type: String(implied ?? widgetValue(node, "type", "STRING") ?? "STRING").toUpperCase(),
    values: String(widgetValue(node, "values", "") ?? ""),
  };
  const link = String(widgetValue(node, "link", "") ?? "").trim();
  if (link) parameter.link = link;
  const target = String(widgetValue(node, "target", "") ?? "");
  if (target.trim()) parameter.target = target;
  if (graph && parameter.type === "PROMPT_SR") parameter.texts = targetTexts(graph, target);
  if (graph && parameter.type === "COMBO") {
    const options = comboOptions(graph, node);
    if (options) parameter.options = options;
  }
  return parameter;
}

/**
 * Walks the chain ending at `iterator`. Returns parameters head first (the order the user chained them,
 * which is the order the server expands them in) and `problems` ({nodeId, message}) for broken chains;
 * the walk stops at the first problem and keeps what it collected before it.
 */
export function collectParameterChain(graph, iterator) {
  const result = { parameters: [], problems: [] };
  const startSlot = findInputIndex(iterator, "parameters");
  if (startSlot < 0) {
    result.problems.push({ nodeId: iterator?.id, message: 'the iterator has no "parameters" input' });
    return result;
  }
  const visited = new Set([iterator.id]);
  const chain = [];
  let downstream = iterator;
  let slot = startSlot;
  while (slot >= 0 && isInputConnected(downstream, slot)) {
    const inputName = downstream.inputs[slot].name;
    const { node, originSlot, problem } = upstreamNode(graph, downstream, slot, visited);
    if (problem) {
      result.problems.push({ nodeId: downstream.id, message: problem });
      break;
    }
    if (!node) break;
    if (!isParameterNode(node)) {
      result.problems.push({
        nodeId: downstream.id,
        message: `input "${inputName}" comes from ${nodeClass(node) || "a node"}, not a parameter node`,
      });
      break;
    }
    if (visited.has(node.id) || chain.length >= MAX_CHAIN_LENGTH) {
      result.problems.push({ nodeId: node.id, message: "the parameter chain loops back on itself" });
      break;
    }
    visited.add(node.id);
    if (node.mode === MODE_MUTED) {
      result.problems.push({ nodeId: node.id, message: "this parameter node is muted; bypass or remove it instead" });
      break;
    }
    if (originSlot !== undefined && originSlot !== STACK_OUTPUT_SLOT) {
      result.problems.push({ nodeId: node.id, message: "connect its 'parameters' output (not 'value') to the next node" });
      break;
    }
    // A bypassed node is skipped when the prompt is built, so its predecessor feeds the next node directly.
    if (node.mode !== MODE_BYPASSED) chain.push(node);
    downstream = node;
    slot = findInputIndex(node, "previous");
  }
  result.parameters = chain.reverse().map((node) => readParameter(node, graph));
  return result;
}

/** The iterator's own settings, with the node's defaults when a widget is missing. */
export function readIteratorSettings(iterator) {
  const enabled = widgetValue(iterator, "enabled", true);
  const unequalLengths = widgetValue(iterator, "unequal_lengths");
  return {
    enabled: enabled !== false,
    mode: widgetValue(iterator, "mode", "matrix") === "linear" ? "linear" : "matrix",
    batchName: String(widgetValue(iterator, "batch_name", "") ?? ""),
    unequalLengths: unequalLengths === "cycle" || unequalLengths === "error" ? unequalLengths : null,
    skip: String(widgetValue(iterator, "skip", "") ?? ""),
  };
}

/**
 * A best guess at the generated image size for the grid estimate: the first node with numeric `width` and
 * `height` widgets, preferring latent-image nodes (EmptyLatentImage and friends). Null when nothing fits,
 * and the server then uses its own default.
 */
export function findImageSize(graph) {
  const candidates = graphNodes(graph).filter((node) => {
    const width = widgetValue(node, "width");
    const height = widgetValue(node, "height");
    return Number.isFinite(width) && Number.isFinite(height) && width > 0 && height > 0;
  });
  const latent = candidates.find((node) => /latent/i.test(nodeClass(node)));
  const chosen = latent ?? candidates[0];
  return chosen ? [widgetValue(chosen, "width"), widgetValue(chosen, "height")] : null;
}

export function findIterators(graph) {
  return graphNodes(graph).filter(isIteratorNode);
}
