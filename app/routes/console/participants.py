"""An experiment's participants: the list, one participant's record, GDPR deletion."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.config import Settings
from app.db import utc_now
from app.errors import InvalidInput
from app.routes.console.render import page, see_other
from app.routes.deps import (
    ExperimenterDep,
    ExperimenterPostDep,
    SessionDep,
    SettingsDep,
    TemplatesDep,
)
from app.services import audit, auth, roster
from app.services.export import participant_label

router = APIRouter()

PARTICIPANTS_PAGE = 200


def _cutoff(settings: Settings) -> datetime:
    # Unfinished participants not seen since then count as returned (timed out).
    return utc_now() - timedelta(seconds=settings.inactivity_timeout_s)


@router.get("/experiments/{slug}/participants", response_class=HTMLResponse)
def participants_page(
    request: Request,
    slug: str,
    user: ExperimenterDep,
    session: SessionDep,
    templates: TemplatesDep,
    settings: SettingsDep,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """Participants of an experiment (test-mode ones flagged), a page at a time."""
    experiment = auth.experiment_for(session, user, slug)
    rows = roster.roster_page(
        session, experiment, cutoff=_cutoff(settings), offset=offset, limit=PARTICIPANTS_PAGE
    )
    return page(
        request,
        templates,
        "participants.html",
        {"experiment": experiment, "rows": rows, "offset": offset, "page": PARTICIPANTS_PAGE},
        user,
    )


@router.get("/experiments/{slug}/participants/{number}", response_class=HTMLResponse)
def participant_page(
    request: Request,
    slug: str,
    number: int,
    user: ExperimenterDep,
    session: SessionDep,
    templates: TemplatesDep,
    settings: SettingsDep,
) -> Response:
    """One participant: schedule with answers, exclusion results, browser events."""
    experiment = auth.experiment_for(session, user, slug)
    participant = audit.participant_by_number(session, experiment, number)
    record = roster.participant_record(session, participant, cutoff=_cutoff(settings))
    return page(
        request,
        templates,
        "participant.html",
        {
            "experiment": experiment,
            "participant": participant,
            "label": record.label,
            "status": record.status,
            "condition": record.condition,
            "trials": record.trials,
            "events": record.events,
            "summary": record.summary,
        },
        user,
    )


@router.post("/experiments/{slug}/participants/{number}/delete")
def participant_delete(
    slug: str,
    number: int,
    user: ExperimenterPostDep,
    session: SessionDep,
    confirm: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Delete a participant's data (GDPR request); the audit log records who and when."""
    experiment = auth.experiment_for(session, user, slug)
    participant = audit.participant_by_number(session, experiment, number)
    label = participant_label(participant.participant_number)
    if confirm.strip() != label:
        raise InvalidInput(f"type {label} to confirm the deletion")
    audit.delete_participant(session, user, participant)
    session.commit()
    return see_other(f"/dashboard/experiments/{experiment.slug}/participants")
