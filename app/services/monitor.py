"""Live monitoring of an experiment: participants by status and condition, activity, accuracy.

Everything comes from a handful of aggregate queries (no query per participant). Test-mode
participants are left out of every count and reported as one separate number. Accuracy counts
included participants only (as app.analysis does by default); excluded ones are reported
beside it.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from app.db import utc_now
from app.lifecycle import (
    STATUS_BUCKETS,
    STATUS_LABELS,
    UNFINISHED_STATUSES,
    ParticipantStatus,
    StatusBucket,
)
from app.models import Experiment, Participant, ScheduledTrial, TrialResponse
from app.services.export import participant_label

NO_ARM = "no arms (within-subject)"
"""The by-arm row of designs without arms: every participant sees every condition."""
ACTIVE_LIST_LIMIT = 100


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _iso(value: datetime | None) -> str | None:
    value = _aware(value)
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else None


def status_bucket_expr(cutoff: datetime) -> Any:
    """SQL expression that puts a participant in one of `STATUS_BUCKETS` (`app.lifecycle`)."""
    unfinished = Participant.status.in_(UNFINISHED_STATUSES)
    return case(
        (Participant.excluded.is_(True), StatusBucket.EXCLUDED.value),
        (Participant.status == ParticipantStatus.COMPLETED, StatusBucket.COMPLETED.value),
        (Participant.status == ParticipantStatus.DECLINED, StatusBucket.DECLINED.value),
        (Participant.status == ParticipantStatus.RETURNED, StatusBucket.RETURNED.value),
        (and_(unfinished, Participant.last_seen_at < cutoff), StatusBucket.RETURNED.value),
        (Participant.status == ParticipantStatus.IN_PROGRESS, StatusBucket.IN_PROGRESS.value),
        else_=StatusBucket.STARTED.value,
    )


def status_label(session: Session, participant: Participant, cutoff: datetime) -> str:
    """The console's word for one participant's status (same rule as `status_bucket_expr`)."""
    bucket = session.scalar(
        select(status_bucket_expr(cutoff)).where(Participant.id == participant.id)
    )
    return STATUS_LABELS[str(bucket)]


def participant_counts(session: Session, experiment_ids: list[int]) -> dict[int, int]:
    """Participants per experiment, test mode left out (experiments with none are missing)."""
    if not experiment_ids:
        return {}
    rows = session.execute(
        select(Participant.experiment_id, func.count())
        .where(Participant.experiment_id.in_(experiment_ids), Participant.test_mode.is_(False))
        .group_by(Participant.experiment_id)
    )
    return dict(rows.all())


def participant_condition(arm: str | None, blocks: list[dict[str, Any]]) -> str:
    """What a participant is shown: the arm, else the main blocks' conditions in their order.

    A within-subject participant has no arm but sees conditions in a counterbalanced order
    (e.g. `natural → synthetic`); that order is what tells two of them apart.
    """
    if arm:
        return arm
    order: list[str] = []
    for block in blocks:
        condition = block.get("condition")
        if block.get("kind") == "main" and condition and condition not in order:
            order.append(condition)
    return " → ".join(order)


def accuracy_by_condition(session: Session, experiment: Experiment) -> list[dict[str, Any]]:
    """Accuracy so far of main trials per condition, over included participants only.

    Test-mode participants are left out entirely; participants marked excluded (failed the
    design's exclusion criteria) are left out of the accuracy, as `app.analysis` does unless
    asked otherwise, and counted separately. Accuracy pools the answered trials; the Analysis
    page averages per participant, which gives the same number once everyone has answered
    equally many trials of the condition.

    Returns:
        One row per condition that has answers, ordered by condition: `n_trials`, `n_correct`,
        `accuracy` (None when only excluded participants answered), `n_participants` (included,
        with answers), `excluded_participants` and `excluded_trials` (answers left out).
    """
    correct_sum = func.sum(case((TrialResponse.correct.is_(True), 1), else_=0))
    rows: dict[str, dict[str, Any]] = {}
    for condition, excluded, n, k, people in session.execute(
        select(
            ScheduledTrial.condition,
            Participant.excluded,
            func.count(),
            correct_sum,
            func.count(func.distinct(Participant.id)),
        )
        .join(TrialResponse, TrialResponse.scheduled_trial_id == ScheduledTrial.id)
        .join(Participant, Participant.id == TrialResponse.participant_id)
        .where(
            Participant.experiment_id == experiment.id,
            Participant.test_mode.is_(False),
            ScheduledTrial.trial_kind == "main",
        )
        .group_by(ScheduledTrial.condition, Participant.excluded)
    ):
        row = rows.setdefault(
            condition,
            {
                "condition": condition,
                "n_trials": 0,
                "n_correct": 0,
                "accuracy": None,
                "n_participants": 0,
                "excluded_participants": 0,
                "excluded_trials": 0,
            },
        )
        if excluded:
            row["excluded_participants"] += int(people)
            row["excluded_trials"] += int(n)
        else:
            row["n_trials"] += int(n)
            row["n_correct"] += int(k or 0)
            row["n_participants"] += int(people)
    for row in rows.values():
        if row["n_trials"]:
            row["accuracy"] = row["n_correct"] / row["n_trials"]
    return [rows[condition] for condition in sorted(rows)]


def live_summary(
    session: Session,
    experiment: Experiment,
    *,
    inactivity_timeout_s: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The monitoring numbers of an experiment (JSON-ready).

    Args:
        inactivity_timeout_s: a participant not seen for longer (the task page sends a heartbeat
            every 15 s) and not finished counts as `returned`.

    Returns:
        `counts` per status bucket, `by_condition` (per arm, or one `NO_ARM` row for
        within-subject designs) with counts per bucket, `active` participants with last-seen
        time, status (`STATUS_LABELS` word), condition (`participant_condition`) and answers,
        `median_duration_s` of completed participants (consent to completion),
        `accuracy` per condition of main trials so far (see `accuracy_by_condition`),
        `catch` failures (every non-test participant, excluded ones too: failed catch trials
        are what usually excludes someone), `test_mode` count.
    """
    now = now or utc_now()
    cutoff = now - timedelta(seconds=inactivity_timeout_s)
    bucket = status_bucket_expr(cutoff).label("bucket")
    real = and_(Participant.experiment_id == experiment.id, Participant.test_mode.is_(False))

    counts = dict.fromkeys(STATUS_BUCKETS, 0)
    by_condition: dict[str, dict[str, int]] = {}
    for arm, name, n in session.execute(
        select(Participant.arm, bucket, func.count()).where(real).group_by(Participant.arm, bucket)
    ):
        counts[name] += n
        row = by_condition.setdefault(arm or NO_ARM, dict.fromkeys(STATUS_BUCKETS, 0))
        row[name] += n

    answered = (
        select(TrialResponse.participant_id, func.count().label("n"))
        # This experiment's answers only: the console polls this every few seconds.
        .join(Participant, Participant.id == TrialResponse.participant_id)
        .where(Participant.experiment_id == experiment.id)
        .group_by(TrialResponse.participant_id)
        .subquery()
    )
    active_rows = session.execute(
        select(
            Participant.participant_number,
            Participant.arm,
            Participant.blocks,
            bucket,
            Participant.last_seen_at,
            Participant.n_trials,
            func.coalesce(answered.c.n, 0),
        )
        .outerjoin(answered, answered.c.participant_id == Participant.id)
        .where(
            real,
            Participant.status.in_(UNFINISHED_STATUSES),
            Participant.excluded.is_(False),
            Participant.last_seen_at >= cutoff,
        )
        .order_by(Participant.last_seen_at.desc())
        .limit(ACTIVE_LIST_LIMIT)
    ).all()
    active = [
        {
            "participant": participant_label(number),
            "number": number,
            "condition": participant_condition(arm, blocks),
            "status": STATUS_LABELS[name],
            "last_seen_at": _iso(seen),
            "seen_s_ago": round((now - _aware(seen)).total_seconds()) if seen else None,  # type: ignore[operator]
            "answered": n_answered,
            "n_trials": n_trials,
        }
        for number, arm, blocks, name, seen, n_trials, n_answered in active_rows
    ]

    durations = [
        (_aware(done) - _aware(start)).total_seconds()  # type: ignore[operator]
        for start, done in session.execute(
            select(Participant.consented_at, Participant.completed_at).where(
                real,
                Participant.status == ParticipantStatus.COMPLETED,
                Participant.consented_at.is_not(None),
                Participant.completed_at.is_not(None),
            )
        )
    ]

    correct_sum = func.sum(case((TrialResponse.correct.is_(True), 1), else_=0))
    catch_answered, catch_correct = session.execute(
        select(func.count(), correct_sum)
        .select_from(ScheduledTrial)
        .join(TrialResponse, TrialResponse.scheduled_trial_id == ScheduledTrial.id)
        .join(Participant, Participant.id == TrialResponse.participant_id)
        .where(real, ScheduledTrial.trial_kind == "catch")
    ).one()
    failing = session.scalar(
        select(func.count(func.distinct(TrialResponse.participant_id)))
        .select_from(ScheduledTrial)
        .join(TrialResponse, TrialResponse.scheduled_trial_id == ScheduledTrial.id)
        .join(Participant, Participant.id == TrialResponse.participant_id)
        .where(real, ScheduledTrial.trial_kind == "catch", TrialResponse.correct.is_(False))
    )
    test_mode = session.scalar(
        select(func.count()).where(
            Participant.experiment_id == experiment.id, Participant.test_mode.is_(True)
        )
    )
    return {
        "experiment": experiment.slug,
        "generated_at": _iso(now),
        "inactivity_timeout_s": inactivity_timeout_s,
        "total": sum(counts.values()),
        "counts": counts,
        "by_condition": [{"condition": k, **v} for k, v in sorted(by_condition.items())],
        "active": active,
        "median_duration_s": round(statistics.median(durations), 1) if durations else None,
        "n_completed_with_duration": len(durations),
        "accuracy": accuracy_by_condition(session, experiment),
        "catch": {
            "answered": int(catch_answered or 0),
            "failed": int(catch_answered or 0) - int(catch_correct or 0),
            "participants_failing": int(failing or 0),
        },
        "test_mode": int(test_mode or 0),
    }
