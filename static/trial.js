// Task page entry: boot, then the trial loop (docs/participant_api.md, docs/protocol.md, The task).
//
// The server is authoritative: this page asks GET /next what to show and echoes trial_index;
// it never chooses the order, the index or the condition. One trial:
//   blank (>= timing.blank_ms, and until every image of the trial is decoded)
//   -> insert all images at once in the next rAF -> onset = the rAF after (timing.js)
//   -> buttons locked for timing.response_lock_ms -> one answer (press of a button or key, timed
//   at the input event, see input.js) -> stopResponse() cancels every timer/listener of the
//   response phase -> answer stored in localStorage, then POSTed -> feedback -> blank.
// Feedback (config.feedback_style, docs/protocol.md): "frames" (the paper's) puts a black frame
// on the chosen button and image, then, after timing.choice_ms AND the server's
// acknowledgement, a green frame on the correct image for timing.correct_ms; "text" (IMI's)
// shows "Correct!" or "Incorrect!" for timing.correct_ms once acknowledged. With
// trial.feedback false there is neither: the page goes to the blank once acknowledged.

import { createApi, EventBuffer, HttpError, uuid4 } from "./api.js";
import { Preloader, createStage, prepareTrial, trialUrls } from "./display.js";
import { createInput, keyLabels, normaliseKeys } from "./input.js";
import { CancelledError, createTimers } from "./timers.js";
import { roundMs, showAtNextFrame, startFrameLoop } from "./timing.js";

const DEFAULT_TIMING = Object.freeze({ choice_ms: 500, correct_ms: 1500, blank_ms: 100, response_lock_ms: 0 });
const HEARTBEAT_MS = 15000;
const EVENT_FLUSH_MS = 5000;
const EVENT_BATCH_TRIGGER = 20;
const SAVING_SHOWN_AFTER_MS = 800; // do not flash "Saving…" for fast acknowledgements
const SLOW_IMAGES_AFTER_MS = 1000;

/** Parse #trial-config; fill what is missing from the page URL and defaults. */
function readConfig() {
  let cfg = {};
  try {
    cfg = JSON.parse(document.getElementById("trial-config")?.textContent || "{}") || {};
  } catch {
    cfg = {};
  }
  const fromPath = /\/p\/([^/?#]+)/.exec(location.pathname);
  const token = typeof cfg.token === "string" && cfg.token ? cfg.token : fromPath ? decodeURIComponent(fromPath[1]) : "";
  const enc = encodeURIComponent(token);
  const size = Number(cfg.image_size_px);
  return {
    token,
    api: typeof cfg.api === "string" && cfg.api ? cfg.api : `/api/p/${enc}`,
    page: typeof cfg.page === "string" && cfg.page ? cfg.page : `/p/${enc}`,
    nTrials: Number.isFinite(cfg.n_trials) ? cfg.n_trials : null,
    keys: normaliseKeys(cfg.keys),
    preloadAhead: Number.isFinite(cfg.preload_ahead) ? cfg.preload_ahead : 3,
    imageSizePx: Number.isInteger(size) && size > 0 && size <= 1024 ? size : 224,
    fullscreen: cfg.fullscreen === true,
    feedbackStyle: cfg.feedback_style === "text" ? "text" : "frames",
    // Smallest stage scale the design accepts; below it the page asks for a larger window.
    minScale: typeof cfg.min_scale === "number" && cfg.min_scale > 0 && cfg.min_scale <= 1 ? cfg.min_scale : 0,
    // The step GET /next gave when the page was made (used unless queued answers were sent).
    step: cfg.step && typeof cfg.step === "object" && typeof cfg.step.step === "string" ? cfg.step : null,
  };
}

/** Timing of a trial with defaults for missing or malformed values. */
function trialTiming(trial) {
  const t = { ...DEFAULT_TIMING };
  for (const k of Object.keys(t)) {
    const v = trial?.timing?.[k];
    if (typeof v === "number" && Number.isFinite(v) && v >= 0) t[k] = v;
  }
  return t;
}

/** "Next: …" title of a block (the server's title may or may not start with "Next"). */
function blockTitle(block) {
  const title = typeof block?.title === "string" && block.title.trim() ? block.title.trim() : "the next block";
  return /^next\b/i.test(title) ? title : `Next: ${title}`;
}

/** The small UI outside the stage: screens, progress, status line, fullscreen button. */
function createUi(root, smallWindow = () => false) {
  const $ = (sel) => root.querySelector(sel);
  const screens = { message: $('[data-screen="message"]'), trial: $('[data-screen="trial"]') };
  const title = $("[data-message-title]");
  const body = $("[data-message-body]");
  const cont = $("[data-continue]");
  const progress = $("[data-progress]");
  const statusEl = $("[data-status]");
  const fsButton = $("[data-fullscreen]");
  const scope = createTimers();
  let savingTimer = null;
  let current = "message";
  let warnedSmall = false;

  function show(name) {
    current = name;
    for (const [k, el] of Object.entries(screens)) el.hidden = k !== name;
    updateFullscreenButton();
  }

  function updateFullscreenButton() {
    const can = document.fullscreenEnabled && typeof document.documentElement.requestFullscreen === "function";
    fsButton.hidden = !can || Boolean(document.fullscreenElement) || current === "trial";
  }

  function requestFullscreen() {
    if (document.fullscreenElement || typeof document.documentElement.requestFullscreen !== "function") return;
    document.documentElement.requestFullscreen().catch(() => {});
  }

  fsButton.addEventListener("click", requestFullscreen);

  return {
    get current() {
      return current;
    },
    showTrial() {
      show("trial");
    },

    /**
     * Show a message; with `button`, resolve when it is pressed.
     * @param {{title: string, lines?: string[], button?: string|null, fullscreen?: boolean}} m
     */
    message({ title: t, lines = [], button = null, fullscreen = false }) {
      scope.cancelAll();
      if (button && !warnedSmall && smallWindow()) {
        warnedSmall = true; // once per page: the scale is recorded with every answer anyway
        lines = [...lines, "Your window is smaller than the task needs, so the images are shown reduced. A larger window or full screen (F11) shows them at their true size."];
      }
      title.textContent = t;
      body.replaceChildren(
        ...lines.map((line) => {
          const p = document.createElement("p");
          p.textContent = line;
          return p;
        }),
      );
      show("message");
      if (!button) {
        cont.hidden = true;
        return Promise.resolve();
      }
      cont.textContent = button;
      cont.hidden = false;
      cont.disabled = false;
      cont.focus({ preventScroll: true });
      return new Promise((resolve) => {
        scope.listen(cont, "click", () => {
          if (fullscreen) requestFullscreen(); // needs this click's user activation
          cont.disabled = true;
          scope.cancelAll();
          resolve();
        });
      });
    },

    progress(nAnswered, nTrials) {
      if (Number.isFinite(nAnswered) && Number.isFinite(nTrials) && nTrials > 0) {
        progress.textContent = `Trial ${Math.min(nAnswered + 1, nTrials)} of ${nTrials}`;
      } else {
        progress.textContent = "";
      }
    },

    /** API status: "saving" (shown after a short delay), "reconnecting", "loading", "idle". */
    status(state) {
      if (savingTimer !== null) {
        clearTimeout(savingTimer);
        savingTimer = null;
      }
      if (state === "saving") {
        savingTimer = setTimeout(() => {
          statusEl.textContent = "Saving…";
        }, SAVING_SHOWN_AFTER_MS);
      } else if (state === "reconnecting") {
        statusEl.textContent = navigator.onLine === false ? "Offline – reconnecting…" : "Reconnecting…";
      } else if (state === "loading") {
        statusEl.textContent = "Loading images…";
      } else {
        statusEl.textContent = "";
      }
    },

    updateFullscreenButton,
  };
}

/** Boot the page and run trials until the server says "done". */
async function main() {
  const cfg = readConfig();
  const root = document.querySelector("[data-task]");
  document.body.style.setProperty("--img", `${cfg.imageSizePx}px`);
  // Attention flags of the trial being answered (null outside the response phase).
  let live = null;
  let shownTrialIndex = null; // trial of the current step, for events
  let lastBlankAt = -Infinity;
  let lastScale = null; // stage scale of the last fit (1 = native size)
  let eventsPosting = false;

  const ui = createUi(root, () => lastScale !== null && lastScale < 1);
  const trialScreen = root.querySelector('[data-screen="trial"]');
  const stage = createStage(trialScreen);
  const stageEl = trialScreen.querySelector("[data-stage]");
  const events = new EventBuffer();
  const api = createApi({
    base: cfg.api,
    token: cfg.token,
    onStatus: (s) => ui.status(s),
    onRetry: (what, attempt, err) => logEvent("network_retry", { what, attempt, status: err?.status ?? 0 }),
  });
  const preloader = new Preloader({ concurrency: 6, retries: 3 });
  const page = createTimers(); // page-lifetime listeners and timers

  const viewport = () => ({
    w: window.innerWidth,
    h: window.innerHeight,
    dpr: window.devicePixelRatio || 1,
  });

  async function flushEvents() {
    if (eventsPosting || events.size === 0) return;
    eventsPosting = true;
    const batch = events.take(50);
    try {
      await api.postEvents(batch);
    } catch (err) {
      // 4xx (e.g. an event kind the server does not know) would fail forever: drop the batch.
      if (!(err instanceof HttpError)) events.putBack(batch);
      else console.warn("events rejected", err);
    } finally {
      eventsPosting = false;
    }
    if (events.size >= EVENT_BATCH_TRIGGER) flushEvents();
  }

  function logEvent(kind, data = {}) {
    events.push(kind, data, shownTrialIndex);
    if (events.size >= EVENT_BATCH_TRIGGER) flushEvents();
  }

  function fitStage(cause) {
    if (ui.current !== "trial") return;
    const scale = stage.fit();
    if (scale !== lastScale) {
      lastScale = scale;
      logEvent("resize", { ...viewport(), scale: roundMs(scale * 1000) / 1000, cause });
    }
  }

  // Page lifecycle and attention events.
  page.listen(window, "blur", () => {
    if (live) live.focusLost = true;
    logEvent("focus_lost", { cause: "blur" });
  });
  page.listen(window, "focus", () => logEvent("focus_gained", { cause: "focus" }));
  page.listen(document, "visibilitychange", () => {
    if (document.visibilityState === "hidden") {
      if (live) live.focusLost = true;
      logEvent("visibility_hidden");
      // Mobile browsers may never fire pagehide: hidden is the last reliable moment.
      api.beaconFlush(events.take(events.size));
    } else {
      logEvent("visibility_visible");
    }
  });
  page.listen(document, "fullscreenchange", () => {
    if (document.fullscreenElement) {
      logEvent("fullscreen_enter");
    } else {
      if (live) live.fullscreenExited = true;
      logEvent("fullscreen_exit");
    }
    ui.updateFullscreenButton();
    fitStage("fullscreen");
  });
  let resizeTimer = null;
  page.listen(window, "resize", () => {
    if (ui.current === "trial") stage.fit(); // keep the stage inside the window right away
    if (resizeTimer !== null) page.clearTimeout(resizeTimer);
    resizeTimer = page.timeout(() => {
      resizeTimer = null;
      lastScale = stage.scale;
      logEvent("resize", { ...viewport(), scale: roundMs(stage.scale * 1000) / 1000, cause: "resize" });
    }, 250);
  });
  page.listen(window, "pagehide", () => {
    logEvent("page_hide");
    api.beaconFlush(events.take(events.size));
  });
  page.listen(window, "pageshow", (e) => {
    if (e.persisted) location.reload(); // back/forward cache: re-sync with the server
  });
  page.listen(window, "online", () => ui.status(api.busy ? "saving" : "idle"));
  page.listen(window, "offline", () => ui.status("reconnecting"));
  window.setInterval(() => {
    logEvent("heartbeat", { visible: document.visibilityState === "visible" });
    flushEvents();
  }, HEARTBEAT_MS);
  window.setInterval(flushEvents, EVENT_FLUSH_MS);

  keyLabels(cfg.keys).then((labels) => {
    const caps = (row) =>
      row.flatMap((label, i) => {
        const kbd = document.createElement("kbd");
        kbd.textContent = label;
        return i === 0 ? [kbd] : [" ", kbd];
      });
    trialScreen.querySelector("[data-key-hint]").replaceChildren(
      "Click a number, or press ",
      ...caps(labels.upper),
      " for the upper image and ",
      ...caps(labels.lower),
      " for the lower image. 1 = guess, 3 = sure.",
    );
  });

  /** Wait until every image of `trial` is decoded; retry forever while the network is down. */
  async function loadTrial(trial) {
    const slow = setTimeout(() => ui.status("loading"), SLOW_IMAGES_AFTER_MS);
    try {
      for (let attempt = 0; ; attempt += 1) {
        try {
          return await prepareTrial(trial, preloader, cfg.imageSizePx);
        } catch (err) {
          logEvent("network_retry", { what: "image", attempt, message: String(err?.message || err) });
          ui.status("reconnecting");
          await new Promise((r) => setTimeout(r, Math.min(10000, 1000 * 2 ** Math.min(attempt, 4))));
        }
      }
    } finally {
      clearTimeout(slow);
      ui.status("idle");
    }
  }

  /**
   * Resolve when the window shows the stage at no less than the design's minimum scale; until
   * then a message asks for a larger window (the trial screen must be laid out when called).
   */
  async function windowLargeEnough() {
    if (!cfg.minScale) return;
    const need = stage.windowNeeded(cfg.minScale);
    const fits = () => window.innerWidth >= need.w && window.innerHeight >= need.h;
    if (fits()) return;
    logEvent("resize", { ...viewport(), need_w: need.w, need_h: need.h, cause: "too_small" });
    ui.message({
      title: "Please make the window larger",
      lines: [
        `The task needs a window of at least ${need.w} × ${need.h} pixels; yours is ${window.innerWidth} × ${window.innerHeight}.`,
        "Make the browser window larger or full screen (F11), or zoom out (Ctrl and −, on a Mac ⌘ and −). The task goes on by itself when the window is large enough.",
      ],
    });
    await new Promise((resolve) => {
      const scope = createTimers();
      const check = () => {
        if (!fits()) return;
        scope.cancelAll();
        resolve();
      };
      scope.listen(window, "resize", check);
      scope.timeout(function poll() {
        check();
        if (!fits()) scope.timeout(poll, 500);
      }, 500);
    });
    ui.showTrial();
  }

  /**
   * Run one trial and its feedback.
   * @returns {Promise<{kind: "ack", ack: object} | {kind: "rejected", error: HttpError}>}
   */
  async function runTrial(trial) {
    const timing = trialTiming(trial);
    stage.blank();
    stage.layout(trial);
    ui.showTrial();
    await windowLargeEnough();
    const prepared = await loadTrial(trial);
    const sinceBlank = performance.now() - lastBlankAt;
    if (sinceBlank < timing.blank_ms) await new Promise((r) => setTimeout(r, timing.blank_ms - sinceBlank));

    // Every timer and listener of the trial lives in `t` (response phase), `fb` (feedback
    // phase) or `input`; stopResponse() ends the response phase at the answer and finish()
    // ends the trial, whatever way it ends.
    const t = createTimers();
    const fb = createTimers();
    let input = null;
    let flags = null;
    const stopResponse = () => {
      if (input) input.stop();
      t.cancelAll();
      stage.setLocked(true);
      flags = flags || live;
      live = null;
    };
    const finish = () => {
      stopResponse();
      fb.cancelAll();
      stage.blank();
      stage.clear();
      lastBlankAt = performance.now();
    };

    let answer;
    let onset;
    let stats;
    try {
      stage.setLocked(true);
      stageEl.dataset.phase = "locked";
      onset = await showAtNextFrame(t, () => {
        stage.show(prepared); // one synchronous insertion of every decoded image
        fitStage("trial");
      });
      // A window that is already hidden or unfocused at onset counts as focus lost too.
      const away = document.visibilityState === "hidden" || !document.hasFocus();
      live = { trialIndex: trial.trial_index, focusLost: away, fullscreenExited: false };
      stats = startFrameLoop(t, onset);
      answer = await t.guard(
        new Promise((resolve) => {
          input = createInput({ root: stageEl, keyTarget: document, keys: cfg.keys, onAnswer: resolve });
          const unlock = () => {
            stageEl.dataset.phase = "open";
            stage.setLocked(false);
            // Inputs stamped before the buttons opened are not answers (RT would be < 0 or
            // inside the lock); the event's time stamp decides, not when it was handled.
            input.start(onset + timing.response_lock_ms);
          };
          const wait = onset + timing.response_lock_ms - performance.now();
          if (timing.response_lock_ms > 0 && wait > 0) t.timeout(unlock, wait);
          else unlock();
        }),
      );
      stopResponse();
    } catch (err) {
      finish();
      throw err;
    }
    const answerScale = stage.scale;

    const fi = stats.summary();
    const body = {
      response_uuid: uuid4(),
      trial_index: trial.trial_index,
      response: answer.response,
      confidence: answer.confidence,
      rt_ms: roundMs(answer.at_ms - onset),
      onset_ms: roundMs(onset),
      answer_ms: roundMs(answer.at_ms),
      frame_interval_mean_ms: fi.mean_ms,
      frame_interval_max_ms: fi.max_ms,
      viewport_w_px: window.innerWidth,
      viewport_h_px: window.innerHeight,
      device_pixel_ratio: window.devicePixelRatio || 1,
      display_scale: roundMs(answerScale * 1000) / 1000,
      focus_lost: Boolean(flags?.focusLost),
      fullscreen_exited: Boolean(flags?.fullscreenExited),
      input: answer.input,
    };
    const outcomeP = api.submitAnswer(body); // in localStorage before the request goes out

    // Feedback phase.
    stageEl.dataset.phase = "feedback";
    let outcome;
    try {
      if (trial.feedback !== false && cfg.feedbackStyle === "text") {
        outcome = await outcomeP;
        if (outcome.kind === "ack" && typeof outcome.ack?.correct === "boolean") {
          stage.showFeedbackText(outcome.ack.correct);
          await fb.delay(timing.correct_ms);
        }
      } else if (trial.feedback !== false) {
        stage.markChosen(answer.response, answer.confidence);
        // Hold the black frame for choice_ms, and longer if the acknowledgement is late:
        // the green frame needs the server's answer and must never come before it.
        [, outcome] = await Promise.all([fb.delay(timing.choice_ms), outcomeP]);
        const correct = outcome.kind === "ack" ? outcome.ack?.solution?.response : null;
        if (correct === "upper" || correct === "lower") {
          stage.markCorrect(correct);
          await fb.delay(timing.correct_ms);
        }
      } else {
        outcome = await outcomeP;
      }
    } finally {
      finish();
    }
    return outcome;
  }

  /** Block feedback and/or a self-paced break after a block. */
  async function afterBlock(blockEnd, block, isLast) {
    const lines = [];
    const showScore = block?.block_feedback !== false;
    if (showScore && Number.isFinite(blockEnd.n_correct) && Number.isFinite(blockEnd.n_trials)) {
      lines.push(`You got ${blockEnd.n_correct} out of ${blockEnd.n_trials} trials correct.`);
    }
    const brk = block?.break_after !== false && !isLast; // no break before the end
    if (brk) lines.push("Take a short break. Continue when ready.");
    if (lines.length === 0) return;
    await ui.message({ title: brk ? "Break" : "Block finished", lines, button: "Continue", fullscreen: cfg.fullscreen });
  }

  /** POST /complete and go to the done page; false if the server still misses answers. */
  async function complete() {
    ui.message({ title: "Saving your answers…", lines: ["Please keep this page open."] });
    await api.flushQueue();
    try {
      await api.complete();
    } catch (err) {
      if (err instanceof HttpError && err.status === 409) return false;
      throw err;
    }
    page.cancelAll();
    location.assign(cfg.page);
    return true;
  }

  // Boot: answers of an earlier visit first, then where we are.
  ui.message({ title: "Loading…" });
  const flushed = await api.flushQueue();
  logEvent("page_load", {
    ...viewport(),
    queued_acked: flushed.acked,
    queued_rejected: flushed.rejected,
    storage_volatile: api.queue.volatile,
  });
  // The page came with the step the server gave when it made the page; answers sent just now
  // may have moved it on, so then ask again.
  let step = cfg.step && flushed.acked === 0 && flushed.rejected === 0 ? cfg.step : await api.next();
  let first = true;
  let completeTries = 0;

  for (;;) {
    if (!step || step.step === "done") {
      if (await complete()) return;
      completeTries += 1;
      if (completeTries > 3) throw new Error("the server did not accept completion");
      step = await api.next();
      continue;
    }
    if (step.step !== "trial" || !step.trial) {
      location.assign(cfg.page); // a page this script does not handle (consent, instructions, …)
      return;
    }
    const trial = step.trial;
    shownTrialIndex = Number.isInteger(trial.trial_index) ? trial.trial_index : null;
    const upcoming = [...trialUrls(trial), ...(Array.isArray(step.preload) ? step.preload : [])];
    preloader.prune(upcoming);
    preloader.want(upcoming);
    ui.progress(step.n_answered, step.n_trials ?? cfg.nTrials);

    if (trial.block?.position === 0) {
      const lines = ["Continue when ready."];
      if (trial.block.after_practice) lines.unshift("Practice is over. The main part of the study starts now.");
      if (first) lines.unshift(`Answer with the buttons between the two centre images, or with the keys shown under them.`);
      await ui.message({ title: blockTitle(trial.block), lines, button: "Continue", fullscreen: cfg.fullscreen });
    } else if (first) {
      await ui.message({ title: "Welcome back", lines: ["Continue when ready."], button: "Continue", fullscreen: cfg.fullscreen });
    }
    first = false;

    const outcome = await runTrial(trial);
    if (outcome.kind === "rejected") {
      logEvent("network_retry", { what: "answer_rejected", status: outcome.error.status, code: outcome.error.code });
      step = await api.next();
      continue;
    }
    const ack = outcome.ack || {};
    if (ack.block_end) await afterBlock(ack.block_end, trial.block, ack.next?.step === "done");
    step = ack.next && typeof ack.next === "object" && ack.next.step ? ack.next : await api.next();
  }
}

/** Last-resort screen: never silently stop. */
function showFatal(err) {
  const title = document.querySelector("[data-message-title]");
  const body = document.querySelector("[data-message-body]");
  const cont = document.querySelector("[data-continue]");
  const lines = [];
  if (err instanceof HttpError && err.status === 404) {
    title.textContent = "This link is not valid.";
    lines.push("Please use the link from the study page.");
  } else if (err instanceof HttpError && err.status === 410) {
    title.textContent = "This session is closed or paused.";
    lines.push("Your answers so far are saved. Please contact the researchers.");
  } else {
    title.textContent = "Something went wrong.";
    lines.push("Your answers so far are saved. Please reload the page to continue.");
  }
  body.replaceChildren(
    ...lines.map((line) => {
      const p = document.createElement("p");
      p.textContent = line;
      return p;
    }),
  );
  for (const el of document.querySelectorAll("[data-screen]")) el.hidden = el.dataset.screen !== "message";
  cont.textContent = "Reload";
  cont.hidden = false;
  cont.disabled = false;
  cont.addEventListener("click", () => location.reload(), { once: true });
}

main().catch((err) => {
  if (err instanceof CancelledError) return;
  console.error(err);
  showFatal(err);
});
