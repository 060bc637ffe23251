// Participant JSON API client: fetch wrappers, retry with backoff, idempotent answers that are
// kept in localStorage until the server acknowledges them, event batches, sendBeacon flush.
//
// Contract: docs/participant_api.md. Pure module: fetch, storage, sleep, random, beacon and the
// clock are injected, so node tests drive it with fakes.

/** A non-retryable HTTP answer (4xx), with the API's error `code` when it sent one. */
export class HttpError extends Error {
  constructor(status, code, detail) {
    super(`HTTP ${status}${code ? ` ${code}` : ""}${detail ? `: ${detail}` : ""}`);
    this.name = "HttpError";
    this.status = status;
    this.code = code || null;
    this.detail = detail || null;
  }
}

/** Transport failure worth retrying (network error, timeout, 5xx, 408, 429). */
export class RetryableError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.name = "RetryableError";
    this.status = status;
  }
}

/**
 * A random UUID4. crypto.randomUUID() exists only in secure contexts (https, localhost), so
 * fall back to getRandomValues(), which plain-http pages have too.
 */
export function uuid4(cryptoObj = globalThis.crypto) {
  if (typeof cryptoObj.randomUUID === "function") return cryptoObj.randomUUID();
  const b = cryptoObj.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Exponential backoff with "equal jitter": half the capped exponential delay plus a random
 * part of the other half, so clients that failed together do not retry in lockstep.
 * @param {number} attempt 0 for the first retry.
 * @returns {number} milliseconds to wait.
 */
export function backoffDelay(attempt, { baseMs = 500, capMs = 30000, random = Math.random } = {}) {
  const d = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return d / 2 + random() * (d / 2);
}

/** Whether an HTTP status is worth retrying. */
export function isRetryableStatus(status) {
  return status >= 500 || status === 408 || status === 429;
}

/** In-memory stand-in for localStorage (private mode, disabled storage, node tests). */
export class MemoryStorage {
  constructor() {
    this.map = new Map();
  }
  getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }
  setItem(k, v) {
    this.map.set(k, String(v));
  }
  removeItem(k) {
    this.map.delete(k);
  }
}

/** window.localStorage when usable, else a MemoryStorage (reading it can throw). */
export function safeLocalStorage() {
  try {
    const s = globalThis.localStorage;
    const probe = "psychvis:probe";
    s.setItem(probe, "1");
    s.removeItem(probe);
    return s;
  } catch {
    return new MemoryStorage();
  }
}

/**
 * Answers not yet acknowledged by the server, persisted under one storage key per token.
 * Every mutation is written through synchronously, so an answer is on disk before it is sent.
 */
export class AnswerQueue {
  /**
   * @param {Storage} storage localStorage or a MemoryStorage.
   * @param {string} token the participant token (part of the key).
   */
  constructor(storage, token) {
    this.storage = storage;
    this.key = `psychvis:answers:${token}`;
    this.fallback = null; // in-memory copy if storage starts failing (quota, disabled)
  }

  /** @returns {object[]} queued answer bodies, oldest first. */
  list() {
    if (this.fallback) return [...this.fallback];
    let raw = null;
    try {
      raw = this.storage.getItem(this.key);
    } catch {
      raw = null;
    }
    if (!raw) return [];
    try {
      const items = JSON.parse(raw);
      return Array.isArray(items) ? items.filter((x) => x && typeof x.response_uuid === "string") : [];
    } catch {
      return [];
    }
  }

  write(items) {
    if (this.fallback) {
      this.fallback = items;
      return;
    }
    try {
      if (items.length === 0) this.storage.removeItem(this.key);
      else this.storage.setItem(this.key, JSON.stringify(items));
    } catch {
      this.fallback = items; // keep going in memory rather than lose the answer
    }
  }

  /** Add an answer body (idempotent on response_uuid). */
  add(body) {
    const items = this.list().filter((x) => x.response_uuid !== body.response_uuid);
    items.push(body);
    this.write(items);
  }

  /** Remove the answer with this uuid (after an acknowledgement or a definitive refusal). */
  remove(uuid) {
    const items = this.list();
    const kept = items.filter((x) => x.response_uuid !== uuid);
    if (kept.length !== items.length) this.write(kept);
  }

  get size() {
    return this.list().length;
  }

  /** Whether answers live only in memory (storage unavailable). */
  get volatile() {
    return this.fallback !== null;
  }
}

/**
 * Event kinds the server accepts (app/schemas.py EventSubmit); anything else would make the
 * whole batch a 422, so push() refuses it.
 */
export const EVENT_KINDS = Object.freeze([
  "focus_lost",
  "focus_gained",
  "visibility_hidden",
  "visibility_visible",
  "fullscreen_enter",
  "fullscreen_exit",
  "resize",
  "heartbeat",
  "page_load",
  "page_hide",
  "network_retry",
]);

/** Keep only short keys with scalar values (at most 16; the server's limits). */
function scalarData(data) {
  const out = {};
  for (const [k, v] of Object.entries(data || {}).slice(0, 16)) {
    if (k.length > 40) continue;
    if (v === null || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v))) out[k] = v;
    else if (typeof v === "string") out[k] = v.slice(0, 200);
  }
  return out;
}

/**
 * Buffer of page events ({kind, client_ms, trial_index, data}) posted to /events in small
 * batches.
 */
export class EventBuffer {
  constructor({ maxBuffered = 500, now = () => globalThis.performance.now() } = {}) {
    this.items = [];
    this.maxBuffered = maxBuffered;
    this.now = now;
  }

  /**
   * @param {string} kind one of EVENT_KINDS.
   * @param {object} [data] scalar values only.
   * @param {number|null} [trialIndex] the trial shown when it happened.
   */
  push(kind, data = {}, trialIndex = null) {
    if (!EVENT_KINDS.includes(kind)) throw new Error(`unknown event kind ${kind}`);
    const trial_index = Number.isInteger(trialIndex) && trialIndex >= 0 ? trialIndex : null;
    this.items.push({ kind, client_ms: Math.round(this.now() * 10) / 10, trial_index, data: scalarData(data) });
    // Oldest events go first when a long outage fills the buffer: recent ones matter more.
    if (this.items.length > this.maxBuffered) this.items.splice(0, this.items.length - this.maxBuffered);
  }

  /** Remove and return up to `max` events (the API takes at most 50 per call). */
  take(max = 50) {
    return this.items.splice(0, max);
  }

  /** Put events back at the front after a failed post. */
  putBack(events) {
    this.items.unshift(...events);
    if (this.items.length > this.maxBuffered) this.items.length = this.maxBuffered;
  }

  get size() {
    return this.items.length;
  }
}

/**
 * One HTTP request that returns parsed JSON or throws HttpError / RetryableError.
 * @param {Function} fetchFn fetch.
 * @param {string} url
 * @param {{method?: string, body?: object, timeoutMs?: number, keepalive?: boolean}} opts
 */
export async function requestJson(fetchFn, url, { method = "GET", body, timeoutMs = 20000, keepalive = false } = {}) {
  const ctrl = typeof AbortController === "function" ? new AbortController() : null;
  const timer = ctrl ? setTimeout(() => ctrl.abort(), timeoutMs) : null;
  let res;
  try {
    res = await fetchFn(url, {
      method,
      headers: body === undefined ? { Accept: "application/json" } : { Accept: "application/json", "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
      keepalive,
      signal: ctrl ? ctrl.signal : undefined,
    });
  } catch (err) {
    throw new RetryableError(`network error: ${err && err.message ? err.message : err}`);
  } finally {
    if (timer !== null) clearTimeout(timer);
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (res.ok) return data;
  if (isRetryableStatus(res.status)) throw new RetryableError(`HTTP ${res.status}`, res.status);
  throw new HttpError(res.status, data && data.code, data && data.detail);
}

/**
 * Call `fn` until it succeeds, retrying RetryableErrors with backoff; other errors propagate.
 * @param {() => Promise<any>} fn
 * @param {{retries?: number, sleep: (ms: number) => Promise<void>, backoff?: object,
 *   onRetry?: (attempt: number, err: Error, waitMs: number) => void}} opts
 */
export async function withRetry(fn, { retries = Infinity, sleep, backoff = {}, onRetry = () => {} }) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof RetryableError) || attempt >= retries) throw err;
      const waitMs = backoffDelay(attempt, backoff);
      onRetry(attempt, err, waitMs);
      await sleep(waitMs);
    }
  }
}

/**
 * The participant API client.
 * @param {object} o
 * @param {string} o.base API base URL, e.g. "/api/p/<token>".
 * @param {string} o.token participant token (storage key).
 * @param {Function} [o.fetch] fetch.
 * @param {Storage} [o.storage] localStorage (or a fake).
 * @param {(ms: number) => Promise<void>} [o.sleep]
 * @param {() => number} [o.random]
 * @param {(url: string, data: Blob) => boolean} [o.beacon] navigator.sendBeacon.
 * @param {(state: string) => void} [o.onStatus] "saving" | "reconnecting" | "idle".
 * @param {(what: string, attempt: number, err: Error) => void} [o.onRetry] each retry.
 * @param {object} [o.backoff] backoffDelay options.
 */
export function createApi({
  base,
  token,
  fetch: fetchFn = (...a) => globalThis.fetch(...a),
  storage = safeLocalStorage(),
  sleep = (ms) => new Promise((r) => setTimeout(r, ms)),
  random = Math.random,
  beacon = (url, data) => globalThis.navigator.sendBeacon(url, data),
  onStatus = () => {},
  onRetry = () => {},
  backoff = {},
}) {
  const root = base.replace(/\/+$/, "");
  const queue = new AnswerQueue(storage, token);
  const inFlight = new Map(); // response_uuid -> promise of the outcome
  let pendingCount = 0;
  let failing = false;

  function status() {
    onStatus(failing ? "reconnecting" : pendingCount > 0 ? "saving" : "idle");
  }

  async function tracked(what, fn) {
    pendingCount += 1;
    status();
    try {
      const out = await withRetry(fn, {
        sleep,
        backoff: { random, ...backoff },
        onRetry: (attempt, err) => {
          failing = true;
          status();
          onRetry(what, attempt, err);
        },
      });
      failing = false;
      return out;
    } finally {
      pendingCount -= 1;
      status();
    }
  }

  /**
   * Send one queued answer until the server decides on it.
   * @returns {Promise<{kind: "ack", ack: object} | {kind: "rejected", error: HttpError}>}
   *   "rejected" (409 out_of_order, 422, 413) means the item was dropped from the queue and the
   *   caller must re-sync with next(). Other 4xx (404 unknown token, 410 closed) throw
   *   HttpError and leave the answer queued.
   */
  function sendAnswer(body) {
    const uuid = body.response_uuid;
    if (inFlight.has(uuid)) return inFlight.get(uuid);
    const p = (async () => {
      try {
        const ack = await tracked("responses", () => requestJson(fetchFn, `${root}/responses`, { method: "POST", body }));
        queue.remove(uuid);
        return { kind: "ack", ack };
      } catch (err) {
        if (err instanceof HttpError && (err.status === 409 || err.status === 422 || err.status === 413)) {
          queue.remove(uuid);
          return { kind: "rejected", error: err };
        }
        throw err;
      } finally {
        inFlight.delete(uuid);
      }
    })();
    inFlight.set(uuid, p);
    return p;
  }

  return {
    queue,

    /** Whether a request is being sent or waiting to be retried. */
    get busy() {
      return pendingCount > 0;
    },

    /** GET /next, retried on network errors and 5xx. */
    next() {
      return tracked("next", () => requestJson(fetchFn, `${root}/next`));
    },

    /** Store the answer locally, then send it (see sendAnswer for the outcomes). */
    submitAnswer(body) {
      queue.add(body);
      return sendAnswer(body);
    },

    /**
     * Send every queued answer, oldest first (page load: answers of an earlier visit).
     * @returns {Promise<{acked: number, rejected: number}>}
     */
    async flushQueue() {
      let acked = 0;
      let rejected = 0;
      for (const body of queue.list()) {
        const out = await sendAnswer(body);
        if (out.kind === "ack") acked += 1;
        else rejected += 1;
      }
      return { acked, rejected };
    },

    /** POST /complete, retried on network errors and 5xx; 409 throws HttpError. */
    complete() {
      return tracked("complete", () => requestJson(fetchFn, `${root}/complete`, { method: "POST", body: {} }));
    },

    /**
     * POST one batch of events (at most 50). A few quick retries; throws when they fail so
     * the caller can put the events back.
     */
    postEvents(events) {
      return withRetry(() => requestJson(fetchFn, `${root}/events`, { method: "POST", body: { events } }), {
        retries: 2,
        sleep,
        backoff: { random, ...backoff },
      });
    },

    /**
     * pagehide/visibility-hidden flush: hand every unacknowledged answer (and optionally
     * events) to navigator.sendBeacon as text/plain. Answers stay queued; the next page load
     * re-sends them and the server answers duplicates idempotently.
     * @param {object[]} [events]
     * @returns {number} how many beacons the browser accepted.
     */
    beaconFlush(events = []) {
      let accepted = 0;
      const send = (url, obj) => {
        try {
          if (beacon(url, new Blob([JSON.stringify(obj)], { type: "text/plain" }))) accepted += 1;
        } catch {
          // A refused beacon (size, unsupported) is fine: the answer is still in storage.
        }
      };
      for (const body of queue.list()) send(`${root}/responses`, body);
      for (let i = 0; i < events.length; i += 50) send(`${root}/events`, { events: events.slice(i, i + 50) });
      return accepted;
    },
  };
}
