"""add participant task_page_at

`participant.task_page_at`: when the task page (`GET /p/{token}` with trials left) was first
served. Answers are refused while it is NULL: a browser always loads the task page before it
answers, a script posting answers straight to the API need not.

Participants who finished the instructions before this revision were served the task page
right after (the instructions form redirects to it): they get `instructions_done_at`, so that
a study running during the upgrade goes on. Downgrading drops the column.

Revision ID: e5a91c3f7d20
Revises: c41e7a9d2b88
Create Date: 2026-12-06 10:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e5a91c3f7d20"
down_revision: str | None = "c41e7a9d2b88"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("participant") as batch:
        batch.add_column(sa.Column("task_page_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE participant SET task_page_at = instructions_done_at "
        "WHERE instructions_done_at IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("participant") as batch:
        batch.drop_column("task_page_at")
