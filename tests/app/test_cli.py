"""CliRunner smoke tests: the experimenter's path from an empty database to a CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.config import get_settings
from app.demo import write_demo_set
from app.export_format import RESPONSE_COLUMNS


@pytest.fixture()
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    monkeypatch.setenv("PSYCHVIS_STIMULI_DIR", str(tmp_path / "stimuli"))
    monkeypatch.setenv("PSYCHVIS_BASE_URL", "https://study.example.org")
    monkeypatch.setenv("PSYCHVIS_LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def run(*args: str) -> str:
    """Run a command that must succeed; returns its standard output only."""
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_cli_from_empty_database_to_export(cli_env: Path) -> None:
    runner = CliRunner()
    refused = runner.invoke(app, ["stimuli", "list"])
    assert refused.exit_code == 1 and "psychvis db upgrade" in refused.output
    run("db", "upgrade")
    assert "current:" in run("db", "current")
    stimuli = write_demo_set(
        cli_env / "set", n_main_units=10, n_batches=2, size=32, set_id="cli-set"
    )
    assert "imported cli-set" in run("stimuli", "import", str(stimuli))
    assert "cli-set" in run("stimuli", "list")
    broken = runner.invoke(app, ["stimuli", "import", str(cli_env / "missing")])
    assert broken.exit_code == 1 and "does not exist" in broken.output
    typo = runner.invoke(
        app, ["experiments", "create", "e1", "--stimuli", "cli-set", "--design", "no-such-preset"]
    )
    assert typo.exit_code == 1 and "no-such-preset" in typo.output
    assert "created experiment e1" in run(
        "experiments", "create", "e1", "--stimuli", "cli-set", "--design", "demo"
    )
    assert "e1\tdemo\t0 participants" in run("experiments", "list")
    link = run(
        "sessions",
        "launch",
        "e1",
        "--platform",
        "prolific",
        "--completion-code",
        "ABC123",
        "--no-consent-code",
        "NOC0NSENT",
    ).strip()
    assert link.startswith("https://study.example.org/s/")
    code = link.rsplit("/", 1)[1]
    from app.db import make_engine, make_sessionmaker
    from app.services.experiments import get_session_by_link

    engine = make_engine(get_settings().database_url)
    with make_sessionmaker(engine)() as session:
        outcomes = get_session_by_link(session, code).outcomes
    engine.dispose()
    assert outcomes["completed"]["code"] == "ABC123"
    assert outcomes["no_consent"] == {
        "code": "NOC0NSENT",
        "url": "https://app.prolific.com/submissions/complete?cc=NOC0NSENT",
    }
    assert "paused" in run("sessions", "pause", code)
    assert "open" in run("sessions", "resume", code)
    assert code in run("sessions", "list")
    export = run("export", "responses", "e1")
    header = next(csv.reader(io.StringIO(export)))
    assert tuple(header) == RESPONSE_COLUMNS
    assert "closed" in run("sessions", "close", code)
    reopen = runner.invoke(app, ["sessions", "resume", code])
    assert reopen.exit_code == 1 and "cannot be reopened" in reopen.output
