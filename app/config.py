"""Settings (pydantic-settings) and the cached `get_settings()`; imports nothing from app."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev-secret-key"})


class Settings(BaseSettings):
    """Server configuration; env vars are `PSYCHVIS_<NAME>` (and plain `DATABASE_URL`)."""

    model_config = SettingsConfigDict(env_prefix="PSYCHVIS_", extra="ignore")

    env: Literal["dev", "test", "prod"] = "dev"
    database_url: str = Field(
        default="sqlite:///var/psychvis.sqlite3",
        validation_alias="DATABASE_URL",
    )
    secret_key: SecretStr = SecretStr("dev-secret-key")
    stimuli_dir: Path = Path("var/stimuli")
    static_dir: Path = REPO_ROOT / "static"
    templates_dir: Path = REPO_ROOT / "templates"
    log_level: str = "INFO"
    log_json: bool = False
    base_url: str = "http://127.0.0.1:8000"
    """Public address used in printed participant links."""
    max_body_bytes: int = 16 * 1024
    """Largest JSON body accepted by the participant API."""
    max_upload_bytes: int = 512 * 1024 * 1024
    preload_ahead: int = 3
    """How many upcoming trials' images the browser is told to preload."""
    db_pool_size: int = 10
    participant_concurrency: int = Field(default=2, ge=1)
    """Participant requests one worker works on at once (and the connections of its answer
    pools); more wait in its event loop, answers first. Two keep the CPU busy while one waits
    for Postgres; more only add GIL and lock contention (docs/benchmarks.md: 4 per worker beat
    20 by ~20 % in answers/s; 2 served as many as 4 and cut the answers' p99 while 1,000
    participants arrived at once, session 4). Raise it when Postgres is a network hop away."""
    answer_lane: bool = True
    """PostgreSQL: answer the common `POST .../responses` from the event loop before FastAPI
    (`app.fast_lane`). Off, every answer goes through the route (same results)."""
    check_schema: bool = True
    """Refuse to start when the database schema is not at the Alembic head."""
    inactivity_timeout_s: int = 30 * 60
    """A participant not seen for longer (no heartbeat) and not finished counts as timed out."""
    session_max_age_s: int = 12 * 3600
    """Lifetime of a dashboard login (signed session cookie)."""
    login_max_failures: int = 5
    """Failed logins per email or per address within `login_window_s` before logins slow down."""
    login_window_s: int = 15 * 60
    stimuli_import_root: Path | None = None
    """Folder under which the dashboard may import stimulus sets by server path (None: off)."""

    @model_validator(mode="after")
    def _reject_placeholder_secret(self) -> Settings:
        if self.env == "prod" and (
            self.secret_key.get_secret_value() in PLACEHOLDER_SECRETS
            or len(self.secret_key.get_secret_value()) < 32
        ):
            raise ValueError(
                "PSYCHVIS_SECRET_KEY must be set to a random value of at least 32 characters "
                "in production (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
