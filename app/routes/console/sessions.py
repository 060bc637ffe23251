"""An experiment's sessions (participant links): launch, pause/resume/close, and the
experimenter's own test-mode run."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from app.errors import InvalidInput
from app.routes.console.render import see_other
from app.routes.deps import ExperimenterPostDep, SessionDep
from app.services import audit, auth
from app.services import experiments as experiment_service
from app.services import participants as participant_service

router = APIRouter()


@router.post("/experiments/{slug}/try")
def experiment_try(
    request: Request, slug: str, user: ExperimenterPostDep, session: SessionDep
) -> Response:
    """Take part in test mode (flagged, left out of counts and exports) and go to /p/<token>."""
    experiment = auth.experiment_for(session, user, slug)
    launched = experiment_service.test_session(session, experiment)
    participant, _ = participant_service.enrol(
        session, launched, {}, user_agent=request.headers.get("user-agent"), test_mode=True
    )
    audit.record(session, user, "experiment.try", experiment=experiment, target=launched.link_code)
    session.commit()
    return see_other(f"/p/{participant.token}")


@router.post("/experiments/{slug}/sessions")
async def session_launch(
    request: Request, slug: str, user: ExperimenterPostDep, session: SessionDep
) -> Response:
    """Launch a session with platform settings (completion codes/URLs per outcome)."""
    experiment = auth.experiment_for(session, user, slug)
    form = await request.form()

    def text(key: str, limit: int = 500) -> str:
        return str(form.get(key) or "").strip()[:limit]

    platform, mturk_sandbox = experiment_service.launch_platform(
        text("platform"), form.get("mturk_mode") == "sandbox"
    )
    outcomes = experiment_service.given_outcomes(
        platform,
        {o: (text(f"{o}_code", 64), text(f"{o}_url")) for o in experiment_service.OUTCOMES},
    )
    max_text = text("max_participants", 9)
    if max_text and not max_text.isdigit():
        raise InvalidInput("the participant limit must be a whole number")
    launched = experiment_service.launch_session(
        session,
        experiment,
        platform=platform,
        completion_code=text("completed_code", 64) or None,
        outcomes=outcomes,
        max_participants=int(max_text) if max_text else None,
        mturk_sandbox=mturk_sandbox,
        label=text("label", 200),
    )
    audit.record(session, user, "session.launch", experiment=experiment, target=launched.link_code)
    session.commit()
    return see_other(f"/dashboard/experiments/{experiment.slug}")


@router.post("/experiments/{slug}/sessions/{link_code}/status")
def session_status(
    slug: str,
    link_code: str,
    user: ExperimenterPostDep,
    session: SessionDep,
    status: Annotated[str, Form(pattern="^(open|paused|closed)$")],
) -> Response:
    """Pause, resume (open) or close a session."""
    experiment = auth.experiment_for(session, user, slug)
    launched = experiment_service.session_in(session, experiment, link_code)
    experiment_service.set_session_status(launched, status)  # type: ignore[arg-type]
    audit.record(
        session, user, f"session.{status}", experiment=experiment, target=launched.link_code
    )
    session.commit()
    return see_other(f"/dashboard/experiments/{experiment.slug}")
