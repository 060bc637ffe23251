"""Streamed exports: `iter_response_rows()` yields one dict per answered trial; `write_csv`
writes any row iterator as CSV with formula-injection neutralised. Nothing is built whole."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.export_format import (
    BOOL_FALSE,
    BOOL_TRUE,
    CODEBOOK,
    EXCLUSION_REASON_SEPARATOR,
    RESPONSE_COLUMNS,
)
from app.models import (
    Experiment,
    ExperimentSession,
    Participant,
    ScheduledTrial,
    StimulusUnit,
    TrialResponse,
)

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


def iter_response_rows(
    session: Session, experiment: Experiment, *, include_test: bool = False
) -> Iterator[dict[str, Any]]:
    """One row per answered trial of `experiment`, in participant then trial order.

    Rows are fetched in chunks from a server-side cursor (PostgreSQL) and never held whole.
    `presented_at` is the server receipt time minus the client's RT (the browser's clock is not
    trusted for absolute times).
    """
    query = (
        select(
            TrialResponse,
            ScheduledTrial,
            Participant.participant_number,
            Participant.arm,
            Participant.excluded,
            Participant.exclusion_reasons,
            ExperimentSession.link_code,
            StimulusUnit.layer,
            StimulusUnit.channel,
            StimulusUnit.label,
            StimulusUnit.hand_picked,
        )
        .join(ScheduledTrial, TrialResponse.scheduled_trial_id == ScheduledTrial.id)
        .join(Participant, TrialResponse.participant_id == Participant.id)
        .join(ExperimentSession, Participant.experiment_session_id == ExperimentSession.id)
        .outerjoin(StimulusUnit, ScheduledTrial.stimulus_unit_id == StimulusUnit.id)
        .where(Participant.experiment_id == experiment.id)
        .order_by(Participant.participant_number, TrialResponse.trial_index)
        .execution_options(yield_per=STREAM_CHUNK)
    )
    if not include_test:
        query = query.where(Participant.test_mode.is_(False))
    stimulus_set = experiment.stimulus_set.slug
    for (
        response,
        trial,
        number,
        arm,
        excluded,
        reasons,
        link_code,
        layer,
        channel,
        label,
        hand_picked,
    ) in session.execute(query):
        received = response.received_at
        presented = received - timedelta(milliseconds=response.rt_ms) if received else None
        sign = 1 if response.response == "upper" else -1
        yield {
            "experiment": experiment.slug,
            "session": link_code,
            "participant": participant_label(number),
            "participant_group": arm or "",
            "trial_index": response.trial_index,
            "block_index": trial.block_index,
            "trial_kind": trial.trial_kind,
            "condition": trial.condition,
            "reference_type": trial.reference_type,
            "n_references": trial.n_references,
            "grid_mode": trial.grid_mode,
            "layer": layer or "",
            "channel": "" if channel is None else channel,
            "unit_label": label or "",
            "hand_picked": _bool(bool(hand_picked)),
            "batch": "" if trial.batch is None else trial.batch,
            "query_order": trial.query_order,
            "response": response.response,
            "correct_response": "upper" if trial.query_order == "max_upper" else "lower",
            "correct": _bool(response.correct),
            "confidence": response.confidence,
            "conf_rating": sign * response.confidence,
            "rt_ms": round(response.rt_ms, 3),
            "presented_at": _iso(presented),
            "received_at": _iso(received),
            "query_image_upper": trial.display.get("upper", ""),
            "query_image_lower": trial.display.get("lower", ""),
            "stimulus_set": stimulus_set,
            "repeat_of_trial_index": ""
            if trial.repeat_of_trial_index is None
            else trial.repeat_of_trial_index,
            "excluded": _bool(excluded),
            "exclusion_reasons": EXCLUSION_REASON_SEPARATOR.join(reasons or []),
        }


def write_csv(
    fp: IO[str], rows: Iterable[dict[str, Any]], columns: tuple[str, ...] = RESPONSE_COLUMNS
) -> int:
    """Write rows as CSV (header first) to `fp`; text cells are neutralised. Returns the row count."""
    count = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal count
        for row in rows:
            count += 1
            yield row

    for chunk in iter_csv_chunks(counted(), columns):
        fp.write(chunk)
    return count


def iter_csv_chunks(
    rows: Iterable[dict[str, Any]], columns: tuple[str, ...] = RESPONSE_COLUMNS
) -> Iterator[str]:
    """The CSV as text chunks of about 64 KiB, for streamed HTTP downloads."""

    class _Buffer:
        def __init__(self) -> None:
            self.parts: list[str] = []

        def write(self, text: str) -> int:
            self.parts.append(text)
            return len(text)

    buffer = _Buffer()
    text_columns = {c for c in columns if c not in CODEBOOK or CODEBOOK[c].type == "str"}
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
