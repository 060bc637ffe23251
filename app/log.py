"""Logging setup: `configure_logging` is called only by main.create_app and the CLI."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event and the `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


# Path segments that identify a participant (tokens) or reveal which image a trial shows.
_SECRET_SEGMENTS = (
    (re.compile(r"^/api/p/[^/?]+"), "/api/p/{token}"),
    (re.compile(r"^/p/[^/?]+"), "/p/{token}"),
    (re.compile(r"^/img/[^/?]+"), "/img/{name}"),
)


def redacted_path(path: str) -> str:
    """A request path fit for a log: no query string (platform ids), no tokens."""
    path = path.split("?", 1)[0]
    for pattern, template in _SECRET_SEGMENTS:
        path = pattern.sub(template, path, count=1)
    return path


class AccessLogRedaction(logging.Filter):
    """Rewrite uvicorn's access lines: route templates instead of tokens, no query strings
    (PROLIFIC_PID, workerId), no client address (docs/deploy.md, logs). A participant's GDPR
    deletion then leaves nothing of theirs in these logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            _, method, path, version, status = args
            record.args = ("-", method, redacted_path(str(path)), version, status)
        return True


def configure_logging(level: str = "INFO", json_lines: bool = False) -> None:
    """Install one stderr handler on the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_psychvis", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._psychvis = True  # type: ignore[attr-defined]
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogRedaction) for f in access.filters):
        access.addFilter(AccessLogRedaction())
