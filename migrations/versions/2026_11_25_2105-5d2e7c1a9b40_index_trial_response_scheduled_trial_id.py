"""index trial_response.scheduled_trial_id

Every answer asks which of the participant's trials are answered (an EXISTS on this column);
without an index Postgres hashed a sequential scan of all stored answers of all studies, so the
cost of one answer grew with the size of the database (34 ms at 30,000 stored answers). The
index also serves ON DELETE CASCADE from scheduled_trial.

Revision ID: 5d2e7c1a9b40
Revises: c9f1626addfc
Create Date: 2026-11-25 21:05:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5d2e7c1a9b40"
down_revision: str | None = "c9f1626addfc"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trial_response", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_trial_response_scheduled_trial_id"), ["scheduled_trial_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("trial_response", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trial_response_scheduled_trial_id"))
