"""The unique keys decide races: two requests that both pass the current-trial check store once."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.answer import SubmittedAnswer
from app.errors import OutOfOrder
from app.models import StimulusSet, TrialResponse
from app.services import participants as participant_service
from app.services import trials as trial_service
from tests.factories import make_experiment, make_launch


def test_insert_race_stores_once_and_answers_duplicate_or_conflict(
    db_session: Session, demo_set: StimulusSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    launched = make_launch(db_session, make_experiment(db_session, demo_set))
    participant, _ = participant_service.enrol(db_session, launched, {"PROLIFIC_PID": "race"})
    participant_service.record_consent(participant, True)
    participant_service.finish_instructions(db_session, participant)
    participant_service.task_page_served(participant)
    db_session.flush()
    # Both rival requests read "trial 0 is current" before either stored its answer.
    monkeypatch.setattr(trial_service, "done_count", lambda session, participant_id: 0)

    def submit(response_uuid: str) -> SubmittedAnswer:
        return SubmittedAnswer(
            response_uuid=response_uuid,
            trial_index=0,
            task="afc2",
            fields={"response": "upper", "confidence": 2},
            rt_ms=700.0,
        )

    first_uuid = str(uuid.uuid4())
    first = trial_service.record_response(db_session, participant, submit(first_uuid))
    assert first.duplicate is False and first.response.id is not None
    with pytest.raises(OutOfOrder):
        trial_service.record_response(db_session, participant, submit(str(uuid.uuid4())))
    again = trial_service.record_response(db_session, participant, submit(first_uuid))
    assert again.duplicate is True and again.response.id == first.response.id
    count = db_session.scalar(
        select(func.count())
        .select_from(TrialResponse)
        .where(TrialResponse.participant_id == participant.id)
    )
    assert count == 1
