"""Round 2 of the hostile review: nothing gives away the answer before it is stored, no filling
a study, trustworthy client addresses, bounded uploads, browser-side defences
(docs/reliability.md, "Hostile review")."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import StimulusSet
from tests.app.routes.test_participant_flow import answer, enrol, start_task
from tests.factories import make_experiment, make_launch

NO_FEEDBACK_DESIGN = """
name = "hostile-no-feedback"
seed = "hostile"
every_unit_once = false

[conditions.natural]
reference_type = "natural"
n_references = 9
grid_mode = "min_max"

[feedback.main]
trial = false
block = false

[[blocks]]
kind = "main"
condition = "natural"
n_trials = 3
"""


def _running(
    client: TestClient,
    db_session: Session,
    demo_set: StimulusSet,
    pid: str,
    design_text: str | None = None,
) -> tuple[str, dict[str, Any]]:
    experiment = (
        make_experiment(db_session, demo_set, design="hostile", design_text=design_text)
        if design_text
        else make_experiment(db_session, demo_set)
    )
    launched = make_launch(db_session, experiment)
    db_session.commit()
    token = enrol(client, launched.link_code, {"PROLIFIC_PID": pid})
    return token, start_task(client, token)


# --- row 1: no correctness where the trial gives no feedback -------------------------------------


def test_answers_without_feedback_do_not_say_what_was_correct(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    token, _ = _running(client, db_session, demo_set, "nofb-1", NO_FEEDBACK_DESIGN)
    acks = [client.post(f"/api/p/{token}/responses", json=answer(i)) for i in range(3)]
    for ack in acks:
        assert ack.status_code == 200, ack.text
        body = ack.json()
        assert body["correct"] is None and body["correct_response"] is None
    # The block end says the block ended but not its score.
    assert acks[-1].json()["block_end"]["n_correct"] is None


def test_answers_with_feedback_still_say_what_was_correct(
    client: TestClient, db_session: Session, demo_set: StimulusSet
) -> None:
    token, _ = _running(client, db_session, demo_set, "fb-1")
    body = client.post(f"/api/p/{token}/responses", json=answer(0)).json()
    assert isinstance(body["correct"], bool)
    assert body["correct_response"] in ("upper", "lower")
