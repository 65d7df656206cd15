import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  collectParameterChain,
  findImageSize,
  findIterators,
  getLink,
  readIteratorSettings,
} from "../lib/graph_walk.mjs";

/** A plain-object graph in the shape LiteGraph exposes. `linksAs` picks a Map (1.2x) or an object (older). */
function makeGraph(nodes, links, { linksAs = "map" } = {}) {
  const byId = new Map(nodes.map((node) => [node.id, node]));
  const linkStore = linksAs === "map" ? new Map(links.map((link) => [link.id, link])) : Object.fromEntries(links.map((link) => [link.id, link]));
  return { nodes, links: linkStore, getNodeById: (id) => byId.get(id) ?? null };
}

function widgets(values) {
  return Object.entries(values).map(([name, value]) => ({ name, value }));
}

/** The generic "WIParameter" class, whose value type is a combo widget. */
function parameterNode(id, name, values, previousLink = null, type = "FLOAT") {
  return {
    id,
    type: "WIParameter",
    comfyClass: "WIParameter",
    title: "WI Parameter",
    inputs: [{ name: "previous", link: previousLink }],
    widgets: widgets({ name, type, values }),
  };
}

function iteratorNode(id, parametersLink, widgetValues = {}) {
  return {
    id,
    type: "WIIterator",
    inputs: [{ name: "parameters", link: parametersLink }],
    widgets: widgets({ enabled: true, mode: "matrix", batch_name: "sweep", ...widgetValues }),
  };
}

const link = (id, originId) => ({ id, origin_id: originId, origin_slot: 0 });

/** steps -> cfg -> sampler -> iterator: three parameters chained through `previous`. */
function chainOfThree(options) {
  const nodes = [
    parameterNode(1, "steps", "20, 30", null, "INT"),
    parameterNode(2, "cfg", "4-8 (+2)", 11),
    parameterNode(3, "sampler", "euler, dpmpp_2m", 12, "COMBO"),
    iteratorNode(9, 13),
  ];
  return makeGraph(nodes, [link(11, 1), link(12, 2), link(13, 3)], options);
}

describe("collectParameterChain", () => {
  for (const linksAs of ["map", "object"]) {
    test(`collects a chain of three head first (links as ${linksAs})`, () => {
      const graph = chainOfThree({ linksAs });
      const chain = collectParameterChain(graph, graph.getNodeById(9));
      assert.deepEqual(chain.problems, []);
      assert.deepEqual(chain.parameters, [
        { nodeId: 1, name: "steps", type: "INT", values: "20, 30" },
        { nodeId: 2, name: "cfg", type: "FLOAT", values: "4-8 (+2)" },
        { nodeId: 3, name: "sampler", type: "COMBO", values: "euler, dpmpp_2m" },
      ]);
    });
  }

  test("prefers graph.getLink when the graph has it", () => {
    const graph = chainOfThree();
    const links = graph.links;
    graph.links = undefined;
    graph.getLink = (id) => links.get(id);
    assert.equal(collectParameterChain(graph, graph.getNodeById(9)).parameters.length, 3);
  });

  test("a broken link stops the walk, keeps what came before and names the node", () => {
    const graph = chainOfThree();
    graph.links.delete(11);
    const chain = collectParameterChain(graph, graph.getNodeById(9));
    assert.deepEqual(chain.parameters.map((parameter) => parameter.name), ["cfg", "sampler"]);
    assert.equal(chain.problems.length, 1);
    assert.equal(chain.problems[0].nodeId, 2);
    assert.match(chain.problems[0].message, /broken link/);
  });

  test("a link to a missing node is reported", () => {
    const graph = makeGraph([iteratorNode(9, 13)], [link(13, 42)]);
    const chain = collectParameterChain(graph, graph.getNodeById(9));
    assert.match(chain.problems[0].message, /missing node/);
  });

  test("a cycle is detected instead of looping forever", () => {
    const nodes = [parameterNode(1, "a", "1", 12), parameterNode(2, "b", "2", 11), iteratorNode(9, 13)];
    const graph = makeGraph(nodes, [link(11, 1), link(12, 2), link(13, 1)]);
    const chain = collectParameterChain(graph, graph.getNodeById(9));
    assert.equal(chain.problems.length, 1);
    assert.match(chain.problems[0].message, /loops back/);
    assert.deepEqual(chain.parameters.map((parameter) => parameter.name), ["b", "a"]);
  });

  test("a self-loop is a cycle too", () => {
    const nodes = [parameterNode(1, "a", "1", 11), iteratorNode(9, 12)];
    const graph = makeGraph(nodes, [link(11, 1), link(12, 1)]);
    assert.match(collectParameterChain(graph, graph.getNodeById(9)).problems[0].message, /loops back/);
  });

  test("a non-parameter node in the chain is reported by class", () => {
    const nodes = [{ id: 5, type: "KSampler", inputs: [], widgets: [] }, iteratorNode(9, 13)];
    const graph = makeGraph(nodes, [link(13, 5)]);
    const chain = collectParameterChain(graph, graph.getNodeById(9));
    assert.match(chain.problems[0].message, /KSampler, not a parameter node/);
    assert.deepEqual(chain.parameters, []);
  });

  test("legacy Reroute nodes are passed through", () => {
    const nodes = [parameterNode(1, "a", "1"), { id: 7, type: "Reroute", inputs: [{ name: "", link: 11 }] }, iteratorNode(9, 12)];
    const graph = makeGraph(nodes, [link(11, 1), link(12, 7)]);
    const chain = collectParameterChain(graph, graph.getNodeById(9));
    assert.deepEqual(chain.problems, []);
    assert.deepEqual(chain.parameters.map((parameter) => parameter.name), ["a"]);
  });

  test("an unconnected iterator has an empty chain and no problem", () => {
    const graph = makeGraph([iteratorNode(9, null)], []);
    assert.deepEqual(collectParameterChain(graph, graph.getNodeById(9)), { parameters: [], problems: [] });
  });

  test("an iterator without a parameters input is a problem", () => {
    const graph = makeGraph([{ id: 9, type: "WIIterator", inputs: [], widgets: [] }], []);
    assert.match(collectParameterChain(graph, graph.getNodeById(9)).problems[0].message, /no "parameters" input/);
  });

  test("a typed parameter class implies its type; a blank name falls back to the title, then the id", () => {
    const typed = { id: 1, comfyClass: "WIParameterSeed", title: "Seeds", inputs: [{ name: "previous", link: null }], widgets: widgets({ name: "  ", values: "random:3" }) };
    const untitled = { ...parameterNode(2, "", "a", 11, "string"), title: "" };
    const graph = makeGraph([typed, untitled, iteratorNode(9, 12)], [link(11, 1), link(12, 2)]);
    assert.deepEqual(collectParameterChain(graph, graph.getNodeById(9)).parameters, [
      { nodeId: 1, name: "Seeds", type: "SEED", values: "random:3" },
      { nodeId: 2, name: "param 2", type: "STRING", values: "a" },
    ]);
  });

  test("wiring the 'value' output into the chain is reported on that node", () => {
    const graph = makeGraph([parameterNode(1, "a", "1"), iteratorNode(9, 11)], [{ id: 11, origin_id: 1, origin_slot: 1 }]);
    const chain = collectParameterChain(graph, graph.getNodeById(9));
    assert.deepEqual(chain.problems, [{ nodeId: 1, message: "connect its 'parameters' output (not 'value') to the next node" }]);
  });

  test("a bypassed parameter node is skipped, a muted one is a problem", () => {
    const bypassed = { ...parameterNode(2, "cfg", "4-8 (+2)", 11), mode: 4 };
    const graph = chainOfThree();
    graph.nodes[1] = bypassed;
    const byId = new Map(graph.nodes.map((node) => [node.id, node]));
    graph.getNodeById = (id) => byId.get(id);
    assert.deepEqual(collectParameterChain(graph, graph.getNodeById(9)).parameters.map((parameter) => parameter.name), ["steps", "sampler"]);
    bypassed.mode = 2;
    const chain = collectParameterChain(graph, graph.getNodeById(9));
    assert.match(chain.problems[0].message, /muted/);
    assert.equal(chain.problems[0].nodeId, 2);
  });

  test("a COMBO parameter carries the choices of the combo input its value output feeds", () => {
    const combo = { ...parameterNode(1, "sampler", "*euler*", null, "COMBO"), outputs: [{ links: [11] }, { links: [20] }] };
    const sampler = {
      id: 5,
      type: "KSampler",
      inputs: [{ name: "model", link: null }, { name: "sampler_name", link: 20 }],
      widgets: [{ name: "sampler_name", value: "euler", options: { values: ["euler", "euler_ancestral", "dpmpp_2m"] } }],
    };
    const links = [link(11, 1), { id: 20, origin_id: 1, origin_slot: 1, target_id: 5, target_slot: 1 }];
    const graph = makeGraph([combo, sampler, iteratorNode(9, 11)], links);
    assert.deepEqual(collectParameterChain(graph, graph.getNodeById(9)).parameters[0].options, ["euler", "euler_ancestral", "dpmpp_2m"]);
    combo.outputs[1].links = [];
    assert.equal(collectParameterChain(graph, graph.getNodeById(9)).parameters[0].options, undefined);
  });
});

describe("graph helpers", () => {
  test("getLink supports Map, string-keyed Map, object and array storage", () => {
    assert.equal(getLink({ links: new Map([[3, "x"]]) }, 3), "x");
    assert.equal(getLink({ links: new Map([["3", "y"]]) }, 3), "y");
    assert.equal(getLink({ links: { 3: "z" } }, 3), "z");
    assert.equal(getLink({ links: [undefined, "w"] }, 1), "w");
    assert.equal(getLink({ links: new Map() }, null), undefined);
    assert.equal(getLink(null, 1), undefined);
  });

  test("iterator settings fall back to the node's defaults", () => {
    assert.deepEqual(readIteratorSettings(iteratorNode(9, null, { mode: "linear", enabled: false, unequal_lengths: "error" })), {
      enabled: false,
      mode: "linear",
      batchName: "sweep",
      unequalLengths: "error",
      skip: "",
    });
    assert.deepEqual(readIteratorSettings({ widgets: [] }), { enabled: true, mode: "matrix", batchName: "", unequalLengths: null, skip: "" });
  });

  test("findImageSize prefers a latent-image node, and findIterators finds iterators", () => {
    const nodes = [
      { id: 1, type: "ImageScale", widgets: widgets({ width: 512, height: 512 }) },
      { id: 2, type: "EmptyLatentImage", widgets: widgets({ width: 832, height: 1216, batch_size: 1 }) },
      iteratorNode(9, null),
    ];
    const graph = makeGraph(nodes, []);
    assert.deepEqual(findImageSize(graph), [832, 1216]);
    assert.deepEqual(findIterators(graph).map((node) => node.id), [9]);
    assert.equal(findImageSize(makeGraph([iteratorNode(9, null)], [])), null);
    assert.deepEqual(findImageSize({ _nodes: [nodes[0]] }), [512, 512]);
  });
});
