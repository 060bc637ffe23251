"""bench.load.loadgen against the real server (uvicorn, the production wiring, PostgreSQL): the
request sequence a browser sends, and the stored-exactly-once check it reports.

The benchmark figures in docs/benchmarks.md rest on this generator; these tests keep it
following the participant API as the app and static/trial.js change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from app.config import Settings
from bench.load import loadgen
from bench.load.setup_bench import setup_bench
from tests.browser.conftest import free_port, serve_app
from tests.conftest import create_database, drop_database

pytestmark = pytest.mark.postgres

BROWSER_REQUESTS_PER_SESSION = {
    "landing": 1,
    "enrol": 1,
    "consent": 1,
    "instructions": 1,
    "next": 0,  # the task page carries the first step
    "complete": 1,
    "page": 4,  # consent, instructions, task and done pages
    loadgen.START: 1,
}
TRIALS = 45
BLOCKS = 3


@pytest.fixture(scope="module")
def bench_server(
    postgres_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, str]]:
    """A server on a bench database of its own: (base URL, study link, database URL)."""
    url = create_database(postgres_server_url)
    stimuli = tmp_path_factory.mktemp("bench-stimuli")
    try:
        link = setup_bench(url, stimuli, image_size=16)["lossless"]
        settings = Settings(
            env="test",
            database_url=url,
            secret_key="test-" + "x" * 40,
            stimuli_dir=stimuli,
            log_level="WARNING",
        )
        port = free_port()
        with serve_app(settings, port) as base:
            yield base, link, url
    finally:
        drop_database(postgres_server_url, url)


@pytest.fixture(autouse=True)
def fast_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    """A heartbeat every 20 ms instead of 15 s, so that a short session sends some."""
    monkeypatch.setattr(loadgen, "HEARTBEAT_S", 0.02)


def _run(
    base: str, link: str, participants: int, *, browser: bool
) -> tuple[loadgen.Stats, dict[str, int]]:
    """One session per participant, without errors; the stats and the requests per endpoint."""
    stats, _ = asyncio.run(
        loadgen.run_load(
            base,
            link,
            participants,
            think_ms=2.0,
            trials=None,
            duration_s=120.0,
            warmup_s=0.0,
            ramp_s=0.0,
            one_session=True,
            browser=browser,
        )
    )
    summary = loadgen.summarise(stats, 1.0)
    assert summary["errors"] == 0, summary["error_samples"]
    assert summary["sessions_completed"] == participants
    return stats, {name: e["count"] for name, e in summary["endpoints"].items()}


def test_the_generator_sends_what_a_browser_sends_and_checks_every_answer(
    bench_server: tuple[str, str, str],
) -> None:
    base, link, database_url = bench_server
    stats, counts = _run(base, link, 2, browser=True)
    for name, per_session in BROWSER_REQUESTS_PER_SESSION.items():
        assert counts[name] == 2 * per_session, name
    assert counts["answer"] == 2 * TRIALS
    assert counts[loadgen.ANSWER_BLOCK_END] == 2 * BLOCKS
    assert counts["events"] > 0
    checked = loadgen.verify(database_url, stats)
    assert checked["ok"] and checked["rows"] == checked["acked"] == 2 * TRIALS
    assert checked["lost"] == checked["duplicated"] == checked["unacked_rows"] == 0


def test_api_only_leaves_out_the_pages_and_heartbeats(bench_server: tuple[str, str, str]) -> None:
    base, link, database_url = bench_server
    stats, counts = _run(base, link, 1, browser=False)
    # The task page only (answers are refused before it was served); it carries the first step.
    assert counts["page"] == 1 and counts["events"] == counts["next"] == 0
    assert counts["answer"] == TRIALS and counts["enrol"] == 1
    assert loadgen.verify(database_url, stats)["ok"]


def test_verify_reports_an_acknowledged_answer_that_is_not_stored(
    bench_server: tuple[str, str, str],
) -> None:
    base, link, database_url = bench_server
    stats, _ = _run(base, link, 1, browser=False)
    token, trial_index, _ = stats.acked[0]
    stats.acked[0] = (token, trial_index, "00000000-0000-4000-8000-000000000000")
    checked = loadgen.verify(database_url, stats)
    assert not checked["ok"]
    assert checked["lost"] == 1 and checked["unacked_rows"] == 1
