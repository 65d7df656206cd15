// The one place that knows which frontend API to call: every feature detection between frontend 1.27.x (the
// one ComfyUI 0.3.64 pins) and today's (1.58.x) lives here. Pure: each helper takes the object it inspects
// (app, extensionManager, node, toast service), so node --test drives it with plain stand-ins.
//
// Rule for each pair: call the new API when it exists and fall back to the old one only when it does not,
// because the old ones (input.link, output.links, app.graph, toast.add, extensionManager.registerSidebarTab)
// print deprecation warnings on newer frontends.

/** Maps the pack's toast severities to the newer toast service's methods. */
const TOAST_METHODS = Object.freeze({ success: "success", info: "info", warn: "warning", error: "error" });

/** The root graph: `app.rootGraph` (newer), else `app.graph` (1.27.x, where rootGraph does not exist). */
export function rootGraph(app) {
  if (!app) return null;
  return app.rootGraph ?? ("rootGraph" in app ? null : app.graph) ?? null;
}

/** Registers a sidebar tab through `sidebarTab.registerSidebarTab` when present. Returns false without any API. */
export function registerSidebarTab(extensionManager, tab) {
  const sidebar = extensionManager?.sidebarTab;
  if (typeof sidebar?.registerSidebarTab === "function") {
    sidebar.registerSidebarTab(tab);
    return true;
  }
  if (typeof extensionManager?.registerSidebarTab === "function") {
    extensionManager.registerSidebarTab(tab);
    return true;
  }
  return false;
}

/**
 * Shows `{severity, summary, detail, life}` through the severity methods (`toast.success(title, {description,
 * duration})`) when the service has them, else through `toast.add(message)`. Returns false without a service.
 */
export function showToast(toast, message) {
  const method = TOAST_METHODS[message?.severity] ?? "info";
  if (typeof toast?.[method] === "function") {
    const options = { description: message.detail };
    if (message.life) options.duration = message.life;
    toast[method](message.summary ?? "", options);
    return true;
  }
  if (typeof toast?.add === "function") {
    toast.add(message);
    return true;
  }
  return false;
}

/** Removes every toast: `dismissAll` (newer) or `removeAll` (older). */
export function clearToasts(toast) {
  if (typeof toast?.dismissAll === "function") toast.dismissAll();
  else if (typeof toast?.removeAll === "function") toast.removeAll();
}

/** Link lookup across frontends: LGraph.getLink (newer), links as a Map (1.2x+), links as a plain object (older). */
export function getLink(graph, linkId) {
  if (linkId === null || linkId === undefined || !graph) return undefined;
  if (typeof graph.getLink === "function") {
    const link = graph.getLink(linkId);
    if (link) return link;
  }
  const links = graph.links;
  if (!links) return undefined;
  if (typeof links.get === "function") {
    const link = links.get(linkId) ?? links.get(String(linkId));
    if (link) return link;
  }
  return links[linkId] ?? undefined;
}

function hasMethod(node, name) {
  return typeof node?.[name] === "function";
}

/** Whether input `slot` of `node` has a link: `node.isInputConnected` when present, else `input.link`. */
export function isInputConnected(node, slot) {
  if (hasMethod(node, "isInputConnected")) return Boolean(node.isInputConnected(slot));
  const linkId = node?.inputs?.[slot]?.link;
  return linkId !== null && linkId !== undefined;
}

/**
 * The link into input `slot` ({id, origin_id, origin_slot, target_id, target_slot}), or undefined.
 * `node.getInputLink` when present; else `input.link` looked up in `graph`. A connected input whose link is
 * missing gives `{id}` only, so the caller can report it as broken.
 */
export function inputLink(graph, node, slot) {
  if (hasMethod(node, "getInputLink")) return node.getInputLink(slot) ?? undefined;
  const linkId = node?.inputs?.[slot]?.link;
  if (linkId === null || linkId === undefined) return undefined;
  return getLink(graph, linkId) ?? { id: linkId, missing: true };
}

/**
 * Where output `slot` of `node` goes: [{node, inputIndex}]. Newer frontends: `node.getOutputNodes(slot)`, then
 * each target's input whose link comes from this node and slot. Older: `output.links` looked up in `graph`.
 */
export function outputTargets(graph, node, slot) {
  if (hasMethod(node, "getOutputNodes")) {
    const targets = [];
    for (const target of node.getOutputNodes(slot) ?? []) {
      (target?.inputs ?? []).forEach((_, inputIndex) => {
        const link = inputLink(graph, target, inputIndex);
        if (link && link.origin_id === node.id && link.origin_slot === slot) targets.push({ node: target, inputIndex });
      });
    }
    return targets;
  }
  const targets = [];
  for (const linkId of node?.outputs?.[slot]?.links ?? []) {
    const link = getLink(graph, linkId);
    const target = link ? graph.getNodeById(link.target_id) : null;
    if (target) targets.push({ node: target, inputIndex: link.target_slot });
  }
  return targets;
}
