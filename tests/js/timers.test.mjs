import assert from "node:assert/strict";
import { test } from "node:test";

import { CancelledError, createTimers } from "../../static/timers.js";
import { fakeClock, flush } from "./helpers.mjs";

test("timeout fires once and is no longer tracked afterwards", () => {
  const clock = fakeClock();
  const t = createTimers(clock);
  let fired = 0;
  t.timeout(() => (fired += 1), 100);
  assert.equal(t.size, 1);
  clock.advance(99);
  assert.equal(fired, 0);
  clock.advance(1);
  assert.equal(fired, 1);
  assert.equal(t.size, 0);
});

test("cancelAll stops timeouts, frames and listeners of the group", () => {
  const clock = fakeClock();
  const t = createTimers(clock);
  const target = new EventTarget();
  const seen = [];
  t.timeout(() => seen.push("timeout"), 10);
  t.frame(() => seen.push("frame"));
  t.listen(target, "ping", () => seen.push("ping"));
  target.dispatchEvent(new Event("ping"));
  assert.deepEqual(seen, ["ping"]);
  t.cancelAll();
  clock.advance(1000);
  clock.frame(16);
  target.dispatchEvent(new Event("ping"));
  assert.deepEqual(seen, ["ping"]);
  assert.equal(t.size, 0);
  assert.equal(clock.pendingTimeouts, 0);
  assert.equal(clock.pendingFrames, 0);
});

test("cancelAll leaves other groups alone", () => {
  const clock = fakeClock();
  const a = createTimers(clock);
  const b = createTimers(clock);
  const seen = [];
  a.timeout(() => seen.push("a"), 10);
  b.timeout(() => seen.push("b"), 10);
  a.cancelAll();
  clock.advance(10);
  assert.deepEqual(seen, ["b"]);
});

test("delay resolves after its time and rejects with CancelledError when cancelled", async () => {
  const clock = fakeClock();
  const t = createTimers(clock);
  let done = false;
  const p = t.delay(500).then(() => (done = true));
  clock.advance(499);
  await flush();
  assert.equal(done, false);
  clock.advance(1);
  await p;
  assert.equal(done, true);

  const q = t.delay(500);
  t.cancelAll();
  await assert.rejects(q, CancelledError);
  assert.equal(t.size, 0);
});

test("nextFrame resolves with the frame timestamp", async () => {
  const clock = fakeClock();
  const t = createTimers(clock);
  const p = t.nextFrame();
  clock.frame(1234.5);
  assert.equal(await p, 1234.5);
});

test("guard follows its promise but is cut short by cancelAll", async () => {
  const t = createTimers(fakeClock());
  assert.equal(await t.guard(Promise.resolve(7)), 7);
  await assert.rejects(t.guard(Promise.reject(new Error("boom"))), /boom/);
  let resolveLater;
  const never = new Promise((r) => (resolveLater = r));
  const g = t.guard(never);
  t.cancelAll();
  await assert.rejects(g, CancelledError);
  resolveLater(1); // settling afterwards must not resurrect it
  await flush();
});

test("a group is usable again after cancelAll", () => {
  const clock = fakeClock();
  const t = createTimers(clock);
  t.cancelAll();
  let fired = false;
  t.timeout(() => (fired = true), 5);
  clock.advance(5);
  assert.equal(fired, true);
});

test("the remover returned by listen removes only its listener", () => {
  const t = createTimers(fakeClock());
  const target = new EventTarget();
  let n = 0;
  const off = t.listen(target, "x", () => (n += 1));
  off();
  target.dispatchEvent(new Event("x"));
  assert.equal(n, 0);
  assert.equal(t.size, 0);
});
