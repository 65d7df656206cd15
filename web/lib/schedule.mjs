// Timing helpers with injectable timers, so tests need no real clock.

/**
 * Calls `fn` once, `delayMs` after the last of a burst of calls (typing in a textarea fires per keystroke).
 * Returns a function with .cancel() and .flush().
 */
export function debounce(fn, delayMs, timers = globalThis) {
  let handle = null;
  let pendingArgs = null;
  const run = () => {
    handle = null;
    const args = pendingArgs;
    pendingArgs = null;
    fn(...args);
  };
  const debounced = (...args) => {
    pendingArgs = args;
    if (handle !== null) timers.clearTimeout(handle);
    handle = timers.setTimeout(run, delayMs);
  };
  debounced.cancel = () => {
    if (handle !== null) timers.clearTimeout(handle);
    handle = null;
    pendingArgs = null;
  };
  debounced.flush = () => {
    if (handle === null) return;
    timers.clearTimeout(handle);
    run();
  };
  return debounced;
}

/**
 * Keeps only the newest of overlapping async requests: begin() returns a token, and isCurrent(token) tells the
 * response handler whether a newer request has started since (its answer must then be dropped).
 */
export function createLatestGate() {
  let latest = 0;
  return {
    begin() {
      latest += 1;
      return latest;
    },
    isCurrent(token) {
      return token === latest;
    },
  };
}
