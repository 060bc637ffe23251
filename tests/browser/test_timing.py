"""Timing of the task page in headless Chromium: feedback interval, RT, cold start.

The real app serves a 15-unit set of 224 px 1/f-noise images (tests/browser/harness.py; lossless
WebP ~95 KB each, like real stimuli) under a design with 9 + 9 references and short timings
(choice 100 / correct 200 / blank 50 ms). An in-page agent answers at known delays after the
page's own onset stamp (see the agent's comment in harness.py); everything compared comes
from the page's performance.now() clock, via the stored trial_response rows.

Frame period: headless Chromium drives requestAnimationFrame at 60 Hz (F = 16.7 ms); the test
measures it from the page's per-trial frame statistics and asserts it.
"""

from __future__ import annotations

import logging
import os
import statistics
from collections.abc import Iterator
from typing import Any

import pytest

from app.config import Settings
from tests.browser.conftest import browser_settings, free_port, serve_app
from tests.browser.harness import (
    FRAME_60HZ_MS,
    Timing,
    agent_script,
    agent_state,
    create_set_and_experiments,
    design_toml,
    enrol_to_task,
    responses,
    write_noise_set,
)

logger = logging.getLogger(__name__)

# Frame-accurate timing needs a CPU the browser gets: on a loaded 2-core machine timers fire late
# and frames drop (see the failure messages, which split each bad interval into its causes). A
# failed run is repeated up to twice; the thresholds themselves are never loosened.
pytestmark = [pytest.mark.browser, pytest.mark.flaky(reruns=2, reruns_delay=2)]

N_UNITS = 15
STRICT_CPUS = 4
"""From this many CPUs on, every answer -> onset pair must be within one frame."""
N_BLOCKS = 3
N_TRIALS = N_UNITS * N_BLOCKS
TIMING = Timing(choice_ms=100, correct_ms=200, blank_ms=50)
F = FRAME_60HZ_MS
VIEWPORT = {"width": 1920, "height": 1080}  # the stage (1688 x 804 px) at scale 1
LEFT_TASK = "[data-task]"


@pytest.fixture(scope="module")
def timing_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Settings]]:
    """The app with the 45-trial timing experiment; yields (base URL, link code, settings)."""
    logger.setLevel(logging.INFO)  # the app's logging setup puts the root at WARNING
    root = tmp_path_factory.mktemp("timing")
    port = free_port()
    settings = browser_settings(root, port, "timing")
    set_root = write_noise_set(root / "set", n_units=N_UNITS, set_id="timing-noise")
    design = design_toml(name="timing45", n_units=N_UNITS, n_blocks=N_BLOCKS, timing=TIMING)
    links = create_set_and_experiments(settings, set_root, {"timing45": design})
    with serve_app(settings, port) as base:
        yield base, links["timing45"], settings


def _run_page(browser: Any, base: str, token: str, script: str) -> tuple[Any, Any, list[str]]:
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.add_init_script(script)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/p/{token}")
    return ctx, page, errors


def _frame_period(rows: list[Any]) -> float:
    means = [r.frame_interval_mean_ms for r in rows if r.frame_interval_mean_ms is not None]
    return statistics.median(means)


def _agent_saw_page_onset(stored_ms: float | None, seen: dict[str, Any]) -> bool:
    """The stored onset is the one the agent keyed its answer to.

    The page stores max(onset frame time, time of the insertion); the agent sees the same frame
    time and notes the insertion a moment after the page, so the stored value lies between the
    two (+- 0.05 ms rounding); they are equal unless the frame times were stale.
    """
    return stored_ms is not None and seen["timeline"] - 0.06 <= stored_ms <= seen["onset"] + 0.06


def test_answer_to_next_onset_is_feedback_interval_plus_double_raf_on_all_45_trials(
    timing_app: tuple[str, str, Settings], browser: Any
) -> None:
    """Answer -> next onset equals the configured feedback interval + the double-rAF offset.

    Measured, per pair of consecutive trials k, k+1 of a block (42 pairs; 3 blocks of 15), in
    the page's clock, from the stored rows: interval = onset_ms[k+1] - answer_ms[k].
    Expected by design (static/trial.js, static/tasks/afc2.js, static/timing.js): the black
    frame lasts choice_ms, or until the server's acknowledgement if that comes later (ack =
    responseEnd of the POST, from Resource Timing); then correct_ms of green frame and blank_ms
    of blank, during which the next trial's images must already be decoded (preloading); then
    the images are inserted at the next animation frame and onset is stamped at the frame after
    that (double rAF): onset lies 1 to 2 frames after the blank ends (uniform vsync phase).
    So interval = max(choice_ms, ack) + correct_ms + blank_ms + offset, with the documented
    offset 1.5 F +- 0.5 F; the timers' slack (~1 ms each) counts against the tolerance.
    Asserted on every pair, on a machine with STRICT_CPUS or more: offset within one frame of
    1.5 F, i.e. in [0.5 F, 2.5 F] = [8.3, 41.7] ms. On fewer CPUs (CI's 2 cores, shared with the
    server and Postgres) at most 15 % of pairs may be outside it, none by more than 4.5 F. A trial whose images were still loading when the blank ended would exceed
    that; the failure message splits each offset into late timers (answer -> blank), late
    insertion (blank -> images) and insertion -> onset.
    The first trial of each block follows a "Next: ..." message that the agent clicks as soon as
    it is shown: there onset - click must lie in [0.5 F, blank_ms + 2.5 F] (the blank may have
    run out during the message). That leaves only the session's first onset, which waits for
    the first images (the cold start test covers it).
    The first block fetches its 300 images from the server; blocks 2 and 3 show the same units
    again, so their bytes come from the browser's cache, but each trial is still loaded through
    the preloader and decoded into new <img> elements.
    """
    base, link, settings = timing_app
    token = enrol_to_task(base, link, "interval")
    # No spinning: the answer's exact delay does not matter here, frames should not stall.
    script = agent_script(delays_ms=[120], inputs=["key"], spin_ms=0)
    ctx, page, errors = _run_page(browser, base, token, script)
    page.wait_for_selector(LEFT_TASK, state="detached", timeout=120_000)
    state = agent_state(page)
    ctx.close()
    rows = responses(settings, token)

    assert errors == []
    assert len(rows) == N_TRIALS == len(state["answers"])
    period = _frame_period(rows)
    assert abs(period - F) < 1.0, f"rAF period {period:.2f} ms is not 60 Hz"
    for row, seen in zip(rows, state["answers"], strict=True):
        assert _agent_saw_page_onset(row.onset_ms, seen)

    acks = sorted(a["end"] for a in state["acks"])
    continues = [c["clicked"] for c in state["continues"]]
    assert len(continues) == N_BLOCKS
    offsets: list[float] = []
    phases: list[tuple[int, float, float, float]] = []
    first_ms = float("nan")
    block_starts: list[float] = []
    intervals: list[float] = []
    late_acks = 0
    for k, row in enumerate(rows):
        assert row.onset_ms is not None and row.answer_ms is not None
        if k % N_UNITS == 0:
            # A block's first trial follows its "Next: ..." message, not an answer; the
            # session's first trial also waits for its first images (cold, on localhost).
            click = max(c for c in continues if c < row.onset_ms)
            if k == 0:
                first_ms = row.onset_ms - click
            else:
                block_starts.append(row.onset_ms - click)
            continue
        prev = rows[k - 1]
        assert prev.answer_ms is not None
        ack = next(a for a in acks if a >= prev.answer_ms)
        black_ms = max(float(TIMING.choice_ms), ack - prev.answer_ms)
        late_acks += ack - prev.answer_ms > TIMING.choice_ms
        expected = black_ms + TIMING.correct_ms + TIMING.blank_ms
        intervals.append(row.onset_ms - prev.answer_ms)
        offsets.append(row.onset_ms - prev.answer_ms - expected)
        # Where the time went: answer -> blank, blank -> images inserted, inserted -> onset.
        blank = next(b for b in state["blanks"] if b > prev.answer_ms + black_ms)
        insert = next(i["at"] for i in state["inserts"] if i["at"] > blank)
        phases.append(
            (
                k,
                round(blank - prev.answer_ms - black_ms - TIMING.correct_ms, 1),
                round(insert - blank - TIMING.blank_ms, 1),
                round(row.onset_ms - insert, 1),
            )
        )
    logger.info(
        "feedback interval: configured %d ms; answer -> next onset min/median/max "
        "%.1f/%.1f/%.1f ms; offset over expected min/median/max %.1f/%.1f/%.1f ms "
        "(%d pairs); late acks %d; block starts: click -> onset %s ms (first trial %.1f ms); "
        "rAF period median %.2f ms, longest frame %.1f ms",
        TIMING.feedback_ms,
        min(intervals),
        statistics.median(intervals),
        max(intervals),
        min(offsets),
        statistics.median(offsets),
        max(offsets),
        len(offsets),
        late_acks,
        [round(b, 1) for b in block_starts],
        first_ms,
        period,
        max(r.frame_interval_max_ms or 0 for r in rows),
    )
    described = [(round(o, 1), phase) for o, phase in zip(offsets, phases, strict=True)]
    detail = (
        f"(offset, (trial, late blank, late insertion, insertion -> onset)); longest rAF "
        f"interval per trial: {[r.frame_interval_max_ms for r in rows]}"
    )
    # A trial whose images were still loading when the blank ended is hundreds of ms late
    # (PNG at 20 Mbit/s: +288..538 ms, docs/benchmarks.md): never more than 4 frames here.
    loading = [d for d in described if not 0 <= d[0] <= 4.5 * F]
    assert loading == [], f"{len(loading)} offsets over 4.5 F: {loading} {detail}"
    bad = [d for d in described if not 0.5 * F <= d[0] <= 2.5 * F]
    if (os.cpu_count() or 1) >= STRICT_CPUS:
        # The goal: every pair within one frame of 1.5 F.
        assert bad == [], f"{len(bad)} of {len(offsets)} offsets outside 1.5 F +- F: {bad} {detail}"
    else:
        # On 2 cores shared with the server, Postgres and software-rendered Chromium, a fresh
        # page's first block drops frames while its images are decoded (2-5 of 42 pairs 1-3
        # frames late on a busy machine; blocks 2 and 3 clean).
        assert len(bad) <= 0.15 * len(offsets), (
            f"{len(bad)} of {len(offsets)} offsets outside 1.5 F +- F: {bad} {detail}"
        )
        if bad:
            logger.warning("%d of %d offsets outside 1.5 F +- F: %s", len(bad), len(offsets), bad)
    late = [round(b, 1) for b in block_starts if not 0.5 * F <= b <= TIMING.blank_ms + 2.5 * F]
    assert late == [], f"block start click -> onset outside [0.5 F, blank_ms + 2.5 F]: {late}"


def test_rt_is_recorded_within_a_frame_of_the_true_delay(
    timing_app: tuple[str, str, Settings], browser: Any
) -> None:
    """Answers triggered at known delays after onset are stored with that RT (+- one frame).

    The agent schedules each answer at onset + d (d in 300, 700, 1234 ms; keydown and click
    alternating) with a page timer, spins out the last 25 ms, stamps t_fire and dispatches the
    event synchronously; the page's handler runs inside that dispatch. The true delay is
    t_fire - onset_ms = d + the timer's lateness (0-1 ms on a quiet machine; a starved renderer
    can fire it later, which the report shows). Asserted for each (the issue's criterion): the
    stored rt_ms is within one frame (17 ms) of the true delay, the agent keyed its timer to the
    stored onset, and the input kind is right. Then three real key presses (trusted events
    through CDP, sent ~0.4 s after onset by the test): rt_ms is within one frame of
    event.timeStamp - onset (the browser's input time).
    """
    base, link, settings = timing_app
    token = enrol_to_task(base, link, "rt")
    delays = [300.0, 700.0, 1234.0, 700.0, 1234.0, 300.0, 1234.0, 300.0, 700.0]
    inputs = ["key", "click"] * 4 + ["key"]
    script = agent_script(
        delays_ms=[*delays, 0, 0, 0], inputs=[*inputs, "external", "external", "external"]
    )
    ctx, page, errors = _run_page(browser, base, token, script)
    n_external = 3
    for i in range(len(delays), len(delays) + n_external):
        page.wait_for_function(f"window.__psychvisAgent?.open?.i === {i}", timeout=30_000)
        page.wait_for_timeout(400)
        page.keyboard.press("KeyW")
    page.wait_for_function(
        f"window.__psychvisAgent.acks.length >= {len(delays) + n_external}", timeout=30_000
    )
    state = agent_state(page)
    ctx.close()
    rows = responses(settings, token)

    assert errors == []
    assert len(rows) == len(delays) + n_external
    scheduled = state["answers"]
    trusted = [k for k in state["keys"] if k["trusted"]]
    assert len(trusted) == n_external
    report = []
    problems = []
    for row, seen in zip(rows[: len(delays)], scheduled, strict=False):
        true_delay = seen["t_fire"] - row.onset_ms
        report.append((seen["d"], round(true_delay, 2), row.rt_ms, row.input_kind))
        if not _agent_saw_page_onset(row.onset_ms, seen):
            problems.append(("onset differs", row.onset_ms, seen))
        if row.input_kind != ("keyboard" if seen["how"] == "key" else "mouse"):
            problems.append(("input kind", row.input_kind, seen))
        if abs(row.rt_ms - true_delay) > F:
            problems.append(("rt", row.rt_ms, seen))
    for row, seen, key in zip(rows[len(delays) :], scheduled[len(delays) :], trusted, strict=True):
        input_delay = key["time_stamp"] - row.onset_ms
        report.append(("cdp", round(input_delay, 2), row.rt_ms, row.input_kind))
        if row.input_kind != "keyboard" or abs(row.rt_ms - input_delay) > F:
            problems.append(("trusted key", row.rt_ms, key, seen))
    logger.info("rt (d ms, true delay ms, stored rt_ms, input): %s", report)
    assert problems == [], f"{problems}; all (d, true delay, rt_ms, input): {report}"
    logger.info("rAF period median %.2f ms", _frame_period(rows))


def test_rt_ends_at_the_press_not_the_release_for_trusted_mouse_and_keys(
    timing_app: tuple[str, str, Settings], browser: Any
) -> None:
    """Trusted presses (CDP input) held 80-150 ms at onset + D, D in 400-1600 ms: rt_ms is the
    press's delay, not the release's.

    The true press time is the trusted pointerdown's (or keydown's) timeStamp, recorded by a
    capture listener of the agent; the release comes `hold` ms later. Asserted: every rt_ms is
    within one frame of press - onset, the median error is <= 5 ms, the hold really separated
    press and release, and the input kind is right. Answering at the release (the old
    `click` handler) gives errors of about the hold and fails.
    """
    base, link, settings = timing_app
    token = enrol_to_task(base, link, "rt-press")
    plan = [
        ("mouse", 400, 80),
        ("key", 700, 150),
        ("mouse", 1000, 120),
        ("key", 1300, 90),
        ("mouse", 1600, 150),
        ("key", 500, 80),
        ("mouse", 800, 100),
        ("mouse", 1200, 140),
    ]
    script = agent_script(delays_ms=[0], inputs=["external"])
    ctx, page, errors = _run_page(browser, base, token, script)
    button = page.locator('[data-response="lower"][data-confidence="2"]')
    for i, (how, delay, hold) in enumerate(plan):
        page.wait_for_function(f"window.__psychvisAgent?.open?.i === {i}", timeout=30_000)
        if how == "mouse":
            box = button.bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        waited = page.evaluate("performance.now() - window.__psychvisAgent.open.onset")
        page.wait_for_timeout(max(0.0, delay - waited))
        if how == "mouse":
            page.mouse.down()
            page.wait_for_timeout(hold)
            page.mouse.up()
        else:
            page.keyboard.down("KeyW")
            page.wait_for_timeout(hold)
            page.keyboard.up("KeyW")
    page.wait_for_function(f"window.__psychvisAgent.acks.length >= {len(plan)}", timeout=30_000)
    state = agent_state(page)
    ctx.close()
    rows = responses(settings, token)

    assert errors == []
    assert len(rows) == len(plan)
    presses = [p for p in state["pointers"] if p["trusted"] and p["type"] == "pointerdown"]
    releases = [p for p in state["pointers"] if p["trusted"] and p["type"] == "pointerup"]
    key_downs = [k for k in state["keys"] if k["trusted"]]
    errors_ms = []
    report = []
    problems = []
    mouse_i = key_i = 0
    for row, (how, delay, hold) in zip(rows, plan, strict=True):
        if how == "mouse":
            press, release = presses[mouse_i], releases[mouse_i]
            mouse_i += 1
            held = release["time_stamp"] - press["time_stamp"]
            if held < hold - 5:
                problems.append(("hold", how, held, hold))
        else:
            press = key_downs[key_i]
            key_i += 1
        true_delay = press["time_stamp"] - row.onset_ms
        error = row.rt_ms - true_delay
        errors_ms.append(abs(error))
        report.append((how, delay, hold, round(true_delay, 1), row.rt_ms, row.input_kind))
        if row.input_kind != ("mouse" if how == "mouse" else "keyboard"):
            problems.append(("input kind", row.input_kind, how))
        if abs(error) > F:
            problems.append(("rt", how, row.rt_ms, round(true_delay, 2)))
        if not 350 <= true_delay <= 1700 + 4 * F:
            problems.append(("press not at onset + D", how, delay, round(true_delay, 1)))
    logger.info("trusted presses (how, D, hold, true delay, rt_ms, input): %s", report)
    assert problems == [], f"{problems}; all: {report}"
    assert statistics.median(errors_ms) <= 5.0, report


# Chromium network emulation for the cold start: 20 Mbit/s down, 5 Mbit/s up, 20 ms latency.
THROTTLED = {
    "offline": False,
    "latency": 20,
    "downloadThroughput": 20e6 / 8,
    "uploadThroughput": 5e6 / 8,
}
COLD_START_LIMIT_MS = 2000.0


def test_first_trial_of_a_cold_task_page_shows_within_2_s_at_20_mbit(
    timing_app: tuple[str, str, Settings], browser: Any
) -> None:
    """Cold start: a fresh browser profile (empty cache) opens the task page at 20 Mbit/s.

    Chromium network emulation (CDP Network.emulateNetworkConditions): 20 Mbit/s down,
    5 Mbit/s up, 20 ms latency. The participant has passed the instructions, so /p/{token}
    is the task page. Measured in the task page's clock, whose origin is the start of that
    navigation: onset_ms of the first trial = navigation start -> first onset, which covers
    the HTML (which carries the first step, so no GET /next, and preload hints for the first
    trial's images), CSS, the JS modules, all 20 images of the first trial (the preloader also
    starts on the next trials), the "Next: ..." message and its Continue click (clicked by the
    agent as soon as it is shown). Asserted: <= 2 s, no /next request, and every image of the
    first trial came over the network once (Resource Timing transferSize > 0; the hint's fetch
    serves the preloader's image).
    """
    base, link, settings = timing_app
    token = enrol_to_task(base, link, "cold")
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.add_init_script(agent_script(delays_ms=[100], inputs=["key"], max_answers=1))
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    cdp = ctx.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", THROTTLED)
    page.goto(f"{base}/p/{token}", wait_until="commit")
    page.wait_for_function("window.__psychvisAgent?.acks?.length >= 1", timeout=30_000)
    state = agent_state(page)
    ctx.close()
    rows = responses(settings, token)

    assert errors == []
    first = rows[0]
    assert first.onset_ms is not None
    assert _agent_saw_page_onset(first.onset_ms, state["answers"][0])
    urls = set(state["inserts"][0]["urls"])
    assert len(urls) == 20
    fetched = {r["name"]: r for r in state["resources"] if r["name"] in urls}
    assert set(fetched) == urls and all(r["transfer"] > 0 for r in fetched.values())
    # Each once: the page's preload hints and the preloader's images share one fetch.
    assert len([r for r in state["resources"] if r["name"] in urls]) == len(urls)
    # The page brought its first step; a fresh load with nothing queued does not ask for it.
    assert not [r["name"] for r in state["resources"] if r["name"].endswith("/next")]
    images_kb = sum(r["transfer"] for r in fetched.values()) / 1000
    before_onset_kb = (
        state["loads"][0]["transfer"]
        + sum(r["transfer"] for r in state["resources"] if r["end"] <= first.onset_ms)
    ) / 1000
    cont = state["continues"][0]
    logger.info(
        "cold start at 20 Mbit/s: navigation -> first onset %.0f ms (Continue shown at %.0f ms, "
        "clicked at %.0f ms, click -> onset %.0f ms); first trial's 20 images %.0f kB, all bytes "
        "before onset %.0f kB",
        first.onset_ms,
        cont["shown"],
        cont["clicked"],
        first.onset_ms - cont["clicked"],
        images_kb,
        before_onset_kb,
    )
    assert first.onset_ms <= COLD_START_LIMIT_MS
