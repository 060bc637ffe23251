import assert from "node:assert/strict";
import { test } from "node:test";

import { DEFAULT_KEYS, answerForKey, createInput, keyLabels, normaliseKeys } from "../../static/tasks/afc2/input.js";

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

function clickEvent(detail, pointerType, timeStamp) {
  const e = new Event("click");
  Object.assign(e, { detail, pointerType });
  if (timeStamp !== undefined) Object.defineProperty(e, "timeStamp", { value: timeStamp });
  return e;
}

function pointerDown(pointerType, timeStamp, extra = {}) {
  const e = new Event("pointerdown", { cancelable: true });
  Object.assign(e, { pointerType, button: 0, isPrimary: true, ...extra });
  Object.defineProperty(e, "timeStamp", { value: timeStamp });
  return e;
}

function withStamp(e, timeStamp) {
  Object.defineProperty(e, "timeStamp", { value: timeStamp });
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

test("input answers once per start, at the event's own time stamp", () => {
  const root = new FakeButton("upper", 2);
  const doc = new EventTarget();
  const answers = [];
  const input = createInput({ root, keyTarget: doc, onAnswer: (a) => answers.push(a), now: () => 99999 });
  doc.dispatchEvent(withStamp(keyEvent("Digit1"), 500));
  assert.equal(answers.length, 0, "nothing before start()");
  input.start();
  assert.equal(input.active, true);
  doc.dispatchEvent(withStamp(keyEvent("KeyW"), 1001.25));
  doc.dispatchEvent(withStamp(keyEvent("KeyE"), 1002));
  root.dispatchEvent(pointerDown("mouse", 1003));
  assert.deepEqual(answers, [{ response: "lower", confidence: 2, input: "keyboard", at_ms: 1001.25 }]);
  assert.equal(input.active, false);
});

test("a press answers at pointerdown; its release and click change nothing", () => {
  for (const [type, kind] of [["mouse", "mouse"], ["touch", "touch"], ["pen", "touch"]]) {
    const root = new FakeButton("upper", 3);
    const answers = [];
    const input = createInput({ root, keyTarget: new EventTarget(), onAnswer: (a) => answers.push(a) });
    input.start();
    const down = pointerDown(type, 2000.5);
    root.dispatchEvent(down);
    assert.equal(down.defaultPrevented, true);
    root.dispatchEvent(withStamp(new Event("pointerup"), 2090));
    root.dispatchEvent(clickEvent(1, type, 2091));
    assert.deepEqual(answers, [{ response: "upper", confidence: 3, input: kind, at_ms: 2000.5 }]);
  }
});

test("a pointer's click alone does not answer; Enter/Space on a focused button does", () => {
  const root = new FakeButton("lower", 1);
  const answers = [];
  const input = createInput({ root, keyTarget: new EventTarget(), onAnswer: (a) => answers.push(a) });
  input.start();
  root.dispatchEvent(clickEvent(1, "mouse", 10));
  assert.equal(answers.length, 0);
  root.dispatchEvent(clickEvent(0, "", 12.5));
  assert.deepEqual(answers, [{ response: "lower", confidence: 1, input: "keyboard", at_ms: 12.5 }]);
});

test("secondary buttons, second fingers and events without a time stamp", () => {
  const root = new FakeButton("upper", 1);
  const answers = [];
  const input = createInput({ root, keyTarget: new EventTarget(), onAnswer: (a) => answers.push(a), now: () => 77 });
  input.start();
  root.dispatchEvent(pointerDown("mouse", 5, { button: 2 }));
  root.dispatchEvent(pointerDown("touch", 6, { isPrimary: false }));
  assert.equal(answers.length, 0);
  root.dispatchEvent(pointerDown("mouse", 0));
  assert.deepEqual(answers, [{ response: "upper", confidence: 1, input: "mouse", at_ms: 77 }]);
});

test("inputs stamped before start(since) are ignored", () => {
  const root = new FakeButton("upper", 2);
  const doc = new EventTarget();
  const answers = [];
  const input = createInput({ root, keyTarget: doc, onAnswer: (a) => answers.push(a) });
  input.start(1000);
  doc.dispatchEvent(withStamp(keyEvent("Digit1"), 999.5));
  root.dispatchEvent(pointerDown("mouse", 990));
  assert.equal(answers.length, 0);
  assert.equal(input.active, true);
  doc.dispatchEvent(withStamp(keyEvent("Digit3"), 1000));
  assert.deepEqual(answers, [{ response: "upper", confidence: 3, input: "keyboard", at_ms: 1000 }]);
});

test("disabled buttons and stop() end answering", () => {
  const root = new FakeButton("upper", 1);
  const answers = [];
  const input = createInput({ root, keyTarget: new EventTarget(), onAnswer: (a) => answers.push(a) });
  input.start();
  root.disabled = true;
  root.dispatchEvent(pointerDown("mouse", 1));
  root.disabled = false;
  input.stop();
  root.dispatchEvent(pointerDown("mouse", 2));
  assert.equal(answers.length, 0);
});

test("key labels come from the keyboard layout map when there is one", async () => {
  const azerty = { keyboard: { getLayoutMap: async () => new Map([["KeyQ", "a"], ["KeyW", "z"], ["KeyE", "e"], ["Digit1", "&"]]) } };
  assert.deepEqual(await keyLabels(DEFAULT_KEYS, azerty), { upper: ["&", "2", "3"], lower: ["A", "Z", "E"] });
  assert.deepEqual(await keyLabels(DEFAULT_KEYS, {}), { upper: ["1", "2", "3"], lower: ["Q", "W", "E"] });
});
