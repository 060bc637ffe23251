import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AnswerQueue,
  EventBuffer,
  HttpError,
  MemoryStorage,
  backoffDelay,
  createApi,
  uuid4,
} from "../../static/api.js";
import { jsonResponse, scriptedFetch } from "./helpers.mjs";

const TOKEN = "tok123";
const KEY = `psychvis:answers:${TOKEN}`;

function answer(i, uuid = `00000000-0000-4000-8000-00000000000${i}`) {
  return { response_uuid: uuid, trial_index: i, response: "upper", confidence: 3, rt_ms: 800 };
}

function ack(i, extra = {}) {
  return { trial_index: i, duplicate: false, correct: true, solution: { response: "upper" }, block_end: null, next: null, ...extra };
}

/** createApi with fakes; `sleeps` records every backoff wait, `statuses` every status change. */
function makeApi(fetch, { storage = new MemoryStorage(), beacon } = {}) {
  const sleeps = [];
  const statuses = [];
  const api = createApi({
    base: `/api/p/${TOKEN}/`,
    token: TOKEN,
    fetch,
    storage,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
    beacon,
    onStatus: (s) => statuses.push(s),
  });
  return { api, sleeps, statuses, storage };
}

test("uuid4 falls back to getRandomValues outside secure contexts", () => {
  let n = 0;
  const fakeCrypto = { getRandomValues: (a) => a.fill(0xab + (n++ % 2)) };
  const id = uuid4(fakeCrypto);
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.match(uuid4(), /^[0-9a-f-]{36}$/);
  assert.notEqual(uuid4(), uuid4());
});

test("backoff grows exponentially, is jittered and capped", () => {
  assert.equal(backoffDelay(0, { baseMs: 500, random: () => 0 }), 250);
  assert.equal(backoffDelay(0, { baseMs: 500, random: () => 1 }), 500);
  assert.equal(backoffDelay(3, { baseMs: 500, random: () => 0 }), 2000);
  assert.equal(backoffDelay(50, { baseMs: 500, capMs: 30000, random: () => 1 }), 30000);
});

test("an answer is in storage before the request is sent and removed after the ack", async () => {
  const storage = new MemoryStorage();
  const seenInStorage = [];
  const fetch = scriptedFetch([
    () => {
      seenInStorage.push(JSON.parse(storage.getItem(KEY)));
      return jsonResponse(200, ack(4));
    },
  ]);
  const { api } = makeApi(fetch, { storage });
  const out = await api.submitAnswer(answer(4));
  assert.equal(out.kind, "ack");
  assert.equal(out.ack.solution.response, "upper");
  assert.deepEqual(seenInStorage, [[answer(4)]]);
  assert.equal(storage.getItem(KEY), null);
  assert.equal(fetch.calls[0].url, `/api/p/${TOKEN}/responses`);
  assert.equal(fetch.calls[0].method, "POST");
  assert.deepEqual(fetch.calls[0].body, answer(4));
});

test("network errors and 5xx are retried with growing backoff, keeping the answer queued", async () => {
  const storage = new MemoryStorage();
  const fetch = scriptedFetch([
    () => {
      throw new TypeError("Failed to fetch");
    },
    () => jsonResponse(503, { code: "unavailable" }),
    () => jsonResponse(502),
    () => {
      assert.equal(JSON.parse(storage.getItem(KEY)).length, 1);
      return jsonResponse(200, ack(4));
    },
  ]);
  const { api, sleeps, statuses } = makeApi(fetch, { storage });
  const out = await api.submitAnswer(answer(4));
  assert.equal(out.kind, "ack");
  assert.equal(fetch.calls.length, 4);
  assert.equal(new Set(fetch.calls.map((c) => c.body.response_uuid)).size, 1, "same idempotency key");
  assert.deepEqual(sleeps, [375, 750, 1500]);
  assert.ok(statuses.includes("reconnecting"));
  assert.equal(statuses.at(-1), "idle");
  assert.equal(api.queue.size, 0);
});

test("409 out_of_order drops the queued answer without retrying", async () => {
  const fetch = scriptedFetch([() => jsonResponse(409, { code: "out_of_order", detail: "not current" })]);
  const { api, sleeps } = makeApi(fetch);
  const out = await api.submitAnswer(answer(2));
  assert.equal(out.kind, "rejected");
  assert.ok(out.error instanceof HttpError);
  assert.equal(out.error.code, "out_of_order");
  assert.equal(fetch.calls.length, 1);
  assert.deepEqual(sleeps, []);
  assert.equal(api.queue.size, 0);
});

test("404 and 410 are not retried and keep the answer queued", async () => {
  for (const status of [404, 410]) {
    const fetch = scriptedFetch([() => jsonResponse(status, { code: "gone" })]);
    const { api } = makeApi(fetch);
    await assert.rejects(api.submitAnswer(answer(1)), (err) => err instanceof HttpError && err.status === status);
    assert.equal(fetch.calls.length, 1);
    assert.equal(api.queue.size, 1);
  }
});

test("flushQueue re-sends answers of an earlier page, oldest first, and accepts duplicates", async () => {
  const storage = new MemoryStorage();
  storage.setItem(KEY, JSON.stringify([answer(5), answer(6)]));
  const fetch = scriptedFetch([
    (u, i, body) => jsonResponse(200, ack(body.trial_index, { duplicate: true })),
  ]);
  const { api } = makeApi(fetch, { storage });
  const out = await api.flushQueue();
  assert.deepEqual(out, { acked: 2, rejected: 0 });
  assert.deepEqual(fetch.calls.map((c) => c.body.trial_index), [5, 6]);
  assert.equal(storage.getItem(KEY), null);
});

test("an answer already in flight is not sent twice by flushQueue", async () => {
  let release;
  const gate = new Promise((r) => (release = r));
  const fetch = scriptedFetch([async () => {
    await gate;
    return jsonResponse(200, ack(3));
  }]);
  const { api } = makeApi(fetch);
  const a = api.submitAnswer(answer(3));
  const b = api.flushQueue();
  release();
  assert.equal((await a).kind, "ack");
  assert.deepEqual(await b, { acked: 1, rejected: 0 });
  assert.equal(fetch.calls.length, 1);
});

test("beaconFlush sends queued answers and event batches as text/plain, answers stay queued", async () => {
  const storage = new MemoryStorage();
  storage.setItem(KEY, JSON.stringify([answer(7)]));
  const beacons = [];
  const { api } = makeApi(scriptedFetch([() => jsonResponse(500)]), {
    storage,
    beacon: (url, blob) => {
      beacons.push({ url, blob });
      return true;
    },
  });
  const events = Array.from({ length: 60 }, (_, i) => ({ kind: "heartbeat", client_ms: i, data: {} }));
  assert.equal(api.beaconFlush(events), 3);
  assert.deepEqual(beacons.map((b) => b.url), [`/api/p/${TOKEN}/responses`, `/api/p/${TOKEN}/events`, `/api/p/${TOKEN}/events`]);
  for (const b of beacons) assert.equal(b.blob.type, "text/plain");
  assert.deepEqual(JSON.parse(await beacons[0].blob.text()), answer(7));
  assert.equal(JSON.parse(await beacons[1].blob.text()).events.length, 50);
  assert.equal(JSON.parse(await beacons[2].blob.text()).events.length, 10);
  assert.equal(api.queue.size, 1);
});

test("a refused or throwing beacon is harmless", () => {
  const storage = new MemoryStorage();
  storage.setItem(KEY, JSON.stringify([answer(1), answer(2)]));
  let n = 0;
  const { api } = makeApi(scriptedFetch([() => jsonResponse(200, {})]), {
    storage,
    beacon: () => {
      n += 1;
      if (n === 1) throw new TypeError("unsupported");
      return false;
    },
  });
  assert.equal(api.beaconFlush(), 0);
  assert.equal(api.queue.size, 2);
});

test("the queue keeps answers in memory when storage fails", async () => {
  const broken = new MemoryStorage();
  broken.setItem = () => {
    throw new DOMException("quota", "QuotaExceededError");
  };
  const q = new AnswerQueue(broken, TOKEN);
  q.add(answer(1));
  q.add(answer(2));
  q.add(answer(2)); // idempotent on uuid
  assert.equal(q.volatile, true);
  assert.deepEqual(q.list().map((x) => x.trial_index), [1, 2]);
  q.remove(answer(1).response_uuid);
  assert.deepEqual(q.list().map((x) => x.trial_index), [2]);
});

test("a corrupt storage value reads as an empty queue", () => {
  const s = new MemoryStorage();
  s.setItem(KEY, "{not json");
  assert.deepEqual(new AnswerQueue(s, TOKEN).list(), []);
  s.setItem(KEY, JSON.stringify([{ nope: 1 }, answer(3)]));
  assert.deepEqual(new AnswerQueue(s, TOKEN).list(), [answer(3)]);
});

test("next() retries 5xx and returns the parsed step", async () => {
  const fetch = scriptedFetch([() => jsonResponse(500), () => jsonResponse(200, { step: "done", n_trials: 3, n_answered: 3 })]);
  const { api, sleeps } = makeApi(fetch);
  const step = await api.next();
  assert.equal(step.step, "done");
  assert.equal(fetch.calls[1].url, `/api/p/${TOKEN}/next`);
  assert.equal(fetch.calls[1].method, "GET");
  assert.equal(sleeps.length, 1);
});

test("complete() surfaces 409 as an HttpError", async () => {
  const fetch = scriptedFetch([() => jsonResponse(409, { code: "incomplete" })]);
  const { api } = makeApi(fetch);
  await assert.rejects(api.complete(), (e) => e instanceof HttpError && e.status === 409 && e.code === "incomplete");
});

test("postEvents gives up after a few retries so the caller can keep the events", async () => {
  const fetch = scriptedFetch([() => jsonResponse(503)]);
  const { api } = makeApi(fetch);
  await assert.rejects(api.postEvents([{ kind: "heartbeat", client_ms: 1, data: {} }]));
  assert.equal(fetch.calls.length, 3);
  assert.deepEqual(fetch.calls[0].body, { events: [{ kind: "heartbeat", client_ms: 1, data: {} }] });
});

test("the event buffer batches, puts back and drops the oldest beyond its bound", () => {
  let now = 0;
  const b = new EventBuffer({ maxBuffered: 5, now: () => (now += 1.23) });
  for (let i = 0; i < 7; i += 1) b.push("heartbeat", { i });
  assert.equal(b.size, 5);
  const batch = b.take(3);
  assert.deepEqual(batch.map((e) => e.data.i), [2, 3, 4]);
  assert.equal(batch[0].client_ms, 3.7);
  b.putBack(batch);
  assert.deepEqual(b.take(50).map((e) => e.data.i), [2, 3, 4, 5, 6]);
});

test("events carry trial_index at the top level and only scalar data the server accepts", () => {
  const b = new EventBuffer({ now: () => 12.345 });
  b.push("resize", { w: 1280, h: 800, nested: { no: 1 }, long: "x".repeat(300), bad: Number.NaN }, 4);
  b.push("heartbeat", {}, null);
  const [resize, beat] = b.take();
  assert.deepEqual(resize, { kind: "resize", client_ms: 12.3, trial_index: 4, data: { w: 1280, h: 800, long: "x".repeat(200) } });
  assert.equal(beat.trial_index, null);
  assert.throws(() => b.push("made_up_kind"), /unknown event kind/);
});

test("every retry is reported with what was being sent", async () => {
  const seen = [];
  const fetch = scriptedFetch([() => jsonResponse(503), () => jsonResponse(200, { step: "done" })]);
  const api = createApi({
    base: "/api/p/t",
    token: "t",
    fetch,
    storage: new MemoryStorage(),
    sleep: async () => {},
    onRetry: (what, attempt, err) => seen.push([what, attempt, err.status]),
  });
  await api.next();
  assert.deepEqual(seen, [["next", 0, 503]]);
});
