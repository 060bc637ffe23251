"""The Analysis page computes outside the request: with committed data (the production wiring,
PostgreSQL) a reload after new answers shows the older analysis at once, marked as updating and
reloading itself, while one background computation (however many reloads ask) computes the
new one, which then replaces it; a failed computation is shown on the page and logged."""

from __future__ import annotations

import html
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from app.db import make_sessionmaker
from app.models import Experiment, Participant
from app.services import analysis
from app.services.experiments import get_session_by_link
from app.services.participants import enrol
from tests.app.routes.dashboard_client import login
from tests.factories import answer_main_trials, make_user

REFRESH = re.compile(r'<meta http-equiv="refresh" content="2; url=([^"]+)">')


class SlowAnalysis:
    """Stands in for the analysis: counts its runs, waits for `gate`, may fail."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.runs = 0
        self.fail: str | None = None
        self.real = analysis._analyze

    def __call__(self, *args: Any, **kwargs: Any) -> analysis.AnalysisView:
        self.runs += 1
        assert self.gate.wait(30), "the test never let the analysis finish"
        if self.fail is not None:
            raise RuntimeError(self.fail)
        return self.real(*args, **kwargs)


@pytest.fixture()
def slow(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlowAnalysis]:
    stand_in = SlowAnalysis()
    monkeypatch.setattr(analysis, "_analyze", stand_in)
    yield stand_in
    stand_in.gate.set()  # never leave the worker waiting
    _idle()


def _idle() -> None:
    """Wait until the analysis worker has finished everything submitted so far."""
    analysis._WORKER.submit(lambda: None).result(timeout=60)


def _answer(engine: Engine, link: str, n: int) -> None:
    """Commit `n` more answers of a new participant (as the answer path would)."""
    with make_sessionmaker(engine)() as session:
        launched = get_session_by_link(session, link)
        number = session.scalar(select(func.count()).select_from(Participant))
        participant, _ = enrol(session, launched, {"PROLIFIC_PID": f"pid-{number}"})
        answer_main_trials(session, participant, n)
        session.commit()


def _refresh_url(page: str) -> str:
    found = REFRESH.search(page)
    assert found, "the page does not reload itself"
    return html.unescape(found.group(1))


def test_a_reload_after_new_answers_shows_the_older_analysis_while_the_new_one_computes(
    committed_app: tuple[TestClient, str, Engine],
    slow: SlowAnalysis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, link, engine = committed_app
    with make_sessionmaker(engine)() as session:
        make_user(session, "owner@example.org", role="admin")
        slug = session.scalars(select(Experiment.slug)).one()
        session.commit()
    login(client, "owner@example.org")
    url = f"/dashboard/experiments/{slug}/analysis"
    _answer(engine, link, 2)

    # No analysis yet: the page says so at once and reloads itself; two requests, one run.
    first = client.get(url).text
    assert "data-analysis-computing" in first and "data-analysis-table" not in first
    assert client.get(_refresh_url(first)).text.count("data-analysis-computing") == 1
    assert "data-analysis-computing" in client.get(url).text
    slow.gate.set()
    _idle()
    assert slow.runs == 1
    ready = client.get(_refresh_url(first)).text
    assert "data-analysis-table" in ready and "main trials" in ready
    assert REFRESH.search(ready) is None and "data-analysis-stale" not in ready
    assert client.get(url).text.count("data-analysis-stale") == 0  # current: nothing to do
    assert slow.runs == 1

    # A new answer: the reload shows the analysis of 2 answers, says it is updating.
    slow.gate.clear()
    _answer(engine, link, 1)
    stale = client.get(url).text
    assert "Shown: 2 answers; updating to include 1 new answer…" in stale
    assert "data-analysis-table" in stale and stale.count('src="data:image/png;base64,') == 4
    assert "data-analysis-stale" in client.get(url).text  # a second reload: still one run
    assert "data-analysis-stale" in client.get(_refresh_url(stale)).text
    slow.gate.set()
    _idle()
    assert slow.runs == 2
    fresh = client.get(_refresh_url(stale)).text
    assert "data-analysis-table" in fresh
    assert "Shown:" not in fresh and REFRESH.search(fresh) is None

    # Answers arriving after the page asked do not keep it reloading: it shows what it waited
    # for and says that more arrived.
    slow.gate.clear()
    _answer(engine, link, 1)
    waiting = client.get(url).text
    slow.gate.set()
    _idle()
    _answer(engine, link, 2)
    behind = client.get(_refresh_url(waiting)).text
    assert "Shown: 4 answers; 2 new answers arrived since this page was asked for" in behind
    assert REFRESH.search(behind) is None and slow.runs == 3

    # A failed computation: the page stops waiting, shows why and the older analysis; logged.
    slow.fail = "the analysis broke"
    with caplog.at_level(logging.ERROR, logger="app.cache"):
        updating = client.get(url).text
        assert "data-analysis-stale" in updating
        _idle()
    assert "background computation for" in caplog.text and "the analysis broke" in caplog.text
    failed = client.get(_refresh_url(updating)).text
    assert "data-analysis-failure" in failed
    assert "RuntimeError: the analysis broke" in failed
    assert "Shown: 4 answers, of 6 now." in failed and "data-analysis-table" in failed
    assert REFRESH.search(failed) is None
    # A reload soon after shows the failure again rather than retrying at once.
    assert "data-analysis-failure" in client.get(url).text
    assert slow.runs == 4
