"""Experiments: the create form, an experiment's page (sessions, live numbers, sharing) and
its export settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from app import designs
from app.errors import AppError, InvalidInput
from app.lifecycle import STATUS_LABELS
from app.routes.console.render import page, see_other
from app.routes.deps import (
    ExperimenterDep,
    ExperimenterPostDep,
    SessionDep,
    SettingsDep,
    TemplatesDep,
    status_for,
)
from app.services import audit, auth, monitor
from app.services import experiments as experiment_service
from app.services.blobs import BlobStore
from app.services.stimuli import get_stimulus_set, list_stimulus_sets

router = APIRouter()

DESIGN_FILE_MAX_BYTES = 1024 * 1024


# Declared before /experiments/{slug}, which would otherwise take "new" for a name.
@router.get("/experiments/new", response_class=HTMLResponse)
def experiment_new(
    request: Request, user: ExperimenterDep, session: SessionDep, templates: TemplatesDep
) -> Response:
    """Form: create an experiment from a preset or a design file."""
    sets = list_stimulus_sets(session, order="slug")
    return page(
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
            raw = await design_file.read(DESIGN_FILE_MAX_BYTES + 1)
            if len(raw) > DESIGN_FILE_MAX_BYTES:
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
            platform_id_export="raw"
            if form.get("platform_id_export") == "raw"
            else "pseudonymised",
            blobs=BlobStore(settings.stimuli_dir / "blobs"),
        )
    except AppError as exc:
        session.rollback()
        return page(
            request,
            templates,
            "experiment_new.html",
            {
                "sets": list_stimulus_sets(session, order="slug"),
                "presets": designs.preset_names(),
                "error": exc.detail,
                "form": values,
            },
            user,
            status_code=status_for(exc),
        )
    audit.record(session, user, "experiment.create", experiment=experiment, target=experiment.slug)
    session.commit()
    return see_other(f"/dashboard/experiments/{experiment.slug}")


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
    launched = experiment_service.sessions_of(session, experiment)
    return page(
        request,
        templates,
        "experiment.html",
        {
            "experiment": experiment,
            "sessions": [
                (s, experiment_service.platform_link(settings.base_url, s.link_code, s.platform))
                for s in launched
            ],
            "summary": monitor.live_summary(
                session, experiment, inactivity_timeout_s=settings.inactivity_timeout_s
            ),
            "status_labels": STATUS_LABELS,
            "shared": auth.shared_with(session, experiment),
            "can_share": auth.may_share(user, experiment),
            "test_label": experiment_service.TEST_SESSION_LABEL,
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
    return see_other(f"/dashboard/experiments/{experiment.slug}")
