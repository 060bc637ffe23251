"""The audit log (admins only): the most recent entries."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.routes.console.render import page
from app.routes.deps import AdminDep, SessionDep, TemplatesDep
from app.services import audit

router = APIRouter()


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request, user: AdminDep, session: SessionDep, templates: TemplatesDep
) -> Response:
    """The most recent audit log entries (admins only)."""
    return page(request, templates, "audit.html", {"entries": audit.recent_entries(session)}, user)
