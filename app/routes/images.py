"""Stimulus images at opaque content-hash URLs, cached forever by browsers and proxies."""

from __future__ import annotations

import re

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.errors import NotFound
from app.routes.deps import SettingsDep
from app.services.blobs import MEDIA_TYPES, BlobStore

router = APIRouter(include_in_schema=False)
NAME = re.compile(r"^([0-9a-f]{64})\.(webp|png)$")
IMMUTABLE = "public, max-age=31536000, immutable"


@router.get("/img/{name}")
def image(name: str, settings: SettingsDep) -> FileResponse:
    """One stored image by the sha256 of its bytes."""
    match = NAME.match(name)
    if match is None:
        raise NotFound("no such image")
    sha, ext = match.groups()
    path = BlobStore(settings.stimuli_dir / "blobs").path_for(sha, ext)
    if not path.is_file():
        raise NotFound("no such image")
    return FileResponse(
        path, media_type=MEDIA_TYPES[ext], headers={"Cache-Control": IMMUTABLE, "ETag": f'"{sha}"'}
    )
