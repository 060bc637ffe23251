"""add intuitiveness ratings and free-text feedback

Revision ID: 0e8aa0de38ee
Revises: 4cb1e70af096
Create Date: 2026-11-25 20:32:07.910564+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0e8aa0de38ee"
down_revision: str | None = "4cb1e70af096"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "participant_rating",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("rating_index", sa.Integer(), nullable=False),
        sa.Column("position", sa.String(length=8), nullable=False),
        sa.Column("unit_key", sa.String(length=120), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("rt_ms", sa.Float(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "position IN ('start', 'end')", name=op.f("ck_participant_rating_position")
        ),
        sa.CheckConstraint("value BETWEEN -100 AND 100", name=op.f("ck_participant_rating_value")),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_participant_rating_participant_id_participant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participant_rating")),
        sa.UniqueConstraint(
            "participant_id",
            "rating_index",
            name=op.f("uq_participant_rating_participant_id_rating_index"),
        ),
    )
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "rating_specs",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                # Participants enrolled before this revision have no ratings.
                server_default="[]",
            )
        )
        batch_op.add_column(sa.Column("feedback_text", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("feedback_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.drop_column("feedback_at")
        batch_op.drop_column("feedback_text")
        batch_op.drop_column("rating_specs")

    op.drop_table("participant_rating")
