"""Console login (throttled) and logout: /dashboard/login, /dashboard/logout."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.errors import TooManyAttempts
from app.routes.console.render import page, see_other
from app.routes.deps import (
    ExperimenterPostDep,
    LoginDep,
    SessionDep,
    TemplatesDep,
    clear_web_session,
    login_session,
    save_web_session,
    verify_csrf,
)
from app.services import audit, auth

router = APIRouter()


def _safe_next(target: str | None) -> str:
    # Only local dashboard paths: no open redirect through ?next=.
    if target and target.startswith("/dashboard") and "//" not in target and "\\" not in target:
        return target
    return "/dashboard"


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, templates: TemplatesDep, next: str | None = None) -> Response:
    """The login form."""
    return page(request, templates, "login.html", {"next": _safe_next(next), "error": None}, None)


@router.post("/login")
async def login(request: Request, session: SessionDep, templates: TemplatesDep) -> Response:
    """Check credentials (throttled), start a signed session, go on to the dashboard."""
    await verify_csrf(request)
    form = await request.form()
    email = str(form.get("email") or "")[:254]
    password = str(form.get("password") or "")[:1024]
    target = _safe_next(str(form.get("next") or ""))
    settings = request.app.state.settings
    policy = auth.ThrottlePolicy(settings.login_max_failures, settings.login_window_s)
    try:
        user = auth.authenticate(session, email, password, _client_address(request), policy=policy)
    except TooManyAttempts as exc:
        response = page(
            request,
            templates,
            "login.html",
            {"next": target, "error": exc.detail},
            None,
            status_code=429,
        )
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    if user is None:
        session.commit()  # the failed attempt counts towards throttling
        return page(
            request,
            templates,
            "login.html",
            {"next": target, "error": "Wrong email or password."},
            None,
            status_code=401,
        )
    started, token = auth.start_login(
        session,
        user,
        user_agent=request.headers.get("user-agent"),
        address=_client_address(request),
        max_age_s=settings.session_max_age_s,
    )
    audit.record(session, user, "user.login", target=f"login {started.id}")
    session.commit()
    login_session(request, user, token)
    response = see_other(target)
    save_web_session(request, response)
    return response


@router.post("/logout")
def logout(user: ExperimenterPostDep, login: LoginDep, session: SessionDep) -> Response:
    """End the dashboard session: the login is revoked on the server, the cookie deleted."""
    auth.revoke_login(session, login)
    audit.record(session, user, "user.logout", target=f"login {login.id}")
    session.commit()
    response = see_other("/dashboard/login")
    clear_web_session(response)
    return response
