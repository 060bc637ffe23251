"""Sharing an experiment with other accounts, and taking a share back (owner or admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import Response

from app.errors import NotFound
from app.routes.console.render import see_other
from app.routes.deps import ExperimenterPostDep, SessionDep
from app.services import audit, auth

router = APIRouter()


@router.post("/experiments/{slug}/shares")
def experiment_share(
    slug: str,
    user: ExperimenterPostDep,
    session: SessionDep,
    email: Annotated[str, Form(max_length=254)],
) -> Response:
    """Share the experiment with another account (owner or admin only)."""
    experiment = auth.experiment_for(session, user, slug)
    if not auth.may_share(user, experiment):
        raise NotFound("only the owner can share this experiment")
    try:
        shared = auth.share_experiment(session, experiment, email)
    except NotFound:
        # The same answer as for an account: the form must not tell which emails have one.
        audit.record(session, user, "experiment.share_unknown", experiment=experiment)
        session.commit()
        return see_other(f"/dashboard/experiments/{experiment.slug}")
    audit.record(
        session, user, "experiment.share", experiment=experiment, target=f"user {shared.user_id}"
    )
    session.commit()
    return see_other(f"/dashboard/experiments/{experiment.slug}")


@router.post("/experiments/{slug}/shares/{user_id}/delete")
def experiment_unshare(
    slug: str, user_id: int, user: ExperimenterPostDep, session: SessionDep
) -> Response:
    """Take back a share (owner or admin only); the account then gets 404 on the experiment."""
    experiment = auth.experiment_for(session, user, slug)
    if not auth.may_share(user, experiment):
        raise NotFound("only the owner can unshare this experiment")
    removed = auth.unshare_experiment(session, experiment, user_id)
    audit.record(
        session, user, "experiment.unshare", experiment=experiment, target=f"user {removed.id}"
    )
    session.commit()
    return see_other(f"/dashboard/experiments/{experiment.slug}")
