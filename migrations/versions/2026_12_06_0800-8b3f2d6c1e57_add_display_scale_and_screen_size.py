"""add display_scale and screen size

`trial_response.display_scale`: the uniform scale of the trial screen's images when the answer
was given (1 = native size). `participant.screen_w_px`/`screen_h_px`: the screen size (CSS px)
the landing page saw when the participant started. Rows from before stay NULL: not recorded.

Revision ID: 8b3f2d6c1e57
Revises: 47af190dd086
Create Date: 2026-12-06 08:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8b3f2d6c1e57"
down_revision: str | None = "47af190dd086"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trial_response") as batch:
        batch.add_column(sa.Column("display_scale", sa.Float(), nullable=True))
    with op.batch_alter_table("participant") as batch:
        batch.add_column(sa.Column("screen_w_px", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("screen_h_px", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("participant") as batch:
        batch.drop_column("screen_h_px")
        batch.drop_column("screen_w_px")
    with op.batch_alter_table("trial_response") as batch:
        batch.drop_column("display_scale")
