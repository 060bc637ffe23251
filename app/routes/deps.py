"""Annotated dependency aliases for routes: SessionDep, SettingsDep, ParticipantDep, TemplatesDep."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from app.config import Settings
from app.errors import NotFound, UnsupportedMediaType
from app.models import Participant

TOKEN_MAX_LEN = 64


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; write routes commit once, before building the response."""
    with request.app.state.sessionmaker() as session:
        yield session


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_templates(request: Request) -> Jinja2Templates:
    templates: Jinja2Templates = request.app.state.templates
    return templates


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]


def get_participant(token: str, session: SessionDep) -> Participant:
    """Resolve the participant token in the path (with session and experiment in one query)."""
    if len(token) > TOKEN_MAX_LEN:
        raise NotFound("unknown participant link")
    participant = session.scalar(
        select(Participant)
        .options(joinedload(Participant.experiment_session), joinedload(Participant.experiment))
        .where(Participant.token == token)
    )
    if participant is None:
        raise NotFound("unknown participant link")
    return participant


ParticipantDep = Annotated[Participant, Depends(get_participant)]


async def read_body(request: Request) -> bytes:
    """The raw body of a JSON (or sendBeacon text/plain) request, size-limited by middleware."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/json", "text/plain", ""):
        raise UnsupportedMediaType(
            f"unsupported content type {content_type!r}; send application/json"
        )
    return await request.body()


BodyDep = Annotated[bytes, Depends(read_body)]
