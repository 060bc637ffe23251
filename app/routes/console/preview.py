"""The schedule preview: what participant N of an experiment would see, trial by trial."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.routes.console.render import page
from app.routes.deps import ExperimenterDep, SessionDep, TemplatesDep
from app.services import auth
from app.services import experiments as experiment_service

router = APIRouter()

PREVIEW_MAX_PARTICIPANT = 100_000


@router.get("/experiments/{slug}/preview", response_class=HTMLResponse)
def experiment_preview(
    request: Request,
    slug: str,
    user: ExperimenterDep,
    session: SessionDep,
    templates: TemplatesDep,
    participant: Annotated[int, Query(ge=1, le=PREVIEW_MAX_PARTICIPANT)] = 1,
) -> Response:
    """Participant N's schedule (as balanced assignment would give it)."""
    experiment = auth.experiment_for(session, user, slug)
    preview = experiment_service.preview_schedule(experiment, participant)
    return page(
        request,
        templates,
        "preview.html",
        {
            "experiment": experiment,
            "number": participant,
            "schedule": preview.schedule,
            "rows": preview.rows,
            "text": preview.text,
        },
        user,
    )
