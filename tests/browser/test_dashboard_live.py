"""The console in headless Chromium: log in, launch a session through the form, then watch
the live counts change without a reload while a simulated participant (plain HTTP against the
same server) enrols, answers and finishes."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from tests.browser.conftest import free_port, serve_app

pytestmark = pytest.mark.browser

EMAIL = "experimenter@example.org"
PASSWORD = "a browser test password"
SCREENSHOT = os.environ.get("PSYCHVIS_DASHBOARD_SCREENSHOT")
"""When set, the dashboard's screenshot is written there (for looking at the layout)."""


@pytest.fixture()
def chromium(browser: Any) -> Any:
    """Headless Debian Chromium (the shared `browser` fixture of tests/browser/conftest.py)."""
    return browser


@pytest.fixture()
def console(
    database_url: str, demo_set_id: str, stimuli_dir: Path, tmp_path: Path
) -> Iterator[str]:
    """The real app on a free port, on a fresh SQLite file holding one experimenter and their
    experiment on the demo set.

    The file is a copy (SQLite backup API) of the session's migrated test database with the
    demo set already imported, and the blobs are the session's: encoding the demo set's
    ~900 images again would cost more than the rest of the test.
    """
    from app.services.auth import create_user
    from app.services.experiments import create_experiment
    from app.services.stimuli import get_stimulus_set

    target = tmp_path / "console.sqlite3"
    source = sqlite3.connect(make_url(database_url).database or "")
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    port = free_port()
    settings = Settings(
        env="test",
        database_url=f"sqlite:///{target}",
        secret_key="test-" + "x" * 40,
        stimuli_dir=stimuli_dir,
        base_url=f"http://127.0.0.1:{port}",
        log_level="WARNING",
    )
    engine = make_engine(settings.database_url, pool_size=1)
    with make_sessionmaker(engine)() as session:
        user = create_user(session, EMAIL, PASSWORD, "experimenter")
        create_experiment(
            session,
            slug="live-pilot",
            stimulus_set=get_stimulus_set(session, demo_set_id),
            design_source="demo",
            title="Live pilot",
            owner_id=user.id,
        )
        session.commit()
    engine.dispose()
    with serve_app(settings, port) as base:
        yield base


def _participant_answers(base: str, link: str, n_answers: int | None) -> str:
    """Enrol through the study link, consent, read the instructions, answer; returns the token."""
    with httpx.Client(base_url=base, follow_redirects=False, timeout=10) as http:
        start = http.post(f"/s/{link}/start", data={})
        assert start.status_code == 303
        token = start.headers["location"].removeprefix("/p/")
        assert http.post(f"/p/{token}/consent", data={"decision": "agree"}).status_code == 303
        assert http.post(f"/p/{token}/instructions").status_code == 303
        assert http.get(f"/p/{token}").status_code == 200  # the task page, as a browser loads it
        n_trials = http.get(f"/api/p/{token}/next").json()["n_trials"]
        for index in range(n_trials if n_answers is None else n_answers):
            body = {
                "response_uuid": f"00000000-0000-4000-8000-{index:012d}",
                "trial_index": index,
                "response": "upper",
                "confidence": 3,
                "rt_ms": 640.0,
            }
            assert http.post(f"/api/p/{token}/responses", json=body).status_code == 200
        return token


def _finish(base: str, token: str) -> None:
    with httpx.Client(base_url=base, timeout=10) as http:
        n_trials = http.get(f"/api/p/{token}/next").json()["n_trials"]
        done = 3
        for index in range(done, n_trials):
            body = {
                "response_uuid": f"00000000-0000-4000-8000-{index:012d}",
                "trial_index": index,
                "response": "lower",
                "confidence": 1,
                "rt_ms": 700.0,
            }
            assert http.post(f"/api/p/{token}/responses", json=body).status_code == 200
        assert http.post(f"/api/p/{token}/complete").status_code == 200


def _count(page: Any, bucket: str) -> str:
    return str(page.locator(f"[data-count={bucket}]").text_content()).strip()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_login_launch_and_live_counts_follow_a_participant(
    console: str, chromium: Any, tmp_path: Path
) -> None:
    base = console
    ctx = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.goto(f"{base}/dashboard/experiments/live-pilot")
    assert "/dashboard/login" in page.url  # not logged in: sent to the form
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/dashboard/experiments/live-pilot")

    page.locator("[data-launch-form] select[name=platform]").select_option("lab")
    page.locator("[data-launch-form] input[name=label]").fill("browser wave")
    page.get_by_role("button", name="Launch").click()
    page.wait_for_selector("[data-session] [data-link]")
    link = page.locator("[data-session] [data-link]").first.input_value()
    assert link.startswith(f"{base}/s/")
    link_code = link.rsplit("/", 1)[-1]
    assert _count(page, "in_progress") == "0" and _count(page, "completed") == "0"

    page.evaluate("window.__notReloaded = true")
    token = _participant_answers(base, link_code, n_answers=3)
    page.wait_for_function(
        "document.querySelector('[data-count=in_progress]').textContent.trim() === '1'",
        timeout=12_000,
    )
    page.wait_for_function(
        "document.querySelector('[data-active] a')?.textContent === 'p00001'", timeout=5_000
    )
    assert "3 / " in str(page.locator("[data-active]").text_content())
    _finish(base, token)
    page.wait_for_function(
        "(() => { const c = (b) => Number(document.querySelector(`[data-count=${b}]`)"
        ".textContent); return c('completed') + c('excluded') === 1"
        " && c('in_progress') === 0; })()",
        timeout=12_000,
    )
    assert page.evaluate("window.__notReloaded") is True  # updated in place
    assert page.locator("[data-accuracy] tr").count() >= 1
    # Updated rows carry the included count and the excluded participants (trials) column.
    first_row = page.locator("[data-accuracy] tr").first.locator("td")
    assert first_row.count() == 5
    assert re.fullmatch(r"[01] \(\d+\)", str(first_row.nth(4).text_content()))
    assert page.locator("[data-median]").text_content() != "–"
    shot = Path(SCREENSHOT) if SCREENSHOT else tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    # The analysis page draws the figures of what was just answered: computed in the
    # background, the page says so and reloads itself until they are there.
    page.get_by_role("link", name="analysis").click()
    page.wait_for_selector("[data-analysis-table]")
    assert "since=" in page.url  # shown by the page's own reload
    loaded = page.evaluate(
        "[...document.querySelectorAll('[data-plot]')].filter(i => i.naturalWidth > 0).length"
    )
    assert loaded == 4
    page.screenshot(path=str(shot.with_name(shot.stem + "-analysis.png")), full_page=True)
    assert errors == []
    ctx.close()
