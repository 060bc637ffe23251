// The rating slider's scale: what the trial's `scale` object may say, made safe to put on an
// <input type="range">, and the integer answer read back from it. DOM-free.

/** The paper's intuitiveness scale, used for whatever the trial leaves out or gets wrong. */
export const DEFAULT_SCALE = Object.freeze({
  min: -100,
  max: 100,
  step: 1,
  start: 0,
  min_label: "Not intuitive",
  max_label: "Intuitive",
});

const label = (v, fallback) => (typeof v === "string" && v.trim() ? v.trim() : fallback);

/**
 * The trial's scale ({min, max, step, start, min_label, max_label}) with integer bounds
 * (min < max), a positive integer step and a start inside the bounds; anything missing or
 * malformed comes from DEFAULT_SCALE (the bounds only as a pair).
 */
export function normaliseScale(scale) {
  const s = scale && typeof scale === "object" ? scale : {};
  const ok = Number.isInteger(s.min) && Number.isInteger(s.max) && s.min < s.max;
  const min = ok ? s.min : DEFAULT_SCALE.min;
  const max = ok ? s.max : DEFAULT_SCALE.max;
  const step = Number.isInteger(s.step) && s.step > 0 ? s.step : DEFAULT_SCALE.step;
  const fallbackStart = DEFAULT_SCALE.start >= min && DEFAULT_SCALE.start <= max ? DEFAULT_SCALE.start : Math.round((min + max) / 2);
  const start = Number.isInteger(s.start) ? Math.min(max, Math.max(min, s.start)) : fallbackStart;
  return {
    min,
    max,
    step,
    start,
    min_label: label(s.min_label, DEFAULT_SCALE.min_label),
    max_label: label(s.max_label, DEFAULT_SCALE.max_label),
  };
}

/** The answer for a slider's value (a string): an integer within the scale (start if unreadable). */
export function ratingValue(raw, scale) {
  const v = Math.round(Number(raw));
  if (!Number.isFinite(v)) return scale.start;
  return Math.min(scale.max, Math.max(scale.min, v));
}

/** The slider's accessible name, e.g. "Intuitiveness from -100 (not intuitive) to 100 (intuitive)". */
export function sliderName(scale) {
  return `Intuitiveness from ${scale.min} (${scale.min_label.toLowerCase()}) to ${scale.max} (${scale.max_label.toLowerCase()})`;
}
