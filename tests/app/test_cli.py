"""CliRunner smoke tests: the experimenter's path from an empty database to a CSV export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.config import get_settings
from app.demo import write_demo_set
from app.export_format import RESPONSE_COLUMNS, TABLE_CODEBOOKS


@pytest.fixture()
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    monkeypatch.setenv("PSYCHVIS_STIMULI_DIR", str(tmp_path / "stimuli"))
    monkeypatch.setenv("PSYCHVIS_BASE_URL", "https://study.example.org")
    monkeypatch.setenv("PSYCHVIS_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("PSYCHVIS_HOME", str(tmp_path / "home"))
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
    # Prolific fills in these placeholders; the link is useless to it without them.
    assert link.endswith(
        "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
    )
    code = link.split("?")[0].rsplit("/", 1)[1]
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
    _check_exports(cli_env, code)
    assert "closed" in run("sessions", "close", code)
    reopen = runner.invoke(app, ["sessions", "resume", code])
    assert reopen.exit_code == 1 and "cannot be reopened" in reopen.output


def _check_exports(cli_env: Path, link_code: str) -> None:
    """Every export of the console, from the CLI: the CSV tables, the JSON with its codebook,
    test-mode participants only when asked for, platform ids raw or pseudonymised."""
    from app.db import make_engine, make_sessionmaker
    from app.services.experiments import get_session_by_link
    from app.services.participants import enrol

    engine = make_engine(get_settings().database_url)
    with make_sessionmaker(engine)() as session:
        launched = get_session_by_link(session, link_code)
        enrol(session, launched, {"PROLIFIC_PID": "=real"})
        enrol(session, launched, {"PROLIFIC_PID": "tester"}, test_mode=True)
        session.commit()
    engine.dispose()
    for table, codebook in TABLE_CODEBOOKS.items():
        text = run("export", table, "e1")
        assert tuple(next(csv.reader(io.StringIO(text)))) == tuple(codebook), table
    people = list(csv.DictReader(io.StringIO(run("export", "participants", "e1"))))
    assert len(people) == 1 and people[0]["platform_id"].startswith("h-")
    raw = run("export", "participants", "e1", "--platform-ids", "raw", "--include-test")
    assert [row["platform_id"] for row in csv.DictReader(io.StringIO(raw))] == [
        "'=real",
        "tester",
    ]
    # The choice was for that file only.
    again = list(csv.DictReader(io.StringIO(run("export", "participants", "e1"))))
    assert again[0]["platform_id"] == people[0]["platform_id"]
    out = cli_env / "all.json"
    run("export", "json", "e1", "--out", str(out), "--platform-ids", "raw")
    document = json.loads(out.read_text())
    assert set(document["codebook"]) == set(TABLE_CODEBOOKS)
    assert [p["platform_id"] for p in document["participants"]] == ["=real"]
    bad = CliRunner().invoke(app, ["export", "participants", "e1", "--platform-ids", "plain"])
    assert bad.exit_code == 1 and "raw or pseudonymised" in bad.output


def test_stimuli_sample_satisfies_every_preset(cli_env: Path) -> None:
    run("db", "upgrade")
    out = run("stimuli", "sample", str(cli_env / "sample"), "--size", "16")
    assert "NOT a real study's stimuli" in out
    assert "imported psychvis-sample" in run("stimuli", "import", str(cli_env / "sample"))
    for preset in ("demo", "paper-exp1", "paper-exp2", "imi"):
        created = run(
            "experiments",
            "create",
            f"e-{preset}",
            "--stimuli",
            "psychvis-sample",
            "--design",
            preset,
        )
        assert f"created experiment e-{preset}" in created
    again = CliRunner().invoke(app, ["stimuli", "sample", str(cli_env / "sample")])
    assert again.exit_code == 1 and "not empty" in again.output


def test_stimuli_sample_for_one_preset_is_smaller(cli_env: Path) -> None:
    out = run("stimuli", "sample", str(cli_env / "demo"), "--preset", "demo", "--size", "16")
    assert "(456 images" in out  # 12 drawn looks of 38 images; demo has 13 units
    manifest = (cli_env / "demo" / "manifest.json").read_text(encoding="utf-8")
    assert '"id":"mixed3a:25"' not in manifest and '"id":"main:9"' in manifest


def test_commands_log_warnings_only_unless_verbose(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PSYCHVIS_LOG_LEVEL")
    get_settings.cache_clear()
    quiet = CliRunner().invoke(app, ["db", "upgrade"], catch_exceptions=False)
    assert quiet.exit_code == 0 and "INFO" not in quiet.output
    assert f"data folder: {cli_env / 'home'}" in quiet.output
    verbose = CliRunner().invoke(app, ["--verbose", "db", "current"], catch_exceptions=False)
    assert verbose.exit_code == 0 and "INFO alembic" in verbose.output
