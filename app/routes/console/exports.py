"""Downloads of an experiment's data: each table as CSV, everything as one JSON document;
streamed from the database."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse

from app.errors import NotFound
from app.routes.deps import ExperimenterDep, SessionDep, SettingsDep
from app.services import audit, auth, export

logger = logging.getLogger(__name__)

router = APIRouter()

CSV_TABLES = tuple(name for name in export.EXPORT_NAMES if name != "json")


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
    if table not in CSV_TABLES:
        raise NotFound(f"no export named {table!r}")
    chunks = export.iter_table_chunks(
        table,
        session,
        experiment,
        pseudonym_key=settings.secret_key.get_secret_value().encode(),
        include_test=include_test,
    )
    audit.record_export(session, user, experiment, table, include_test=include_test)
    session.commit()  # stored even if the download breaks off
    return _download(chunks, f"{experiment.slug}-{table}.csv", "text/csv; charset=utf-8")


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
        export.iter_table_chunks(
            "json",
            session,
            experiment,
            pseudonym_key=settings.secret_key.get_secret_value().encode(),
            include_test=include_test,
        ),
        f"{experiment.slug}.json",
        "application/json",
    )
