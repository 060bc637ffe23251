"""create initial schema

Revision ID: 4cb1e70af096
Revises:
Create Date: 2026-11-25 20:27:13.490985+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "4cb1e70af096"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stimulus_set",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=80), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("source_format", sa.String(length=16), nullable=False),
        sa.Column(
            "manifest",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("image_count", sa.Integer(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stimulus_set")),
        sa.UniqueConstraint("slug", name=op.f("uq_stimulus_set_slug")),
    )
    op.create_table(
        "experiment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=80), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("stimulus_set_id", sa.Integer(), nullable=False),
        sa.Column("design_name", sa.String(length=80), nullable=False),
        sa.Column("design_toml", sa.Text(), nullable=False),
        sa.Column("enrolled_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["stimulus_set_id"],
            ["stimulus_set.id"],
            name=op.f("fk_experiment_stimulus_set_id_stimulus_set"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment")),
        sa.UniqueConstraint("slug", name=op.f("uq_experiment_slug")),
    )
    with op.batch_alter_table("experiment", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_experiment_stimulus_set_id"), ["stimulus_set_id"], unique=False
        )

    op.create_table(
        "stimulus_image",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stimulus_set_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=400), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("lossless_sha256", sa.String(length=64), nullable=False),
        sa.Column("lossy_sha256", sa.String(length=64), nullable=False),
        sa.Column("png_sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["stimulus_set_id"],
            ["stimulus_set.id"],
            name=op.f("fk_stimulus_image_stimulus_set_id_stimulus_set"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stimulus_image")),
        sa.UniqueConstraint(
            "stimulus_set_id", "path", name=op.f("uq_stimulus_image_stimulus_set_id_path")
        ),
    )
    with op.batch_alter_table("stimulus_image", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_stimulus_image_stimulus_set_id"), ["stimulus_set_id"], unique=False
        )

    op.create_table(
        "stimulus_unit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stimulus_set_id", sa.Integer(), nullable=False),
        sa.Column("unit_key", sa.String(length=120), nullable=False),
        sa.Column("layer", sa.String(length=80), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("branch", sa.String(length=16), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("hand_picked", sa.Boolean(), nullable=False),
        sa.Column(
            "roles",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["stimulus_set_id"],
            ["stimulus_set.id"],
            name=op.f("fk_stimulus_unit_stimulus_set_id_stimulus_set"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stimulus_unit")),
        sa.UniqueConstraint(
            "stimulus_set_id", "unit_key", name=op.f("uq_stimulus_unit_stimulus_set_id_unit_key")
        ),
    )
    with op.batch_alter_table("stimulus_unit", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_stimulus_unit_stimulus_set_id"), ["stimulus_set_id"], unique=False
        )

    op.create_table(
        "experiment_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("link_code", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("max_participants", sa.Integer(), nullable=True),
        sa.Column(
            "outcomes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("mturk_sandbox", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "platform IN ('prolific', 'mturk', 'lab')", name=op.f("ck_experiment_session_platform")
        ),
        sa.CheckConstraint(
            "status IN ('open', 'paused', 'closed')", name=op.f("ck_experiment_session_status")
        ),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiment.id"],
            name=op.f("fk_experiment_session_experiment_id_experiment"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_session")),
        sa.UniqueConstraint("link_code", name=op.f("uq_experiment_session_link_code")),
    )
    with op.batch_alter_table("experiment_session", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_experiment_session_experiment_id"), ["experiment_id"], unique=False
        )

    op.create_table(
        "participant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("experiment_session_id", sa.Integer(), nullable=False),
        sa.Column("participant_number", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("platform_id", sa.String(length=128), nullable=True),
        sa.Column(
            "platform_data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("arm", sa.String(length=80), nullable=True),
        sa.Column("seed", sa.String(length=120), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("test_mode", sa.Boolean(), nullable=False),
        sa.Column("n_trials", sa.Integer(), nullable=False),
        sa.Column(
            "blocks",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("excluded", sa.Boolean(), nullable=False),
        sa.Column(
            "exclusion_reasons",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consented_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("instructions_shown_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("instructions_done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("user_agent", sa.String(length=400), nullable=True),
        sa.CheckConstraint(
            "status IN ('enrolled', 'consented', 'in_progress', 'completed', 'declined', 'returned')",
            name=op.f("ck_participant_status"),
        ),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiment.id"],
            name=op.f("fk_participant_experiment_id_experiment"),
        ),
        sa.ForeignKeyConstraint(
            ["experiment_session_id"],
            ["experiment_session.id"],
            name=op.f("fk_participant_experiment_session_id_experiment_session"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participant")),
        sa.UniqueConstraint(
            "experiment_id",
            "participant_number",
            name=op.f("uq_participant_experiment_id_participant_number"),
        ),
        sa.UniqueConstraint(
            "experiment_id", "platform_id", name=op.f("uq_participant_experiment_id_platform_id")
        ),
        sa.UniqueConstraint("token", name=op.f("uq_participant_token")),
    )
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_participant_experiment_id"), ["experiment_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_participant_experiment_session_id"),
            ["experiment_session_id"],
            unique=False,
        )

    op.create_table(
        "participant_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("client_ms", sa.Float(), nullable=True),
        sa.Column("trial_index", sa.Integer(), nullable=True),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_participant_event_participant_id_participant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participant_event")),
    )
    with op.batch_alter_table("participant_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_participant_event_participant_id", ["participant_id"], unique=False
        )

    op.create_table(
        "scheduled_trial",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("trial_index", sa.Integer(), nullable=False),
        sa.Column("block_index", sa.Integer(), nullable=False),
        sa.Column("trial_kind", sa.String(length=16), nullable=False),
        sa.Column("condition", sa.String(length=80), nullable=False),
        sa.Column("reference_type", sa.String(length=16), nullable=False),
        sa.Column("n_references", sa.Integer(), nullable=False),
        sa.Column("grid_mode", sa.String(length=16), nullable=False),
        sa.Column("stimulus_unit_id", sa.Integer(), nullable=True),
        sa.Column("batch", sa.Integer(), nullable=True),
        sa.Column("query_order", sa.String(length=16), nullable=False),
        sa.Column("feedback", sa.Boolean(), nullable=False),
        sa.Column("repeat_of_trial_index", sa.Integer(), nullable=True),
        sa.Column(
            "display",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "catch_query_indices",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("skipped", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_scheduled_trial_participant_id_participant"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["stimulus_unit_id"],
            ["stimulus_unit.id"],
            name=op.f("fk_scheduled_trial_stimulus_unit_id_stimulus_unit"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_trial")),
        sa.UniqueConstraint(
            "participant_id",
            "trial_index",
            name=op.f("uq_scheduled_trial_participant_id_trial_index"),
        ),
    )
    op.create_table(
        "trial_response",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("scheduled_trial_id", sa.Integer(), nullable=False),
        sa.Column("trial_index", sa.Integer(), nullable=False),
        sa.Column("response_uuid", sa.String(length=36), nullable=False),
        sa.Column("response", sa.String(length=8), nullable=False),
        sa.Column("confidence", sa.Integer(), nullable=False),
        sa.Column("correct", sa.Boolean(), nullable=False),
        sa.Column("rt_ms", sa.Float(), nullable=False),
        sa.Column("onset_ms", sa.Float(), nullable=True),
        sa.Column("answer_ms", sa.Float(), nullable=True),
        sa.Column("frame_interval_mean_ms", sa.Float(), nullable=True),
        sa.Column("frame_interval_max_ms", sa.Float(), nullable=True),
        sa.Column("viewport_w_px", sa.Integer(), nullable=True),
        sa.Column("viewport_h_px", sa.Integer(), nullable=True),
        sa.Column("device_pixel_ratio", sa.Float(), nullable=True),
        sa.Column("focus_lost", sa.Boolean(), nullable=False),
        sa.Column("fullscreen_exited", sa.Boolean(), nullable=False),
        sa.Column("input_kind", sa.String(length=16), nullable=True),
        sa.Column("via_beacon", sa.Boolean(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "response IN ('upper', 'lower')", name=op.f("ck_trial_response_response")
        ),
        sa.CheckConstraint("confidence BETWEEN 1 AND 3", name=op.f("ck_trial_response_confidence")),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_trial_response_participant_id_participant"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["scheduled_trial_id"],
            ["scheduled_trial.id"],
            name=op.f("fk_trial_response_scheduled_trial_id_scheduled_trial"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trial_response")),
        sa.UniqueConstraint(
            "participant_id",
            "trial_index",
            name=op.f("uq_trial_response_participant_id_trial_index"),
        ),
        sa.UniqueConstraint("response_uuid", name=op.f("uq_trial_response_response_uuid")),
    )


def downgrade() -> None:
    op.drop_table("trial_response")
    op.drop_table("scheduled_trial")
    with op.batch_alter_table("participant_event", schema=None) as batch_op:
        batch_op.drop_index("ix_participant_event_participant_id")

    op.drop_table("participant_event")
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_participant_experiment_session_id"))
        batch_op.drop_index(batch_op.f("ix_participant_experiment_id"))

    op.drop_table("participant")
    with op.batch_alter_table("experiment_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_experiment_session_experiment_id"))

    op.drop_table("experiment_session")
    with op.batch_alter_table("stimulus_unit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stimulus_unit_stimulus_set_id"))

    op.drop_table("stimulus_unit")
    with op.batch_alter_table("stimulus_image", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stimulus_image_stimulus_set_id"))

    op.drop_table("stimulus_image")
    with op.batch_alter_table("experiment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_experiment_stimulus_set_id"))

    op.drop_table("experiment")
    op.drop_table("stimulus_set")
