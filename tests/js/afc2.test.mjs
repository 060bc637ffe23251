// The 2-AFC task module without a DOM: its image list, its part of the answer body, and the
// order and timing of its feedback (driven with a fake clock and a recording stage).
import assert from "node:assert/strict";
import { test } from "node:test";

import { answerBody, correctSide, showFeedback, urls } from "../../static/tasks/afc2.js";
import { trialSlots } from "../../static/tasks/afc2/stage.js";
import { createTimers } from "../../static/timers.js";
import { fakeClock, flush } from "./helpers.mjs";

test("trial slots list references then queries; URLs are de-duplicated", () => {
  const trial = {
    references: { min: ["/img/m1", "/img/m2"], max: ["/img/x1", "/img/q"] },
    queries: { upper: "/img/q", lower: "/img/m1" }, // a catch trial reuses references
  };
  assert.deepEqual(trialSlots(trial).map((s) => `${s.slot}${s.i}`), ["min0", "min1", "max0", "max1", "upper0", "lower0"]);
  assert.deepEqual(urls(trial), ["/img/m1", "/img/m2", "/img/x1", "/img/q"]);
  assert.deepEqual(urls({ references: { min: [], max: [] }, queries: { upper: "/u", lower: "/l" } }), ["/u", "/l"]);
});

test("the answer goes into the body as the server takes it today: flat response and confidence", () => {
  assert.deepEqual(answerBody({ response: "lower", confidence: 2 }), {
    answer: { task: "afc2", response: "lower", confidence: 2 },
  });
});

test("the correct side comes from the acknowledgement's solution", () => {
  assert.equal(correctSide({ correct: true, solution: { response: "lower" } }), "lower");
  assert.equal(correctSide({ correct: false, solution: { response: "upper" } }), "upper");
  assert.equal(correctSide({ correct: null, solution: null }), null);
  assert.equal(correctSide({ solution: { response: "left" } }), null);
  assert.equal(correctSide(null), null);
});

/** A stage that records what feedback it was asked to show, and when (fake clock time). */
function recordingStage(clock) {
  const shown = [];
  return {
    shown,
    markChosen: (response, confidence) => shown.push(["chosen", response, confidence, clock.now]),
    markCorrect: (response) => shown.push(["correct", response, clock.now]),
    showFeedbackText: (correct) => shown.push(["text", correct, clock.now]),
  };
}

function deferred() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

/** Let `ms` pass on the clock, running promise callbacks after each millisecond. */
async function run(clock, ms) {
  for (let i = 0; i < ms; i += 1) {
    clock.advance(1);
    await flush(2);
  }
}

test("frames: black frame at once, green frame after choice_ms once acknowledged, done after correct_ms", async () => {
  const clock = fakeClock();
  const stage = recordingStage(clock);
  const ack = deferred();
  let done = false;
  const timing = { choice_ms: 100, correct_ms: 200 };
  showFeedback(stage, "frames", { answer: { response: "upper", confidence: 3 }, ack: ack.promise, timing, timers: createTimers(clock) }).then(() => (done = true));
  assert.deepEqual(stage.shown, [["chosen", "upper", 3, 0]]);
  ack.resolve({ correct: false, solution: { response: "lower" } });
  await run(clock, 99);
  assert.equal(stage.shown.length, 1, "no green frame before choice_ms");
  await run(clock, 1);
  assert.deepEqual(stage.shown[1], ["correct", "lower", 100]);
  await run(clock, 199);
  assert.equal(done, false);
  await run(clock, 1);
  assert.equal(done, true);
});

test("frames: a late acknowledgement holds the black frame; the green frame never comes before it", async () => {
  const clock = fakeClock();
  const stage = recordingStage(clock);
  const ack = deferred();
  let done = false;
  showFeedback(stage, "frames", { answer: { response: "lower", confidence: 1 }, ack: ack.promise, timing: { choice_ms: 50, correct_ms: 80 }, timers: createTimers(clock) }).then(() => (done = true));
  await run(clock, 300);
  assert.equal(stage.shown.length, 1);
  ack.resolve({ correct: true, solution: { response: "lower" } });
  await flush();
  assert.deepEqual(stage.shown[1], ["correct", "lower", 300]);
  await run(clock, 80);
  assert.equal(done, true);
});

test("frames: without a correct side (answer refused, no feedback data) no green frame and no wait", async () => {
  const clock = fakeClock();
  const stage = recordingStage(clock);
  let done = false;
  showFeedback(stage, "frames", { answer: { response: "upper", confidence: 2 }, ack: Promise.resolve(null), timing: { choice_ms: 40, correct_ms: 1000 }, timers: createTimers(clock) }).then(() => (done = true));
  await run(clock, 40);
  assert.equal(done, true);
  assert.deepEqual(stage.shown, [["chosen", "upper", 2, 0]]);
});

test("text: nothing until acknowledged, then Correct!/Incorrect! for correct_ms (paper's defaults when timing is missing)", async () => {
  const clock = fakeClock();
  const stage = recordingStage(clock);
  const ack = deferred();
  let done = false;
  showFeedback(stage, "text", { answer: { response: "upper", confidence: 3 }, ack: ack.promise, timing: {}, timers: createTimers(clock) }).then(() => (done = true));
  await run(clock, 700);
  assert.deepEqual(stage.shown, []);
  ack.resolve({ correct: false, solution: { response: "lower" } });
  await flush();
  assert.deepEqual(stage.shown, [["text", false, 700]]);
  await run(clock, 1499);
  assert.equal(done, false);
  await run(clock, 1);
  assert.equal(done, true);
});

test("cancelling the feedback timers ends the feedback", async () => {
  const clock = fakeClock();
  const timers = createTimers(clock);
  const p = showFeedback(recordingStage(clock), "frames", { answer: { response: "upper", confidence: 1 }, ack: new Promise(() => {}), timing: {}, timers });
  timers.cancelAll();
  await assert.rejects(p, { name: "CancelledError" });
  assert.equal(clock.pendingTimeouts, 0);
});
