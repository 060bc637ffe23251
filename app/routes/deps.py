"""Annotated dependency aliases for routes: SessionDep, SettingsDep, TemplatesDep, `in_one_hop`,
LoginDep/ExperimenterDep/AdminDep (the signed session cookie, checked against the server-side
login record) and CSRF checks."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Request, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload
from starlette.concurrency import run_in_threadpool

from app.config import Settings
from app.db import utc_now
from app.errors import (
    AppError,
    Conflict,
    DesignInvalid,
    Forbidden,
    InvalidInput,
    ManifestInvalid,
    NotAuthenticated,
    NotFound,
    SessionUnavailable,
    TooManyAttempts,
    UnsupportedMediaType,
)
from app.models import DashboardLogin, Participant, User
from app.ratelimit import RateLimiter
from app.services import auth

TOKEN_MAX_LEN = 64
T = TypeVar("T")


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request; write routes commit once, before building the response.

    An async generator: creating a Session does no I/O, and neither does closing one whose
    transaction has ended, so both happen on the event loop. A sync generator cost two
    thread-pool hops per request (enter and exit), each ~0.5 ms of CPU on the benchmark machine
    (bench/NOTES.md). A session still in a transaction (a read route, an error
    before commit) is closed on the thread pool, shielded so a client's disconnect cannot leave
    its connection checked out.
    """
    session = request.app.state.sessionmaker()
    try:
        yield session
    finally:
        if session.in_transaction():
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(session.close)
        else:
            session.close()


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_templates(request: Request) -> Jinja2Templates:
    templates: Jinja2Templates = request.app.state.templates
    return templates


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]


async def in_one_hop(session: Session, work: Callable[[], T]) -> T:
    """Run a route's database work on the thread pool in one hop and end its transaction there.

    A sync route with sync dependencies took four or five hops (session, participant, endpoint,
    teardown), ~0.5 ms of CPU each on the benchmark machine: more than the route's own SQL.
    `work` commits what it writes itself; a transaction it leaves open (it only read) is
    committed here, in the same hop, so closing the session afterwards needs none. On an error
    nothing is committed: `get_session` rolls back.
    """

    def run() -> T:
        result = work()
        session.commit()
        return result

    return await run_in_threadpool(run)


def check_token(token: str) -> None:
    """Refuse tokens that cannot exist before they reach the database."""
    # A NUL byte cannot be stored in a Postgres text value: the query would fail with a 500.
    if len(token) > TOKEN_MAX_LEN or "\x00" in token:
        raise NotFound("unknown participant link")


def participant_by_token(session: Session, token: str) -> Participant:
    """The participant of a token (with session and experiment in one query), or NotFound."""
    check_token(token)
    participant = session.scalar(
        select(Participant)
        .options(joinedload(Participant.experiment_session), joinedload(Participant.experiment))
        .where(Participant.token == token)
    )
    if participant is None:
        raise NotFound("unknown participant link")
    return participant


async def read_body(request: Request) -> bytes:
    """The raw body of a JSON (or sendBeacon text/plain) request, size-limited by middleware."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/json", "text/plain", ""):
        raise UnsupportedMediaType(
            f"unsupported content type {content_type!r}; send application/json"
        )
    return await request.body()


BodyDep = Annotated[bytes, Depends(read_body)]


# --- dashboard login: a signed, HttpOnly session cookie naming a server-side login ----------------

SESSION_COOKIE = "psychvis_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_COOKIE_SALT = "psychvis.dashboard.session"


@dataclass
class WebSession:
    """The dashboard cookie's content: CSRF token and, once logged in, the user, a fingerprint
    of their password and the token of their `dashboard_login` row."""

    csrf: str
    user_id: int | None = None
    password_tag: str | None = None
    login_token: str | None = None
    changed: bool = False
    """Must be (re)sent with the response (new visitor, login)."""


def password_tag(user: User) -> str:
    """Short fingerprint of the password hash: changing the password ends existing logins."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key.get_secret_value(), salt=_COOKIE_SALT)


def web_session(request: Request) -> WebSession:
    """The request's dashboard session from its cookie, or a new anonymous one (cached)."""
    cached: WebSession | None = getattr(request.state, "web_session", None)
    if cached is not None:
        return cached
    settings: Settings = request.app.state.settings
    found: WebSession | None = None
    raw = request.cookies.get(SESSION_COOKIE)
    if raw:
        try:
            data: Any = _serializer(settings).loads(raw, max_age=settings.session_max_age_s)
        except BadSignature:
            data = None
        if isinstance(data, dict) and isinstance(data.get("csrf"), str):
            uid, pw, lid = data.get("uid"), data.get("pw"), data.get("lid")
            found = WebSession(
                csrf=data["csrf"],
                user_id=uid if isinstance(uid, int) else None,
                password_tag=pw if isinstance(pw, str) else None,
                login_token=lid if isinstance(lid, str) else None,
            )
    if found is None:
        found = WebSession(csrf=secrets.token_urlsafe(32), changed=True)
    request.state.web_session = found
    return found


def login_session(request: Request, user: User, login_token: str) -> WebSession:
    """Start a logged-in session: new CSRF token (no fixation), user id, password fingerprint
    and the token of the login row (`auth.start_login`)."""
    session = WebSession(
        csrf=secrets.token_urlsafe(32),
        user_id=user.id,
        password_tag=password_tag(user),
        login_token=login_token,
        changed=True,
    )
    request.state.web_session = session
    return session


def save_web_session(request: Request, response: Response) -> None:
    """Send the session cookie if it changed: HttpOnly, SameSite=Lax, Secure over HTTPS."""
    session = web_session(request)
    if not session.changed:
        return
    settings: Settings = request.app.state.settings
    value = _serializer(settings).dumps(
        {
            "csrf": session.csrf,
            "uid": session.user_id,
            "pw": session.password_tag,
            "lid": session.login_token,
        }
    )
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=settings.session_max_age_s,
        path="/dashboard",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https" or settings.base_url.startswith("https://"),
    )


def clear_web_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/dashboard")


def get_login(request: Request, session: SessionDep) -> DashboardLogin:
    """The request's dashboard login (its user loaded), checked against the `dashboard_login` row.

    Raises:
        NotAuthenticated: no valid login: missing, forged or expired cookie; a login that is
            unknown or revoked (logout, password change, deactivation, "sign out other
            sessions"); an inactive account; or a password changed since.
    """
    current = web_session(request)
    if current.user_id is None or current.login_token is None:
        raise NotAuthenticated("please log in")
    settings: Settings = request.app.state.settings
    now = utc_now()
    login = auth.find_login(
        session, current.login_token, max_age_s=settings.session_max_age_s, now=now
    )
    if (
        login is None
        or login.user_id != current.user_id
        or not login.user.active
        or current.password_tag is None
        or not hmac.compare_digest(current.password_tag, password_tag(login.user))
    ):
        raise NotAuthenticated("please log in again")
    if auth.touch_login(login, now):
        # At most one write a minute per login; committed here because read routes never commit.
        session.commit()
    return login


LoginDep = Annotated[DashboardLogin, Depends(get_login)]


def get_experimenter(login: LoginDep) -> User:
    """The logged-in dashboard user (experimenter or admin); see `get_login`."""
    return login.user


ExperimenterDep = Annotated[User, Depends(get_experimenter)]


def get_admin(user: ExperimenterDep) -> User:
    if user.role != "admin":
        raise Forbidden("only admins may do this")
    return user


AdminDep = Annotated[User, Depends(get_admin)]


async def verify_csrf(request: Request) -> None:
    """Check the form field (or header) against the session's CSRF token (synchronizer token).

    Raises:
        Forbidden: missing or wrong token.
    """
    token: Any = request.headers.get(CSRF_HEADER)
    if token is None:
        form = await request.form()
        token = form.get(CSRF_FIELD)
    current = web_session(request)
    if (
        current.changed
        or not isinstance(token, str)
        or not hmac.compare_digest(token.encode(), current.csrf.encode())
    ):
        raise Forbidden("the form has expired or did not come from this site; reload the page")


CsrfDep = Depends(verify_csrf)


async def get_experimenter_posting(request: Request, user: ExperimenterDep) -> User:
    """The logged-in user of a state-changing request, after the CSRF check (401 before 403)."""
    await verify_csrf(request)
    return user


async def get_admin_posting(request: Request, user: AdminDep) -> User:
    await verify_csrf(request)
    return user


ExperimenterPostDep = Annotated[User, Depends(get_experimenter_posting)]
AdminPostDep = Annotated[User, Depends(get_admin_posting)]


# Domain errors -> HTTP statuses: the one mapping the handlers and the form pages share.
STATUS_BY_ERROR: list[tuple[type[AppError], int]] = [
    (NotFound, 404),
    (NotAuthenticated, 401),
    (Forbidden, 403),
    (TooManyAttempts, 429),
    (Conflict, 409),
    (SessionUnavailable, 410),
    (UnsupportedMediaType, 415),
    (ManifestInvalid, 422),
    (DesignInvalid, 422),
    (InvalidInput, 422),
]


def status_for(exc: AppError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 400


def enrol_allowed(request: Request) -> None:
    """Count an enrolment for the client's address; TooManyAttempts (429) over the limit.

    The address is uvicorn's client address, which behind nginx is the one nginx saw
    (docs/deploy.md, "Client addresses").
    """
    limiter: RateLimiter = request.app.state.enrol_limiter
    address = request.client.host if request.client is not None else "unknown"
    if not limiter.allow(address):
        raise TooManyAttempts(
            "Too many starts from this address; please try again later.",
            retry_after_s=int(limiter.window_s),
        )
