"""Every shipped preset runs in Chromium from the study link to the completion code.

Each preset (demo, paper-exp1, paper-exp2, imi) gets a small stimulus set that satisfies it
(tests.factories.write_structural_set) and a lab session. A participant opens the landing page,
passes its screen check, consents, gives the start ratings where the design asks (rating
trials on the task page: slider, then Continue), reads the instructions and answers trials by
keyboard until the first block has ended; the 2-AFC rest is answered through the JSON API (as
the page would send it); then the end ratings are given on the task page again, and the
remaining pages (free-text feedback, finish) are browser pages, up to the completion code.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app import designs
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.migrate import upgrade
from app.models import Participant
from app.services.blobs import BlobStore
from app.services.experiments import create_experiment, launch_session
from app.services.stimuli import import_stimulus_set
from tests.browser.conftest import browser_settings, free_port, serve_app
from tests.browser.test_participant_e2e import MESSAGE_WAITING, TRIAL_OPEN
from tests.factories import write_structural_set

pytestmark = pytest.mark.browser

PRESETS = ["demo", "paper-exp1", "paper-exp2", "imi"]


@pytest.fixture(scope="module")
def presets_app(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, dict[str, str], Settings]]:
    """One experiment per preset on its own structural set; yields (base, links, settings)."""
    root = tmp_path_factory.mktemp("presets")
    port = free_port()
    settings = browser_settings(root, port, "presets")
    engine = make_engine(settings.database_url, pool_size=1)
    links: dict[str, str] = {}
    try:
        upgrade(engine)
        with make_sessionmaker(engine)() as session:
            for preset in PRESETS:
                set_root = write_structural_set(
                    root / f"set-{preset}", designs.load_design(preset), size=32
                )
                stimulus_set = import_stimulus_set(
                    session,
                    set_root,
                    BlobStore(settings.stimuli_dir / "blobs"),
                    set_id=f"walk-{preset}",
                )
                experiment = create_experiment(
                    session,
                    slug=f"walk-{preset}",
                    stimulus_set=stimulus_set,
                    design_source=preset,
                )
                launched = launch_session(
                    session, experiment, platform="lab", completion_code=f"CODE-{preset.upper()}"
                )
                session.commit()
                links[preset] = launched.link_code
    finally:
        engine.dispose()
    with serve_app(settings, port) as base:
        yield base, links, settings


RATING_OPEN = (
    "(() => { const s = document.querySelector('[data-task-type=rating] [data-rating-submit]');"
    " return !!s && !s.disabled && !!s.offsetParent; })()"
)


def _give_ratings(page: Any, value: int) -> int:
    """On the task page: rate every rating trial it shows (Continue on each block message,
    slider to `value`, Continue); returns how many, once the page has left the rating trials."""
    n = 0
    for _ in range(100):
        page.wait_for_load_state()
        if not page.locator("[data-task-type=rating]").count():
            return n  # another page (the instructions, feedback, finish)
        page.wait_for_function(
            f"({RATING_OPEN}) || ({MESSAGE_WAITING}) || !document.querySelector('[data-task]')",
            timeout=30_000,
        )
        if page.evaluate(RATING_OPEN):
            assert re.fullmatch(r"Rating \d+ of \d+", page.locator("[data-progress]").inner_text())
            slider = page.locator("[data-task-type=rating] [data-rating-slider]")
            slider.fill(str(value))
            page.locator("[data-task-type=rating] [data-rating-submit]").click()
            n += 1
            page.wait_for_function(f"!({RATING_OPEN})", timeout=10_000)
        elif page.evaluate(MESSAGE_WAITING):
            if not page.get_by_text("rate how intuitive").count():
                return n  # the next block is a 2-AFC one
            page.locator("[data-continue]").click()
    raise AssertionError("the rating trials did not end")


def _answer_rest_through_api(base: str, token: str) -> int:
    """Answer the remaining 2-AFC trials as the page would; returns how many were answered."""
    n = 0
    with httpx.Client(base_url=base, timeout=30) as client:
        step = client.get(f"/api/p/{token}/next").json()
        while step["step"] == "trial" and step["trial"]["task"] == "afc2":
            trial = step["trial"]
            body = {
                "response_uuid": str(uuid.uuid4()),
                "trial_index": trial["trial_index"],
                "response": "upper",
                "confidence": 2,
                "rt_ms": 900.0,
                "display_scale": 1.0,
            }
            ack = client.post(f"/api/p/{token}/responses", json=body)
            assert ack.status_code == 200, ack.text
            step = ack.json()["next"]
            n += 1
            assert n < 1000
    return n


def _check_feedback_shown(page: Any, style: str) -> None:
    """The first practice trial's feedback as the design's style draws it."""
    if style == "text":
        text = page.locator("[data-feedback-text]")
        text.wait_for(state="visible", timeout=5_000)
        word = text.text_content()
        assert word in ("Correct!", "Incorrect!")
        colour = text.evaluate("el => getComputedStyle(el).color")
        assert colour == ("rgb(0, 212, 0)" if word == "Correct!" else "rgb(255, 42, 42)")
        assert page.locator("[data-frame]").count() == 0
    else:
        page.wait_for_selector("[data-query][data-frame=correct]", timeout=5_000)
        assert page.locator("[data-feedback-text]").is_hidden()


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_runs_from_link_to_completion_code(
    preset: str, presets_app: tuple[str, dict[str, str], Settings], browser: Any
) -> None:
    base, links, settings = presets_app
    design = designs.load_design(preset)
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    bad_responses: list[str] = []
    page.on(
        "response",
        lambda r: bad_responses.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )

    response = page.goto(f"{base}/s/{links[preset]}")
    assert response is not None and response.status == 200
    assert page.locator("[data-screen-check]").get_attribute("data-fits") == "true"
    page.get_by_role("button", name="Start the study").click()
    page.get_by_role("button", name="I agree to take part").click()
    ratings = _give_ratings(page, 40)
    assert page.locator("[data-page=instructions]").count() == 1
    page.locator("[data-begin]").click()
    token = page.evaluate("JSON.parse(document.getElementById('trial-config').textContent).token")

    answered = 0
    block_ended = False
    while not block_ended:
        page.wait_for_function(f"({TRIAL_OPEN}) || ({MESSAGE_WAITING})", timeout=30_000)
        if page.evaluate(TRIAL_OPEN):
            page.keyboard.press("Digit2")
            answered += 1
            if answered == 1:
                _check_feedback_shown(page, design.feedback.style)
            page.wait_for_function(f"!({TRIAL_OPEN})", timeout=10_000)
            continue
        if answered > 0:
            block_ended = True  # a block end (score or break) or the next block's title
        page.locator("[data-continue]").click()
    ctx_pages = page
    ctx_pages.close()
    answered += _answer_rest_through_api(base, token)

    page = ctx.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/p/{token}")
    ratings += _give_ratings(page, -20)
    page.wait_for_selector("[data-page]", timeout=30_000)
    if page.locator("[data-page=feedback]").count():
        page.locator("[data-feedback]").fill("fine")
        page.locator("[data-feedback-submit]").click()
    if page.locator("[data-page=finish]").count():
        page.locator("[data-finish]").click()
    assert page.locator("[data-page=done]").count() == 1, page.content()[:2000]
    assert page.locator("[data-completion-code]").text_content() == f"CODE-{preset.upper()}"
    ctx.close()

    assert errors == []
    assert bad_responses == []
    expected_ratings = sum(
        len(design.units[name].ids or ()) if design.units.get(name) else 0
        for name in (design.ratings.start, design.ratings.end)
        if name
    )
    assert ratings == expected_ratings
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        with make_sessionmaker(engine)() as session:
            participant = session.scalars(
                select(Participant).where(Participant.token == token)
            ).one()
            assert participant.status == "completed"
            assert (participant.screen_w_px, participant.screen_h_px) == (1920, 1080)
    finally:
        engine.dispose()


def test_landing_screen_check_asks_for_a_larger_window_or_offers_the_way_back(
    presets_app: tuple[str, dict[str, str], Settings], browser: Any
) -> None:
    base, links, settings = presets_app
    link = links["demo"]
    # A large screen, a small window: enlarge it, then start.
    ctx = browser.new_context(
        viewport={"width": 1100, "height": 600}, screen={"width": 1920, "height": 1080}
    )
    page = ctx.new_page()
    page.goto(f"{base}/s/{link}")
    check = page.locator("[data-screen-check]")
    assert check.get_attribute("data-fits") == "false"
    assert page.locator("[data-start]").is_disabled()
    assert page.locator("[data-too-small-form]").is_hidden()
    assert "please make it larger" in (check.text_content() or "")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.wait_for_function("!document.querySelector('[data-start]').disabled", timeout=5_000)
    assert check.get_attribute("data-fits") == "true"
    ctx.close()
    # A phone-sized screen: no start, the way back instead; nobody is enrolled.
    ctx = browser.new_context(
        viewport={"width": 390, "height": 844}, screen={"width": 390, "height": 844}
    )
    page = ctx.new_page()
    page.goto(f"{base}/s/{link}")
    assert page.locator("[data-start]").is_disabled()
    assert "too small for this study" in (page.locator("[data-screen-check]").text_content() or "")
    page.locator("[data-too-small]").click()
    page.wait_for_selector("[data-page=screen-too-small]")
    assert "tell the experimenter" in (page.locator("main").text_content() or "")
    # Pages stay inside a narrow window (the instructions' example scrolls on its own).
    with httpx.Client(base_url=base, timeout=30) as client:
        started = client.post(f"/s/{link}/start", data={"PROLIFIC_PID": "narrow"})
        token = started.headers["location"].rsplit("/", 1)[-1]
        client.post(f"/p/{token}/consent", data={"decision": "agree"})
    page.goto(f"{base}/p/{token}")
    assert page.locator("[data-page=instructions]").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    ctx.close()
