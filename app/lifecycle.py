"""The participant's lifecycle: the stored statuses, the transitions between them, the groups
the services count by, and the console's words for them (docs/architecture.md).

`participant.status` holds a `ParticipantStatus` value; `models.Participant`'s CHECK constraint
is generated from the enum. Only `transition` moves a participant from one status to another.
Imports nothing from app but `app.errors`, so the models can import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Protocol

from app.errors import Conflict


class ParticipantStatus(StrEnum):
    """What `participant.status` stores (the values are the database's; never rename one)."""

    ENROLLED = "enrolled"
    """Start pressed: the schedule is stored; consent comes next."""
    CONSENTED = "consented"
    """Agreed to take part: start ratings and instructions follow."""
    IN_PROGRESS = "in_progress"
    """Instructions done: the trials, then end ratings and feedback."""
    COMPLETED = "completed"
    """Every answer and page done, exclusions applied (outcome `completed` or `failed_checks`)."""
    DECLINED = "declined"
    """Refused consent (outcome `no_consent`); nothing else is stored."""
    RETURNED = "returned"
    """Allowed by the schema and the export's codebook, but no transition leads to it: the
    console derives "returned" from inactivity (`StatusBucket.RETURNED`)."""


def check_constraint_sql() -> str:
    """The SQL of `participant`'s status CHECK (the same text as the migrations')."""
    return "status IN (" + ", ".join(f"'{s.value}'" for s in ParticipantStatus) + ")"


TRANSITIONS: Final[Mapping[tuple[ParticipantStatus, ParticipantStatus], str]] = MappingProxyType(
    {
        (ParticipantStatus.ENROLLED, ParticipantStatus.CONSENTED): "consented_at",
        (ParticipantStatus.ENROLLED, ParticipantStatus.DECLINED): "completed_at",
        (ParticipantStatus.CONSENTED, ParticipantStatus.IN_PROGRESS): "instructions_done_at",
        (ParticipantStatus.IN_PROGRESS, ParticipantStatus.COMPLETED): "completed_at",
    }
)
"""Every allowed (from, to) step, with the participant's time stamp it sets. A participant
starts `ENROLLED`; `COMPLETED` and `DECLINED` are final."""


class HasLifecycle(Protocol):
    """What `transition` writes: a `models.Participant`."""

    status: str
    consented_at: datetime | None
    instructions_done_at: datetime | None
    completed_at: datetime | None
    last_seen_at: datetime | None


def can_transition(status: str, to: ParticipantStatus) -> bool:
    """Whether a participant in `status` may move to `to`."""
    return (ParticipantStatus(status), to) in TRANSITIONS


def transition(participant: HasLifecycle, to: ParticipantStatus, *, now: datetime) -> None:
    """Move the participant to `to`: set the status, the transition's time stamp and
    `last_seen_at` (the participant acted `now`).

    Raises:
        Conflict: `TRANSITIONS` has no step from the participant's status to `to` (nothing is
            changed). Callers whose request may legitimately arrive twice check
            `can_transition` first.
    """
    stamp = TRANSITIONS.get((ParticipantStatus(participant.status), to))
    if stamp is None:
        raise Conflict(f"a participant who is {participant.status} cannot become {to}")
    participant.status = to
    setattr(participant, stamp, now)
    participant.last_seen_at = now


# Groups of statuses the services count by.

ACTIVE_STATUSES: Final = (
    ParticipantStatus.ENROLLED,
    ParticipantStatus.CONSENTED,
    ParticipantStatus.IN_PROGRESS,
    ParticipantStatus.COMPLETED,
)
"""Holding a place in a session with a participant limit: everyone but those who declined or
returned. An `UNCONFIRMED` participant gives the place up after
`Settings.enrol_hold_unconfirmed_s` (a link opened and left, or a bot filling the study)."""
UNCONFIRMED: Final = ParticipantStatus.ENROLLED
"""Enrolled but never consented."""
UNFINISHED_STATUSES: Final = (
    ParticipantStatus.ENROLLED,
    ParticipantStatus.CONSENTED,
    ParticipantStatus.IN_PROGRESS,
)
"""Still on their way. For arm balance (and the console's "active") they count only while
seen within `Settings.inactivity_timeout_s`; unseen for longer, they count as returned."""
ENDED_STATUSES: Final = (ParticipantStatus.COMPLETED, ParticipantStatus.DECLINED)
"""Final: nothing the participant's browser reports afterwards is recorded."""


# The console's words: stored statuses plus what it derives (inactivity, exclusions).


class StatusBucket(StrEnum):
    """Where the console counts a participant (`services.monitor.status_bucket_expr`)."""

    STARTED = "started"
    """Enrolled or consented, not yet at the trials."""
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    RETURNED = "returned"
    """Stored as returned, or unfinished and not seen for longer than the inactivity limit."""
    EXCLUDED = "excluded"
    """Failed the design's exclusion criteria, whatever the status."""
    DECLINED = "declined"


STATUS_BUCKETS: Final = tuple(StatusBucket)
STATUS_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        StatusBucket.STARTED: "started",
        StatusBucket.IN_PROGRESS: "in progress",
        StatusBucket.COMPLETED: "completed",
        StatusBucket.RETURNED: "returned / timed out",
        StatusBucket.EXCLUDED: "excluded",
        StatusBucket.DECLINED: "no consent",
    }
)
"""The words the console shows for each bucket (tiles, tables, a participant's page)."""
