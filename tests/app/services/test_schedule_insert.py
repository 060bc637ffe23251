"""Enrolment stores the schedule in one statement on PostgreSQL; the rows are exactly those the
multi-row INSERT (SQLite, and PostgreSQL before) stores."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from app.models import ScheduledTrial, StimulusSet
from app.services import participants as participant_service
from tests.factories import make_experiment, make_launch

COLUMNS = [
    c.name for c in ScheduledTrial.__table__.columns if c.name not in ("id", "participant_id")
]


def _stored(session: Session, participant_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(ScheduledTrial)
        .where(ScheduledTrial.participant_id == participant_id)
        .order_by(ScheduledTrial.trial_index)
    ).scalars()
    return [{c: getattr(row, c) for c in COLUMNS} for row in rows]


def test_enrolment_schedule_rows_equal_the_multi_row_insert(
    db_session: Session, demo_set: StimulusSet
) -> None:
    launched = make_launch(db_session, make_experiment(db_session, demo_set))
    participant, _ = participant_service.enrol(db_session, launched, {"PROLIFIC_PID": "insert"})
    db_session.flush()
    enrolled = _stored(db_session, participant.id)
    assert len(enrolled) == participant.n_trials
    assert any(row["catch_query_indices"] is None for row in enrolled)
    values = [{**row, "participant_id": participant.id} for row in enrolled]
    table = ScheduledTrial.__table__
    mine = table.c.participant_id == participant.id

    db_session.execute(table.delete().where(mine))
    db_session.execute(insert(ScheduledTrial), values)
    multi_row = _stored(db_session, participant.id)
    raw_multi_row = _raw(db_session, participant.id)

    db_session.execute(table.delete().where(mine))
    participant_service.insert_schedule(db_session, values)
    assert _stored(db_session, participant.id) == multi_row == enrolled
    # Down to the stored JSON: None is JSON null in both, never SQL NULL.
    assert _raw(db_session, participant.id) == raw_multi_row


def _raw(session: Session, participant_id: int) -> list[tuple[Any, ...]]:
    """display and catch_query_indices as the database holds them (text, or SQL NULL)."""
    rows = session.execute(
        text(
            "SELECT trial_index, CAST(display AS TEXT), CAST(catch_query_indices AS TEXT) "
            "FROM scheduled_trial WHERE participant_id = :p ORDER BY trial_index"
        ),
        {"p": participant_id},
    ).all()
    return [tuple(r) for r in rows]
