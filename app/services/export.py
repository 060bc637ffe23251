"""Streamed exports: `iter_response_rows()` yields one dict per answered trial; `write_csv`
writes any row iterator as CSV with formula-injection neutralised. Nothing is built whole."""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.export_format import (
    BOOL_FALSE,
    BOOL_TRUE,
    CODEBOOK,
    EXCLUSION_REASON_SEPARATOR,
    RESPONSE_COLUMNS,
    TRIAL_MEASUREMENT_SPECS,
    ColumnSpec,
)
from app.models import (
    Experiment,
    ExperimentSession,
    Participant,
    ParticipantEvent,
    ScheduledTrial,
    StimulusUnit,
    TrialResponse,
)
from app.services.experiments import design_of
from app.services.participants import content_names
from app.services.quality import implausibly_fast, median_answer_interval_ms
from app.tasks import task_of, tasks

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
STREAM_CHUNK = 1000


def participant_label(participant_number: int) -> str:
    """The opaque id exports use for a participant (never the access token)."""
    return f"p{participant_number:05d}"


def _iso(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:  # SQLite returns naive datetimes; they are stored as UTC.
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _bool(value: bool) -> str:
    return BOOL_TRUE if value else BOOL_FALSE


def neutralise(value: str) -> str:
    """Defuse spreadsheet formulas: a text cell starting with = + - @ (or tab/CR) gets a `'`."""
    if value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _cell(spec: ColumnSpec, value: Any) -> Any:
    """A stored value as its CSV cell: "" for NULL, `true`/`false` for booleans."""
    if value is None:
        return ""
    if spec.type == "bool":
        return _bool(bool(value))
    return value


def iter_response_rows(
    session: Session, experiment: Experiment, *, include_test: bool = False
) -> Iterator[dict[str, Any]]:
    """One row per answered trial of `experiment`, in participant then trial order.

    The columns are `RESPONSE_COLUMNS`: the trial as scheduled and answered, then the stored
    per-trial measurements of `TRIAL_MEASUREMENT_SPECS` (read by name from `TrialResponse`).

    Rows are fetched in chunks from a server-side cursor (PostgreSQL) and never held whole.
    `presented_at` is the server receipt time minus the client's RT (the browser's clock is not
    trusted for absolute times).
    """
    # Plain columns, not ORM entities: no identity map or object construction per row (about
    # three times faster on 100k rows).
    query = (
        select(
            TrialResponse.trial_index,
            TrialResponse.answer,
            TrialResponse.correct,
            TrialResponse.rt_ms,
            TrialResponse.received_at,
            ScheduledTrial.block_index,
            ScheduledTrial.trial_kind,
            ScheduledTrial.condition,
            ScheduledTrial.reference_type,
            ScheduledTrial.n_references,
            ScheduledTrial.grid_mode,
            ScheduledTrial.batch,
            ScheduledTrial.query_order,
            ScheduledTrial.task,
            ScheduledTrial.solution,
            ScheduledTrial.display,
            ScheduledTrial.repeat_of_trial_index,
            Participant.participant_number,
            Participant.arm,
            Participant.excluded,
            Participant.exclusion_reasons,
            ExperimentSession.link_code,
            StimulusUnit.layer,
            StimulusUnit.channel,
            StimulusUnit.label,
            StimulusUnit.hand_picked,
            *(getattr(TrialResponse, spec.name) for spec in TRIAL_MEASUREMENT_SPECS),
        )
        .join(ScheduledTrial, TrialResponse.scheduled_trial_id == ScheduledTrial.id)
        .join(Participant, TrialResponse.participant_id == Participant.id)
        .join(ExperimentSession, Participant.experiment_session_id == ExperimentSession.id)
        .outerjoin(StimulusUnit, ScheduledTrial.stimulus_unit_id == StimulusUnit.id)
        .where(
            Participant.experiment_id == experiment.id,
            ScheduledTrial.task.in_(_tasks_to("responses")),
        )
        .order_by(Participant.participant_number, TrialResponse.trial_index)
        .execution_options(yield_per=STREAM_CHUNK)
    )
    if not include_test:
        query = query.where(Participant.test_mode.is_(False))
    stimulus_set = experiment.stimulus_set.slug
    # Keyed image names mean nothing outside the server: the export shows content hashes.
    content = (
        content_names(session, experiment, design_of(experiment).images.encoding)
        if experiment.image_key is not None
        else {}
    )
    for (
        trial_index,
        answer,
        correct,
        rt_ms,
        received,
        block_index,
        trial_kind,
        condition,
        reference_type,
        n_references,
        grid_mode,
        batch,
        query_order,
        task,
        solution,
        display,
        repeat_of,
        number,
        arm,
        excluded,
        reasons,
        link_code,
        layer,
        channel,
        label,
        hand_picked,
        *measured,
    ) in session.execute(query):
        presented = received - timedelta(milliseconds=rt_ms) if received else None
        yield {
            "experiment": experiment.slug,
            "session": link_code,
            "participant": participant_label(number),
            "participant_group": arm or "",
            "trial_index": trial_index,
            "block_index": block_index,
            "trial_kind": trial_kind,
            "condition": condition,
            "reference_type": reference_type,
            "n_references": n_references,
            "grid_mode": grid_mode,
            "layer": layer or "",
            "channel": "" if channel is None else channel,
            "unit_label": label or "",
            "hand_picked": _bool(bool(hand_picked)),
            "batch": "" if batch is None else batch,
            "query_order": query_order,
            **task_of(task).export_values(answer, solution),
            "correct": "" if correct is None else _bool(correct),
            "rt_ms": round(rt_ms, 3),
            "presented_at": _iso(presented),
            "received_at": _iso(received),
            "query_image_upper": content.get(display.get("upper", ""), display.get("upper", "")),
            "query_image_lower": content.get(display.get("lower", ""), display.get("lower", "")),
            "stimulus_set": stimulus_set,
            "repeat_of_trial_index": "" if repeat_of is None else repeat_of,
            "excluded": _bool(excluded),
            "exclusion_reasons": EXCLUSION_REASON_SEPARATOR.join(reasons or []),
        } | {
            spec.name: _cell(spec, value)
            for spec, value in zip(TRIAL_MEASUREMENT_SPECS, measured, strict=True)
        }


def write_csv(
    fp: IO[str],
    rows: Iterable[dict[str, Any]],
    columns: tuple[str, ...] = RESPONSE_COLUMNS,
    codebook: Mapping[str, ColumnSpec] = CODEBOOK,
) -> int:
    """Write rows as CSV (header first) to `fp`; text cells are neutralised.

    Returns:
        The number of data rows written.
    """
    count = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal count
        for row in rows:
            count += 1
            yield row

    for chunk in iter_csv_chunks(counted(), columns, codebook):
        fp.write(chunk)
    return count


def iter_csv_chunks(
    rows: Iterable[dict[str, Any]],
    columns: tuple[str, ...] = RESPONSE_COLUMNS,
    codebook: Mapping[str, ColumnSpec] = CODEBOOK,
) -> Iterator[str]:
    """The CSV as text chunks of about 64 KiB, for streamed HTTP downloads.

    Text columns (type `str` in `codebook`, or not in it) are neutralised; numbers are not.
    """

    class _Buffer:
        def __init__(self) -> None:
            self.parts: list[str] = []

        def write(self, text: str) -> int:
            self.parts.append(text)
            return len(text)

    buffer = _Buffer()
    text_columns = {c for c in columns if c not in codebook or codebook[c].type == "str"}
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    size = 0
    for row in rows:
        writer.writerow(
            [
                neutralise(str(row.get(c, ""))) if c in text_columns else row.get(c, "")
                for c in columns
            ]
        )
        size += len(buffer.parts[-1])
        if size >= 65536:
            yield "".join(buffer.parts)
            buffer.parts.clear()
            size = 0
    if buffer.parts:
        yield "".join(buffer.parts)


# --- participants, events, ratings, and everything as JSON ---------------------------------


def pseudonymise(key: bytes, experiment_slug: str, platform_id: str) -> str:
    """Keyed hash of a platform id: stable within an experiment, useless without the key."""
    digest = hmac.new(key, f"{experiment_slug}\x00{platform_id}".encode(), hashlib.sha256)
    return "h-" + digest.hexdigest()[:20]


def _seconds(start: datetime | None, end: datetime | None) -> float | str:
    if start is None or end is None:
        return ""
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    return round((end - start).total_seconds(), 3)


def iter_participant_rows(
    session: Session,
    experiment: Experiment,
    *,
    pseudonym_key: bytes,
    include_test: bool = False,
    platform_id_mode: str | None = None,
) -> Iterator[dict[str, Any]]:
    """One row per participant (`participants.csv`), in participant-number order.

    Args:
        pseudonym_key: key of the keyed hash used when the experiment's `platform_id_export`
            is `pseudonymised` (the server's secret key).
        platform_id_mode: `raw` or `pseudonymised` for this export only; None: the
            experiment's `platform_id_export`.
    """
    answered = (
        select(TrialResponse.participant_id, func.count().label("n"))
        # This experiment's answers only: without the join the count grouped every stored
        # answer of the database.
        .join(Participant, TrialResponse.participant_id == Participant.id)
        .where(Participant.experiment_id == experiment.id)
        .group_by(TrialResponse.participant_id)
        .subquery()
    )
    query = (
        select(Participant, ExperimentSession.link_code, func.coalesce(answered.c.n, 0))
        .join(ExperimentSession, Participant.experiment_session_id == ExperimentSession.id)
        .outerjoin(answered, answered.c.participant_id == Participant.id)
        .where(Participant.experiment_id == experiment.id)
        .order_by(Participant.participant_number)
        .execution_options(yield_per=STREAM_CHUNK)
    )
    if not include_test:
        query = query.where(Participant.test_mode.is_(False))
    mode = platform_id_mode or experiment.platform_id_export
    min_interval_ms = design_of(experiment).quality.min_median_answer_interval_ms
    answer_times = _answer_times(session, experiment, include_test=include_test)
    for participant, link_code, n_answered in session.execute(query):
        platform_id = participant.platform_id or ""
        if platform_id and mode == "pseudonymised":
            platform_id = pseudonymise(pseudonym_key, experiment.slug, platform_id)
        interval_ms = median_answer_interval_ms(
            participant.task_page_at, answer_times.of(participant.participant_number)
        )
        fast = implausibly_fast(interval_ms, min_interval_ms)
        yield {
            "experiment": experiment.slug,
            "session": link_code,
            "participant": participant_label(participant.participant_number),
            "participant_group": participant.arm or "",
            "platform": participant.platform,
            "platform_id": platform_id,
            "platform_id_mode": mode,
            "status": participant.status,
            "test_mode": _bool(participant.test_mode),
            "n_trials": participant.n_trials,
            "n_answered": n_answered,
            "enrolled_at": _iso(participant.created_at),
            "consented_at": _iso(participant.consented_at),
            "instruction_time_s": _seconds(
                participant.instructions_shown_at, participant.instructions_done_at
            ),
            "completed_at": _iso(participant.completed_at),
            "duration_s": _seconds(participant.consented_at, participant.completed_at),
            "last_seen_at": _iso(participant.last_seen_at),
            "excluded": _bool(participant.excluded),
            "exclusion_reasons": EXCLUSION_REASON_SEPARATOR.join(
                participant.exclusion_reasons or []
            ),
            "feedback_text": participant.feedback_text or "",
            "feedback_at": _iso(participant.feedback_at),
            "screen_w_px": "" if participant.screen_w_px is None else participant.screen_w_px,
            "screen_h_px": "" if participant.screen_h_px is None else participant.screen_h_px,
            "median_answer_interval_ms": "" if interval_ms is None else round(interval_ms, 1),
            "implausibly_fast": "" if fast is None else _bool(fast),
        }


class _AnswerTimes:
    """The server receipt times of each participant's answers, streamed in participant-number
    order beside the participant rows (`of` is asked in that order)."""

    def __init__(self, rows: Iterator[tuple[int, datetime]]) -> None:
        self._rows = rows
        self._next: tuple[int, datetime] | None = next(rows, None)

    def of(self, participant_number: int) -> list[datetime]:
        times: list[datetime] = []
        while self._next is not None and self._next[0] <= participant_number:
            number, received = self._next
            if number == participant_number:
                times.append(received)
            self._next = next(self._rows, None)
        return times


def _answer_times(session: Session, experiment: Experiment, *, include_test: bool) -> _AnswerTimes:
    query = (
        select(Participant.participant_number, TrialResponse.received_at)
        .join(Participant, TrialResponse.participant_id == Participant.id)
        .where(Participant.experiment_id == experiment.id)
        .order_by(Participant.participant_number, TrialResponse.received_at)
        .execution_options(yield_per=STREAM_CHUNK)
    )
    if not include_test:
        query = query.where(Participant.test_mode.is_(False))
    return _AnswerTimes((number, received) for number, received in session.execute(query))


def iter_event_rows(
    session: Session, experiment: Experiment, *, include_test: bool = False
) -> Iterator[dict[str, Any]]:
    """One row per browser event (`events.csv`), in participant then arrival order."""
    query = (
        select(ParticipantEvent, Participant.participant_number)
        .join(Participant, ParticipantEvent.participant_id == Participant.id)
        .where(Participant.experiment_id == experiment.id)
        .order_by(Participant.participant_number, ParticipantEvent.id)
        .execution_options(yield_per=STREAM_CHUNK)
    )
    if not include_test:
        query = query.where(Participant.test_mode.is_(False))
    for event, number in session.execute(query):
        yield {
            "experiment": experiment.slug,
            "participant": participant_label(number),
            "kind": event.kind,
            "trial_index": "" if event.trial_index is None else event.trial_index,
            "client_ms": "" if event.client_ms is None else event.client_ms,
            "received_at": _iso(event.received_at),
            "data": json.dumps(event.data or {}, sort_keys=True, separators=(",", ":")),
        }


def iter_rating_rows(
    session: Session, experiment: Experiment, *, include_test: bool = False
) -> Iterator[dict[str, Any]]:
    """One row per intuitiveness rating (`ratings.csv`: the answers to rating trials,
    app/tasks/rating), in participant then trial order."""
    query = (
        select(
            TrialResponse.trial_index,
            TrialResponse.answer,
            TrialResponse.rt_ms,
            TrialResponse.received_at,
            ScheduledTrial.condition,
            Participant.participant_number,
            Participant.arm,
            StimulusUnit.unit_key,
            StimulusUnit.layer,
            StimulusUnit.channel,
        )
        .join(ScheduledTrial, TrialResponse.scheduled_trial_id == ScheduledTrial.id)
        .join(Participant, TrialResponse.participant_id == Participant.id)
        .outerjoin(StimulusUnit, ScheduledTrial.stimulus_unit_id == StimulusUnit.id)
        .where(
            Participant.experiment_id == experiment.id,
            ScheduledTrial.task.in_(_tasks_to("ratings")),
        )
        .order_by(Participant.participant_number, TrialResponse.trial_index)
        .execution_options(yield_per=STREAM_CHUNK)
    )
    if not include_test:
        query = query.where(Participant.test_mode.is_(False))
    counts: dict[int, int] = {}
    for (
        trial_index,
        answer,
        rt_ms,
        received,
        position,
        number,
        arm,
        unit_key,
        layer,
        channel,
    ) in session.execute(query):
        rating_index = counts[number] = counts.get(number, -1) + 1
        yield {
            "experiment": experiment.slug,
            "participant": participant_label(number),
            "participant_group": arm or "",
            "rating_index": rating_index,
            "trial_index": trial_index,
            "position": position,
            "unit_key": unit_key or "",
            "layer": layer or "",
            "channel": "" if channel is None else channel,
            "value": answer["value"],
            "rt_ms": "" if rt_ms is None else round(rt_ms, 3),
            "received_at": _iso(received),
        }


def _tasks_to(table: str) -> list[str]:
    """The trial types whose answers go to export `table` (`TrialType.export_table`)."""
    return [name for name, task in tasks().items() if task.export_table == table]


def _json_cell(spec: ColumnSpec | None, value: Any) -> Any:
    if spec is None:
        return value
    if value == "" and spec.type != "str":
        return None
    if spec.type == "bool":
        return value == BOOL_TRUE if isinstance(value, str) else bool(value)
    if spec.type == "str" and value == "" and spec.nullable:
        return None
    return value


def iter_json_chunks(
    session: Session,
    experiment: Experiment,
    *,
    pseudonym_key: bytes,
    include_test: bool = False,
    platform_id_mode: str | None = None,
) -> Iterator[str]:
    """Everything about an experiment as one JSON document, streamed as text chunks.

    Shape: `{"format", "experiment": {...}, "codebook": {table: [column specs]},
    "participants": [...], "responses": [...], "events": [...], "ratings": [...]}`; each row
    has the columns of the table's CSV, with booleans as true/false and empty cells as null.
    """
    from app.export_format import TABLE_CODEBOOKS

    head = {
        "format": "psychvis-export-v1",
        "experiment": {
            "slug": experiment.slug,
            "title": experiment.title,
            "design_name": experiment.design_name,
            "stimulus_set": experiment.stimulus_set.slug,
            "created_at": _iso(experiment.created_at),
            "design_toml": experiment.design_toml,
            "include_test": include_test,
        },
        "codebook": {
            table: [
                {
                    "name": spec.name,
                    "type": spec.type,
                    "description": spec.description,
                    "allowed": list(spec.allowed) if spec.allowed else None,
                    "nullable": spec.nullable,
                }
                for spec in codebook.values()
            ]
            for table, codebook in TABLE_CODEBOOKS.items()
        },
    }
    yield json.dumps(head, indent=None)[:-1]
    tables: dict[str, Iterator[dict[str, Any]]] = {
        "participants": iter_participant_rows(
            session,
            experiment,
            pseudonym_key=pseudonym_key,
            include_test=include_test,
            platform_id_mode=platform_id_mode,
        ),
        "responses": iter_response_rows(session, experiment, include_test=include_test),
        "events": iter_event_rows(session, experiment, include_test=include_test),
        "ratings": iter_rating_rows(session, experiment, include_test=include_test),
    }
    for table, rows in tables.items():
        codebook = TABLE_CODEBOOKS[table]
        parts = [f', "{table}": [']
        size = 0
        for i, row in enumerate(rows):
            text = json.dumps({k: _json_cell(codebook.get(k), v) for k, v in row.items()})
            parts.append(text if i == 0 else "," + text)
            size += len(text)
            if size >= 65536:
                yield "".join(parts)
                parts.clear()
                size = 0
        parts.append("]")
        yield "".join(parts)
    yield "}\n"


EXPORT_NAMES: tuple[str, ...] = ("responses", "participants", "events", "ratings", "json")
"""What `iter_table_chunks` can write: the four CSV tables and the JSON document."""


def iter_table_chunks(
    name: str,
    session: Session,
    experiment: Experiment,
    *,
    pseudonym_key: bytes,
    include_test: bool = False,
    platform_id_mode: str | None = None,
) -> Iterator[str]:
    """One export (`<name>.csv` or the JSON document) as streamed text chunks.

    Args:
        name: One of `EXPORT_NAMES`.
        pseudonym_key: Key of the platform-id pseudonyms (the server's secret key).
        include_test: Include test-mode participants.
        platform_id_mode: `raw` or `pseudonymised` for this export only (None: the
            experiment's setting).

    Raises:
        ValueError: Unknown name.
    """
    from app.export_format import TABLE_CODEBOOKS

    if name == "json":
        return iter_json_chunks(
            session,
            experiment,
            pseudonym_key=pseudonym_key,
            include_test=include_test,
            platform_id_mode=platform_id_mode,
        )
    rows: Iterator[dict[str, Any]]
    if name == "responses":
        rows = iter_response_rows(session, experiment, include_test=include_test)
    elif name == "participants":
        rows = iter_participant_rows(
            session,
            experiment,
            pseudonym_key=pseudonym_key,
            include_test=include_test,
            platform_id_mode=platform_id_mode,
        )
    elif name == "events":
        rows = iter_event_rows(session, experiment, include_test=include_test)
    elif name == "ratings":
        rows = iter_rating_rows(session, experiment, include_test=include_test)
    else:
        raise ValueError(f"no export named {name!r}; use one of {', '.join(EXPORT_NAMES)}")
    codebook = TABLE_CODEBOOKS[name]
    return iter_csv_chunks(rows, tuple(codebook), codebook)
