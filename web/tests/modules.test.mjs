// Every web/lib module imports under Node without side effects, and the entry files load against stand-ins for
// ComfyUI's /scripts/app.js and /scripts/api.js and register what docs/web.md promises.

import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const WEB_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
const LIB_DIR = join(WEB_DIR, "lib");

describe("lib modules", () => {
  const libFiles = readdirSync(LIB_DIR).filter((name) => name.endsWith(".mjs"));

  test("lib holds only .mjs files, so ComfyUI never auto-imports a helper as an extension", () => {
    assert.deepEqual(readdirSync(LIB_DIR).filter((name) => !name.endsWith(".mjs")), []);
    assert.ok(libFiles.length >= 8);
  });

  test("the served tree's only .js files are the entry files", () => {
    const jsFiles = [];
    const walk = (dir) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (entry.name.endsWith(".js")) jsFiles.push(path.slice(WEB_DIR.length + 1));
      }
    };
    walk(WEB_DIR);
    assert.deepEqual(jsFiles.sort(), ["wi_batch_panel.js", "wi_iterator_badge.js"]);
  });

  for (const name of libFiles) {
    test(`${name} imports without touching globals`, async () => {
      const globalsBefore = new Set(Object.getOwnPropertyNames(globalThis));
      const module = await import(pathToFileURL(join(LIB_DIR, name)).href);
      assert.ok(Object.keys(module).length > 0, "exports something");
      const added = Object.getOwnPropertyNames(globalThis).filter((key) => !globalsBefore.has(key));
      assert.deepEqual(added, []);
    });
  }
});

describe("entry files against stand-in app/api modules", () => {
  let root;
  let extensionsDir;

  /** Stand-ins for ComfyUI's shim modules (which re-export window.comfyAPI.*); tests supply the objects. */
  before(() => {
    root = mkdtempSync(join(tmpdir(), "wi-web-"));
    writeFileSync(join(root, "package.json"), JSON.stringify({ type: "module" }));
    mkdirSync(join(root, "scripts"));
    // Node caches these modules once, so they forward to whichever stub the current test installed.
    const forwarder = (key) =>
      `export const ${key} = new Proxy({}, {\n` +
      `  get: (_, name) => globalThis.__wiStub.${key}[name],\n` +
      `  set: (_, name, value) => { globalThis.__wiStub.${key}[name] = value; return true; },\n` +
      `});\n`;
    writeFileSync(join(root, "scripts", "app.js"), forwarder("app"));
    writeFileSync(join(root, "scripts", "api.js"), forwarder("api"));
    extensionsDir = join(root, "extensions", "workflow-iterator");
    mkdirSync(extensionsDir, { recursive: true });
    cpSync(LIB_DIR, join(extensionsDir, "lib"), { recursive: true });
    for (const name of ["wi_batch_panel.js", "wi_iterator_badge.js"]) cpSync(join(WEB_DIR, name), join(extensionsDir, name));
  });

  after(() => {
    rmSync(root, { recursive: true, force: true });
    delete globalThis.__wiStub;
    delete globalThis.document;
  });

  function installStub({ storedSettings = {}, graph = null, previewResponse = null } = {}) {
    const stub = {
      registered: [],
      listeners: new Map(),
      fetches: [],
      redraws: 0,
    };
    stub.app = {
      registerExtension: (extension) => stub.registered.push(extension),
      extensionManager: { setting: { get: (id) => storedSettings[id] } },
      graph,
      canvas: { setDirty: () => (stub.redraws += 1) },
    };
    stub.api = {
      clientId: "tab-1",
      addEventListener: (type, callback) => stub.listeners.set(type, callback),
      fetchApi: async (route, init) => {
        stub.fetches.push({ route, init });
        const body = JSON.stringify(previewResponse ?? {});
        return { ok: true, status: 200, text: async () => body };
      },
    };
    globalThis.__wiStub = stub;
    return stub;
  }

  /** Just enough of the DOM for the badge widget: elements with attributes, children, text and a dataset. */
  class FakeElement {
    constructor(tag) {
      this.tagName = tag.toUpperCase();
      this.attributes = {};
      this.children = [];
      this.dataset = {};
      this.hidden = false;
      this.textContent = "";
    }
    setAttribute(name, value) {
      this.attributes[name] = String(value);
    }
    getAttribute(name) {
      return this.attributes[name] ?? null;
    }
    replaceChildren(...children) {
      this.children = children;
    }
    appendChild(child) {
      this.children.push(child);
    }
    get lines() {
      return this.children.map((child) => child.textContent);
    }
  }

  function installDocument() {
    const head = new FakeElement("head");
    const byId = new Map();
    globalThis.document = {
      head: Object.assign(head, { appendChild: (child) => (head.children.push(child), byId.set(child.id, child)) }),
      createElement: (tag) => new FakeElement(tag),
      getElementById: (id) => byId.get(id) ?? null,
    };
    return globalThis.document;
  }

  /** A node with LiteGraph's addDOMWidget, recording each widget it is given. */
  function withDomWidgets(node) {
    node.domWidgets = [];
    node.addDOMWidget = (name, type, element, options) => {
      const widget = { name, type, element, options };
      node.domWidgets.push(widget);
      return widget;
    };
    return node;
  }

  async function importEntry(name, variant) {
    return import(`${pathToFileURL(join(extensionsDir, name)).href}?${variant}`);
  }

  test("wi.batchPanel registers its settings and, by default, no bottom tab", async () => {
    const stub = installStub();
    await importEntry("wi_batch_panel.js", "sidebar");
    assert.equal(stub.registered.length, 1);
    const extension = stub.registered[0];
    assert.equal(extension.name, "wi.batchPanel");
    assert.deepEqual(extension.settings.map((setting) => setting.id), ["WI.ConfirmCancel", "WI.PanelPlacement", "WI.ShowIndicator"]);
    const byId = Object.fromEntries(extension.settings.map((setting) => [setting.id, setting]));
    assert.equal(byId["WI.ConfirmCancel"].defaultValue, true);
    assert.deepEqual(byId["WI.PanelPlacement"].options, ["sidebar", "bottom"]);
    assert.match(byId["WI.PanelPlacement"].name, /reload/);
    assert.equal(byId["WI.ShowIndicator"].type, "boolean");
    assert.equal(extension.bottomPanelTabs, undefined);
    assert.equal(typeof extension.setup, "function");
    assert.equal(stub.fetches.length, 0, "importing sends no request");
  });

  test("wi.batchPanel declares a bottom tab when the stored placement is bottom", async () => {
    const stub = installStub({ storedSettings: { "WI.PanelPlacement": "bottom" } });
    await importEntry("wi_batch_panel.js", "bottom");
    const [tab] = stub.registered[0].bottomPanelTabs;
    assert.equal(tab.id, "wi.sweeps");
    assert.equal(tab.title, "Sweeps");
    assert.equal(tab.type, "custom");
    assert.equal(typeof tab.render, "function");
  });

  test("wi.iteratorBadge patches node types by calling the original hooks first, and never draws on the canvas", async () => {
    const stub = installStub();
    await importEntry("wi_iterator_badge.js", "patch");
    const extension = stub.registered[0];
    assert.equal(extension.name, "wi.iteratorBadge");

    const order = [];
    class FakeNode {}
    FakeNode.prototype.onConnectionsChange = () => order.push("original connections");
    extension.beforeRegisterNodeDef(FakeNode, { name: "WIIterator" });
    const node = new FakeNode();
    node.onConnectionsChange();
    assert.deepEqual(order, ["original connections"]);
    // The Vue renderer ("Nodes 2.0") never calls onDrawForeground: a badge drawn there would vanish.
    assert.equal(FakeNode.prototype.onDrawForeground, undefined);

    class Unrelated {}
    const untouched = () => {};
    Unrelated.prototype.onConnectionsChange = untouched;
    extension.beforeRegisterNodeDef(Unrelated, { name: "KSampler" });
    assert.equal(Unrelated.prototype.onConnectionsChange, untouched);
    // Let the refresh scheduled by onConnectionsChange run against this test's (empty) stub, not the next one.
    await new Promise((resolve) => setTimeout(resolve, 400));
  });

  test("wi.iteratorBadge previews the chain and shows the count in a DOM badge widget on the iterator", async () => {
    installDocument();
    const widgets = (values) => Object.entries(values).map(([name, value]) => ({ name, value }));
    const parameter = {
      id: 1,
      comfyClass: "WIParameterFloat",
      inputs: [{ name: "previous", link: null }],
      widgets: widgets({ name: "cfg", type: "FLOAT", values: "4, 6, 8" }),
      size: [300, 120],
    };
    withDomWidgets(parameter);
    const iterator = {
      id: 2,
      comfyClass: "WIIterator",
      inputs: [{ name: "parameters", link: 7 }],
      widgets: widgets({ enabled: true, mode: "matrix", batch_name: "" }),
      size: [300, 120],
    };
    withDomWidgets(iterator);
    const nodes = [parameter, iterator];
    const graph = { nodes, links: new Map([[7, { id: 7, origin_id: 1, origin_slot: 0 }]]), getNodeById: (id) => nodes.find((node) => node.id === id) };
    const previewResponse = { count: 3, axes: [{ name: "cfg", count: 3 }], errors: [], grid: { width: 3072, height: 1024, pages: 1, downscale: 1, warnings: [] } };
    const stub = installStub({ graph, previewResponse });
    await importEntry("wi_iterator_badge.js", "flow");
    const extension = stub.registered[0];

    // Give both nodes the patched prototype hooks, as ComfyUI would through beforeRegisterNodeDef.
    class IteratorType {}
    extension.beforeRegisterNodeDef(IteratorType, { name: "WIIterator" });
    Object.setPrototypeOf(iterator, IteratorType.prototype);
    class ParameterType {}
    extension.beforeRegisterNodeDef(ParameterType, { name: "WIParameterFloat" });
    Object.setPrototypeOf(parameter, ParameterType.prototype);

    extension.nodeCreated(iterator);
    extension.nodeCreated(parameter);
    extension.nodeCreated(iterator); // a second call adds no second widget
    assert.equal(iterator.domWidgets.length, 1);
    const [badgeWidget] = iterator.domWidgets;
    assert.equal(badgeWidget.name, "wi_badge");
    assert.equal(badgeWidget.options.serialize, false, "kept out of the prompt");
    assert.equal(badgeWidget.serialize, false, "kept out of widgets_values");
    assert.equal(globalThis.document.getElementById("wi-badge-styles")?.tagName, "STYLE");

    extension.setup();
    assert.ok(stub.listeners.has("graphChanged"));
    await new Promise((resolve) => setTimeout(resolve, 400));

    assert.equal(stub.fetches.length, 1);
    assert.equal(stub.fetches[0].route, "/wi/preview");
    assert.deepEqual(JSON.parse(stub.fetches[0].init.body), { parameters: [{ name: "cfg", type: "FLOAT", values: "4, 6, 8", node_id: "1" }], mode: "matrix" });

    const element = badgeWidget.element;
    assert.deepEqual(element.lines, ["3 prompts · matrix", "grid 3072×1024"]);
    assert.equal(element.hidden, false);
    assert.equal(element.getAttribute("data-wi-badge-tone"), "info");
    assert.equal(element.getAttribute("data-wi-badge-node"), "2");
    assert.deepEqual(parameter.domWidgets[0].element.lines, ["3 values"]);

    assert.deepEqual(extension.badgeFor(iterator), { lines: ["3 prompts · matrix", "grid 3072×1024"], tone: "info" });

    // An unchanged graph does not re-request the preview.
    stub.listeners.get("graphChanged")();
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(stub.fetches.length, 1);

    // A disabled iterator says so without asking the server, and its parameters lose their badges.
    iterator.widgets.find((widget) => widget.name === "enabled").value = false;
    await extension.refreshNow();
    assert.equal(stub.fetches.length, 1);
    assert.equal(extension.badgeFor(iterator).tone, "muted");
    assert.equal(element.getAttribute("data-wi-badge-tone"), "muted");
    assert.equal(extension.badgeFor(parameter), null);
    assert.equal(parameter.domWidgets[0].element.hidden, true, "a node without a badge hides its widget");

    // Two enabled iterators: the server would refuse the prompt, so both badges say so.
    iterator.widgets.find((widget) => widget.name === "enabled").value = true;
    const second = { ...iterator, id: 3, inputs: [{ name: "parameters", link: null }], widgets: widgets({ enabled: true }) };
    Object.setPrototypeOf(second, IteratorType.prototype);
    nodes.push(second);
    await extension.refreshNow();
    assert.deepEqual(extension.badgeFor(iterator), { lines: ["only one WIIterator may be enabled per workflow; found 2"], tone: "error" });
    assert.equal(extension.badgeFor(second).tone, "error");
  });
});
