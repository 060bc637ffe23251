"""The Jinja2 environment: templates from settings, `static_url` with content-hash cache busting."""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from pathlib import Path

from fastapi.templating import Jinja2Templates
from markupsafe import Markup

RUNNER_MODULES = (
    "trial.js",
    "api.js",
    "preloader.js",
    "fit.js",
    "input.js",
    "timing.js",
    "timers.js",
)
"""The task page's ES modules outside static/tasks/: the runner (static/trial.js) and the
helpers it and the trial types share; the types' modules are found on disk (`task_modules`)."""


@lru_cache(maxsize=512)
def _file_version(path: Path, mtime_ns: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def static_url(static_dir: Path, name: str) -> str:
    """`/static/<name>?v=<content hash>`: a new URL whenever the file changes."""
    path = static_dir / name
    try:
        version = _file_version(path, path.stat().st_mtime_ns)
    except FileNotFoundError:
        return f"/static/{name}"
    return f"/static/{name}?v={version}"


@lru_cache(maxsize=8)
def _trial_type_modules(static_dir: Path) -> tuple[str, ...]:
    return tuple(
        sorted(p.relative_to(static_dir).as_posix() for p in static_dir.glob("tasks/**/*.js"))
    )


def task_modules(static_dir: Path) -> tuple[str, ...]:
    """Every ES module of the task page, relative to `static_dir`: the runner's and those of the
    trial types (static/tasks/, read once per process), so a new type needs no entry here.
    templates/participant/task.html preloads them and the import map versions them."""
    return RUNNER_MODULES + _trial_type_modules(static_dir)


def import_map(static_dir: Path) -> str:
    """The task page's import map, exactly as the page holds it (its hash goes into the CSP)."""
    urls = {f"/static/{name}": static_url(static_dir, name) for name in task_modules(static_dir)}
    # No "<" can occur in these URLs; escaped anyway so the text can never end the element.
    return json.dumps({"imports": urls}, separators=(",", ":")).replace("<", "\\u003c")


def script_hash(text: str) -> str:
    """The CSP source (`'sha256-…'`) that allows one inline script of exactly this text."""
    digest = hashlib.sha256(text.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def make_templates(templates_dir: Path, static_dir: Path) -> Jinja2Templates:
    """Build the template environment (autoescaping on) with the globals `static_url`,
    `import_map` and `task_modules`."""
    templates = Jinja2Templates(directory=str(templates_dir))
    templates.env.globals["static_url"] = lambda name: static_url(static_dir, name)
    templates.env.globals["import_map"] = lambda: Markup(import_map(static_dir))  # noqa: S704
    templates.env.globals["task_modules"] = lambda: task_modules(static_dir)
    return templates
