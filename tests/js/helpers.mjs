// Fakes shared by the node tests of the task-page modules (no DOM, no network).

/** A manual clock: setTimeout/clearTimeout/requestAnimationFrame/cancelAnimationFrame. */
export function fakeClock() {
  let now = 0;
  let nextId = 1;
  const timeouts = new Map();
  const frames = new Map();
  return {
    setTimeout(fn, ms) {
      const id = nextId++;
      timeouts.set(id, { fn, at: now + Math.max(0, ms) });
      return id;
    },
    clearTimeout(id) {
      timeouts.delete(id);
    },
    requestAnimationFrame(fn) {
      const id = nextId++;
      frames.set(id, fn);
      return id;
    },
    cancelAnimationFrame(id) {
      frames.delete(id);
    },
    /** Run every timeout due within `ms`, in time order. */
    advance(ms) {
      const end = now + ms;
      for (;;) {
        let best = null;
        for (const [id, t] of timeouts) if (t.at <= end && (!best || t.at < best[1].at)) best = [id, t];
        if (!best) break;
        timeouts.delete(best[0]);
        now = best[1].at;
        best[1].fn();
      }
      now = end;
    },
    /** Run the callbacks of one animation frame with timestamp `ts`. */
    frame(ts) {
      const due = [...frames.values()];
      frames.clear();
      for (const fn of due) fn(ts);
    },
    /** The clock's time (ms): inside a timeout's callback, the time it was due. */
    get now() {
      return now;
    },
    get pendingTimeouts() {
      return timeouts.size;
    },
    get pendingFrames() {
      return frames.size;
    },
  };
}

/** Let pending promise callbacks run. */
export async function flush(times = 10) {
  for (let i = 0; i < times; i += 1) await new Promise((r) => setImmediate(r));
}

/** A fetch Response stand-in. */
export function jsonResponse(status, data) {
  return {
    ok: status >= 200 && status < 300,
    status,
    async json() {
      if (data === undefined) throw new SyntaxError("no body");
      return data;
    },
  };
}

/**
 * A fake fetch answering from a script: each entry is a function (url, init) -> response
 * (or a thrown error for a network failure). Records every call.
 */
export function scriptedFetch(script) {
  const calls = [];
  const fn = async (url, init) => {
    const body = init && init.body ? JSON.parse(init.body) : undefined;
    calls.push({ url, method: (init && init.method) || "GET", body, init });
    const step = script.length > 1 ? script.shift() : script[0];
    return step(url, init, body);
  };
  fn.calls = calls;
  return fn;
}
