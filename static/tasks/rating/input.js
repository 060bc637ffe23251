// The rating's answer input: Continue (mouse, pen, touch, or Enter/Space on the focused button)
// and the Enter key anywhere on the page, with start/stop. The slider itself is a native range
// input (drag, tap, arrow keys) and answers nothing: it only sets the value Continue submits.
// DOM-free apart from the event targets passed in (node tests use EventTarget).

import { eventTime, inputKindForPointer, listenerGroup } from "../../input.js";

/** Whether a keydown is a plain Enter (no repeat, no modifier, not composing text). */
export function isSubmitKey(e) {
  if (!e || e.repeat || e.isComposing || e.ctrlKey || e.altKey || e.metaKey || e.shiftKey) return false;
  return e.key === "Enter" || e.code === "Enter" || e.code === "NumpadEnter";
}

/** A target where Enter belongs to the element (text fields), not to the trial. */
function typesText(t) {
  if (!t) return false;
  if (t.isContentEditable || t.tagName === "TEXTAREA") return true;
  return t.tagName === "INPUT" && !["range", "button", "submit", "checkbox", "radio"].includes(t.type);
}

/**
 * Listen for one Continue at a time. Like afc2's input (static/tasks/afc2/input.js), the answer
 * is taken when the response begins, at the event's own time stamp: `pointerdown` on the
 * button (primary button or first finger), `keydown` of Enter, or a `click` with detail 0
 * (Space or Enter on the focused button, which has no pointerdown); a pointer's click, which
 * follows its pointerdown, is ignored.
 * @param {object} o
 * @param {EventTarget & {disabled: boolean}} o.button the Continue button.
 * @param {EventTarget} o.keyTarget where keydown is heard (the document).
 * @param {(a: {input: "mouse"|"touch"|"keyboard", atMs: number}) => void} o.onAnswer
 *   called once per start(); input stops itself before calling it.
 * @param {() => number} [o.now] performance.now, for events without a time stamp.
 */
export function createInput({ button, keyTarget, onAnswer, now = () => globalThis.performance.now() }) {
  const listeners = listenerGroup();
  const on = listeners.on;
  const stop = listeners.off;
  let notBefore = -Infinity;

  function answer(input, atMs) {
    if (button.disabled) return;
    if (atMs < notBefore) return; // pressed before the controls opened, delivered after
    stop();
    onAnswer({ input, atMs });
  }

  function onPointerDown(e) {
    if (e.button !== undefined && e.button !== 0) return;
    if (e.isPrimary === false) return;
    const atMs = eventTime(e, now);
    if (typeof e.preventDefault === "function") e.preventDefault();
    answer(inputKindForPointer(e.pointerType), atMs);
  }

  function onClick(e) {
    if (e.detail !== 0) return; // a pointer's click: answered at its pointerdown already
    answer("keyboard", eventTime(e, now));
  }

  function onKeyDown(e) {
    if (!isSubmitKey(e) || typesText(e.target)) return;
    if (typeof e.preventDefault === "function") e.preventDefault(); // no click of a focused button as well
    answer("keyboard", eventTime(e, now));
  }

  return {
    /**
     * Start listening (after the response lock). Calling start twice is harmless.
     * @param {number} [since] inputs stamped before this time (performance.now() timeline)
     *   are ignored.
     */
    start(since = -Infinity) {
      stop();
      notBefore = since;
      on(button, "pointerdown", onPointerDown);
      on(button, "click", onClick);
      on(keyTarget, "keydown", onKeyDown);
    },
    stop,
    get active() {
      return listeners.active;
    },
  };
}
