// Fitting a task type's stage into the window: scaled down (never up) as one CSS transform, at
// integer offsets, so every box keeps its integer CSS-pixel size.
//
// At an integer devicePixelRatio every image pixel of an unscaled stage maps to an exact
// DPR x DPR block of device pixels. At an integer DPR > 1 (and an unscaled stage) fit() sets
// data-pixel-exact on the stage, and a task type's stylesheet may switch its images to
// `image-rendering: pixelated`: each stimulus pixel becomes a sharp DPR x DPR block, which is
// what a 224 px image looks like on the 1x lab monitor of the paper at the same physical size
// (no interpolation blur). At fractional DPR (browser zoom, 1.25/1.5 Windows scaling) or when
// the stage had to be scaled down to fit a small window, the default smooth resampling stays,
// because nearest-neighbour would duplicate rows unevenly. The DPR, viewport and scale go with
// every answer, so analyses can check either way.

/**
 * @param {HTMLElement} stage the [data-stage] element (absolutely placed, transform-origin 0 0).
 * @param {HTMLElement} wrap the [data-stage-wrap] element around it: the space it may take.
 */
export function createFit(stage, wrap) {
  let scale = 1;

  /** Scale the stage down (never up) to fit the wrapper; returns the scale (1 = native). */
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
    fit,
    windowNeeded,
    get scale() {
      return scale;
    },
  };
}
