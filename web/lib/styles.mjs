// Stylesheet for the Sweeps panel and the indicator, injected once by the panel entry. Uses the frontend's
// palette variables so light and dark themes both work. Pure: exports text only.

export const STYLE_ELEMENT_ID = "wi-styles";

export const PANEL_CSS = `
/* The tab container the frontend hands to render(): its height is auto, so without this the panel grows with its
   cards and the bottom panel clips them (only the first card reachable); sized, the panel scrolls itself. */
.wi-panel-host { height: 100%; min-height: 0; overflow: hidden; }
.wi-panel { display: flex; flex-direction: column; gap: 8px; padding: 8px; font-size: 13px;
  color: var(--fg-color, #ddd); height: 100%; overflow-y: auto; box-sizing: border-box; }
/* Flex rules below would otherwise override the hidden attribute the panel uses to show and hide parts. */
.wi-panel [hidden] { display: none !important; }
.wi-panel__header { display: flex; align-items: center; justify-content: space-between; gap: 8px; }
.wi-panel__title { font-weight: 600; font-size: 14px; }
.wi-panel__empty { opacity: 0.7; padding: 12px 4px; }
.wi-button { background: var(--comfy-input-bg, #222); color: var(--input-text, #ddd);
  border: 1px solid var(--border-color, #444); border-radius: 4px; padding: 2px 8px; cursor: pointer; font: inherit; }
.wi-button:hover { filter: brightness(1.2); }
.wi-button:disabled { opacity: 0.5; cursor: default; }
.wi-button--danger { border-color: #b33; color: #f88; }
.wi-batch { border: 1px solid var(--border-color, #444); border-radius: 6px; padding: 8px;
  background: var(--comfy-menu-bg, #1e1e1e); display: flex; flex-direction: column; gap: 6px; }
.wi-batch__head { display: flex; align-items: baseline; gap: 6px; }
.wi-batch__name { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; flex: 1; }
.wi-batch__state { font-size: 11px; padding: 0 6px; border-radius: 8px; border: 1px solid var(--border-color, #444); }
.wi-batch[data-wi-state="complete"] .wi-batch__state { color: #6c6; }
.wi-batch[data-wi-state="cancelled"] .wi-batch__state, .wi-batch[data-wi-state="expired"] .wi-batch__state { color: #ca6; }
.wi-batch[data-wi-state="interrupted"] .wi-batch__state { color: #f90; border-color: #f90; }
.wi-batch__meta { display: flex; gap: 10px; font-size: 12px; opacity: 0.85; flex-wrap: wrap; }
.wi-progress { display: flex; height: 8px; border-radius: 4px; overflow: hidden; background: var(--comfy-input-bg, #333); }
.wi-progress__segment { height: 100%; }
.wi-progress__segment--done { background: #4caf50; }
.wi-progress__segment--failed { background: #e53935; }
.wi-progress__segment--cancelled { background: #9e9e9e; }
.wi-progress__segment--running { background: #42a5f5; }
.wi-tiles { display: flex; flex-wrap: wrap; gap: 2px; }
.wi-tile { width: 10px; height: 10px; border-radius: 2px; background: var(--comfy-input-bg, #444);
  border: 1px solid var(--border-color, #555); box-sizing: border-box; }
.wi-tile--running { background: #42a5f5; border-color: #42a5f5; }
.wi-tile--done { background: #4caf50; border-color: #4caf50; }
.wi-tile--failed { background: #e53935; border-color: #e53935; }
.wi-tile--cancelled { background: transparent; border-style: dashed; }
.wi-tiles__more { font-size: 11px; opacity: 0.7; }
.wi-batch__warnings { font-size: 12px; color: #ca6; margin: 0; padding-left: 16px; }
.wi-batch__grid { display: flex; flex-direction: column; gap: 4px; }
.wi-batch__grid img { max-width: 100%; max-height: 240px; object-fit: contain; align-self: flex-start;
  border: 1px solid var(--border-color, #444); border-radius: 4px; }
.wi-batch__actions { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; }
.wi-batch__actions a { color: var(--p-primary-color, #6af); }
.wi-tile--starred { outline: 2px solid #fc3; outline-offset: 0; }
.wi-tile--rejected { opacity: 0.35; }
.wi-batch__choices { font-size: 11px; color: #fc3; white-space: nowrap; }
.wi-batch__workers { display: flex; flex-wrap: wrap; gap: 4px; font-size: 11px; }
.wi-batch-worker { padding: 0 6px; border-radius: 8px; border: 1px solid var(--border-color, #444); white-space: nowrap; }
.wi-workers { border: 1px solid var(--border-color, #444); border-radius: 6px; padding: 4px 8px; }
.wi-workers__summary { cursor: pointer; font-weight: 600; padding: 2px 0; }
.wi-workers[open] { display: flex; flex-direction: column; gap: 6px; padding-bottom: 8px; }
.wi-workers__list { display: flex; flex-direction: column; gap: 4px; }
.wi-workers__note { opacity: 0.7; font-size: 12px; }
/* In a narrow sidebar the buttons wrap below the name rather than squeezing it to nothing. */
.wi-worker { display: flex; align-items: center; gap: 4px 6px; flex-wrap: wrap; }
.wi-worker__dot { width: 8px; height: 8px; border-radius: 50%; flex: none; background: #9e9e9e; }
.wi-worker--idle .wi-worker__dot { background: #4caf50; }
.wi-worker--busy .wi-worker__dot { background: #42a5f5; }
.wi-worker--unreachable .wi-worker__dot { background: #e53935; }
.wi-worker__text { display: flex; flex-direction: column; flex: 1 1 120px; min-width: 0; }
.wi-worker__name { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.wi-worker__line { font-size: 11px; opacity: 0.8; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.wi-worker__state { font-size: 11px; }
.wi-worker--unreachable .wi-worker__state, .wi-worker--unreachable.wi-batch-worker { color: #f88; }
.wi-worker--excluded.wi-batch-worker { color: #ca6; border-style: dashed; }
.wi-worker-form { display: flex; flex-direction: column; gap: 4px; }
.wi-worker-form__field { display: flex; align-items: center; gap: 6px; }
.wi-worker-form__label { width: 90px; flex: none; font-size: 12px; opacity: 0.85; }
.wi-worker-form__input { flex: 1; min-width: 0; font: inherit; background: var(--comfy-input-bg, #222);
  color: var(--input-text, #ddd); border: 1px solid var(--border-color, #444); border-radius: 4px; padding: 2px 4px; }
.wi-worker-form__input[type="checkbox"] { flex: none; }
.wi-worker-form__input[aria-invalid="true"] { border-color: #e53935; }
.wi-worker-form__error { color: #f88; font-size: 12px; }
/* Bottom centre: the bottom-right corner holds the canvas toolbar (zoom, canvas mode, links; 1.58 adds the
   minimap above it). Inside .graph-canvas-panel it sits above an open bottom panel instead of over it. */
#wi-indicator { position: fixed; left: 50%; bottom: 16px; transform: translateX(-50%); z-index: 1000;
  pointer-events: auto; display: flex; align-items: center; gap: 8px;
  padding: 4px 12px; border-radius: 999px; cursor: pointer; font-size: 12px; user-select: none;
  background: var(--comfy-menu-bg, #222); color: var(--fg-color, #ddd); border: 1px solid var(--border-color, #555);
  box-shadow: 0 2px 8px rgba(0, 0, 0, 0.4); }
#wi-indicator.wi-indicator--in-canvas { position: absolute; bottom: 12px; }
#wi-indicator[hidden] { display: none; }
#wi-indicator .wi-indicator__bar { width: 48px; height: 4px; border-radius: 2px; background: var(--comfy-input-bg, #444); overflow: hidden; }
#wi-indicator .wi-indicator__fill { height: 100%; background: #4caf50; }
`;

/** The node badge widget (wi_iterator_badge.js); a separate element so either entry can load first. */
export const BADGE_STYLE_ELEMENT_ID = "wi-badge-styles";

export const BADGE_CSS = `
.wi-badge { box-sizing: border-box; width: 100%; padding: 4px 6px; border-radius: 4px; font: 12px/16px sans-serif;
  color: #fff; background: #2f5f8f; overflow: hidden; overflow-wrap: anywhere; pointer-events: none; }
.wi-badge[hidden] { display: none; }
.wi-badge[data-wi-badge-tone="warn"] { background: #8a6a12; }
.wi-badge[data-wi-badge-tone="error"] { background: #a33030; }
.wi-badge[data-wi-badge-tone="muted"] { background: #4a4a4a; }
`;
