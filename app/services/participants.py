"""Enrol participants (slot reserved at enrolment), consent, instructions, completion."""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, func, insert, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from app import designs
from app.cache import LruCache
from app.db import utc_now
from app.errors import (
    Conflict,
    NotFound,
    OutOfOrder,
    PlatformIdMissing,
    SessionUnavailable,
)
from app.lifecycle import (
    ACTIVE_STATUSES,
    UNCONFIRMED,
    UNFINISHED_STATUSES,
    ParticipantStatus,
    can_transition,
    transition,
)
from app.models import (
    Experiment,
    ExperimentSession,
    Participant,
    ScheduledTrial,
    StimulusSet,
    StimulusUnit,
    TrialResponse,
)
from app.schedule import TrialSpec
from app.services.blobs import served_name
from app.services.experiments import design_of
from app.services.quality import apply_exclusions
from app.services.stimuli import catalog_of, image_hashes
from app.tasks import task_of

logger = logging.getLogger(__name__)

MTURK_PREVIEW_ASSIGNMENT = "ASSIGNMENT_ID_NOT_AVAILABLE"
FEEDBACK_MAX_CHARS = 5000
LAST_SEEN_RESOLUTION_S = 10
MTURK_HOSTS = ("https://www.mturk.com", "https://workersandbox.mturk.com")
_PLATFORM_KEYS = {
    "prolific": ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID"),
    "mturk": ("workerId", "assignmentId", "hitId", "turkSubmitTo"),
}


_ID_CASE = {"PROLIFIC_PID": str.lower, "workerId": str.upper}
"""Prolific ids are lower-case hex and MTurk worker ids upper-case: any other spelling of an id
is the same person."""
PLATFORM_NAMES = {"prolific": "Prolific", "mturk": "Amazon Mechanical Turk"}


@dataclass(frozen=True)
class PlatformIdentity:
    platform: str
    platform_id: str | None
    data: dict[str, str]


def platform_identity(launched: ExperimentSession, params: dict[str, str]) -> PlatformIdentity:
    """Pick the platform parameters this session's platform uses; the rest is ignored.

    Values are trimmed and the participant id brought to the platform's case, so that
    " 5F00", "5f00" and "5F00 " enrol one participant, not three.
    """
    keys = _PLATFORM_KEYS.get(launched.platform, ())
    data = {}
    for key in keys:
        value = str(params.get(key) or "").strip()[:256]
        if value:
            data[key] = _ID_CASE.get(key, str)(value)
    pid = data.get("PROLIFIC_PID") or data.get("workerId")
    return PlatformIdentity(launched.platform, pid[:128] if pid else None, data)


def is_mturk_preview(params: dict[str, str]) -> bool:
    return params.get("assignmentId") == MTURK_PREVIEW_ASSIGNMENT


# Stimulus units and image hashes never change after import: cache them per set and encoding.
_SET_CACHE: LruCache[tuple[int, str, str, str], tuple[dict[str, StimulusUnit], dict[str, str]]] = (
    LruCache(maxsize=16)
)


def set_lookup(
    session: Session, stimulus_set: StimulusSet, encoding: str
) -> tuple[dict[str, StimulusUnit], dict[str, str]]:
    """The set's units by key and its served image names by path (cached: sets are immutable)."""
    stimulus_set_id = stimulus_set.id
    key = (stimulus_set_id, stimulus_set.slug, stimulus_set.imported_at.isoformat(), encoding)

    def load() -> tuple[dict[str, StimulusUnit], dict[str, str]]:
        units = session.scalars(
            select(StimulusUnit).where(StimulusUnit.stimulus_set_id == stimulus_set_id)
        ).all()
        for unit in units:
            session.expunge(unit)
        ext = "png" if encoding == "png" else "webp"
        hashes = {
            path: f"{sha}.{ext}"
            for path, sha in image_hashes(session, stimulus_set_id, encoding).items()
        }
        return {u.unit_key: u for u in units}, hashes

    return _SET_CACHE.get(key, load)


_SERVED_CACHE: LruCache[tuple[int, str, str], dict[str, str]] = LruCache(maxsize=16)


def experiment_lookup(
    session: Session, experiment: Experiment, encoding: str
) -> tuple[dict[str, StimulusUnit], dict[str, str]]:
    """`set_lookup` with the names this experiment serves its images under: keyed names
    (`served_name`) where the experiment has an image key, else the content-hash names."""
    units, hashes = set_lookup(session, experiment.stimulus_set, encoding)
    key = experiment.image_key
    if key is None:
        return units, hashes

    def names() -> dict[str, str]:
        served = {}
        for path, name in hashes.items():
            sha, ext = name.split(".", 1)
            served[path] = f"{served_name(key, sha)}.{ext}"
        return served

    return units, _SERVED_CACHE.get((experiment.id, key, encoding), names)


def content_names(session: Session, experiment: Experiment, encoding: str) -> dict[str, str]:
    """Served name -> content-hash name of an experiment's images (exports show the latter)."""
    _, hashes = set_lookup(session, experiment.stimulus_set, encoding)
    _, served = experiment_lookup(session, experiment, encoding)
    return {served[path]: hashes[path] for path in hashes}


def scheduled_values(
    participant_id: int,
    trials: list[TrialSpec] | tuple[TrialSpec, ...],
    units: dict[str, StimulusUnit],
    hashes: dict[str, str],
) -> list[dict[str, Any]]:
    """Column values of the `scheduled_trial` rows for trial specs (images resolved)."""
    rows = []
    for spec in trials:
        unit = units[spec.unit_id] if spec.unit_id is not None else None
        task = task_of(spec.task)
        rows.append(
            {
                "participant_id": participant_id,
                "trial_index": spec.trial_index,
                "block_index": spec.block_index,
                "task": task.name,
                "trial_kind": spec.trial_kind,
                "condition": spec.condition,
                "reference_type": spec.reference_type,
                "n_references": spec.n_references,
                "grid_mode": spec.grid_mode,
                "stimulus_unit_id": unit.id if unit is not None else None,
                "batch": spec.batch,
                "query_order": spec.query_order,
                "feedback": spec.feedback,
                "repeat_of_trial_index": spec.repeat_of_trial_index,
                "display": task.display(spec, unit, hashes) if unit is not None else {},
                "solution": task.solution(spec),
                "catch_query_indices": list(spec.catch_query_indices)
                if spec.catch_query_indices
                else None,
                "skipped": False,
            }
        )
    return rows


@cache
def _schedule_from_json_sql(dialect: Dialect) -> str:
    """`INSERT INTO scheduled_trial (...) SELECT ... FROM jsonb_to_recordset(%(rows)s)`, its
    columns and types read from the table (so a new column cannot be left out)."""
    table = cast(Table, ScheduledTrial.__table__)
    quote = dialect.identifier_preparer.quote
    columns = [
        (quote(c.name), c.type.compile(dialect=dialect)) for c in table.columns if not c.primary_key
    ]
    # A JSON null becomes SQL NULL in jsonb_to_recordset, while the ORM and the multi-row
    # INSERT store None in a JSON column as JSON null: the coalesce keeps both paths the same.
    selected = ", ".join(
        f"coalesce(r.{name}, 'null'::jsonb)" if kind == "JSONB" else f"r.{name}"
        for name, kind in columns
    )
    names = ", ".join(name for name, _ in columns)
    record = ", ".join(f"{name} {kind}" for name, kind in columns)
    return (
        f"INSERT INTO scheduled_trial ({names}) SELECT {selected} "
        f"FROM jsonb_to_recordset(%(rows)s::jsonb) AS r({record})"
    )


def insert_schedule(session: Session, rows: list[dict[str, Any]]) -> None:
    """Store a participant's `scheduled_trial` rows in one statement.

    PostgreSQL: one INSERT from one JSON parameter. Enrolment holds the experiment's row lock
    until it commits; psycopg's executemany of 45 rows cost 1-1.5 ms more app CPU and 0.5-1 ms
    more Postgres CPU per enrolment (docs/benchmarks.md). SQLite: a multi-row INSERT. ORM
    objects would double either.
    """
    if session.get_bind().dialect.name == "postgresql":
        connection = session.connection()
        connection.exec_driver_sql(
            _schedule_from_json_sql(connection.dialect),
            {"rows": json.dumps(rows, separators=(",", ":"))},
        )
    else:
        session.connection().execute(insert(ScheduledTrial), rows)


def _holding_slot(hold_unconfirmed_s: int | None) -> ColumnElement[bool]:
    """Participants who count towards a session's limit (`app.lifecycle.ACTIVE_STATUSES`): not
    declined or returned, and not enrolled long ago without ever consenting (a link opened and
    left, or a bot filling the study: the slot is free again after `hold_unconfirmed_s`)."""
    holding: ColumnElement[bool] = Participant.status.in_(ACTIVE_STATUSES)
    if hold_unconfirmed_s is not None:
        cutoff = utc_now() - timedelta(seconds=hold_unconfirmed_s)
        holding = holding & ~(
            (Participant.status == UNCONFIRMED) & (Participant.created_at < cutoff)
        )
    return holding


def _arm_counts(
    session: Session, experiment_id: int, inactive_after_s: int | None
) -> dict[str, int]:
    """Participants per arm who still hold a place: completed, or active and recently seen.

    Test-mode participants, those who declined or returned, and those silent for longer than
    `inactive_after_s` (timed out) do not count.
    """
    holding: ColumnElement[bool] = Participant.status == ParticipantStatus.COMPLETED
    active: ColumnElement[bool] = Participant.status.in_(UNFINISHED_STATUSES)
    if inactive_after_s is not None:
        cutoff = utc_now() - timedelta(seconds=inactive_after_s)
        active = active & (Participant.last_seen_at >= cutoff)
    rows = session.execute(
        select(Participant.arm, func.count())
        .where(
            Participant.experiment_id == experiment_id,
            holding | active,
            Participant.test_mode.is_(False),
            Participant.arm.is_not(None),
        )
        .group_by(Participant.arm)
    )
    return {arm: count for arm, count in rows if arm is not None}


def enrol(
    session: Session,
    launched: ExperimentSession,
    params: dict[str, str],
    *,
    user_agent: str | None = None,
    test_mode: bool = False,
    inactive_after_s: int | None = None,
    hold_unconfirmed_s: int | None = None,
    screen_px: tuple[int, int] | None = None,
) -> tuple[Participant, bool]:
    """Enrol a participant, or return the one already enrolled with the same platform id.

    The experiment row is locked for the enrolment (participant number, balanced arm). A
    platform id enrolled already is resumed without the lock; two requests enrolling one new id
    at once (parallel tabs or HITs of one worker) meet at the unique key on
    (experiment, platform_id), and the later one raises Conflict: nothing of it is stored, and
    the start route resumes the earlier one.

    Args:
        hold_unconfirmed_s: how long a participant who never consented holds a place in a
            session with a participant limit (None: for ever).
        screen_px: the screen's width and height in CSS px as the landing page saw them.

    Returns:
        (participant, created).

    Raises:
        SessionUnavailable: paused, closed, full, or an MTurk preview.
        PlatformIdMissing: a Prolific or MTurk session opened without the participant id
            (outside test mode): every such enrolment would take a place of its own.
        Conflict: the same platform id was enrolled by a concurrent request.
    """
    if launched.status != "open":
        raise SessionUnavailable(f"this study is {launched.status}")
    if is_mturk_preview(params):
        raise SessionUnavailable("accept the HIT before starting")
    identity = platform_identity(launched, params)
    if identity.platform_id is None and launched.platform in PLATFORM_NAMES and not test_mode:
        raise PlatformIdMissing(
            f"This link works only when opened from {PLATFORM_NAMES[launched.platform]}: "
            f"please go back to {PLATFORM_NAMES[launched.platform]} and start the study there."
        )
    if identity.platform_id is not None:
        # Before the experiment's row lock, which every enrolment waits for: a resume needs no
        # lock, and two tabs enrolling the same id at once meet at the unique key (Conflict).
        existing = session.scalar(
            select(Participant).where(
                Participant.experiment_id == launched.experiment_id,
                Participant.platform_id == identity.platform_id,
            )
        )
        if existing is not None:
            return existing, False
    experiment = session.scalar(
        select(Experiment)
        .options(joinedload(Experiment.stimulus_set))  # one round trip less under the lock
        .where(Experiment.id == launched.experiment_id)
        .with_for_update(of=Experiment)
    )
    assert experiment is not None
    if launched.max_participants is not None:
        taken = session.scalar(
            select(func.count())
            .select_from(Participant)
            .where(
                Participant.experiment_session_id == launched.id,
                _holding_slot(hold_unconfirmed_s),
                Participant.test_mode.is_(False),
            )
        )
        if (taken or 0) >= launched.max_participants:
            raise SessionUnavailable("this study is full")
    design = design_of(experiment)
    number = experiment.enrolled_count + 1
    experiment.enrolled_count = number
    arm = None
    if design.arms:
        arm = designs.choose_arm(
            design, _arm_counts(session, experiment.id, inactive_after_s), number
        )
        if arm is None:
            raise SessionUnavailable("this study is full")
    catalog = catalog_of(experiment.stimulus_set)
    schedule = designs.generate_schedule(design, catalog, number, arm=arm)
    participant = Participant(
        token=secrets.token_urlsafe(24),
        experiment_id=experiment.id,
        experiment_session_id=launched.id,
        participant_number=number,
        platform=identity.platform,
        platform_id=identity.platform_id,
        platform_data=identity.data,
        arm=arm,
        seed=schedule.seed,
        status=ParticipantStatus.ENROLLED,
        test_mode=test_mode,
        n_trials=len(schedule.trials),
        blocks=[b.model_dump(mode="json") for b in schedule.blocks],
        exclusion_reasons=[],
        user_agent=(user_agent or "")[:400] or None,
        screen_w_px=screen_px[0] if screen_px else None,
        screen_h_px=screen_px[1] if screen_px else None,
        last_seen_at=utc_now(),
    )
    session.add(participant)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict("this participant is enrolled already") from None
    units, hashes = experiment_lookup(session, experiment, design.images.encoding)
    insert_schedule(session, scheduled_values(participant.id, schedule.trials, units, hashes))
    logger.info(
        "participant enrolled",
        extra={"participant": participant.id, "experiment": experiment.slug, "arm": arm},
    )
    return participant, True


def get_participant(session: Session, token: str) -> Participant:
    found = session.scalar(select(Participant).where(Participant.token == token))
    if found is None:
        raise NotFound("unknown participant link")
    return found


def record_consent(participant: Participant, agree: bool) -> None:
    """Consent given (on to the start ratings, if the design has them, or the instructions) or
    refused (the study ends); a decision after the first is ignored (a resubmitted form)."""
    to = ParticipantStatus.CONSENTED if agree else ParticipantStatus.DECLINED
    if can_transition(participant.status, to):
        transition(participant, to, now=utc_now())


def n_before_instructions(participant: Participant) -> int:
    """Trials of the schedule that come between consent and the instructions (start ratings):
    the first ones, in blocks with `before_instructions`."""
    return sum(b["n_trials"] for b in participant.blocks if b.get("before_instructions"))


def instructions_shown(participant: Participant) -> None:
    """The instructions page was served (the first time is kept)."""
    if participant.instructions_shown_at is None:
        participant.instructions_shown_at = utc_now()


def finish_instructions(session: Session, participant: Participant) -> None:
    """Instructions read: the trials start (a repeat is ignored).

    Raises:
        OutOfOrder: start ratings are still to be given (they come before the instructions).
    """
    if (
        can_transition(participant.status, ParticipantStatus.IN_PROGRESS)
        and participant.instructions_done_at is None
    ):
        if done_count(session, participant.id) < n_before_instructions(participant):
            raise OutOfOrder("the ratings come before the instructions")
        now = utc_now()
        if participant.instructions_shown_at is None:
            # Finished without ever loading the page (a script): an instruction time of 0,
            # which the exclusion criteria judge, rather than none.
            participant.instructions_shown_at = now
        transition(participant, ParticipantStatus.IN_PROGRESS, now=now)


def task_page_served(participant: Participant) -> None:
    """The task page was served: from now on answers are taken (the first time is kept).

    A browser loads the task page before it can answer; a client posting answers straight to
    the API without it is refused (`trials.record_response`, `fast_answer.ANSWER_SQL`).
    """
    if participant.task_page_at is None:
        participant.task_page_at = utc_now()


def touch_last_seen(participant: Participant, now: datetime) -> None:
    """Record that the participant is active; a write only when the stored time is stale.

    Answers come every few seconds: updating the row on each would add a write per answer for
    a value the console shows with LAST_SEEN_RESOLUTION_S precision anyway.
    """
    last = participant.last_seen_at
    if last is not None and last.tzinfo is None:  # SQLite returns naive UTC datetimes
        last = last.replace(tzinfo=UTC)
    if last is None or (now - last).total_seconds() >= LAST_SEEN_RESOLUTION_S:
        participant.last_seen_at = now


def done_count(session: Session, participant_id: int) -> int:
    """Trials answered or skipped (unneeded practice attempts): the index of the current trial.

    Skipped attempts always directly follow the answered trials, so the two counts add up to
    the current index. Two index-only counts: an OR with EXISTS made Postgres hash every stored
    answer of the database on each call (3 ms at 15k answers, growing with the study).
    """
    answered = (
        select(func.count())
        .select_from(TrialResponse)
        .where(TrialResponse.participant_id == participant_id)
        .scalar_subquery()
    )
    skipped = (
        select(func.count())
        .select_from(ScheduledTrial)
        .where(ScheduledTrial.participant_id == participant_id, ScheduledTrial.skipped.is_(True))
        .scalar_subquery()
    )
    return session.scalar(select(answered + skipped)) or 0


def task_types(session: Session, participant_id: int) -> list[str]:
    """The trial types (`app.tasks`) of a participant's schedule, sorted."""
    return list(
        session.scalars(
            select(ScheduledTrial.task)
            .where(ScheduledTrial.participant_id == participant_id)
            .distinct()
            .order_by(ScheduledTrial.task)
        )
    )


def record_feedback(participant: Participant, text: str) -> None:
    """Store the optional free-text feedback (once; later posts are ignored).

    Raises:
        Conflict: the design asks for no feedback.
    """
    if not design_of(participant.experiment).free_text_feedback:
        raise Conflict("this study asks for no feedback")
    if participant.feedback_at is None:
        participant.feedback_text = text.strip()[:FEEDBACK_MAX_CHARS] or None
        participant.feedback_at = utc_now()


def pending_page(participant: Participant) -> str | None:
    """What must still happen after the last trial: `feedback`, or None."""
    design = design_of(participant.experiment)
    if design.free_text_feedback and participant.feedback_at is None:
        return "feedback"
    return None


def outcome_of(participant: Participant) -> str:
    if participant.status == ParticipantStatus.DECLINED:
        return "no_consent"
    if participant.excluded:
        return "failed_checks"
    return "completed"


def complete(session: Session, participant: Participant) -> dict[str, Any]:
    """Finish the study once every answer is stored; returns the outcome's code and URL.

    Raises:
        Conflict: answers are missing (the code is never shown before they are all stored).
    """
    if participant.status == ParticipantStatus.DECLINED:
        return completion_info(participant)
    if participant.status != ParticipantStatus.COMPLETED:
        if not can_transition(participant.status, ParticipantStatus.COMPLETED):
            raise Conflict("the study has not been started")
        if done_count(session, participant.id) < participant.n_trials:
            raise Conflict("not every answer has been received yet")
        if pending_page(participant) is not None:
            return {
                **completion_info(participant),
                "outcome": "pending",
                "completion_code": None,
                "redirect_url": None,
                "mturk": None,
            }
        transition(participant, ParticipantStatus.COMPLETED, now=utc_now())
        apply_exclusions(session, participant)
    return completion_info(participant)


def completion_info(participant: Participant) -> dict[str, Any]:
    """The participant's outcome with its completion code and the way back to the platform."""
    return outcome_info(
        participant.experiment_session, outcome_of(participant), participant.platform_data
    )


def screen_too_small_info(launched: ExperimentSession) -> dict[str, Any]:
    """The way back for a visitor whose screen cannot show the task (nobody is enrolled).

    No MTurk submit form: such a worker returns the HIT instead of submitting it.
    """
    return outcome_info(launched, "screen_too_small", {})


def outcome_info(
    launched: ExperimentSession, outcome: str, platform_data: dict[str, Any]
) -> dict[str, Any]:
    """An outcome's completion code, Prolific redirect and MTurk submit form (where they apply).

    Sessions launched before an outcome existed have no entry for it: no code, no redirect.
    """
    spec = launched.outcomes.get(outcome) or {}
    mturk = None
    if launched.platform == "mturk" and platform_data.get("assignmentId"):
        # turkSubmitTo comes from the URL: accept only MTurk's own hosts (no open redirect).
        host = str(platform_data.get("turkSubmitTo", "")).rstrip("/")
        if host not in MTURK_HOSTS:
            host = MTURK_HOSTS[1] if launched.mturk_sandbox else MTURK_HOSTS[0]
        mturk = {
            "submit_url": host + "/mturk/externalSubmit",
            "assignmentId": platform_data["assignmentId"],
        }
    return {
        "outcome": outcome,
        "completion_code": spec.get("code"),
        "redirect_url": spec.get("url") if launched.platform == "prolific" else None,
        "mturk": mturk,
    }
