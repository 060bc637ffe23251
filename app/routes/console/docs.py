"""The documentation pages the console links to (docs/*.md, shown as plain text)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.errors import NotFound
from app.routes.deps import ExperimenterDep, SettingsDep

router = APIRouter()


@router.get("/docs/{name}.md")
def doc_page(name: str, user: ExperimenterDep, settings: SettingsDep) -> Response:
    """A page of the documentation (Markdown, shown as text) that the console links to."""
    path = settings.docs_dir / f"{name}.md"
    if not name.replace("_", "").isalnum() or not path.is_file():
        raise NotFound(f"no document {name}.md")
    return Response(path.read_text(encoding="utf-8"), media_type="text/plain; charset=utf-8")
