// The 2-AFC stage: the image slots of a trial, decoding them, and drawing one trial into the
// stage markup (templates/tasks/afc2.html) with no partial paints; the feedback marks.
//
// Drawing choice: <img> elements of 224 CSS px, not a canvas. The browser decodes and rasterises
// <img> off the main thread, decode() tells us exactly when an element can be inserted without a
// decode delay, and a canvas scaled by devicePixelRatio would only repeat the browser's own
// upscaling with drawImage. Every box in the stage has integer CSS-pixel sizes and the stage is
// placed at integer offsets (static/fit.js, which also says when images are drawn pixelated).

import { createFit } from "../../fit.js";

/** The image slots of a trial, in drawing order. */
export function trialSlots(trial) {
  const refs = (trial && trial.references) || {};
  const q = (trial && trial.queries) || {};
  const slots = [];
  (Array.isArray(refs.min) ? refs.min : []).forEach((url, i) => slots.push({ slot: "min", i, url }));
  (Array.isArray(refs.max) ? refs.max : []).forEach((url, i) => slots.push({ slot: "max", i, url }));
  slots.push({ slot: "upper", i: 0, url: q.upper });
  slots.push({ slot: "lower", i: 0, url: q.lower });
  return slots;
}

/** The URLs a trial needs, without duplicates. */
export function trialUrls(trial) {
  return [...new Set(trialSlots(trial).map((s) => s.url).filter(Boolean))];
}

const ALT = {
  min: (i) => `Minimally activating reference image ${i + 1}`,
  max: (i) => `Maximally activating reference image ${i + 1}`,
  upper: () => "Upper image",
  lower: () => "Lower image",
};

/**
 * Load every image of a trial and make decoded, not yet inserted <img> elements for it.
 * Resolves only when all of them are decoded: a trial never starts before that.
 * @param {object} trial the API's trial object.
 * @param {Preloader} preloader
 * @param {number} sizePx CSS size of an image.
 * @returns {Promise<{trial: object, images: {slot: string, i: number, el: HTMLImageElement}[]}>}
 */
export async function prepareTrial(trial, preloader, sizePx = 224) {
  const slots = trialSlots(trial);
  if (slots.some((s) => typeof s.url !== "string" || !s.url)) throw new Error("trial without query images");
  await Promise.all(trialUrls(trial).map((u) => preloader.get(u)));
  // One element per slot: a URL can appear twice in a trial (catch trials reuse references).
  // The bytes come from the memory cache, so these decodes are quick.
  const images = slots.map((s) => {
    const el = new globalThis.Image(sizePx, sizePx);
    el.decoding = "sync";
    el.src = s.url;
    el.alt = ALT[s.slot](s.i);
    el.draggable = false;
    el.className = "stim";
    return { slot: s.slot, i: s.i, el };
  });
  await Promise.all(images.map((x) => x.el.decode()));
  return { trial, images };
}

/**
 * The stage inside the 2-AFC markup (templates/tasks/afc2.html).
 * @param {HTMLElement} root the [data-task-type="afc2"] element.
 */
export function createStage(root) {
  const q = (sel) => root.querySelector(sel);
  const stage = q("[data-stage]");
  const grids = { min: q('[data-grid="min"]'), max: q('[data-grid="max"]') };
  const queries = { upper: q('[data-query="upper"]'), lower: q('[data-query="lower"]') };
  const buttons = [...root.querySelectorAll("[data-response][data-confidence]")];
  const feedbackText = q("[data-feedback-text]");
  const fitter = createFit(stage, q("[data-stage-wrap]"));

  function clearMarks() {
    for (const el of [...buttons, queries.upper, queries.lower]) delete el.dataset.frame;
    feedbackText.hidden = true;
    feedbackText.textContent = "";
  }

  // Hover styles of the answer buttons only after the pointer moved in this trial: a pointer
  // resting where the last answer was given must not highlight a button of the next trial.
  stage.addEventListener("pointermove", () => {
    if (stage.dataset.phase === "open") stage.dataset.pointerMoved = "true";
  });

  return {
    el: stage,
    buttons,
    fit: fitter.fit,
    windowNeeded: fitter.windowNeeded,
    get scale() {
      return fitter.scale;
    },

    /** Set the grid mode and reference count the stage lays out (before images arrive). */
    layout(trial) {
      const mode = ["min_max", "max_only", "none"].includes(trial.grid_mode) ? trial.grid_mode : "min_max";
      stage.dataset.gridMode = mode;
      stage.dataset.nReferences = String(trial.n_references ?? (trial.references?.max?.length || 0));
    },

    /** Insert a prepared trial in one synchronous step. */
    show(prepared) {
      this.layout(prepared.trial);
      clearMarks();
      const bySlot = { min: [], max: [], upper: [], lower: [] };
      for (const im of prepared.images) bySlot[im.slot].push(im.el);
      grids.min.replaceChildren(...bySlot.min);
      grids.max.replaceChildren(...bySlot.max);
      queries.upper.replaceChildren(...bySlot.upper);
      queries.lower.replaceChildren(...bySlot.lower);
    },

    /** Nothing of the last trial stays: no marks, no images (lets the browser free their
     * decoded pixels), no hover until the pointer moves again. */
    clear() {
      clearMarks();
      delete stage.dataset.pointerMoved;
      for (const el of [grids.min, grids.max, queries.upper, queries.lower]) el.replaceChildren();
    },

    setLocked(locked) {
      for (const b of buttons) b.disabled = locked;
    },

    /** Black frame on the chosen button and image. */
    markChosen(response, confidence) {
      for (const b of buttons) {
        if (b.dataset.response === response && Number(b.dataset.confidence) === confidence) b.dataset.frame = "chosen";
      }
      queries[response].dataset.frame = "chosen";
    },

    /** Green frame on the correct image (replaces a black one there). */
    markCorrect(response) {
      queries[response].dataset.frame = "correct";
    },

    /** IMI's feedback: "Correct!" (green) or "Incorrect!" (red) between the queries. */
    showFeedbackText(correct) {
      feedbackText.textContent = correct ? "Correct!" : "Incorrect!";
      feedbackText.dataset.correct = String(Boolean(correct));
      feedbackText.hidden = false;
    },
  };
}
