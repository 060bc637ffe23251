"""Settings (pydantic-settings) and the cached `get_settings()`; imports nothing from app."""

from __future__ import annotations

import os
import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev-secret-key"})
SECRET_KEY_FILE = "secret_key"
HOST_PATTERN = re.compile(
    r"^(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
"""A host name (or IPv4 address), optionally `*.` for its subdomains: what Starlette's
TrustedHostMiddleware compares the Host header with (a bare `*` would turn the check off)."""


def default_home() -> Path:
    """`var/` in the checkout the app runs from, else the per-user data folder.

    The database, stimulus images and generated secret must not depend on the current
    directory: a command run from another folder would otherwise see another, empty instance.
    """
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT / "var"
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "psychvis"


class Settings(BaseSettings):
    """Server configuration; env vars are `PSYCHVIS_<NAME>` (and plain `DATABASE_URL`)."""

    model_config = SettingsConfigDict(env_prefix="PSYCHVIS_", extra="ignore")

    env: Literal["dev", "test", "prod"] = "dev"
    home: Path = Field(default_factory=default_home)
    """The instance's data folder: the default SQLite database, stimulus images and the
    generated secret key live here (`PSYCHVIS_HOME`)."""
    database_url: str = Field(default="", validation_alias="DATABASE_URL")
    """Empty: the SQLite file `psychvis.sqlite3` in `home`."""
    secret_key: SecretStr = SecretStr("dev-secret-key")
    stimuli_dir: Path = Path()
    """Unset: `home/stimuli`."""
    static_dir: Path = REPO_ROOT / "static"
    templates_dir: Path = REPO_ROOT / "templates"
    docs_dir: Path = REPO_ROOT / "docs"
    """Documentation the console links to (`/dashboard/docs/<name>.md`)."""
    log_level: str = "INFO"
    log_json: bool = False
    base_url: str = "http://127.0.0.1:8000"
    """Public address used in printed participant links."""
    trusted_hosts: str = ""
    """Host names a production server answers besides the host of `base_url` (and `localhost`,
    `127.0.0.1`), comma-separated: a second domain or the name a load balancer's health check
    uses, e.g. `www.study.example.org,*.study.example.org` (`*.` covers subdomains)."""
    max_body_bytes: int = 16 * 1024
    """Largest JSON body accepted by the participant API."""
    max_upload_bytes: int = 512 * 1024 * 1024
    max_import_bytes: int = Field(default=2 * 1024**3, gt=0)
    """Uncompressed bytes one stimulus-set zip may hold (checked before anything is written)."""
    preload_ahead: int = 3
    """How many upcoming trials' images the browser is told to preload."""
    db_pool_size: int = 10
    participant_concurrency: int = Field(default=2, ge=1)
    """Participant requests one worker works on at once (and the connections of its answer
    pools); more wait in its event loop, answers first. Two keep the CPU busy while one waits
    for Postgres; more only add GIL and lock contention (docs/benchmarks.md: 4 per worker beat
    20 by ~20 % in answers/s; 2 served as many as 4 and cut the answers' p99 while 1,000
    participants arrived at once; bench/NOTES.md). Raise it when Postgres is a network hop away."""
    check_schema: bool = True
    """Refuse to start when the database schema is not at the Alembic head."""
    inactivity_timeout_s: int = 30 * 60
    """A participant not seen for longer (no heartbeat) and not finished counts as timed out."""
    session_max_age_s: int = 12 * 3600
    """Lifetime of a dashboard login (signed session cookie)."""
    login_max_failures: int = 5
    """Failed logins per email or per address within `login_window_s` before logins slow down."""
    login_window_s: int = 15 * 60
    enrol_hold_unconfirmed_s: int = Field(default=30 * 60, gt=0)
    """How long a participant who enrolled but never consented holds a place in a session with
    a participant limit; after that the place is free for someone else."""
    enrol_rate_limit: int = Field(default=30, ge=1)
    """Enrolments (start button) per client address and worker within `enrol_rate_window_s`;
    a lab with every computer behind one address needs this above its participants per hour."""
    enrol_rate_window_s: int = Field(default=10 * 60, gt=0)
    analysis_in_background: bool = True
    """The console's Analysis page computes a missing analysis on a background worker and shows
    the newest older one meanwhile, reloading itself until the new one is ready. False: the
    request that needs it computes it (about 1.5 s for a study; `app.services.analysis`)."""
    stimuli_import_root: Path | None = None
    """Folder under which the dashboard may import stimulus sets by server path (None: off)."""

    @model_validator(mode="after")
    def _paths_in_home(self) -> Settings:
        self.home = self.home.expanduser().absolute()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'psychvis.sqlite3'}"
        if "stimuli_dir" not in self.model_fields_set:
            self.stimuli_dir = self.home / "stimuli"
        return self

    @model_validator(mode="after")
    def _host_names(self) -> Settings:
        bad = [h for h in self.trusted_host_names() if not HOST_PATTERN.match(h)]
        if bad:
            raise ValueError(
                f"PSYCHVIS_TRUSTED_HOSTS: {', '.join(repr(h) for h in bad)} is not a host name "
                "(give names like study.example.org or *.example.org, no scheme, port or path)"
            )
        return self

    def trusted_host_names(self) -> tuple[str, ...]:
        """`trusted_hosts` as a list: trimmed, lower-case, empty entries left out."""
        return tuple(h for h in (p.strip().lower() for p in self.trusted_hosts.split(",")) if h)

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


def stored_secret_key(home: Path) -> str:
    """The key kept in `home/secret_key`, created once (mode 600) when there is none.

    A key that changed between restarts would end every console login and change the
    pseudonymised participant ids of exports, so it is generated once and reused. Several
    workers may start at once: the file appears complete or not at all (a hard link of a
    finished temporary file), and whoever comes second reads the first one's key.
    """
    path = home / SECRET_KEY_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        tmp = home / f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_urlsafe(48) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text(encoding="utf-8").strip()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment.

    Outside `prod`, without `PSYCHVIS_SECRET_KEY` the key is the one kept in the data folder
    (`stored_secret_key`); `prod` refuses to start without a configured key.
    """
    settings = Settings()
    if settings.env != "prod" and "secret_key" not in settings.model_fields_set:
        key = SecretStr(stored_secret_key(settings.home))
        settings = settings.model_copy(update={"secret_key": key})
    return settings
