"""Accounts (admins only): the list, creating one, deactivating and reactivating."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from app.errors import AppError, InvalidInput
from app.routes.console.render import page, see_other
from app.routes.deps import AdminDep, AdminPostDep, SessionDep, TemplatesDep, status_for
from app.services import audit, auth

router = APIRouter()


@router.get("/users", response_class=HTMLResponse)
def users_page(
    request: Request, user: AdminDep, session: SessionDep, templates: TemplatesDep
) -> Response:
    """Accounts (admins only)."""
    return page(
        request,
        templates,
        "users.html",
        {"users": auth.list_users(session), "error": None},
        user,
    )


@router.post("/users")
def user_create(
    request: Request,
    user: AdminPostDep,
    session: SessionDep,
    templates: TemplatesDep,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1024)],
    role: Annotated[str, Form(pattern="^(admin|experimenter)$")] = "experimenter",
) -> Response:
    """Create an account (admins only)."""
    try:
        created = auth.create_user(session, email, password, role)  # type: ignore[arg-type]
    except AppError as exc:
        session.rollback()
        return page(
            request,
            templates,
            "users.html",
            {"users": auth.list_users(session), "error": exc.detail},
            user,
            status_code=status_for(exc),
        )
    audit.record(session, user, "user.create", target=f"user {created.id}")
    session.commit()
    return see_other("/dashboard/users")


@router.post("/users/{user_id}/active")
def user_active(
    user_id: int,
    user: AdminPostDep,
    session: SessionDep,
    active: Annotated[str, Form(pattern="^(yes|no)$")],
) -> Response:
    """Deactivate (ending its logins) or reactivate an account (admins only; not your own)."""
    target = auth.get_user(session, user_id)
    if target.id == user.id:
        raise InvalidInput("you cannot deactivate your own account")
    revoked = auth.set_active(session, target, active == "yes")
    audit.record(
        session,
        user,
        "user.activate" if target.active else "user.deactivate",
        target=f"user {target.id}",
        details={"logins_revoked": revoked},
    )
    session.commit()
    return see_other("/dashboard/users")
