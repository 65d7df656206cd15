// The viewer page: grid, cell view, media players, A/B compare, stars and "Sweep the winners". DOM code only; the
// rules it applies live in the pure modules beside it (media, choices, compare, export), which core/viewer.py
// inlines before this one into the single viewer.html. Every string reaches the page through textContent or an
// attribute, never innerHTML: parameter values are user text.
import { cellOutputs, isPictureOutput, primaryOutput, syncedTime, valueTitle } from "./media.mjs";
import { choiceOf, choicesFileText, emptyChoices, normalizeChoices, parseChoicesFile, storageKey, toggleChoice } from "./choices.mjs";
import { blendTransfer, clampFraction, diffPixels, diffSummary, nextPick, stepWipe, wipeClip } from "./compare.mjs";
import { winnersSweep, winnersText, winnersWorkflow } from "./export.mjs";

export function startViewer(doc, win) {
  const $ = (id) => doc.getElementById(id);
  const D = JSON.parse($("wi-data").textContent);
  const axes = D.axes || [];
  const cells = D.cells || [];
  const matrix = D.mode !== "linear" && axes.length > 0;
  const byIndex = new Map(cells.map((c) => [c.index, c]));
  const byKey = new Map(cells.map((c) => [matrix ? c.coords.join(",") : String(c.index), c]));
  const hidden = axes.map((a) => a.values.map(() => false));
  const fixed = axes.map(() => 0);
  let xAxis = axes.length >= 1 ? axes.length - 1 : -1;
  let yAxis = axes.length >= 2 ? axes.length - 2 : -1;
  let visible = []; // rows of cells (or null) on screen, for keyboard moves
  let cursor = [0, 0]; // the focused grid position
  let modalAt = null; // [row, col] open in the cell view
  let pair = [null, null]; // cells picked as A and B
  let choices = emptyChoices();

  function el(tag, attrs, text) {
    const e = doc.createElement(tag);
    if (attrs) for (const k of Object.keys(attrs)) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  // ------------------------------------------------------------------ where files and the choices route are
  // Served by ComfyUI's /view the page builds /view URLs; opened as a file (or served from /wi/batch/{id}/) a
  // relative path works. Only /wi/batch/{id}/viewer.html has the choices route beside it.
  const q = new URLSearchParams(win.location.search);
  const viewMode = /\/view$/.test(win.location.pathname) && q.has("filename");
  const served = /^https?:$/.test(win.location.protocol) && /\/wi\/batch\/[A-Za-z0-9_-]+\/[^/]+$/.test(win.location.pathname);
  function url(rel) {
    if (viewMode) {
      const parts = rel.split("/");
      const name = parts.pop();
      const sub = [q.get("subfolder") || ""].concat(parts).filter((s) => s).join("/");
      return `${win.location.pathname}?filename=${encodeURIComponent(name)}&subfolder=${encodeURIComponent(sub)}` +
        `&type=${encodeURIComponent(q.get("type") || "output")}`;
    }
    return rel.split("/").map(encodeURIComponent).join("/");
  }

  function label(ai, vi) { return `${axes[ai].name}: ${axes[ai].labels[vi]}`; }
  function describe(c) {
    // Values live once, on the axis: a cell names its position on each axis (coords).
    const lines = axes.map((a, i) => { return `${a.name}: ${valueTitle(a.values[c.coords[i]])}`; });
    if (c.seed !== null && c.seed !== undefined) lines.push(`seed: ${c.seed}`);
    lines.push(`status: ${c.status}${c.error ? ` — ${c.error}` : ""}`);
    const first = primaryOutput(c);
    if (first && first.path) lines.push(`file: ${first.path}`);
    return `#${c.index}\n${lines.join("\n")}`;
  }
  function shortName(c) { return `#${c.index} ${axes.map((a, i) => a.labels[c.coords[i]]).join(" · ")}`; }

  // ------------------------------------------------------------------ media
  function mediaElement(output, c, big) {
    const alt = describe(c);
    if (output.kind === "video") {
      const v = el("video", { src: url(output.path), muted: "", loop: "", playsinline: "", preload: "metadata",
        controls: "", title: alt, "data-kind": "video" });
      v.muted = true;
      return v;
    }
    if (output.kind === "audio") {
      const box = el("div", { "class": "audio", "data-kind": "audio" });
      box.appendChild(el("span", { "class": "audio-label" }, `♪ ${shortName(c)}`));
      box.appendChild(el("audio", { src: url(output.path), controls: "", preload: "metadata", title: alt }));
      return box;
    }
    if (output.kind === "text") {
      const pre = el("pre", { "class": "text-out", "data-kind": "text", title: alt });
      if (typeof output.text === "string") pre.textContent = output.text;
      else pre.textContent = output.path;
      return pre;
    }
    return el("img", { src: url(output.path), alt, title: alt, loading: big ? "eager" : "lazy",
      "data-index": c.index, "data-kind": output.kind });
  }
  function tile(c) {
    const out = c && c.status === "done" ? primaryOutput(c) : null;
    if (out) return mediaElement(out, c, false);
    const reason = !c ? "missing" : (c.status === "done" ? "missing" : c.status);
    const ph = el("div", { "class": `ph ${reason}`, "data-status": reason });
    ph.appendChild(el("span", null, reason));
    if (c && c.error) ph.appendChild(el("small", null, c.error.length > 160 ? `${c.error.slice(0, 157)}…` : c.error));
    return ph;
  }

  // ------------------------------------------------------------------ choices: stored by the route or the browser
  const store = {
    key: storageKey(D.batch_id),
    load() {
      if (served) {
        return win.fetch("choices", { cache: "no-store" })
          .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
          .then((obj) => normalizeChoices(obj, undefined))
          .catch((err) => { say(`choices not loaded from the server: ${err.message}`); return normalizeChoices(D.choices); });
      }
      let stored = null;
      try { stored = win.localStorage.getItem(this.key); } catch (err) { stored = null; }
      return Promise.resolve(stored ? normalizeChoices(JSON.parse(stored)) : normalizeChoices(D.choices));
    },
    save(value) {
      if (served) {
        return win.fetch("choices", { method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify(value) })
          .then((r) => r.json().then((body) => {
            if (!r.ok) throw new Error(body.detail || body.error || `HTTP ${r.status}`);
            say("choices saved in batch.json");
          }))
          .catch((err) => say(`choices NOT saved: ${err.message}`));
      }
      try {
        win.localStorage.setItem(this.key, JSON.stringify(value));
        say("choices kept in this browser (export them to keep a file)");
      } catch (err) {
        say(`choices not kept: ${err.message}`);
      }
      return Promise.resolve();
    },
  };
  let saving = Promise.resolve();
  let unsaved = 0; // presses whose save has not finished; on <html data-choices-pending> for whoever waits on them
  function say(text) { $("choice-status").textContent = text; }
  function queueSave(value) { // in order: the last change wins on the server too
    unsaved += 1;
    doc.documentElement.setAttribute("data-choices-pending", String(unsaved));
    saving = saving.then(() => store.save(value)).finally(() => {
      unsaved -= 1;
      doc.documentElement.setAttribute("data-choices-pending", String(unsaved));
    });
  }
  function mark(index, what) {
    if (index === null || index === undefined || !byIndex.has(index)) return;
    choices = toggleChoice(choices, index, what);
    queueSave(choices);
    paintChoices();
  }
  function paintChoices() {
    for (const node of doc.querySelectorAll("[data-index].cell")) {
      const choice = choiceOf(choices, Number(node.getAttribute("data-index")));
      node.setAttribute("data-choice", choice || "");
    }
    $("starcount").textContent = `★ ${choices.starred.length} · ✕ ${choices.rejected.length}`;
    for (const node of doc.querySelectorAll("[data-pick]")) node.removeAttribute("data-pick");
    pair.forEach((idx, k) => {
      if (idx === null) return;
      for (const node of doc.querySelectorAll(`.cell[data-index="${idx}"]`)) node.setAttribute("data-pick", k ? "B" : "A");
    });
    if (modalAt) fillModalCaption();
  }

  // ------------------------------------------------------------------ grid
  function cellAt(coords) { return byKey.get(coords.join(",")) || null; }
  function selects() {
    for (const id of ["xsel", "ysel"]) {
      const s = $(id);
      s.textContent = "";
      s.appendChild(el("option", { value: "-1" }, "(none)"));
      axes.forEach((a, i) => s.appendChild(el("option", { value: String(i) }, a.name)));
      s.disabled = !matrix;
    }
    $("xsel").value = String(xAxis);
    $("ysel").value = String(yAxis);
    const fx = $("fixed");
    fx.textContent = "";
    if (!matrix) return;
    axes.forEach((a, i) => {
      if (i === xAxis || i === yAxis) return;
      const s = el("select", { "data-axis": String(i) });
      a.values.forEach((v, j) => { if (!hidden[i][j]) s.appendChild(el("option", { value: String(j) }, a.labels[j])); });
      if (hidden[i][fixed[i]]) { const first = hidden[i].indexOf(false); fixed[i] = first < 0 ? 0 : first; }
      s.value = String(fixed[i]);
      s.addEventListener("change", () => { fixed[i] = +s.value; render(); });
      const l = el("label", null, `${a.name} `);
      l.appendChild(s);
      fx.appendChild(l);
    });
  }
  function valuePanel() {
    const box = $("values");
    box.textContent = "";
    axes.forEach((a, i) => {
      const fs = el("fieldset");
      fs.appendChild(el("legend", null, a.name));
      a.values.forEach((v, j) => {
        const cb = el("input", { type: "checkbox", "data-axis": String(i), "data-value": String(j) });
        cb.checked = !hidden[i][j];
        cb.addEventListener("change", () => { hidden[i][j] = !cb.checked; selects(); render(); });
        const l = el("label", { title: valueTitle(v) });
        l.appendChild(cb);
        l.appendChild(doc.createTextNode(` ${a.labels[j]}`));
        fs.appendChild(l);
      });
      box.appendChild(fs);
    });
  }
  function shown(i) { if (i < 0) return [null]; const out = []; axes[i].values.forEach((v, j) => { if (!hidden[i][j]) out.push(j); }); return out; }
  function marks(c) {
    const bar = el("div", { "class": "marks" });
    const buttons = [["★", "starred", "Star (s)"], ["✕", "rejected", "Reject (x)"], ["A", "A", "Compare as A (a)"], ["B", "B", "Compare as B (b)"]];
    for (const [text, what, title] of buttons) {
      const b = el("button", { type: "button", title, "data-mark": what }, text);
      b.addEventListener("click", (e) => {
        e.stopPropagation();
        if (what === "A" || what === "B") pickAs(c.index, what); else mark(c.index, what);
      });
      bar.appendChild(b);
    }
    return bar;
  }
  function cellBox(tag, c, r, col, attrs) {
    const box = el(tag, Object.assign({ "class": "cell", tabindex: "-1", "data-row": String(r), "data-col": String(col) }, attrs || {}));
    if (c) box.setAttribute("data-index", String(c.index));
    box.appendChild(tile(c));
    if (c) box.appendChild(marks(c));
    box.addEventListener("click", (e) => {
      if (e.target.closest("video, audio")) return; // the players' own controls
      moveCursor(r, col);
      openModal(r, col);
    });
    return box;
  }
  function render() {
    const main = $("main");
    main.textContent = "";
    visible = [];
    let n = 0;
    if (!matrix) {
      const strip = el("div", { "class": "strip", id: "grid" });
      const row = [];
      cells.forEach((c) => {
        for (let i = 0; i < axes.length; i++) if (hidden[i][c.coords[i]]) return;
        const f = cellBox("figure", c, 0, row.length);
        f.appendChild(el("figcaption", null, axes.map((a, i) => label(i, c.coords[i])).join(" · ")));
        row.push(c);
        strip.appendChild(f);
        n++;
      });
      visible = [row];
      main.appendChild(strip);
    } else {
      const xs = shown(xAxis);
      const ys = shown(yAxis);
      const t = el("table", { "class": "grid", id: "grid" });
      const head = el("tr");
      head.appendChild(el("th", { "class": "corner" }, (yAxis >= 0 ? `${axes[yAxis].name} ↓ ` : "") + (xAxis >= 0 ? `${axes[xAxis].name} →` : "")));
      xs.forEach((j) => head.appendChild(el("th", { "class": "col", title: j === null ? "" : valueTitle(axes[xAxis].values[j]) }, j === null ? "" : label(xAxis, j))));
      t.appendChild(head);
      ys.forEach((yi, r) => {
        const tr = el("tr");
        const rowCells = [];
        tr.appendChild(el("th", { "class": "row", title: yi === null ? "" : valueTitle(axes[yAxis].values[yi]) }, yi === null ? "" : label(yAxis, yi)));
        xs.forEach((xi, col) => {
          const coords = fixed.slice();
          if (xAxis >= 0) coords[xAxis] = xi;
          if (yAxis >= 0) coords[yAxis] = yi;
          const c = cellAt(coords);
          tr.appendChild(cellBox("td", c, r, col, { "data-coords": coords.join(",") }));
          rowCells.push(c);
          n++;
        });
        visible.push(rowCells);
        t.appendChild(tr);
      });
      main.appendChild(t);
    }
    $("summary").textContent = `${n} shown of ${cells.length} cells`;
    paintChoices();
    paintCursor();
    syncSetup();
  }
  function cellUnderCursor() { const row = visible[cursor[0]]; return row ? row[cursor[1]] || null : null; }
  function moveCursor(r, c) {
    if (!visible.length) return;
    const rr = Math.min(Math.max(r, 0), visible.length - 1);
    const cc = Math.min(Math.max(c, 0), (visible[rr] || []).length - 1);
    cursor = [rr, Math.max(cc, 0)];
    paintCursor();
  }
  function paintCursor() {
    for (const node of doc.querySelectorAll(".cell[data-cursor]")) node.removeAttribute("data-cursor");
    const node = doc.querySelector(`.cell[data-row="${cursor[0]}"][data-col="${cursor[1]}"]`);
    if (node) { node.setAttribute("data-cursor", "1"); if (!modalAt && !compareOpen()) node.focus({ preventScroll: false }); }
  }

  // ------------------------------------------------------------------ cell view
  function openModal(r, c) {
    if (!visible.length || !visible[r] || c < 0 || c >= visible[r].length) return;
    modalAt = [r, c];
    moveCursor(r, c);
    const cell = visible[r][c];
    const body = $("mbody");
    body.textContent = "";
    const outputs = cell && cell.status === "done" ? cellOutputs(cell) : [];
    if (outputs.length) outputs.forEach((o) => body.appendChild(mediaElement(o, cell, true)));
    else body.appendChild(tile(cell));
    fillModalCaption();
    $("modal").className = "open";
  }
  function fillModalCaption() {
    const [r, c] = modalAt;
    const cell = visible[r] && visible[r][c];
    const choice = cell ? choiceOf(choices, cell.index) : null;
    $("mcap").textContent = cell ? `${choice === "starred" ? "★ starred\n" : choice === "rejected" ? "✕ rejected\n" : ""}${describe(cell)}` : "missing";
    $("modal").setAttribute("data-choice", choice || "");
  }
  function closeModal() {
    modalAt = null;
    for (const m of $("mbody").querySelectorAll("video, audio")) m.pause();
    $("modal").className = "";
    paintCursor();
  }

  // ------------------------------------------------------------------ A/B compare
  let compareMode = "wipe";
  let wipe = 0.5;
  let showB = false;
  function compareOpen() { return $("compare").className === "open"; }
  function pickAs(index, which) {
    if (which === "A") pair = [index, pair[1] === index ? null : pair[1]];
    else if (which === "B") pair = [pair[0] === index ? null : pair[0], index];
    else pair = nextPick(pair, index);
    paintChoices();
    $("cmp-open").disabled = !(pair[0] !== null && pair[1] !== null);
  }
  function picture(index) { const c = byIndex.get(index); const o = c && c.status === "done" ? primaryOutput(c) : null; return isPictureOutput(o) ? o : null; }
  function openCompare() {
    if (pair[0] === null || pair[1] === null) { say("pick two cells first: a on one, b on the other"); return; }
    const a = picture(pair[0]);
    const b = picture(pair[1]);
    if (!a || !b) { say("A/B compares two image cells"); return; }
    $("cmp-a").src = url(a.path);
    $("cmp-b").src = url(b.path);
    $("cmp-da").src = url(a.path);
    $("cmp-db").src = url(b.path);
    $("cmp-title").textContent = `A ${shortName(byIndex.get(pair[0]))}   ⇄   B ${shortName(byIndex.get(pair[1]))}`;
    $("compare").className = "open";
    setCompareMode(compareMode);
  }
  function closeCompare() { $("compare").className = ""; paintCursor(); }
  function setCompareMode(mode) {
    compareMode = mode;
    $("compare").setAttribute("data-mode", mode);
    for (const b of doc.querySelectorAll("[data-cmp-mode]")) b.setAttribute("aria-pressed", String(b.getAttribute("data-cmp-mode") === mode));
    paintCompare();
    if (mode === "diff") computeDiff();
  }
  function paintCompare() {
    $("wipe").value = String(Math.round(wipe * 1000));
    const top = $("cmp-b");
    if (compareMode === "wipe") { top.style.clipPath = wipeClip(wipe); top.style.visibility = "visible"; $("cmp-line").style.left = `${wipe * 100}%`; }
    else if (compareMode === "toggle") { top.style.clipPath = "none"; top.style.visibility = showB ? "visible" : "hidden"; }
    $("cmp-which").textContent = compareMode === "toggle" ? (showB ? "showing B" : "showing A") : (compareMode === "wipe" ? "A | B" : "");
    $("compare").setAttribute("data-showing", compareMode === "toggle" ? (showB ? "B" : "A") : "");
  }
  function loaded(img) {
    return img.complete && img.naturalWidth ? Promise.resolve(img) : new Promise((resolve, reject) => {
      img.addEventListener("load", () => resolve(img), { once: true });
      img.addEventListener("error", () => reject(new Error(`${img.src} did not load`)), { once: true });
    });
  }
  function computeDiff() {
    const threshold = Number($("thr").value);
    const amplify = Number($("amp").value);
    $("thr-v").textContent = String(threshold);
    $("amp-v").textContent = `×${amplify}`;
    const t = blendTransfer(threshold, amplify);
    for (const f of doc.querySelectorAll("#wi-diff-filter feFuncR, #wi-diff-filter feFuncG, #wi-diff-filter feFuncB")) {
      f.setAttribute("slope", String(t.slope));
      f.setAttribute("intercept", String(t.intercept));
    }
    Promise.all([loaded($("cmp-a")), loaded($("cmp-b"))]).then(([ia, ib]) => {
      const w = ia.naturalWidth;
      const h = ia.naturalHeight;
      const canvas = $("cmp-canvas");
      canvas.width = w;
      canvas.height = h;
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      let pa;
      let pb;
      try {
        ctx.clearRect(0, 0, w, h);
        ctx.drawImage(ia, 0, 0, w, h);
        pa = ctx.getImageData(0, 0, w, h).data;
        ctx.clearRect(0, 0, w, h);
        ctx.drawImage(ib, 0, 0, w, h); // B is scaled to A's size
        pb = ctx.getImageData(0, 0, w, h).data;
      } catch (err) {
        // Opened from disk, Chromium counts each file as its own origin and will not hand out the pixels: the
        // browser's own difference blend (with the same threshold/amplify as an SVG filter) shows it instead.
        $("compare").setAttribute("data-diff", "blend");
        $("diff-summary").textContent = "difference blend (pixel counts need the served viewer: /wi/batch/<id>/viewer.html)";
        return;
      }
      const result = diffPixels(pa, pb, { threshold, amplify });
      ctx.putImageData(new win.ImageData(result.data, w, h), 0, 0);
      $("compare").setAttribute("data-diff", "canvas");
      $("compare").setAttribute("data-changed", String(result.changed));
      $("diff-summary").textContent = diffSummary(result);
    }).catch((err) => { $("diff-summary").textContent = err.message; });
  }
  $("wipe").addEventListener("input", () => { wipe = clampFraction(Number($("wipe").value) / 1000); paintCompare(); });
  // Dragging over the images moves the wipe line to the pointer.
  $("cmp-stage").addEventListener("pointermove", (e) => {
    if (compareMode !== "wipe" || !(e.buttons & 1)) return;
    const box = $("cmp-stage").getBoundingClientRect();
    wipe = clampFraction((e.clientX - box.left) / box.width);
    paintCompare();
  });
  $("cmp-stage").addEventListener("pointerdown", (e) => {
    if (compareMode !== "wipe") return;
    const box = $("cmp-stage").getBoundingClientRect();
    wipe = clampFraction((e.clientX - box.left) / box.width);
    paintCompare();
  });
  for (const b of doc.querySelectorAll("[data-cmp-mode]")) b.addEventListener("click", () => setCompareMode(b.getAttribute("data-cmp-mode")));
  $("thr").addEventListener("input", computeDiff);
  $("amp").addEventListener("input", computeDiff);
  $("cmp-open").addEventListener("click", openCompare);
  $("cmp-close").addEventListener("click", closeCompare);
  $("cmp-swap").addEventListener("click", () => { pair = [pair[1], pair[0]]; paintChoices(); openCompare(); });

  // ------------------------------------------------------------------ videos in sync
  function videos() { return [...doc.querySelectorAll("#main video")]; }
  function syncSetup() { $("sync-bar").hidden = videos().length === 0; }
  function syncTo(fraction) {
    const list = videos();
    const longest = Math.max(0, ...list.map((v) => (Number.isFinite(v.duration) ? v.duration : 0)));
    for (const v of list) { if (Number.isFinite(v.duration)) v.currentTime = syncedTime(fraction, v.duration, longest); }
  }
  $("sync-play").addEventListener("click", () => {
    const list = videos();
    const playing = list.some((v) => !v.paused);
    if (playing) { list.forEach((v) => v.pause()); $("sync-play").textContent = "▶ play all"; return; }
    syncTo(Number($("sync-scrub").value) / 1000);
    list.forEach((v) => { v.muted = true; const p = v.play(); if (p && p.catch) p.catch(() => {}); });
    $("sync-play").textContent = "❚❚ pause all";
  });
  $("sync-scrub").addEventListener("input", () => { videos().forEach((v) => v.pause()); $("sync-play").textContent = "▶ play all"; syncTo(Number($("sync-scrub").value) / 1000); });

  // ------------------------------------------------------------------ Sweep the winners
  let lastSweep = null;
  function openWinners() {
    const sweep = winnersSweep(D, choices.starred);
    lastSweep = sweep;
    const box = $("win-params");
    box.textContent = "";
    if (!sweep.count) box.appendChild(el("p", null, "Star some cells first (s, or ★ on a cell)."));
    sweep.params.forEach((p) => {
      const row = el("div", { "class": "win-param", "data-param": p.name });
      row.appendChild(el("label", null, `${p.name} (${p.type})`));
      const ta = el("textarea", { readonly: "", rows: "2", "data-values-text": p.name });
      ta.value = p.text;
      row.appendChild(ta);
      const copy = el("button", { type: "button" }, "copy");
      copy.addEventListener("click", () => copyText(p.text, ta));
      row.appendChild(copy);
      box.appendChild(row);
    });
    $("win-problems").textContent = sweep.problems.join("\n");
    $("win-note").textContent = sweep.mode === "linear"
      ? `${sweep.count} starred cell(s), as a linear sweep of exactly those cells.`
      : `${sweep.count} starred cell(s): a matrix over these values holds every starred combination (and may add others).`;
    $("win-all").value = winnersText(sweep);
    const wf = winnersWorkflow(D, sweep);
    $("win-workflow").disabled = !wf;
    $("win-workflow").title = wf ? "A workflow with these values in its parameter nodes (drop it on ComfyUI)" : "this batch recorded no workflow (no PNG with metadata)";
    $("winners").className = "open";
  }
  function copyText(text, field) {
    const done = () => say("copied");
    if (win.navigator.clipboard && win.isSecureContext) win.navigator.clipboard.writeText(text).then(done, () => { field.select(); say("press Ctrl+C to copy"); });
    else { field.select(); try { doc.execCommand("copy"); done(); } catch (err) { say("press Ctrl+C to copy"); } }
  }
  function download(name, text) {
    const blob = new win.Blob([text], { type: "application/json" });
    const a = el("a", { href: win.URL.createObjectURL(blob), download: name });
    doc.body.appendChild(a);
    a.click();
    a.remove();
    win.setTimeout(() => win.URL.revokeObjectURL(a.href), 10000); // after the download has taken the blob
  }
  const baseName = String(D.batch_id || "sweep");
  $("win-open").addEventListener("click", openWinners);
  $("win-close").addEventListener("click", () => { $("winners").className = ""; paintCursor(); });
  $("win-copy").addEventListener("click", () => copyText($("win-all").value, $("win-all")));
  $("win-workflow").addEventListener("click", () => {
    const wf = lastSweep && winnersWorkflow(D, lastSweep);
    if (wf) download(`${baseName}_winners_workflow.json`, JSON.stringify(wf, null, 2));
  });
  $("ch-export").addEventListener("click", () => download(`${baseName}_choices.json`, choicesFileText(D.batch_id, choices)));
  $("ch-import").addEventListener("change", (e) => {
    const file = e.target.files && e.target.files[0];
    if (!file) return;
    file.text().then((text) => {
      choices = parseChoicesFile(text, D.batch_id, cells.length);
      queueSave(choices);
      paintChoices();
    }).catch((err) => say(`import refused: ${err.message}`));
    e.target.value = "";
  });

  // ------------------------------------------------------------------ keyboard
  doc.addEventListener("keydown", (e) => {
    // Typing fields keep their keys; a slider or checkbox keeps only the arrows (it moves itself with them).
    const t = e.target;
    const typing = t && (/^(TEXTAREA|SELECT)$/.test(t.tagName) || (t.tagName === "INPUT" && !/^(range|checkbox|button)$/.test(t.type)));
    if (typing && e.key !== "Escape") return;
    if (t && t.tagName === "INPUT" && /^Arrow/.test(e.key)) return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const k = e.key;
    if (compareOpen()) {
      if (k === "Escape") closeCompare();
      else if (k === "1" || k === "w") setCompareMode("wipe");
      else if (k === "2") setCompareMode("toggle");
      else if (k === "3" || k === "d") setCompareMode("diff");
      else if (k === " " || k === "t") { if (compareMode !== "toggle") setCompareMode("toggle"); else { showB = !showB; paintCompare(); } }
      else if (k === "ArrowLeft" || k === "ArrowRight") { if (compareMode !== "wipe") setCompareMode("wipe"); wipe = stepWipe(wipe, k === "ArrowLeft" ? -1 : 1, e.shiftKey); paintCompare(); }
      else if (k === "s" || k === "x") mark(showB && compareMode === "toggle" ? pair[1] : pair[0], k === "s" ? "starred" : "rejected");
      else return;
      e.preventDefault();
      return;
    }
    if ($("winners").className === "open") { if (k === "Escape") { $("winners").className = ""; e.preventDefault(); } return; }
    const [r, c] = modalAt || cursor;
    const here = modalAt ? (visible[r] && visible[r][c]) : cellUnderCursor();
    const go = (rr, cc) => (modalAt ? openModal(rr, cc) : moveCursor(rr, cc));
    if (k === "Escape" && modalAt) closeModal();
    else if (k === "ArrowLeft") go(r, c - 1);
    else if (k === "ArrowRight") go(r, c + 1);
    else if (k === "ArrowUp") go(r - 1, c);
    else if (k === "ArrowDown") go(r + 1, c);
    else if (k === "Enter" && !modalAt) openModal(r, c);
    else if (k === "s" && here) mark(here.index, "starred");
    else if (k === "x" && here) mark(here.index, "rejected");
    else if (k === "a" && here) pickAs(here.index, "A");
    else if (k === "b" && here) pickAs(here.index, "B");
    else if (k === "c") { if (modalAt) closeModal(); openCompare(); }
    else if (k === "w") openWinners();
    else return;
    e.preventDefault();
  });
  $("close").addEventListener("click", closeModal);
  $("modal").addEventListener("click", (e) => { if (e.target.id === "modal") closeModal(); });
  const pick = (id, isX) => {
    $(id).addEventListener("change", (e) => {
      const v = +e.target.value;
      if (isX) { if (v === yAxis) yAxis = xAxis; xAxis = v; } else { if (v === xAxis) xAxis = yAxis; yAxis = v; }
      selects();
      render();
    });
  };
  pick("xsel", true);
  pick("ysel", false);
  const size = $("size");
  const setSize = () => doc.documentElement.style.setProperty("--cell", `${size.value}px`);
  size.addEventListener("input", setSize);
  setSize();
  $("title").textContent = D.title;
  $("cmp-open").disabled = true;
  choices = normalizeChoices(D.choices);
  selects();
  valuePanel();
  render();
  store.load().then((loadedChoices) => {
    choices = loadedChoices;
    paintChoices();
    doc.documentElement.setAttribute("data-choices-ready", served ? "served" : "local");
  });
}
