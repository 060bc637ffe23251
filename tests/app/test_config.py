"""Settings: the instance's data folder and the secret key kept in it."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings, get_settings


@pytest.fixture()
def env_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in ("DATABASE_URL", "PSYCHVIS_SECRET_KEY", "PSYCHVIS_STIMULI_DIR", "PSYCHVIS_ENV"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("PSYCHVIS_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


def test_database_and_stimuli_live_in_home_whatever_the_current_directory(
    env_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.database_url == f"sqlite:///{env_home / 'psychvis.sqlite3'}"
    assert settings.stimuli_dir == env_home / "stimuli"
    assert Settings(stimuli_dir=tmp_path / "s").stimuli_dir == tmp_path / "s"
    assert Settings(database_url="sqlite:///x.db").database_url == "sqlite:///x.db"


def test_a_generated_secret_key_is_kept_private_and_reused(env_home: Path) -> None:
    first = get_settings().secret_key.get_secret_value()
    key_file = env_home / "secret_key"
    assert len(first) >= 32 and key_file.read_text(encoding="utf-8").strip() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    get_settings.cache_clear()
    assert get_settings().secret_key.get_secret_value() == first
    assert [p.name for p in env_home.iterdir()] == ["secret_key"]


def test_a_configured_secret_key_wins_and_nothing_is_written(
    env_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PSYCHVIS_SECRET_KEY", "k" * 40)
    assert get_settings().secret_key.get_secret_value() == "k" * 40
    assert not env_home.exists()


def test_prod_refuses_to_start_without_a_secret_key(
    env_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PSYCHVIS_ENV", "prod")
    with pytest.raises(ValidationError, match="PSYCHVIS_SECRET_KEY"):
        get_settings()
    assert not env_home.exists()


def test_extra_trusted_hosts_come_from_the_environment_and_must_be_host_names(
    env_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PSYCHVIS_TRUSTED_HOSTS", "www.study.example.org, *.Lab.example.org,")
    assert Settings().trusted_host_names() == ("www.study.example.org", "*.lab.example.org")
    monkeypatch.delenv("PSYCHVIS_TRUSTED_HOSTS")
    assert Settings().trusted_host_names() == ()
    for bad in ("*", "https://study.example.org", "study.example.org:443", "a/b", "a b", "*.*.x"):
        monkeypatch.setenv("PSYCHVIS_TRUSTED_HOSTS", f"ok.example.org,{bad}")
        with pytest.raises(ValidationError, match="PSYCHVIS_TRUSTED_HOSTS"):
            Settings()
