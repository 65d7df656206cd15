import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  clearToasts,
  inputLink,
  isInputConnected,
  outputTargets,
  registerSidebarTab,
  rootGraph,
  showToast,
} from "../lib/compat.mjs";
import { collectParameterChain, comboOptions } from "../lib/graph_walk.mjs";

/** An object whose listed properties throw when read: what a deprecated API must never be touched as. */
function forbidding(target, names) {
  for (const name of names) {
    Object.defineProperty(target, name, {
      get() {
        throw new Error(`deprecated ${name} was read`);
      },
      configurable: true,
    });
  }
  return target;
}

/**
 * A LiteGraph-like graph (frontend 1.58): nodes answer getInputLink / isInputConnected / getOutputNodes, and
 * reading `input.link` or `output.links` throws, as a stand-in for the deprecation warning.
 */
function modernGraph() {
  const links = new Map();
  const nodes = new Map();
  const graph = { links, getNodeById: (id) => nodes.get(id) ?? null, getLink: (id) => links.get(id) };
  const makeNode = (id, type, inputNames, outputCount, widgets) => {
    const node = {
      id,
      type,
      comfyClass: type,
      title: type,
      mode: 0,
      widgets,
      inputs: inputNames.map((name) => forbidding({ name }, ["link"])),
      outputs: Array.from({ length: outputCount }, () => forbidding({}, ["links"])),
      getInputLink(slot) {
        return [...links.values()].find((l) => l.target_id === id && l.target_slot === slot) ?? null;
      },
      isInputConnected(slot) {
        return this.getInputLink(slot) !== null;
      },
      getOutputNodes(slot) {
        return [...links.values()].filter((l) => l.origin_id === id && l.origin_slot === slot).map((l) => nodes.get(l.target_id));
      },
    };
    nodes.set(id, node);
    return node;
  };
  const connect = (linkId, originId, originSlot, targetId, targetSlot) =>
    links.set(linkId, { id: linkId, origin_id: originId, origin_slot: originSlot, target_id: targetId, target_slot: targetSlot });
  return { graph, makeNode, connect };
}

describe("graph reads on a frontend that deprecates input.link / output.links", () => {
  test("collectParameterChain walks the chain through getInputLink / isInputConnected only", () => {
    const { graph, makeNode, connect } = modernGraph();
    makeNode(1, "WIParameterInt", ["previous"], 2, [{ name: "name", value: "steps" }, { name: "values", value: "1, 2" }]);
    makeNode(2, "WIParameterFloat", ["previous"], 2, [{ name: "name", value: "cfg" }, { name: "values", value: "4, 5, 6" }]);
    const iterator = makeNode(9, "WIIterator", ["parameters"], 0, [{ name: "enabled", value: true }]);
    connect(11, 1, 0, 2, 0);
    connect(12, 2, 0, 9, 0);
    const chain = collectParameterChain(graph, iterator);
    assert.deepEqual(chain.problems, []);
    assert.deepEqual(chain.parameters.map((p) => [p.name, p.type, p.values]), [["steps", "INT", "1, 2"], ["cfg", "FLOAT", "4, 5, 6"]]);
  });

  test("comboOptions finds the combo a COMBO parameter feeds through getOutputNodes", () => {
    const { graph, makeNode, connect } = modernGraph();
    const parameter = makeNode(1, "WIParameterCombo", ["previous"], 2, [{ name: "name", value: "sampler" }]);
    makeNode(5, "KSampler", ["model", "sampler_name"], 1, [{ name: "sampler_name", value: "euler", options: { values: ["euler", "dpmpp_2m"] } }]);
    connect(21, 1, 1, 5, 1);
    assert.deepEqual(comboOptions(graph, parameter), ["euler", "dpmpp_2m"]);
  });

  test("a connected input whose link is gone is reported as broken", () => {
    const { graph, makeNode } = modernGraph();
    const iterator = makeNode(9, "WIIterator", ["parameters"], 0, []);
    iterator.isInputConnected = () => true; // connected, but getInputLink finds nothing
    const chain = collectParameterChain(graph, iterator);
    assert.equal(chain.problems.length, 1);
    assert.match(chain.problems[0].message, /broken link/);
  });
});

describe("link helpers on older frontends (input.link / output.links only)", () => {
  const graph = {
    links: new Map([[7, { id: 7, origin_id: 1, origin_slot: 1, target_id: 2, target_slot: 0 }]]),
    getNodeById: (id) => (id === 2 ? target : null),
  };
  const target = { id: 2, inputs: [{ name: "x", link: 7 }] };
  const source = { id: 1, inputs: [{ name: "previous", link: null }], outputs: [{ links: [] }, { links: [7] }] };

  test("isInputConnected and inputLink read input.link", () => {
    assert.equal(isInputConnected(target, 0), true);
    assert.equal(isInputConnected(source, 0), false);
    assert.equal(inputLink(graph, target, 0).origin_id, 1);
    assert.equal(inputLink(graph, source, 0), undefined);
  });

  test("a dangling input.link gives a link marked missing", () => {
    assert.deepEqual(inputLink(graph, { inputs: [{ link: 99 }] }, 0), { id: 99, missing: true });
  });

  test("outputTargets reads output.links", () => {
    assert.deepEqual(outputTargets(graph, source, 1), [{ node: target, inputIndex: 0 }]);
    assert.deepEqual(outputTargets(graph, source, 0), []);
  });
});

describe("rootGraph", () => {
  test("prefers app.rootGraph and never reads app.graph when rootGraph exists", () => {
    const graph = {};
    const app = forbidding({ rootGraph: graph }, ["graph"]);
    assert.equal(rootGraph(app), graph);
  });

  test("a frontend whose rootGraph getter exists but is not ready yet gives null, not app.graph", () => {
    const app = forbidding({ rootGraph: undefined }, ["graph"]);
    assert.equal(rootGraph(app), null);
  });

  test("falls back to app.graph on a frontend without rootGraph", () => {
    const graph = {};
    assert.equal(rootGraph({ graph }), graph);
    assert.equal(rootGraph(null), null);
  });
});

describe("registerSidebarTab", () => {
  test("uses sidebarTab.registerSidebarTab when present, not the deprecated manager method", () => {
    const calls = [];
    const manager = forbidding({ sidebarTab: { registerSidebarTab: (tab) => calls.push(tab.id) } }, ["registerSidebarTab"]);
    assert.equal(registerSidebarTab(manager, { id: "wi.sweeps" }), true);
    assert.deepEqual(calls, ["wi.sweeps"]);
  });

  test("falls back to extensionManager.registerSidebarTab, and says false without either", () => {
    const calls = [];
    assert.equal(registerSidebarTab({ registerSidebarTab: (tab) => calls.push(tab.id) }, { id: "t" }), true);
    assert.deepEqual(calls, ["t"]);
    assert.equal(registerSidebarTab({}, { id: "t" }), false);
  });
});

describe("showToast / clearToasts", () => {
  const message = { severity: "warn", summary: "Sweep parameter", detail: "bad value", life: 5000 };

  test("the severity method (toast.warning(title, {description, duration})) wins over toast.add", () => {
    const calls = [];
    const toast = forbidding({ warning: (...args) => calls.push(args) }, ["add"]);
    assert.equal(showToast(toast, message), true);
    assert.deepEqual(calls, [["Sweep parameter", { description: "bad value", duration: 5000 }]]);
  });

  test("every severity maps to its method", () => {
    const seen = [];
    const toast = Object.fromEntries(["success", "info", "warning", "error"].map((m) => [m, () => seen.push(m)]));
    for (const severity of ["success", "info", "warn", "error"]) showToast(toast, { ...message, severity });
    assert.deepEqual(seen, ["success", "info", "warning", "error"]);
  });

  test("older services get the whole message through toast.add; no service says false", () => {
    const added = [];
    assert.equal(showToast({ add: (m) => added.push(m) }, message), true);
    assert.deepEqual(added, [message]);
    assert.equal(showToast(undefined, message), false);
  });

  test("clearToasts calls dismissAll (newer) or removeAll (older)", () => {
    const calls = [];
    clearToasts({ dismissAll: () => calls.push("dismissAll"), removeAll: () => calls.push("removeAll") });
    clearToasts({ removeAll: () => calls.push("removeAll") });
    clearToasts(undefined);
    assert.deepEqual(calls, ["dismissAll", "removeAll"]);
  });
});
