"""The audit log and per-participant data deletion (GDPR requests)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import AuditLog, Experiment, Participant, User
from app.services.export import participant_label

logger = logging.getLogger(__name__)


def record(
    session: Session,
    user: User | None,
    action: str,
    *,
    experiment: Experiment | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Append an audit entry. `target` and `details` must not hold personal data."""
    entry = AuditLog(
        user_id=user.id if user else None,
        user_email=user.email if user else None,
        action=action,
        experiment_id=experiment.id if experiment else None,
        target=target,
        details=details or {},
    )
    session.add(entry)
    session.flush()
    return entry


def record_export(
    session: Session, user: User, experiment: Experiment, table: str, *, include_test: bool
) -> AuditLog:
    """The audit entry of a download: who took which table of which experiment, with or
    without test-mode participants, and whether it held raw platform ids. The caller commits
    it before the first row is streamed."""
    raw_ids = table in ("participants", "all") and experiment.platform_id_export == "raw"
    logger.info("export", extra={"experiment": experiment.slug, "table": table, "user": user.id})
    return record(
        session,
        user,
        "experiment.export",
        experiment=experiment,
        target=table,
        details={"include_test": include_test, "raw_platform_ids": raw_ids},
    )


def participant_by_number(session: Session, experiment: Experiment, number: int) -> Participant:
    """A participant of `experiment` by participant number (what dashboard URLs use).

    Raises:
        NotFound: no such participant in this experiment.
    """
    found = session.scalar(
        select(Participant).where(
            Participant.experiment_id == experiment.id, Participant.participant_number == number
        )
    )
    if found is None:
        raise NotFound(f"no participant {participant_label(number)} in this experiment")
    return found


def delete_participant(session: Session, user: User, participant: Participant) -> AuditLog:
    """Delete a participant and everything stored about them, and log who did it.

    Trials, answers, events and ratings go with the participant (ON DELETE CASCADE). The
    log entry holds the export label (`p00012`) and the experiment id; no token, platform id,
    user agent or free text. The participant number stays used (it is never handed out again).
    """
    experiment = participant.experiment
    label = participant_label(participant.participant_number)
    details = {"test_mode": participant.test_mode, "status": participant.status}
    session.execute(delete(Participant).where(Participant.id == participant.id))
    session.expunge(participant)
    entry = record(
        session,
        user,
        "participant.delete",
        experiment=experiment,
        target=label,
        details=details,
    )
    logger.info("participant deleted", extra={"experiment": experiment.slug, "participant": label})
    return entry


def recent_entries(session: Session, limit: int = 200) -> list[AuditLog]:
    return list(session.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)))
