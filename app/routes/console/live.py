"""The live numbers of an experiment as JSON, polled by static/dashboard.js."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.routes.deps import ExperimenterDep, SessionDep, SettingsDep
from app.services import auth, monitor

router = APIRouter()


@router.get("/api/experiments/{slug}/live")
def live(slug: str, user: ExperimenterDep, session: SessionDep, settings: SettingsDep) -> Any:
    """Live numbers of an experiment (polled by static/dashboard.js)."""
    experiment = auth.experiment_for(session, user, slug)
    return monitor.live_summary(
        session, experiment, inactivity_timeout_s=settings.inactivity_timeout_s
    )
