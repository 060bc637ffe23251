// The input helpers every task type shares (static/input.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { codeLabel, eventTime, inputKindForPointer, layoutLabels, listenerGroup } from "../../static/input.js";

test("an input is timed at the event's own time stamp, else by the fallback clock", () => {
  const stamped = new Event("keydown");
  Object.defineProperty(stamped, "timeStamp", { value: 1234.5 });
  assert.equal(eventTime(stamped, () => 99), 1234.5);
  const unstamped = new Event("keydown");
  Object.defineProperty(unstamped, "timeStamp", { value: 0 });
  assert.equal(eventTime(unstamped, () => 99), 99);
  assert.equal(eventTime(null, () => 7), 7);
});

test("pointer kinds: a pen counts as touch, everything else as mouse", () => {
  assert.equal(inputKindForPointer("touch"), "touch");
  assert.equal(inputKindForPointer("pen"), "touch");
  assert.equal(inputKindForPointer("mouse"), "mouse");
  assert.equal(inputKindForPointer(""), "mouse");
});

test("key labels come from the layout map, else from the code", async () => {
  assert.equal(codeLabel("KeyQ"), "Q");
  assert.equal(codeLabel("Digit1"), "1");
  assert.equal(codeLabel("Space"), "SPACE");
  const azerty = { keyboard: { getLayoutMap: async () => new Map([["KeyQ", "a"]]) } };
  assert.deepEqual(await layoutLabels(["KeyQ", "KeyW"], azerty), ["A", "W"]);
  const failing = { keyboard: { getLayoutMap: async () => Promise.reject(new Error("denied")) } };
  assert.deepEqual(await layoutLabels(["KeyQ"], failing), ["Q"]);
  assert.deepEqual(await layoutLabels(["Digit2"], undefined), ["2"]);
});

test("a listener group removes every listener it added, and says whether any is on", () => {
  const a = new EventTarget();
  const b = new EventTarget();
  const heard = [];
  const group = listenerGroup();
  assert.equal(group.active, false);
  group.on(a, "x", () => heard.push("a"));
  group.on(b, "y", () => heard.push("b"));
  assert.equal(group.active, true);
  a.dispatchEvent(new Event("x"));
  b.dispatchEvent(new Event("y"));
  group.off();
  assert.equal(group.active, false);
  a.dispatchEvent(new Event("x"));
  b.dispatchEvent(new Event("y"));
  assert.deepEqual(heard, ["a", "b"]);
  group.off(); // harmless twice
});
