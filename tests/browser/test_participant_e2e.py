"""A participant clicks through the demo in headless Chromium; then the database is checked.

Runs the real app (uvicorn in a thread, its own SQLite file) and the real task page:
landing -> consent -> instructions -> practice and main trials -> completion, answering by the
buttons' accessible names and by keys, with one answer given offline and recovered from
localStorage after a reload.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.models import Participant, ParticipantEvent, ScheduledTrial, TrialResponse
from tests.browser.conftest import browser_settings, free_port, serve_app

ANSWER_NAMES = [f"{side} image, confidence {c}" for side in ("Upper", "Lower") for c in (1, 2, 3)]
ANSWER_KEYS = ["Digit1", "Digit2", "Digit3", "KeyQ", "KeyW", "KeyE"]
# Page states, read through the data-* hooks of templates/participant/task.html.
TRIAL_OPEN = (
    "(() => { const s = document.querySelector('[data-stage]');"
    " return !!s && s.dataset.phase === 'open'"
    " && !document.querySelector('[data-screen=trial]').hidden; })()"
)
MESSAGE_WAITING = (
    "(() => { const b = document.querySelector('[data-continue]');"
    " return !!b && !b.hidden && !b.disabled && b.offsetParent !== null; })()"
)
LEFT_TASK = "!document.querySelector('[data-task]')"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """The demo experiment served by the real app on a free port."""
    from app.cli import setup_demo

    port = free_port()
    settings = browser_settings(tmp_path_factory.mktemp("e2e"), port, "e2e")
    link = setup_demo(settings)
    with serve_app(settings, port) as base:
        yield f"{base}/s/{link.rstrip('/').rsplit('/', 1)[-1]}", settings


def _wait_for_next(page: object) -> str:
    """Wait until the page asks for something; return 'trial', 'message' or 'left'."""
    page.wait_for_function(  # type: ignore[attr-defined]
        f"({TRIAL_OPEN}) || ({MESSAGE_WAITING}) || ({LEFT_TASK})", timeout=30_000
    )
    if page.evaluate(LEFT_TASK):  # type: ignore[attr-defined]
        return "left"
    return "trial" if page.evaluate(TRIAL_OPEN) else "message"  # type: ignore[attr-defined]


def test_participant_clicks_through_demo_and_every_answer_is_stored_once(
    live_server: tuple[str, Settings], browser: object
) -> None:
    link, settings = live_server
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080})  # type: ignore[attr-defined]
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.goto(f"{link}?PROLIFIC_PID=e2e-{int(time.time() * 1000)}&STUDY_ID=s&SESSION_ID=x")
    page.get_by_role("button", name="Start the study").click()
    page.get_by_role("button", name="I agree to take part").click()
    page.get_by_role("button", name="Begin the practice trials").click()
    token = page.evaluate("JSON.parse(document.getElementById('trial-config').textContent).token")
    queue_key = f"psychvis:answers:{token}"

    messages: list[str] = []
    answered: list[str] = []
    offline_uuid: str | None = None
    while (state := _wait_for_next(page)) != "left":
        if state == "message":
            messages.append(page.locator("[data-message-body]").text_content() or "")
            page.get_by_role("button", name="Continue").click()
            continue
        n = len(answered)
        if n == 3:
            # Offline answer: it must wait in localStorage, survive a reload and be sent then.
            ctx.set_offline(True)
            page.keyboard.press("KeyE")
            page.wait_for_function(
                f"localStorage.getItem({json.dumps(queue_key)}) !== null", timeout=5_000
            )
            time.sleep(1.0)
            queued = json.loads(page.evaluate(f"localStorage.getItem({json.dumps(queue_key)})"))
            assert len(queued) == 1
            offline_uuid = queued[0]["response_uuid"]
            assert page.locator("[data-status]").text_content() != ""
            ctx.set_offline(False)
            page.reload()
            answered.append("KeyE")
            continue
        if n % 2 == 0:
            name = ANSWER_NAMES[n % 6]
            page.get_by_role("button", name=name, exact=True).click()
            answered.append(name)
        else:
            key = ANSWER_KEYS[n % 6]
            page.keyboard.press(key)
            answered.append(key)
        page.wait_for_function(f"!({TRIAL_OPEN})")
        assert len(answered) < 500

    page.wait_for_load_state()
    assert "DEMO-DONE" in (page.locator("main").text_content() or "")
    assert any("trials correct" in m for m in messages)
    assert page.evaluate(f"localStorage.getItem({json.dumps(queue_key)})") is None
    assert errors == []
    ctx.close()

    engine = make_engine(settings.database_url, pool_size=1)
    try:
        with make_sessionmaker(engine)() as session:
            participant = session.scalars(
                select(Participant).where(Participant.token == token)
            ).one()
            assert participant.status == "completed"
            rows = session.scalars(
                select(TrialResponse)
                .where(TrialResponse.participant_id == participant.id)
                .order_by(TrialResponse.trial_index)
            ).all()
            n_scheduled = session.scalar(
                select(func.count())
                .select_from(ScheduledTrial)
                .where(ScheduledTrial.participant_id == participant.id, ~ScheduledTrial.skipped)
            )
            assert len(rows) == len(answered) == n_scheduled
            assert len({r.response_uuid for r in rows}) == len(rows)
            assert offline_uuid in {r.response_uuid for r in rows}
            for row, given in zip(rows, answered, strict=True):
                if given in ANSWER_NAMES:
                    side, conf = given.split(" image, confidence ")
                    assert (row.answer["response"], row.answer["confidence"]) == (
                        side.lower(),
                        int(conf),
                    )
                    assert row.input_kind == "mouse"
                else:
                    i = ANSWER_KEYS.index(given)
                    assert (row.answer["response"], row.answer["confidence"]) == (
                        "upper" if i < 3 else "lower",
                        i % 3 + 1,
                    )
                    assert row.input_kind == "keyboard"
                assert row.onset_ms is not None and row.answer_ms is not None
                assert row.rt_ms == pytest.approx(row.answer_ms - row.onset_ms, abs=0.2)
                assert row.rt_ms > 0
                if row.rt_ms > 100:  # a script can answer within a frame of onset; no interval
                    assert row.frame_interval_mean_ms is not None
                    assert 0 < row.frame_interval_mean_ms <= row.frame_interval_max_ms
                assert (row.viewport_w_px, row.viewport_h_px) == (1920, 1080)
                assert row.device_pixel_ratio == 1
                assert not row.focus_lost and not row.fullscreen_exited
            kinds = set(
                session.scalars(
                    select(ParticipantEvent.kind).where(
                        ParticipantEvent.participant_id == participant.id
                    )
                )
            )
            assert "page_load" in kinds
    finally:
        engine.dispose()
