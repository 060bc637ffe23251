"""What every console page does: render a `dashboard/` template with the user and the CSRF
token (saving the signed session cookie), and send a form post on with 303 See Other."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from app.models import User
from app.routes.deps import CSRF_FIELD, save_web_session, web_session


def page(
    request: Request,
    templates: Jinja2Templates,
    name: str,
    context: dict[str, Any],
    user: User | None,
    status_code: int = 200,
) -> Response:
    """Render `dashboard/<name>` with `user`, `csrf_token` and `csrf_field` added."""
    current = web_session(request)
    response: Response = templates.TemplateResponse(
        request,
        f"dashboard/{name}",
        {**context, "user": user, "csrf_token": current.csrf, "csrf_field": CSRF_FIELD},
        status_code=status_code,
    )
    save_web_session(request, response)
    return response


def see_other(url: str) -> RedirectResponse:
    """Redirect after a form post (the browser then GETs `url`)."""
    return RedirectResponse(url, status_code=303)
