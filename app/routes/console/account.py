"""The current user's own account: active logins and "sign out other sessions"."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.routes.console.render import page, see_other
from app.routes.deps import ExperimenterPostDep, LoginDep, SessionDep, SettingsDep, TemplatesDep
from app.services import audit, auth

router = APIRouter()


@router.get("/account", response_class=HTMLResponse)
def account_page(
    request: Request,
    login: LoginDep,
    session: SessionDep,
    templates: TemplatesDep,
    settings: SettingsDep,
) -> Response:
    """The current user's active logins (browsers signed in), with "sign out other sessions"."""
    user = login.user
    logins = auth.active_logins(session, user, max_age_s=settings.session_max_age_s)
    return page(
        request,
        templates,
        "account.html",
        {
            "logins": logins,
            "current_login_id": login.id,
            "session_max_age_s": settings.session_max_age_s,
        },
        user,
    )


@router.post("/account/sign-out-others")
def sign_out_others(user: ExperimenterPostDep, login: LoginDep, session: SessionDep) -> Response:
    """Revoke every other login of the current user (other browsers, stolen cookies)."""
    revoked = auth.revoke_logins(session, user, keep=login)
    audit.record(
        session,
        user,
        "user.sign_out_others",
        target=f"user {user.id}",
        details={"logins_revoked": revoked},
    )
    session.commit()
    return see_other("/dashboard/account")
