// Stimulus-onset stamps from requestAnimationFrame and frame-interval statistics.
//
// Onset rule: a trial's
// decoded images are inserted in the microtask checkpoint of a rAF callback ("double rAF"):
//   - 1st rAF: the images are inserted at the start of that frame's rendering, *before* its
//     style/layout/paint, so this frame is the first one that paints them;
//   - 2nd rAF: runs at the start of the following frame, i.e. after the frame that contains
//     the images has been painted and handed to the compositor. Onset is stamped here.
// We store the 2nd callback's `timestamp` argument (the frame's begin time, same time base as
// performance.now()), which is the best estimate the web platform gives of the vsync at which
// the images became visible. With a 60 Hz display the error is at most about one frame
// (compositor pipelining), and it is the same on every trial.
// Why insert inside a rAF rather than in the task that ends the blank: a rAF
// timestamp is the time its frame *began*; a task inserting at an arbitrary moment of a frame
// gives onset 0 to 2 frames after the insertion depending on the vsync phase (measured in
// headless Chromium), while frame-aligned insertion puts onset exactly one frame after the
// painting frame began, so answer -> next onset varies by one frame, not two.
// Guard: on a starved main thread Chromium can run frames back to back with stale
// begin times, so that the 2nd timestamp precedes the insertion itself (seen in headless
// Chromium on an overloaded machine: onset up to 18 ms before the paint). Images cannot be
// visible before they are in the DOM, so onset is never earlier than the insertion.
// Pure module (no DOM): timers are injected.

/** Round a millisecond value to 0.1 ms (performance.now() is coarsened to >= 5 us anyway). */
export function roundMs(ms) {
  return Math.round(ms * 10) / 10;
}

/**
 * The durations in `defaults` (ms), taken from `trial.timing` where it has a valid value
 * (a finite number >= 0) and from `defaults` where not.
 * @param {{timing?: object}} trial
 * @param {Record<string, number>} defaults
 */
export function timingOf(trial, defaults) {
  const t = { ...defaults };
  for (const k of Object.keys(t)) {
    const v = trial?.timing?.[k];
    if (typeof v === "number" && Number.isFinite(v) && v >= 0) t[k] = v;
  }
  return t;
}

/** Running mean and max of the intervals between consecutive animation-frame timestamps. */
export class FrameIntervalStats {
  constructor() {
    this.last = null;
    this.count = 0;
    this.sum = 0;
    this.max = 0;
  }

  /** Add one rAF timestamp (ms). Timestamps that do not increase are ignored. */
  add(ts) {
    if (this.last !== null) {
      const d = ts - this.last;
      if (!(d > 0)) return;
      this.count += 1;
      this.sum += d;
      if (d > this.max) this.max = d;
    }
    this.last = ts;
  }

  /**
   * Summary of the intervals seen so far.
   * @returns {{mean_ms: number|null, max_ms: number|null, n_intervals: number}}
   *   null values when fewer than two frames were seen.
   */
  summary() {
    if (this.count === 0) return { mean_ms: null, max_ms: null, n_intervals: 0 };
    return {
      mean_ms: roundMs(this.sum / this.count),
      max_ms: roundMs(this.max),
      n_intervals: this.count,
    };
  }
}

/**
 * Insert content at the start of the next animation frame and stamp its onset (double rAF,
 * see above).
 * @param {{nextFrame: () => Promise<number>}} timers a timers.js group.
 * @param {() => void} insert synchronous DOM insertion; runs after the next frame's rAF
 *   callbacks and before that frame's style, layout and paint.
 * @param {() => number} [now] performance.now.
 * @returns {Promise<number>} the onset (ms, performance.now() time base): the following frame's
 *   timestamp, but never earlier than the insertion.
 */
export async function showAtNextFrame(timers, insert, now = () => globalThis.performance.now()) {
  await timers.nextFrame(); // the frame that will paint the content first
  insert();
  const inserted = now();
  const ts = await timers.nextFrame(); // the frame after that paint
  return Math.max(ts, inserted);
}

/**
 * Record every animation frame from onset until the group is cancelled (at the answer).
 * @param {{frame: (fn: (ts: number) => void) => unknown}} timers a timers.js group.
 * @param {number} onsetTs the onset timestamp, used as the first sample.
 * @returns {FrameIntervalStats} filled while the loop runs.
 */
export function startFrameLoop(timers, onsetTs) {
  const stats = new FrameIntervalStats();
  stats.add(onsetTs);
  const tick = (ts) => {
    stats.add(ts);
    timers.frame(tick);
  };
  timers.frame(tick);
  return stats;
}
