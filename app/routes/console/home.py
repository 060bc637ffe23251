"""The console's home page: the experiments this user may see, with participant counts."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.routes.console.render import page
from app.routes.deps import ExperimenterDep, SessionDep, TemplatesDep
from app.services import auth, monitor

router = APIRouter()


@router.get("", response_class=HTMLResponse)
def home(
    request: Request, user: ExperimenterDep, session: SessionDep, templates: TemplatesDep
) -> Response:
    """The experiments this user may see."""
    experiments = auth.visible_experiments(session, user)
    counts = monitor.participant_counts(session, [e.id for e in experiments])
    return page(
        request,
        templates,
        "home.html",
        {"experiments": experiments, "counts": counts},
        user,
    )
