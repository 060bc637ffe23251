// The input helpers every task type shares (static/input.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { codeLabel, eventTime, inputKindForPointer, layoutLabels } from "../../static/input.js";

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
