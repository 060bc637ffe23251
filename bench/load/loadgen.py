"""Simulated participants (asyncio + aiohttp) that follow the real participant API.

Each virtual participant, in a closed loop until `--duration` is over: landing page → enrol
(unique PROLIFIC_PID) → consent → instructions → GET /next → one POST /responses per trial
(client-generated `response_uuid`, retried with the SAME uuid on network errors and 5xx, with
backoff, as the browser does) → POST /complete, then starts again as a new participant.
Like the browser it also loads the participant page after every form post (the 303's target:
consent, instructions, task and done pages; the task page carries the first step, so then no
GET /next) and posts a heartbeat to /events every 15 s of a
session (`static/trial.js`; sent between two trials, where the browser's timer sends it beside
them); `--api-only` leaves both out (only the API calls and the task page, loaded once: answers
are refused until it was served, as for a browser).
It reports per endpoint throughput and p50/p95/p99 latency, errors, the server's own
`Server-Timing: app;dur` for the answer path, and with `--verify-dsn` checks in Postgres that
every acknowledged answer is stored exactly once and no other row exists for its participants.

The HTTP client is aiohttp, not httpx: on the 2-core benchmark machine, where the generator
shares the CPU with the server and Postgres, httpx cost ~1.4 ms of generator CPU per request
(5 ms with sniffio missing, which makes httpcore retry a failed import on every request) and
aiohttp ~0.3 ms (docs/benchmarks.md, "The load generator's own cost").

Run against a running server, e.g.:
    .venv/bin/python -m bench.load.loadgen --url http://127.0.0.1:8000 --link bench-lossless \
        --participants 200 --think-ms 0 --duration 30 \
        --verify-dsn postgresql://postgres@127.0.0.1/psychvis_bench --out bench/out/load.json
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import re
import ssl
import statistics
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import typer

logger = logging.getLogger(__name__)

cli = typer.Typer(add_completion=False)

RETRY_DEADLINE_S = 90.0
"""How long a request keeps being retried (covers an app or Postgres restart)."""
TAIL_WINDOW_S = 5
"""Width of the windows of `answer_p99_ms_per_window` (seconds since the start)."""
HEARTBEAT_S = 15.0
"""How often the task page posts a heartbeat to /events (HEARTBEAT_MS in static/trial.js)."""
ANSWER_WITHIN_BLOCK = "answer, within block"
ANSWER_BLOCK_END = "answer, block end"
START = "start: landing to trial"
"""A participant's whole start, from requesting the landing page to having the first trial
(the task page, which carries it, or /next)."""
DERIVED = (ANSWER_WITHIN_BLOCK, ANSWER_BLOCK_END, START)
"""Reported endpoints that are not requests of their own (left out of `all_requests_*`)."""
ENDPOINTS = (
    "landing",
    "enrol",
    "consent",
    "instructions",
    "next",
    "answer",
    ANSWER_WITHIN_BLOCK,
    ANSWER_BLOCK_END,
    "complete",
    "page",
    "events",
    START,
)
"""Reported endpoints; the two kinds of answer are also counted under `answer`."""


@dataclass
class Stats:
    """Everything measured during one run (latencies in ms, per endpoint name)."""

    latency_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    app_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    answer_latency_at: list[tuple[float, float]] = field(default_factory=list)
    """(seconds since the start, ms) of every measured answer: the tail over time."""
    ok: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    retries: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    error_samples: list[str] = field(default_factory=list)
    retry_samples: list[str] = field(default_factory=list)
    acked: list[tuple[str, int, str]] = field(default_factory=list)
    duplicate_acks: int = 0
    sessions_completed: int = 0
    tokens: set[str] = field(default_factory=set)
    ack_times: list[float] = field(default_factory=list)
    """Monotonic seconds of every acknowledged answer (for the timeline and outage gaps)."""
    started_at: float = 0.0
    measuring: bool = False
    """Latencies are only recorded after the warm-up."""

    def record(self, name: str, ms: float, response: Reply) -> None:
        self.ok[name] += 1
        if not self.measuring:
            return
        self.latency_ms[name].append(ms)
        if name == "answer":
            self.answer_latency_at.append((time.monotonic() - self.started_at, ms))
        timing = response.headers.get("server-timing", "")
        if timing.startswith("app;dur="):
            try:
                self.app_ms[name].append(float(timing.removeprefix("app;dur=")))
            except ValueError:
                pass

    def error(self, name: str, message: str) -> None:
        self.errors[name] += 1
        if len(self.error_samples) < 20:
            self.error_samples.append(f"{name}: {message}")


@dataclass
class Reply:
    """What the generator keeps of a response (read completely before the next request)."""

    status_code: int
    headers: Any
    body: bytes
    elapsed_ms: float = 0.0

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


class GiveUp(Exception):
    """A request failed for good (a 4xx, or retries past the deadline)."""


def answer_body(trial_index: int, rng: random.Random) -> dict[str, Any]:
    """A plausible answer as the browser sends it (a fresh response_uuid)."""
    onset = rng.uniform(1000.0, 600000.0)
    rt = rng.uniform(300.0, 3000.0)
    return {
        "response_uuid": str(uuid.uuid4()),
        "trial_index": trial_index,
        "answer": {
            "task": "afc2",
            "response": rng.choice(("upper", "lower")),
            "confidence": rng.randint(1, 3),
        },
        "rt_ms": round(rt, 1),
        "onset_ms": round(onset, 1),
        "answer_ms": round(onset + rt, 1),
        "frame_interval_mean_ms": 16.7,
        "frame_interval_max_ms": 18.0,
        "viewport_w_px": 1280,
        "viewport_h_px": 800,
        "device_pixel_ratio": 2.0,
        "focus_lost": False,
        "fullscreen_exited": False,
        "input": "mouse",
    }


async def call(
    client: aiohttp.ClientSession,
    stats: Stats,
    name: str,
    method: str,
    url: str,
    *,
    ok_status: tuple[int, ...] = (200,),
    **kwargs: Any,
) -> Reply:
    """One request, retried unchanged on network errors and 5xx with capped exponential backoff."""
    deadline = time.monotonic() + RETRY_DEADLINE_S
    delay = 0.05
    while True:
        start = time.perf_counter()
        try:
            async with client.request(method, url, allow_redirects=False, **kwargs) as raw:
                response = Reply(raw.status, raw.headers, await raw.read())
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            ms = (time.perf_counter() - start) * 1000
            response.elapsed_ms = ms
            if response.status_code in ok_status:
                stats.record(name, ms, response)
                return response
            if response.status_code < 500:
                stats.error(name, f"{response.status_code} {response.text[:200]}")
                raise GiveUp(name)
            problem = f"{response.status_code} {response.text[:120]}"
        if time.monotonic() > deadline:
            stats.error(name, f"gave up: {problem}")
            raise GiveUp(name)
        stats.retries[name] += 1
        if len(stats.retry_samples) < 20:
            stats.retry_samples.append(f"{name}: {problem}")
        await asyncio.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 2.0)


async def think(rng: random.Random, think_ms: float) -> None:
    """Exponentially distributed think time around `think_ms` (0: none)."""
    if think_ms > 0:
        await asyncio.sleep(min(rng.expovariate(1.0 / think_ms), 5 * think_ms) / 1000)


async def participant_loop(
    url: str,
    stats: Stats,
    *,
    ssl_context: ssl.SSLContext,
    worker: int,
    run_id: str,
    link: str,
    think_ms: float,
    max_trials: int | None,
    start_at: float,
    stop_at: float,
    one_session: bool,
    browser: bool = True,
) -> None:
    """Run sessions back to back as new participants until `stop_at` (monotonic seconds).

    Each participant has its own client and keep-alive connections, like a browser.
    """
    rng = random.Random(f"{run_id}-{worker}")
    n = 0
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    connector = aiohttp.TCPConnector(limit=2, ssl=ssl_context)
    timeout = aiohttp.ClientTimeout(total=30.0, connect=10.0)
    async with aiohttp.ClientSession(
        base_url=url, connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
    ) as client:
        while time.monotonic() < stop_at:
            n += 1
            pid = f"{run_id}-{worker}-{n}"
            try:
                await run_session(
                    client, stats, rng, pid, link, think_ms, max_trials, stop_at, browser=browser
                )
            except GiveUp:
                await asyncio.sleep(0.5)
            if one_session:
                return


async def run_session(
    client: aiohttp.ClientSession,
    stats: Stats,
    rng: random.Random,
    pid: str,
    link: str,
    think_ms: float,
    max_trials: int | None,
    stop_at: float,
    *,
    browser: bool = True,
) -> None:
    """One participant from the landing page to completion (or until the run stops).

    With `browser`, also the requests the browser sends besides the API calls: the participant
    page after each form post and the task page's heartbeats. The task page is loaded either
    way: the server takes no answers before it was served.
    """

    async def page(always: bool = False) -> Reply | None:
        if not (browser or always):
            return None
        return await call(client, stats, "page", "GET", f"/p/{token}")

    started_at = time.perf_counter()
    await call(client, stats, "landing", "GET", f"/s/{link}", params={"PROLIFIC_PID": pid})
    started = await call(
        client,
        stats,
        "enrol",
        "POST",
        f"/s/{link}/start",
        data={"PROLIFIC_PID": pid, "STUDY_ID": "bench", "SESSION_ID": pid},
        ok_status=(303,),
    )
    token = started.headers["location"].removeprefix("/p/")
    stats.tokens.add(token)
    await page()  # consent
    await call(
        client,
        stats,
        "consent",
        "POST",
        f"/p/{token}/consent",
        data={"decision": "agree"},
        ok_status=(303,),
    )
    await page()  # instructions
    await call(client, stats, "instructions", "POST", f"/p/{token}/instructions", ok_status=(303,))
    task = await page(always=True)
    task_loaded = time.monotonic()
    next_beat = task_loaded + HEARTBEAT_S
    # The task page carries the first step (static/trial.js uses it); the API asks /next.
    step = task_step(task.text) if task is not None else None
    if step is None:
        step = (await call(client, stats, "next", "GET", f"/api/p/{token}/next")).json()
    if stats.measuring:
        stats.latency_ms[START].append((time.perf_counter() - started_at) * 1000)
    answered = 0
    while step["step"] == "trial":
        if time.monotonic() >= stop_at or (max_trials is not None and answered >= max_trials):
            return
        await think(rng, think_ms)
        if browser and time.monotonic() >= next_beat:
            next_beat += HEARTBEAT_S
            beat = {
                "kind": "heartbeat",
                "client_ms": round((time.monotonic() - task_loaded) * 1000, 1),
                "trial_index": step["trial"]["trial_index"],
                "data": {"visible": True},
            }
            await call(
                client, stats, "events", "POST", f"/api/p/{token}/events", json={"events": [beat]}
            )
        trial_index = step["trial"]["trial_index"]
        body = answer_body(trial_index, rng)
        reply = await call(client, stats, "answer", "POST", f"/api/p/{token}/responses", json=body)
        ack = reply.json()
        if stats.measuring:
            # Block ends take the general path (feedback, exclusions), the others one statement.
            kind = ANSWER_WITHIN_BLOCK if ack["block_end"] is None else ANSWER_BLOCK_END
            stats.latency_ms[kind].append(reply.elapsed_ms)
        if ack["trial_index"] != trial_index:
            stats.error("answer", f"ack for trial {ack['trial_index']} != {trial_index}")
            raise GiveUp("answer")
        stats.acked.append((token, trial_index, body["response_uuid"]))
        stats.ack_times.append(time.monotonic() - stats.started_at)
        if ack["duplicate"]:
            stats.duplicate_acks += 1
        answered += 1
        step = ack["next"]
    await call(client, stats, "complete", "POST", f"/api/p/{token}/complete")
    await page()  # done: the completion code
    stats.sessions_completed += 1


TRIAL_CONFIG = re.compile(r'<script type="application/json" id="trial-config">(.*?)</script>', re.S)


def task_step(page: str) -> Any:
    """The step in a task page's #trial-config (None: not the task page, or no step)."""
    found = TRIAL_CONFIG.search(page)
    return json.loads(found.group(1)).get("step") if found is not None else None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarise(stats: Stats, measured_s: float) -> dict[str, Any]:
    """Per endpoint: count, throughput, p50/p95/p99 latency, server time; errors and retries."""
    endpoints: dict[str, Any] = {}
    for name in ENDPOINTS:
        lat = stats.latency_ms.get(name, [])
        app = stats.app_ms.get(name, [])
        endpoints[name] = {
            "count": len(lat),
            "per_s": round(len(lat) / measured_s, 1) if measured_s > 0 else 0.0,
            "p50_ms": round(percentile(lat, 50), 2) if lat else None,
            "p95_ms": round(percentile(lat, 95), 2) if lat else None,
            "p99_ms": round(percentile(lat, 99), 2) if lat else None,
            "max_ms": round(max(lat), 2) if lat else None,
            "app_p50_ms": round(percentile(app, 50), 2) if app else None,
            "app_p99_ms": round(percentile(app, 99), 2) if app else None,
            "errors": stats.errors.get(name, 0),
            "retries": stats.retries.get(name, 0),
        }
    every_request = [
        ms for name, values in stats.latency_ms.items() if name not in DERIVED for ms in values
    ]
    times = sorted(stats.ack_times)
    gaps = [(b - a, a) for a, b in zip(times, times[1:], strict=False)]
    longest_gap = max(gaps, default=(0.0, 0.0))
    timeline: dict[int, int] = defaultdict(int)
    for t in times:
        timeline[int(t)] += 1
    windows: dict[int, list[float]] = defaultdict(list)
    for t, ms in stats.answer_latency_at:
        windows[int(t // TAIL_WINDOW_S)].append(ms)
    return {
        "measured_s": round(measured_s, 2),
        "longest_answer_gap_s": round(longest_gap[0], 2),
        "longest_answer_gap_from_s": round(longest_gap[1], 2),
        "answers_per_second_timeline": [timeline.get(i, 0) for i in range(int(times[-1]) + 1)]
        if times
        else [],
        "answer_p99_ms_per_window": {
            f"{k * TAIL_WINDOW_S}-{(k + 1) * TAIL_WINDOW_S}s": round(percentile(v, 99), 1)
            for k, v in sorted(windows.items())
        },
        "endpoints": endpoints,
        "all_requests_p50_ms": round(percentile(every_request, 50), 2) if every_request else None,
        "all_requests_p99_ms": round(percentile(every_request, 99), 2) if every_request else None,
        "acked_answers": len(stats.acked),
        "duplicate_acks": stats.duplicate_acks,
        "sessions_completed": stats.sessions_completed,
        "participants": len(stats.tokens),
        "errors": sum(stats.errors.values()),
        "retries": sum(stats.retries.values()),
        "error_samples": stats.error_samples,
        "retry_samples": stats.retry_samples,
    }


def verify(dsn: str, stats: Stats) -> dict[str, Any]:
    """Check in Postgres: each acked (token, trial_index, uuid) stored exactly once, no extras.

    `unacked_rows` are rows of this run's participants that no acknowledgement covers: answers
    the server stored while the client stopped waiting (none unless a client gave up).
    """
    import psycopg

    tokens = sorted(stats.tokens)
    with psycopg.connect(dsn.replace("postgresql+psycopg://", "postgresql://")) as conn:
        rows = conn.execute(
            "SELECT p.token, r.trial_index, r.response_uuid FROM trial_response r "
            "JOIN participant p ON p.id = r.participant_id WHERE p.token = ANY(%s)",
            (tokens,),
        ).fetchall()
    stored: dict[tuple[str, int, str], int] = defaultdict(int)
    by_trial: dict[tuple[str, int], int] = defaultdict(int)
    for token, trial_index, response_uuid in rows:
        stored[(token, trial_index, str(response_uuid))] += 1
        by_trial[(token, trial_index)] += 1
    acked = set(stats.acked)
    lost = [a for a in acked if stored.get(a, 0) == 0]
    duplicated = [k for k, n in by_trial.items() if n > 1]
    unacked = [k for k in stored if k not in acked]
    return {
        "acked": len(acked),
        "acked_unique_checked": len(acked) == len(stats.acked),
        "rows": len(rows),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "unacked_rows": len(unacked),
        "ok": not lost and not duplicated and len(acked) == len(stats.acked),
    }


def render_table(summary: dict[str, Any]) -> str:
    """The per-endpoint table printed at the end of a run."""
    lines = [
        f"{'endpoint':<24}{'count':>8}{'req/s':>9}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}"
        f"{'app p50':>9}{'app p99':>9}{'err':>6}{'retry':>7}"
    ]

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    for name, e in summary["endpoints"].items():
        lines.append(
            f"{name:<24}{e['count']:>8}{e['per_s']:>9.1f}{fmt(e['p50_ms']):>9}{fmt(e['p95_ms']):>9}"
            f"{fmt(e['p99_ms']):>9}{fmt(e['max_ms']):>9}{fmt(e['app_p50_ms']):>9}"
            f"{fmt(e['app_p99_ms']):>9}{e['errors']:>6}{e['retries']:>7}"
        )
    lines.append(
        f"every request: p50 {fmt(summary['all_requests_p50_ms'])} ms, "
        f"p99 {fmt(summary['all_requests_p99_ms'])} ms"
    )
    lines.append(
        f"answers acked {summary['acked_answers']} ({summary['endpoints']['answer']['per_s']}/s "
        f"measured), sessions completed {summary['sessions_completed']}, "
        f"errors {summary['errors']}, retries {summary['retries']}"
    )
    if "verify" in summary:
        v = summary["verify"]
        lines.append(
            f"verify: acked {v['acked']}, rows {v['rows']}, lost {v['lost']}, "
            f"duplicated {v['duplicated']}, unacked rows {v['unacked_rows']} -> "
            f"{'OK' if v['ok'] else 'FAILED'}"
        )
    return "\n".join(lines)


async def run_load(
    url: str,
    link: str,
    participants: int,
    think_ms: float,
    trials: int | None,
    duration_s: float,
    warmup_s: float,
    ramp_s: float,
    one_session: bool,
    browser: bool = True,
) -> tuple[Stats, float]:
    """Run the participants; returns the stats and the measured (post warm-up) seconds."""
    stats = Stats()
    run_id = f"lg{uuid.uuid4().hex[:8]}"
    # One TLS context for all clients: building one per client costs ~20 ms of CPU each.
    ssl_context = ssl.create_default_context()
    start = time.monotonic()
    stats.started_at = start
    stop_at = start + warmup_s + duration_s
    tasks = []
    for i in range(participants):
        tasks.append(
            asyncio.create_task(
                participant_loop(
                    url,
                    stats,
                    ssl_context=ssl_context,
                    worker=i,
                    run_id=run_id,
                    link=link,
                    think_ms=think_ms,
                    max_trials=trials,
                    start_at=start + ramp_s * i / participants,
                    stop_at=stop_at,
                    one_session=one_session,
                    browser=browser,
                )
            )
        )
    await asyncio.sleep(max(0.0, start + warmup_s - time.monotonic()))
    stats.measuring = True
    measure_start = time.monotonic()
    await asyncio.gather(*tasks)
    measured = min(time.monotonic(), stop_at) - measure_start
    return stats, measured


@cli.command()
def main(
    url: Annotated[str, typer.Option(help="Server base URL.")] = "http://127.0.0.1:8000",
    link: Annotated[str, typer.Option(help="Study link code (/s/<link>).")] = "bench-lossless",
    participants: Annotated[int, typer.Option(min=1, help="Concurrent participants N.")] = 50,
    think_ms: Annotated[float, typer.Option(help="Mean think time per trial (0: none).")] = 0.0,
    trials: Annotated[
        int | None, typer.Option(help="Answer at most this many trials per session.")
    ] = None,
    duration: Annotated[float, typer.Option(help="Measured seconds.")] = 30.0,
    warmup: Annotated[float, typer.Option(help="Seconds before measuring starts.")] = 3.0,
    ramp: Annotated[float, typer.Option(help="Seconds over which participants start.")] = 0.0,
    one_session: Annotated[
        bool, typer.Option(help="Each participant runs one session, then stops.")
    ] = False,
    api_only: Annotated[
        bool,
        typer.Option(
            help="Only the API calls: no participant pages after form posts, no heartbeats."
        ),
    ] = False,
    verify_dsn: Annotated[
        str | None, typer.Option(help="Postgres DSN to verify stored answers against.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the JSON results here.")] = None,
) -> None:
    """Run simulated participants and report throughput, latency, errors and stored answers."""
    logging.basicConfig(level=logging.WARNING)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    stats, measured = asyncio.run(
        run_load(
            url,
            link,
            participants,
            think_ms,
            trials,
            duration,
            warmup,
            ramp,
            one_session,
            browser=not api_only,
        )
    )
    summary = summarise(stats, measured)
    summary["config"] = {
        "url": url,
        "link": link,
        "participants": participants,
        "think_ms": think_ms,
        "trials": trials,
        "duration_s": duration,
        "warmup_s": warmup,
        "browser_requests": not api_only,
    }
    if verify_dsn:
        summary["verify"] = verify(verify_dsn, stats)
    typer.echo(render_table(summary))
    app_answer = stats.app_ms.get("answer", [])
    if app_answer:
        typer.echo(
            f"answer server time (Server-Timing app;dur): median {statistics.median(app_answer):.2f} ms, "
            f"p99 {percentile(app_answer, 99):.2f} ms"
        )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    if summary["errors"] or (verify_dsn and not summary["verify"]["ok"]):
        sys.exit(1)


if __name__ == "__main__":
    cli()
