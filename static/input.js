// Helpers for a task type's answer input (static/tasks/): when an input happened, what kind of
// input it was, and how a key is labelled in the participant's keyboard layout.
//
// Response times are measured from the input event's own `timeStamp` (the moment the browser
// received the input, on the performance.now() timeline), not from when a handler ran: a task
// type takes an answer when the response begins (pointerdown, keydown) and stamps it with
// eventTime(). DOM-free: node tests pass plain EventTargets.

/** An event's own time stamp (performance.now() timeline), or `fallback()` when it has none. */
export function eventTime(e, fallback = () => globalThis.performance.now()) {
  const t = e && e.timeStamp;
  return typeof t === "number" && Number.isFinite(t) && t > 0 ? t : fallback();
}

/**
 * Event listeners added one by one and removed together: a task type's answer input adds its
 * listeners when the answer may be given and removes them all when it was (or the trial ends).
 */
export function listenerGroup() {
  let offs = [];
  return {
    on(target, type, fn, opts) {
      target.addEventListener(type, fn, opts);
      offs.push(() => target.removeEventListener(type, fn, opts));
    },
    off() {
      for (const off of offs) off();
      offs = [];
    },
    get active() {
      return offs.length > 0;
    },
  };
}

/** Map a PointerEvent.pointerType to the API's input kind. A pen is a direct touch. */
export function inputKindForPointer(pointerType) {
  return pointerType === "touch" || pointerType === "pen" ? "touch" : "mouse";
}

/** Fallback label of a KeyboardEvent.code when no layout map is available ("KeyQ" -> "Q"). */
export function codeLabel(code) {
  const m = /^(?:Key|Digit|Numpad)(.+)$/.exec(code);
  return (m ? m[1] : code).toUpperCase();
}

/**
 * Labels of KeyboardEvent.code values in the user's keyboard layout ("1", "Q", or "A" on
 * AZERTY), from navigator.keyboard.getLayoutMap() where the browser has it.
 * @param {string[]} codes
 * @returns {Promise<string[]>}
 */
export async function layoutLabels(codes, nav = globalThis.navigator) {
  let map = null;
  try {
    if (nav && nav.keyboard && typeof nav.keyboard.getLayoutMap === "function") map = await nav.keyboard.getLayoutMap();
  } catch {
    map = null;
  }
  return codes.map((code) => {
    const v = map && map.get(code);
    return v ? v.toUpperCase() : codeLabel(code);
  });
}
