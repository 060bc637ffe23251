"""`psychvis users create|set-password|list` and `experiments create --owner` through
CliRunner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import app
from app.config import get_settings
from app.db import make_engine, make_sessionmaker
from app.demo import write_demo_set
from app.models import AuditLog, DashboardLogin, Experiment, User
from app.services.auth import start_login, verify_password


@pytest.fixture()
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("PSYCHVIS_STIMULI_DIR", str(tmp_path / "stimuli"))
    monkeypatch.setenv("PSYCHVIS_LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_users_create_list_and_owner(cli_env: str, tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    prompted = runner.invoke(
        app,
        ["users", "create", "Admin@Example.org", "--role", "admin"],
        input="a fine password\na fine password\n",
    )
    assert prompted.exit_code == 0, prompted.output
    assert "created admin admin@example.org" in prompted.output
    assert "a fine password" not in prompted.output  # hidden input
    mismatch = runner.invoke(
        app, ["users", "create", "x@example.org"], input="one password!\nanother one!!\n"
    )
    assert mismatch.exit_code != 0
    piped = runner.invoke(
        app, ["users", "create", "exp@example.org", "--password-stdin"], input="piped secret pw\n"
    )
    assert piped.exit_code == 0, piped.output
    short = runner.invoke(
        app, ["users", "create", "s@example.org", "--password-stdin"], input="short\n"
    )
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    again = runner.invoke(
        app, ["users", "create", "exp@example.org", "--password-stdin"], input="piped secret pw\n"
    )
    assert again.exit_code == 1 and "exists already" in again.output
    bad_role = runner.invoke(app, ["users", "create", "r@example.org", "--role", "root"])
    assert bad_role.exit_code == 1

    engine = make_engine(cli_env)
    with make_sessionmaker(engine)() as session:
        user = session.scalar(select(User).where(User.email == "exp@example.org"))
        assert user is not None
        for _ in range(2):  # logged in on two browsers
            start_login(session, user, user_agent=None, address=None, max_age_s=3600)
        session.commit()
    engine.dispose()
    reset = runner.invoke(
        app,
        ["users", "set-password", "EXP@example.org", "--password-stdin"],
        input="a new secret pw\n",
    )
    assert reset.exit_code == 0, reset.output
    assert "2 dashboard login(s) ended" in reset.output
    too_short = runner.invoke(
        app, ["users", "set-password", "exp@example.org", "--password-stdin"], input="short\n"
    )
    assert too_short.exit_code == 1 and "at least 10 characters" in too_short.output
    nobody = runner.invoke(
        app, ["users", "set-password", "nobody@example.org", "--password-stdin"], input="x" * 12
    )
    assert nobody.exit_code == 1 and "no account" in nobody.output
    engine = make_engine(cli_env)
    with make_sessionmaker(engine)() as session:
        user = session.scalar(select(User).where(User.email == "exp@example.org"))
        assert user is not None
        assert verify_password(user.password_hash, "a new secret pw")
        assert not verify_password(user.password_hash, "piped secret pw")
        revoked = session.scalars(
            select(DashboardLogin.revoked_at).where(DashboardLogin.user_id == user.id)
        ).all()
        assert len(revoked) == 2 and None not in revoked
        entry = session.scalar(select(AuditLog).where(AuditLog.action == "user.set_password"))
        assert entry is not None and entry.user_id is None and entry.target == f"user {user.id}"
        assert entry.details == {"logins_revoked": 2, "via": "cli"}
    engine.dispose()

    listing = runner.invoke(app, ["users", "list"])
    assert listing.stdout.splitlines() == [
        "admin@example.org\tadmin\tactive",
        "exp@example.org\texperimenter\tactive",
    ]

    stimuli = write_demo_set(tmp_path / "set", n_main_units=10, n_batches=2, size=32, set_id="s")
    assert runner.invoke(app, ["stimuli", "import", str(stimuli)]).exit_code == 0
    owned = runner.invoke(
        app,
        [
            "experiments",
            "create",
            "e1",
            "--stimuli",
            "s",
            "--design",
            "demo",
            "--owner",
            "exp@example.org",
        ],
    )
    assert owned.exit_code == 0, owned.output
    unknown = runner.invoke(
        app,
        [
            "experiments",
            "create",
            "e2",
            "--stimuli",
            "s",
            "--design",
            "demo",
            "--owner",
            "no@x.org",
        ],
    )
    assert unknown.exit_code == 1 and "no account" in unknown.output

    engine = make_engine(cli_env)
    with make_sessionmaker(engine)() as session:
        user = session.scalar(select(User).where(User.email == "exp@example.org"))
        assert user is not None and verify_password(user.password_hash, "a new secret pw")
        experiment = session.scalar(select(Experiment).where(Experiment.slug == "e1"))
        assert experiment is not None and experiment.owner_id == user.id
    engine.dispose()
