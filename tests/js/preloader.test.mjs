import assert from "node:assert/strict";
import { test } from "node:test";

import { Preloader } from "../../static/preloader.js";
import { flush } from "./helpers.mjs";

/** Fake images whose decode() the test settles by hand; `fail` says which loads fail. */
function fakeImages({ fail = () => false } = {}) {
  const started = [];
  const open = new Map(); // src -> settle functions of loads in progress
  let active = 0;
  let maxActive = 0;
  const createImage = () => {
    const img = {
      src: "",
      decode() {
        active += 1;
        maxActive = Math.max(maxActive, active);
        started.push(img.src);
        return new Promise((resolve, reject) => {
          const list = open.get(img.src) || [];
          list.push(() => {
            active -= 1;
            if (fail(img.src)) reject(new Error(`404 ${img.src}`));
            else resolve();
          });
          open.set(img.src, list);
        });
      },
    };
    return img;
  };
  return {
    createImage,
    started,
    /** Finish the oldest load in progress of `src` (or of any URL). */
    finish(src) {
      const key = src ?? [...open.keys()].find((k) => open.get(k).length > 0);
      const list = open.get(key);
      list.shift()();
      if (list.length === 0) open.delete(key);
    },
    get active() {
      return active;
    },
    get maxActive() {
      return maxActive;
    },
  };
}

const noSleep = async () => {};

test("no more than `concurrency` images load at once, in need order", async () => {
  const imgs = fakeImages();
  const p = new Preloader({ concurrency: 2, createImage: imgs.createImage, sleep: noSleep });
  p.want(["a", "b", "c", "d", "e"]);
  assert.deepEqual(imgs.started, ["a", "b"]);
  for (let i = 0; i < 5; i += 1) {
    imgs.finish();
    await flush();
  }
  assert.deepEqual(imgs.started, ["a", "b", "c", "d", "e"]);
  assert.equal(imgs.maxActive, 2);
  assert.equal(p.state("e"), "done");
});

test("get() moves a queued image to the front and resolves when it is decoded", async () => {
  const imgs = fakeImages();
  const p = new Preloader({ concurrency: 1, createImage: imgs.createImage, sleep: noSleep });
  p.want(["a", "b", "c"]);
  let got = null;
  p.get("c").then((img) => (got = img));
  imgs.finish("a");
  await flush();
  assert.deepEqual(imgs.started, ["a", "c"]);
  assert.equal(got, null);
  imgs.finish("c");
  await flush();
  assert.equal(got.src, "c");
});

test("wanted images wait while an image asked for by get() is still loading", async () => {
  const imgs = fakeImages();
  const p = new Preloader({ concurrency: 3, createImage: imgs.createImage, sleep: noSleep });
  p.want(["a1", "a2", "b1", "b2"]); // a*: the trial about to be shown, b*: the next trial
  const got = Promise.all([p.get("a1"), p.get("a2")]);
  assert.deepEqual(imgs.started, ["a1", "a2", "b1"]); // b1 had started before get()
  imgs.finish("a1");
  await flush();
  assert.deepEqual(imgs.started, ["a1", "a2", "b1"]); // a2 still loading: b2 waits
  imgs.finish("a2");
  await got;
  await flush();
  assert.deepEqual(imgs.started, ["a1", "a2", "b1", "b2"]);
});

test("want() skips URLs it already knows", () => {
  const imgs = fakeImages();
  const p = new Preloader({ concurrency: 6, createImage: imgs.createImage, sleep: noSleep });
  p.want(["a", "b"]);
  p.want(["b", "a", "c", "", null]);
  assert.deepEqual(imgs.started, ["a", "b", "c"]);
});

test("a failing image is retried with backoff and then succeeds", async () => {
  let failures = 2;
  const imgs = fakeImages({ fail: () => failures-- > 0 });
  const sleeps = [];
  const p = new Preloader({ concurrency: 2, retries: 3, createImage: imgs.createImage, sleep: async (ms) => sleeps.push(ms) });
  const got = p.get("x");
  for (let i = 0; i < 3; i += 1) {
    imgs.finish("x");
    await flush();
  }
  assert.equal((await got).src, "x");
  assert.equal(p.loadCount, 3);
  assert.equal(sleeps.length, 2);
  assert.ok(sleeps[1] > sleeps[0] / 2, "backoff does not shrink");
});

test("get() rejects after the retries are spent, and a later get() starts afresh", async () => {
  let broken = true;
  const imgs = fakeImages({ fail: () => broken });
  const p = new Preloader({ concurrency: 2, retries: 1, createImage: imgs.createImage, sleep: noSleep });
  const first = p.get("x");
  imgs.finish("x");
  await flush();
  imgs.finish("x");
  await flush();
  await assert.rejects(first, /404 x/);
  assert.equal(p.state("x"), undefined);
  broken = false;
  const second = p.get("x");
  imgs.finish("x");
  assert.equal((await second).src, "x");
});

test("a failing image does not block the others", async () => {
  const imgs = fakeImages({ fail: (src) => src === "bad" });
  const p = new Preloader({ concurrency: 1, retries: 0, createImage: imgs.createImage, sleep: noSleep });
  const bad = p.get("bad");
  const good = p.get("good");
  assert.deepEqual(imgs.started, ["bad"]);
  imgs.finish("bad");
  await assert.rejects(bad);
  await flush();
  assert.deepEqual(imgs.started, ["bad", "good"]);
  imgs.finish("good");
  assert.equal((await good).src, "good");
});

test("prune forgets decoded images that are no longer needed", async () => {
  const imgs = fakeImages();
  const p = new Preloader({ concurrency: 6, createImage: imgs.createImage, sleep: noSleep });
  p.want(["a", "b", "c"]);
  imgs.finish("a");
  imgs.finish("b");
  await flush();
  p.prune(["b"]);
  assert.equal(p.state("a"), undefined);
  assert.equal(p.state("b"), "done");
  assert.equal(p.state("c"), "loading", "loads in progress are kept");
});
