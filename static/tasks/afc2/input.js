// The 2-AFC answer input: presses on the six answer buttons (mouse, pen, touch) and keyboard
// shortcuts, with start/stop.
//
// Buttons carry data-response="upper|lower" and data-confidence="1|2|3". Keys are matched on
// KeyboardEvent.code (the physical key), so the layout is the same on QWERTY, QWERTZ and AZERTY
// keyboards; the labels shown on the page come from navigator.keyboard.getLayoutMap() when the
// browser has it. DOM-free apart from the event targets passed in (node tests use EventTarget).

import { codeLabel, eventTime, inputKindForPointer, layoutLabels, listenerGroup } from "../../input.js";

/** Default keys: the digit row answers "upper", the row under it answers "lower". */
export const DEFAULT_KEYS = Object.freeze({
  upper: Object.freeze(["Digit1", "Digit2", "Digit3"]),
  lower: Object.freeze(["KeyQ", "KeyW", "KeyE"]),
});

const CODE_RE = /^[A-Za-z0-9]+$/;

/**
 * Validate `config.keys` ({upper: [code, code, code], lower: [...]}, KeyboardEvent.code
 * values); anything malformed falls back to DEFAULT_KEYS.
 */
export function normaliseKeys(keys) {
  const ok = (row) => Array.isArray(row) && row.length === 3 && row.every((c) => typeof c === "string" && CODE_RE.test(c));
  if (!keys || typeof keys !== "object" || !ok(keys.upper) || !ok(keys.lower)) return DEFAULT_KEYS;
  const all = [...keys.upper, ...keys.lower];
  if (new Set(all).size !== 6) return DEFAULT_KEYS;
  return { upper: [...keys.upper], lower: [...keys.lower] };
}

/**
 * The answer a key event stands for, or null.
 * @param {{code?: string, key?: string, repeat?: boolean, ctrlKey?: boolean, altKey?: boolean,
 *   metaKey?: boolean}} event
 * @param {{upper: string[], lower: string[]}} keys
 * @returns {{response: "upper"|"lower", confidence: 1|2|3} | null}
 */
export function answerForKey(event, keys = DEFAULT_KEYS) {
  if (!event || event.repeat || event.ctrlKey || event.altKey || event.metaKey) return null;
  for (const response of ["upper", "lower"]) {
    const i = keys[response].indexOf(event.code);
    if (i >= 0) return { response, confidence: i + 1 };
  }
  // Some virtual keyboards send an empty code: fall back to the character of the default keys.
  if (!event.code && typeof event.key === "string") {
    for (const response of ["upper", "lower"]) {
      const i = keys[response].map(codeLabel).indexOf(event.key.toUpperCase());
      if (i >= 0) return { response, confidence: i + 1 };
    }
  }
  return null;
}

/** The response button an event is on, or null (disabled or malformed buttons give null). */
function answerButton(e) {
  const btn = e.target && e.target.closest ? e.target.closest("[data-response][data-confidence]") : null;
  if (!btn || btn.disabled) return null;
  const response = btn.dataset.response;
  const confidence = Number(btn.dataset.confidence);
  if ((response !== "upper" && response !== "lower") || ![1, 2, 3].includes(confidence)) return null;
  return { response, confidence };
}

/**
 * Listen for one answer at a time.
 *
 * The answer is taken when the response begins, for every input: at `pointerdown` (the
 * primary button of a mouse, a pen or a finger on a response button) and at `keydown` (no
 * repeats). Its time is the event's own `timeStamp`, the moment the browser received the
 * input, so that RT = at_ms - onset measures the same thing for mouse and keyboard and does not
 * include how long a button is held or how late the handler ran. The release and the `click`
 * that follows are ignored, except a click with detail 0 (Enter or Space on a focused button,
 * which has no pointerdown).
 * @param {object} o
 * @param {EventTarget} o.root element containing the response buttons.
 * @param {EventTarget} o.keyTarget where keydown is heard (document).
 * @param {{upper: string[], lower: string[]}} [o.keys]
 * @param {(a: {response: string, confidence: number, input: string, at_ms: number}) => void} o.onAnswer
 *   called once per start(); input stops itself before calling it.
 * @param {() => number} [o.now] performance.now, for events without a time stamp.
 */
export function createInput({ root, keyTarget, keys = DEFAULT_KEYS, onAnswer, now = () => globalThis.performance.now() }) {
  const listeners = listenerGroup();
  const on = listeners.on;
  const stop = listeners.off;
  let notBefore = -Infinity;

  function answer(response, confidence, input, at_ms) {
    if (at_ms < notBefore) return; // pressed before the buttons opened, delivered after
    stop();
    onAnswer({ response, confidence, input, at_ms });
  }

  function onPointerDown(e) {
    if (e.button !== undefined && e.button !== 0) return; // primary button (or a touch) only
    if (e.isPrimary === false) return; // a second finger
    const a = answerButton(e);
    if (!a) return;
    const at_ms = eventTime(e, now);
    // The pointer stays captured by the button otherwise; nothing else should react to it.
    if (typeof e.preventDefault === "function") e.preventDefault();
    answer(a.response, a.confidence, inputKindForPointer(e.pointerType), at_ms);
  }

  function onClick(e) {
    if (e.detail !== 0) return; // a pointer's click: answered at its pointerdown already
    const a = answerButton(e);
    if (!a) return;
    answer(a.response, a.confidence, "keyboard", eventTime(e, now));
  }

  function onKeyDown(e) {
    const t = e.target;
    if (t && (t.isContentEditable || t.tagName === "INPUT" || t.tagName === "TEXTAREA")) return;
    const a = answerForKey(e, keys);
    if (!a) return;
    if (typeof e.preventDefault === "function") e.preventDefault();
    answer(a.response, a.confidence, "keyboard", eventTime(e, now));
  }

  return {
    /**
     * Start listening (after the response lock). Calling start twice is harmless.
     * @param {number} [since] inputs stamped before this time (performance.now() timeline)
     *   are ignored: a press queued while the buttons were locked is not an answer.
     */
    start(since = -Infinity) {
      stop();
      notBefore = since;
      on(root, "pointerdown", onPointerDown);
      on(root, "click", onClick);
      on(keyTarget, "keydown", onKeyDown);
    },
    stop,
    get active() {
      return listeners.active;
    },
  };
}

/**
 * Labels of the configured keys in the user's keyboard layout ("1", "Q", or "A" on AZERTY).
 * @returns {Promise<{upper: string[], lower: string[]}>}
 */
export async function keyLabels(keys = DEFAULT_KEYS, nav = globalThis.navigator) {
  const labels = await layoutLabels([...keys.upper, ...keys.lower], nav);
  return { upper: labels.slice(0, keys.upper.length), lower: labels.slice(keys.upper.length) };
}
