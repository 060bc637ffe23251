"""ORM tables: Mapped[...] columns; constraints carry the data's integrity."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, JSONType, utc_now
from app.lifecycle import ParticipantStatus, check_constraint_sql

TZDateTime = DateTime(timezone=True)


class StimulusSet(Base):
    __tablename__ = "stimulus_set"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    schema_version: Mapped[int]
    source_format: Mapped[str] = mapped_column(String(16))
    """`v1` (psychvis manifest) or `imi` (IMI/causal task folder)."""
    manifest: Mapped[dict[str, Any]] = mapped_column(JSONType, deferred=True)
    """The whole manifest (large: loaded only when asked for; units live in stimulus_unit)."""
    image_count: Mapped[int]
    imported_at: Mapped[datetime] = mapped_column(TZDateTime, default=utc_now)

    units: Mapped[list[StimulusUnit]] = relationship(back_populates="stimulus_set")


class StimulusImage(Base):
    """One image file of a set, with the content hashes of its served encodings."""

    __tablename__ = "stimulus_image"
    __table_args__ = (UniqueConstraint("stimulus_set_id", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    stimulus_set_id: Mapped[int] = mapped_column(
        ForeignKey("stimulus_set.id", ondelete="CASCADE"), index=True
    )
    path: Mapped[str] = mapped_column(String(400))
    source_sha256: Mapped[str] = mapped_column(String(64))
    lossless_sha256: Mapped[str] = mapped_column(String(64))
    lossy_sha256: Mapped[str] = mapped_column(String(64))
    png_sha256: Mapped[str] = mapped_column(String(64))


class StimulusUnit(Base):
    __tablename__ = "stimulus_unit"
    __table_args__ = (UniqueConstraint("stimulus_set_id", "unit_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    stimulus_set_id: Mapped[int] = mapped_column(
        ForeignKey("stimulus_set.id", ondelete="CASCADE"), index=True
    )
    unit_key: Mapped[str] = mapped_column(String(120))
    layer: Mapped[str] = mapped_column(String(80))
    channel: Mapped[int]
    branch: Mapped[str | None] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(200))
    hand_picked: Mapped[bool]
    roles: Mapped[list[str]] = mapped_column(JSONType)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    """The unit's `natural` and `synthetic` parts of the manifest (paths, ranks, activations)."""

    stimulus_set: Mapped[StimulusSet] = relationship(back_populates="units")


class Experiment(Base):
    __tablename__ = "experiment"
    __table_args__ = (
        CheckConstraint(
            "platform_id_export IN ('raw', 'pseudonymised')", name="platform_id_export"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    stimulus_set_id: Mapped[int] = mapped_column(ForeignKey("stimulus_set.id"), index=True)
    design_name: Mapped[str] = mapped_column(String(80))
    design_toml: Mapped[str] = mapped_column(Text, deferred=True)
    """The design file as given (a preset's text for presets): the schedule's only source."""
    enrolled_count: Mapped[int] = mapped_column(default=0)
    """Participants enrolled so far; the next participant number (incremented under a row lock)."""
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=utc_now)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("app_user.id", ondelete="SET NULL"), index=True
    )
    """The experimenter who owns it; None for CLI/demo-created ones (visible to admins only)."""
    platform_id_export: Mapped[str] = mapped_column(String(16), default="pseudonymised")
    """How participants.csv shows platform ids: `raw` or `pseudonymised` (keyed hash)."""
    image_key: Mapped[str | None] = mapped_column(String(64))
    """Secret (hex) naming the images this experiment serves (`app.services.blobs.served_name`);
    None: content-hash names (experiments created before keyed names)."""

    stimulus_set: Mapped[StimulusSet] = relationship()


class ExperimentSession(Base):
    """A launch of an experiment on a platform: owns the participant link."""

    __tablename__ = "experiment_session"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'paused', 'closed')", name="status"),
        CheckConstraint("platform IN ('prolific', 'mturk', 'lab')", name="platform"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiment.id"), index=True)
    link_code: Mapped[str] = mapped_column(String(32), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    platform: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")
    max_participants: Mapped[int | None]
    outcomes: Mapped[dict[str, Any]] = mapped_column(JSONType)
    """Per outcome (`completed`, `failed_checks`, `no_consent`): completion code and URL."""
    mturk_sandbox: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=utc_now)

    experiment: Mapped[Experiment] = relationship()


class Participant(Base):
    __tablename__ = "participant"
    __table_args__ = (
        UniqueConstraint("experiment_id", "platform_id"),
        UniqueConstraint("experiment_id", "participant_number"),
        CheckConstraint(check_constraint_sql(), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiment.id"), index=True)
    experiment_session_id: Mapped[int] = mapped_column(
        ForeignKey("experiment_session.id"), index=True
    )
    participant_number: Mapped[int]
    platform: Mapped[str] = mapped_column(String(16))
    platform_id: Mapped[str | None] = mapped_column(String(128))
    """Prolific PID / MTurk workerId; the slot is reserved by the unique key at enrolment."""
    platform_data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    arm: Mapped[str | None] = mapped_column(String(80))
    seed: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16), default=ParticipantStatus.ENROLLED.value)
    """A `ParticipantStatus` value; `app.lifecycle.transition` moves it."""
    test_mode: Mapped[bool] = mapped_column(default=False)
    n_trials: Mapped[int]
    blocks: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    excluded: Mapped[bool] = mapped_column(default=False)
    exclusion_reasons: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=utc_now)
    consented_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    instructions_shown_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    instructions_done_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    task_page_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    """When the task page was first served; answers are refused before it (None)."""
    completed_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    user_agent: Mapped[str | None] = mapped_column(String(400))
    screen_w_px: Mapped[int | None]
    screen_h_px: Mapped[int | None]
    """Screen size in CSS px as the landing page saw it at the start (None: not reported)."""
    feedback_text: Mapped[str | None] = mapped_column(Text)
    """Optional free-text feedback at the end (never logged; neutralised in exports)."""
    feedback_at: Mapped[datetime | None] = mapped_column(TZDateTime)

    experiment_session: Mapped[ExperimentSession] = relationship()
    experiment: Mapped[Experiment] = relationship()


class ScheduledTrial(Base):
    """One trial of a participant's schedule, with its images already resolved."""

    __tablename__ = "scheduled_trial"
    __table_args__ = (UniqueConstraint("participant_id", "trial_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id", ondelete="CASCADE"))
    trial_index: Mapped[int]
    block_index: Mapped[int]
    task: Mapped[str] = mapped_column(String(16), default="afc2", server_default="afc2")
    """The trial type (`app.tasks`): what `display` holds and what an answer looks like."""
    trial_kind: Mapped[str] = mapped_column(String(16))
    condition: Mapped[str] = mapped_column(String(80))
    """The design's condition; a rating trial's position (`start` or `end`)."""
    stimulus_unit_id: Mapped[int | None] = mapped_column(ForeignKey("stimulus_unit.id"))
    # What a 2-AFC trial shows (app/tasks/afc2); NULL for other types.
    reference_type: Mapped[str | None] = mapped_column(String(16))
    n_references: Mapped[int | None]
    grid_mode: Mapped[str | None] = mapped_column(String(16))
    batch: Mapped[int | None]
    query_order: Mapped[str | None] = mapped_column(String(16))
    feedback: Mapped[bool]
    repeat_of_trial_index: Mapped[int | None]
    display: Mapped[dict[str, Any]] = mapped_column(JSONType)
    """Served image names, as the trial type lays them out (`TrialType.display`; 2-AFC:
    {"min": [...], "max": [...], "upper": name, "lower": name})."""
    solution: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    """The fields every correct answer has (`TrialType.solution`, 2-AFC: {"response": side});
    JSON null for a trial without a right answer."""
    catch_query_indices: Mapped[list[int] | None] = mapped_column(JSONType)
    skipped: Mapped[bool] = mapped_column(default=False)
    """A reserved practice attempt that was not needed (the previous attempt was all correct)."""


class TrialResponse(Base):
    """An answer. Stored once: unique per (participant, trial) and per client response_uuid."""

    __tablename__ = "trial_response"
    __table_args__ = (UniqueConstraint("participant_id", "trial_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id", ondelete="CASCADE"))
    # Indexed: "is this trial answered?" (done_count, on every answer) probes it; without the
    # index Postgres scanned every stored answer of every study (bench/load, docs/benchmarks.md).
    scheduled_trial_id: Mapped[int] = mapped_column(
        ForeignKey("scheduled_trial.id", ondelete="CASCADE"), index=True
    )
    trial_index: Mapped[int]
    response_uuid: Mapped[str] = mapped_column(String(36), unique=True)
    answer: Mapped[dict[str, Any]] = mapped_column(JSONType)
    """The type-specific fields of the answer, validated by the trial type's `Answer` model
    (2-AFC: {"response": "upper"|"lower", "confidence": 1..3})."""
    correct: Mapped[bool | None]
    """Whether `answer` contains the trial's solution; None for a trial without one."""
    rt_ms: Mapped[float | None] = mapped_column(Float)
    """None only for intuitiveness ratings carried over from the separate rating pages, which did
    not measure it."""
    onset_ms: Mapped[float | None] = mapped_column(Float)
    answer_ms: Mapped[float | None] = mapped_column(Float)
    frame_interval_mean_ms: Mapped[float | None] = mapped_column(Float)
    frame_interval_max_ms: Mapped[float | None] = mapped_column(Float)
    viewport_w_px: Mapped[int | None]
    viewport_h_px: Mapped[int | None]
    device_pixel_ratio: Mapped[float | None] = mapped_column(Float)
    display_scale: Mapped[float | None] = mapped_column(Float)
    """Uniform scale of the trial screen's images at the answer (1 = native 224 px)."""
    focus_lost: Mapped[bool] = mapped_column(default=False)
    fullscreen_exited: Mapped[bool] = mapped_column(default=False)
    input_kind: Mapped[str | None] = mapped_column(String(16))
    via_beacon: Mapped[bool] = mapped_column(default=False)
    received_at: Mapped[datetime] = mapped_column(TZDateTime, default=utc_now)


class ParticipantEvent(Base):
    """Focus loss, fullscreen exits, resizes, heartbeats... as the browser reported them."""

    __tablename__ = "participant_event"
    __table_args__ = (Index("ix_participant_event_participant_id", "participant_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    client_ms: Mapped[float | None] = mapped_column(Float)
    trial_index: Mapped[int | None]
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    received_at: Mapped[datetime] = mapped_column(TZDateTime, default=utc_now)


class User(Base):
    """A dashboard account: `admin` (manages users, sees every experiment) or `experimenter`."""

    __tablename__ = "app_user"
    __table_args__ = (CheckConstraint("role IN ('admin', 'experimenter')", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    """Stored lower-cased."""
    password_hash: Mapped[str] = mapped_column(String(255))
    """argon2id hash (argon2-cffi's encoded form, parameters included)."""
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=utc_now)
    last_login_at: Mapped[datetime | None] = mapped_column(TZDateTime)


class ExperimentShare(Base):
    """Gives another experimenter the same access to an experiment as its owner."""

    __tablename__ = "experiment_share"
    __table_args__ = (UniqueConstraint("experiment_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiment.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=utc_now)


class AuditLog(Base):
    """Who did what, when (e.g. a GDPR deletion); holds no personal data of participants."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("app_user.id", ondelete="SET NULL"), index=True
    )
    user_email: Mapped[str | None] = mapped_column(String(254))
    """Kept so the entry still names its author after the account is deleted."""
    action: Mapped[str] = mapped_column(String(64))
    experiment_id: Mapped[int | None]
    """Plain id, no foreign key: the log outlives what it describes."""
    target: Mapped[str | None] = mapped_column(String(200))
    """What was acted on, e.g. the participant's export label (`p00012`); never a token or id."""
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=utc_now, index=True)


class LoginAttempt(Base):
    """A dashboard login attempt; recent failures per email and per address slow further tries."""

    __tablename__ = "login_attempt"
    __table_args__ = (
        Index("ix_login_attempt_email_attempted_at", "email", "attempted_at"),
        Index("ix_login_attempt_address_attempted_at", "address", "attempted_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(64))
    succeeded: Mapped[bool]
    attempted_at: Mapped[datetime] = mapped_column(TZDateTime, default=utc_now)


class DashboardLogin(Base):
    """A dashboard login (one per successful sign-in), referred to by the signed cookie.

    The cookie carries a random token; only its SHA-256 is stored, so a copy of the database
    holds no usable login. Logging out, a password change, deactivating the account or "sign
    out other sessions" set `revoked_at`; a revoked or unknown login is no login.
    """

    __tablename__ = "dashboard_login"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=utc_now)
    last_seen_at: Mapped[datetime] = mapped_column(TZDateTime, default=utc_now)
    """Written at most once a minute (`auth.LOGIN_SEEN_RESOLUTION_S`), not on every request."""
    revoked_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    user_agent: Mapped[str | None] = mapped_column(String(400))
    """Shown to the account's owner on **Account** only; never logged."""
    address: Mapped[str | None] = mapped_column(String(64))
    """The client's network address at sign-in, shown on **Account** only; never logged."""

    user: Mapped[User] = relationship()
