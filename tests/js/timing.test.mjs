import assert from "node:assert/strict";
import { test } from "node:test";

import { createTimers } from "../../static/timers.js";
import { FrameIntervalStats, onsetAfterPaint, roundMs, startFrameLoop } from "../../static/timing.js";
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

test("onset is the timestamp of the second animation frame after insertion", async () => {
  const clock = fakeClock();
  const t = createTimers(clock);
  let onset = null;
  onsetAfterPaint(t).then((ts) => (onset = ts));
  clock.frame(100); // before the paint that shows the images
  await flush();
  assert.equal(onset, null);
  clock.frame(116.7); // the frame after that paint
  await flush();
  assert.equal(onset, 116.7);
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
