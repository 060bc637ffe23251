"""Browser-side defences set by the app itself (so they hold without nginx): security headers,
the Content-Security-Policy and the allowed Host names."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HSTS = "max-age=31536000; includeSubDomains"
PARTICIPANT_PREFIXES = ("/s/", "/p/")
MTURK_FRAMERS = "https://www.mturk.com https://workersandbox.mturk.com"
"""MTurk shows an ExternalQuestion HIT (our participant pages) in an iframe on these origins."""


def content_security_policy(script_hashes: list[str], frame_ancestors: str = "'none'") -> str:
    """No inline script or style except the hashed ones; nothing from elsewhere; framing only
    by `frame_ancestors`.

    Stimulus images are same-origin (`/img/...`); data: and blob: images cover the favicon and
    images the browser decodes itself.
    """
    scripts = " ".join(["'self'", *script_hashes])
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {scripts}",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            f"frame-ancestors {frame_ancestors}",
        ]
    )


class SecurityHeadersMiddleware:
    """Add the CSP, nosniff, no framing, no referrers and (on https) HSTS to every response.

    Participant pages may be framed by MTurk only (its ExternalQuestion HITs); everything else,
    the console above all, by nobody (`X-Frame-Options: DENY` for older browsers too).

    `script_hashes()` gives the CSP hashes of the inline scripts the pages hold (the task page's
    import map); it is asked for each HTML response because its text follows the static files'
    versions.
    """

    def __init__(
        self, app: ASGIApp, *, https: bool, script_hashes: Callable[[], list[str]]
    ) -> None:
        self.app = app
        self.https = https
        self.script_hashes = script_hashes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        participant_page = scope["path"].startswith(PARTICIPANT_PREFIXES)
        framers = MTURK_FRAMERS if participant_page else "'none'"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                if not participant_page:
                    headers.setdefault("X-Frame-Options", "DENY")
                # Participant links carry their token in the path and platform ids in the
                # query: no page may pass them on; the console gains nothing from referrers.
                headers.setdefault("Referrer-Policy", "no-referrer")
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault(
                        "Content-Security-Policy",
                        content_security_policy(self.script_hashes(), framers),
                    )
                else:
                    headers.setdefault(
                        "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"
                    )
                if self.https:
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def allowed_hosts(base_url: str, extra: Iterable[str] = ()) -> list[str]:
    """The Host names a production server answers: the public one of `base_url`, the local
    names its own health check uses, and `extra` (`PSYCHVIS_TRUSTED_HOSTS`)."""
    host = urlsplit(base_url).hostname or "localhost"
    return sorted({host, "localhost", "127.0.0.1", *extra})
