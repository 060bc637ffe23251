"""The Content-Security-Policy breaks nothing: the participant pages and the console run with
no policy violation (the task page's import map is allowed by its hash, app/security.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from app.config import Settings
from tests.browser.conftest import browser_settings, free_port, serve_app

pytestmark = pytest.mark.browser

# CSS only: string predicates of wait_for_function are eval'd in the page, which the CSP forbids.
TRIAL_OPEN = "[data-stage][data-phase=open]"
MESSAGE_WAITING = "[data-continue]:not([hidden]):not([disabled])"

# Recorded before any page script runs, so violations of the page's first scripts count too.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    from app.cli import setup_demo

    port = free_port()
    settings = browser_settings(tmp_path_factory.mktemp("csp"), port, "csp")
    link = setup_demo(settings)
    with serve_app(settings, port) as base:
        yield f"{base}/s/{link.rstrip('/').rsplit('/', 1)[-1]}", settings


def test_pages_run_without_csp_violations(
    live_server: tuple[str, Settings], browser: object
) -> None:
    link, _ = live_server
    ctx = browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": 1920, "height": 1080}, bypass_csp=False
    )
    ctx.add_init_script(RECORD_VIOLATIONS)
    page = ctx.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    seen: list[str] = []

    def violations() -> list[str]:
        found: list[str] = page.evaluate("window.__cspViolations")
        return found

    page.goto(f"{link}?PROLIFIC_PID=csp-{int(time.time() * 1000)}&STUDY_ID=s&SESSION_ID=x")
    seen += violations()
    page.get_by_role("button", name="Start the study").click()
    seen += violations()
    page.get_by_role("button", name="I agree to take part").click()
    seen += violations()
    page.get_by_role("button", name="Begin the practice trials").click()
    # The task page: the import map applied (each module fetched once, at its versioned URL)
    # and the first trial's images shown.
    for _ in range(5):  # messages before the first trial (practice intro), then the trial
        page.wait_for_selector(f"{TRIAL_OPEN}, {MESSAGE_WAITING}", timeout=30_000)
        if page.locator(TRIAL_OPEN).count():
            break
        page.locator(MESSAGE_WAITING).click()
    assert page.locator(TRIAL_OPEN).count() == 1
    assert page.locator(".grid img, [data-stage] img").count() > 0
    seen += violations()
    modules = page.evaluate(
        "performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(n => n.includes('/static/') && /\\.js(\\?|$)/.test(n))"
    )
    assert modules and all("?v=" in m for m in modules)
    page.goto(link.split("/s/")[0] + "/dashboard/login")
    seen += violations()
    ctx.close()
    assert seen == []
    assert not [m for m in console if "Content Security Policy" in m]
