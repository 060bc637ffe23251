"""Stimulus sets: the list and import form, a set's units, one unit's images."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from app.errors import AppError, InvalidInput
from app.routes.console.render import page, see_other
from app.routes.deps import (
    ExperimenterDep,
    ExperimenterPostDep,
    SessionDep,
    SettingsDep,
    TemplatesDep,
    status_for,
)
from app.services import audit
from app.services import stimuli as stimulus_service
from app.services.blobs import BlobStore
from app.stimulus_sources import unit_reports

router = APIRouter()


@router.get("/stimuli", response_class=HTMLResponse)
def stimuli_list(
    request: Request,
    user: ExperimenterDep,
    session: SessionDep,
    templates: TemplatesDep,
    settings: SettingsDep,
) -> Response:
    """Imported stimulus sets and the import form."""
    sets = stimulus_service.list_stimulus_sets(session, order="newest")
    return page(
        request,
        templates,
        "stimuli.html",
        {"sets": sets, "path_import": settings.stimuli_import_root is not None, "error": None},
        user,
    )


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
        options = stimulus_service.import_options(reference_type, role)
        if archive is not None and archive.filename:
            imported = stimulus_service.import_archive(
                session,
                archive.file,
                blobs,
                set_id=set_id,
                options=options,
                max_total_bytes=settings.max_import_bytes,
            )
        elif server_path.strip():
            imported = stimulus_service.import_from_root(
                session,
                settings.stimuli_import_root,
                server_path.strip(),
                blobs,
                set_id=set_id,
                options=options,
                max_total_bytes=settings.max_import_bytes,
            )
        else:
            raise InvalidInput("choose a .zip file or give a server path")
    except AppError as exc:
        session.rollback()
        return page(
            request,
            templates,
            "stimuli.html",
            {
                "sets": stimulus_service.list_stimulus_sets(session, order="newest"),
                "path_import": settings.stimuli_import_root is not None,
                "error": exc.detail,
            },
            user,
            status_code=status_for(exc),
        )
    audit.record(session, user, "stimulus_set.import", target=imported.slug)
    session.commit()
    return see_other(f"/dashboard/stimuli/{imported.slug}")


@router.get("/stimuli/{slug}", response_class=HTMLResponse)
def stimulus_set_page(
    request: Request, slug: str, user: ExperimenterDep, session: SessionDep, templates: TemplatesDep
) -> Response:
    """A stimulus set's units."""
    stimulus_set = stimulus_service.get_stimulus_set(session, slug[:80])
    manifest = stimulus_service.manifest_of(stimulus_set)
    return page(
        request,
        templates,
        "stimulus_set.html",
        {
            "set": stimulus_set,
            "units": stimulus_service.units_of(session, stimulus_set),
            "reports": {r.id: r for r in unit_reports(manifest)},
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
    stimulus_set = stimulus_service.get_stimulus_set(session, slug[:80])
    preview = stimulus_service.unit_preview(session, stimulus_set, unit_key)
    return page(
        request,
        templates,
        "unit.html",
        {
            "set": stimulus_set,
            "unit": preview.unit,
            "batches": preview.batches,
            "synthetic": preview.synthetic,
        },
        user,
    )
