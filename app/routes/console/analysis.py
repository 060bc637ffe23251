"""An experiment's analysis page: accuracy, RT and confidence per group, with the figures
(computed by app.services.analysis, cached until the data change)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.export_format import RESPONSE_COLUMNS
from app.routes.console.render import page
from app.routes.deps import ExperimenterDep, SessionDep, TemplatesDep
from app.services import auth
from app.services.analysis import analysis_view

router = APIRouter()


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
    # Imported here: app.analysis pulls in pandas and scipy, which the rest of the app never needs.
    from app.analysis.run import parse_by
    from app.analysis.stats import DERIVED_COLUMNS

    experiment = auth.experiment_for(session, user, slug)
    # Each `by` may itself list columns (`a, b`); an empty one adds nothing.
    chosen = parse_by(",".join(["condition"] if by is None else by))
    view = analysis_view(session, experiment, tuple(chosen), include_excluded=include_excluded)
    context = {
        "experiment": experiment,
        "by": chosen,
        "by_columns": [*RESPONSE_COLUMNS, *DERIVED_COLUMNS],
        "include_excluded": include_excluded,
        "analysis": view.analysis,
        "plots": list(view.plots),
        "warnings": list(view.warnings),
        "error": view.error,
    }
    return page(request, templates, "analysis.html", context, user)
