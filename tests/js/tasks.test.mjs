// The trial types on the page (static/tasks/index.js): a type is found by its name, and every
// type implements the module interface.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { test } from "node:test";

import * as afc2 from "../../static/tasks/afc2.js";
import * as rating from "../../static/tasks/rating.js";
import { DEFAULT_TASK, taskFor, taskName } from "../../static/tasks/index.js";

test("a trial's type is its `task`; a trial without one is a 2-AFC trial", async () => {
  assert.equal(await taskFor({ task: "afc2" }), afc2);
  assert.equal(await taskFor({ trial_index: 3 }), afc2);
  assert.equal(await taskFor({ task: "" }), afc2);
  assert.equal(taskName({}), DEFAULT_TASK);
  assert.equal(DEFAULT_TASK, "afc2");
});

test("a rating trial is run by the rating module, found by its name alone", async () => {
  assert.equal(await taskFor({ task: "rating" }), rating);
  assert.equal(await taskFor({ task: "rating" }), await taskFor({ task: "rating" }));
});

test("a type the page does not have is an error, not a silent fallback", async () => {
  await assert.rejects(taskFor({ task: "ranking" }), /unknown trial type "ranking"/);
  await assert.rejects(taskFor({ task: "toString" }), /unknown trial type/);
  await assert.rejects(taskFor({ task: "../api" }), /unknown trial type/);
  await assert.rejects(taskFor({ task: "index" }), /unknown trial type "index"/); // not a type
});

test("every module in static/tasks/ exports the interface under its own name", async () => {
  const dir = new URL("../../static/tasks/", import.meta.url);
  const names = readdirSync(dir)
    .filter((f) => f.endsWith(".js") && f !== "index.js")
    .map((f) => f.slice(0, -3));
  assert.ok(names.includes("afc2") && names.includes("rating"));
  for (const name of names) {
    const task = await taskFor({ task: name });
    assert.equal(task.name, name);
    for (const fn of ["urls", "answerBody", "mount"]) assert.equal(typeof task[fn], "function", `${name}.${fn}`);
    assert.deepEqual(task.urls({}), [], `${name}.urls of an empty trial`);
  }
});
