// Task page entry: the runner (docs/participant_api.md; docs/architecture.md, "The participant's
// pages").
//
// The server is authoritative: this page asks GET /next what to show and echoes trial_index;
// it never chooses the order, the index or the condition. The runner knows no trial type: the
// module of each trial's type (static/tasks/index.js, by trial.task) prepares, draws and takes
// the answer and shows its feedback, through the interface documented there. What every trial
// has is done here:
//   blank (>= timing.blank_ms, and until the view has prepared everything the trial shows)
//   -> view.show() inside the next rAF -> onset = the rAF after (timing.js)
//   -> answer controls locked for timing.response_lock_ms -> one answer (view.collect(), timed
//   at the input event) -> stopResponse() cancels every timer/listener of the response phase
//   -> answer stored in localStorage, then POSTed -> view.feedback() unless trial.feedback is
//   false -> blank.
// Around the trials: boot (answers queued by an earlier visit are sent first), telemetry
// (events, heartbeats), the page's lifecycle (beacons, back/forward cache, window size),
// progress, block messages and breaks, completion.

import { createApi, EventBuffer, HttpError, uuid4 } from "./api.js";
import { Preloader } from "./preloader.js";
import { taskFor } from "./tasks/index.js";
import { CancelledError, createTimers } from "./timers.js";
import { roundMs, showAtNextFrame, startFrameLoop, timingOf } from "./timing.js";

/** The runner's durations when the trial's timing leaves them out. */
const TIMING = Object.freeze({ blank_ms: 100, response_lock_ms: 0 });
const HEARTBEAT_MS = 15000;
const EVENT_FLUSH_MS = 5000;
const EVENT_BATCH_TRIGGER = 20;
const SAVING_SHOWN_AFTER_MS = 800; // do not flash "Saving…" for fast acknowledgements
const SLOW_IMAGES_AFTER_MS = 1000;

/**
 * Parse #trial-config; fill what is missing from the page URL and defaults. `raw` is the parsed
 * object as it came: task types read their own settings there.
 */
function readConfig() {
  let cfg = {};
  try {
    cfg = JSON.parse(document.getElementById("trial-config")?.textContent || "{}") || {};
  } catch {
    cfg = {};
  }
  if (typeof cfg !== "object") cfg = {};
  const fromPath = /\/p\/([^/?#]+)/.exec(location.pathname);
  const token = typeof cfg.token === "string" && cfg.token ? cfg.token : fromPath ? decodeURIComponent(fromPath[1]) : "";
  const enc = encodeURIComponent(token);
  const size = Number(cfg.image_size_px);
  return {
    raw: cfg,
    token,
    api: typeof cfg.api === "string" && cfg.api ? cfg.api : `/api/p/${enc}`,
    page: typeof cfg.page === "string" && cfg.page ? cfg.page : `/p/${enc}`,
    nTrials: Number.isFinite(cfg.n_trials) ? cfg.n_trials : null,
    imageSizePx: Number.isInteger(size) && size > 0 && size <= 1024 ? size : 224,
    fullscreen: cfg.fullscreen === true,
    // Smallest stage scale the design accepts; below it the page asks for a larger window.
    minScale: typeof cfg.min_scale === "number" && cfg.min_scale > 0 && cfg.min_scale <= 1 ? cfg.min_scale : 0,
    // The step GET /next gave when the page was made (used unless queued answers were sent).
    step: cfg.step && typeof cfg.step === "object" && typeof cfg.step.step === "string" ? cfg.step : null,
  };
}

/** "Next: …" title of a block (the server's title may or may not start with "Next"). */
function blockTitle(block) {
  const title = typeof block?.title === "string" && block.title.trim() ? block.title.trim() : "the next block";
  return /^next\b/i.test(title) ? title : `Next: ${title}`;
}

const viewport = () => ({
  w: window.innerWidth,
  h: window.innerHeight,
  dpr: window.devicePixelRatio || 1,
});

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

    /** "Trial 3 of 186", "Rating 1 of 3": `at` is {index (0-based), total}. */
    progress(at, noun = "Trial") {
      const { index, total } = at || {};
      if (Number.isFinite(index) && Number.isFinite(total) && total > 0) {
        progress.textContent = `${noun} ${Math.min(index + 1, total)} of ${total}`;
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

/**
 * Page events ({kind, client_ms, trial_index, data}), posted to /events in small batches.
 * @param {{post: (batch: object[]) => Promise<unknown>, trialIndex: () => number|null}} o
 *   post sends one batch; trialIndex is the trial shown when an event happens.
 */
function createTelemetry({ post, trialIndex }) {
  const events = new EventBuffer();
  let posting = false;

  async function flush() {
    if (posting || events.size === 0) return;
    posting = true;
    const batch = events.take(50);
    try {
      await post(batch);
    } catch (err) {
      // 4xx (e.g. an event kind the server does not know) would fail forever: drop the batch.
      if (!(err instanceof HttpError)) events.putBack(batch);
      else console.warn("events rejected", err);
    } finally {
      posting = false;
    }
    if (events.size >= EVENT_BATCH_TRIGGER) flush();
  }

  return {
    flush,
    log(kind, data = {}) {
      events.push(kind, data, trialIndex());
      if (events.size >= EVENT_BATCH_TRIGGER) flush();
    },
    /** Every buffered event, removed (for a beacon when the page goes away). */
    takeAll: () => events.take(events.size),
  };
}

/**
 * The page's state, shared by the pieces below.
 * @typedef {object} Page
 * @property {ReturnType<typeof readConfig>} cfg
 * @property {ReturnType<typeof createUi>} ui
 * @property {ReturnType<typeof createApi>} api
 * @property {ReturnType<typeof createTelemetry>} telemetry
 * @property {(kind: string, data?: object) => void} log an event (telemetry.log).
 * @property {Preloader} preloader
 * @property {ReturnType<typeof createTimers>} timers page-lifetime listeners and timers.
 * @property {HTMLElement} trialScreen the [data-screen="trial"] element.
 * @property {Map<string, object>} views the mounted view of each task type used so far.
 * @property {object|null} view the view of the trial on screen.
 * @property {{trialIndex: number, focusLost: boolean, fullscreenExited: boolean}|null} live
 *   attention flags of the trial being answered (null outside the response phase).
 * @property {number|null} shownTrialIndex trial of the current step, for events.
 * @property {number} lastBlankAt when the last trial ended (performance.now()).
 * @property {number|null} lastScale stage scale of the last fit (1 = native size).
 */

/** Fit the stage of the trial on screen to the window; log the scale when it changed. */
function fitStage(p, cause) {
  if (p.ui.current !== "trial" || !p.view) return;
  const scale = p.view.fit();
  if (scale !== p.lastScale) {
    p.lastScale = scale;
    p.log("resize", { ...viewport(), scale: roundMs(scale * 1000) / 1000, cause });
  }
}

/** Page lifecycle and attention: events, beacons, fullscreen, resize, heartbeats. */
function watchPage(p) {
  const { api, ui, timers: page } = p;
  page.listen(window, "blur", () => {
    if (p.live) p.live.focusLost = true;
    p.log("focus_lost", { cause: "blur" });
  });
  page.listen(window, "focus", () => p.log("focus_gained", { cause: "focus" }));
  page.listen(document, "visibilitychange", () => {
    if (document.visibilityState === "hidden") {
      if (p.live) p.live.focusLost = true;
      p.log("visibility_hidden");
      // Mobile browsers may never fire pagehide: hidden is the last reliable moment.
      api.beaconFlush(p.telemetry.takeAll());
    } else {
      p.log("visibility_visible");
    }
  });
  page.listen(document, "fullscreenchange", () => {
    if (document.fullscreenElement) {
      p.log("fullscreen_enter");
    } else {
      if (p.live) p.live.fullscreenExited = true;
      p.log("fullscreen_exit");
    }
    ui.updateFullscreenButton();
    fitStage(p, "fullscreen");
  });
  let resizeTimer = null;
  page.listen(window, "resize", () => {
    if (ui.current === "trial" && p.view) p.view.fit(); // keep the stage inside the window right away
    if (resizeTimer !== null) page.clearTimeout(resizeTimer);
    resizeTimer = page.timeout(() => {
      resizeTimer = null;
      const scale = p.view ? p.view.scale : 1;
      p.lastScale = scale;
      p.log("resize", { ...viewport(), scale: roundMs(scale * 1000) / 1000, cause: "resize" });
    }, 250);
  });
  page.listen(window, "pagehide", () => {
    p.log("page_hide");
    api.beaconFlush(p.telemetry.takeAll());
  });
  page.listen(window, "pageshow", (e) => {
    if (e.persisted) location.reload(); // back/forward cache: re-sync with the server
  });
  page.listen(window, "online", () => ui.status(api.busy ? "saving" : "idle"));
  page.listen(window, "offline", () => ui.status("reconnecting"));
  window.setInterval(() => {
    p.log("heartbeat", { visible: document.visibilityState === "visible" });
    p.telemetry.flush();
  }, HEARTBEAT_MS);
  window.setInterval(p.telemetry.flush, EVENT_FLUSH_MS);
}

/** The view of a task type on this page, mounted on its markup the first time it is needed. */
function viewOf(p, task) {
  let view = p.views.get(task.name);
  if (view) return view;
  const root = [...p.trialScreen.querySelectorAll("[data-task-type]")].find((el) => el.dataset.taskType === task.name);
  if (!root) throw new Error(`the page has no markup for trial type ${task.name}`);
  view = task.mount({ root, config: p.cfg.raw, preloader: p.preloader, imageSizePx: p.cfg.imageSizePx });
  p.views.set(task.name, view);
  return view;
}

/** Show the trial screen with the markup of one task type (the others' hidden). */
function showTrialScreen(p, name) {
  for (const el of p.trialScreen.querySelectorAll("[data-task-type]")) el.hidden = el.dataset.taskType !== name;
  p.ui.showTrial();
}

/** Blank the trial screen (between trials, and while the next trial loads). No focus stays on
 * a control of the last trial. */
function blankScreen(p) {
  p.trialScreen.dataset.blank = "true";
  const active = document.activeElement;
  if (active && p.trialScreen.contains(active) && typeof active.blur === "function") active.blur();
}

/** Wait until the view has prepared `trial`; retry forever while the network is down. */
async function loadTrial(p, view, trial) {
  const slow = setTimeout(() => p.ui.status("loading"), SLOW_IMAGES_AFTER_MS);
  try {
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await view.prepare(trial);
      } catch (err) {
        p.log("network_retry", { what: "image", attempt, message: String(err?.message || err) });
        p.ui.status("reconnecting");
        await new Promise((r) => setTimeout(r, Math.min(10000, 1000 * 2 ** Math.min(attempt, 4))));
      }
    }
  } finally {
    clearTimeout(slow);
    p.ui.status("idle");
  }
}

/**
 * Resolve when the window shows the stage at no less than the design's minimum scale; until
 * then a message asks for a larger window (the trial screen must be laid out when called).
 */
async function windowLargeEnough(p, view) {
  if (!p.cfg.minScale) return;
  const need = view.windowNeeded(p.cfg.minScale);
  const fits = () => window.innerWidth >= need.w && window.innerHeight >= need.h;
  if (fits()) return;
  p.log("resize", { ...viewport(), need_w: need.w, need_h: need.h, cause: "too_small" });
  p.ui.message({
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
  p.ui.showTrial();
}

/**
 * The response phase: insert the prepared trial in one animation frame, stamp the onset at the
 * next, open the answer controls after the response lock and wait for one answer. Every timer
 * and listener lives in `t` (the caller cancels it).
 * @returns {Promise<{answer: object, input: string, atMs: number, onset: number,
 *   frames: import("./timing.js").FrameIntervalStats}>}
 */
async function respond(p, trial, view, prepared, timing, t) {
  const stage = view.stage;
  view.stop();
  stage.dataset.phase = "locked";
  const onset = await showAtNextFrame(t, () => {
    view.show(prepared); // one synchronous insertion of everything the trial shows
    delete p.trialScreen.dataset.blank;
    fitStage(p, "trial");
  });
  // A window that is already hidden or unfocused at onset counts as focus lost too.
  const away = document.visibilityState === "hidden" || !document.hasFocus();
  p.live = { trialIndex: trial.trial_index, focusLost: away, fullscreenExited: false };
  const frames = startFrameLoop(t, onset);
  // Inputs stamped before the controls opened are not answers (RT would be < 0 or inside the
  // lock); the event's time stamp decides, not when it was handled.
  const since = onset + timing.response_lock_ms;
  const answered = await t.guard(
    new Promise((resolve) => {
      const open = () => {
        stage.dataset.phase = "open";
        resolve(view.collect({ since }));
      };
      const wait = since - performance.now();
      if (timing.response_lock_ms > 0 && wait > 0) t.timeout(open, wait);
      else open();
    }),
  );
  return { ...answered, onset, frames };
}

/** The POST body of an answer: what every answer has, and the type's own fields. */
function requestBody(trial, task, answered, flags, scale) {
  const fi = answered.frames.summary();
  return {
    response_uuid: uuid4(),
    trial_index: trial.trial_index,
    ...task.answerBody(answered.answer),
    rt_ms: roundMs(answered.atMs - answered.onset),
    onset_ms: roundMs(answered.onset),
    answer_ms: roundMs(answered.atMs),
    frame_interval_mean_ms: fi.mean_ms,
    frame_interval_max_ms: fi.max_ms,
    viewport_w_px: window.innerWidth,
    viewport_h_px: window.innerHeight,
    device_pixel_ratio: window.devicePixelRatio || 1,
    display_scale: roundMs(scale * 1000) / 1000,
    focus_lost: Boolean(flags?.focusLost),
    fullscreen_exited: Boolean(flags?.fullscreenExited),
    input: answered.input,
  };
}

/**
 * Run one trial of `task` and its feedback.
 * @returns {Promise<{kind: "ack", ack: object} | {kind: "rejected", error: HttpError}>}
 */
async function runTrial(p, trial, task, view) {
  const timing = timingOf(trial, TIMING);
  p.view = view;
  blankScreen(p);
  view.hide();
  view.layout(trial);
  showTrialScreen(p, task.name);
  await windowLargeEnough(p, view);
  const prepared = await loadTrial(p, view, trial);
  const sinceBlank = performance.now() - p.lastBlankAt;
  if (sinceBlank < timing.blank_ms) await new Promise((r) => setTimeout(r, timing.blank_ms - sinceBlank));

  // Every timer and listener of the trial lives in `t` (response phase), `fb` (feedback
  // phase) or the view's answer controls; stopResponse() ends the response phase at the answer
  // and finish() ends the trial, whatever way it ends.
  const t = createTimers();
  const fb = createTimers();
  let flags = null;
  const stopResponse = () => {
    view.stop();
    t.cancelAll();
    flags = flags || p.live;
    p.live = null;
  };
  const finish = () => {
    stopResponse();
    fb.cancelAll();
    blankScreen(p);
    view.hide();
    p.lastBlankAt = performance.now();
  };

  let answered;
  try {
    answered = await respond(p, trial, view, prepared, timing, t);
    stopResponse();
  } catch (err) {
    finish();
    throw err;
  }
  const outcomeP = p.api.submitAnswer(requestBody(trial, task, answered, flags, view.scale)); // in localStorage before the request goes out

  view.stage.dataset.phase = "feedback";
  try {
    if (trial.feedback === false) return await outcomeP;
    const ack = outcomeP.then((o) => (o.kind === "ack" ? (o.ack ?? null) : null));
    ack.catch(() => {}); // a failed request is outcomeP's to report
    const [, outcome] = await Promise.all([view.feedback({ answer: answered.answer, ack, timing: trial.timing ?? {}, timers: fb }), outcomeP]);
    return outcome;
  } finally {
    finish();
  }
}

/**
 * The message before a trial: a block's title at its start, or "Welcome back" after a reload.
 * A type's one-line intro (how to answer) goes on the first block message of that type.
 */
async function announce(p, trial, view, first, introduced) {
  const block = trial.block;
  if (block?.position === 0) {
    const lines = ["Continue when ready."];
    if (block.after_practice) lines.unshift("Practice is over. The main part of the study starts now.");
    if (!introduced.has(view) && view.intro) lines.unshift(view.intro);
    introduced.add(view);
    await p.ui.message({ title: blockTitle(block), lines, button: "Continue", fullscreen: p.cfg.fullscreen });
  } else if (first) {
    await p.ui.message({ title: "Welcome back", lines: ["Continue when ready."], button: "Continue", fullscreen: p.cfg.fullscreen });
  }
}

/** Block feedback and/or a self-paced break after a block. */
async function afterBlock(p, blockEnd, block, isLast) {
  const lines = [];
  const showScore = block?.block_feedback !== false;
  if (showScore && Number.isFinite(blockEnd.n_correct) && Number.isFinite(blockEnd.n_trials)) {
    lines.push(`You got ${blockEnd.n_correct} out of ${blockEnd.n_trials} trials correct.`);
  }
  const brk = block?.break_after !== false && !isLast; // no break before the end
  if (brk) lines.push("Take a short break. Continue when ready.");
  if (lines.length === 0) return;
  await p.ui.message({ title: brk ? "Break" : "Block finished", lines, button: "Continue", fullscreen: p.cfg.fullscreen });
}

/** POST /complete and go to the done page; false if the server still misses answers. */
async function complete(p) {
  p.ui.message({ title: "Saving your answers…", lines: ["Please keep this page open."] });
  await p.api.flushQueue();
  try {
    await p.api.complete();
  } catch (err) {
    if (err instanceof HttpError && err.status === 409) return false;
    throw err;
  }
  p.timers.cancelAll();
  location.assign(p.cfg.page);
  return true;
}

/** Send the answers an earlier visit left queued; then the step to start with. */
async function boot(p) {
  p.ui.message({ title: "Loading…" });
  const flushed = await p.api.flushQueue();
  p.log("page_load", {
    ...viewport(),
    queued_acked: flushed.acked,
    queued_rejected: flushed.rejected,
    storage_volatile: p.api.queue.volatile,
  });
  // The page came with the step the server gave when it made the page; answers sent just now
  // may have moved it on, so then ask again.
  return p.cfg.step && flushed.acked === 0 && flushed.rejected === 0 ? p.cfg.step : await p.api.next();
}

/** Run the steps the server gives, from `step`, until the participant is done. */
async function runSteps(p, step) {
  let first = true;
  const introduced = new Set(); // views whose intro was shown
  let completeTries = 0;
  for (;;) {
    if (!step || step.step === "done") {
      if (await complete(p)) return;
      completeTries += 1;
      if (completeTries > 3) throw new Error("the server did not accept completion");
      step = await p.api.next();
      continue;
    }
    if (step.step !== "trial" || !step.trial) {
      location.assign(p.cfg.page); // a page this script does not handle (consent, instructions, …)
      return;
    }
    const trial = step.trial;
    const task = await taskFor(trial);
    const view = viewOf(p, task);
    p.shownTrialIndex = Number.isInteger(trial.trial_index) ? trial.trial_index : null;
    const upcoming = [...task.urls(trial), ...(Array.isArray(step.preload) ? step.preload : [])];
    p.preloader.prune(upcoming);
    p.preloader.want(upcoming);
    // The trial's place in its part of the study (the server's `progress`: among the 2-AFC
    // trials, or within a task block such as the ratings).
    p.ui.progress(trial.progress ?? { index: step.n_answered, total: step.n_trials ?? p.cfg.nTrials }, view.noun);

    await announce(p, trial, view, first, introduced);
    first = false;

    const outcome = await runTrial(p, trial, task, view);
    if (outcome.kind === "rejected") {
      p.log("network_retry", { what: "answer_rejected", status: outcome.error.status, code: outcome.error.code });
      step = await p.api.next();
      continue;
    }
    const ack = outcome.ack || {};
    if (ack.block_end) await afterBlock(p, ack.block_end, trial.block, ack.next?.step === "done");
    step = ack.next && typeof ack.next === "object" && ack.next.step ? ack.next : await p.api.next();
  }
}

/** Boot the page and run trials until the server says "done". */
async function main() {
  const cfg = readConfig();
  const root = document.querySelector("[data-task]");
  document.body.style.setProperty("--img", `${cfg.imageSizePx}px`);
  /** @type {Page} */
  const p = {
    cfg,
    views: new Map(),
    view: null,
    live: null,
    shownTrialIndex: null,
    lastBlankAt: -Infinity,
    lastScale: null,
  };
  p.ui = createUi(root, () => p.lastScale !== null && p.lastScale < 1);
  p.trialScreen = root.querySelector('[data-screen="trial"]');
  p.telemetry = createTelemetry({ post: (batch) => p.api.postEvents(batch), trialIndex: () => p.shownTrialIndex });
  p.log = p.telemetry.log;
  p.api = createApi({
    base: cfg.api,
    token: cfg.token,
    onStatus: (s) => p.ui.status(s),
    onRetry: (what, attempt, err) => p.log("network_retry", { what, attempt, status: err?.status ?? 0 }),
  });
  p.preloader = new Preloader({ concurrency: 6, retries: 3 });
  p.timers = createTimers();
  watchPage(p);
  await runSteps(p, await boot(p));
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
