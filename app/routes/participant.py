"""Participant pages (landing, consent, instructions, task, done) and the JSON trial API."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.config import Settings
from app.errors import Conflict, InvalidInput
from app.lifecycle import ParticipantStatus
from app.models import Participant
from app.routes.deps import (
    BodyDep,
    SessionDep,
    SettingsDep,
    TemplatesDep,
    check_token,
    enrol_allowed,
    in_one_hop,
    participant_by_token,
)
from app.schemas import (
    CompletionRead,
    ErrorRead,
    EventBatch,
    EventsAck,
    NextRead,
    ResponseAck,
    ResponseSubmit,
)
from app.services import participants as participant_service
from app.services import trials as trial_service
from app.services.answers import submit_answer
from app.services.experiments import design_of, get_session_by_link, trials_per_participant
from app.services.instructions import instruction_facts
from app.tasks.afc2.screen import window_needed_px

logger = logging.getLogger(__name__)
T = TypeVar("T")

SECONDS_PER_TRIAL = 6
"""A rough duration per trial (answer + feedback) for the time estimate on the landing page."""

pages = APIRouter(include_in_schema=False)
# Every error of the JSON API is `{"code", "detail"}`; documenting them lets clients (and the
# schema fuzzer) check error bodies too.
API_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorRead, "description": "Unknown participant token"},
    409: {"model": ErrorRead, "description": "Not the current trial, or answers missing"},
    410: {"model": ErrorRead, "description": "Study paused or closed"},
    413: {"model": ErrorRead, "description": "Body too large"},
    415: {"model": ErrorRead, "description": "Unsupported content type"},
    422: {"model": ErrorRead, "description": "Malformed or out-of-range input"},
}
api = APIRouter(prefix="/api/p/{token}", tags=["participant"], responses=API_ERRORS)

PLATFORM_PARAMS = (
    "PROLIFIC_PID",
    "STUDY_ID",
    "SESSION_ID",
    "workerId",
    "assignmentId",
    "hitId",
    "turkSubmitTo",
)


def _inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace pydantic's local `#/$defs/...` references by the definitions themselves.

    Inside an OpenAPI document `#/...` points at the document's root, where `$defs` does not
    exist: nested models (EventBatch.events) were unresolvable for clients and fuzzers.
    """
    defs: dict[str, Any] = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def _json_body_schema(model: type[Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline_defs(model.model_json_schema())}},
        }
    }


def _parse(model: type[Any], body: bytes) -> Any:
    try:
        return model.model_validate_json(body or b"")
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise InvalidInput(errors) from None


# --- pages --------------------------------------------------------------------------------------


@pages.get("/s/{link_code}", response_class=HTMLResponse)
async def landing(
    request: Request, link_code: str, session: SessionDep, templates: TemplatesDep
) -> Response:
    """Landing page of a study link; enrols nobody (link previews must not use up slots)."""
    params = {k: request.query_params[k] for k in PLATFORM_PARAMS if k in request.query_params}

    def page() -> Response:
        launched = get_session_by_link(session, link_code[:64])
        design = design_of(launched.experiment)
        n_trials = trials_per_participant(launched.experiment)
        return templates.TemplateResponse(
            request,
            "participant/landing.html",
            {
                "design_minutes": max(2, round(n_trials * SECONDS_PER_TRIAL / 60)),
                "window_needed": window_needed_px(design),
                "window_native": window_needed_px(design, 1.0),
                "launched": launched,
                "params": params,
                "preview": participant_service.is_mturk_preview(params),
                "design": design,
                "available": launched.status == "open",
            },
        )

    return await in_one_hop(session, page)


@pages.post("/s/{link_code}/start")
async def start(
    request: Request,
    link_code: str,
    session: SessionDep,
    settings: SettingsDep,
    PROLIFIC_PID: Annotated[str | None, Form(max_length=256)] = None,  # noqa: N803
    STUDY_ID: Annotated[str | None, Form(max_length=256)] = None,  # noqa: N803
    SESSION_ID: Annotated[str | None, Form(max_length=256)] = None,  # noqa: N803
    workerId: Annotated[str | None, Form(max_length=256)] = None,  # noqa: N803
    assignmentId: Annotated[str | None, Form(max_length=256)] = None,  # noqa: N803
    hitId: Annotated[str | None, Form(max_length=256)] = None,  # noqa: N803
    turkSubmitTo: Annotated[str | None, Form(max_length=256)] = None,  # noqa: N803
    screen_w_px: Annotated[int | None, Form(ge=0, le=100_000)] = None,
    screen_h_px: Annotated[int | None, Form(ge=0, le=100_000)] = None,
) -> Response:
    """The start button: enrol (or resume the same platform id), then go to the participant page."""
    params = {
        k: v
        for k, v in {
            "PROLIFIC_PID": PROLIFIC_PID,
            "STUDY_ID": STUDY_ID,
            "SESSION_ID": SESSION_ID,
            "workerId": workerId,
            "assignmentId": assignmentId,
            "hitId": hitId,
            "turkSubmitTo": turkSubmitTo,
        }.items()
        if v
    }

    enrol_allowed(request)

    def enrol() -> str:
        launched = get_session_by_link(session, link_code[:64])
        try:
            participant, _ = participant_service.enrol(
                session,
                launched,
                params,
                user_agent=request.headers.get("user-agent"),
                inactive_after_s=settings.inactivity_timeout_s,
                hold_unconfirmed_s=settings.enrol_hold_unconfirmed_s,
                screen_px=(screen_w_px, screen_h_px)
                if screen_w_px is not None and screen_h_px is not None
                else None,
            )
            session.commit()
        except Conflict:
            # A parallel tab enrolled the same platform id first: resume that enrolment.
            session.rollback()
            participant, _ = participant_service.enrol(session, launched, params)
            session.commit()
        return participant.token

    token = await in_one_hop(session, enrol)
    return RedirectResponse(f"/p/{token}", status_code=303)


@pages.post("/s/{link_code}/screen-too-small", response_class=HTMLResponse)
async def screen_too_small(
    request: Request,
    link_code: str,
    session: SessionDep,
    templates: TemplatesDep,
    screen_w_px: Annotated[int | None, Form(ge=0, le=100_000)] = None,
    screen_h_px: Annotated[int | None, Form(ge=0, le=100_000)] = None,
) -> Response:
    """The screen check failed: nobody is enrolled; show the way back to the platform."""

    def page() -> Response:
        launched = get_session_by_link(session, link_code[:64])
        design = design_of(launched.experiment)
        logger.info(
            "screen too small",
            extra={
                "experiment": launched.experiment.slug,
                "screen_w_px": screen_w_px,
                "screen_h_px": screen_h_px,
            },
        )
        return templates.TemplateResponse(
            request,
            "participant/screen_too_small.html",
            {
                "launched": launched,
                "window_needed": window_needed_px(design),
                "completion": participant_service.screen_too_small_info(launched),
            },
        )

    return await in_one_hop(session, page)


@pages.get("/p/{token}", response_class=HTMLResponse)
async def participant_page(
    request: Request,
    token: str,
    session: SessionDep,
    templates: TemplatesDep,
    settings: SettingsDep,
) -> Response:
    """The participant's current page: consent, instructions, task (trials and ratings), feedback,
    or done."""

    def page() -> Response:
        participant = participant_by_token(session, token)
        return _participant_page(request, session, templates, settings, participant)

    response = await in_one_hop(session, page)
    # What this URL shows changes with every step: a copy from the history or a cache would
    # show a consent already given or a trial already answered.
    response.headers["Cache-Control"] = "no-store"
    return response


def _participant_page(
    request: Request,
    session: Session,
    templates: Jinja2Templates,
    settings: Settings,
    participant: Participant,
) -> Response:
    design = design_of(participant.experiment)
    status = participant.status
    context: dict[str, Any] = {
        "participant": participant,
        "token": participant.token,
        "design": design,
        "test_mode_banner": participant.test_mode,
    }
    if status == ParticipantStatus.ENROLLED:
        return templates.TemplateResponse(request, "participant/consent.html", context)
    if status == ParticipantStatus.DECLINED:
        context["completion"] = participant_service.completion_info(participant)
        return templates.TemplateResponse(request, "participant/declined.html", context)
    if status == ParticipantStatus.COMPLETED:
        context["completion"] = participant_service.completion_info(participant)
        return templates.TemplateResponse(request, "participant/done.html", context)
    n_done = participant_service.done_count(session, participant.id)
    if (
        status == ParticipantStatus.CONSENTED
        and n_done >= participant_service.n_before_instructions(participant)
    ):
        participant_service.instructions_shown(participant)
        context["facts"] = instruction_facts(session, participant, design)
        return templates.TemplateResponse(request, "participant/instructions.html", context)
    # In progress, or consented with start ratings to give: the task page runs the trials.
    if n_done >= participant.n_trials:
        pending = participant_service.pending_page(participant)
        if pending == "feedback":
            return templates.TemplateResponse(request, "participant/feedback.html", context)
        return templates.TemplateResponse(request, "participant/finish.html", context)
    participant_service.task_page_served(participant)
    step, first_images = trial_service.next_step_and_images(
        session, participant, n_answered=n_done, ahead=settings.preload_ahead
    )
    context["config"] = {
        "token": participant.token,
        "api": f"/api/p/{participant.token}",
        "page": f"/p/{participant.token}",
        "n_trials": participant.n_trials,
        "preload_ahead": settings.preload_ahead,
        "feedback_style": design.feedback.style,
        "min_scale": design.screen.min_scale,
        # The step GET /next gives now: the script starts with it unless it first had queued
        # answers to send (one request less for every start and reload).
        "step": step,
    }
    # The first trial's images, as preload hints in the page's head: the browser fetches them
    # while it loads the scripts, which would otherwise ask for them only once they run.
    context["first_images"] = first_images
    # The markup and stylesheets of the trial types this schedule uses (templates/tasks/).
    context["task_types"] = participant_service.task_types(session, participant.id)
    return templates.TemplateResponse(request, "participant/task.html", context)


async def _for_participant(session: Session, token: str, work: Callable[[Participant], T]) -> T:
    """`work(participant)` for the participant of `token`, in one thread-pool hop (`in_one_hop`);
    what it writes is committed there."""
    return await in_one_hop(session, lambda: work(participant_by_token(session, token)))


@pages.post("/p/{token}/feedback")
async def feedback(
    token: str,
    session: SessionDep,
    text: Annotated[str, Form(max_length=participant_service.FEEDBACK_MAX_CHARS)] = "",
) -> Response:
    """Store the optional free-text feedback and finish the study."""

    def store(participant: Participant) -> None:
        if participant.status != ParticipantStatus.IN_PROGRESS:
            raise Conflict("feedback is given at the end of the study")
        participant_service.record_feedback(participant, text)
        participant_service.complete(session, participant)

    await _for_participant(session, token, store)
    return RedirectResponse(f"/p/{token}", status_code=303)


@pages.post("/p/{token}/finish")
async def finish(token: str, session: SessionDep) -> Response:
    """Finish the study (when every answer and page is done) and show the completion code."""
    await _for_participant(
        session, token, lambda participant: participant_service.complete(session, participant)
    )
    return RedirectResponse(f"/p/{token}", status_code=303)


@pages.post("/p/{token}/consent")
async def consent(
    token: str,
    session: SessionDep,
    decision: Annotated[str, Form(pattern="^(agree|decline)$")],
) -> Response:
    """Record consent (agree) or its refusal (decline: its own outcome, nothing else stored)."""
    await _for_participant(
        session,
        token,
        lambda participant: participant_service.record_consent(participant, decision == "agree"),
    )
    return RedirectResponse(f"/p/{token}", status_code=303)


@pages.post("/p/{token}/instructions")
async def instructions_done(token: str, session: SessionDep) -> Response:
    """Instructions read: the task starts."""
    await _for_participant(
        session, token, lambda p: participant_service.finish_instructions(session, p)
    )
    return RedirectResponse(f"/p/{token}", status_code=303)


# --- JSON API -----------------------------------------------------------------------------------


@api.get("/next", response_model=NextRead)
async def get_next(token: str, session: SessionDep, settings: SettingsDep) -> Any:
    """The participant's next step (first unanswered trial) and images to preload."""
    return await _for_participant(
        session,
        token,
        lambda participant: trial_service.next_step(
            session, participant, ahead=settings.preload_ahead
        ),
    )


@api.post(
    "/responses",
    response_model=ResponseAck,
    openapi_extra=_json_body_schema(ResponseSubmit),
)
async def post_response(
    token: str, session: SessionDep, settings: SettingsDep, body: BodyDep, request: Request
) -> Any:
    """Store an answer exactly once; the acknowledgement carries correctness and the next step."""
    # Async with one thread-pool hop for all database work: the request every participant sends
    # every few seconds (app.services.answers).
    submit = _parse(ResponseSubmit, body).to_answer()
    via_beacon = request.headers.get("content-type", "").startswith("text/plain")
    check_token(token)
    answered = await run_in_threadpool(
        submit_answer,
        session,
        participant_by_token,
        token,
        submit,
        via_beacon=via_beacon,
        ahead=settings.preload_ahead,
        autocommit_engine=request.app.state.answer_engine,
    )
    # Built as ResponseAck describes it (tests check); serialised without re-validation.
    return Response(answered.json(), media_type="application/json")


@api.post("/events", response_model=EventsAck, openapi_extra=_json_body_schema(EventBatch))
async def post_events(token: str, session: SessionDep, body: BodyDep) -> Any:
    """Store browser events (focus, fullscreen, resize) and count as a heartbeat."""
    batch: EventBatch = _parse(EventBatch, body)
    events = [
        trial_service.BrowserEvent(e.kind, e.client_ms, e.trial_index, e.data) for e in batch.events
    ]
    stored = await _for_participant(
        session,
        token,
        lambda participant: trial_service.record_events(session, participant, events),
    )
    return {"stored": stored}


@api.post("/complete", response_model=CompletionRead)
async def post_complete(token: str, session: SessionDep) -> Any:
    """Finish: only when every answer is stored; returns the completion code and where to go."""
    return await _for_participant(
        session, token, lambda participant: participant_service.complete(session, participant)
    )
