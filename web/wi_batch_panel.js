// "Sweeps" panel, floating progress indicator and sweep toasts.
//
// Thin DOM layer: all state lives in lib/batch_state.mjs (a reducer fed by `wi.*` events and by GET /wi/status
// snapshots), all display text comes from lib/view_model.mjs, all HTTP goes through lib/api_client.mjs.
// State is keyed by batch_id, so several tabs and reconnects converge on the same picture.

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { createApiClient } from "./lib/api_client.mjs";
import { registerSidebarTab as registerTab, showToast as showToastCompat } from "./lib/compat.mjs";
import {
  ActionType,
  actionFromEvent,
  batchesNeedingDetail,
  createInitialState,
  elapsedSeconds,
  reduceBatches,
  runningBatches,
  sortedBatches,
} from "./lib/batch_state.mjs";
import { isTerminalBatchState } from "./lib/progress.mjs";
import { PANEL_CSS, STYLE_ELEMENT_ID } from "./lib/styles.mjs";
import {
  batchCancelledToast,
  batchFinishedToast,
  batchResumedToast,
  isForThisClient,
  paramErrorToast,
  requestFailedToast,
  sizeWarningToast,
} from "./lib/toasts.mjs";
import { batchDisplayName, batchView, indicatorView } from "./lib/view_model.mjs";
import { ChoicesSupport, choicesFailure, normaliseChoices, shouldAskChoices } from "./lib/choices.mjs";
import { debounce } from "./lib/schedule.mjs";
import {
  applyWorkerStateEvent,
  formErrorFromResponse,
  workerFormValues,
  workerRequestBody,
  workersView,
} from "./lib/workers.mjs";

const EXTENSION_NAME = "wi.batchPanel";
const TAB_ID = "wi.sweeps";
const TAB_TITLE = "Sweeps";
const TAB_ICON = "pi pi-th-large";
const SETTING_CONFIRM_CANCEL = "WI.ConfirmCancel";
const SETTING_PLACEMENT = "WI.PanelPlacement";
const SETTING_SHOW_INDICATOR = "WI.ShowIndicator";
const STATE_EVENTS = [
  "wi.batch_created",
  "wi.cell_ended",
  "wi.batch_finished",
  "wi.batch_cancelled",
  "wi.batch_expired",
  "wi.size_warning",
];
/** Running batches are re-read this often, to pick up running cells, failure messages and server timings. */
const POLL_INTERVAL_MS = 4000;
/** The worker list is re-read this often while its section is open (health also arrives as wi.worker_state). */
const WORKERS_POLL_INTERVAL_MS = 10000;
/** Elapsed time and ETA tick between events. */
const TICK_INTERVAL_MS = 1000;
const MAX_PARALLEL_DETAIL_REQUESTS = 4;
/** The pane over the graph canvas that excludes the bottom panel; the pill is positioned inside it. */
const CANVAS_PANE_SELECTOR = ".graph-canvas-panel";

const client = createApiClient(api);
let state = createInitialState();
let renderQueued = false;
const detailsInFlight = new Set();
const detailQueue = [];
/** Batches whose end this tab already announced, so `batch_cancelled` + `batch_finished` toast only once. */
const announcedEnds = new Set();
/** GET /wi/workers as last read (null: not read yet, or a server without the route). */
let workerList = null;
/** Why the server cannot use its workers file (it keeps the last good list), from the same answer; else null. */
let workersFileError = null;
/** Batches the choices route does not know (404 for that batch): not asked again. */
const choicesUnavailable = new Set();
const CHOICES_SUPPORT_KEY = "wi.choicesRoute";
/** lib/choices.mjs ChoicesSupport for this server; remembered per origin once the route answered. */
let choicesSupport = readChoicesSupport();

function readChoicesSupport() {
  try {
    return localStorage.getItem(CHOICES_SUPPORT_KEY) === ChoicesSupport.yes ? ChoicesSupport.yes : ChoicesSupport.unknown;
  } catch {
    return ChoicesSupport.unknown;
  }
}

function rememberChoicesSupport(support) {
  choicesSupport = support;
  try {
    if (support === ChoicesSupport.yes) localStorage.setItem(CHOICES_SUPPORT_KEY, support);
    else localStorage.removeItem(CHOICES_SUPPORT_KEY);
  } catch {
    // Private mode without storage: the page still learns it for its own lifetime.
  }
}

function readSetting(id, fallback) {
  try {
    const value = app.extensionManager?.setting?.get(id);
    return value === undefined || value === null ? fallback : value;
  } catch {
    return fallback;
  }
}

function showToast(message) {
  if (!showToastCompat(app.extensionManager?.toast, message)) console.warn(`[${EXTENSION_NAME}] ${message.summary}: ${message.detail}`);
}

// ---------------------------------------------------------------------------------------------------------------
// State and server synchronisation

function dispatch(action) {
  const next = reduceBatches(state, action);
  if (next === state) return;
  state = next;
  requestDetails(batchesNeedingDetail(state));
  scheduleRender();
}

function requestDetails(batchIds) {
  for (const batchId of batchIds) {
    if (detailsInFlight.has(batchId) || detailQueue.includes(batchId)) continue;
    detailQueue.push(batchId);
  }
  pumpDetailQueue();
}

function pumpDetailQueue() {
  while (detailsInFlight.size < MAX_PARALLEL_DETAIL_REQUESTS && detailQueue.length > 0) {
    const batchId = detailQueue.shift();
    detailsInFlight.add(batchId);
    fetchDetail(batchId).finally(() => {
      detailsInFlight.delete(batchId);
      pumpDetailQueue();
    });
  }
}

async function fetchDetail(batchId) {
  const requestedAt = Date.now();
  try {
    const detail = await client.getBatch(batchId);
    dispatch({ type: ActionType.statusDetail, detail: { ...detail, batch_id: detail.batch_id ?? batchId }, requestedAt, now: Date.now() });
    if (isTerminalBatchState(state.batches[batchId]?.state)) await fetchChoices(batchId);
  } catch (error) {
    if (error?.status === 404) {
      dispatch({ type: ActionType.statusMissing, batchId, now: Date.now() });
    } else {
      // Do not retry in a loop; the poll picks running batches up again.
      dispatch({ type: ActionType.detailRequested, batchId });
      console.warn(`[${EXTENSION_NAME}] could not read batch ${batchId}:`, error);
    }
  }
}

/** Stars and rejects made in the viewer (issue 17); a server without the route shows none. */
async function fetchChoices(batchId, { cue = null } = {}) {
  if (choicesUnavailable.has(batchId) || !shouldAskChoices(choicesSupport, { cue })) return;
  try {
    const choices = normaliseChoices(await client.getChoices(batchId));
    if (choicesSupport !== ChoicesSupport.yes) rememberChoicesSupport(ChoicesSupport.yes);
    dispatch({ type: ActionType.choicesLoaded, batchId, choices });
  } catch (error) {
    const failure = choicesFailure(error);
    if (failure === "absent") rememberChoicesSupport(ChoicesSupport.no);
    else if (failure === "batch") choicesUnavailable.add(batchId);
    else console.warn(`[${EXTENSION_NAME}] could not read the choices of ${batchId}:`, error);
  }
}

/** Choices change in the viewer (another tab): re-read them for the finished batches on a user's cue. */
function refreshChoices({ cue = null } = {}) {
  for (const batch of Object.values(state.batches)) {
    if (isTerminalBatchState(batch.state)) fetchChoices(batch.id, { cue });
  }
}

async function refreshWorkers() {
  try {
    const answer = await client.listWorkersWithStatus();
    workerList = answer.workers;
    workersFileError = answer.fileError;
  } catch (error) {
    // A server without the workers routes (404): the section says so instead of listing anything.
    workerList = error?.status === 404 ? null : workerList;
    if (error?.status !== 404) console.warn(`[${EXTENSION_NAME}] could not list workers:`, error);
  }
  scheduleRender();
}

const refreshWorkersSoon = debounce(() => refreshWorkers(), 300);

function onWorkerState(detail) {
  // A worker's state within one sweep (excluded, lost): that batch's card re-reads its "workers".
  if (typeof detail?.batch_id === "string" && state.batches[detail.batch_id]) requestDetails([detail.batch_id]);
  const next = applyWorkerStateEvent(workerList, detail);
  if (next !== workerList) {
    workerList = next;
    scheduleRender();
  }
  // The event carries the state only; the list's health (last seen, queue depth) is re-read shortly after.
  refreshWorkersSoon();
}

/** Re-reads everything from the server: on load, after a reconnect, and when the user asks. */
async function resync() {
  refreshWorkers();
  const requestedAt = Date.now();
  try {
    const batches = await client.listBatches();
    dispatch({ type: ActionType.statusList, batches, requestedAt, now: Date.now() });
    // Stars and rejects change in the viewer, not through events: re-read them for the finished batches.
    refreshChoices();
  } catch (error) {
    // A server without the pack's routes (404) or a transient failure: the panel stays usable from events.
    console.warn(`[${EXTENSION_NAME}] could not list batches:`, error);
  }
}

function pollRunningBatches() {
  if (document.hidden) return;
  requestDetails(runningBatches(state).map((batch) => batch.id));
}

function onStateEvent(eventName, detail) {
  const action = actionFromEvent(eventName, detail, Date.now());
  if (!action) return;
  dispatch(action);
  announceEvent(eventName, detail);
}

function announceEvent(eventName, detail) {
  const batch = state.batches[detail.batch_id];
  if (!isForThisClient(batch?.clientId, api.clientId)) return;
  if (eventName === "wi.size_warning") {
    showToast(sizeWarningToast(detail, batch));
  } else if (eventName === "wi.batch_cancelled" && !announcedEnds.has(detail.batch_id)) {
    announcedEnds.add(detail.batch_id);
    showToast(batchCancelledToast(batch, detail.removed));
  } else if (eventName === "wi.batch_finished" && batch && !announcedEnds.has(detail.batch_id)) {
    // The first batch_finished ("collecting": cells done, grid being built) is not the end yet.
    if (!isTerminalBatchState(batch.state)) return;
    announcedEnds.add(detail.batch_id);
    showToast(batchFinishedToast(batch, elapsedSeconds(batch, Date.now())));
  }
}

function onParamError(detail) {
  if (!detail || !isForThisClient(detail.client_id, api.clientId)) return;
  showToast(paramErrorToast(detail));
}

// ---------------------------------------------------------------------------------------------------------------
// Cancel

async function confirmCancel(batch) {
  if (readSetting(SETTING_CONFIRM_CANCEL, true) === false) return true;
  const name = batchDisplayName(batch);
  const message =
    `Cancel sweep "${name}"? Queued cells are removed from the queue and the running cell is interrupted. ` +
    "Finished images are kept.";
  const dialog = app.extensionManager?.dialog;
  if (typeof dialog?.confirm === "function") {
    return (await dialog.confirm({ title: "Cancel sweep", message, type: "default" })) === true;
  }
  return window.confirm(message);
}

async function cancelBatch(batchId, button) {
  const batch = state.batches[batchId];
  if (!batch || !(await confirmCancel(batch))) return;
  button.disabled = true;
  try {
    const response = await client.cancelBatch(batchId);
    dispatch({ type: ActionType.cancelAccepted, batchId, response, now: Date.now() });
  } catch (error) {
    if (error?.status === 409) {
      showToast({ severity: "info", summary: "Sweep already finished", detail: error.message, life: 4000 });
    } else {
      showToast(requestFailedToast("cancel", error));
    }
    requestDetails([batchId]);
  } finally {
    button.disabled = false;
  }
}

/** Resume re-queues the unfinished cells of a batch ComfyUI stopped under (listed as interrupted after a restart). */
async function resumeBatch(batchId, button) {
  const batch = state.batches[batchId];
  if (!batch) return;
  button.disabled = true;
  try {
    const response = await client.resumeBatch(batchId);
    dispatch({ type: ActionType.resumeAccepted, batchId, response, now: Date.now() });
    showToast(batchResumedToast(batch, response));
  } catch (error) {
    if (error?.status === 409) {
      showToast({ severity: "info", summary: "Sweep not interrupted", detail: error.message, life: 4000 });
    } else {
      showToast(requestFailedToast("resume", error));
    }
    requestDetails([batchId]);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// DOM

function element(tag, className, attributes = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function ensureStyles() {
  if (document.getElementById(STYLE_ELEMENT_ID)) return;
  const style = element("style", "", { id: STYLE_ELEMENT_ID });
  style.textContent = PANEL_CSS;
  document.head.appendChild(style);
}

/** One batch card; built once per batch and updated in place so hovering a tile keeps its tooltip. */
class BatchCard {
  constructor(batchId) {
    this.root = element("section", "wi-batch", { "data-wi-batch": batchId });
    const head = element("div", "wi-batch__head");
    this.name = element("span", "wi-batch__name", { "data-wi-name": "" });
    this.stateLabel = element("span", "wi-batch__state", { "data-wi-state-label": "" });
    this.choices = element("span", "wi-batch__choices", { "data-wi-choices": "", title: "Starred and rejected in the viewer" });
    head.append(this.name, this.choices, this.stateLabel);

    this.progress = element("div", "wi-progress", {
      role: "progressbar",
      "aria-valuemin": "0",
      "aria-valuemax": "100",
      "data-wi-progress": "",
    });
    const meta = element("div", "wi-batch__meta");
    this.progressText = element("span", "", { "data-wi-progress-text": "" });
    this.counts = element("span", "", { "data-wi-counts": "" });
    this.elapsed = element("span", "", { "data-wi-elapsed": "" });
    this.eta = element("span", "", { "data-wi-eta": "" });
    meta.append(this.progressText, this.counts, this.elapsed, this.eta);

    this.workers = element("div", "wi-batch__workers", { "data-wi-batch-workers": "" });
    this.workersSignature = "";
    this.tiles = element("div", "wi-tiles", { "data-wi-tiles": "" });
    this.tileSignature = "";
    this.warnings = element("ul", "wi-batch__warnings", { "data-wi-warnings": "" });
    this.grid = element("div", "wi-batch__grid", { "data-wi-grid": "" });

    const actions = element("div", "wi-batch__actions");
    this.cancelButton = element("button", "wi-button wi-button--danger", { type: "button", "data-wi-cancel": batchId });
    this.cancelButton.textContent = "Cancel";
    this.cancelButton.addEventListener("click", () => cancelBatch(batchId, this.cancelButton));
    this.resumeButton = element("button", "wi-button", { type: "button", "data-wi-resume": batchId });
    this.resumeButton.textContent = "Resume";
    this.resumeButton.title = "Queue the cells that did not finish before ComfyUI stopped (same values and seeds)";
    this.resumeButton.addEventListener("click", () => resumeBatch(batchId, this.resumeButton));
    this.viewerLink = element("a", "", { "data-wi-viewer": "", target: "_blank", rel: "noopener" });
    this.viewerLink.textContent = "Open HTML viewer";
    this.dismissButton = element("button", "wi-button", { type: "button", "data-wi-dismiss": batchId });
    this.dismissButton.textContent = "Dismiss";
    this.dismissButton.title = "Remove from this list (files stay on disk)";
    this.dismissButton.addEventListener("click", () => dispatch({ type: ActionType.dismiss, batchId }));
    actions.append(this.resumeButton, this.cancelButton, this.viewerLink, this.dismissButton);

    this.root.append(head, this.progress, meta, this.workers, this.tiles, this.warnings, this.grid, actions);
  }

  update(view) {
    this.root.setAttribute("data-wi-state", view.state);
    setText(this.name, view.name);
    this.name.title = view.mode ? `${view.name} (${view.mode})` : view.name;
    setText(this.stateLabel, view.stateLabel);
    setText(this.choices, view.choicesText);
    this.choices.hidden = !view.choicesText;

    this.progress.setAttribute("aria-valuenow", String(view.percent));
    this.progress.title = view.countsText;
    this.progress.replaceChildren(
      ...view.segments.map((segment) => {
        const bar = element("div", `wi-progress__segment wi-progress__segment--${segment.kind}`, {
          "data-wi-segment": segment.kind,
        });
        bar.style.width = `${(segment.fraction * 100).toFixed(2)}%`;
        return bar;
      }),
    );
    setText(this.progressText, view.progressText);
    setText(this.counts, view.countsText);
    setText(this.elapsed, `elapsed ${view.elapsedText}`);
    setText(this.eta, view.etaText === null ? "" : `ETA ${view.etaText}`);
    this.eta.hidden = view.etaText === null;

    this.updateWorkers(view.workers);
    this.updateTiles(view);
    this.updateWarnings(view.warnings);
    this.updateGrid(view);

    this.cancelButton.hidden = !view.canCancel;
    this.resumeButton.hidden = !view.canResume;
    this.dismissButton.hidden = !view.isFinished;
    this.viewerLink.hidden = !view.viewerUrl;
    if (view.viewerUrl && this.viewerLink.getAttribute("href") !== view.viewerUrl) this.viewerLink.href = view.viewerUrl;
  }

  updateTiles(view) {
    const signature = view.tiles.map((tile) => `${tile.className}:${tile.badge}:${tile.title}`).join("|") + `#${view.hiddenTileCount}`;
    if (signature === this.tileSignature) return;
    this.tileSignature = signature;
    const tiles = view.tiles.map((tile) => {
      const node = element("span", tile.className, { "data-wi-cell": String(tile.index), "data-wi-cell-status": tile.status });
      node.title = tile.title;
      if (tile.worker) node.setAttribute("data-wi-cell-worker", tile.worker);
      if (tile.badge) node.setAttribute("data-wi-badge", tile.badge);
      if (tile.choice) node.setAttribute("data-wi-cell-choice", tile.choice);
      return node;
    });
    if (view.hiddenTileCount > 0) {
      const more = element("span", "wi-tiles__more");
      more.textContent = `+${view.hiddenTileCount} more`;
      tiles.push(more);
    }
    this.tiles.replaceChildren(...tiles);
  }

  /** One chip per worker of this batch (state, cells done); hidden when the batch has no workers. */
  updateWorkers(workers) {
    const signature = JSON.stringify(workers);
    if (signature === this.workersSignature) return;
    this.workersSignature = signature;
    this.workers.hidden = !workers;
    this.workers.replaceChildren(
      ...(workers ?? []).map((worker) => {
        const chip = element("span", worker.className, { "data-wi-batch-worker": worker.id, "data-wi-worker-state": worker.state });
        chip.title = worker.title;
        chip.textContent = `${worker.name} · ${worker.stateLabel} · ${worker.countsText}`;
        return chip;
      }),
    );
  }

  updateWarnings(warnings) {
    const signature = warnings.join("\n");
    if (this.warnings.dataset.signature === signature) return;
    this.warnings.dataset.signature = signature;
    this.warnings.replaceChildren(
      ...warnings.map((warning) => {
        const item = element("li");
        item.textContent = warning;
        return item;
      }),
    );
  }

  updateGrid(view) {
    this.grid.hidden = !view.gridUrl;
    if (!view.gridUrl) {
      this.grid.replaceChildren();
      return;
    }
    const current = this.grid.querySelector("img");
    if (current && current.dataset.src === view.gridUrl) return;
    const link = element("a", "", { href: view.gridUrl, target: "_blank", rel: "noopener", title: "Open the full grid" });
    const image = element("img", "", { "data-wi-grid-img": "", alt: `Grid of ${view.name}`, loading: "lazy" });
    image.dataset.src = view.gridUrl;
    image.src = view.gridUrl;
    link.append(image);
    this.grid.replaceChildren(link);
  }
}

/**
 * The "Workers" section at the top of the panel (issue 14): the ComfyUI servers sweeps may run on, with their
 * state and health; add, edit, delete. Plain DOM inside the panel (no dialog API), so it works the same on every
 * frontend and with either node renderer. Collapsed by default; its summary says how many are available.
 */
class WorkersSection {
  constructor() {
    this.root = element("details", "wi-workers", { "data-wi-workers": "" });
    this.summary = element("summary", "wi-workers__summary", { "data-wi-workers-summary": "" });
    this.list = element("div", "wi-workers__list", { "data-wi-workers-list": "" });
    this.unavailable = element("div", "wi-workers__note", { "data-wi-workers-unavailable": "" });
    this.unavailable.textContent = "This server does not list workers.";
    this.fileError = element("div", "wi-worker-form__error", { "data-wi-workers-file-error": "" });
    const actions = element("div", "wi-batch__actions");
    this.addButton = element("button", "wi-button", { type: "button", "data-wi-worker-add": "" });
    this.addButton.textContent = "Add worker";
    this.addButton.title = "Another ComfyUI server (same models and custom nodes) that sweeps may send cells to";
    this.addButton.addEventListener("click", () => this.openForm(null));
    actions.append(this.addButton);
    this.form = this.buildForm();
    this.root.append(this.summary, this.unavailable, this.fileError, this.list, this.form.root, actions);
    this.root.addEventListener("toggle", () => {
      if (this.root.open) refreshWorkers();
    });
    this.rows = new Map();
    this.pendingDelete = null;
  }

  buildForm() {
    const root = element("form", "wi-worker-form", { "data-wi-worker-form": "", novalidate: "" });
    root.hidden = true;
    const field = (label, input, hint = "") => {
      const wrap = element("label", "wi-worker-form__field");
      const text = element("span", "wi-worker-form__label");
      text.textContent = label;
      wrap.append(text, input);
      if (hint) wrap.title = hint;
      return wrap;
    };
    const input = (name, attributes = {}) => element("input", "wi-worker-form__input", { name, "data-wi-worker-field": name, ...attributes });
    const inputs = {
      url: input("url", { type: "text", placeholder: "http://192.168.1.20:8188", autocomplete: "off", spellcheck: "false" }),
      name: input("name", { type: "text", placeholder: "optional", autocomplete: "off" }),
      auth_header: input("auth_header", { type: "password", placeholder: "Authorization: Bearer …", autocomplete: "off" }),
      weight: input("weight", { type: "number", min: "0.1", step: "0.1" }),
      enabled: input("enabled", { type: "checkbox" }),
      clear_auth: input("clear_auth", { type: "checkbox" }),
    };
    const urlField = field("URL", inputs.url, "The worker's address as its browser would open it");
    const authField = field("Auth header", inputs.auth_header, "Sent with every request to this worker; never shown again once saved");
    const clearAuthField = field("Remove the saved auth header", inputs.clear_auth);
    const error = element("div", "wi-worker-form__error", { "data-wi-worker-error": "", role: "alert" });
    const buttons = element("div", "wi-batch__actions");
    const save = element("button", "wi-button", { type: "submit", "data-wi-worker-save": "" });
    save.textContent = "Save";
    const cancel = element("button", "wi-button", { type: "button", "data-wi-worker-cancel": "" });
    cancel.textContent = "Cancel";
    buttons.append(save, cancel);
    root.append(urlField, field("Name", inputs.name), authField, clearAuthField,
      field("Weight", inputs.weight, "Share of the cells relative to the other workers"), field("Enabled", inputs.enabled), error, buttons);
    root.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    // Keys typed here are the form's, not the canvas's shortcuts.
    root.addEventListener("keydown", (event) => event.stopPropagation());
    cancel.addEventListener("click", () => this.closeForm());
    return { root, inputs, urlField, authField, clearAuthField, error, save, values: null };
  }

  openForm(worker) {
    const values = workerFormValues(worker);
    const { inputs } = this.form;
    this.form.values = values;
    inputs.url.value = values.url;
    inputs.name.value = values.name;
    inputs.auth_header.value = "";
    inputs.auth_header.placeholder = values.hasAuth ? "(saved; kept unless the URL changes)" : "Authorization: Bearer …";
    inputs.weight.value = values.weight;
    inputs.enabled.checked = values.enabled;
    inputs.clear_auth.checked = false;
    this.form.urlField.hidden = values.local;
    this.form.authField.hidden = values.local;
    this.form.clearAuthField.hidden = values.local || !values.hasAuth;
    this.form.root.setAttribute("data-wi-editing", values.id ?? "");
    this.showError(null);
    this.form.root.hidden = false;
    this.addButton.hidden = true;
    this.root.open = true;
    (values.local ? inputs.name : inputs.url).focus();
  }

  closeForm() {
    this.form.root.hidden = true;
    this.form.values = null;
    this.addButton.hidden = false;
  }

  showError(problem) {
    const { error, inputs } = this.form;
    for (const input of Object.values(inputs)) input.removeAttribute("aria-invalid");
    error.textContent = problem ? problem.message : "";
    error.hidden = !problem;
    if (problem?.field && inputs[problem.field]) inputs[problem.field].setAttribute("aria-invalid", "true");
  }

  async submit() {
    const { inputs, values } = this.form;
    if (!values) return;
    const built = workerRequestBody({
      ...values,
      url: inputs.url.value,
      name: inputs.name.value,
      authHeader: inputs.auth_header.value,
      clearAuth: inputs.clear_auth.checked,
      weight: inputs.weight.value,
      enabled: inputs.enabled.checked,
    });
    if (built.error) {
      this.showError({ message: built.error, field: built.field });
      return;
    }
    this.form.save.disabled = true;
    try {
      await client.saveWorker(built.body);
      this.closeForm();
      await refreshWorkers();
    } catch (error) {
      this.showError(formErrorFromResponse(error));
    } finally {
      this.form.save.disabled = false;
    }
  }

  /** Two clicks delete: the first turns the button into "Confirm delete" for a few seconds. */
  async requestDelete(workerId, button) {
    if (this.pendingDelete !== workerId) {
      this.pendingDelete = workerId;
      button.textContent = "Confirm delete";
      button.setAttribute("data-wi-confirm", "");
      setTimeout(() => {
        if (this.pendingDelete !== workerId) return;
        this.pendingDelete = null;
        button.textContent = "Delete";
        button.removeAttribute("data-wi-confirm");
      }, 5000);
      return;
    }
    this.pendingDelete = null;
    button.disabled = true;
    try {
      await client.deleteWorker(workerId);
    } catch (error) {
      showToast(requestFailedToast("delete worker", error));
    }
    await refreshWorkers();
  }

  row(workerId) {
    let row = this.rows.get(workerId);
    if (row) return row;
    const root = element("div", "wi-worker", { "data-wi-worker": workerId });
    const dot = element("span", "wi-worker__dot");
    const text = element("div", "wi-worker__text");
    const name = element("span", "wi-worker__name", { "data-wi-worker-name": "" });
    const line = element("span", "wi-worker__line", { "data-wi-worker-line": "" });
    text.append(name, line);
    const state = element("span", "wi-worker__state", { "data-wi-worker-state-label": "" });
    const edit = element("button", "wi-button", { type: "button", "data-wi-worker-edit": workerId });
    edit.textContent = "Edit";
    const remove = element("button", "wi-button wi-button--danger", { type: "button", "data-wi-worker-delete": workerId });
    remove.textContent = "Delete";
    edit.addEventListener("click", () => this.openForm((workerList ?? []).find((w) => w.id === workerId) ?? null));
    remove.addEventListener("click", () => this.requestDelete(workerId, remove));
    root.append(dot, text, state, edit, remove);
    row = { root, name, line, state, remove };
    this.rows.set(workerId, row);
    return row;
  }

  render(now) {
    const available = workerList !== null;
    this.unavailable.hidden = available;
    this.addButton.disabled = !available;
    setText(this.fileError, workersFileError ? `The workers file cannot be used (fix or delete it): ${workersFileError}` : "");
    this.fileError.hidden = !workersFileError;
    const view = workersView(workerList ?? [], now);
    setText(this.summary, available ? `Workers · ${view.summary}` : "Workers");
    const wanted = new Set(view.rows.map((row) => row.id));
    for (const [workerId, row] of this.rows) {
      if (!wanted.has(workerId)) {
        row.root.remove();
        this.rows.delete(workerId);
      }
    }
    view.rows.forEach((item, position) => {
      const row = this.row(item.id);
      row.root.className = item.className;
      row.root.setAttribute("data-wi-worker-state", item.state);
      setText(row.name, item.name);
      const parts = [item.url, item.detail, item.lastSeen, item.weight !== 1 ? `weight ${item.weight}` : "", item.hasAuth ? "auth" : ""];
      const line = parts.filter(Boolean).join(" · ");
      setText(row.line, line);
      row.line.title = line;
      setText(row.state, item.stateLabel);
      row.remove.hidden = !item.canDelete;
      if (this.list.children[position] !== row.root) this.list.insertBefore(row.root, this.list.children[position] ?? null);
    });
  }
}

class SweepsPanel {
  constructor() {
    this.root = element("div", "wi-panel", { id: "wi-panel", "data-wi-panel": "" });
    const header = element("div", "wi-panel__header");
    const title = element("span", "wi-panel__title");
    title.textContent = TAB_TITLE;
    const buttons = element("div", "wi-batch__actions");
    const refresh = element("button", "wi-button", { type: "button", "data-wi-refresh": "", title: "Re-read from the server" });
    refresh.textContent = "Refresh";
    refresh.addEventListener("click", () => resync().then(() => refreshChoices({ cue: "refresh" })));
    this.clearButton = element("button", "wi-button", { type: "button", "data-wi-clear-finished": "" });
    this.clearButton.textContent = "Clear finished";
    this.clearButton.addEventListener("click", () => dispatch({ type: ActionType.clearFinished }));
    buttons.append(refresh, this.clearButton);
    header.append(title, buttons);
    this.empty = element("div", "wi-panel__empty", { "data-wi-empty": "" });
    this.empty.textContent = "No sweeps yet. Queue a workflow with an enabled Workflow Iterator node to start one.";
    this.list = element("div", "wi-panel__list", { "data-wi-batches": "" });
    this.workers = new WorkersSection();
    this.root.append(header, this.workers.root, this.empty, this.list);
    this.cards = new Map();
    this.mounted = false;
  }

  /** The frontend may call render(el) again on re-render; re-attaching the same root keeps it idempotent. */
  mount(container) {
    ensureStyles();
    container.classList?.add("wi-panel-host");
    if (this.root.parentElement !== container) container.replaceChildren(this.root);
    this.mounted = true;
    this.render(Date.now());
  }

  unmount() {
    this.mounted = false;
  }

  render(now) {
    if (!this.mounted) return;
    this.workers.render(now);
    const batches = sortedBatches(state);
    this.empty.hidden = batches.length > 0;
    this.clearButton.disabled = !batches.some((batch) => isTerminalBatchState(batch.state));
    const wanted = new Set(batches.map((batch) => batch.id));
    for (const [batchId, card] of this.cards) {
      if (!wanted.has(batchId)) {
        card.root.remove();
        this.cards.delete(batchId);
      }
    }
    batches.forEach((batch, position) => {
      let card = this.cards.get(batch.id);
      if (!card) {
        card = new BatchCard(batch.id);
        this.cards.set(batch.id, card);
      }
      card.update(batchView(batch, now, { fileUrl: (file) => client.fileUrl(file), workerList }));
      if (this.list.children[position] !== card.root) this.list.insertBefore(card.root, this.list.children[position] ?? null);
    });
  }
}

class ProgressIndicator {
  constructor(onOpen) {
    this.root = element("div", "", {
      id: "wi-indicator",
      role: "button",
      tabindex: "0",
      "data-wi-indicator": "",
      "aria-label": "Sweep progress; opens the Sweeps panel",
    });
    this.text = element("span", "", { "data-wi-indicator-text": "" });
    const bar = element("span", "wi-indicator__bar");
    this.fill = element("span", "wi-indicator__fill");
    this.fill.style.display = "block";
    bar.append(this.fill);
    this.root.append(this.text, bar);
    this.root.hidden = true;
    this.root.addEventListener("click", onOpen);
    this.root.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        onOpen();
      }
    });
  }

  /**
   * Inside the canvas pane (.graph-canvas-panel, the area above an open bottom panel, on 1.27 to 1.58) when the
   * frontend has one, else fixed to the window. Re-checked on each render: the frontend may rebuild that pane.
   */
  attach() {
    ensureStyles();
    const host = document.querySelector(CANVAS_PANE_SELECTOR) ?? document.body;
    if (this.root.parentElement === host) return;
    this.root.classList.toggle("wi-indicator--in-canvas", host !== document.body);
    host.appendChild(this.root);
  }

  render(now) {
    this.attach();
    const view = indicatorView(state, now);
    const enabled = readSetting(SETTING_SHOW_INDICATOR, true) !== false;
    this.root.hidden = !enabled || !view.visible;
    if (this.root.hidden) return;
    setText(this.text, view.text);
    this.root.title = view.title;
    const [ended, total] = view.progressText.split("/").map(Number);
    this.fill.style.width = `${total > 0 ? Math.round((ended / total) * 100) : 0}%`;
  }
}

// Built on first use rather than at import, so loading this module touches no DOM.
let panel = null;
let indicator = null;

function getPanel() {
  panel ??= new SweepsPanel();
  return panel;
}

function getIndicator() {
  indicator ??= new ProgressIndicator(openPanel);
  return indicator;
}

function scheduleRender() {
  if (renderQueued || typeof requestAnimationFrame !== "function") return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    const now = Date.now();
    panel?.render(now);
    indicator?.render(now);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Placement

// Declarative tabs are read when the extension registers, before our own setting is registered; the stored value
// is already loaded then, so the choice is made here once. Changing it takes effect after a page reload.
const placement = readSetting(SETTING_PLACEMENT, "sidebar") === "bottom" ? "bottom" : "sidebar";

const panelTab = {
  id: TAB_ID,
  icon: TAB_ICON,
  title: TAB_TITLE,
  tooltip: "Parameter sweeps: progress, cancel and grids",
  type: "custom",
  render: (container) => getPanel().mount(container),
  destroy: () => panel?.unmount(),
};

async function executeCommand(commandId) {
  const command = app.extensionManager?.command;
  if (typeof command?.execute !== "function") return false;
  try {
    await command.execute(commandId);
    return true;
  } catch (error) {
    console.warn(`[${EXTENSION_NAME}] could not run ${commandId}:`, error);
    return false;
  }
}

/** Opens (never toggles closed) the panel, wherever it lives. */
async function openPanel() {
  const manager = app.extensionManager;
  if (placement === "bottom") {
    const bottomPanel = manager?.bottomPanel;
    const isOpen = bottomPanel?.bottomPanelVisible && bottomPanel?.activeBottomPanelTabId === TAB_ID;
    if (!isOpen) await executeCommand(`Workspace.ToggleBottomPanelTab.${TAB_ID}`);
    return;
  }
  const sidebar = manager?.sidebarTab;
  if (sidebar?.activeSidebarTabId === TAB_ID) return;
  if (!(await executeCommand(`Workspace.ToggleSidebarTab.${TAB_ID}`)) && typeof sidebar?.toggleSidebarTab === "function") {
    sidebar.toggleSidebarTab(TAB_ID);
  }
}

function registerSidebarTab() {
  if (!registerTab(app.extensionManager, panelTab)) {
    console.warn(`[${EXTENSION_NAME}] this frontend has no sidebar tab API; the Sweeps panel is unavailable`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Registration

/**
 * The pack's websocket events are listened to from the moment this module is imported, not from setup(): the
 * frontend opens its socket (app.setup → api.init) before it calls the extensions' setup, and awaits /object_info
 * in between, so a broadcast such as wi.worker_state could arrive with no listener and be reported as
 * "Unknown message type" (an error on 1.58.1, a warning on older frontends). The handlers only update state;
 * setup()'s resync re-reads it all.
 */
function listenToServerEvents() {
  for (const eventName of STATE_EVENTS) {
    api.addEventListener(eventName, (event) => onStateEvent(eventName, event.detail));
  }
  api.addEventListener("wi.param_error", (event) => onParamError(event.detail));
  api.addEventListener("wi.worker_state", (event) => onWorkerState(event.detail));
}

listenToServerEvents();

app.registerExtension({
  name: EXTENSION_NAME,
  settings: [
    {
      id: SETTING_CONFIRM_CANCEL,
      category: ["Workflow Iterator", "Sweeps", "Confirm cancel"],
      name: "Ask for confirmation before cancelling a sweep",
      type: "boolean",
      defaultValue: true,
    },
    {
      id: SETTING_PLACEMENT,
      category: ["Workflow Iterator", "Sweeps", "Panel placement"],
      name: "Sweeps panel placement (reload the page to apply)",
      tooltip: "Sidebar tab or bottom panel tab. The frontend reads tab placement at start-up, so a change applies after a page reload.",
      type: "combo",
      options: ["sidebar", "bottom"],
      defaultValue: "sidebar",
    },
    {
      id: SETTING_SHOW_INDICATOR,
      category: ["Workflow Iterator", "Sweeps", "Show indicator"],
      name: "Show a floating progress pill while a sweep runs",
      type: "boolean",
      defaultValue: true,
      onChange: () => scheduleRender(),
    },
  ],
  ...(placement === "bottom" ? { bottomPanelTabs: [panelTab] } : {}),

  /** For end-to-end tests and debugging: the batches as this tab sees them, running first. */
  getBatches() {
    return sortedBatches(state);
  },

  /** Re-reads every batch from the server, as on page load. */
  resync,

  /** For end-to-end tests: the worker list as this tab last read it (GET /wi/workers). */
  getWorkers() {
    return workerList;
  },

  async setup() {
    // Back from the viewer's tab, where stars are made: the choices may have changed.
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) refreshChoices({ cue: "visible" });
    });
    api.addEventListener("reconnected", () => resync());

    if (placement === "sidebar") registerSidebarTab();
    getIndicator().attach();

    setInterval(pollRunningBatches, POLL_INTERVAL_MS);
    setInterval(() => {
      if (!document.hidden && panel?.mounted && panel.workers.root.open) refreshWorkers();
    }, WORKERS_POLL_INTERVAL_MS);
    setInterval(() => {
      if (runningBatches(state).length > 0) scheduleRender();
    }, TICK_INTERVAL_MS);

    await resync();
    scheduleRender();
  },
});
