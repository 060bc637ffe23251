import assert from "node:assert/strict";
import { test } from "node:test";

import { createTimers } from "../../static/timers.js";
import { FrameIntervalStats, roundMs, showAtNextFrame, startFrameLoop, timingOf } from "../../static/timing.js";
import { fakeClock, flush } from "./helpers.mjs";

test("frame interval stats give mean and max of consecutive intervals", () => {
  const s = new FrameIntervalStats();
  for (const ts of [1000, 1016.7, 1033.4, 1066.8, 1083.5]) s.add(ts);
  const out = s.summary();
  assert.equal(out.n_intervals, 4);
  assert.equal(out.mean_ms, roundMs((1083.5 - 1000) / 4));
  assert.equal(out.max_ms, 33.4);
});

test("frame interval stats ignore repeated or backwards timestamps", () => {
  const s = new FrameIntervalStats();
  for (const ts of [10, 10, 5, 26]) s.add(ts);
  assert.deepEqual(s.summary(), { mean_ms: 16, max_ms: 16, n_intervals: 1 });
});

test("frame interval stats are null before two frames", () => {
  const s = new FrameIntervalStats();
  s.add(5);
  assert.deepEqual(s.summary(), { mean_ms: null, max_ms: null, n_intervals: 0 });
});

test("content is inserted in the next frame and onset is the frame after it", async () => {
  const clock = fakeClock();
  const t = createTimers(clock);
  const inserted = [];
  let onset = null;
  showAtNextFrame(t, () => inserted.push("images"), () => 101).then((ts) => (onset = ts));
  await flush();
  assert.deepEqual(inserted, []); // not before the frame that paints them
  clock.frame(100); // that frame: insertion before its paint
  await flush();
  assert.deepEqual(inserted, ["images"]);
  assert.equal(onset, null);
  clock.frame(116.7); // the frame after that paint
  await flush();
  assert.equal(onset, 116.7);
});

test("onset is never earlier than the insertion when frame times are stale", async () => {
  // A starved main thread: frames run late and back to back with stale begin times.
  const clock = fakeClock();
  const t = createTimers(clock);
  let wall = 1000; // performance.now()
  let onset = null;
  showAtNextFrame(t, () => {}, () => wall).then((ts) => (onset = ts));
  wall = 1018.5; // the 1st frame runs 18.5 ms late ...
  clock.frame(998.3); // ... with the begin time of a frame that began before the blank ended
  await flush();
  wall = 1020;
  clock.frame(998.4); // the 2nd frame's begin time precedes the insertion
  await flush();
  assert.equal(onset, 1018.5);
});

test("cancelling the group before the frame leaves the content out", async () => {
  const clock = fakeClock();
  const t = createTimers(clock);
  const inserted = [];
  const p = showAtNextFrame(t, () => inserted.push("images"), () => 0);
  t.cancelAll();
  clock.frame(16);
  await assert.rejects(p, { name: "CancelledError" });
  assert.deepEqual(inserted, []);
});

test("the frame loop records every frame until its group is cancelled", () => {
  const clock = fakeClock();
  const t = createTimers(clock);
  const stats = startFrameLoop(t, 0);
  for (const ts of [16, 32, 80]) clock.frame(ts);
  t.cancelAll();
  clock.frame(500);
  assert.deepEqual(stats.summary(), { mean_ms: roundMs(80 / 3), max_ms: 48, n_intervals: 3 });
  assert.equal(clock.pendingFrames, 0);
});

test("roundMs keeps a tenth of a millisecond", () => {
  assert.equal(roundMs(1234.56), 1234.6);
  assert.equal(roundMs(0.04), 0);
});

test("timingOf takes the trial's valid durations and the defaults for the rest", () => {
  const defaults = { blank_ms: 100, response_lock_ms: 0 };
  assert.deepEqual(timingOf({ timing: { blank_ms: 50, response_lock_ms: 1500, choice_ms: 9 } }, defaults), { blank_ms: 50, response_lock_ms: 1500 });
  assert.deepEqual(timingOf({ timing: { blank_ms: -1, response_lock_ms: "5" } }, defaults), defaults);
  assert.deepEqual(timingOf({ timing: { blank_ms: Infinity } }, defaults), defaults);
  assert.deepEqual(timingOf({}, defaults), defaults);
  assert.deepEqual(timingOf(null, defaults), defaults);
});
