// The trial types the task page can run, by the name a trial carries in `trial.task`
// (docs/adding-a-task.md, "On the page"). The runner (static/trial.js) knows no type: it asks
// taskFor (below) for the trial's module and drives it through the interface below.
//
// A task type is one ES module, static/tasks/<name>.js (helpers in static/tasks/<name>/), with
// its markup in templates/tasks/<name>.html. The module exports:
//
//   name: string
//       The type's name, as in trial.task.
//   urls(trial) -> string[]
//       The image URLs the trial needs, in need order. The runner preloads them (with the
//       server's `preload` list of the coming trials) before the trial's turn.
//   answerBody(answer) -> object
//       The type-specific fields of the answer's POST body (docs/participant_api.md); the
//       runner adds what every answer has (response_uuid, trial_index, timing, display,
//       attention). The only place where the type's answer meets the wire format.
//   mount(ctx) -> view
//       Called once per page, the first time a trial of this type comes, with
//       ctx = {root, config, preloader, imageSizePx}: root is the type's element on the page
//       ([data-task-type="<name>"], from templates/tasks/<name>.html), config the page's
//       #trial-config object (the type reads its own settings there), preloader the runner's
//       static/preloader.js instance, imageSizePx the CSS size of a stimulus image.
//
// The view (every method but prepare, collect and feedback is synchronous):
//
//   stage: HTMLElement
//       The [data-stage] element. The runner sets its data-phase: "locked" from the insertion
//       until the answer may be given, "open" while it may, "feedback" after it.
//   noun: string | undefined
//       What one trial is called in the progress line ("Rating 2 of 3"); default "Trial".
//   intro: string | undefined
//       How to answer, in one line: shown on the first block message of this type.
//   layout(trial)
//       Before the images are ready: lay the stage out as the trial will show it, so that the
//       runner can check the window is large enough (windowNeeded) while the images load.
//   prepare(trial) -> Promise<prepared>
//       Load and decode everything the trial shows; resolve only when it can be inserted with
//       no further work. A rejection is retried by the runner (with backoff, forever).
//   show(prepared)
//       Insert everything at once, synchronously. The runner calls it inside an animation
//       frame callback and stamps the onset at the following frame (static/timing.js), so
//       everything the trial shows must go in here and nothing may wait for a later task.
//   collect({since}) -> Promise<{answer, input, atMs}>
//       Open the answer controls now and resolve with the first answer whose input event is
//       stamped at or after `since` (ms, performance.now() timeline; earlier presses fell into
//       the response lock). atMs is the input event's own time stamp (static/input.js,
//       eventTime), input is "mouse" | "touch" | "keyboard", answer is the type's own object
//       (what answerBody and feedback take).
//   stop()
//       Close the answer controls and remove the listeners collect added (the answer was
//       given, or the trial ends otherwise). Harmless when nothing is open.
//   feedback({answer, ack, timing, timers}) -> Promise<void>
//       Show the trial-wise feedback (only called when the trial has feedback); resolve when it
//       has been shown long enough. ack is a Promise of the server's acknowledgement (null when
//       the answer was refused): feedback that needs the result must wait for it. timing is
//       the trial's `timing` object; timers the feedback phase's static/timers.js group, which
//       the runner cancels when the trial ends (use its delay/guard for every wait).
//   hide()
//       Remove what the last trial showed (images, marks), ready for the next.
//   fit() -> number; windowNeeded(minScale) -> {w, h}; scale: number
//       Scale the stage to the window (1 = native size, never more), the window the stage needs
//       at minScale, and the scale of the last fit (stored with every answer). static/fit.js
//       does this for a stage of fixed size.
//
// The runner, per trial: blank screen; view.hide(); view.layout(trial); window check;
// view.prepare(trial) (retried); at least timing.blank_ms of blank; data-phase "locked";
// view.show() in one animation frame, onset at the next; after timing.response_lock_ms
// data-phase "open" and view.collect(); view.stop(); POST the answer (in localStorage first);
// data-phase "feedback" and view.feedback() if trial.feedback is not false; blank screen;
// view.hide().

/** The type a trial has when it names none. */
export const DEFAULT_TASK = "afc2";

/** What a type's name may look like (it becomes a module path). */
const NAME = /^[a-z][a-z0-9_]{0,31}$/;

const loaded = new Map(); // name -> Promise of the module

/** The name of a trial's type: `trial.task`, or DEFAULT_TASK when it has none. */
export function taskName(trial) {
  return typeof trial?.task === "string" && trial.task ? trial.task : DEFAULT_TASK;
}

/**
 * The module of a trial's type, static/tasks/<name>.js, imported when first needed (the task
 * page lists every module under static/tasks/ in its import map and modulepreload links, so
 * this takes it from the module map without a request). No registry to edit: a new type is a
 * new module. Rejects for a type this page does not have.
 * @returns {Promise<object>}
 */
export function taskFor(trial) {
  const name = taskName(trial);
  if (!NAME.test(name)) return Promise.reject(unknown(name));
  if (!loaded.has(name)) {
    const module = import(`./${name}.js`).then(
      (m) => {
        if (m.name !== name || typeof m.mount !== "function") throw unknown(name);
        return m;
      },
      () => {
        loaded.delete(name); // e.g. a network failure: a later call tries again
        throw unknown(name);
      },
    );
    loaded.set(name, module);
  }
  return loaded.get(name);
}

function unknown(name) {
  return new Error(`unknown trial type ${JSON.stringify(name)}`);
}
