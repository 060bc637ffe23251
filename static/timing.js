// Stimulus-onset stamps from requestAnimationFrame and frame-interval statistics.
//
// Onset rule (house_style §4, issue 2): onset is stamped in the SECOND rAF callback after the
// trial's decoded images were inserted into the DOM ("double rAF"):
//   - the insertion happens synchronously in a task; the 1st rAF callback runs at the start of
//     the next rendering opportunity, *before* that frame's style/layout/paint, i.e. before the
//     images have been painted even once;
//   - the 2nd rAF callback runs at the start of the following frame, i.e. after the frame that
//     contains the images has been painted and handed to the compositor.
// We store the 2nd callback's `timestamp` argument (the frame's begin time, same time base as
// performance.now()), which is the best estimate the web platform gives of the vsync at which
// the images became visible. With a 60 Hz display the error is at most about one frame
// (compositor pipelining), and it is the same on every trial.
// Pure module (no DOM): timers are injected.

/** Round a millisecond value to 0.1 ms (performance.now() is coarsened to >= 5 us anyway). */
export function roundMs(ms) {
  return Math.round(ms * 10) / 10;
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
 * Wait for the frame in which freshly inserted content is on screen (double rAF, see above).
 * Call it right after the synchronous DOM insertion.
 * @param {{nextFrame: () => Promise<number>}} timers a timers.js group.
 * @returns {Promise<number>} the onset timestamp (ms, performance.now() time base).
 */
export async function onsetAfterPaint(timers) {
  await timers.nextFrame(); // before the paint that shows the images
  return timers.nextFrame(); // after it
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
