// Landing page: the screen check before consent (docs/participant_view.md).
//
// The server states the window the design needs (data-need-w/h: the largest trial screen at
// the design's minimum scale, page around it included). A window that is large enough starts
// as usual. A window that is too small on a screen that is large enough (or could be, zoomed
// out) is asked to grow; the start button waits for it. A screen too small even in full
// screen gets a way back to the platform instead of the task. The screen size goes with the
// start form and is stored with the participant.

const check = document.querySelector("[data-screen-check]");
if (check) {
  const needW = Number(check.dataset.needW);
  const needH = Number(check.dataset.needH);
  const verdict = check.querySelector("[data-screen-verdict]");
  const start = document.querySelector("[data-start]");
  const tooSmallForm = document.querySelector("[data-too-small-form]");

  const update = () => {
    const sw = Math.round(window.screen?.width || 0);
    const sh = Math.round(window.screen?.height || 0);
    for (const el of document.querySelectorAll("[data-screen-w]")) el.value = String(sw);
    for (const el of document.querySelectorAll("[data-screen-h]")) el.value = String(sh);
    const windowFits = window.innerWidth >= needW && window.innerHeight >= needH;
    // Full screen gives the whole screen to the page; zooming out makes CSS pixels smaller,
    // which enlarges both the window and the screen measured in them.
    const screenFits = sw >= needW && sh >= needH;
    check.dataset.fits = String(windowFits);
    start.disabled = !windowFits;
    tooSmallForm.hidden = windowFits || screenFits;
    if (windowFits) {
      verdict.textContent = "Your window is large enough.";
    } else if (screenFits) {
      verdict.textContent =
        `Your window is ${window.innerWidth} × ${window.innerHeight}: please make it larger or full screen (F11), ` +
        "or zoom out (Ctrl and −, on a Mac ⌘ and −). The start button works as soon as it fits.";
    } else {
      verdict.textContent =
        `Your screen (${sw} × ${sh}) is too small for this study. Zooming out (Ctrl and −, on a Mac ⌘ and −) ` +
        "may help; otherwise please use a computer with a larger screen.";
    }
  };
  window.addEventListener("resize", update);
  update();
}
