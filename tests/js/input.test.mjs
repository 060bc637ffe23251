import assert from "node:assert/strict";
import { test } from "node:test";

import { DEFAULT_KEYS, answerForKey, createInput, keyLabels, normaliseKeys } from "../../static/input.js";

function keyEvent(code, extra = {}) {
  const e = new Event("keydown");
  Object.assign(e, { code, key: "", repeat: false, ctrlKey: false, altKey: false, metaKey: false, ...extra });
  return e;
}

/** A stand-in for a response button: an EventTarget with dataset and closest(). */
class FakeButton extends EventTarget {
  constructor(response, confidence) {
    super();
    this.dataset = { response, confidence: String(confidence) };
    this.disabled = false;
  }
  closest() {
    return this;
  }
}

function clickEvent(detail, pointerType) {
  const e = new Event("click");
  Object.assign(e, { detail, pointerType });
  return e;
}

test("default keys: digit row answers upper, the row below answers lower", () => {
  assert.deepEqual(answerForKey(keyEvent("Digit1")), { response: "upper", confidence: 1 });
  assert.deepEqual(answerForKey(keyEvent("Digit3")), { response: "upper", confidence: 3 });
  assert.deepEqual(answerForKey(keyEvent("KeyQ")), { response: "lower", confidence: 1 });
  assert.deepEqual(answerForKey(keyEvent("KeyE")), { response: "lower", confidence: 3 });
  assert.equal(answerForKey(keyEvent("KeyR")), null);
});

test("held, modified and unrelated keys do not answer", () => {
  assert.equal(answerForKey(keyEvent("Digit2", { repeat: true })), null);
  assert.equal(answerForKey(keyEvent("Digit2", { ctrlKey: true })), null);
  assert.equal(answerForKey(keyEvent("KeyW", { metaKey: true })), null);
  assert.equal(answerForKey(keyEvent("Space")), null);
});

test("an empty code falls back to the key's character", () => {
  assert.deepEqual(answerForKey(keyEvent("", { key: "w" })), { response: "lower", confidence: 2 });
  assert.deepEqual(answerForKey(keyEvent("", { key: "2" })), { response: "upper", confidence: 2 });
});

test("configured keys are used when valid and replaced by defaults when not", () => {
  const custom = normaliseKeys({ upper: ["KeyA", "KeyS", "KeyD"], lower: ["KeyZ", "KeyX", "KeyC"] });
  assert.deepEqual(answerForKey(keyEvent("KeyX"), custom), { response: "lower", confidence: 2 });
  assert.equal(answerForKey(keyEvent("Digit1"), custom), null);
  assert.equal(normaliseKeys(undefined), DEFAULT_KEYS);
  assert.equal(normaliseKeys({ upper: ["KeyA"], lower: ["KeyZ", "KeyX", "KeyC"] }), DEFAULT_KEYS);
  assert.equal(normaliseKeys({ upper: ["KeyA", "KeyA", "KeyD"], lower: ["KeyZ", "KeyX", "KeyC"] }), DEFAULT_KEYS);
  assert.equal(normaliseKeys({ upper: ["<b>", "KeyS", "KeyD"], lower: ["KeyZ", "KeyX", "KeyC"] }), DEFAULT_KEYS);
});

test("input answers once per start, with the time of the answer", () => {
  const root = new FakeButton("upper", 2);
  const doc = new EventTarget();
  const answers = [];
  let t = 1000;
  const input = createInput({ root, keyTarget: doc, onAnswer: (a) => answers.push(a), now: () => (t += 1) });
  doc.dispatchEvent(keyEvent("Digit1"));
  assert.equal(answers.length, 0, "nothing before start()");
  input.start();
  assert.equal(input.active, true);
  doc.dispatchEvent(keyEvent("KeyW"));
  doc.dispatchEvent(keyEvent("KeyE"));
  root.dispatchEvent(clickEvent(1, "mouse"));
  assert.deepEqual(answers, [{ response: "lower", confidence: 2, input: "keyboard", at_ms: 1001 }]);
  assert.equal(input.active, false);
});

test("clicks report mouse, touch, or keyboard (Enter/Space on a focused button)", () => {
  const cases = [
    [clickEvent(1, "mouse"), "mouse"],
    [clickEvent(1, "touch"), "touch"],
    [clickEvent(1, "pen"), "touch"],
    [clickEvent(0, ""), "keyboard"],
  ];
  for (const [event, kind] of cases) {
    const root = new FakeButton("upper", 3);
    const answers = [];
    const input = createInput({ root, keyTarget: new EventTarget(), onAnswer: (a) => answers.push(a) });
    input.start();
    root.dispatchEvent(event);
    assert.equal(answers.length, 1);
    assert.equal(answers[0].input, kind);
    assert.equal(answers[0].response, "upper");
    assert.equal(answers[0].confidence, 3);
  }
});

test("the pointer type of the last pointerdown is used when a click does not name it", () => {
  const root = new FakeButton("lower", 1);
  const answers = [];
  const input = createInput({ root, keyTarget: new EventTarget(), onAnswer: (a) => answers.push(a) });
  input.start();
  const down = new Event("pointerdown");
  down.pointerType = "touch";
  root.dispatchEvent(down);
  root.dispatchEvent(clickEvent(1, undefined));
  assert.equal(answers[0].input, "touch");
});

test("disabled buttons and stop() end answering", () => {
  const root = new FakeButton("upper", 1);
  const answers = [];
  const input = createInput({ root, keyTarget: new EventTarget(), onAnswer: (a) => answers.push(a) });
  input.start();
  root.disabled = true;
  root.dispatchEvent(clickEvent(1, "mouse"));
  root.disabled = false;
  input.stop();
  root.dispatchEvent(clickEvent(1, "mouse"));
  assert.equal(answers.length, 0);
});

test("key labels come from the keyboard layout map when there is one", async () => {
  const azerty = { keyboard: { getLayoutMap: async () => new Map([["KeyQ", "a"], ["KeyW", "z"], ["KeyE", "e"], ["Digit1", "&"]]) } };
  assert.deepEqual(await keyLabels(DEFAULT_KEYS, azerty), { upper: ["&", "2", "3"], lower: ["A", "Z", "E"] });
  assert.deepEqual(await keyLabels(DEFAULT_KEYS, {}), { upper: ["1", "2", "3"], lower: ["Q", "W", "E"] });
});
