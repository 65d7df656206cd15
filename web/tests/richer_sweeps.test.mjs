import assert from "node:assert/strict";
import { test } from "node:test";

import { buildPreviewBody } from "../lib/api_client.mjs";
import { iteratorBadge } from "../lib/badge.mjs";
import { collectParameterChain, readIteratorSettings, targetParts, targetTexts } from "../lib/graph_walk.mjs";

function widgets(values) {
  return Object.entries(values).map(([name, value]) => ({ name, value }));
}

function graphOf(nodes, links) {
  const byId = new Map(nodes.map((node) => [node.id, node]));
  return { nodes, links: new Map(links.map((link) => [link.id, link])), getNodeById: (id) => byId.get(id) ?? null };
}

test("targets split like the server's target field", () => {
  assert.deepEqual(targetParts("Text.text; 4.text\n  KSampler.cfg ;"), ["Text.text", "4.text", "KSampler.cfg"]);
});

test("a search/replace parameter carries its targets' texts, a linked one its group, the iterator its skip list", () => {
  const text = { id: 4, type: "CLIPTextEncode", title: "Positive", inputs: [], widgets: widgets({ text: "a cat" }) };
  const sr = {
    id: 10, type: "WIParameterPromptSR", comfyClass: "WIParameterPromptSR", title: "S/R", inputs: [{ name: "previous", link: null }],
    widgets: widgets({ name: "animal", values: "cat, dog", target: "Positive.text", link: "pair" }),
  };
  const iterator = {
    id: 3, type: "WIIterator", inputs: [{ name: "parameters", link: 1 }],
    widgets: widgets({ enabled: true, mode: "matrix", batch_name: "s", skip: "animal=dog" }),
  };
  const graph = graphOf([text, sr, iterator], [{ id: 1, origin_id: 10, origin_slot: 0, target_id: 3, target_slot: 0 }]);
  assert.deepEqual(targetTexts(graph, "Positive.text; CLIPTextEncode.text; Missing.text"), ["a cat", "a cat"]);
  const { parameters, problems } = collectParameterChain(graph, iterator);
  assert.deepEqual(problems, []);
  assert.deepEqual(parameters, [{ nodeId: 10, name: "animal", type: "PROMPT_SR", values: "cat, dog", link: "pair",
                                  target: "Positive.text", texts: ["a cat"] }]);
  const settings = readIteratorSettings(iterator);
  const body = buildPreviewBody({ parameters, mode: settings.mode, skip: settings.skip });
  assert.deepEqual(body.parameters[0], { name: "animal", type: "PROMPT_SR", values: "cat, dog", node_id: "10", link: "pair",
                                         target: "Positive.text", texts: ["a cat"] });
  assert.equal(body.skip, "animal=dog");
});

test("the badge shows the count after the skip list and how many it skipped", () => {
  const badge = iteratorBadge({ settings: { enabled: true, mode: "matrix" }, preview: { count: 3, skipped: 3, errors: [] } });
  assert.equal(badge.lines[0], "3 prompts · matrix · 3 skipped");
});
