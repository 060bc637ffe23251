// The 2-AFC trial type on the page (docs/protocol.md, "The task"): min and max reference grids,
// two query images (upper, lower) and six answer buttons or keys between them, side x
// confidence 1..3. Implements the task interface of static/tasks/index.js; its markup is
// templates/tasks/afc2.html, its styles static/tasks/afc2/afc2.css, its helpers
// static/tasks/afc2/ (stage.js: images and drawing; input.js: buttons and keys).
//
// Feedback (config.feedback_style, docs/protocol.md): "frames" (the paper's) puts a black frame
// on the chosen button and image, then, after timing.choice_ms AND the server's
// acknowledgement, a green frame on the correct image for timing.correct_ms; "text" (IMI's)
// shows "Correct!" or "Incorrect!" for timing.correct_ms once acknowledged.

import { timingOf } from "../timing.js";
import { createInput, keyLabels, normaliseKeys } from "./afc2/input.js";
import { createStage, prepareTrial, trialUrls } from "./afc2/stage.js";

export const name = "afc2";

/** Feedback durations when the trial's timing leaves them out (the paper's). */
const FEEDBACK_TIMING = Object.freeze({ choice_ms: 500, correct_ms: 1500 });

/** The images a trial needs, references then queries, without duplicates. */
export function urls(trial) {
  return trialUrls(trial);
}

/**
 * The type-specific fields of the answer's POST body (docs/participant_api.md).
 * @param {{response: "upper"|"lower", confidence: 1|2|3}} answer
 */
export function answerBody(answer) {
  return { answer: { task: name, response: answer.response, confidence: answer.confidence } };
}

/** The correct side from an acknowledgement, or null when the server does not say. */
export function correctSide(ack) {
  const side = ack?.solution?.response;
  return side === "upper" || side === "lower" ? side : null;
}

/**
 * Show the feedback of one answer on `marks` (the stage's markChosen, markCorrect,
 * showFeedbackText); resolves when it has been shown for its time.
 * @param {object} marks
 * @param {"frames"|"text"} style
 * @param {{answer: object, ack: Promise<object|null>, timing: object, timers: object}} o
 *   `ack` resolves with the server's acknowledgement (null when the answer was refused);
 *   `timers` is the feedback phase's timers.js group (cancelled when the trial ends).
 */
export async function showFeedback(marks, style, { answer, ack, timing, timers }) {
  const t = timingOf({ timing }, FEEDBACK_TIMING);
  if (style === "text") {
    const a = await timers.guard(ack);
    if (typeof a?.correct !== "boolean") return;
    marks.showFeedbackText(a.correct);
    await timers.delay(t.correct_ms);
    return;
  }
  marks.markChosen(answer.response, answer.confidence);
  // Hold the black frame for choice_ms, and longer if the acknowledgement is late: the green
  // frame needs the server's answer and must never come before it.
  const [, a] = await Promise.all([timers.delay(t.choice_ms), timers.guard(ack)]);
  const side = correctSide(a);
  if (side === null) return;
  marks.markCorrect(side);
  await timers.delay(t.correct_ms);
}

/**
 * Take over the afc2 markup of the task page (see static/tasks/index.js, mount).
 * @param {{root: HTMLElement, config: object, preloader: object, imageSizePx: number}} ctx
 */
export function mount({ root, config, preloader, imageSizePx }) {
  const stage = createStage(root);
  const keys = normaliseKeys(config?.keys);
  const style = config?.feedback_style === "text" ? "text" : "frames";
  let input = null;

  keyLabels(keys).then((labels) => {
    const caps = (row) =>
      row.flatMap((label, i) => {
        const kbd = document.createElement("kbd");
        kbd.textContent = label;
        return i === 0 ? [kbd] : [" ", kbd];
      });
    root.querySelector("[data-key-hint]").replaceChildren(
      "Click a number, or press ",
      ...caps(labels.upper),
      " for the upper image and ",
      ...caps(labels.lower),
      " for the lower image. 1 = guess, 3 = sure.",
    );
  });

  return {
    stage: stage.el,
    intro: "Answer with the buttons between the two centre images, or with the keys shown under them.",

    layout: (trial) => stage.layout(trial),
    prepare: (trial) => prepareTrial(trial, preloader, imageSizePx),
    show: (prepared) => stage.show(prepared),

    collect({ since }) {
      return new Promise((resolve) => {
        input = createInput({
          root: stage.el,
          keyTarget: document,
          keys,
          onAnswer: (a) => resolve({ answer: { response: a.response, confidence: a.confidence }, input: a.input, atMs: a.at_ms }),
        });
        stage.setLocked(false);
        input.start(since);
      });
    },

    stop() {
      if (input) input.stop();
      input = null;
      stage.setLocked(true);
    },

    feedback: (o) => showFeedback(stage, style, o),
    hide: () => stage.clear(),
    fit: () => stage.fit(),
    windowNeeded: (minScale) => stage.windowNeeded(minScale),
    get scale() {
      return stage.scale;
    },
  };
}
