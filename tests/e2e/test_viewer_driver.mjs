// Drives viewer.html pages in a real headless Chromium (playwright-core) and writes what it saw as JSON; the
// assertions are in test_viewer_browser.py. Run by it: node test_viewer_driver.mjs <config.json>
//
// config: {chromium, out_dir, pages: [{name, url, kind: "sweep" | "media"}]}
// A "sweep" page is a 2 x 2 matrix whose row 0 holds two cells with identical pixels (cells 0 and 1) and whose
// cell 2 (row 1, column 0) differs from cell 0.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { chromium } from "playwright-core";

const config = JSON.parse(readFileSync(process.argv[2], "utf-8"));

// Page errors, console errors and failed loads, except the browser's own favicon request (the page has none).
function watch(page, errors) {
  page.on("pageerror", (err) => errors.push(`pageerror: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error" && !/^Failed to load resource/.test(msg.text())) errors.push(`console: ${msg.text()}`);
  });
  page.on("response", (r) => { if (r.status() >= 400 && !/\/favicon\.ico$/.test(r.url())) errors.push(`HTTP ${r.status()} ${r.url()}`); });
  page.on("requestfailed", (r) => { if (!/\/favicon\.ico$/.test(r.url())) errors.push(`failed ${r.url()}`); });
}

async function ready(page) {
  await page.waitForSelector("html[data-choices-ready]", { timeout: 20000 });
}

async function choicesOnScreen(page) {
  return page.evaluate(() => Object.fromEntries([...document.querySelectorAll(".cell[data-index]")]
    .map((n) => [n.getAttribute("data-index"), n.getAttribute("data-choice") || ""])));
}

async function press(page, ...keys) {
  for (const key of keys) await page.keyboard.press(key);
}

async function diffFacts(page, name) {
  await page.evaluate(() => { const c = document.getElementById("compare"); c.removeAttribute("data-diff"); c.removeAttribute("data-changed"); });
  await press(page, "3");
  await page.waitForSelector("#compare[data-diff]", { timeout: 15000 });
  const facts = await page.evaluate(() => {
    const c = document.getElementById("compare");
    return { mode: c.getAttribute("data-diff"), changed: c.getAttribute("data-changed"),
      summary: document.getElementById("diff-summary").textContent };
  });
  const target = facts.mode === "canvas" ? "#cmp-canvas" : "#cmp-blend";
  facts.screenshot = join(config.out_dir, `${name}.png`);
  await page.locator(target).screenshot({ path: facts.screenshot });
  return facts;
}

async function sweepPage(context, spec, errors) {
  const page = await context.newPage();
  watch(page, errors);
  const facts = { errors };
  await page.goto(spec.url);
  await ready(page);
  facts.ready = await page.evaluate(() => document.documentElement.getAttribute("data-choices-ready"));
  facts.initial = await choicesOnScreen(page);

  // Stars with the keyboard: the cursor starts on (0, 0) = cell 0.
  await press(page, "s", "ArrowDown", "ArrowRight", "s", "ArrowLeft", "x");
  await page.waitForFunction(() => /saved|kept/.test(document.getElementById("choice-status").textContent), null, { timeout: 15000 });
  // Every press's save finished (the status names the first one's): a reload before would abort the others.
  await page.waitForSelector('html[data-choices-pending="0"]', { timeout: 15000 });
  facts.status_text = await page.evaluate(() => document.getElementById("choice-status").textContent);
  facts.before_reload = await choicesOnScreen(page);
  facts.local_storage = await page.evaluate(() => {
    const out = {};
    for (let i = 0; i < localStorage.length; i++) out[localStorage.key(i)] = localStorage.getItem(localStorage.key(i));
    return out;
  });
  await page.reload();
  await ready(page);
  facts.after_reload = await choicesOnScreen(page);

  // A/B of two different cells: 0 as A, 2 (one row down) as B.
  await press(page, "a", "ArrowDown", "b", "c");
  await page.waitForSelector("#compare.open");
  await page.waitForFunction(() => document.getElementById("cmp-b").complete && document.getElementById("cmp-a").complete);
  const clip = () => page.evaluate(() => getComputedStyle(document.getElementById("cmp-b")).clipPath);
  facts.wipe = { mode: await page.getAttribute("#compare", "data-mode"), start: await clip() };
  await press(page, "ArrowRight");
  facts.wipe.after_right = await clip();
  await page.locator("#wipe").fill("200");
  facts.wipe.after_slider = await clip();
  const stage = await page.locator("#cmp-stage").boundingBox();
  await page.mouse.move(stage.x + stage.width * 0.3, stage.y + stage.height / 2);
  await page.mouse.down();
  await page.mouse.move(stage.x + stage.width * 0.75, stage.y + stage.height / 2, { steps: 4 });
  await page.mouse.up();
  facts.wipe.after_drag = await clip();
  const toggle = () => page.evaluate(() => ({ showing: document.getElementById("compare").getAttribute("data-showing"),
    visibility: getComputedStyle(document.getElementById("cmp-b")).visibility }));
  await press(page, "2");
  facts.toggle = [await toggle()];
  await press(page, " ");
  facts.toggle.push(await toggle());
  await press(page, " ");
  facts.toggle.push(await toggle());
  facts.diff_different = await diffFacts(page, `${spec.name}_diff_different`);
  await press(page, "Escape");

  // A/B of the two identical cells: 0 and 1 (row 0).
  await press(page, "ArrowUp", "a", "ArrowRight", "b", "c");
  await page.waitForSelector("#compare.open");
  facts.diff_same = await diffFacts(page, `${spec.name}_diff_same`);
  await press(page, "Escape");

  // Sweep the winners: the starred cells (0 and 3).
  await press(page, "w");
  await page.waitForSelector("#winners.open");
  facts.values_text = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll("[data-values-text]")]
    .map((t) => [t.getAttribute("data-values-text"), t.value])));
  facts.workflow_enabled = !(await page.locator("#win-workflow").isDisabled());
  if (facts.workflow_enabled) {
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#win-workflow")]);
    facts.workflow_file = join(config.out_dir, `${spec.name}_workflow.json`);
    await download.saveAs(facts.workflow_file);
  }
  await page.close();
  return facts;
}

async function mediaPage(context, spec, errors) {
  const page = await context.newPage();
  watch(page, errors);
  await page.goto(spec.url);
  await ready(page);
  await page.waitForFunction(() => [...document.querySelectorAll("#main video, #main audio")].every((m) => m.readyState >= 1),
    null, { timeout: 20000 });
  await page.waitForFunction(() => [...document.querySelectorAll("#main img")].every((i) => i.complete), null, { timeout: 20000 });
  const facts = { errors };
  facts.tiles = await page.evaluate(() => [...document.querySelectorAll(".cell[data-index]")].map((cell) => {
    const media = cell.querySelector("[data-kind]");
    const audio = cell.querySelector("audio");
    return { index: Number(cell.getAttribute("data-index")), tag: media ? media.tagName.toLowerCase() : null,
      kind: media ? media.getAttribute("data-kind") : null, text: media && media.tagName === "PRE" ? media.textContent : null,
      width: media && media.tagName === "IMG" ? media.naturalWidth : null,
      duration: audio ? audio.duration : (media && media.tagName === "VIDEO" ? media.duration : null) };
  }));
  facts.sync_bar_visible = await page.locator("#sync-bar").isVisible();
  await page.click("#sync-play");
  await page.waitForTimeout(800);
  facts.playing = await page.evaluate(() => [...document.querySelectorAll("#main video")].map((v) => ({ paused: v.paused, t: v.currentTime })));
  await page.click("#sync-play");
  facts.after_pause = await page.evaluate(() => [...document.querySelectorAll("#main video")].map((v) => v.paused));
  await page.locator("#sync-scrub").fill("500");
  await page.waitForTimeout(300);
  facts.scrubbed = await page.evaluate(() => [...document.querySelectorAll("#main video")].map((v) => ({ t: v.currentTime, d: v.duration })));
  // The cell view of the text cell shows its text.
  await page.click('.cell[data-index="4"] pre');
  facts.modal_text = await page.evaluate(() => { const p = document.querySelector("#mbody pre"); return p ? p.textContent : null; });
  await page.close();
  return facts;
}

const browser = await chromium.launch({
  executablePath: config.chromium,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-quic", "--disable-sync", "--autoplay-policy=no-user-gesture-required"],
});
const results = {};
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1, acceptDownloads: true });
  context.setDefaultTimeout(20000);
  for (const spec of config.pages) {
    const errors = [];
    try {
      results[spec.name] = spec.kind === "media" ? await mediaPage(context, spec, errors) : await sweepPage(context, spec, errors);
    } catch (err) {
      results[spec.name] = { failed: String(err && err.stack ? err.stack : err), errors };
    }
  }
  await context.close();
} finally {
  await browser.close();
}
writeFileSync(join(config.out_dir, "results.json"), JSON.stringify(results, null, 2));
