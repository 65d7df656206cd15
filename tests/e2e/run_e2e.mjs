// End-to-end checks of the Workflow Iterator web extension in a real headless Chromium against a real ComfyUI.
//
// Started by tests/e2e/test_browser.py, which launches ComfyUI (with this pack and the test-only fixture nodes)
// and passes:
//   WI_COMFY_URL      http://127.0.0.1:<port> of that server (or argv[2])
//   WI_E2E_ARTIFACTS  folder for screenshots and results.json (default <repo>/test-artifacts/e2e)
//   WI_CHROMIUM       browser binary (default /usr/bin/chromium)
//   WI_E2E_ONLY       optional comma-separated scenario names to run (default: all)
//
// Every scenario records {name, ok, error, data, ms} in results.json; the process exits 1 when any failed.
// Scenarios share one page (and its client id) and run in order:
//   sweep_grid       load the model-free example, queue it from the page, panel reaches 9/9 with a grid thumbnail
//   cancel           long batch of WITestSleep cells, unrelated prompt queued over HTTP, progress pill shown (and
//                    reopens the closed panel), Cancel from the panel through the confirmation dialog, card ends
//                    "cancelled", the unrelated prompt still succeeds
//   cancel_no_confirm  with the WI.ConfirmCancel setting off, Cancel cancels at once without any dialog
//   param_error      a sweep with a bad INT value queued from the page raises a toast naming the parameter (and
//                    the parameter node's badge turns red); a sweep with no valid value raises "Sweep not queued"
//   reload           after a page reload the panel re-reads the finished and cancelled batches from the server
//   console_clean    no page errors and no console errors from this pack during all of the above

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
const PACK_PATH = "/extensions/comfyui-workflow-iterator/";
const VIEWPORT = { width: 1280, height: 760 };
/** The cancel scenario's batch: long enough that the cancel lands mid-batch even on a busy machine. */
const CANCEL_CELLS = 8;
const CANCEL_CELL_SECONDS = 1.5;

if (!BASE_URL) {
  console.error("usage: WI_COMFY_URL=http://127.0.0.1:8188 node run_e2e.mjs");
  process.exit(2);
}
fs.mkdirSync(ARTIFACTS, { recursive: true });

const startedAt = Date.now();
const log = (...args) => console.log(`[e2e +${((Date.now() - startedAt) / 1000).toFixed(1)}s]`, ...args);

class AssertionError extends Error {}
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

function isOurs(text, url) {
  return (
    (url && url.includes(PACK_PATH)) ||
    (url && /\/(api\/)?wi\//.test(url)) ||
    /comfyui-workflow-iterator|wi_batch_panel|wi_iterator_badge|\[wi\.|\bwi\.[a-z]/i.test(text)
  );
}

function watchPage(page) {
  page.on("console", (message) => {
    const type = message.type();
    if (type !== "error" && type !== "warning") return;
    const url = message.location()?.url || "";
    const entry = `${type}: ${message.text()}${url ? ` (${url})` : ""}`;
    if (isOurs(message.text(), url)) (type === "error" ? consoleLog.ours : consoleLog.warningsOurs).push(entry);
    else if (type === "error") consoleLog.foreign.push(entry);
  });
  page.on("pageerror", (error) => {
    const text = `pageerror: ${error.stack || error.message}`;
    // A page error counts as ours when any frame of its stack is in this pack's files.
    if (isOurs(text, "")) consoleLog.ours.push(text);
    else consoleLog.foreign.push(text);
  });
  page.on("response", (response) => {
    const url = response.url();
    if (response.status() >= 400 && (url.includes(PACK_PATH) || /\/(api\/)?wi\//.test(url) || url.includes("/view?"))) {
      const bad = `HTTP ${response.status()} ${response.request().method()} ${url}`;
      // A 409 from cancel is an expected answer (batch already finished) and shows a toast, not an error.
      if (response.status() !== 409) consoleLog.ours.push(bad);
    }
  });
  page.on("requestfailed", (request) => {
    const url = request.url();
    if (url.includes(PACK_PATH)) consoleLog.ours.push(`request failed: ${url} ${request.failure()?.errorText}`);
  });
  // window.confirm fallback of the Cancel button (used when the frontend has no dialog service).
  page.on("dialog", (dialog) => {
    log(`native ${dialog.type()} dialog: ${dialog.message().slice(0, 80)} -> accept`);
    dialog.accept().catch(() => {});
  });
}

async function waitForApp(page, { navigate = true } = {}) {
  if (navigate) {
    // A fresh user gets the "Get Started with a Template" dialog, whose mask blocks every click; a returning user
    // does not. Mark the tutorial as done for the server's default user before the page reads its settings.
    const seeded = await http("POST", "/settings/Comfy.TutorialCompleted", true);
    if (seeded.status !== 200) log(`could not pre-set Comfy.TutorialCompleted: HTTP ${seeded.status}`);
    await page.goto(BASE_URL + "/", { waitUntil: "domcontentloaded" });
  }
  await page.waitForFunction(
    () =>
      window.app?.graph &&
      window.app.extensions?.some((e) => e.name === "wi.batchPanel") &&
      window.app.extensions?.some((e) => e.name === "wi.iteratorBadge") &&
      window.app.extensionManager?.command,
    null,
    { timeout: 60000 },
  );
  // The sidebar button appears once the Vue workspace is mounted.
  await page.locator(".side-bar-button").first().waitFor({ timeout: 30000 });
  await closeDialogs(page);
}

/** Closes any frontend dialog left open (new-user templates, validation errors) so its mask stops blocking clicks. */
async function closeDialogs(page) {
  for (let attempt = 0; attempt < 8; attempt++) {
    const dialogs = page.locator(".p-dialog");
    const count = await dialogs.count();
    if (count === 0) return;
    // Dialogs stack; the last one is on top and its mask covers the others.
    const top = dialogs.nth(count - 1);
    const label = (await top.getAttribute("aria-labelledby").catch(() => null)) ?? "";
    const title = ((await top.innerText().catch(() => "")) || "").trim().split("\n")[0];
    log(`closing a frontend dialog: ${label} ${title}`.trim());
    const close = top.locator(".p-dialog-close-button, button[aria-label='Close']");
    if ((await close.count()) > 0) await close.first().click({ timeout: 3000 }).catch(() => page.keyboard.press("Escape"));
    else await page.keyboard.press("Escape");
    await page.waitForFunction((n) => document.querySelectorAll(".p-dialog").length < n, count, { timeout: 3000 }).catch(() => {});
  }
}

async function clientId(page) {
  return page.evaluate(() => window.app.api?.clientId ?? sessionStorage.getItem("clientId"));
}

/**
 * Queues an API-format prompt the way a user would: load it as the current workflow, then Queue. Falls back to
 * the page's own api object (same client id, so this tab gets the events) when loadApiJson/queuePrompt fail.
 */
async function queueFromPage(page, apiPrompt, fileName) {
  return page.evaluate(
    async ({ apiPrompt, fileName }) => {
      const app = window.app;
      try {
        await app.loadApiJson(structuredClone(apiPrompt), fileName);
        const types = app.graph.nodes.map((n) => n.type).sort();
        const expected = Object.values(apiPrompt).map((n) => n.class_type).sort();
        if (JSON.stringify(types) !== JSON.stringify(expected)) throw new Error(`loaded ${types} != ${expected}`);
      } catch (error) {
        // Only a failed load falls back (nothing was queued yet, so nothing is queued twice).
        const answer = await app.api.queuePrompt(0, { output: apiPrompt, workflow: app.graph.serialize() });
        return { path: "api.queuePrompt", reason: String(error), answer };
      }
      // The user's Queue button; the frontend reports a refused prompt itself (dialog), it does not throw.
      await app.queuePrompt(0, 1);
      return { path: "loadApiJson+queuePrompt" };
    },
    { apiPrompt, fileName },
  );
}

async function openSweepsTab(page) {
  await closeDialogs(page);
  const button = page.locator(".wi\\.sweeps-tab-button");
  if ((await button.count()) > 0) {
    if (!(await page.locator("#wi-panel").isVisible())) await button.first().click();
  } else {
    await page.evaluate(() => window.app.extensionManager.command.execute("Workspace.ToggleSidebarTab.wi.sweeps"));
  }
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
async function screenshot(page, name, { clip = "panel" } = {}) {
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
  const gutter = page.locator(".p-splitter-gutter").first();
  const box = await gutter.boundingBox().catch(() => null);
  if (!panel || !box || panel.width >= width) return;
  await page.mouse.move(box.x + box.width / 2, box.y + 300);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2 + (width - panel.width), box.y + 300, { steps: 8 });
  await page.mouse.up();
}

async function toastTexts(page) {
  return page.locator(".p-toast-message").allInnerTexts();
}

async function waitForToast(page, pattern, timeout = 15000) {
  const toast = page.locator(".p-toast-message").filter({ hasText: pattern });
  await toast.first().waitFor({ state: "visible", timeout });
  return (await toast.first().innerText()).replace(/\s+/g, " ").trim();
}

/** Closes any toasts (they live 5-10 s) so the next screenshot shows only its own. */
async function clearToasts(page) {
  await page.evaluate(() => window.app.extensionManager.toast?.removeAll?.());
  await page.locator(".p-toast-message").first().waitFor({ state: "detached", timeout: 5000 }).catch(() => {});
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
  data.runningScreenshot = await screenshot(page, "panel_running");
  await screenshot(page, "indicator_running", { clip: "#wi-indicator" });
  // Close the sidebar, then the pill opens the panel again.
  await page.locator(".wi\\.sweeps-tab-button").first().click();
  await page.locator("#wi-panel").waitFor({ state: "hidden", timeout: 5000 });
  await indicator.click();
  await page.locator("#wi-panel").waitFor({ state: "visible", timeout: 5000 });
  check(await batchCard.isVisible(), "the pill reopened the panel on the running batch");

  // Cancel from the panel, through the confirmation (PrimeVue dialog; a native confirm is accepted by watchPage).
  await batchCard.locator("[data-wi-cancel]").click();
  const dialog = page.locator(".p-dialog").filter({ hasText: "Cancel sweep" });
  const confirmed = await Promise.race([
    dialog.waitFor({ state: "visible", timeout: 5000 }).then(() => "dialog"),
    page
      .waitForFunction((id) => document.querySelector(`[data-wi-batch="${id}"]`)?.getAttribute("data-wi-state") === "cancelled", batchId, {
        timeout: 5000,
      })
      .then(() => "no-dialog"),
  ]).catch(() => "none");
  data.confirmation = confirmed;
  if (confirmed === "dialog") {
    data.dialogText = (await dialog.innerText()).replace(/\s+/g, " ").trim();
    check(data.dialogText.includes(name), `the dialog names the sweep: ${data.dialogText}`);
    await screenshot(page, "cancel_confirm_dialog", { clip: ".p-dialog" });
    await dialog.getByRole("button", { name: /^Confirm$/ }).click();
    await dialog.waitFor({ state: "hidden", timeout: 5000 });
  }
  check(confirmed !== "none", "Cancel asked for confirmation (dialog or window.confirm) and then cancelled");
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
  await screenshot(page, "toast_cancelled", { clip: ".p-toast-message" });
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
    const nativeDialogs = [];
    const onDialog = (dialog) => nativeDialogs.push(dialog.message());
    page.on("dialog", onDialog);
    await card(page, batchId).locator("[data-wi-cancel]").click();
    await page.locator(`[data-wi-batch="${batchId}"][data-wi-state="cancelled"]`).waitFor({ timeout: 10000 });
    page.off("dialog", onDialog);
    check((await page.locator(".p-dialog").count()) === 0, "no confirmation dialog with WI.ConfirmCancel off");
    check(nativeDialogs.length === 0, `no native confirm: ${nativeDialogs}`);
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
  const severity = await page.locator(".p-toast-message").filter({ hasText: "radius" }).first().getAttribute("class");
  check(/p-toast-message-warn/.test(severity), `a warning toast: ${severity}`);
  // The parameter node's badge shows the parser's error too.
  data.badge = await page.evaluate(async () => {
    const ext = window.app.extensions.find((e) => e.name === "wi.iteratorBadge");
    await ext.refreshNow();
    const node = window.app.graph.nodes.find((n) => n.type === "WIParameterInt" && n.widgets?.find((w) => w.name === "name")?.value === "radius");
    return node ? ext.badgeFor(node) : null;
  });
  check(data.badge?.tone === "error", `radius node badge is an error: ${JSON.stringify(data.badge)}`);
  check(/radius/.test(data.badge.lines.join(" ")) && !data.badge.lines.join(" ").includes("^"), `badge text: ${data.badge.lines}`);
  data.screenshot = await screenshot(page, "toast_param_error", { clip: ".p-toast-message" });
  const batchId = await newBatchId(page, name, known);
  const finished = await poll("the 2-cell sweep", async () => {
    const s = await http("GET", `/wi/status/${encodeURIComponent(batchId)}`);
    return ["complete", "cancelled"].includes(s.json?.state) ? s.json : null;
  });
  // The sweep still ran over the valid parameter (2 cells). Whether those cells succeed is the server's business
  // (today the skipped parameter node still executes inside each cell and fails it); recorded, not asserted.
  check(finished.counts.total === 2, `the sweep ran over the valid parameter only: ${JSON.stringify(finished.counts)}`);
  data.cellCounts = finished.counts;
  await clearToasts(page);

  // No valid value at all: nothing is queued and the tab gets an error toast carrying the server's reason.
  const before = (await http("GET", "/wi/status")).json.batches.length;
  data.refused = await queueFromPage(page, sweepPrompt({ colors: "x", radii: "y", name: "e2e_refused" }), "e2e_refused.json");
  data.refusedToast = await waitForToast(page, /Sweep not queued/);
  check(/color/.test(data.refusedToast) && /radius/.test(data.refusedToast), `the refusal names both parameters: ${data.refusedToast}`);
  check(!data.refusedToast.includes("^"), `no caret diagram in the toast: ${data.refusedToast}`);
  await screenshot(page, "toast_sweep_not_queued", { clip: ".p-toast-message" });
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

async function scenarioConsoleClean() {
  check(consoleLog.ours.length === 0, `errors from this pack:\n  ${consoleLog.ours.join("\n  ")}`);
  return { foreignErrors: consoleLog.foreign.length, ourWarnings: consoleLog.warningsOurs };
}

// ---------------------------------------------------------------------------------------------------------------

const SCENARIOS = [
  ["sweep_grid", scenarioSweepGrid],
  ["cancel", scenarioCancel],
  ["cancel_no_confirm", scenarioCancelNoConfirm],
  ["param_error", scenarioParamError],
  ["reload", scenarioReload],
  ["console_clean", scenarioConsoleClean],
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
    const context = await browser.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1 });
    context.setDefaultTimeout(20000);
    const page = await context.newPage();
    watchPage(page);
    const t0 = Date.now();
    await waitForApp(page);
    log(`app ready in ${Date.now() - t0} ms, client id ${await clientId(page)}`);
    for (const [name, run] of SCENARIOS) {
      if (ONLY.length && !ONLY.includes(name)) continue;
      const started = Date.now();
      const result = { name, ok: false, error: null, data: null, ms: 0 };
      try {
        result.data = await run(page, Object.fromEntries(results.map((r) => [r.name, r])));
        result.ok = true;
      } catch (error) {
        result.error = error instanceof AssertionError ? error.message : error.stack || String(error);
        exitCode = 1;
        await page.screenshot({ path: path.join(ARTIFACTS, `FAILED_${name}.png`) }).catch(() => {});
        result.toasts = await toastTexts(page).catch(() => []);
      }
      result.ms = Date.now() - started;
      results.push(result);
      log(`${result.ok ? "PASS" : "FAIL"} ${name} (${result.ms} ms)${result.ok ? "" : `: ${result.error}`}`);
    }
  } catch (error) {
    results.push({ name: "setup", ok: false, error: error.stack || String(error), data: null, ms: 0 });
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
