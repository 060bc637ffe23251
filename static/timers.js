// Tracked timeouts, animation frames and event listeners that one cancelAll() removes.
//
// Every trial phase owns one group; finishing the phase calls cancelAll(), so no timer,
// rAF callback or listener survives the end of a trial (a late callback would act on the next).
// Pure module: the clock functions are injected, so node tests run it with a fake clock.

/** Rejection reason of delay()/nextFrame()/guard() promises cut short by cancelAll(). */
export class CancelledError extends Error {
  constructor(message = "cancelled") {
    super(message);
    this.name = "CancelledError";
  }
}

/**
 * Default clock functions of the browser, bound to globalThis.
 * @returns {{setTimeout: Function, clearTimeout: Function,
 *   requestAnimationFrame: Function, cancelAnimationFrame: Function}}
 */
function browserClock() {
  const g = globalThis;
  return {
    setTimeout: g.setTimeout.bind(g),
    clearTimeout: g.clearTimeout.bind(g),
    requestAnimationFrame: g.requestAnimationFrame
      ? g.requestAnimationFrame.bind(g)
      : (fn) => g.setTimeout(() => fn(g.performance.now()), 16),
    cancelAnimationFrame: g.cancelAnimationFrame
      ? g.cancelAnimationFrame.bind(g)
      : (id) => g.clearTimeout(id),
  };
}

/**
 * Create a group of tracked timers.
 * @param {object} [clock] setTimeout/clearTimeout/requestAnimationFrame/cancelAnimationFrame
 *   (defaults to the browser's).
 */
export function createTimers(clock = browserClock()) {
  const timeouts = new Set();
  const frames = new Set();
  const unlisteners = new Set();
  const waiters = new Set(); // reject functions of pending promises

  function timeout(fn, ms) {
    const id = clock.setTimeout(() => {
      timeouts.delete(id);
      fn();
    }, ms);
    timeouts.add(id);
    return id;
  }

  function clearTimeoutTracked(id) {
    if (timeouts.delete(id)) clock.clearTimeout(id);
  }

  function frame(fn) {
    const id = clock.requestAnimationFrame((ts) => {
      frames.delete(id);
      fn(ts);
    });
    frames.add(id);
    return id;
  }

  function cancelFrame(id) {
    if (frames.delete(id)) clock.cancelAnimationFrame(id);
  }

  /** addEventListener that cancelAll() undoes; returns its own remover. */
  function listen(target, type, fn, options) {
    target.addEventListener(type, fn, options);
    const off = () => {
      if (unlisteners.delete(off)) target.removeEventListener(type, fn, options);
    };
    unlisteners.add(off);
    return off;
  }

  /** A promise settled by `start(resolve)`, rejected with CancelledError by cancelAll(). */
  function pending(start) {
    return new Promise((resolve, reject) => {
      const entry = { reject };
      waiters.add(entry);
      start((value) => {
        if (waiters.delete(entry)) resolve(value);
      }, (err) => {
        if (waiters.delete(entry)) reject(err);
      });
    });
  }

  /** Resolve after `ms` milliseconds (unless cancelled). */
  function delay(ms) {
    return pending((resolve) => timeout(resolve, Math.max(0, ms)));
  }

  /** Resolve with the timestamp of the next animation frame callback. */
  function nextFrame() {
    return pending((resolve) => frame(resolve));
  }

  /** Follow `promise`, but reject with CancelledError if the group is cancelled first. */
  function guard(promise) {
    return pending((resolve, reject) => promise.then(resolve, reject));
  }

  function cancelAll() {
    for (const id of timeouts) clock.clearTimeout(id);
    timeouts.clear();
    for (const id of frames) clock.cancelAnimationFrame(id);
    frames.clear();
    for (const off of [...unlisteners]) off();
    const toReject = [...waiters];
    waiters.clear();
    for (const w of toReject) w.reject(new CancelledError());
  }

  return {
    timeout,
    clearTimeout: clearTimeoutTracked,
    frame,
    cancelFrame,
    listen,
    delay,
    nextFrame,
    guard,
    cancelAll,
    /** Number of live timeouts, frames, listeners and pending promises. */
    get size() {
      return timeouts.size + frames.size + unlisteners.size + waiters.size;
    },
  };
}
