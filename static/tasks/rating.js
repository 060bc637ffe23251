// The rating trial type on the page: how intuitive a unit's images are (the paper's
// intuitiveness ratings). The unit's synthetic images (left) and natural images (right), up to
// 3 x 3 thumbnails each, and a slider from trial.scale.min to trial.scale.max (the paper's
// -100..100) answered with Continue or Enter. Implements the task interface of
// static/tasks/index.js; its markup is templates/tasks/rating.html, its styles
// static/tasks/rating/rating.css, its helpers static/tasks/rating/ (scale.js: the slider's
// scale and value; input.js: Continue and Enter).
//
// The answer is {value}: the slider's position, an integer within the scale. The slider starts
// at scale.start and Continue is enabled as soon as the controls open: the participant need
// not move the slider first, so a rating of exactly `start` is one press away like any other
// (requiring a move would make the middle of the scale the one value that costs more). Ratings have no right answer: feedback()
// shows nothing.
//
// Layout: a stage of fixed size (816 x 546 CSS px in Chromium, rating.css) with 112 px thumbnails,
// placed and scaled down by static/fit.js when the window is too small; it fits a 1280 x 720
// window at scale 1. ctx.imageSizePx (the 2-AFC stimulus size) is not used: thumbnails have
// their own size.

import { createFit } from "../fit.js";
import { createInput } from "./rating/input.js";
import { normaliseScale, ratingValue, sliderName } from "./rating/scale.js";

export const name = "rating";

/** CSS size of a thumbnail (rating.css, --rating-thumb). */
export const THUMB_PX = 112;

/** The two groups of images, in drawing (and need) order. */
export const GROUPS = Object.freeze(["synthetic", "natural"]);

const ALT = { synthetic: (i) => `Synthetic image ${i + 1}`, natural: (i) => `Natural image ${i + 1}` };

/** The image URLs of each group (at most 9; anything but a non-empty string is left out). */
export function trialImages(trial) {
  const images = (trial && trial.images) || {};
  const out = {};
  for (const g of GROUPS) {
    out[g] = (Array.isArray(images[g]) ? images[g] : []).filter((u) => typeof u === "string" && u).slice(0, 9);
  }
  return out;
}

/** The images a trial needs, synthetic then natural, without duplicates. */
export function urls(trial) {
  const images = trialImages(trial);
  return [...new Set(GROUPS.flatMap((g) => images[g]))];
}

/**
 * The type-specific fields of the answer's POST body (docs/participant_api.md).
 * @param {{value: number}} answer
 */
export function answerBody(answer) {
  return { answer: { task: name, value: answer.value } };
}

/**
 * Take over the rating markup of the task page (see static/tasks/index.js, mount).
 * @param {{root: HTMLElement, config: object, preloader: object, imageSizePx: number}} ctx
 */
export function mount({ root, preloader }) {
  const q = (sel) => root.querySelector(sel);
  const doc = root.ownerDocument || globalThis.document;
  const stage = q("[data-stage]");
  const grids = { synthetic: q('[data-rating-grid="synthetic"]'), natural: q('[data-rating-grid="natural"]') };
  const figures = { synthetic: q('[data-rating-figure="synthetic"]'), natural: q('[data-rating-figure="natural"]') };
  const slider = q("[data-rating-slider]");
  const submit = q("[data-rating-submit]");
  const minLabel = q("[data-rating-min-label]");
  const maxLabel = q("[data-rating-max-label]");
  const fitter = createFit(stage, q("[data-stage-wrap]"));
  let scale = normaliseScale(undefined);
  let input = null;

  function setLocked(locked) {
    slider.disabled = locked;
    submit.disabled = locked;
  }

  function resetSlider() {
    slider.value = String(scale.start);
  }

  /** Scale, labels and grid sizes of a trial; no images. */
  function layout(trial) {
    scale = normaliseScale(trial?.scale);
    // Bounds before the value: the range input clamps the value to the bounds it has.
    slider.min = String(scale.min);
    slider.max = String(scale.max);
    slider.step = String(scale.step);
    resetSlider();
    slider.setAttribute("aria-label", sliderName(scale));
    minLabel.textContent = scale.min_label;
    maxLabel.textContent = scale.max_label;
    const images = trialImages(trial);
    for (const g of GROUPS) {
      grids[g].dataset.n = String(images[g].length);
      if (images[g].length === 0) figures[g].dataset.empty = "true";
      else delete figures[g].dataset.empty;
    }
  }

  return {
    stage,
    noun: "Rating",
    intro: "Move the slider, then press Continue or Enter.",

    layout,

    /** Every image through the preloader, then one decoded <img> per slot (a URL may appear
     * twice; its bytes come from the memory cache). */
    async prepare(trial) {
      const images = trialImages(trial);
      await Promise.all(urls(trial).map((u) => preloader.get(u)));
      const els = {};
      for (const g of GROUPS) {
        els[g] = images[g].map((url, i) => {
          const el = doc.createElement("img");
          el.width = THUMB_PX;
          el.height = THUMB_PX;
          el.decoding = "sync";
          el.src = url;
          el.alt = ALT[g](i);
          el.draggable = false;
          el.className = "rating-thumb";
          return el;
        });
      }
      await Promise.all(GROUPS.flatMap((g) => els[g]).map((el) => el.decode()));
      return { trial, images: els };
    },

    /** Insert a prepared trial in one synchronous step, the slider at the scale's start. */
    show(prepared) {
      layout(prepared.trial);
      for (const g of GROUPS) grids[g].replaceChildren(...prepared.images[g]);
    },

    collect({ since }) {
      return new Promise((resolve) => {
        input = createInput({
          button: submit,
          keyTarget: doc,
          onAnswer: (a) => resolve({ answer: { value: ratingValue(slider.value, scale) }, input: a.input, atMs: a.atMs }),
        });
        setLocked(false);
        input.start(since);
        // Arrow keys move the slider at once; a mouse or a finger does not need the focus.
        if (typeof slider.focus === "function") slider.focus({ preventScroll: true });
      });
    },

    stop() {
      if (input) input.stop();
      input = null;
      setLocked(true);
    },

    feedback: async () => {},

    /** Nothing of the last trial stays: no images, the slider back at the start. */
    hide() {
      for (const g of GROUPS) grids[g].replaceChildren();
      resetSlider();
    },

    fit: () => fitter.fit(),
    windowNeeded: (minScale) => fitter.windowNeeded(minScale),
    get scale() {
      return fitter.scale;
    },
  };
}
