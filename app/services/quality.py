"""Quality control: summarise a participant's stored data and apply the design's exclusions."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import designs
from app.db import utc_now
from app.models import Participant, ScheduledTrial, TrialResponse
from app.services.experiments import design_of


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    start, end = _aware(start), _aware(end)
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


AnsweredRow = tuple[str, int, str | None, bool | None]
"""(trial_kind, block_index, 2-AFC response, correct) of one stored answer."""


@dataclass(frozen=True)
class Answered:
    """A participant's stored answers with their trials' kind and block, and how many catch
    trials the schedule plans: what the block score and the exclusion checks need."""

    rows: list[AnsweredRow]
    catch_planned: int


def answered_rows(session: Session, participant: Participant) -> Answered:
    """The participant's stored answers and planned catch trials, in one query: every
    scheduled trial, with its answer where there is one."""
    found = session.execute(
        select(
            ScheduledTrial.trial_kind,
            ScheduledTrial.block_index,
            TrialResponse.answer,
            TrialResponse.correct,
        )
        # Both sides filtered by participant: with only one, Postgres hash-joins a sequential
        # scan of every stored answer (8 ms at 20,000 answers, growing with the database).
        .outerjoin(
            TrialResponse,
            (TrialResponse.scheduled_trial_id == ScheduledTrial.id)
            & (TrialResponse.participant_id == participant.id),
        )
        # The checks judge the 2-AFC answers, not those of task blocks (ratings: no right answer).
        .where(ScheduledTrial.participant_id == participant.id, ScheduledTrial.trial_kind != "task")
    ).all()
    return Answered(
        rows=[
            (kind, block, answer.get("response"), correct)
            for kind, block, answer, correct in found
            if answer is not None
        ],
        catch_planned=sum(1 for kind, _, _, _ in found if kind == "catch"),
    )


def participant_summary(
    session: Session, participant: Participant, answered: Answered | None = None
) -> designs.ParticipantSummary:
    """What the exclusion criteria need, from the participant's stored rows (one query, none
    when the caller has `answered_rows` already)."""
    if answered is None:
        answered = answered_rows(session, participant)
    rows = answered.rows
    catch_planned = answered.catch_planned
    catch_correct = sum(1 for kind, _, _, ok in rows if kind == "catch" and ok)
    catch_answered = sum(1 for kind, _, _, _ in rows if kind == "catch")
    counted = [resp for kind, _, resp, _ in rows if kind != "practice"]
    per_block: dict[int, list[bool]] = defaultdict(list)
    for _, block_index, _, ok in rows:
        per_block[block_index].append(bool(ok))
    attempts = 0
    passed: bool | None = None
    for block in participant.blocks:
        if not block.get("repeat_until_correct"):
            continue
        answers = per_block.get(block["block_index"], [])
        if not answers:
            continue
        attempts = max(attempts, int(block.get("attempt", 1)))
        if len(answers) == block["n_trials"]:
            if all(answers):
                passed = True
            elif passed is None:
                passed = False
    finished = participant.status == "completed"
    end = participant.completed_at if finished else utc_now()
    return designs.ParticipantSummary(
        finished=finished,
        catch_correct=catch_correct,
        catch_answered=catch_answered,
        catch_planned=catch_planned,
        total_time_s=_seconds(participant.consented_at, end),
        instruction_time_s=_seconds(
            participant.instructions_shown_at, participant.instructions_done_at
        ),
        answers_upper=sum(1 for r in counted if r == "upper"),
        answers_lower=sum(1 for r in counted if r == "lower"),
        practice_attempts=attempts,
        practice_passed=passed,
    )


def apply_exclusions(
    session: Session, participant: Participant, answered: Answered | None = None
) -> list[str]:
    """Evaluate the design's exclusion criteria now and store the result on the participant."""
    reasons = designs.evaluate_exclusions(
        design_of(participant.experiment), participant_summary(session, participant, answered)
    )
    participant.excluded = bool(reasons)
    participant.exclusion_reasons = list(reasons)
    return list(reasons)


def median_answer_interval_ms(
    task_page_at: datetime | None, received: Iterable[datetime]
) -> float | None:
    """The median time between consecutive answers as the server received them, the first
    counted from the task page being served (server clock only: a client cannot fake it).

    None without an interval to measure (no answer, or one answer and no task page time).
    """
    times = sorted(t for t in (_aware(r) for r in received) if t is not None)
    start = _aware(task_page_at)
    if start is not None and (not times or start <= times[0]):
        times.insert(0, start)
    if len(times) < 2:
        return None
    return statistics.median((b - a).total_seconds() * 1000 for a, b in pairwise(times))


def implausibly_fast(median_interval_ms: float | None, min_median_ms: float) -> bool | None:
    """Whether answers came faster than people answer (the design's `[quality]`
    `min_median_answer_interval_ms`); None when not judged (nothing measured, or the flag is
    off: 0)."""
    if median_interval_ms is None or min_median_ms <= 0:
        return None
    return median_interval_ms < min_median_ms
