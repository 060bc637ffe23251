"""The common answer in one SQL statement (PostgreSQL).

An answer to the participant's current trial that does not end a block is the request that
comes every few seconds from every participant. `answer_in_one_statement` stores it and reads
the next trials in a single round trip; the general ORM path (`app.services.trials`) did the
same in five statements. Everything else — a retry of a stored answer, an answer out of order,
a block end (feedback, practice repeats, exclusions), a next trial whose images are chosen from
earlier answers, a paused study, SQLite — is left to the general path, in the same transaction,
so the two paths cannot disagree on what is stored.

The statement checks what the general path checks before storing (participant in progress and
served the task page, study open, the trial is the current one: answered + skipped trials = its
index, its images are known), and stores with the same `ON CONFLICT DO NOTHING` on the same
unique keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.answer import SubmittedAnswer
from app.cache import LruCache
from app.db import utc_now
from app.lifecycle import ParticipantStatus
from app.models import Experiment
from app.schemas import TimingRead
from app.services.experiments import design_of
from app.services.participants import LAST_SEEN_RESOLUTION_S
from app.services.trials import preload_urls, trial_json

ANSWER_SQL = f"""
WITH p AS (
    SELECT p.id, p.experiment_id, p.n_trials, p.blocks
    FROM participant p
    JOIN experiment_session s ON s.id = p.experiment_session_id
    WHERE p.token = %(token)s::text AND p.status = '{ParticipantStatus.IN_PROGRESS.value}' AND s.status = 'open'
      AND p.task_page_at IS NOT NULL
), cur AS (
    SELECT t.id, t.trial_index, t.block_index, t.solution, t.feedback, p.id AS participant_id
    FROM p
    JOIN scheduled_trial t ON t.participant_id = p.id AND t.trial_index = %(trial_index)s::int
    WHERE t.task = %(task)s::text AND jsonb_typeof(t.display) = 'object'
      AND (SELECT count(*) FROM trial_response r WHERE r.participant_id = p.id)
        + (SELECT count(*) FROM scheduled_trial k WHERE k.participant_id = p.id AND k.skipped)
        = %(trial_index)s::int
), ins AS (
    INSERT INTO trial_response (
        participant_id, scheduled_trial_id, trial_index, response_uuid, answer,
        correct, rt_ms, onset_ms, answer_ms, frame_interval_mean_ms, frame_interval_max_ms,
        viewport_w_px, viewport_h_px, device_pixel_ratio, display_scale, focus_lost,
        fullscreen_exited, input_kind, via_beacon, received_at
    )
    SELECT cur.participant_id, cur.id, cur.trial_index, %(response_uuid)s::text, %(answer)s::jsonb,
        -- correct: the answer contains the solution's fields (app.tasks.base.TrialType.is_correct)
        CASE WHEN jsonb_typeof(cur.solution) = 'object' THEN %(answer)s::jsonb @> cur.solution END,
        %(rt_ms)s::float8, %(onset_ms)s::float8, %(answer_ms)s::float8, %(frame_interval_mean_ms)s::float8,
        %(frame_interval_max_ms)s::float8, %(viewport_w_px)s::int, %(viewport_h_px)s::int,
        %(device_pixel_ratio)s::float8, %(display_scale)s::float8, %(focus_lost)s::bool, %(fullscreen_exited)s::bool, %(input_kind)s::text,
        %(via_beacon)s::bool, %(now)s::timestamptz
    FROM cur
    ON CONFLICT DO NOTHING
    RETURNING correct
), seen AS (
    UPDATE participant SET last_seen_at = %(now)s::timestamptz
    WHERE id = (SELECT participant_id FROM cur)
      AND EXISTS (SELECT 1 FROM ins)
      AND (last_seen_at IS NULL OR last_seen_at <= %(stale_before)s::timestamptz)
)
SELECT ins.correct, cur.solution, cur.block_index, p.experiment_id, p.n_trials, p.blocks,
    (SELECT coalesce(jsonb_agg(n.trial ORDER BY n.trial_index), '[]'::jsonb) FROM (
        -- The whole row for the types' payloads, but never the solution: it has no business
        -- leaving the database before the answer.
        SELECT t.trial_index, (to_jsonb(t) - 'solution') || jsonb_build_object(
            'unfilled', t.trial_kind = 'repeated' AND t.stimulus_unit_id IS NULL) AS trial
        FROM scheduled_trial t
        WHERE t.participant_id = p.id AND t.trial_index > %(trial_index)s::int AND NOT t.skipped
        ORDER BY t.trial_index
        LIMIT %(window)s::int
    ) n) AS upcoming,
    cur.feedback
FROM ins, cur, p
"""


@dataclass(frozen=True)
class StoredAnswer:
    """An answer the one statement stored: what the general path's acknowledgement needs of it
    (so a block end does not read it back)."""

    trial_index: int
    block_index: int
    solution: dict[str, Any] | None
    """What a correct answer contains (`scheduled_trial.solution`)."""
    correct: bool | None
    feedback: bool
    """The trial shows feedback: only then may the acknowledgement say what was correct."""


def answer_feedback(stored: StoredAnswer) -> dict[str, Any]:
    """The acknowledgement's `correct` and `solution`: null unless the trial gives feedback,
    so that an answer's correctness never reaches a participant who is not shown it
    (docs/participant_api.md)."""
    if not stored.feedback:
        return {"correct": None, "solution": None}
    return {"correct": stored.correct, "solution": stored.solution}


@dataclass(frozen=True)
class FastAnswer:
    """What the one statement did: `ack` is None when the general path must finish the request;
    `answer` is what the statement stored, None when it stored nothing."""

    ack: dict[str, Any] | None
    answer: StoredAnswer | None = None

    @property
    def stored(self) -> bool:
        return self.answer is not None


_TIMING_KEYS = tuple(TimingRead.model_fields)
_TIMINGS: LruCache[tuple[str, int], dict[str, Any]] = LruCache(256)


def load_timing(session: Session, experiment_id: int) -> dict[str, Any]:
    """The design's timing block of an experiment (cached: designs never change; keyed by the
    database too, since experiment ids repeat across databases)."""

    def compute() -> dict[str, Any]:
        experiment = session.get(Experiment, experiment_id)
        assert experiment is not None  # the participant row references it
        timing = design_of(experiment).timing.model_dump()
        return {key: timing[key] for key in _TIMING_KEYS}

    database = session.get_bind().engine.url.render_as_string(hide_password=True)
    return _TIMINGS.get((database, experiment_id), compute)


def statement_params(
    token: str,
    submit: SubmittedAnswer,
    *,
    via_beacon: bool,
    ahead: int,
    received_at: datetime | None = None,
) -> dict[str, Any]:
    """The parameters of ANSWER_SQL for one answer."""
    now = received_at or utc_now()
    values = submit.row_values(via_beacon=via_beacon)
    return {
        "token": token,
        "trial_index": submit.trial_index,
        **values,
        "task": submit.task,
        "answer": json.dumps(values["answer"], separators=(",", ":")),
        "now": now,
        "stale_before": now - timedelta(seconds=LAST_SEEN_RESOLUTION_S),
        "window": ahead + 1,
    }


def stored_of(row: Any, submit: SubmittedAnswer) -> StoredAnswer:
    """The answer a row of the statement says it stored."""
    correct, solution, block_index, feedback = row[0], row[1], row[2], row[7]
    return StoredAnswer(submit.trial_index, block_index, solution, correct, bool(feedback))


def ack_from_row(
    row: Any, submit: SubmittedAnswer, timing_of: Callable[[int], dict[str, Any] | None]
) -> FastAnswer:
    """The acknowledgement from the statement's row (None: no answer stored by it).

    `timing_of(experiment_id)` gives the design's timing block; None leaves the answer (already
    stored) to the general path.
    """
    if row is None:
        return FastAnswer(ack=None)
    stored = stored_of(row, submit)
    block_index, experiment_id, n_trials, blocks, upcoming = row[2:7]
    first_index = sum(b["n_trials"] for b in blocks[:block_index])
    if submit.trial_index == first_index + blocks[block_index]["n_trials"] - 1:
        # a block ends: feedback, repeats, exclusions
        return FastAnswer(ack=None, answer=stored)
    n_answered = submit.trial_index + 1
    nxt: dict[str, Any]
    if not upcoming:
        nxt = {
            "step": "done",
            "n_trials": n_trials,
            "n_answered": n_answered,
            "trial": None,
            "preload": [],
        }
    else:
        current = upcoming[0]
        timing = timing_of(experiment_id)
        if current["unfilled"] or timing is None:
            # e.g. images chosen from earlier answers
            return FastAnswer(ack=None, answer=stored)
        nxt = {
            "step": "trial",
            "n_trials": n_trials,
            "n_answered": n_answered,
            "trial": trial_json(current, blocks=blocks, timing=timing),
            "preload": preload_urls(upcoming[1:]),
        }
    return FastAnswer(
        answer=stored, ack=acknowledgement(stored, duplicate=False, block_end=None, next_step=nxt)
    )


def acknowledgement(
    stored: StoredAnswer,
    *,
    duplicate: bool,
    block_end: dict[str, Any] | None,
    next_step: dict[str, Any],
) -> dict[str, Any]:
    """The acknowledgement of a stored answer (`ResponseAck`), whichever way it was stored."""
    return {
        "trial_index": stored.trial_index,
        "duplicate": duplicate,
        **answer_feedback(stored),
        "block_end": block_end,
        "next": next_step,
    }


def answer_in_one_statement(
    session: Session,
    token: str,
    submit: SubmittedAnswer,
    *,
    via_beacon: bool,
    ahead: int,
    autocommit_engine: Engine | None = None,
    received_at: datetime | None = None,
) -> FastAnswer:
    """Store the current trial's answer and build its acknowledgement in one statement.

    With `autocommit_engine` and no transaction open in `session`, the statement runs alone on
    a connection of that engine in autocommit mode: one round trip (no BEGIN, COMMIT or
    pre-ping), committed when it returns. Otherwise — or when `session` is bound to a
    connection, as tests bind theirs to run routes inside a transaction that is rolled back —
    it runs in the session's transaction and the caller commits.
    Returns `ack=None` for every case the general path handles (see the module docstring).
    """
    params = statement_params(
        token, submit, via_beacon=via_beacon, ahead=ahead, received_at=received_at
    )
    own_transaction = session.in_transaction() or isinstance(session.get_bind(), Connection)
    if autocommit_engine is not None and not own_transaction:
        row = _run_autocommit(autocommit_engine, params)
    else:
        row = session.connection().exec_driver_sql(ANSWER_SQL, params).first()
    return ack_from_row(row, submit, lambda experiment_id: load_timing(session, experiment_id))


def _run_autocommit(engine: Engine, params: dict[str, Any]) -> Any:
    """The statement on its own autocommit connection; once more after a dropped connection.

    The engine has no pre-ping: a connection that died with the server (restart, failover)
    fails here, SQLAlchemy invalidates it and the pool's older ones, and the retry gets a new
    one. Retrying is safe: the statement stores nothing twice (unique keys).
    """
    for attempt in (1, 2):
        try:
            with engine.connect() as raw:
                conn: Connection = raw.execution_options(isolation_level="AUTOCOMMIT")
                return conn.exec_driver_sql(ANSWER_SQL, params).first()
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")
