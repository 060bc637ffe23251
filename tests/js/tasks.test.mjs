// The registry of trial types (static/tasks/index.js) and the interface every type implements.
import assert from "node:assert/strict";
import { test } from "node:test";

import * as afc2 from "../../static/tasks/afc2.js";
import * as rating from "../../static/tasks/rating.js";
import { DEFAULT_TASK, TASKS, taskFor, taskName } from "../../static/tasks/index.js";

test("a trial's type is its `task`; a trial without one is a 2-AFC trial", () => {
  assert.equal(taskFor({ task: "afc2" }), afc2);
  assert.equal(taskFor({ trial_index: 3 }), afc2);
  assert.equal(taskFor({ task: "" }), afc2);
  assert.equal(taskName({}), DEFAULT_TASK);
  assert.equal(DEFAULT_TASK, "afc2");
});

test("a rating trial is run by the rating module", () => {
  assert.equal(taskFor({ task: "rating" }), rating);
  assert.equal(TASKS.rating, rating);
});

test("a type the page does not have is an error, not a silent fallback", () => {
  assert.throws(() => taskFor({ task: "ranking" }), /unknown trial type "ranking"/);
  assert.throws(() => taskFor({ task: "toString" }), /unknown trial type/);
});

test("every registered type exports the module interface under its own name", () => {
  assert.ok(Object.keys(TASKS).length >= 1);
  for (const [name, task] of Object.entries(TASKS)) {
    assert.equal(task.name, name);
    for (const fn of ["urls", "answerBody", "mount"]) assert.equal(typeof task[fn], "function", `${name}.${fn}`);
    assert.deepEqual(task.urls({}), [], `${name}.urls of an empty trial`);
  }
});
