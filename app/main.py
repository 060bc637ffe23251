"""create_app(settings) -> FastAPI: engine, routers, static files, error handlers, middleware."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.admission import PrioritySemaphore
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.errors import (
    AppError,
    NotAuthenticated,
)
from app.log import configure_logging
from app.migrate import assert_schema_current
from app.ratelimit import RateLimiter
from app.routes import console, images, participant
from app.routes.deps import status_for
from app.security import SecurityHeadersMiddleware, allowed_hosts
from app.templating import import_map, make_templates, script_hash

logger = logging.getLogger(__name__)

ANSWER_PATH = re.compile(r"/api/p/([A-Za-z0-9_-]{1,64})/responses")
"""The answer route: admitted before anything else that waits (AdmissionLimitMiddleware)."""


async def send_json(send: Send, data: bytes, status: int = 200) -> None:
    """A complete JSON response written straight to ASGI (no Starlette Response object)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith(("/api/", "/img/", "/dashboard/api/")) or path.endswith(".json")


class BodyLimitMiddleware:
    """Refuse request bodies over a limit with 413, counting bytes as they arrive."""

    def __init__(self, app: ASGIApp, max_api_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_api_bytes = max_api_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.max_upload_bytes if path.startswith("/dashboard") else self.max_api_bytes
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = True
            if too_big:
                await _send_413(send, limit)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await _send_413(send, limit)


class _BodyTooLarge(Exception):
    pass


async def _send_413(send: Send, limit: int) -> None:
    body = f'{{"code":"payload_too_large","detail":"request body over {limit} bytes"}}'
    await send_json(send, body.encode(), status=413)


class ServerTimingMiddleware:
    """Add `Server-Timing: app;dur=<ms>`: time spent in the app (excludes socket queueing)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                dur = (time.perf_counter() - start) * 1000
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={dur:.2f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed_send)


class AdmissionLimitMiddleware:
    """Let at most `limit` requests that may use the database into the app at once.

    Sync routes hold a pooled connection across several threadpool hops (dependencies, endpoint,
    teardown). With more requests in flight than pooled connections, threads holding threadpool
    tokens wait for connections held by requests that wait for tokens: a deadlock that only the
    pool timeout breaks (found by bench/load at 60 participants per worker). Admitting no more
    such requests than the pool has connections lets every admitted one get a connection at once;
    the others wait here, in the event loop, holding nothing. Static files and images pass.

    Participant requests are also limited on their own (`participant_limit`, at most `limit`):
    a few at once keep a worker busy, more only contend for the GIL; slow experimenter requests
    (exports) cannot take the participants' places. Answers are urgent: they are admitted
    before the
    waiting landing pages, enrolments and other pages (`app.admission`), so that a study's
    arrival does not hold up the trials of those who started.
    """

    def __init__(self, app: ASGIApp, limit: int, participant_limit: int | None = None) -> None:
        self.app = app
        self.limit = limit
        self.participant_limit = min(participant_limit or limit, limit)
        self._semaphore = PrioritySemaphore(self.limit)
        self._participant_semaphore = PrioritySemaphore(self.participant_limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(UNLIMITED_PREFIXES):
            await self.app(scope, receive, send)
            return
        participant = path.startswith(PARTICIPANT_PREFIXES)
        urgent = scope.get("method") == "POST" and ANSWER_PATH.fullmatch(path) is not None
        if participant:
            await self._participant_semaphore.acquire(urgent=urgent)
        try:
            await self._semaphore.acquire(urgent=urgent)
            try:
                await self.app(scope, receive, send)
            finally:
                self._semaphore.release()
        finally:
            if participant:
                self._participant_semaphore.release()


UNLIMITED_PREFIXES = ("/static/", "/img/", "/healthz")
PARTICIPANT_PREFIXES = ("/api/p/", "/p/", "/s/")


class CachedStaticFiles(StaticFiles):
    """Static files; versioned URLs (?v=hash from static_url) are cached for a year."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def _error_response(request: Request, status: int, code: str, detail: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"code": code, "detail": detail}, status_code=status)
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(
        request,
        "error.html",
        {"status": status, "code": code, "detail": detail},
        status_code=status,
    )


def create_app(settings: Settings) -> FastAPI:
    """Build the application for `settings` (the only place that wires everything together)."""
    configure_logging(settings.log_level, settings.log_json)
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
    # The one-statement answer path's own connections: autocommit, no pre-ping (it retries).
    answer_engine = (
        make_engine(
            settings.database_url,
            pool_size=settings.participant_concurrency,
            pre_ping=False,
            generic_plans=True,
        )
        if engine.dialect.name == "postgresql"
        else None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.check_schema:
            assert_schema_current(engine)
        yield
        engine.dispose()
        if answer_engine is not None:
            answer_engine.dispose()

    app = FastAPI(
        title="psychvis",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/api/docs" if settings.env != "prod" else None,
        redoc_url=None,
        # The schema maps every endpoint and field: development and tests only.
        openapi_url="/api/openapi.json" if settings.env != "prod" else None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.answer_engine = answer_engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.templates = make_templates(settings.templates_dir, settings.static_dir)
    app.state.enrol_limiter = RateLimiter(settings.enrol_rate_limit, settings.enrol_rate_window_s)

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        if (
            isinstance(exc, NotAuthenticated)
            and request.method == "GET"
            and not _wants_json(request)
            and "/export/" not in request.url.path
        ):
            # Dashboard pages send people to the login form; data routes answer 401.
            return RedirectResponse(
                "/dashboard/login?" + urlencode({"next": request.url.path}), status_code=303
            )
        return _error_response(request, status_for(exc), exc.code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        return _error_response(request, 422, "invalid_input", detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error_response(request, exc.status_code, code, str(exc.detail))

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, exc: DataError) -> Response:
        # Input the database refuses as a value (e.g. a NUL byte in Postgres text): the
        # client's fault, rolled back with the session; not an internal error.
        logger.warning("unstorable input", extra={"path": request.url.path})
        return _error_response(
            request, 422, "invalid_input", "the request holds a value that cannot be stored"
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error", extra={"path": request.url.path})
        return _error_response(request, 500, "internal_error", "Something went wrong on our side.")

    app.include_router(participant.pages)
    app.include_router(participant.api)
    app.include_router(images.router)
    app.include_router(console.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        # Browsers ask for /favicon.ico where a page names no icon (JSON, images).
        return RedirectResponse("/static/favicon.svg", status_code=301)

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    def index(request: Request) -> Response:
        templates: Jinja2Templates = app.state.templates
        return templates.TemplateResponse(request, "index.html", {})

    app.mount("/static", CachedStaticFiles(directory=str(settings.static_dir)), name="static")
    # Innermost first (each add_middleware wraps what came before): the admission limit in front
    # of the routes, the body limit, Server-Timing outermost of ours.
    # make_engine's pool holds pool_size + max_overflow = 2 * db_pool_size connections.
    app.add_middleware(
        AdmissionLimitMiddleware,
        limit=2 * settings.db_pool_size,
        participant_limit=settings.participant_concurrency,
    )
    app.add_middleware(
        BodyLimitMiddleware,
        max_api_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    # Measures each request from here on, the admission queue included.
    app.add_middleware(ServerTimingMiddleware)
    app.add_middleware(
        SecurityHeadersMiddleware,
        https=settings.base_url.startswith("https://"),
        script_hashes=lambda: [script_hash(import_map(settings.static_dir))],
    )
    if settings.env == "prod":
        # A forged Host would otherwise end up in redirects (trailing slash) and absolute links.
        app.add_middleware(
            TrustedHostMiddleware,
            allowed_hosts=allowed_hosts(settings.base_url, settings.trusted_host_names()),
        )
    return app
