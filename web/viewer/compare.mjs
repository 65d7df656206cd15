// A/B comparison maths: the wipe position, the toggle, and the per-pixel difference. Pure; no DOM.

/** A wipe position kept inside 0..1. */
export function clampFraction(value) {
  const v = Number(value);
  if (!Number.isFinite(v)) return 0.5;
  return Math.min(1, Math.max(0, v));
}

/** The CSS clip-path that shows image B right of the wipe line at `fraction` of the width. */
export function wipeClip(fraction) {
  const pct = (clampFraction(fraction) * 100).toFixed(2);
  return `inset(0 0 0 ${pct}%)`;
}

/** The wipe after an arrow key: 5 % a press, 1 % with Shift. */
export function stepWipe(fraction, direction, fine) {
  return clampFraction(clampFraction(fraction) + direction * (fine ? 0.01 : 0.05));
}

/** The next pick when the user marks a cell for comparison: fills A, then B, then starts again at A. */
export function nextPick(pair, index) {
  const [a, b] = pair;
  if (a === null || a === undefined) return [index, null];
  if (b === null || b === undefined) return index === a ? [a, null] : [a, index];
  return [index, null];
}

/**
 * Per-pixel |a - b| of two RGBA buffers of the same size. A pixel counts as changed when its largest channel
 * difference exceeds `threshold` (0..255); the output shows changed pixels as their difference times `amplify`
 * (clamped to 255) and unchanged ones black, alpha opaque.
 *
 * Returns {data, changed, total, maxDiff}. Throws when the buffers differ in length.
 */
export function diffPixels(a, b, { threshold = 0, amplify = 1 } = {}) {
  if (a.length !== b.length || a.length % 4 !== 0) throw new Error("diffPixels: images must have the same size");
  const data = new Uint8ClampedArray(a.length);
  let changed = 0;
  let maxDiff = 0;
  const gain = Math.max(0, Number(amplify) || 0);
  const limit = Math.max(0, Number(threshold) || 0);
  for (let i = 0; i < a.length; i += 4) {
    const dr = Math.abs(a[i] - b[i]);
    const dg = Math.abs(a[i + 1] - b[i + 1]);
    const db = Math.abs(a[i + 2] - b[i + 2]);
    const da = Math.abs(a[i + 3] - b[i + 3]);
    const d = Math.max(dr, dg, db, da);
    if (d > maxDiff) maxDiff = d;
    if (d > limit) {
      changed += 1;
      data[i] = dr * gain;
      data[i + 1] = dg * gain;
      data[i + 2] = db * gain;
    }
    data[i + 3] = 255;
  }
  return { data, changed, total: a.length / 4, maxDiff };
}

/** "12.5 % of pixels differ (max 200)"; "identical" when nothing differs above the threshold. */
export function diffSummary({ changed, total, maxDiff }) {
  if (!changed) return maxDiff ? `no difference above the threshold (max ${maxDiff})` : "identical";
  const pct = (100 * changed) / total;
  return `${pct < 0.1 ? pct.toFixed(3) : pct.toFixed(1)} % of pixels differ (max ${maxDiff})`;
}

/**
 * The SVG feComponentTransfer parameters of the offline difference view (a browser blend, when the pixels cannot
 * be read): each channel becomes amplify * (d - threshold), so differences at or under the threshold turn black.
 */
export function blendTransfer(threshold, amplify) {
  const gain = Math.max(0, Number(amplify) || 0);
  const t = Math.max(0, Math.min(255, Number(threshold) || 0)) / 255;
  return { slope: gain, intercept: -gain * t };
}
