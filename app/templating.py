"""The Jinja2 environment: templates from settings, `static_url` with content-hash cache busting."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from fastapi.templating import Jinja2Templates


@lru_cache(maxsize=512)
def _file_version(path: Path, mtime_ns: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def make_templates(templates_dir: Path, static_dir: Path) -> Jinja2Templates:
    """Build the template environment (autoescaping on) with the `static_url` global."""
    templates = Jinja2Templates(directory=str(templates_dir))

    def static_url(name: str) -> str:
        path = static_dir / name
        try:
            version = _file_version(path, path.stat().st_mtime_ns)
        except FileNotFoundError:
            return f"/static/{name}"
        return f"/static/{name}?v={version}"

    templates.env.globals["static_url"] = static_url
    return templates
