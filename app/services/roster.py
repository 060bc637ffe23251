"""The participants of an experiment as the console lists them (status, condition, answers),
and everything stored about one of them (schedule with answers, events, exclusion summary)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from app import designs
from app.lifecycle import STATUS_LABELS
from app.models import (
    Experiment,
    Participant,
    ParticipantEvent,
    ScheduledTrial,
    StimulusUnit,
    TrialResponse,
)
from app.services import monitor
from app.services.export import participant_label
from app.services.quality import participant_summary

EVENTS_SHOWN = 1000


class RosterRow(NamedTuple):
    """One participant in the list."""

    participant: Participant
    label: str
    status: str
    condition: str
    answered: int


def roster_page(
    session: Session, experiment: Experiment, *, cutoff: datetime, offset: int, limit: int
) -> list[RosterRow]:
    """A page of the experiment's participants (test-mode ones too) by participant number.

    Args:
        cutoff: participants not seen since then and not finished count as returned.
    """
    answered = (
        select(TrialResponse.participant_id, func.count().label("n"))
        .group_by(TrialResponse.participant_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Participant,
            monitor.status_bucket_expr(cutoff),
            func.coalesce(answered.c.n, 0),
        )
        .outerjoin(answered, answered.c.participant_id == Participant.id)
        .where(Participant.experiment_id == experiment.id)
        .order_by(Participant.participant_number)
        .offset(offset)
        .limit(limit)
    ).all()
    return [
        RosterRow(
            p,
            participant_label(p.participant_number),
            STATUS_LABELS[bucket],
            monitor.participant_condition(p.arm, p.blocks),
            n,
        )
        for p, bucket, n in rows
    ]


@dataclass(frozen=True)
class ParticipantRecord:
    """One participant: trials as `(ScheduledTrial, TrialResponse | None, unit label | None)`
    in trial order, the first `EVENTS_SHOWN` browser events, and the exclusion summary."""

    label: str
    status: str
    condition: str
    trials: list[Any]
    events: list[ParticipantEvent]
    summary: designs.ParticipantSummary


def participant_record(
    session: Session, participant: Participant, *, cutoff: datetime
) -> ParticipantRecord:
    """Everything the console shows about one participant (three queries and the summary's)."""
    trials = session.execute(
        select(ScheduledTrial, TrialResponse, StimulusUnit.label)
        .outerjoin(
            TrialResponse,
            # The participant on both sides, so Postgres uses both indexes (quality.py).
            and_(
                TrialResponse.scheduled_trial_id == ScheduledTrial.id,
                TrialResponse.participant_id == participant.id,
            ),
        )
        .outerjoin(StimulusUnit, StimulusUnit.id == ScheduledTrial.stimulus_unit_id)
        .where(ScheduledTrial.participant_id == participant.id)
        .order_by(ScheduledTrial.trial_index)
    ).all()
    events = list(
        session.scalars(
            select(ParticipantEvent)
            .where(ParticipantEvent.participant_id == participant.id)
            .order_by(ParticipantEvent.id)
            .limit(EVENTS_SHOWN)
        )
    )
    return ParticipantRecord(
        label=participant_label(participant.participant_number),
        status=monitor.status_label(session, participant, cutoff),
        condition=monitor.participant_condition(participant.arm, participant.blocks),
        trials=list(trials),
        events=events,
        summary=participant_summary(session, participant),
    )
