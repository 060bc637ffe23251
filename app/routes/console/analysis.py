"""An experiment's analysis page: accuracy, RT and confidence per group, with the figures
(computed by app.services.analysis outside the request, cached until the data change)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.export_format import DERIVED_COLUMNS, RESPONSE_COLUMNS, parse_by
from app.routes.console.render import page
from app.routes.deps import ExperimenterDep, SessionDep, SettingsDep, TemplatesDep
from app.services import auth
from app.services.analysis import RETRY_AFTER_S, analysis_view

router = APIRouter()

REFRESH_S = 2
"""How soon a page showing an older analysis (or none) reloads itself while a newer one is
computed (about 1.5 s for a study on the benchmark machine, docs/benchmarks.md)."""


@router.get("/experiments/{slug}/analysis", response_class=HTMLResponse)
def analysis_page(
    request: Request,
    slug: str,
    user: ExperimenterDep,
    session: SessionDep,
    settings: SettingsDep,
    templates: TemplatesDep,
    by: Annotated[list[str] | None, Query(max_length=200)] = None,
    include_excluded: bool = False,
    since: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """Accuracy, RT and confidence per group with the figures (app.analysis).

    `since` (Unix ms) is set by the page's own reload while it waits for a newer analysis: an
    analysis of data read at or after it will do, even if answers arrived since.
    """
    experiment = auth.experiment_for(session, user, slug)
    # Each `by` may itself list columns (`a, b`); an empty one adds nothing.
    chosen = parse_by(",".join(["condition"] if by is None else by))
    shown = analysis_view(
        session,
        experiment,
        tuple(chosen),
        include_excluded=include_excluded,
        background=settings.analysis_in_background,
        wanted_since_ms=since,
    )
    view = shown.view
    refresh = request.url.include_query_params(since=shown.wanted_since_ms)
    context = {
        "experiment": experiment,
        "by": chosen,
        "by_columns": [*RESPONSE_COLUMNS, *DERIVED_COLUMNS],
        "include_excluded": include_excluded,
        "analysis": view.analysis if view else None,
        "plots": list(view.plots) if view else [],
        "warnings": list(view.warnings) if view else [],
        "error": view.error if view else None,
        "shown": shown,
        "refresh_s": REFRESH_S,
        "retry_after_s": RETRY_AFTER_S,
        "refresh_url": f"{refresh.path}?{refresh.query}" if shown.updating else None,
    }
    return page(request, templates, "analysis.html", context, user)
