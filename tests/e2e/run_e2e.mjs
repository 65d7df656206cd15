// End-to-end checks of the Workflow Iterator web extension in a real headless Chromium against a real ComfyUI.
//
// Started by tests/e2e/test_browser.py, once per frontend, which launches ComfyUI (with this pack and the
// test-only fixture nodes, serving that frontend through --front-end-root) and passes:
//   WI_COMFY_URL        http://127.0.0.1:<port> of that server (or argv[2])
//   WI_E2E_ARTIFACTS    folder for screenshots and results.json (default <repo>/test-artifacts/e2e)
//   WI_CHROMIUM         browser binary (default /usr/bin/chromium)
//   WI_E2E_RENDERERS    node renderers to run, comma-separated: "off" (canvas) and/or "on" ("Nodes 2.0", the
//                       setting Comfy.VueNodes.Enabled); default "off,on"
//   WI_E2E_ONLY         optional comma-separated scenario names to run (default: all)
//   WI_E2E_RESTART_CONTROL=1  the parent restarts ComfyUI on request: this driver prints a line
//                       "WI-E2E-RESTART" and waits for "restarted" on stdin (the restart_resume scenario)
//
// Every scenario records {name, renderer, ok, error, data, ms} in results.json; the process exits 1 when any
// failed. Scenarios share one page (and its client id) per renderer and run in order; the renderer is set
// before the page loads. With the renderer off:
//   sweep_grid       load the model-free example, queue it from the page, panel reaches 9/9 with a grid thumbnail
//   badges           the iterator's count and grid size, the parameters' value counts and a red error badge are
//                    visible DOM text on the node; the badge widget is in neither widgets_values nor the prompt
//   cancel           long batch of WITestSleep cells, unrelated prompt queued over HTTP, progress pill shown (not
//                    over the canvas toolbar; reopens the closed panel), Cancel through the confirmation dialog
//                    (required: the setting is on), card ends "cancelled", the unrelated prompt still succeeds
//   cancel_no_confirm  with the WI.ConfirmCancel setting off, Cancel cancels at once without any dialog
//   param_error      a sweep with a bad INT value queued from the page raises a warning toast naming the
//                    parameter, its badge turns red, and both cells of the valid values are done; a sweep with
//                    no valid value raises "Sweep not queued"
//   reload           after a page reload the panel re-reads the finished and cancelled batches from the server
//   bottom_panel     with the panel in the bottom panel, the last card scrolls into view
//   restart_resume   ComfyUI is killed mid-sweep and restarted on the same base directory: the card reads
//                    "interrupted" (live and after a reload), the pill does not count it, Resume runs the rest
//   deprecations     with LiteGraph.alwaysRepeatWarnings on, no deprecation warning has a frame of this pack
//   early_events     wi.* events that reach the page between the frontend opening its socket and the
//                    extensions' setup (delivered there on every page load, /object_info held back on the first)
//                    are handled, never reported as "Unknown message type" (the race CI once hit with 1.58.1)
//   console_clean    no page errors and no console errors from this pack during all of the above
// With the renderer on: sweep_grid, badges, param_error, deprecations, early_events, console_clean. A scenario this frontend
// cannot run (1.27's experimental Vue renderer draws no DOM widgets) is recorded as skipped with the reason.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "..", "..");
const BASE_URL = (process.env.WI_COMFY_URL || process.argv[2] || "").replace(/\/$/, "");
const ARTIFACTS = process.env.WI_E2E_ARTIFACTS || path.join(REPO, "test-artifacts", "e2e");
const CHROMIUM = process.env.WI_CHROMIUM || "/usr/bin/chromium";
const ONLY = (process.env.WI_E2E_ONLY || "").split(",").map((s) => s.trim()).filter(Boolean);
const RENDERERS = (process.env.WI_E2E_RENDERERS || "off,on").split(",").map((s) => s.trim()).filter(Boolean);
const RESTART_CONTROL = process.env.WI_E2E_RESTART_CONTROL === "1";
const PACK_PATH = "/extensions/comfyui-workflow-iterator/";
const VIEWPORT = { width: 1280, height: 760 };
/** The cancel scenario's batch: long enough that the cancel lands mid-batch even on a busy machine. */
const CANCEL_CELLS = 8;
const CANCEL_CELL_SECONDS = 1.5;
/** The restart scenario's batch: the kill lands after two cells, with four left to resume. */
const RESTART_CELLS = 6;
/**
 * Elements across frontends, by role or test id where the frontend has one. Toasts: 1.58 renders
 * li[data-testid=toast]; 1.27 to 1.35 PrimeVue's message (role alert). Dialogs: role dialog everywhere.
 * Sidebar buttons: data-testid "<id>-tab-button" (1.58) or the class of the same name (1.27 to 1.35).
 */
const TOAST = '[data-testid="toast"], .p-toast-message[role="alert"]';
const DIALOG = '[role="dialog"]';
const NODE_LIBRARY_BUTTON = '[data-testid="node-library-tab-button"], .node-library-tab-button';
const SWEEPS_BUTTON = '[data-testid="wi.sweeps-tab-button"], .wi\\.sweeps-tab-button';

if (!BASE_URL) {
  console.error("usage: WI_COMFY_URL=http://127.0.0.1:8188 node run_e2e.mjs");
  process.exit(2);
}
fs.mkdirSync(ARTIFACTS, { recursive: true });

const startedAt = Date.now();
const log = (...args) => console.log(`[e2e +${((Date.now() - startedAt) / 1000).toFixed(1)}s]`, ...args);

class AssertionError extends Error {}
/** A scenario (or part of one) this frontend cannot run, with the reason; reported as skipped, never as passed. */
class SkipScenario extends Error {}
function check(condition, message) {
  if (!condition) throw new AssertionError(message);
}

// ---------------------------------------------------------------------------------------------------------------
// Prompts (API format, model-free core nodes plus the test-only WITestSleep)

function examplePrompt() {
  return JSON.parse(fs.readFileSync(path.join(REPO, "example_workflows", "api", "model_free_sweep_api.json"), "utf8"));
}

function sweepPrompt({ colors, radii, name, seconds = 0 }) {
  return {
    "1": { class_type: "WIParameterInt", _meta: { title: "color" }, inputs: { name: "color", values: colors, target: "" } },
    "2": {
      class_type: "WIParameterInt",
      _meta: { title: "radius" },
      inputs: { name: "radius", values: radii, target: "", previous: ["1", 0] },
    },
    "3": {
      class_type: "WIIterator",
      _meta: { title: "WI Iterator" },
      inputs: { parameters: ["2", 0], enabled: true, mode: "matrix", batch_name: name },
    },
    "10": { class_type: "EmptyImage", inputs: { width: 32, height: 32, batch_size: 1, color: ["1", 1] } },
    "11": { class_type: "EmptyImage", inputs: { width: 16, height: 16, batch_size: 1, color: 16777215 } },
    "12": {
      class_type: "ImageCompositeMasked",
      inputs: { destination: ["10", 0], source: ["11", 0], x: 8, y: 8, resize_source: false },
    },
    "13": { class_type: "ImageBlur", inputs: { image: ["12", 0], blur_radius: ["2", 1], sigma: 1.0 } },
    "14": { class_type: "WITestSleep", inputs: { image: ["13", 0], seconds } },
    "20": { class_type: "WISaveImage", inputs: { images: ["14", 0], filename_prefix: "WI" } },
  };
}

function plainPrompt() {
  return {
    "1": { class_type: "EmptyImage", inputs: { width: 8, height: 8, batch_size: 1, color: 123 } },
    "2": { class_type: "SaveImage", inputs: { images: ["1", 0], filename_prefix: "e2e_plain" } },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP straight to the server (not through the page)

async function http(method, route, body) {
  const response = await fetch(BASE_URL + route, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  return { status: response.status, json };
}

async function poll(what, fn, { timeout = 30000, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
  throw new AssertionError(`timed out after ${timeout} ms waiting for ${what}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Page helpers

/** Console and page errors, split into ours (fail the run) and the frontend's own (reported only). */
const consoleLog = { ours: [], foreign: [], warningsOurs: [] };
/** The renderer of the page being driven: tags console entries and names the screenshots ("on" adds ".vue"). */
let currentRenderer = "off";
/** Native dialogs (window.confirm/alert) seen; the frontends tested all have a dialog service, so none is expected. */
const nativeDialogs = [];

function isOurs(text, url) {
  return (
    (url && url.includes(PACK_PATH)) ||
    (url && /\/(api\/)?wi\//.test(url)) ||
    /comfyui-workflow-iterator|wi_batch_panel|wi_iterator_badge|\[wi\.|\bwi\.[a-z]/i.test(text)
  );
}

/**
 * Runs before any page script: records every console warning or error that says "deprecat" with the stack
 * that printed it (deep enough to reach the caller of a deprecated getter), so a warning is attributed to this
 * pack only when one of its frames is in the pack's files.
 */
function recordDeprecations(packPath) {
  Error.stackTraceLimit = 60;
  window.__wiDeprecations = [];
  for (const level of ["warn", "error", "log"]) {
    const original = console[level].bind(console);
    console[level] = (...args) => {
      const text = args.map((arg) => (typeof arg === "string" ? arg : arg?.message ?? "")).join(" ");
      if (/deprecat/i.test(text)) {
        const stack = new Error().stack ?? "";
        window.__wiDeprecations.push({ text: text.slice(0, 300), ours: stack.includes(packPath), stack: stack.slice(0, 4000) });
      }
      return original(...args);
    };
  }
}

/** The events delivered early on every page load: a worker's state (broadcast by the health probe whenever it
 * changes) and a parameter error meant for another browser (ignored here, but it must have a listener). */
const EARLY_EVENTS = [
  { type: "wi.worker_state", data: { worker_id: "local", state: "idle", batch_id: null, detail: null } },
  { type: "wi.param_error", data: { node_id: "1", param: "wi_e2e", message: "early event", client_id: "wi-e2e-another-browser" } },
];

/**
 * Runs before any page script: once the page's ComfyUI socket opens, delivers EARLY_EVENTS to it as if the
 * server had broadcast them then, and records whether the app was still starting (window.app is assigned after
 * app.setup, which calls the extensions' setup). That is the window in which a listener registered only in
 * setup() misses an event and the frontend reports "Unknown message type".
 */
function deliverEarlyServerEvents(events) {
  const NativeWebSocket = window.WebSocket;
  let delivered = false;
  window.WebSocket = class extends NativeWebSocket {
    constructor(...args) {
      super(...args);
      if (delivered || !/\/ws(\?|$)/.test(String(args[0]))) return;
      delivered = true;
      this.addEventListener("open", () => {
        setTimeout(() => {
          const appWasStarting = !window.app;
          for (const event of events) this.dispatchEvent(new MessageEvent("message", { data: JSON.stringify(event) }));
          // Kept across reloads (the tab's sessionStorage): the first load is the one whose setup was held back.
          const loads = JSON.parse(sessionStorage.getItem("wiE2eEarlyEvents") || "[]");
          loads.push({ appWasStarting, types: events.map((event) => event.type) });
          sessionStorage.setItem("wiE2eEarlyEvents", JSON.stringify(loads));
        }, 0);
      });
    }
  };
}

/** Holds the first page load's /object_info back, so the early events surely arrive before the extensions' setup. */
async function holdBackFirstNodeList(context) {
  let first = true;
  await context.route(/\/(api\/)?object_info$/, async (route) => {
    if (first) {
      first = false;
      await new Promise((resolve) => setTimeout(resolve, 1500));
    }
    await route.continue();
  });
}

function watchPage(page) {
  page.on("console", (message) => {
    const type = message.type();
    if (type !== "error" && type !== "warning") return;
    const url = message.location()?.url || "";
    const entry = `[renderer ${currentRenderer}] ${type}: ${message.text()}${url ? ` (${url})` : ""}`;
    // While ComfyUI restarts (restart_resume) the page's requests are refused by design.
    if (restarting && /ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|ERR_EMPTY_RESPONSE/.test(message.text())) return;
    if (isOurs(message.text(), url)) (type === "error" ? consoleLog.ours : consoleLog.warningsOurs).push(entry);
    else if (type === "error") consoleLog.foreign.push(entry);
  });
  page.on("pageerror", (error) => {
    const text = `[renderer ${currentRenderer}] pageerror: ${error.stack || error.message}`;
    // A page error counts as ours when any frame of its stack is in this pack's files.
    if (isOurs(text, "")) consoleLog.ours.push(text);
    else consoleLog.foreign.push(text);
  });
  page.on("response", (response) => {
    const url = response.url();
    if (response.status() >= 400 && (url.includes(PACK_PATH) || /\/(api\/)?wi\//.test(url) || url.includes("/view?"))) {
      const bad = `[renderer ${currentRenderer}] HTTP ${response.status()} ${response.request().method()} ${url}`;
      // A 409 from cancel is an expected answer (batch already finished) and shows a toast, not an error.
      if (response.status() !== 409) consoleLog.ours.push(bad);
    }
  });
  page.on("requestfailed", (request) => {
    const url = request.url();
    // While ComfyUI restarts (restart_resume) requests fail by design.
    if (url.includes(PACK_PATH) && !restarting) consoleLog.ours.push(`[renderer ${currentRenderer}] request failed: ${url} ${request.failure()?.errorText}`);
  });
  page.on("dialog", (dialog) => {
    // The "leave with unsaved changes?" prompt of a reload is the frontend's, and the reload must go ahead.
    if (dialog.type() === "beforeunload") {
      dialog.accept().catch(() => {});
      return;
    }
    nativeDialogs.push(`${dialog.type()}: ${dialog.message().slice(0, 120)}`);
    log(`native ${dialog.type()} dialog: ${dialog.message().slice(0, 80)} -> dismiss`);
    dialog.dismiss().catch(() => {});
  });
}
let restarting = false;

/** Loads the page with the node renderer set: "on" is "Nodes 2.0" (Comfy.VueNodes.Enabled). */
async function waitForApp(page, { navigate = true, renderer = null, sweepsButton = true } = {}) {
  if (navigate) {
    // A fresh user gets the "Get Started with a Template" dialog, whose mask blocks every click; a returning user
    // does not. Mark the tutorial as done for the server's default user before the page reads its settings.
    const seeded = await http("POST", "/settings/Comfy.TutorialCompleted", true);
    if (seeded.status !== 200) log(`could not pre-set Comfy.TutorialCompleted: HTTP ${seeded.status}`);
    if (renderer !== null) {
      const set = await http("POST", "/settings/Comfy.VueNodes.Enabled", renderer === "on");
      check(set.status === 200, `could not set Comfy.VueNodes.Enabled: HTTP ${set.status}`);
    }
    await page.goto(BASE_URL + "/", { waitUntil: "domcontentloaded" });
  }
  await page.waitForFunction(
    () =>
      (window.app?.rootGraph ?? window.app?.graph) &&
      window.app.extensions?.some((e) => e.name === "wi.batchPanel") &&
      window.app.extensions?.some((e) => e.name === "wi.iteratorBadge") &&
      window.app.extensionManager?.command,
    null,
    { timeout: 60000 },
  );
  // The sidebar buttons appear once the Vue workspace is mounted (ours only when the panel is in the sidebar).
  await page.locator(sweepsButton ? SWEEPS_BUTTON : NODE_LIBRARY_BUTTON).first().waitFor({ timeout: 30000 });
  // From here on every deprecation warning prints, not only the first of each kind.
  await page.evaluate(() => {
    if (window.LiteGraph) window.LiteGraph.alwaysRepeatWarnings = true;
  });
  if (renderer !== null) {
    const actual = await page.evaluate(() => window.app.extensionManager.setting.get("Comfy.VueNodes.Enabled"));
    check(Boolean(actual) === (renderer === "on"), `the page runs with Comfy.VueNodes.Enabled=${actual}, wanted ${renderer}`);
  }
  await closeDialogs(page);
}

/** Closes any frontend dialog left open (new-user templates, validation errors) so its mask stops blocking clicks. */
async function closeDialogs(page) {
  for (let attempt = 0; attempt < 8; attempt++) {
    const dialogs = page.locator(`${DIALOG}:visible`);
    const count = await dialogs.count();
    if (count === 0) return;
    // Dialogs stack; the last one is on top and its mask covers the others.
    const top = dialogs.nth(count - 1);
    const title = ((await top.innerText().catch(() => "")) || "").trim().split("\n")[0];
    log(`closing a frontend dialog: ${title}`.trim());
    const close = top.getByRole("button", { name: /^Close$/ });
    if ((await close.count()) > 0) await close.first().click({ timeout: 3000 }).catch(() => page.keyboard.press("Escape"));
    else await page.keyboard.press("Escape");
    await page
      .waitForFunction((n) => [...document.querySelectorAll('[role="dialog"]')].filter((d) => d.checkVisibility()).length < n, count, { timeout: 3000 })
      .catch(() => {});
  }
}

async function clientId(page) {
  return page.evaluate(() => window.app.api?.clientId ?? sessionStorage.getItem("clientId"));
}

/** Loads an API-format prompt as the current workflow, the way a user opens a file; fails loudly when it does not load. */
async function loadFromPage(page, apiPrompt, fileName) {
  const loaded = await page.evaluate(
    async ({ apiPrompt, fileName }) => {
      const app = window.app;
      await app.loadApiJson(structuredClone(apiPrompt), fileName);
      const graph = app.rootGraph ?? app.graph;
      return graph.nodes.map((n) => n.type).sort();
    },
    { apiPrompt, fileName },
  );
  const expected = Object.values(apiPrompt).map((n) => n.class_type).sort();
  check(JSON.stringify(loaded) === JSON.stringify(expected), `loadApiJson loaded ${loaded}, expected ${expected}`);
}

/**
 * Queues an API-format prompt the way a user would: load it as the current workflow, then the Queue button's
 * app.queuePrompt. There is no fallback: a broken load path fails the scenario.
 */
async function queueFromPage(page, apiPrompt, fileName) {
  await loadFromPage(page, apiPrompt, fileName);
  // The frontend reports a refused prompt itself (dialog), it does not throw.
  await page.evaluate(() => window.app.queuePrompt(0, 1));
  return { path: "loadApiJson+queuePrompt" };
}

async function openSweepsTab(page) {
  await closeDialogs(page);
  const button = page.locator(SWEEPS_BUTTON).first();
  check((await button.count()) > 0, `no Sweeps button (${SWEEPS_BUTTON}) in the sidebar`);
  if (!(await page.locator("#wi-panel").isVisible())) await button.click();
  await page.locator("#wi-panel").waitFor({ state: "visible", timeout: 10000 });
  await widenSidebar(page);
}

/** Ids of the batches this tab knows, to tell a newly queued batch from older ones of the same name. */
async function knownBatchIds(page) {
  return page.evaluate(() =>
    window.app.extensions.find((e) => e.name === "wi.batchPanel").getBatches().map((b) => b.id),
  );
}

/** Waits until this tab's panel state has a batch called `name` that is not in `known`; returns its id. */
async function newBatchId(page, name, known, timeout = 20000) {
  const handle = await page.waitForFunction(
    ({ name, known }) => {
      const ext = window.app.extensions.find((e) => e.name === "wi.batchPanel");
      return ext.getBatches().find((b) => b.name === name && !known.includes(b.id))?.id ?? null;
    },
    { name, known },
    { timeout },
  );
  return handle.jsonValue();
}

function card(page, batchId) {
  return page.locator(`[data-wi-batch="${batchId}"]`);
}

/**
 * Full page into the artifacts, plus a tight clip for the docs: `clip` is "panel" (the icon bar and the Sweeps
 * panel down to its last card) or a selector (that element with a margin).
 */
async function screenshot(page, shotName, { clip = "panel" } = {}) {
  const name = currentRenderer === "on" ? `${shotName}.vue` : shotName;
  const shots = { full: path.join(ARTIFACTS, `${name}.full.png`), clip: null };
  await page.screenshot({ path: shots.full });
  let box = null;
  if (clip === "panel") {
    const panel = await page.locator("#wi-panel").boundingBox();
    const bottom = await page.locator("#wi-panel").evaluate((el) => {
      const last = el.querySelector("[data-wi-batches]")?.lastElementChild ?? el.querySelector("[data-wi-empty]");
      return last.getBoundingClientRect().bottom;
    });
    if (panel) box = { x: 0, y: 0, width: panel.x + panel.width + 6, height: Math.max(bottom + 12, 240) };
  } else if (clip) {
    const b = await page.locator(clip).first().boundingBox();
    if (b) box = { x: b.x - 10, y: b.y - 10, width: b.width + 20, height: b.height + 20 };
  }
  if (box) {
    const x = Math.max(0, box.x);
    const y = Math.max(0, box.y);
    const width = Math.min(VIEWPORT.width, box.x + box.width) - x;
    const height = Math.min(VIEWPORT.height, box.y + box.height) - y;
    shots.clip = path.join(ARTIFACTS, `${name}.png`);
    await page.screenshot({ path: shots.clip, clip: { x, y, width, height } });
  }
  return shots;
}

/** Drags the sidebar splitter so the panel is wide enough for readable screenshots (layout only). */
async function widenSidebar(page, width = 330) {
  const panel = await page.locator("#wi-panel").boundingBox();
  const gutter = page.locator(".p-splitter-gutter, [role=separator]").first();
  const box = await gutter.boundingBox().catch(() => null);
  if (!panel || !box || panel.width >= width) return;
  await page.mouse.move(box.x + box.width / 2, box.y + 300);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2 + (width - panel.width), box.y + 300, { steps: 8 });
  await page.mouse.up();
}

async function toastTexts(page) {
  return page.locator(TOAST).allInnerTexts();
}

function toastLocator(page, pattern) {
  return page.locator(TOAST).filter({ hasText: pattern });
}

async function waitForToast(page, pattern, timeout = 15000) {
  const toast = toastLocator(page, pattern);
  await toast.first().waitFor({ state: "visible", timeout });
  return (await toast.first().innerText()).replace(/\s+/g, " ").trim();
}

/** "success" | "info" | "warning" | "error" of a toast: data-toast-kind (1.58) or PrimeVue's severity class. */
async function toastKind(page, pattern) {
  return toastLocator(page, pattern)
    .first()
    .evaluate((el) => {
      const kind = el.getAttribute("data-toast-kind") ?? /p-toast-message-(\w+)/.exec(el.className)?.[1] ?? "";
      return kind === "warn" ? "warning" : kind;
    });
}

/** Closes any toasts (they live 5-10 s) so the next screenshot shows only its own. */
async function clearToasts(page) {
  await page.evaluate(() => {
    const toast = window.app.extensionManager.toast;
    if (typeof toast?.dismissAll === "function") toast.dismissAll();
    else toast?.removeAll?.();
  });
  await page.locator(TOAST).first().waitFor({ state: "detached", timeout: 5000 }).catch(() => {});
}

/** Screen boxes of two elements overlap (strictly: touching edges do not count). */
function overlaps(a, b) {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

/** The canvas toolbar (zoom, canvas mode, link visibility; bottom right on 1.27 to 1.58) as one box, or null. */
async function canvasToolbarBox(page) {
  return page.evaluate(() => {
    const zoom = document.querySelector('[data-testid="zoom-controls-button"]');
    const links = document.querySelector('[data-testid="toggle-link-visibility-button"]');
    if (!zoom || !links) return null;
    let box = zoom.parentElement;
    while (box && !box.contains(links)) box = box.parentElement;
    if (!box) return null;
    const r = box.getBoundingClientRect();
    return { x: r.x, y: r.y, width: r.width, height: r.height };
  });
}

/** The badge widget of node `nodeId`: its text, tone and whether it is on screen (not merely in the DOM). */
async function badgeOnScreen(page, nodeId) {
  return page.evaluate((id) => {
    // Node ids repeat across open workflow tabs, and some frontends keep a closed tab's widgets in the DOM
    // (hidden): the badge is the one of this id that is on screen.
    const onScreen = (el) => {
      const r = el.getBoundingClientRect();
      const inViewport = r.width > 0 && r.height > 0 && r.right > 0 && r.bottom > 0 && r.left < innerWidth && r.top < innerHeight;
      return el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true }) && inViewport;
    };
    const all = [...document.querySelectorAll(`[data-wi-badge-node="${id}"]`)];
    const shown = all.filter(onScreen);
    const el = shown[0] ?? all[0];
    if (!el) return { present: false };
    const r = el.getBoundingClientRect();
    return {
      present: true,
      matches: all.length,
      onScreenCount: shown.length,
      visible: shown.length === 1,
      // Text cut off by the widget's box (the canvas renderer gives DOM widgets a fixed height).
      clipped: el.scrollHeight > el.clientHeight + 1,
      text: el.innerText.replace(/\s+/g, " ").trim(),
      tone: el.getAttribute("data-wi-badge-tone"),
      box: { x: r.x, y: r.y, width: r.width, height: r.height },
    };
  }, nodeId);
}

/** Node ids of the loaded workflow by class, plus a parameter's node id by its name widget. */
async function nodeIds(page) {
  return page.evaluate(() => {
    const graph = window.app.rootGraph ?? window.app.graph;
    const byName = {};
    let iterator = null;
    for (const node of graph.nodes) {
      if (node.type === "WIIterator") iterator = node.id;
      const name = node.widgets?.find((w) => w.name === "name")?.value;
      if (String(node.type).startsWith("WIParameter") && name) byName[name] = node.id;
    }
    return { iterator, byName };
  });
}

/**
 * Centres node `nodeId` at 100 % zoom. Not "fit view": a whole sweep fits only below the zoom at which the canvas
 * renderer stops showing DOM widgets (its own text areas as well as the badges).
 */
async function focusNode(page, nodeId) {
  await page.evaluate((id) => {
    const canvas = window.app.canvas;
    const node = (window.app.rootGraph ?? window.app.graph).getNodeById(id);
    const box = canvas.canvas.getBoundingClientRect();
    canvas.ds.scale = 1;
    canvas.ds.offset = [-node.pos[0] + box.width / 2 - node.size[0] / 2, -node.pos[1] + box.height / 2 - node.size[1] / 2];
    canvas.setDirty(true, true);
  }, nodeId);
  await page.waitForTimeout(400);
}

/** Asks the parent (test_browser.py) to kill ComfyUI and start it again on the same base directory and port. */
async function requestRestart() {
  check(RESTART_CONTROL, "no restart control (run through test_browser.py, or set WI_E2E_RESTART_CONTROL=1)");
  restarting = true;
  process.stdout.write("WI-E2E-RESTART\n");
  const line = await new Promise((resolve, reject) => {
    let buffer = "";
    const timer = setTimeout(() => reject(new AssertionError("the parent did not restart ComfyUI within 180 s")), 180000);
    const onData = (chunk) => {
      buffer += chunk.toString();
      const newline = buffer.indexOf("\n");
      if (newline < 0) return;
      clearTimeout(timer);
      process.stdin.off("data", onData);
      process.stdin.pause();
      resolve(buffer.slice(0, newline).trim());
    };
    process.stdin.on("data", onData);
    process.stdin.resume();
  });
  restarting = false;
  check(line === "restarted", `the parent answered ${JSON.stringify(line)} instead of "restarted"`);
}

// ---------------------------------------------------------------------------------------------------------------
// Scenarios

async function scenarioSweepGrid(page) {
  const data = {};
  await openSweepsTab(page);
  if ((await http("GET", "/wi/status")).json.batches.length === 0) {
    check(await page.locator("[data-wi-empty]").isVisible(), "with no batches the panel shows 'No sweeps yet'");
  }
  const known = await knownBatchIds(page);
  data.queue = await queueFromPage(page, examplePrompt(), "model_free_sweep_api.json");
  log("queued the example via", data.queue.path);
  const batchId = await newBatchId(page, "blur_demo", known);
  data.batchId = batchId;
  const batchCard = card(page, batchId);
  await batchCard.waitFor({ state: "visible", timeout: 10000 });
  await page.waitForFunction(
    (id) => {
      const el = document.querySelector(`[data-wi-batch="${id}"]`);
      const img = el?.querySelector("[data-wi-grid-img]");
      return (
        el?.getAttribute("data-wi-state") === "complete" &&
        el.querySelector("[data-wi-progress-text]")?.textContent === "9/9" &&
        img?.complete &&
        img.naturalWidth > 0
      );
    },
    batchId,
    { timeout: 90000 },
  );
  const view = await batchCard.evaluate((el) => ({
    name: el.querySelector("[data-wi-name]").textContent,
    stateLabel: el.querySelector("[data-wi-state-label]").textContent,
    counts: el.querySelector("[data-wi-counts]").textContent,
    tiles: [...el.querySelectorAll("[data-wi-cell]")].map((t) => t.getAttribute("data-wi-cell-status")),
    percent: el.querySelector("[data-wi-progress]").getAttribute("aria-valuenow"),
    gridSrc: el.querySelector("[data-wi-grid-img]").getAttribute("src"),
    gridSize: [el.querySelector("[data-wi-grid-img]").naturalWidth, el.querySelector("[data-wi-grid-img]").naturalHeight],
    cancelHidden: el.querySelector("[data-wi-cancel]").hidden,
    dismissHidden: el.querySelector("[data-wi-dismiss]").hidden,
    viewerHidden: el.querySelector("[data-wi-viewer]").hidden,
    etaHidden: el.querySelector("[data-wi-eta]").hidden,
  }));
  data.view = view;
  check(view.name === "blur_demo", `card name is blur_demo, got ${view.name}`);
  check(view.tiles.length === 9 && view.tiles.every((s) => s === "done"), `9 done tiles, got ${view.tiles}`);
  check(view.percent === "100", `progress bar at 100%, got ${view.percent}`);
  check(/\/view\?/.test(view.gridSrc) && view.gridSrc.includes("filename="), `grid src is a /view URL: ${view.gridSrc}`);
  check(view.cancelHidden && !view.dismissHidden && view.etaHidden, "finished card: no Cancel, no ETA, has Dismiss");
  check(!view.viewerHidden, "the example writes an HTML viewer, so the viewer link shows");
  data.toast = await waitForToast(page, /Sweep finished: blur_demo/);
  check(/9 of 9 done/.test(data.toast), `finished toast counts: ${data.toast}`);
  check(await page.locator("#wi-indicator").isHidden(), "the progress pill hides when nothing runs");
  // The server agrees with the panel.
  const status = await http("GET", `/wi/status/${encodeURIComponent(batchId)}`);
  check(status.status === 200 && status.json.state === "complete" && status.json.counts.done === 9, "server: 9 done");
  check(status.json.client_id === (await clientId(page)), "the batch belongs to this tab's client id");
  await clearToasts(page);
  data.screenshot = await screenshot(page, "panel_finished");
  return data;
}

async function scenarioCancel(page) {
  const data = {};
  await openSweepsTab(page);
  // The confirmation dialog is part of what is tested: make sure the setting is on (its default).
  await page.evaluate(() => window.app.extensionManager.setting.set("WI.ConfirmCancel", true));
  const name = "e2e_cancel";
  const known = await knownBatchIds(page);
  const colors = Array.from({ length: CANCEL_CELLS }, (_, i) => i + 1).join(", ");
  data.queue = await queueFromPage(page, sweepPrompt({ colors, radii: "1", name, seconds: CANCEL_CELL_SECONDS }), "e2e_cancel.json");
  const batchId = await newBatchId(page, name, known);
  data.batchId = batchId;
  const batchCard = card(page, batchId);
  await batchCard.waitFor({ state: "visible", timeout: 10000 });
  // A cell is running (server view), then an unrelated prompt from another client joins the queue behind the batch.
  await poll("a running cell", async () => {
    const s = await http("GET", `/wi/status/${encodeURIComponent(batchId)}`);
    return s.json?.counts?.running > 0;
  });
  const plain = await http("POST", "/prompt", { prompt: plainPrompt(), client_id: "e2e-someone-else" });
  check(plain.status === 200 && plain.json.prompt_id, `unrelated prompt queued: ${JSON.stringify(plain.json)}`);
  data.plainPromptId = plain.json.prompt_id;
  // The panel shows the batch running and the pill counts it.
  await page.waitForFunction(
    ({ id, total }) => {
      const el = document.querySelector(`[data-wi-batch="${id}"]`);
      const [ended, of] = (el?.querySelector("[data-wi-progress-text]")?.textContent ?? "").split("/").map(Number);
      return el?.getAttribute("data-wi-state") === "active" && of === total && ended >= 1 && ended < total;
    },
    { id: batchId, total: CANCEL_CELLS },
    { timeout: 20000 },
  );
  const indicator = page.locator("#wi-indicator");
  check(await indicator.isVisible(), "the progress pill shows while the sweep runs");
  data.indicatorText = await page.locator("[data-wi-indicator-text]").innerText();
  check(new RegExp(`^Sweep \\d+/${CANCEL_CELLS}\\b`).test(data.indicatorText), `pill text: ${data.indicatorText}`);
  data.runningView = await batchCard.evaluate((el) => ({
    progress: el.querySelector("[data-wi-progress-text]").textContent,
    eta: el.querySelector("[data-wi-eta]").textContent,
    cancelHidden: el.querySelector("[data-wi-cancel]").hidden,
  }));
  check(!data.runningView.cancelHidden, "Cancel shows on a running card");
  // The pill must not cover the canvas toolbar (bottom right: canvas mode, zoom, minimap, link visibility).
  data.pillBox = await indicator.boundingBox();
  data.toolbarBox = await canvasToolbarBox(page);
  check(data.toolbarBox !== null, "found the canvas toolbar (zoom-controls-button ... toggle-link-visibility-button)");
  check(!overlaps(data.pillBox, data.toolbarBox), `the pill ${JSON.stringify(data.pillBox)} overlaps the canvas toolbar ${JSON.stringify(data.toolbarBox)}`);
  data.pillOnTop = await page.evaluate(() => {
    const r = document.querySelector("#wi-indicator").getBoundingClientRect();
    return document.querySelector("#wi-indicator").contains(document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2));
  });
  check(data.pillOnTop, "the pill is not covered by another element (clickable)");
  data.runningScreenshot = await screenshot(page, "panel_running");
  await screenshot(page, "indicator_running", { clip: "#wi-indicator" });
  // Close the sidebar, then the pill opens the panel again.
  await page.locator(SWEEPS_BUTTON).first().click();
  await page.locator("#wi-panel").waitFor({ state: "hidden", timeout: 5000 });
  await indicator.click();
  await page.locator("#wi-panel").waitFor({ state: "visible", timeout: 5000 });
  check(await batchCard.isVisible(), "the pill reopened the panel on the running batch");

  // Cancel from the panel. The setting is on, so the frontend's confirmation dialog must come first: a cancel
  // without it, or through a native window.confirm, fails here.
  const nativeBefore = nativeDialogs.length;
  await batchCard.locator("[data-wi-cancel]").click();
  const dialog = page.locator(`${DIALOG}:visible`).filter({ hasText: "Cancel sweep" });
  const confirmed = await Promise.race([
    dialog.first().waitFor({ state: "visible", timeout: 8000 }).then(() => "dialog"),
    page
      .waitForFunction((id) => document.querySelector(`[data-wi-batch="${id}"]`)?.getAttribute("data-wi-state") === "cancelled", batchId, {
        timeout: 8000,
      })
      .then(() => "cancelled without a dialog"),
  ]).catch(() => "nothing happened");
  data.confirmation = confirmed;
  check(nativeDialogs.length === nativeBefore, `a native dialog instead of the frontend's: ${nativeDialogs.slice(nativeBefore)}`);
  check(confirmed === "dialog", `Cancel with WI.ConfirmCancel on must ask first; got: ${confirmed}`);
  const stateWhileAsking = await batchCard.getAttribute("data-wi-state");
  check(stateWhileAsking === "active", `nothing is cancelled while the dialog is open: ${stateWhileAsking}`);
  data.dialogText = (await dialog.first().innerText()).replace(/\s+/g, " ").trim();
  check(data.dialogText.includes(name), `the dialog names the sweep: ${data.dialogText}`);
  await screenshot(page, "cancel_confirm_dialog", { clip: `${DIALOG}:visible` });
  // Matched as a substring: on 1.58 the accessible name carries the icon's spacing.
  await dialog.first().getByRole("button", { name: "Confirm" }).click();
  await dialog.first().waitFor({ state: "hidden", timeout: 5000 });
  await page.waitForFunction(
    (id) => document.querySelector(`[data-wi-batch="${id}"]`)?.getAttribute("data-wi-state") === "cancelled",
    batchId,
    { timeout: 15000 },
  );
  data.toast = await waitForToast(page, /Sweep cancelled: e2e_cancel/);
  // Tiles settle (the running cell's interrupt arrives as its own event).
  await page.waitForFunction(
    ({ id, total }) => {
      const el = document.querySelector(`[data-wi-batch="${id}"]`);
      const tiles = [...el.querySelectorAll("[data-wi-cell]")].map((t) => t.getAttribute("data-wi-cell-status"));
      return tiles.length === total && !tiles.some((s) => s === "running" || s === "queued");
    },
    { id: batchId, total: CANCEL_CELLS },
    { timeout: 15000 },
  );
  data.cancelledView = await batchCard.evaluate((el) => ({
    stateLabel: el.querySelector("[data-wi-state-label]").textContent,
    progress: el.querySelector("[data-wi-progress-text]").textContent,
    counts: el.querySelector("[data-wi-counts]").textContent,
    tiles: [...el.querySelectorAll("[data-wi-cell]")].map((t) => t.getAttribute("data-wi-cell-status")),
    cancelHidden: el.querySelector("[data-wi-cancel]").hidden,
    dismissHidden: el.querySelector("[data-wi-dismiss]").hidden,
  }));
  const v = data.cancelledView;
  check(v.cancelHidden && !v.dismissHidden, "cancelled card: Cancel hidden, Dismiss shown");
  const ran = v.tiles.filter((s) => s === "done").length;
  check(ran >= 1 && ran < CANCEL_CELLS, `some but not all cells ran: ${v.tiles}`);
  check(ran + v.tiles.filter((s) => s === "cancelled").length === CANCEL_CELLS, `the rest are cancelled: ${v.tiles}`);
  check(v.progress === `${CANCEL_CELLS}/${CANCEL_CELLS}`, `every cell ended (done + cancelled): ${v.progress}`);
  const status = await http("GET", `/wi/status/${encodeURIComponent(batchId)}`);
  check(status.json.state === "cancelled", `server state cancelled: ${status.json.state}`);
  // The unrelated prompt was not removed and ran to success.
  const history = await poll(
    "the unrelated prompt in /history",
    async () => {
      const h = await http("GET", `/history/${data.plainPromptId}`);
      return h.status === 200 && h.json[data.plainPromptId] ? h.json[data.plainPromptId] : null;
    },
    { timeout: 30000 },
  );
  data.plainStatus = history.status?.status_str;
  data.plainOutputs = history.outputs;
  check(history.status?.status_str === "success" && history.status?.completed, `unrelated prompt succeeded: ${JSON.stringify(history.status)}`);
  check(history.outputs?.["2"]?.images?.length === 1, `the unrelated prompt saved its image: ${JSON.stringify(history.outputs)}`);
  check(await indicator.isHidden(), "the progress pill hides after the cancel");
  data.screenshot = await screenshot(page, "panel_cancelled");
  await screenshot(page, "toast_cancelled", { clip: TOAST });
  await clearToasts(page);
  return data;
}

async function scenarioCancelNoConfirm(page) {
  // With WI.ConfirmCancel off, Cancel acts at once: no dialog, no native confirm.
  const data = {};
  await openSweepsTab(page);
  await page.evaluate(() => window.app.extensionManager.setting.set("WI.ConfirmCancel", false));
  try {
    const name = "e2e_cancel_now";
    const known = await knownBatchIds(page);
    data.queue = await queueFromPage(page, sweepPrompt({ colors: "1, 2, 3, 4", radii: "2", name, seconds: CANCEL_CELL_SECONDS }), "e2e_cancel_now.json");
    const batchId = await newBatchId(page, name, known);
    data.batchId = batchId;
    await poll("a running cell", async () => (await http("GET", `/wi/status/${encodeURIComponent(batchId)}`)).json?.counts?.running > 0);
    const nativeBefore = nativeDialogs.length;
    await card(page, batchId).locator("[data-wi-cancel]").click();
    await page.locator(`[data-wi-batch="${batchId}"][data-wi-state="cancelled"]`).waitFor({ timeout: 10000 });
    check((await page.locator(`${DIALOG}:visible`).filter({ hasText: "Cancel sweep" }).count()) === 0, "no confirmation dialog with WI.ConfirmCancel off");
    check(nativeDialogs.length === nativeBefore, `no native confirm: ${nativeDialogs.slice(nativeBefore)}`);
    const status = await http("GET", `/wi/status/${encodeURIComponent(batchId)}`);
    check(status.json.state === "cancelled", `server state: ${status.json.state}`);
    await waitForToast(page, /Sweep cancelled: e2e_cancel_now/);
  } finally {
    await page.evaluate(() => window.app.extensionManager.setting.set("WI.ConfirmCancel", true));
    await clearToasts(page);
  }
  return data;
}

async function scenarioParamError(page) {
  const data = {};
  await openSweepsTab(page);
  await clearToasts(page);
  // "radius" has one bad value: the server skips it, still runs the sweep and tells this tab which parameter.
  const name = "e2e_bad_value";
  const known = await knownBatchIds(page);
  data.queue = await queueFromPage(page, sweepPrompt({ colors: "1, 2", radii: "1, x", name }), "e2e_bad_value.json");
  data.toast = await waitForToast(page, /radius/);
  check(/Sweep parameter "radius"/.test(data.toast), `warning toast names the parameter: ${data.toast}`);
  check(!data.toast.includes("^"), `the toast drops the caret diagram (spaces collapse in a toast): ${data.toast}`);
  data.toastKind = await toastKind(page, /radius/);
  check(data.toastKind === "warning", `a warning toast: ${data.toastKind}`);
  // The parameter node's badge shows the parser's error too.
  data.badge = await page.evaluate(async () => {
    const ext = window.app.extensions.find((e) => e.name === "wi.iteratorBadge");
    await ext.refreshNow();
    const graph = window.app.rootGraph ?? window.app.graph;
    const node = graph.nodes.find((n) => n.type === "WIParameterInt" && n.widgets?.find((w) => w.name === "name")?.value === "radius");
    return node ? ext.badgeFor(node) : null;
  });
  // ... and shows it on the node, in either renderer.
  const ids = await nodeIds(page);
  await focusNode(page, ids.byName.radius);
  data.badgeOnScreen = await badgeOnScreen(page, ids.byName.radius);
  data.badgeOnScreenSkipped = await domWidgetsUnsupported(page, ids.byName.radius);
  if (data.badgeOnScreenSkipped) log(`param_error: on-screen badge not checked: ${data.badgeOnScreenSkipped}`);
  else check(data.badgeOnScreen.visible && data.badgeOnScreen.tone === "error" && /radius/.test(data.badgeOnScreen.text),
    `the radius node shows its red error badge: ${JSON.stringify(data.badgeOnScreen)}`);
  check(data.badge?.tone === "error", `radius node badge is an error: ${JSON.stringify(data.badge)}`);
  check(/radius/.test(data.badge.lines.join(" ")) && !data.badge.lines.join(" ").includes("^"), `badge text: ${data.badge.lines}`);
  data.screenshot = await screenshot(page, "toast_param_error", { clip: TOAST });
  const batchId = await newBatchId(page, name, known);
  const finished = await poll("the 2-cell sweep", async () => {
    const s = await http("GET", `/wi/status/${encodeURIComponent(batchId)}`);
    return ["complete", "cancelled"].includes(s.json?.state) ? s.json : null;
  });
  // The sweep ran over the valid values only (color 1, 2 x radius 1): two cells, both done.
  data.cellCounts = finished.counts;
  check(finished.counts.total === 2, `the sweep ran over the valid values only: ${JSON.stringify(finished.counts)}`);
  check(finished.state === "complete" && finished.counts.done === 2 && finished.counts.failed === 0,
    `both cells of the valid values are done: ${finished.state} ${JSON.stringify(finished.counts)}`);
  await clearToasts(page);

  // No valid value at all: nothing is queued and the tab gets an error toast carrying the server's reason.
  const before = (await http("GET", "/wi/status")).json.batches.length;
  data.refused = await queueFromPage(page, sweepPrompt({ colors: "x", radii: "y", name: "e2e_refused" }), "e2e_refused.json");
  data.refusedToast = await waitForToast(page, /Sweep not queued/);
  check(/color/.test(data.refusedToast) && /radius/.test(data.refusedToast), `the refusal names both parameters: ${data.refusedToast}`);
  check(!data.refusedToast.includes("^"), `no caret diagram in the toast: ${data.refusedToast}`);
  await screenshot(page, "toast_sweep_not_queued", { clip: TOAST });
  check((await http("GET", "/wi/status")).json.batches.length === before, "no batch was created for the refused sweep");
  // The frontend shows its own validation dialog for the 400; close it so later steps see a clean page.
  await closeDialogs(page);
  return data;
}

async function scenarioReload(page, previous) {
  // After a reload the panel rebuilds itself from GET /wi/status: the same batches, in their final states.
  const expected = {};
  for (const name of ["sweep_grid", "cancel"]) {
    const result = previous[name];
    if (result?.ok) expected[result.data.batchId] = name === "sweep_grid" ? "complete" : "cancelled";
  }
  check(Object.keys(expected).length > 0, "nothing to compare: the earlier scenarios failed");
  await page.reload({ waitUntil: "domcontentloaded" });
  await waitForApp(page, { navigate: false });
  await openSweepsTab(page);
  for (const [batchId, state] of Object.entries(expected)) {
    await page.locator(`[data-wi-batch="${batchId}"][data-wi-state="${state}"]`).waitFor({ timeout: 15000 });
  }
  const grid = Object.entries(expected).find(([, state]) => state === "complete");
  if (grid) {
    await page.waitForFunction(
      (id) => document.querySelector(`[data-wi-batch="${id}"] [data-wi-grid-img]`)?.naturalWidth > 0,
      grid[0],
      { timeout: 15000 },
    );
  }
  const texts = await page.evaluate(
    (ids) => Object.fromEntries(ids.map((id) => [id, document.querySelector(`[data-wi-batch="${id}"] [data-wi-progress-text]`)?.textContent])),
    Object.keys(expected),
  );
  for (const [batchId, state] of Object.entries(expected)) {
    check(state !== "complete" || texts[batchId] === "9/9", `after reload ${batchId} reads ${texts[batchId]}`);
    check(state !== "cancelled" || texts[batchId] === `${CANCEL_CELLS}/${CANCEL_CELLS}`, `after reload ${batchId} reads ${texts[batchId]}`);
  }
  check(await page.locator("#wi-indicator").isHidden(), "no pill after reload: nothing runs");
  return { expected, texts };
}

/**
 * Null when this renderer shows DOM widgets, else why not. The early Vue renderer of 1.27 draws no DOM widget at
 * all, not even the frontend's own text areas (a parameter node's `values`), so no badge can show there.
 */
async function domWidgetsUnsupported(page, nodeId) {
  if (currentRenderer !== "on") return null;
  const seen = await page.evaluate((id) => {
    const node = (window.app.rootGraph ?? window.app.graph).getNodeById(id);
    const own = node?.widgets?.find((w) => w.name === "values")?.element;
    return {
      badgeInDom: Boolean(document.querySelector(`[data-wi-badge-node="${id}"]`)),
      ownTextAreaIsDomWidget: Boolean(own),
      ownTextAreaShown: Boolean(own?.isConnected),
    };
  }, nodeId);
  // Skipped only when the frontend's own DOM widget (the values text area) is not shown either.
  if (seen.badgeInDom || !seen.ownTextAreaIsDomWidget || seen.ownTextAreaShown) return null;
  return "this frontend's Nodes 2.0 renderer shows no DOM widgets (its own text areas are missing too)";
}

async function scenarioBadges(page) {
  // The badges are DOM text on the node in both renderers (a DOM widget, not canvas drawing).
  const data = {};
  await loadFromPage(page, sweepPrompt({ colors: "1, 2", radii: "1, 2", name: "e2e_badges" }), "e2e_badges.json");
  await page.evaluate(() => window.app.extensions.find((e) => e.name === "wi.iteratorBadge").refreshNow());
  const ids = await nodeIds(page);
  await focusNode(page, ids.iterator);
  const unsupported = await domWidgetsUnsupported(page, ids.byName.radius);
  if (unsupported) throw new SkipScenario(unsupported);
  data.iterator = await badgeOnScreen(page, ids.iterator);
  check(data.iterator.visible, `the iterator badge is on screen: ${JSON.stringify(data.iterator)}`);
  check(/4 prompts · matrix/.test(data.iterator.text) && /grid \d+×\d+/.test(data.iterator.text), `iterator badge text: ${data.iterator.text}`);
  check(data.iterator.tone === "info", `iterator badge tone: ${data.iterator.tone}`);
  await focusNode(page, ids.byName.color);
  data.color = await badgeOnScreen(page, ids.byName.color);
  check(data.color.visible && data.color.text === "2 values", `the color parameter shows "2 values": ${JSON.stringify(data.color)}`);
  // A bad value: the parameter's badge turns red, live (the values widget changed, no reload).
  await page.evaluate((id) => {
    const graph = window.app.rootGraph ?? window.app.graph;
    const widget = graph.getNodeById(id).widgets.find((w) => w.name === "values");
    widget.value = "1, x";
    widget.callback?.(widget.value);
  }, ids.byName.radius);
  await page.evaluate(() => window.app.extensions.find((e) => e.name === "wi.iteratorBadge").refreshNow());
  await focusNode(page, ids.byName.radius);
  data.radius = await badgeOnScreen(page, ids.byName.radius);
  check(data.radius.visible && data.radius.tone === "error" && /radius/.test(data.radius.text), `the radius badge turned red: ${JSON.stringify(data.radius)}`);
  data.radiusColour = await page.evaluate((id) => getComputedStyle(document.querySelector(`[data-wi-badge-node="${id}"]`)).backgroundColor, ids.byName.radius);
  check(data.radiusColour === "rgb(163, 48, 48)", `the error badge is red: ${data.radiusColour}`);
  const radiusAfter = await badgeOnScreen(page, ids.byName.radius);
  await focusNode(page, ids.iterator);
  data.iteratorAfter = await badgeOnScreen(page, ids.iterator);
  check(/2 prompts/.test(data.iteratorAfter.text), `the iterator count follows the edit: ${data.iteratorAfter.text}`);
  for (const [what, badge] of [["iterator", data.iteratorAfter], ["radius", radiusAfter]]) {
    check(!badge.clipped, `the ${what} badge shows all its lines (not cut off): ${JSON.stringify(badge)}`);
  }
  // The badge widget is part of neither the saved workflow nor the prompt.
  data.serialized = await page.evaluate(async () => {
    const app = window.app;
    const graph = app.rootGraph ?? app.graph;
    const workflow = graph.serialize();
    const prompt = await app.graphToPrompt();
    const widgetsValues = Object.fromEntries(
      workflow.nodes.filter((n) => n.type === "WIIterator" || String(n.type).startsWith("WIParameter")).map((n) => {
        const live = graph.getNodeById(n.id);
        const badgeIndex = live.widgets.findIndex((w) => w.name === "wi_badge");
        return [n.id, { values: (n.widgets_values ?? []).length, badgeIndex }];
      }),
    );
    const inputs = Object.values(prompt.output).flatMap((node) => Object.keys(node.inputs ?? {}));
    return { widgetsValues, promptHasBadge: inputs.includes("wi_badge"), workflowHasBadge: JSON.stringify(workflow).includes("wi_badge") };
  });
  check(!data.serialized.promptHasBadge && !data.serialized.workflowHasBadge, `badge widget leaked: ${JSON.stringify(data.serialized)}`);
  for (const [id, { values, badgeIndex }] of Object.entries(data.serialized.widgetsValues)) {
    check(badgeIndex >= 0 && values <= badgeIndex, `node ${id}: widgets_values (${values}) must stop before the badge widget (#${badgeIndex})`);
  }
  // For the docs: the sidebar closed and the chain at 100 %, centred on the iterator.
  if (await page.locator("#wi-panel").isVisible()) await page.locator(SWEEPS_BUTTON).first().click();
  await focusNode(page, ids.iterator);
  data.screenshot = await screenshot(page, "badges", { clip: null });
  return data;
}

async function scenarioRestartResume(page) {
  // ComfyUI dies mid-sweep (SIGKILL) and comes back on the same base directory: the batch is "interrupted".
  const data = {};
  await openSweepsTab(page);
  const name = "e2e_restart";
  const known = await knownBatchIds(page);
  const colors = Array.from({ length: RESTART_CELLS }, (_, i) => i + 1).join(", ");
  await queueFromPage(page, sweepPrompt({ colors, radii: "1", name, seconds: CANCEL_CELL_SECONDS }), "e2e_restart.json");
  const batchId = await newBatchId(page, name, known);
  data.batchId = batchId;
  await poll("two cells done", async () => (await http("GET", `/wi/status/${encodeURIComponent(batchId)}`)).json?.counts?.done >= 2, { timeout: 60000 });
  await requestRestart();
  // The page reconnects by itself and re-reads the batches.
  const interrupted = page.locator(`[data-wi-batch="${batchId}"][data-wi-state="interrupted"]`);
  await interrupted.waitFor({ timeout: 60000 });
  const readCard = () =>
    card(page, batchId).evaluate((el) => ({
      stateLabel: el.querySelector("[data-wi-state-label]").textContent,
      progress: el.querySelector("[data-wi-progress-text]").textContent,
      resumeHidden: el.querySelector("[data-wi-resume]").hidden,
      etaHidden: el.querySelector("[data-wi-eta]").hidden,
      pillHidden: document.querySelector("#wi-indicator").hidden,
    }));
  data.live = await readCard();
  const server = await http("GET", `/wi/status/${encodeURIComponent(batchId)}`);
  check(server.json.state === "interrupted", `server state after the restart: ${server.json.state}`);
  data.doneBefore = server.json.counts.done;
  const expectCard = (view, when) => {
    check(view.stateLabel === "interrupted", `${when}: the card reads ${view.stateLabel}`);
    check(!view.resumeHidden, `${when}: Resume shows`);
    check(view.etaHidden, `${when}: no ETA while nothing runs`);
    check(view.pillHidden, `${when}: the pill does not count an interrupted batch as running`);
    check(view.progress === `${data.doneBefore}/${RESTART_CELLS}`, `${when}: progress ${view.progress}`);
  };
  expectCard(data.live, "live");
  await page.reload({ waitUntil: "domcontentloaded" });
  await waitForApp(page, { navigate: false });
  await openSweepsTab(page);
  await interrupted.waitFor({ timeout: 15000 });
  data.afterReload = await readCard();
  expectCard(data.afterReload, "after reload");
  data.screenshot = await screenshot(page, "panel_interrupted");
  await card(page, batchId).locator("[data-wi-resume]").click();
  data.toast = await waitForToast(page, /Sweep resumed: e2e_restart/);
  await page.waitForFunction(
    ({ id, total }) => {
      const el = document.querySelector(`[data-wi-batch="${id}"]`);
      return el?.getAttribute("data-wi-state") === "complete" && el.querySelector("[data-wi-progress-text]")?.textContent === `${total}/${total}`;
    },
    { id: batchId, total: RESTART_CELLS },
    { timeout: 90000 },
  );
  const final = await http("GET", `/wi/status/${encodeURIComponent(batchId)}`);
  data.finalCounts = final.json.counts;
  check(final.json.state === "complete" && final.json.counts.done === RESTART_CELLS, `resumed batch: ${final.json.state} ${JSON.stringify(final.json.counts)}`);
  data.tiles = await card(page, batchId).evaluate((el) => [...el.querySelectorAll("[data-wi-cell]")].map((t) => t.getAttribute("data-wi-cell-status")));
  check(data.tiles.length === RESTART_CELLS && data.tiles.every((s) => s === "done"), `tiles: ${data.tiles}`);
  await clearToasts(page);
  return data;
}

async function scenarioBottomPanel(page) {
  // In the bottom panel the list scrolls: the last card can be brought into view. Placement applies on reload.
  const data = {};
  await page.evaluate(() => window.app.extensionManager.setting.set("WI.PanelPlacement", "bottom"));
  try {
    await page.reload({ waitUntil: "domcontentloaded" });
    await waitForApp(page, { navigate: false, sweepsButton: false });
    await page.evaluate(() => window.app.extensionManager.command.execute("Workspace.ToggleBottomPanelTab.wi.sweeps"));
    const panel = page.locator("#wi-panel");
    await panel.waitFor({ state: "visible", timeout: 10000 });
    await page.waitForFunction(() => document.querySelectorAll("#wi-panel [data-wi-batch]").length >= 3, null, { timeout: 15000 });
    data.before = await panel.evaluate((el) => ({ cards: el.querySelectorAll("[data-wi-batch]").length, scrollHeight: el.scrollHeight, clientHeight: el.clientHeight }));
    check(data.before.scrollHeight > data.before.clientHeight, `the cards overflow the bottom panel, so it must scroll: ${JSON.stringify(data.before)}`);
    // Scroll to the end (a card with a grid can be taller than the panel, so "fits entirely" is not the test):
    // the last card's end must come into the visible panel, and be what is on top there. Grid thumbnails load
    // lazily as they scroll into view, and a re-render (a worker's state, a poll) can land in between, so the
    // cards may grow after a scroll: scroll and measure again until the layout has settled (or 20 tries).
    data.after = await panel.evaluate(async (el) => {
      const measure = () => {
        const lastCard = [...el.querySelectorAll("[data-wi-batch]")].at(-1);
        const p = el.getBoundingClientRect();
        const c = lastCard.getBoundingClientRect();
        const hit = document.elementFromPoint(c.x + c.width / 2, c.bottom - 6);
        return {
          scrollTop: el.scrollTop,
          scrollHeight: el.scrollHeight,
          panel: { top: p.top, bottom: p.bottom },
          card: { top: c.top, bottom: c.bottom },
          cardEndInsidePanel: c.bottom <= p.bottom + 1 && c.bottom > p.top,
          panelInViewport: p.top >= 0 && p.bottom <= innerHeight + 1,
          hitIsCard: lastCard.contains(hit),
        };
      };
      let previous = null;
      let seen = null;
      for (let attempt = 0; attempt < 20; attempt += 1) {
        el.scrollTo({ top: el.scrollHeight, behavior: "instant" });
        await new Promise((resolve) => setTimeout(resolve, 250));
        const settled = [...el.querySelectorAll("img")].every((img) => img.complete);
        seen = { ...measure(), attempts: attempt + 1 };
        if (settled && previous && previous.scrollTop === seen.scrollTop && previous.scrollHeight === seen.scrollHeight) break;
        previous = seen;
      }
      return seen;
    });
    check(data.after.scrollTop > 0, `the panel scrolled: ${JSON.stringify(data.after)}`);
    check(data.after.cardEndInsidePanel && data.after.panelInViewport, `the last card's end is inside the visible panel: ${JSON.stringify(data.after)}`);
    check(data.after.hitIsCard, `the last card is on top at its position (not clipped or covered): ${JSON.stringify(data.after)}`);
    data.screenshot = await page.screenshot({ path: path.join(ARTIFACTS, "bottom_panel.full.png") }).then(() => "bottom_panel.full.png");
  } finally {
    await page.evaluate(() => window.app.extensionManager.setting.set("WI.PanelPlacement", "sidebar"));
    await page.reload({ waitUntil: "domcontentloaded" });
    await waitForApp(page, { navigate: false });
  }
  return data;
}

async function scenarioDeprecations(page) {
  // Exercise the pack once more with every deprecation warning repeating, then read what was recorded since load.
  await openSweepsTab(page);
  await loadFromPage(page, sweepPrompt({ colors: "1, 2", radii: "1", name: "e2e_deprecations" }), "e2e_deprecations.json");
  await page.evaluate(async () => {
    const badge = window.app.extensions.find((e) => e.name === "wi.iteratorBadge");
    await badge.refreshNow();
    await window.app.extensions.find((e) => e.name === "wi.batchPanel").resync();
  });
  const recorded = await page.evaluate(() => window.__wiDeprecations ?? null);
  check(recorded !== null, "the deprecation recorder was not installed");
  const ours = recorded.filter((entry) => entry.ours);
  check(ours.length === 0, `deprecation warnings from this pack:\n  ${ours.map((e) => `${e.text}\n${e.stack}`).join("\n  ")}`);
  return { recorded: recorded.length, foreign: [...new Set(recorded.map((e) => e.text))].slice(0, 20) };
}

async function scenarioEarlyEvents(page) {
  const loads = await page.evaluate(() => JSON.parse(sessionStorage.getItem("wiE2eEarlyEvents") || "[]"));
  check(loads.length > 0, "the early events were never delivered (no ComfyUI socket opened?)");
  const tag = `[renderer ${currentRenderer}]`;
  // 1.58.1 prints console.error("Unknown message type …"); older frontends throw it and print console.warn
  // ("Unhandled message: {…"type":"wi.…"} Error: Unknown message type …"): both count, whichever bucket holds them.
  const unknown = [...consoleLog.ours, ...consoleLog.warningsOurs, ...consoleLog.foreign].filter(
    (entry) => entry.startsWith(tag) && /Unknown message type wi\.|Unhandled message:.*"type":\s*"wi\./.test(entry),
  );
  check(unknown.length === 0, `wi.* events that arrived before setup had no listener:\n  ${unknown.join("\n  ")}`);
  check(loads[0].appWasStarting, "on the first load the early events arrived after the app had started, so this check proved nothing");
  return { loads: loads.length, appWasStarting: loads.map((load) => load.appWasStarting) };
}

async function scenarioConsoleClean() {
  const tag = `[renderer ${currentRenderer}]`;
  const ours = consoleLog.ours.filter((entry) => entry.startsWith(tag));
  check(ours.length === 0, `errors from this pack:\n  ${ours.join("\n  ")}`);
  return { foreignErrors: consoleLog.foreign.length, ourWarnings: consoleLog.warningsOurs.filter((entry) => entry.startsWith(tag)) };
}

/** Scenarios in run order, with the renderers each runs under (the others do not depend on the node renderer). */
const SCENARIOS = [
  ["sweep_grid", scenarioSweepGrid, ["off", "on"]],
  ["badges", scenarioBadges, ["off", "on"]],
  ["cancel", scenarioCancel, ["off"]],
  ["cancel_no_confirm", scenarioCancelNoConfirm, ["off"]],
  ["param_error", scenarioParamError, ["off", "on"]],
  ["reload", scenarioReload, ["off"]],
  // Before the restart: only unfinished batches survive a restart, and the bottom panel needs several cards.
  ["bottom_panel", scenarioBottomPanel, ["off"]],
  ["restart_resume", scenarioRestartResume, ["off"]],
  ["deprecations", scenarioDeprecations, ["off", "on"]],
  ["early_events", scenarioEarlyEvents, ["off", "on"]],
  ["console_clean", scenarioConsoleClean, ["off", "on"]],
];

async function main() {
  const results = [];
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-quic",
      "--disable-sync",
    ],
  });
  let exitCode = 0;
  try {
    for (const renderer of RENDERERS) {
      currentRenderer = renderer;
      const context = await browser.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1 });
      context.setDefaultTimeout(20000);
      await context.addInitScript(recordDeprecations, PACK_PATH);
      await context.addInitScript(deliverEarlyServerEvents, EARLY_EVENTS);
      await holdBackFirstNodeList(context);
      const page = await context.newPage();
      watchPage(page);
      const t0 = Date.now();
      try {
        await waitForApp(page, { renderer });
      } catch (error) {
        results.push({ name: "setup", renderer, ok: false, error: error.stack || String(error), data: null, ms: 0 });
        log(`FAIL setup (renderer ${renderer}): ${error.stack || error}`);
        await page.screenshot({ path: path.join(ARTIFACTS, `FAILED_setup_${renderer}.png`) }).catch(() => {});
        exitCode = 1;
        await context.close();
        continue;
      }
      log(`renderer ${renderer}: app ready in ${Date.now() - t0} ms, client id ${await clientId(page)}`);
      for (const [name, run, renderers] of SCENARIOS) {
        if (!renderers.includes(renderer) || (ONLY.length && !ONLY.includes(name))) continue;
        const started = Date.now();
        const result = { name, renderer, ok: false, error: null, skipped: null, data: null, ms: 0 };
        try {
          const earlier = Object.fromEntries(results.filter((r) => r.renderer === renderer).map((r) => [r.name, r]));
          result.data = await run(page, earlier);
          result.ok = true;
        } catch (error) {
          if (error instanceof SkipScenario) {
            result.ok = true;
            result.skipped = error.message;
            results.push({ ...result, ms: Date.now() - started });
            log(`SKIP ${renderer}/${name}: ${error.message}`);
            continue;
          }
          result.error = error instanceof AssertionError ? error.message : error.stack || String(error);
          exitCode = 1;
          await page.screenshot({ path: path.join(ARTIFACTS, `FAILED_${renderer}_${name}.png`) }).catch(() => {});
          result.toasts = await toastTexts(page).catch(() => []);
        }
        result.ms = Date.now() - started;
        results.push(result);
        log(`${result.ok ? "PASS" : "FAIL"} ${renderer}/${name} (${result.ms} ms)${result.ok ? "" : `: ${result.error}`}`);
      }
      await context.close();
    }
  } catch (error) {
    results.push({ name: "setup", renderer: null, ok: false, error: error.stack || String(error), data: null, ms: 0 });
    log(`FAIL setup: ${error.stack || error}`);
    exitCode = 1;
  } finally {
    await browser.close().catch(() => {});
  }
  const report = { url: BASE_URL, ms: Date.now() - startedAt, results, console: consoleLog };
  fs.writeFileSync(path.join(ARTIFACTS, "results.json"), JSON.stringify(report, null, 2));
  if (consoleLog.foreign.length) log(`${consoleLog.foreign.length} console error(s) from ComfyUI itself (ignored); see results.json`);
  process.exitCode = exitCode;
}

await main();
// stdin (the restart control) would otherwise keep the process alive.
process.exit(process.exitCode ?? 0);
