// Progressive image preloading with bounded concurrency and retries, and img.decode(): the
// runner (static/trial.js) queues the images of the coming trials, a task type (static/tasks/)
// asks for the ones of the trial it is about to show.
//
// DOM-free (createImage is injected) and tested in node.

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
