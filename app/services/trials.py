"""The trial path: what comes next (server decides) and idempotent answer recording."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from app import designs
from app.answer import SubmittedAnswer
from app.db import insert_ignoring_conflicts, utc_now
from app.errors import InvalidInput, OutOfOrder, SessionUnavailable
from app.lifecycle import ENDED_STATUSES, ParticipantStatus
from app.models import Participant, ParticipantEvent, ScheduledTrial, TrialResponse
from app.schedule import BlockSpec, Schedule, TrialKind
from app.services.experiments import design_of
from app.services.participants import (
    done_count,
    experiment_lookup,
    n_before_instructions,
    scheduled_values,
    touch_last_seen,
)
from app.services.quality import answered_rows, apply_exclusions
from app.services.stimuli import catalog_of
from app.tasks import image_url, task_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recorded:
    """The stored answer and whether this request was a repeat of an earlier one."""

    response: TrialResponse
    trial: ScheduledTrial
    duplicate: bool
    n_done: int | None = None
    """Trials answered or skipped once this answer is stored (None: count again)."""


def _check_active(participant: Participant, trial_index: int) -> None:
    """Answers are taken while the study is open, from a participant who loaded the task page
    and is in progress; trials before the instructions (start ratings) from one who consented."""
    status = participant.experiment_session.status
    if status != "open":
        raise SessionUnavailable(f"this study is {status}")
    before_instructions = trial_index < n_before_instructions(participant)
    if participant.status != ParticipantStatus.IN_PROGRESS and not (
        before_instructions and participant.status == ParticipantStatus.CONSENTED
    ):
        if participant.status == ParticipantStatus.COMPLETED:
            raise OutOfOrder("the study is finished; no more answers are taken")
        raise OutOfOrder("the study has not started (consent and instructions first)")
    if participant.task_page_at is None:
        raise OutOfOrder("the task page was not loaded: open the study link to answer")


def _fill_repeated_if_needed(
    session: Session, participant: Participant, trial: ScheduledTrial
) -> None:
    """Repeated trials are chosen from the participant's own answers when first reached."""
    if trial.trial_kind != "repeated" or trial.stimulus_unit_id is not None:
        return
    experiment = participant.experiment
    design = design_of(experiment)
    rows = session.execute(
        select(ScheduledTrial, TrialResponse)
        .join(TrialResponse, TrialResponse.scheduled_trial_id == ScheduledTrial.id)
        # Both sides filtered by participant, so Postgres uses both indexes (quality.py).
        .where(
            ScheduledTrial.participant_id == participant.id,
            TrialResponse.participant_id == participant.id,
        )
        .order_by(ScheduledTrial.trial_index)
    ).all()
    units, hashes = experiment_lookup(session, experiment, design.images.encoding)
    unit_keys = {u.id: key for key, u in units.items()}
    answers = [
        designs.AnsweredTrial(
            trial_index=st.trial_index,
            trial_kind=cast(TrialKind, st.trial_kind),
            condition=st.condition,
            unit_id=unit_keys.get(st.stimulus_unit_id) if st.stimulus_unit_id else None,
            batch=st.batch,
            response=resp.answer.get("response", ""),
            confidence=resp.answer.get("confidence", 0),
            correct=bool(resp.correct),
        )
        for st, resp in rows
    ]
    # Regenerating the schedule is deterministic (seeded) and happens once per participant.
    schedule = designs.generate_schedule(
        design,
        catalog_of(experiment.stimulus_set),
        participant.participant_number,
        arm=participant.arm,
    )
    filled = designs.fill_repeated(schedule, answers)
    new_rows = {
        values["trial_index"]: values
        for values in scheduled_values(participant.id, filled, units, hashes)
    }
    for row in session.scalars(
        select(ScheduledTrial).where(
            ScheduledTrial.participant_id == participant.id,
            ScheduledTrial.trial_kind == "repeated",
            ScheduledTrial.stimulus_unit_id.is_(None),
        )
    ):
        new = new_rows.get(row.trial_index)
        if new is None:
            continue
        for attr in (
            "task",
            "solution",
            "stimulus_unit_id",
            "batch",
            "query_order",
            "display",
            "repeat_of_trial_index",
            "condition",
            "reference_type",
            "n_references",
            "grid_mode",
        ):
            setattr(row, attr, new[attr])
    session.flush()


_PAYLOAD_COLUMNS = tuple(
    column for column in cast(Table, ScheduledTrial.__table__).columns if column.key != "solution"
)


def trial_columns(trial: ScheduledTrial) -> dict[str, Any]:
    """A `scheduled_trial` row as a mapping of its columns (what `TrialType.payload` reads),
    without the solution, which no payload may use."""
    return {column.key: getattr(trial, column.key) for column in _PAYLOAD_COLUMNS}


def trial_payload(participant: Participant, trial: ScheduledTrial) -> dict[str, Any]:
    """What the browser needs to show one trial; nothing in it reveals the correct answer."""
    return trial_json(
        trial_columns(trial),
        blocks=participant.blocks,
        timing=design_of(participant.experiment).timing.model_dump(),
    )


def trial_json(
    trial: Mapping[str, Any], *, blocks: list[dict[str, Any]], timing: dict[str, Any]
) -> dict[str, Any]:
    """The trial payload from a scheduled trial's columns (`trial_payload` takes them from an
    ORM row, `app.services.fast_answer` from its statement's row): the generic part, then the
    trial type's (`TrialType.payload`)."""
    trial_index, block_index = trial["trial_index"], trial["block_index"]
    block = blocks[block_index]
    first_index = sum(b["n_trials"] for b in blocks[:block_index])
    if block["kind"] == "task":
        progress = {"index": trial_index - first_index, "total": block["n_trials"]}
    else:
        # Task blocks come only before and after the 2-AFC blocks.
        task_before = sum(b["n_trials"] for b in blocks[:block_index] if b["kind"] == "task")
        progress = {
            "index": trial_index - task_before,
            "total": sum(b["n_trials"] for b in blocks if b["kind"] != "task"),
        }
    return {
        "trial_index": trial_index,
        "block": {
            "block_index": block_index,
            "kind": block["kind"],
            "title": block["title"],
            "n_trials": block["n_trials"],
            "position": trial_index - first_index,
            "block_feedback": block["block_feedback"],
            "break_after": block["break_after"],
            # The first block after practice: the page says that practice is over.
            "after_practice": block["kind"] != "practice"
            and block_index > 0
            and blocks[block_index - 1]["kind"] == "practice",
        },
        "progress": progress,
        "feedback": trial["feedback"],
        "timing": timing,
        **task_of(trial.get("task")).payload(trial),
    }


def preload_urls(trials: Iterable[Mapping[str, Any]]) -> list[str]:
    """The image URLs of upcoming trials (mappings with `task` and `display`), in order, each
    once; up to the first trial whose images are not chosen yet (they depend on answers still
    to come)."""
    urls: dict[str, None] = {}
    for trial in trials:
        display = trial.get("display")
        if not display:
            break
        for name in task_of(trial.get("task")).preload(display):
            urls[image_url(name)] = None
    return list(urls)


def next_step(
    session: Session, participant: Participant, *, n_answered: int | None = None, ahead: int = 3
) -> dict[str, Any]:
    """The participant's next step: the first unanswered trial plus images to preload."""
    return next_step_and_images(session, participant, n_answered=n_answered, ahead=ahead)[0]


def next_step_and_images(
    session: Session, participant: Participant, *, n_answered: int | None = None, ahead: int = 3
) -> tuple[dict[str, Any], list[str]]:
    """`next_step`, and the image URLs of its trial (none unless the step is a trial): the task
    page's preload hints, from the rows the step is read from."""
    if n_answered is None:
        n_answered = done_count(session, participant.id)
    base: dict[str, Any] = {"n_trials": participant.n_trials, "n_answered": n_answered}
    if n_answered >= participant.n_trials:
        return {**base, "step": "done", "trial": None, "preload": []}, []
    if participant.status != ParticipantStatus.IN_PROGRESS and n_answered >= n_before_instructions(
        participant
    ):
        # The trials before the instructions are done: the instructions page comes next.
        return {**base, "step": "page", "trial": None, "preload": []}, []
    rows = list(
        session.scalars(
            select(ScheduledTrial)
            .where(
                ScheduledTrial.participant_id == participant.id,
                ScheduledTrial.trial_index >= n_answered,
                ScheduledTrial.skipped.is_(False),
            )
            .order_by(ScheduledTrial.trial_index)
            .limit(ahead + 1)
        )
    )
    current = rows[0]
    if current.trial_kind == "repeated" and current.stimulus_unit_id is None:
        _fill_repeated_if_needed(session, participant, current)
    step = {
        **base,
        "step": "trial",
        "trial": trial_payload(participant, current),
        "preload": preload_urls({"task": row.task, "display": row.display} for row in rows[1:]),
    }
    return step, preload_urls([{"task": current.task, "display": current.display}])


def _find_by_uuid(
    session: Session, participant: Participant, response_uuid: str
) -> Recorded | None:
    """The participant's stored answer with this uuid and its trial (duplicate=True), if any.

    Raises:
        OutOfOrder: the uuid belongs to another participant's answer (nothing is revealed).
    """
    found = session.execute(
        select(TrialResponse, ScheduledTrial)
        .join(ScheduledTrial, TrialResponse.scheduled_trial_id == ScheduledTrial.id)
        .where(TrialResponse.response_uuid == response_uuid)
    ).first()
    if found is None:
        return None
    response, trial = found
    if response.participant_id != participant.id:
        # Another participant's uuid: treat as a conflict, reveal nothing.
        raise OutOfOrder("this response id was used before")
    return Recorded(response, trial, duplicate=True)


def record_response(
    session: Session,
    participant: Participant,
    submit: SubmittedAnswer,
    *,
    received_at: datetime | None = None,
    via_beacon: bool = False,
) -> Recorded:
    """Store an answer exactly once.

    The same `response_uuid` again returns the stored answer (duplicate=True). Any other answer
    to a trial that is not the participant's current one raises OutOfOrder, storing nothing.
    """
    try:
        _check_active(participant, submit.trial_index)
        n_answered = done_count(session, participant.id)
        if submit.trial_index != n_answered:
            raise OutOfOrder(f"trial {submit.trial_index} is not the current trial ({n_answered})")
        trial = session.scalar(
            select(ScheduledTrial).where(
                ScheduledTrial.participant_id == participant.id,
                ScheduledTrial.trial_index == submit.trial_index,
            )
        )
        if trial is None or not trial.display:
            raise OutOfOrder(f"trial {submit.trial_index} is not in the schedule")
    except (OutOfOrder, SessionUnavailable):
        # A retry of a stored answer is never the current trial (its trial counts as done), so
        # the uuid is looked up only here: the common first attempt saves a query, and a new
        # uuid that collides with a stored one still fails on the unique key below.
        earlier = _find_by_uuid(session, participant, submit.response_uuid)
        if earlier is not None:
            return earlier
        raise
    if trial.task != submit.task:
        raise InvalidInput(
            f"trial {trial.trial_index} is a {trial.task} trial; the answer is for {submit.task}"
        )
    now = received_at or utc_now()
    values = {
        "participant_id": participant.id,
        "scheduled_trial_id": trial.id,
        "trial_index": trial.trial_index,
        "correct": task_of(trial.task).is_correct(submit.fields, trial.solution),
        **submit.row_values(via_beacon=via_beacon),
        "received_at": now,
    }
    # The unique keys (participant, trial) and (response_uuid) decide: a concurrent request that
    # stored this trial first makes this insert store nothing.
    dialect = session.get_bind().dialect.name
    table = cast(Table, TrialResponse.__table__)
    stmt = insert_ignoring_conflicts(table, dialect).returning(table.c.id)
    stored_id = session.execute(stmt, values).scalar()
    if stored_id is None:
        earlier = _find_by_uuid(session, participant, submit.response_uuid)
        if earlier is not None:
            return earlier
        raise OutOfOrder(f"trial {submit.trial_index} was answered already")
    # The acknowledgement needs the stored values only; the row itself is not loaded back.
    response = TrialResponse(id=stored_id, **values)
    touch_last_seen(participant, now)
    # Only this answer changed the count: a rival insert for this trial fails on the unique key.
    return Recorded(response, trial, duplicate=False, n_done=n_answered + 1)


@dataclass(frozen=True)
class BlockEnd:
    """What the last answer of a block did."""

    feedback: dict[str, int | None]
    """`{"block_index", "n_correct", "n_trials"}`, the acknowledgement's `block_end`."""
    skipped: bool
    """Practice attempts were skipped: the done count grew by more than this answer."""


def finish_block(
    session: Session, participant: Participant, block_index: int, trial_index: int
) -> BlockEnd | None:
    """After the last trial of a block: block feedback counts, practice repeats, live exclusions.

    Returns:
        None unless trial `trial_index` (of block `block_index`) ended its block.
    """
    blocks = participant.blocks
    block = blocks[block_index]
    last_index = sum(b["n_trials"] for b in blocks[: block_index + 1]) - 1
    if trial_index != last_index:
        return None
    # One query for the block's score and the exclusion checks below.
    answered = answered_rows(session, participant)
    n_correct = sum(1 for _, index, _, ok in answered.rows if index == block_index and ok)
    skip: list[int] = []
    if block.get("repeat_until_correct"):
        schedule = Schedule(
            design=participant.experiment.design_name,
            participant_number=participant.participant_number,
            seed=participant.seed,
            blocks=tuple(BlockSpec.model_validate(b) for b in blocks),
            trials=(),
        )
        skip = list(designs.attempts_to_skip(schedule, block_index, n_correct == block["n_trials"]))
        if skip:
            session.execute(
                update(ScheduledTrial)
                .where(
                    ScheduledTrial.participant_id == participant.id,
                    ScheduledTrial.block_index.in_(skip),
                )
                .values(skipped=True)
            )
    apply_exclusions(session, participant, answered)
    return BlockEnd(
        feedback={
            "block_index": block_index,
            # The score only where the block shows it: mid-study it would tell which answers
            # of a block without trial feedback were right.
            "n_correct": n_correct if block.get("block_feedback", True) else None,
            "n_trials": block["n_trials"],
        },
        skipped=bool(skip),
    )


@dataclass(frozen=True)
class BrowserEvent:
    """One event the participant's browser reported (focus, fullscreen, resize, heartbeat...)."""

    kind: str
    client_ms: float | None = None
    """When it happened, in ms on the page's clock (`performance.now()`)."""
    trial_index: int | None = None
    """The trial shown when it happened."""
    data: dict[str, Any] = field(default_factory=dict)
    """Small details of the event (validated by the caller: short keys, scalar values)."""


def record_events(
    session: Session, participant: Participant, events: Sequence[BrowserEvent]
) -> int:
    """Store reported browser events (heartbeats are not stored); every call also counts as a
    heartbeat.

    Returns:
        How many events were reported.

    Raises:
        OutOfOrder: the participant has finished or declined: nothing of theirs is recorded
            after their end.
    """
    if participant.status in ENDED_STATUSES:
        raise OutOfOrder("this participant's study has ended")
    now = utc_now()
    for event in events:
        if event.kind == "heartbeat":
            continue
        session.add(
            ParticipantEvent(
                participant_id=participant.id,
                kind=event.kind,
                client_ms=event.client_ms,
                trial_index=event.trial_index,
                data=event.data,
                received_at=now,
            )
        )
    touch_last_seen(participant, now)
    return len(events)
