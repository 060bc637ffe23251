// The rating task module on a small fake DOM: its image list, its part of the answer body, its
// scale, and the view's answer path (collect/stop) with pointer, click and keyboard events.
import assert from "node:assert/strict";
import { test } from "node:test";

import { answerBody, mount, name, urls } from "../../static/tasks/rating.js";
import { createInput, isSubmitKey } from "../../static/tasks/rating/input.js";
import { DEFAULT_SCALE, normaliseScale, ratingValue, sliderName } from "../../static/tasks/rating/scale.js";
import { flush } from "./helpers.mjs";

/** An EventTarget that counts its listeners (to check stop() removes all it added). */
class Target extends EventTarget {
  constructor() {
    super();
    this.listeners = new Set();
  }
  addEventListener(type, fn, opts) {
    this.listeners.add(`${type}`);
    this.listenerCount = (this.listenerCount || 0) + 1;
    super.addEventListener(type, fn, opts);
  }
  removeEventListener(type, fn, opts) {
    this.listenerCount = (this.listenerCount || 0) - 1;
    super.removeEventListener(type, fn, opts);
  }
}

/** A stand-in for an element: dataset, style, attributes, children, textContent. */
class El extends Target {
  constructor(tagName = "DIV", extra = {}) {
    super();
    this.tagName = tagName;
    this.dataset = {};
    this.style = {};
    this.attributes = {};
    this.children = [];
    this.textContent = "";
    this.offsetWidth = 800;
    this.offsetHeight = 530;
    this.clientWidth = 1280;
    this.clientHeight = 614;
    Object.assign(this, extra);
  }
  setAttribute(k, v) {
    this.attributes[k] = String(v);
  }
  replaceChildren(...kids) {
    this.children = kids;
  }
  focus() {
    this.focused = true;
  }
}

/** The rating markup (templates/tasks/rating.html) as fakes, and a document to hear keys. */
function fakeRoot() {
  const doc = new Target();
  doc.created = [];
  doc.createElement = (tag) => {
    const img = new El(tag.toUpperCase());
    img.decode = async () => {
      img.decoded = true;
    };
    doc.created.push(img);
    return img;
  };
  const els = {
    "[data-stage]": new El(),
    "[data-stage-wrap]": new El(),
    '[data-rating-grid="synthetic"]': new El(),
    '[data-rating-grid="natural"]': new El(),
    '[data-rating-figure="synthetic"]': new El("FIGURE"),
    '[data-rating-figure="natural"]': new El("FIGURE"),
    "[data-rating-slider]": new El("INPUT", { type: "range", value: "0", disabled: true }),
    "[data-rating-submit]": new El("BUTTON", { disabled: true }),
    "[data-rating-min-label]": new El("LABEL"),
    "[data-rating-max-label]": new El("LABEL"),
  };
  const root = {
    ownerDocument: doc,
    querySelector(sel) {
      if (!(sel in els)) throw new Error(`unexpected selector ${sel}`);
      return els[sel];
    },
  };
  return {
    root,
    doc,
    els,
    stage: els["[data-stage]"],
    slider: els["[data-rating-slider]"],
    submit: els["[data-rating-submit]"],
    grid: (g) => els[`[data-rating-grid="${g}"]`],
    figure: (g) => els[`[data-rating-figure="${g}"]`],
  };
}

function fakePreloader() {
  const asked = [];
  return { asked, get: async (url) => (asked.push(url), { src: url }) };
}

const TRIAL = {
  trial_index: 3,
  task: "rating",
  position: "start",
  images: { synthetic: ["/img/s1", "/img/s2", "/img/s3"], natural: ["/img/n1", "/img/s2"] },
  scale: { min: -100, max: 100, step: 1, start: 0, min_label: "Not intuitive", max_label: "Intuitive" },
};

function stamped(e, timeStamp, { target, ...extra } = {}) {
  Object.assign(e, extra);
  if (target !== undefined) Object.defineProperty(e, "target", { value: target });
  if (timeStamp !== undefined) Object.defineProperty(e, "timeStamp", { value: timeStamp });
  return e;
}
const pointerDown = (t, pointerType = "mouse", extra = {}) =>
  stamped(new Event("pointerdown", { cancelable: true }), t, { pointerType, button: 0, isPrimary: true, ...extra });
const click = (t, detail) => stamped(new Event("click"), t, { detail });
const keyDown = (t, key, extra = {}) =>
  stamped(new Event("keydown", { cancelable: true }), t, { key, code: key, repeat: false, ctrlKey: false, altKey: false, metaKey: false, shiftKey: false, ...extra });

/** A mounted view with a trial shown, and what collect() resolves with (or undefined). */
async function shownView(trial = TRIAL) {
  const dom = fakeRoot();
  const preloader = fakePreloader();
  const view = mount({ root: dom.root, config: {}, preloader, imageSizePx: 224 });
  view.layout(trial);
  view.show(await view.prepare(trial));
  return { dom, preloader, view };
}

function collecting(view, since) {
  const box = { result: undefined };
  view.collect({ since }).then((r) => (box.result = r));
  return box;
}

test("answer body: the value under the type's name", () => {
  assert.equal(name, "rating");
  assert.deepEqual(answerBody({ value: -37 }), { answer: { task: "rating", value: -37 } });
  assert.deepEqual(answerBody({ value: 0 }), { answer: { task: "rating", value: 0 } });
});

test("urls: synthetic then natural, without duplicates; missing or malformed lists give none", () => {
  assert.deepEqual(urls(TRIAL), ["/img/s1", "/img/s2", "/img/s3", "/img/n1"]);
  assert.deepEqual(urls({ images: { natural: ["/n"], synthetic: ["/s"] } }), ["/s", "/n"]);
  assert.deepEqual(urls({ images: { synthetic: [], natural: ["/n", "", null, 3] } }), ["/n"]);
  assert.deepEqual(urls({ images: { synthetic: "/s" } }), []);
  assert.deepEqual(urls({}), []);
});

test("scale: the trial's, with defaults for what is missing or malformed", () => {
  assert.deepEqual(normaliseScale(TRIAL.scale), { ...DEFAULT_SCALE });
  assert.deepEqual(normaliseScale(undefined), { ...DEFAULT_SCALE });
  assert.deepEqual(normaliseScale({ min: 1, max: 7, step: 1, start: 4, min_label: " low ", max_label: "high" }), {
    min: 1, max: 7, step: 1, start: 4, min_label: "low", max_label: "high",
  });
  // Bounds only as a pair; a start outside them is clamped; no start: 0 if inside, else the middle.
  assert.deepEqual(normaliseScale({ min: 5, max: 5 }), { ...DEFAULT_SCALE });
  assert.equal(normaliseScale({ min: 0, max: 10, start: 99 }).start, 10);
  assert.equal(normaliseScale({ min: 1, max: 9 }).start, 5);
  assert.equal(normaliseScale({ step: 0.5 }).step, 1);
  assert.equal(normaliseScale({ min_label: "" }).min_label, "Not intuitive");
  assert.equal(sliderName(DEFAULT_SCALE), "Intuitiveness from -100 (not intuitive) to 100 (intuitive)");
});

test("the rating value is an integer within the scale", () => {
  assert.equal(ratingValue("42", DEFAULT_SCALE), 42);
  assert.equal(ratingValue("-7.6", DEFAULT_SCALE), -8);
  assert.equal(ratingValue("250", DEFAULT_SCALE), 100);
  assert.equal(ratingValue("-101", DEFAULT_SCALE), -100);
  assert.equal(ratingValue("", { ...DEFAULT_SCALE, start: 0 }), 0);
  assert.equal(ratingValue("abc", { ...DEFAULT_SCALE, start: 3 }), 3);
});

test("layout puts the trial's scale on the slider and its labels, and sizes the grids", () => {
  const dom = fakeRoot();
  const view = mount({ root: dom.root, config: {}, preloader: fakePreloader(), imageSizePx: 224 });
  dom.slider.value = "55";
  view.layout({ images: { synthetic: ["/a"], natural: [] }, scale: { min: 0, max: 10, step: 2, start: 4, min_label: "<b>no</b>", max_label: "yes" } });
  assert.deepEqual([dom.slider.min, dom.slider.max, dom.slider.step, dom.slider.value], ["0", "10", "2", "4"]);
  assert.equal(dom.els["[data-rating-min-label]"].textContent, "<b>no</b>"); // text, never markup
  assert.equal(dom.els["[data-rating-max-label]"].textContent, "yes");
  assert.equal(dom.slider.attributes["aria-label"], "Intuitiveness from 0 (<b>no</b>) to 10 (yes)");
  assert.equal(dom.grid("synthetic").dataset.n, "1");
  assert.equal(dom.grid("natural").dataset.n, "0");
  assert.equal(dom.figure("natural").dataset.empty, "true");
  assert.equal(dom.figure("synthetic").dataset.empty, undefined);
  view.layout(TRIAL);
  assert.equal(dom.figure("natural").dataset.empty, undefined);
});

test("prepare decodes every image through the preloader; show inserts them at once; hide clears", async () => {
  const dom = fakeRoot();
  const preloader = fakePreloader();
  const view = mount({ root: dom.root, config: {}, preloader, imageSizePx: 224 });
  view.layout(TRIAL);
  const prepared = await view.prepare(TRIAL);
  assert.deepEqual(preloader.asked, ["/img/s1", "/img/s2", "/img/s3", "/img/n1"]);
  assert.equal(dom.doc.created.length, 5, "one element per slot: /img/s2 is in both groups");
  assert.ok(dom.doc.created.every((img) => img.decoded && img.width === 112 && img.className === "rating-thumb"));
  assert.deepEqual(dom.grid("synthetic").children, [], "nothing inserted before show()");
  dom.slider.value = "80";
  view.show(prepared);
  assert.deepEqual(dom.grid("synthetic").children.map((i) => i.src), ["/img/s1", "/img/s2", "/img/s3"]);
  assert.deepEqual(dom.grid("natural").children.map((i) => [i.src, i.alt]), [["/img/n1", "Natural image 1"], ["/img/s2", "Natural image 2"]]);
  assert.equal(dom.slider.value, "0", "the slider starts at scale.start");
  assert.equal(dom.submit.disabled, true, "controls stay closed until collect()");
  view.hide();
  assert.deepEqual(dom.grid("synthetic").children, []);
  assert.deepEqual(dom.grid("natural").children, []);
});

test("collect ignores presses stamped before `since`, then resolves with the slider's integer value", async () => {
  const { dom, view } = await shownView();
  const box = collecting(view, 1000);
  assert.equal(dom.slider.disabled, false);
  assert.equal(dom.submit.disabled, false, "Continue needs no slider move");
  assert.equal(dom.slider.focused, true, "arrow keys work at once");
  dom.slider.value = "-42";
  dom.submit.dispatchEvent(pointerDown(999.5));
  dom.doc.dispatchEvent(keyDown(900, "Enter"));
  await flush();
  assert.equal(box.result, undefined, "inputs from the response lock are not answers");
  dom.submit.dispatchEvent(pointerDown(1234.5, "touch"));
  await flush();
  assert.deepEqual(box.result, { answer: { value: -42 }, input: "touch", atMs: 1234.5 });
  assert.equal(typeof box.result.answer.value, "number");
});

test("a mouse press answers as mouse; only the primary button and the first finger count", async () => {
  const { dom, view } = await shownView();
  const box = collecting(view, 0);
  dom.slider.value = "17";
  dom.submit.dispatchEvent(pointerDown(50, "mouse", { button: 2 }));
  dom.submit.dispatchEvent(pointerDown(51, "touch", { isPrimary: false }));
  dom.submit.dispatchEvent(click(52, 1)); // a pointer's click: its pointerdown decides
  await flush();
  assert.equal(box.result, undefined);
  dom.submit.dispatchEvent(pointerDown(60, "mouse"));
  await flush();
  assert.deepEqual(box.result, { answer: { value: 17 }, input: "mouse", atMs: 60 });
});

test("keyboard: Enter anywhere (the slider focused too) answers; repeats, modifiers and other keys do not", async () => {
  const { dom, view } = await shownView({ ...TRIAL, scale: { min: 1, max: 7, step: 1, start: 4 } });
  const box = collecting(view, 100);
  assert.equal(dom.slider.value, "4");
  for (const e of [
    keyDown(200, "Enter", { repeat: true }),
    keyDown(201, "Enter", { ctrlKey: true }),
    keyDown(202, "Enter", { isComposing: true }),
    keyDown(203, "ArrowRight"),
    keyDown(204, " "),
    keyDown(205, "Enter", { target: { tagName: "TEXTAREA" } }),
  ]) {
    dom.doc.dispatchEvent(e);
  }
  await flush();
  assert.equal(box.result, undefined);
  dom.slider.value = "6";
  const enter = keyDown(300, "Enter", { target: dom.slider }); // keydown on the focused range input
  dom.doc.dispatchEvent(enter);
  await flush();
  assert.deepEqual(box.result, { answer: { value: 6 }, input: "keyboard", atMs: 300 });
  assert.equal(enter.defaultPrevented, true, "no click of a focused button as well");
});

test("Space or Enter on the focused Continue (a click with detail 0) answers as keyboard", async () => {
  const { dom, view } = await shownView();
  const box = collecting(view, 0);
  dom.submit.dispatchEvent(click(77, 0));
  await flush();
  assert.deepEqual(box.result, { answer: { value: 0 }, input: "keyboard", atMs: 77 });
});

test("stop closes the controls and removes every listener collect added", async () => {
  const { dom, view } = await shownView();
  const before = { submit: dom.submit.listenerCount || 0, doc: dom.doc.listenerCount || 0 };
  const box = collecting(view, 0);
  assert.ok(dom.submit.listenerCount > before.submit && dom.doc.listenerCount > before.doc);
  view.stop();
  assert.equal(dom.submit.listenerCount, before.submit);
  assert.equal(dom.doc.listenerCount, before.doc);
  assert.equal(dom.slider.disabled, true);
  assert.equal(dom.submit.disabled, true);
  dom.submit.dispatchEvent(pointerDown(10));
  dom.doc.dispatchEvent(keyDown(11, "Enter"));
  await flush();
  assert.equal(box.result, undefined);
  view.stop(); // harmless when nothing is open
});

test("an answer stops the input itself: a second press after it is not heard", async () => {
  let answers = 0;
  const button = new Target();
  button.disabled = false;
  const doc = new Target();
  const input = createInput({ button, keyTarget: doc, onAnswer: () => (answers += 1) });
  input.start(0);
  button.dispatchEvent(pointerDown(5));
  button.dispatchEvent(pointerDown(6));
  doc.dispatchEvent(keyDown(7, "Enter"));
  assert.equal(answers, 1);
  assert.equal(input.active, false);
  assert.equal(button.listenerCount, 0);
  assert.equal(doc.listenerCount, 0);
});

test("a disabled Continue answers nothing", () => {
  let answers = 0;
  const button = new Target();
  button.disabled = true;
  const input = createInput({ button, keyTarget: new Target(), onAnswer: () => (answers += 1) });
  input.start(0);
  button.dispatchEvent(pointerDown(5));
  assert.equal(answers, 0);
  assert.equal(isSubmitKey({ key: "Enter" }), true);
  assert.equal(isSubmitKey({ code: "NumpadEnter", key: "Enter" }), true);
  assert.equal(isSubmitKey({ key: "Enter", shiftKey: true }), false);
});

test("feedback resolves at once; the intro says how to answer", async () => {
  const { view } = await shownView();
  let done = false;
  view.feedback({ answer: { value: 1 }, ack: new Promise(() => {}), timing: {}, timers: null }).then(() => (done = true));
  await flush(2);
  assert.equal(done, true, "ratings have no right answer: no wait for the acknowledgement");
  assert.equal(view.intro, "Move the slider, then press Continue or Enter.");
});
