import assert from "node:assert/strict";
import { test } from "node:test";

import { createLatestGate, debounce } from "../lib/schedule.mjs";

/** Manual timers: advance(ms) fires whatever is due. */
function fakeTimers() {
  let now = 0;
  let nextId = 1;
  const pending = new Map();
  return {
    setTimeout(fn, delay) {
      const id = nextId++;
      pending.set(id, { fn, at: now + delay });
      return id;
    },
    clearTimeout(id) {
      pending.delete(id);
    },
    advance(ms) {
      now += ms;
      for (const [id, timer] of [...pending]) {
        if (timer.at <= now) {
          pending.delete(id);
          timer.fn();
        }
      }
    },
  };
}

test("debounce runs once with the last arguments after the burst", () => {
  const timers = fakeTimers();
  const calls = [];
  const debounced = debounce((value) => calls.push(value), 300, timers);
  debounced(1);
  timers.advance(200);
  debounced(2);
  timers.advance(299);
  assert.deepEqual(calls, []);
  timers.advance(1);
  assert.deepEqual(calls, [2]);
});

test("debounce cancel drops the pending call and flush runs it now", () => {
  const timers = fakeTimers();
  const calls = [];
  const debounced = debounce((value) => calls.push(value), 300, timers);
  debounced("dropped");
  debounced.cancel();
  timers.advance(1000);
  debounced("flushed");
  debounced.flush();
  debounced.flush();
  assert.deepEqual(calls, ["flushed"]);
});

test("the latest gate accepts only the newest request", () => {
  const gate = createLatestGate();
  const first = gate.begin();
  const second = gate.begin();
  assert.equal(gate.isCurrent(first), false);
  assert.equal(gate.isCurrent(second), true);
});
