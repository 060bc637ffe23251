"""Experimenter console under /dashboard: login and account (active logins), stimulus sets,
experiments and sharing, sessions, live monitoring, participants (GDPR deletion), exports and
analysis. HTTP only; logic in services."""

from __future__ import annotations

import base64
import logging
import shutil
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from app import designs
from app.db import utc_now
from app.errors import AppError, InvalidInput, NotFound, TooManyAttempts
from app.export_format import (
    CODEBOOK,
    EVENT_CODEBOOK,
    EVENT_COLUMNS,
    PARTICIPANT_CODEBOOK,
    PARTICIPANT_COLUMNS,
    RATING_CODEBOOK,
    RATING_COLUMNS,
    RESPONSE_COLUMNS,
)
from app.models import (
    Experiment,
    ExperimentSession,
    Participant,
    ParticipantEvent,
    ScheduledTrial,
    StimulusSet,
    StimulusUnit,
    TrialResponse,
    User,
)
from app.routes.deps import (
    CSRF_FIELD,
    AdminDep,
    AdminPostDep,
    ExperimenterDep,
    ExperimenterPostDep,
    LoginDep,
    SessionDep,
    SettingsDep,
    TemplatesDep,
    clear_web_session,
    login_session,
    save_web_session,
    status_for,
    web_session,
)
from app.services import audit, auth, export, monitor
from app.services import experiments as experiment_service
from app.services import participants as participant_service
from app.services.blobs import BlobStore
from app.services.quality import participant_summary
from app.services.stimuli import (
    catalog_of,
    get_stimulus_set,
    image_hashes,
    import_stimulus_set,
    manifest_of,
)
from app.stimuli import ROLES
from app.stimulus_sources import REFERENCE_TYPES, ImportOptions, unit_reports

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/dashboard", include_in_schema=False)

TEST_SESSION_LABEL = "test mode"
PARTICIPANTS_PAGE = 200
PREVIEW_MAX_PARTICIPANT = 100_000
ANALYSIS_N_BOOT = 2000
UPLOAD_CHUNK = 1024 * 1024
EXPORT_TABLES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "responses": (RESPONSE_COLUMNS, CODEBOOK),
    "participants": (PARTICIPANT_COLUMNS, PARTICIPANT_CODEBOOK),
    "events": (EVENT_COLUMNS, EVENT_CODEBOOK),
    "ratings": (RATING_COLUMNS, RATING_CODEBOOK),
}


def _page(
    request: Request,
    templates: Any,
    name: str,
    context: dict[str, Any],
    user: User | None,
    status_code: int = 200,
) -> Response:
    current = web_session(request)
    response: Response = templates.TemplateResponse(
        request,
        f"dashboard/{name}",
        {**context, "user": user, "csrf_token": current.csrf, "csrf_field": CSRF_FIELD},
        status_code=status_code,
    )
    save_web_session(request, response)
    return response


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _safe_next(target: str | None) -> str:
    # Only local dashboard paths: no open redirect through ?next=.
    if target and target.startswith("/dashboard") and "//" not in target and "\\" not in target:
        return target
    return "/dashboard"


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _session_of(session: Session, experiment: Experiment, link_code: str) -> ExperimentSession:
    found = session.scalar(
        select(ExperimentSession).where(
            ExperimentSession.experiment_id == experiment.id,
            ExperimentSession.link_code == link_code[:64],
        )
    )
    if found is None:
        raise NotFound("no such session in this experiment")
    return found


def _link(settings: Any, link_code: str, platform: str = "lab") -> str:
    return experiment_service.platform_link(settings.base_url, link_code, platform)


# --- login --------------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, templates: TemplatesDep, next: str | None = None) -> Response:
    """The login form."""
    return _page(request, templates, "login.html", {"next": _safe_next(next), "error": None}, None)


@router.post("/login")
async def login(request: Request, session: SessionDep, templates: TemplatesDep) -> Response:
    """Check credentials (throttled), start a signed session, go on to the dashboard."""
    from app.routes.deps import verify_csrf

    await verify_csrf(request)
    form = await request.form()
    email = str(form.get("email") or "")[:254]
    password = str(form.get("password") or "")[:1024]
    target = _safe_next(str(form.get("next") or ""))
    settings = request.app.state.settings
    policy = auth.ThrottlePolicy(settings.login_max_failures, settings.login_window_s)
    try:
        user = auth.authenticate(session, email, password, _client_address(request), policy=policy)
    except TooManyAttempts as exc:
        response = _page(
            request,
            templates,
            "login.html",
            {"next": target, "error": exc.detail},
            None,
            status_code=429,
        )
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    if user is None:
        session.commit()  # the failed attempt counts towards throttling
        return _page(
            request,
            templates,
            "login.html",
            {"next": target, "error": "Wrong email or password."},
            None,
            status_code=401,
        )
    started, token = auth.start_login(
        session,
        user,
        user_agent=request.headers.get("user-agent"),
        address=_client_address(request),
        max_age_s=settings.session_max_age_s,
    )
    audit.record(session, user, "user.login", target=f"login {started.id}")
    session.commit()
    login_session(request, user, token)
    response = _see_other(target)
    save_web_session(request, response)
    return response


@router.post("/logout")
def logout(user: ExperimenterPostDep, login: LoginDep, session: SessionDep) -> Response:
    """End the dashboard session: the login is revoked on the server, the cookie deleted."""
    auth.revoke_login(session, login)
    audit.record(session, user, "user.logout", target=f"login {login.id}")
    session.commit()
    response = _see_other("/dashboard/login")
    clear_web_session(response)
    return response


# --- the user's own account: active logins ------------------------------------------------------


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
    return _page(
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
    return _see_other("/dashboard/account")


# --- experiments list ---------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def home(
    request: Request, user: ExperimenterDep, session: SessionDep, templates: TemplatesDep
) -> Response:
    """The experiments this user may see."""
    experiments = auth.visible_experiments(session, user)
    ids = [e.id for e in experiments]
    counts: dict[int, int] = {}
    if ids:
        counts = {
            row[0]: row[1]
            for row in session.execute(
                select(Participant.experiment_id, func.count())
                .where(Participant.experiment_id.in_(ids), Participant.test_mode.is_(False))
                .group_by(Participant.experiment_id)
            )
        }
    return _page(
        request,
        templates,
        "home.html",
        {"experiments": experiments, "counts": counts},
        user,
    )


# --- stimulus sets ------------------------------------------------------------------------------


@router.get("/stimuli", response_class=HTMLResponse)
def stimuli_list(
    request: Request,
    user: ExperimenterDep,
    session: SessionDep,
    templates: TemplatesDep,
    settings: SettingsDep,
) -> Response:
    """Imported stimulus sets and the import form."""
    sets = list(session.scalars(select(StimulusSet).order_by(StimulusSet.id.desc())))
    return _page(
        request,
        templates,
        "stimuli.html",
        {"sets": sets, "path_import": settings.stimuli_import_root is not None, "error": None},
        user,
    )


def _spool_upload(upload: UploadFile, folder: Path) -> Path:
    target = folder / "upload.zip"
    with target.open("wb") as out:
        shutil.copyfileobj(upload.file, out, UPLOAD_CHUNK)
    return target


@router.post("/stimuli")
def stimuli_import(
    request: Request,
    user: ExperimenterPostDep,
    session: SessionDep,
    templates: TemplatesDep,
    settings: SettingsDep,
    archive: Annotated[UploadFile | None, File()] = None,
    server_path: Annotated[str, Form(max_length=1000)] = "",
    name: Annotated[str, Form(max_length=80)] = "",
    reference_type: Annotated[str, Form(max_length=16)] = "",
    role: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    """Import a set from an uploaded .zip or a folder under the configured import root."""
    blobs = BlobStore(settings.stimuli_dir / "blobs")
    set_id = name.strip() or None
    try:
        if reference_type not in ("", *REFERENCE_TYPES) or role not in ("", *ROLES):
            raise InvalidInput("unknown reference type or role")
        options = ImportOptions(
            reference_type=reference_type or None,  # type: ignore[arg-type]
            role=role or None,
        )
        if archive is not None and archive.filename:
            with tempfile.TemporaryDirectory(prefix="psychvis-upload-") as tmp:
                imported = import_stimulus_set(
                    session,
                    _spool_upload(archive, Path(tmp)),
                    blobs,
                    set_id=set_id,
                    options=options,
                    max_total_bytes=settings.max_import_bytes,
                )
        elif server_path.strip():
            root = settings.stimuli_import_root
            if root is None:
                raise InvalidInput("importing by server path is off (PSYCHVIS_STIMULI_IMPORT_ROOT)")
            source = (root / server_path.strip()).resolve()
            if not source.is_relative_to(root.resolve()):
                raise InvalidInput(f"the path must lie inside {root}")
            imported = import_stimulus_set(
                session,
                source,
                blobs,
                set_id=set_id,
                options=options,
                max_total_bytes=settings.max_import_bytes,
            )
        else:
            raise InvalidInput("choose a .zip file or give a server path")
    except AppError as exc:
        session.rollback()
        sets = list(session.scalars(select(StimulusSet).order_by(StimulusSet.id.desc())))
        return _page(
            request,
            templates,
            "stimuli.html",
            {
                "sets": sets,
                "path_import": settings.stimuli_import_root is not None,
                "error": exc.detail,
            },
            user,
            status_code=status_for(exc),
        )
    audit.record(session, user, "stimulus_set.import", target=imported.slug)
    session.commit()
    return _see_other(f"/dashboard/stimuli/{imported.slug}")


@router.get("/stimuli/{slug}", response_class=HTMLResponse)
def stimulus_set_page(
    request: Request,
    slug: str,
    user: ExperimenterDep,
    session: SessionDep,
    templates: TemplatesDep,
) -> Response:
    """A stimulus set's units."""
    stimulus_set = get_stimulus_set(session, slug[:80])
    units = list(
        session.scalars(
            select(StimulusUnit)
            .where(StimulusUnit.stimulus_set_id == stimulus_set.id)
            .order_by(StimulusUnit.layer, StimulusUnit.channel)
        )
    )
    manifest = manifest_of(stimulus_set)
    reports = {r.id: r for r in unit_reports(manifest)}
    return _page(
        request,
        templates,
        "stimulus_set.html",
        {
            "set": stimulus_set,
            "units": units,
            "reports": reports,
            "skipped": manifest.provenance.get("skipped") or [],
        },
        user,
    )


@router.get("/stimuli/{slug}/units/{unit_key:path}", response_class=HTMLResponse)
def unit_page(
    request: Request,
    slug: str,
    unit_key: str,
    user: ExperimenterDep,
    session: SessionDep,
    templates: TemplatesDep,
) -> Response:
    """Preview a unit: its reference grids and queries, per natural batch and synthetic."""
    stimulus_set = get_stimulus_set(session, slug[:80])
    unit = session.scalar(
        select(StimulusUnit).where(
            StimulusUnit.stimulus_set_id == stimulus_set.id, StimulusUnit.unit_key == unit_key
        )
    )
    if unit is None:
        raise NotFound("no such unit in this set")
    hashes = image_hashes(session, stimulus_set.id, "lossless")

    def url(entry: dict[str, Any] | None) -> str | None:
        if not entry or entry.get("path") not in hashes:
            return None
        return f"/img/{hashes[entry['path']]}.webp"

    natural = unit.data.get("natural") or {}
    batches = [
        {
            "batch": b["batch"],
            "max": [url(e) for e in b.get("max_references", [])],
            "min": [url(e) for e in b.get("min_references", [])],
            "max_query": url(b.get("max_query")),
            "min_query": url(b.get("min_query")),
        }
        for b in natural.get("batches") or []
    ]
    synthetic_data = unit.data.get("synthetic") or {}
    synthetic = {
        "max": [url(e) for e in synthetic_data.get("max_references", [])],
        "min": [url(e) for e in synthetic_data.get("min_references", [])],
    }
    return _page(
        request,
        templates,
        "unit.html",
        {"set": stimulus_set, "unit": unit, "batches": batches, "synthetic": synthetic},
        user,
    )


# --- experiments --------------------------------------------------------------------------------


@router.get("/experiments/new", response_class=HTMLResponse)
def experiment_new(
    request: Request, user: ExperimenterDep, session: SessionDep, templates: TemplatesDep
) -> Response:
    """Form: create an experiment from a preset or a design file."""
    sets = list(session.scalars(select(StimulusSet).order_by(StimulusSet.slug)))
    return _page(
        request,
        templates,
        "experiment_new.html",
        {"sets": sets, "presets": designs.preset_names(), "error": None, "form": {}},
        user,
    )


@router.post("/experiments")
async def experiment_create(
    request: Request,
    user: ExperimenterPostDep,
    session: SessionDep,
    templates: TemplatesDep,
    settings: SettingsDep,
) -> Response:
    """Create an experiment owned by the current user."""
    form = await request.form()
    values = {k: str(form.get(k) or "").strip() for k in ("slug", "title", "stimuli", "preset")}
    design_file = form.get("design_file")
    try:
        stimulus_set = get_stimulus_set(session, values["stimuli"][:80])
        text: str | None = None
        source = values["preset"]
        if design_file is not None and not isinstance(design_file, str) and design_file.filename:
            raw = await design_file.read(1024 * 1024 + 1)
            if len(raw) > 1024 * 1024:
                raise InvalidInput("a design file is at most 1 MiB")
            text = raw.decode("utf-8", errors="replace")
            source = Path(design_file.filename).stem[:80] or "uploaded"
        elif not source:
            raise InvalidInput("choose a preset or upload a design file")
        experiment = experiment_service.create_experiment(
            session,
            slug=values["slug"],
            stimulus_set=stimulus_set,
            design_source=source,
            design_text=text,
            title=values["title"] or None,
            owner_id=user.id,
            blobs=BlobStore(settings.stimuli_dir / "blobs"),
        )
        experiment.platform_id_export = (
            "raw" if form.get("platform_id_export") == "raw" else "pseudonymised"
        )
    except AppError as exc:
        session.rollback()
        sets = list(session.scalars(select(StimulusSet).order_by(StimulusSet.slug)))
        return _page(
            request,
            templates,
            "experiment_new.html",
            {"sets": sets, "presets": designs.preset_names(), "error": exc.detail, "form": values},
            user,
            status_code=status_for(exc),
        )
    audit.record(session, user, "experiment.create", experiment=experiment, target=experiment.slug)
    session.commit()
    return _see_other(f"/dashboard/experiments/{experiment.slug}")


@router.get("/experiments/{slug}", response_class=HTMLResponse)
def experiment_page(
    request: Request,
    slug: str,
    user: ExperimenterDep,
    session: SessionDep,
    templates: TemplatesDep,
    settings: SettingsDep,
) -> Response:
    """An experiment: sessions and links, launch form, live monitoring, exports."""
    experiment = auth.experiment_for(session, user, slug)
    launched = list(
        session.scalars(
            select(ExperimentSession)
            .where(ExperimentSession.experiment_id == experiment.id)
            .order_by(ExperimentSession.id.desc())
        )
    )
    summary = monitor.live_summary(
        session, experiment, inactivity_timeout_s=settings.inactivity_timeout_s
    )
    return _page(
        request,
        templates,
        "experiment.html",
        {
            "experiment": experiment,
            "sessions": [(s, _link(settings, s.link_code, s.platform)) for s in launched],
            "summary": summary,
            "status_labels": monitor.STATUS_LABELS,
            "shared": auth.shared_with(session, experiment),
            "can_share": _can_share(user, experiment),
            "test_label": TEST_SESSION_LABEL,
        },
        user,
    )


@router.post("/experiments/{slug}/settings")
def experiment_settings(
    slug: str,
    user: ExperimenterPostDep,
    session: SessionDep,
    platform_id_export: Annotated[str, Form(pattern="^(raw|pseudonymised)$")],
) -> Response:
    """Choose how participants.csv writes platform ids."""
    experiment = auth.experiment_for(session, user, slug)
    experiment.platform_id_export = platform_id_export
    audit.record(
        session,
        user,
        "experiment.settings",
        experiment=experiment,
        details={"platform_id_export": platform_id_export},
    )
    session.commit()
    return _see_other(f"/dashboard/experiments/{experiment.slug}")


def _can_share(user: User, experiment: Experiment) -> bool:
    return user.role == "admin" or experiment.owner_id == user.id


@router.post("/experiments/{slug}/shares")
def experiment_share(
    slug: str,
    user: ExperimenterPostDep,
    session: SessionDep,
    email: Annotated[str, Form(max_length=254)],
) -> Response:
    """Share the experiment with another account (owner or admin only)."""
    experiment = auth.experiment_for(session, user, slug)
    if not _can_share(user, experiment):
        raise NotFound("only the owner can share this experiment")
    try:
        shared = auth.share_experiment(session, experiment, email)
    except NotFound:
        # The same answer as for an account: the form must not tell which emails have one.
        audit.record(session, user, "experiment.share_unknown", experiment=experiment)
        session.commit()
        return _see_other(f"/dashboard/experiments/{experiment.slug}")
    audit.record(
        session, user, "experiment.share", experiment=experiment, target=f"user {shared.user_id}"
    )
    session.commit()
    return _see_other(f"/dashboard/experiments/{experiment.slug}")


@router.post("/experiments/{slug}/shares/{user_id}/delete")
def experiment_unshare(
    slug: str, user_id: int, user: ExperimenterPostDep, session: SessionDep
) -> Response:
    """Take back a share (owner or admin only); the account then gets 404 on the experiment."""
    experiment = auth.experiment_for(session, user, slug)
    if not _can_share(user, experiment):
        raise NotFound("only the owner can unshare this experiment")
    removed = auth.unshare_experiment(session, experiment, user_id)
    audit.record(
        session, user, "experiment.unshare", experiment=experiment, target=f"user {removed.id}"
    )
    session.commit()
    return _see_other(f"/dashboard/experiments/{experiment.slug}")


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
    design = experiment_service.design_of(experiment)
    catalog = catalog_of(experiment.stimulus_set)
    arm = designs.expected_arm(design, participant)
    schedule = designs.generate_schedule(design, catalog, participant, arm=arm)
    return _page(
        request,
        templates,
        "preview.html",
        {
            "experiment": experiment,
            "number": participant,
            "schedule": schedule,
            "rows": designs.preview_rows(schedule, catalog),
            "text": designs.render_preview(schedule, "table", catalog),
        },
        user,
    )


@router.post("/experiments/{slug}/try")
def experiment_try(
    request: Request, slug: str, user: ExperimenterPostDep, session: SessionDep
) -> Response:
    """Take part in test mode (flagged, left out of counts and exports) and go to /p/<token>."""
    experiment = auth.experiment_for(session, user, slug)
    launched = session.scalar(
        select(ExperimentSession).where(
            ExperimentSession.experiment_id == experiment.id,
            ExperimentSession.label == TEST_SESSION_LABEL,
            ExperimentSession.status == "open",
        )
    )
    if launched is None:
        launched = experiment_service.launch_session(
            session, experiment, platform="lab", label=TEST_SESSION_LABEL
        )
    participant, _ = participant_service.enrol(
        session, launched, {}, user_agent=request.headers.get("user-agent"), test_mode=True
    )
    audit.record(session, user, "experiment.try", experiment=experiment, target=launched.link_code)
    session.commit()
    return _see_other(f"/p/{participant.token}")


# --- sessions -----------------------------------------------------------------------------------


@router.post("/experiments/{slug}/sessions")
async def session_launch(
    request: Request,
    slug: str,
    user: ExperimenterPostDep,
    session: SessionDep,
) -> Response:
    """Launch a session with platform settings (completion codes/URLs per outcome)."""
    experiment = auth.experiment_for(session, user, slug)
    form = await request.form()

    def text(key: str, limit: int = 500) -> str:
        return str(form.get(key) or "").strip()[:limit]

    platform = text("platform")
    mturk_sandbox = form.get("mturk_mode") == "sandbox"
    # The form offers MTurk's sandbox and live as two platforms of one select.
    if platform in ("mturk-sandbox", "mturk-live"):
        platform, mturk_sandbox = "mturk", platform == "mturk-sandbox"
    if platform not in ("prolific", "mturk", "lab"):
        raise InvalidInput("platform must be prolific, mturk or lab")
    outcomes: dict[str, Any] = {}
    for outcome in ("completed", "failed_checks", "no_consent", "screen_too_small"):
        code, url = text(f"{outcome}_code", 64), text(f"{outcome}_url")
        if url and not url.startswith("https://"):
            raise InvalidInput(f"the {outcome} URL must start with https://")
        if platform == "prolific" and code and not url:
            url = experiment_service.PROLIFIC_COMPLETE_URL.format(code=code)
        given = {k: v for k, v in (("code", code), ("url", url)) if v}
        if given:
            outcomes[outcome] = given
    max_text = text("max_participants", 9)
    if max_text and not max_text.isdigit():
        raise InvalidInput("the participant limit must be a whole number")
    launched = experiment_service.launch_session(
        session,
        experiment,
        platform=platform,  # type: ignore[arg-type]
        completion_code=text("completed_code", 64) or None,
        outcomes=outcomes,
        max_participants=int(max_text) if max_text else None,
        mturk_sandbox=mturk_sandbox,
        label=text("label", 200),
    )
    audit.record(session, user, "session.launch", experiment=experiment, target=launched.link_code)
    session.commit()
    return _see_other(f"/dashboard/experiments/{experiment.slug}")


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
    launched = _session_of(session, experiment, link_code)
    experiment_service.set_session_status(launched, status)  # type: ignore[arg-type]
    audit.record(
        session, user, f"session.{status}", experiment=experiment, target=launched.link_code
    )
    session.commit()
    return _see_other(f"/dashboard/experiments/{experiment.slug}")


# --- live monitoring ----------------------------------------------------------------------------


@router.get("/api/experiments/{slug}/live")
def live(slug: str, user: ExperimenterDep, session: SessionDep, settings: SettingsDep) -> Any:
    """Live numbers of an experiment (polled by static/dashboard.js)."""
    experiment = auth.experiment_for(session, user, slug)
    return monitor.live_summary(
        session, experiment, inactivity_timeout_s=settings.inactivity_timeout_s
    )


# --- participants -------------------------------------------------------------------------------


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
    cutoff = utc_now() - timedelta(seconds=settings.inactivity_timeout_s)
    answered = (
        select(TrialResponse.participant_id, func.count().label("n"))
        .group_by(TrialResponse.participant_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Participant,
            monitor.status_bucket_expr(cutoff),
            func.coalesce(answered.c.n, 0),
        )
        .outerjoin(answered, answered.c.participant_id == Participant.id)
        .where(Participant.experiment_id == experiment.id)
        .order_by(Participant.participant_number)
        .offset(offset)
        .limit(PARTICIPANTS_PAGE)
    ).all()
    return _page(
        request,
        templates,
        "participants.html",
        {
            "experiment": experiment,
            "rows": [
                (
                    p,
                    export.participant_label(p.participant_number),
                    monitor.STATUS_LABELS[bucket],
                    monitor.participant_condition(p.arm, p.blocks),
                    n,
                )
                for p, bucket, n in rows
            ],
            "offset": offset,
            "page": PARTICIPANTS_PAGE,
        },
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
    trials = session.execute(
        select(ScheduledTrial, TrialResponse, StimulusUnit.label)
        .outerjoin(
            TrialResponse,
            # The participant on both sides, so Postgres uses both indexes (quality.py).
            and_(
                TrialResponse.scheduled_trial_id == ScheduledTrial.id,
                TrialResponse.participant_id == participant.id,
            ),
        )
        .outerjoin(StimulusUnit, StimulusUnit.id == ScheduledTrial.stimulus_unit_id)
        .where(ScheduledTrial.participant_id == participant.id)
        .order_by(ScheduledTrial.trial_index)
    ).all()
    events = list(
        session.scalars(
            select(ParticipantEvent)
            .where(ParticipantEvent.participant_id == participant.id)
            .order_by(ParticipantEvent.id)
            .limit(1000)
        )
    )
    return _page(
        request,
        templates,
        "participant.html",
        {
            "experiment": experiment,
            "participant": participant,
            "label": export.participant_label(participant.participant_number),
            "status": monitor.status_label(
                session,
                participant,
                utc_now() - timedelta(seconds=settings.inactivity_timeout_s),
            ),
            "condition": monitor.participant_condition(participant.arm, participant.blocks),
            "trials": trials,
            "events": events,
            "summary": participant_summary(session, participant),
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
    label = export.participant_label(participant.participant_number)
    if confirm.strip() != label:
        raise InvalidInput(f"type {label} to confirm the deletion")
    audit.delete_participant(session, user, participant)
    session.commit()
    return _see_other(f"/dashboard/experiments/{experiment.slug}/participants")


# --- exports ------------------------------------------------------------------------------------


def _encoded(chunks: Iterator[str]) -> Iterator[bytes]:
    for chunk in chunks:
        yield chunk.encode("utf-8")


def _download(chunks: Iterator[str], filename: str, media_type: str) -> StreamingResponse:
    # The request's session (a "request"-scoped dependency) stays open until the body is sent.
    return StreamingResponse(
        _encoded(chunks),
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/experiments/{slug}/export/{table}.csv")
def export_csv(
    slug: str,
    table: str,
    user: ExperimenterDep,
    session: SessionDep,
    settings: SettingsDep,
    include_test: bool = False,
) -> Response:
    """Download a table as CSV, streamed from the database."""
    experiment = auth.experiment_for(session, user, slug)
    if table not in EXPORT_TABLES:
        raise NotFound(f"no export named {table!r}")
    columns, codebook = EXPORT_TABLES[table]
    audit.record_export(session, user, experiment, table, include_test=include_test)
    session.commit()  # stored even if the download breaks off
    rows = _table_rows(table, session, experiment, settings, include_test)
    return _download(
        export.iter_csv_chunks(rows, columns, codebook),
        f"{experiment.slug}-{table}.csv",
        "text/csv; charset=utf-8",
    )


@router.get("/experiments/{slug}/export/all.json")
def export_json(
    slug: str,
    user: ExperimenterDep,
    session: SessionDep,
    settings: SettingsDep,
    include_test: bool = False,
) -> Response:
    """Download everything (with the codebook) as one JSON document, streamed."""
    experiment = auth.experiment_for(session, user, slug)
    audit.record_export(session, user, experiment, "all", include_test=include_test)
    session.commit()
    return _download(
        export.iter_json_chunks(
            session,
            experiment,
            pseudonym_key=settings.secret_key.get_secret_value().encode(),
            include_test=include_test,
        ),
        f"{experiment.slug}.json",
        "application/json",
    )


def _table_rows(
    table: str, session: Session, experiment: Experiment, settings: Any, include_test: bool
) -> Iterator[dict[str, Any]]:
    if table == "responses":
        return export.iter_response_rows(session, experiment, include_test=include_test)
    if table == "participants":
        return export.iter_participant_rows(
            session,
            experiment,
            pseudonym_key=settings.secret_key.get_secret_value().encode(),
            include_test=include_test,
        )
    if table == "events":
        return export.iter_event_rows(session, experiment, include_test=include_test)
    return export.iter_rating_rows(session, experiment, include_test=include_test)


# --- analysis -----------------------------------------------------------------------------------


@router.get("/experiments/{slug}/analysis", response_class=HTMLResponse)
def analysis_page(
    request: Request,
    slug: str,
    user: ExperimenterDep,
    session: SessionDep,
    templates: TemplatesDep,
    by: Annotated[list[str] | None, Query(max_length=200)] = None,
    include_excluded: bool = False,
) -> Response:
    """Accuracy, RT and confidence per group with the figures (app.analysis)."""
    import warnings

    import pandas as pd

    from app.analysis import AnalysisInputError, AnalysisInputWarning, analyze, parse_by
    from app.analysis.plots import draw_plots
    from app.analysis.stats import DERIVED_COLUMNS

    experiment = auth.experiment_for(session, user, slug)
    # Each `by` may itself list columns (`a, b`); an empty one adds nothing.
    chosen = parse_by(",".join(["condition"] if by is None else by))
    context: dict[str, Any] = {
        "experiment": experiment,
        "by": chosen,
        "by_columns": [*RESPONSE_COLUMNS, *DERIVED_COLUMNS],
        "include_excluded": include_excluded,
        "analysis": None,
        "plots": [],
        "warnings": [],
        "error": None,
    }
    frame = pd.DataFrame(
        list(export.iter_response_rows(session, experiment)), columns=list(RESPONSE_COLUMNS)
    )
    try:
        if frame.empty:
            raise AnalysisInputError("no answers yet")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AnalysisInputWarning)
            result = analyze(
                frame, chosen, include_excluded=include_excluded, n_boot=ANALYSIS_N_BOOT
            )
            plots = draw_plots(frame, by=chosen, include_excluded=include_excluded)
        context["warnings"] = [
            str(w.message) for w in caught if issubclass(w.category, AnalysisInputWarning)
        ]
        context["plots"] = [
            (plot.name, plot.caption, base64.b64encode(plot.png()).decode("ascii"))
            for plot in plots
        ]
        context["analysis"] = result
    except AnalysisInputError as exc:
        context["error"] = str(exc)
    return _page(request, templates, "analysis.html", context, user)


# --- documentation ------------------------------------------------------------------------------


@router.get("/docs/{name}.md")
def doc_page(name: str, user: ExperimenterDep, settings: SettingsDep) -> Response:
    """A page of the documentation (Markdown, shown as text) that the console links to."""
    path = settings.docs_dir / f"{name}.md"
    if not name.replace("_", "").isalnum() or not path.is_file():
        raise NotFound(f"no document {name}.md")
    return Response(path.read_text(encoding="utf-8"), media_type="text/plain; charset=utf-8")


# --- users (admins) and the audit log -----------------------------------------------------------


@router.get("/users", response_class=HTMLResponse)
def users_page(
    request: Request, user: AdminDep, session: SessionDep, templates: TemplatesDep
) -> Response:
    """Accounts (admins only)."""
    return _page(
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
        return _page(
            request,
            templates,
            "users.html",
            {"users": auth.list_users(session), "error": exc.detail},
            user,
            status_code=status_for(exc),
        )
    audit.record(session, user, "user.create", target=f"user {created.id}")
    session.commit()
    return _see_other("/dashboard/users")


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
    return _see_other("/dashboard/users")


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request, user: AdminDep, session: SessionDep, templates: TemplatesDep
) -> Response:
    """The most recent audit log entries (admins only)."""
    return _page(request, templates, "audit.html", {"entries": audit.recent_entries(session)}, user)
