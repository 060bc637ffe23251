"""The experimenter console under /dashboard, one module per resource; `router` holds them all.

Routes here parse input, call services, commit and render; queries and shaping live in
`app.services`. Authentication and CSRF checks come from `app.routes.deps`.
"""

from fastapi import APIRouter

from app.routes.console import (
    account,
    analysis,
    audit,
    docs,
    experiments,
    exports,
    home,
    live,
    login,
    participants,
    preview,
    sessions,
    sharing,
    stimuli,
    users,
)

router = APIRouter(include_in_schema=False)
for module in (
    login,
    account,
    home,
    stimuli,
    experiments,
    preview,
    sharing,
    sessions,
    live,
    participants,
    exports,
    analysis,
    docs,
    users,
    audit,
):
    router.include_router(module.router, prefix="/dashboard")

__all__ = ["router"]
