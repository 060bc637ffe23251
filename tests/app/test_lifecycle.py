"""The participant lifecycle: every legal transition and what it writes, every other one refused,
and the places that must agree with the enum (the CHECK constraint, the codebook, the labels)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import CheckConstraint, Table

from app.errors import Conflict
from app.export_format import PARTICIPANT_CODEBOOK
from app.lifecycle import (
    ACTIVE_STATUSES,
    ENDED_STATUSES,
    STATUS_BUCKETS,
    STATUS_LABELS,
    TRANSITIONS,
    UNCONFIRMED,
    UNFINISHED_STATUSES,
    ParticipantStatus,
    can_transition,
    check_constraint_sql,
    transition,
)
from app.models import Participant

S = ParticipantStatus
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EARLIER = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
STAMPS = ("consented_at", "instructions_done_at", "completed_at")


@dataclass
class FakeParticipant:
    status: str
    consented_at: datetime | None = None
    instructions_done_at: datetime | None = None
    completed_at: datetime | None = None
    last_seen_at: datetime | None = EARLIER


def test_the_table_is_the_study_path() -> None:
    assert dict(TRANSITIONS) == {
        (S.ENROLLED, S.CONSENTED): "consented_at",
        (S.ENROLLED, S.DECLINED): "completed_at",
        (S.CONSENTED, S.IN_PROGRESS): "instructions_done_at",
        (S.IN_PROGRESS, S.COMPLETED): "completed_at",
    }


@pytest.mark.parametrize(("start", "to"), list(TRANSITIONS))
def test_every_legal_transition_sets_the_status_its_time_stamp_and_last_seen(
    start: ParticipantStatus, to: ParticipantStatus
) -> None:
    participant = FakeParticipant(status=start.value)  # as loaded: a plain string
    assert can_transition(participant.status, to)
    transition(participant, to, now=NOW)
    assert participant.status == to
    assert participant.last_seen_at == NOW
    stamp = TRANSITIONS[(start, to)]
    for name in STAMPS:
        assert getattr(participant, name) == (NOW if name == stamp else None), name


@pytest.mark.parametrize(
    ("start", "to"),
    [pair for pair in itertools.product(S, S) if pair not in TRANSITIONS],
)
def test_every_other_transition_is_refused_and_changes_nothing(
    start: ParticipantStatus, to: ParticipantStatus
) -> None:
    participant = FakeParticipant(status=start.value)
    before = FakeParticipant(**vars(participant))
    assert not can_transition(participant.status, to)
    with pytest.raises(Conflict, match=f"who is {start.value} cannot become {to.value}"):
        transition(participant, to, now=NOW)
    assert participant == before


def test_transition_writes_an_orm_participant() -> None:
    participant = Participant(status=S.IN_PROGRESS.value)
    transition(participant, S.COMPLETED, now=NOW)
    assert participant.status == "completed"
    assert participant.completed_at == participant.last_seen_at == NOW


def test_final_statuses_lead_nowhere_and_nothing_leads_to_returned() -> None:
    for final in (S.COMPLETED, S.DECLINED, S.RETURNED):
        assert not any(start == final for start, _ in TRANSITIONS)
    assert not any(to in (S.ENROLLED, S.RETURNED) for _, to in TRANSITIONS)
    assert set(ENDED_STATUSES) == {S.COMPLETED, S.DECLINED}


def test_groups() -> None:
    assert set(ACTIVE_STATUSES) == set(S) - {S.DECLINED, S.RETURNED}
    assert set(UNFINISHED_STATUSES) == {S.ENROLLED, S.CONSENTED, S.IN_PROGRESS}
    assert UNCONFIRMED in ACTIVE_STATUSES


def test_the_check_constraint_is_the_migrations_text() -> None:
    text = "status IN ('enrolled', 'consented', 'in_progress', 'completed', 'declined', 'returned')"
    assert check_constraint_sql() == text
    table = Participant.__table__
    assert isinstance(table, Table)
    checks = {
        str(c.name): str(c.sqltext) for c in table.constraints if isinstance(c, CheckConstraint)
    }
    assert checks["ck_participant_status"] == text


def test_the_codebook_lists_every_status() -> None:
    assert PARTICIPANT_CODEBOOK["status"].allowed == tuple(s.value for s in S)


def test_every_console_bucket_has_a_label() -> None:
    assert list(STATUS_LABELS) == list(STATUS_BUCKETS)
