// Stimulus display: progressive preloading with bounded concurrency and retries, img.decode(),
// and drawing one trial into the stage with no partial paints.
//
// Drawing choice: <img> elements of 224 CSS px, not a canvas. The browser decodes and rasterises
// <img> off the main thread, decode() tells us exactly when an element can be inserted without a
// decode delay, and a canvas scaled by devicePixelRatio would only repeat the browser's own
// upscaling with drawImage. Every box in the stage has integer CSS-pixel sizes and the stage is
// placed at integer offsets, so at an integer devicePixelRatio every image pixel maps to an
// exact DPR x DPR block of device pixels. At an integer DPR > 1 (and an unscaled stage) we set
// data-pixel-exact, and trial.css switches to `image-rendering: pixelated`: each stimulus pixel
// becomes a sharp DPR x DPR block, which is what a 224 px image looks like on the 1x lab monitor
// of the paper at the same physical size (no interpolation blur). At fractional DPR (browser
// zoom, 1.25/1.5 Windows scaling) or when the stage had to be scaled down to fit a small window,
// the default smooth resampling stays, because nearest-neighbour would duplicate rows unevenly.
// The DPR and viewport go with every answer, so analyses can check either way.
//
// The Preloader is DOM-free (createImage is injected) and tested in node.

import { backoffDelay } from "./api.js";

/**
 * Loads and decodes images ahead of need: at most `concurrency` at a time, each retried with
 * backoff. get(url) moves a URL to the front of the queue, and while any image asked for by
 * get() is still loading, no merely wanted image starts: the trial about to be shown gets the
 * whole connection (on a cold 20 Mbit/s start, preloads of later trials sharing the bandwidth
 * delayed the first trial by ~0.4 s; docs/benchmarks.md, "Participant page in the browser").
 */
export class Preloader {
  /**
   * @param {object} [o]
   * @param {number} [o.concurrency] simultaneous loads (default 6, a browser's per-host limit).
   * @param {number} [o.retries] retries per image before get() rejects (default 3).
   * @param {() => {src: string, decode: () => Promise<void>}} [o.createImage]
   * @param {(ms: number) => Promise<void>} [o.sleep]
   * @param {object} [o.backoff] backoffDelay options.
   */
  constructor({
    concurrency = 6,
    retries = 3,
    createImage = () => new globalThis.Image(),
    sleep = (ms) => new Promise((r) => setTimeout(r, ms)),
    backoff = { baseMs: 300, capMs: 5000 },
  } = {}) {
    this.concurrency = Math.max(1, concurrency);
    this.retries = retries;
    this.createImage = createImage;
    this.sleep = sleep;
    this.backoff = backoff;
    this.entries = new Map(); // url -> entry
    this.queue = []; // urls waiting to start, in need order
    this.active = 0;
    this.loadCount = 0; // load attempts started (for tests and diagnostics)
  }

  enqueue(url, front) {
    const entry = { url, state: "queued", attempts: 0, img: null };
    entry.promise = new Promise((resolve, reject) => {
      entry.resolve = resolve;
      entry.reject = reject;
    });
    entry.promise.catch(() => {}); // want()-only entries: nobody awaits their failure
    this.entries.set(url, entry);
    if (front) this.queue.unshift(url);
    else this.queue.push(url);
    return entry;
  }

  /** Queue URLs for loading, in the order they will be needed. Known URLs are skipped. */
  want(urls) {
    for (const url of urls || []) {
      if (typeof url === "string" && url && !this.entries.has(url)) this.enqueue(url, false);
    }
    this.pump();
  }

  /**
   * The decoded image for `url`, loading it first in line if needed.
   * @returns {Promise<object>} the decoded image; rejects after `retries` failed retries.
   */
  get(url) {
    let entry = this.entries.get(url);
    if (!entry) {
      entry = this.enqueue(url, true);
    } else if (entry.state === "queued") {
      this.queue = [url, ...this.queue.filter((u) => u !== url)];
    }
    if (entry.state !== "done") entry.needed = true;
    this.pump();
    return entry.promise;
  }

  /** True while an image asked for by get() is not decoded yet. */
  neededPending() {
    for (const e of this.entries.values()) if (e.needed && e.state !== "done") return true;
    return false;
  }

  /** "queued" | "loading" | "waiting" (between retries) | "done" | undefined. */
  state(url) {
    const e = this.entries.get(url);
    return e ? e.state : undefined;
  }

  pump() {
    while (this.active < this.concurrency && this.queue.length > 0) {
      const entry = this.entries.get(this.queue[0]);
      if (entry && entry.state === "queued" && !entry.needed && this.neededPending()) return;
      this.queue.shift();
      if (entry && entry.state === "queued") this.start(entry);
    }
  }

  async start(entry) {
    entry.state = "loading";
    entry.attempts += 1;
    this.active += 1;
    this.loadCount += 1;
    const img = this.createImage();
    try {
      img.decoding = "async";
    } catch {
      // read-only on some fakes
    }
    img.src = entry.url;
    let failed = null;
    try {
      await img.decode();
    } catch (err) {
      failed = err || new Error(`could not load ${entry.url}`);
    }
    this.active -= 1;
    if (this.entries.get(entry.url) !== entry) {
      this.pump();
      return; // pruned meanwhile
    }
    if (!failed) {
      entry.state = "done";
      entry.img = img;
      entry.resolve(img);
    } else if (entry.attempts <= this.retries) {
      entry.state = "waiting";
      this.pump();
      await this.sleep(backoffDelay(entry.attempts - 1, this.backoff));
      if (this.entries.get(entry.url) === entry && entry.state === "waiting") {
        entry.state = "queued";
        this.queue.unshift(entry.url);
      }
    } else {
      // Forget it, so that a later get() starts afresh (e.g. after the network came back).
      this.entries.delete(entry.url);
      entry.reject(failed);
    }
    this.pump();
  }

  /** Drop decoded images not in `keep` (memory: a session shows thousands of images). */
  prune(keep) {
    const k = new Set(keep);
    for (const [url, e] of this.entries) {
      if (e.state === "done" && !k.has(url)) this.entries.delete(url);
    }
  }
}

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
 * The trial stage inside the task page (templates/participant/task.html).
 * @param {HTMLElement} screen the [data-screen="trial"] element.
 */
export function createStage(screen) {
  const q = (sel) => screen.querySelector(sel);
  const stage = q("[data-stage]");
  const wrap = q("[data-stage-wrap]");
  const grids = { min: q('[data-grid="min"]'), max: q('[data-grid="max"]') };
  const queries = { upper: q('[data-query="upper"]'), lower: q('[data-query="lower"]') };
  const buttons = [...screen.querySelectorAll("[data-response][data-confidence]")];
  let scale = 1;

  const feedbackText = q("[data-feedback-text]");

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

  /** Scale the stage down (never up) to fit the wrapper; integer offsets keep pixels aligned. */
  function fit() {
    stage.style.transform = "";
    const w = stage.offsetWidth;
    const h = stage.offsetHeight;
    const aw = wrap.clientWidth;
    const ah = wrap.clientHeight;
    scale = w > 0 && h > 0 && aw > 0 && ah > 0 ? Math.min(1, aw / w, ah / h) : 1;
    const left = Math.max(0, Math.floor((aw - w * scale) / 2));
    const top = Math.max(0, Math.floor((ah - h * scale) / 2));
    stage.style.transform = scale < 1 ? `scale(${scale})` : "";
    stage.style.left = `${left}px`;
    stage.style.top = `${top}px`;
    const dpr = globalThis.devicePixelRatio || 1;
    stage.dataset.pixelExact = String(scale === 1 && Number.isInteger(dpr) && dpr > 1);
    return scale;
  }

  /** Window size (CSS px) at which the stage shows at `minScale`: the stage's own size scaled,
   * plus what the page around the stage takes (the trial screen must be laid out). */
  function windowNeeded(minScale) {
    const prev = stage.style.transform;
    stage.style.transform = "";
    const w = stage.offsetWidth;
    const h = stage.offsetHeight;
    stage.style.transform = prev;
    const chromeW = Math.max(0, globalThis.innerWidth - wrap.clientWidth);
    const chromeH = Math.max(0, globalThis.innerHeight - wrap.clientHeight);
    return { w: Math.ceil(w * minScale + chromeW), h: Math.ceil(h * minScale + chromeH) };
  }

  return {
    buttons,
    windowNeeded,

    /** Set the grid mode and reference count the stage lays out (before images arrive). */
    layout(trial) {
      const mode = ["min_max", "max_only", "none"].includes(trial.grid_mode) ? trial.grid_mode : "min_max";
      stage.dataset.gridMode = mode;
      stage.dataset.nReferences = String(trial.n_references ?? (trial.references?.max?.length || 0));
    },

    /** Insert a prepared trial in one synchronous step and make it visible. */
    show(prepared) {
      this.layout(prepared.trial);
      clearMarks();
      const bySlot = { min: [], max: [], upper: [], lower: [] };
      for (const im of prepared.images) bySlot[im.slot].push(im.el);
      grids.min.replaceChildren(...bySlot.min);
      grids.max.replaceChildren(...bySlot.max);
      queries.upper.replaceChildren(...bySlot.upper);
      queries.lower.replaceChildren(...bySlot.lower);
      delete screen.dataset.blank;
      fit();
    },

    /** Blank screen between trials (and while the next trial's images load). Nothing of the
     * last trial's button states stays: no focus, no hover until the pointer moves again. */
    blank() {
      screen.dataset.blank = "true";
      clearMarks();
      delete stage.dataset.pointerMoved;
      const active = globalThis.document?.activeElement;
      if (active && screen.contains(active) && typeof active.blur === "function") active.blur();
    },

    /** Remove the images of the last trial (lets the browser free their decoded pixels). */
    clear() {
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

    clearMarks,
    fit,
    get scale() {
      return scale;
    },
  };
}
