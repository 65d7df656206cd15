// The one place this pack talks HTTP. It takes ComfyUI's `api` object (anything with fetchApi(route, init))
// instead of importing it, so it runs under Node with a recorded fake.
//
// api.fetchApi prefixes "/api", so routes here are written without it ("/wi/status" -> "/api/wi/status").

export class WIApiError extends Error {
  constructor(message, { status = 0, error = "", detail = "", route = "", field = null } = {}) {
    super(message);
    this.name = "WIApiError";
    this.status = status;
    this.error = error;
    this.detail = detail;
    this.route = route;
    /** The input a 400 names (POST /wi/workers answers {"error", "detail", "field"}), else null. */
    this.field = field;
  }
}

const JSON_HEADERS = Object.freeze({ "Content-Type": "application/json" });

export function buildListRequest() {
  return { route: "/wi/status", init: { method: "GET" } };
}

export function buildDetailRequest(batchId) {
  return { route: `/wi/status/${encodeURIComponent(batchId)}`, init: { method: "GET" } };
}

export function buildCancelRequest(batchId) {
  return { route: `/wi/cancel_batch/${encodeURIComponent(batchId)}`, init: { method: "POST" } };
}

export function buildWorkersRequest() {
  return { route: "/wi/workers", init: { method: "GET" } };
}

/** POST /wi/workers: `body` without `id` adds a worker, with `id` changes it (lib/workers.mjs workerRequestBody). */
export function buildSaveWorkerRequest(body) {
  return { route: "/wi/workers", init: { method: "POST", headers: { ...JSON_HEADERS }, body: JSON.stringify(body) } };
}

export function buildDeleteWorkerRequest(workerId) {
  return { route: `/wi/workers/${encodeURIComponent(workerId)}`, init: { method: "DELETE" } };
}

export function buildChoicesRequest(batchId) {
  return { route: `/wi/batch/${encodeURIComponent(batchId)}/choices`, init: { method: "GET" } };
}

export function buildResumeRequest(batchId) {
  return { route: `/wi/resume/${encodeURIComponent(batchId)}`, init: { method: "POST" } };
}

/**
 * Body of POST /wi/preview. Parameters are sent exactly as typed so the server applies its own parsing rules.
 * `node_id` is echoed back in the server's errors, which ties each error to its node even when names repeat;
 * `options` (a COMBO's allowed choices), `unequal_lengths` and `image_size` are sent only when known.
 */
export function buildPreviewBody({ parameters, mode, imageSize, unequalLengths, skip }) {
  const body = {
    parameters: (parameters ?? []).map((parameter) => {
      const item = {
        name: String(parameter.name ?? ""),
        type: String(parameter.type ?? "STRING"),
        values: String(parameter.values ?? ""),
      };
      if (parameter.nodeId !== undefined && parameter.nodeId !== null) item.node_id = String(parameter.nodeId);
      if (Array.isArray(parameter.options)) item.options = parameter.options.map(String);
      // Issue 16: link groups, bundle targets and search/replace target texts plan like the Queue press.
      if (parameter.link) item.link = String(parameter.link);
      if (parameter.target) item.target = String(parameter.target);
      if (Array.isArray(parameter.texts)) item.texts = parameter.texts.map(String);
      return item;
    }),
    mode: mode === "linear" ? "linear" : "matrix",
  };
  if (unequalLengths === "cycle" || unequalLengths === "error") body.unequal_lengths = unequalLengths;
  if (typeof skip === "string" && skip.trim()) body.skip = skip;
  if (Array.isArray(imageSize) && imageSize.length === 2 && imageSize.every((n) => Number.isFinite(n) && n > 0)) {
    body.image_size = [Math.round(imageSize[0]), Math.round(imageSize[1])];
  }
  return body;
}

export function buildPreviewRequest(preview, { signal } = {}) {
  const init = { method: "POST", headers: { ...JSON_HEADERS }, body: JSON.stringify(buildPreviewBody(preview)) };
  if (signal) init.signal = signal;
  return { route: "/wi/preview", init };
}

/**
 * Route (without the /api prefix) that serves an output file; also used for the grid and the HTML viewer.
 * A ref carrying its own pack route (the viewer: /wi/batch/{id}/viewer.html, served as a page rather than a
 * download) uses it.
 */
export function buildViewRoute(file) {
  if (typeof file?.route === "string" && file.route.startsWith("/wi/")) return file.route;
  const params = new URLSearchParams({
    filename: String(file?.filename ?? ""),
    subfolder: String(file?.subfolder ?? ""),
    type: String(file?.type || "output"),
  });
  return `/view?${params.toString()}`;
}

async function readJson(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

async function send(api, { route, init }) {
  const response = await api.fetchApi(route, init);
  const payload = await readJson(response);
  if (!response.ok) {
    const error = payload && typeof payload === "object" ? String(payload.error ?? "") : "";
    const detail = payload && typeof payload === "object" ? String(payload.detail ?? "") : "";
    const field = payload && typeof payload === "object" && typeof payload.field === "string" ? payload.field : null;
    const reason = [error, detail].filter(Boolean).join(": ") || `HTTP ${response.status}`;
    throw new WIApiError(reason, { status: response.status, error, detail, route, field });
  }
  if (payload === null) throw new WIApiError("empty or invalid JSON response", { status: response.status, route });
  return payload;
}

export function createApiClient(api) {
  return {
    /** GET /wi/status -> [summary, ...] */
    async listBatches() {
      const payload = await send(api, buildListRequest());
      return Array.isArray(payload.batches) ? payload.batches : [];
    },
    /** GET /wi/status/{id} -> detail; throws WIApiError with status 404 for unknown batches. */
    getBatch(batchId) {
      return send(api, buildDetailRequest(batchId));
    },
    /** POST /wi/cancel_batch/{id}; 409 when the batch already finished. */
    cancelBatch(batchId) {
      return send(api, buildCancelRequest(batchId));
    },
    /** POST /wi/resume/{id} -> {batch_id, state, queued, already_saved}; 409 unless the batch is interrupted. */
    resumeBatch(batchId) {
      return send(api, buildResumeRequest(batchId));
    },
    /** GET /wi/workers -> [worker entry, ...] (the local server first). */
    async listWorkers() {
      return (await this.listWorkersWithStatus()).workers;
    },
    /** GET /wi/workers -> {workers, fileError}: fileError says why the server cannot use its workers file. */
    async listWorkersWithStatus() {
      const payload = await send(api, buildWorkersRequest());
      return {
        workers: Array.isArray(payload.workers) ? payload.workers : [],
        fileError: typeof payload.file_error === "string" && payload.file_error ? payload.file_error : null,
      };
    },
    /** POST /wi/workers -> the saved entry; 400 names the bad field (error.field), 404 for an unknown id. */
    saveWorker(body) {
      return send(api, buildSaveWorkerRequest(body));
    },
    /** DELETE /wi/workers/{id} -> {deleted}. */
    deleteWorker(workerId) {
      return send(api, buildDeleteWorkerRequest(workerId));
    },
    /** GET /wi/batch/{id}/choices -> {starred, rejected}; 404 when the server has no such route (or batch). */
    getChoices(batchId) {
      return send(api, buildChoicesRequest(batchId));
    },
    /** POST /wi/preview -> {count, axes, errors, grid}. */
    preview(preview, options) {
      return send(api, buildPreviewRequest(preview, options));
    },
    /** Absolute URL of an output file, honouring a non-root deployment when api.apiURL exists. */
    fileUrl(file) {
      const route = buildViewRoute(file);
      return typeof api.apiURL === "function" ? api.apiURL(route) : `/api${route}`;
    },
  };
}
