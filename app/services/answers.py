"""One answer path: from a submitted answer to the stored row and its acknowledgement.

Every caller (the participant API route, benchmarks, tests) stores answers through
`submit_answer`. On PostgreSQL the common answer — the current trial, inside its block — is
stored and acknowledged by one statement (`app.services.fast_answer.ANSWER_SQL`) in one round
trip; whatever that statement leaves (a block end, a retry of a stored answer, an answer out of
order, SQLite) continues in the same call on the ORM path (`app.services.trials`). Both store
with the same unique keys, so an answer is stored exactly once whichever way it went; the
acknowledgement is built by `acknowledgement` for both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.answer import SubmittedAnswer
from app.models import Participant
from app.services import trials as trial_service
from app.services.fast_answer import StoredAnswer, acknowledgement, answer_in_one_statement

__all__ = ["Answered", "acknowledgement", "submit_answer"]


@dataclass(frozen=True)
class Answered:
    """What `submit_answer` did: the acknowledgement (a dict; `json()` for the wire) and
    whether the one statement finished it alone (for profiling)."""

    ack: dict[str, Any]
    one_statement: bool = False

    def json(self) -> bytes:
        return json.dumps(self.ack, separators=(",", ":")).encode()


def submit_answer(
    session: Session,
    participant_of: Callable[[Session, str], Participant],
    token: str,
    submit: SubmittedAnswer,
    *,
    via_beacon: bool,
    ahead: int,
    autocommit_engine: Engine | None = None,
) -> Answered:
    """Store `submit` for the participant of `token` exactly once and acknowledge it.

    Args:
        session: the request's session; committed here once the answer and any block end are
            stored (the acknowledgement is only built from committed data).
        participant_of: `(session, token) -> Participant`, raising NotFound for a bad token.
        token: the participant's access token.
        submit: the validated answer.
        via_beacon: it came by `navigator.sendBeacon` (stored with the row).
        ahead: upcoming trials whose images the acknowledgement lists for preloading.
        autocommit_engine: PostgreSQL: the connections of the one-statement answer
            (autocommit, one round trip); None runs it in `session`'s transaction.

    Returns:
        The acknowledgement (see docs/participant_api.md).

    Raises:
        NotFound, OutOfOrder, StudyClosed, Conflict: as `trials.record_response`.
    """
    stored: StoredAnswer | None = None
    if session.get_bind().dialect.name == "postgresql":
        fast = answer_in_one_statement(
            session,
            token,
            submit,
            via_beacon=via_beacon,
            ahead=ahead,
            autocommit_engine=autocommit_engine,
        )
        if fast.ack is not None:
            session.commit()
            return Answered(fast.ack, one_statement=True)
        stored = fast.answer
    participant = participant_of(session, token)
    duplicate = False
    if stored is None:
        recorded = trial_service.record_response(
            session, participant, submit, via_beacon=via_beacon
        )
        trial = recorded.trial
        stored = StoredAnswer(
            trial.trial_index,
            trial.block_index,
            trial.solution,
            recorded.response.correct,
            trial.feedback,
        )
        duplicate = recorded.duplicate
        n_done = recorded.n_done
    else:
        # Stored a moment ago by the one statement, which checked that this was the current
        # trial (done count = its index): not read back, counted or checked again. Were the
        # block end below to fail, the client's retry (same response_uuid) redoes it: it is
        # idempotent.
        n_done = stored.trial_index + 1
    # Idempotent: a retried last answer of a block gets its block feedback again.
    block_end = trial_service.finish_block(
        session, participant, stored.block_index, stored.trial_index
    )
    # The count is known unless practice attempts were skipped: saves a query per answer.
    n_answered = n_done if block_end is None or not block_end.skipped else None
    next_step = trial_service.next_step(session, participant, n_answered=n_answered, ahead=ahead)
    session.commit()
    return Answered(
        acknowledgement(
            stored,
            duplicate=duplicate,
            block_end=block_end.feedback if block_end is not None else None,
            next_step=next_step,
        )
    )
