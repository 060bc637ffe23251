"""add experiment image_key

`experiment.image_key`: the experiment's secret for the names its stimulus images are served
under (`/img/<HMAC-SHA256(image_key, content sha256)>.<ext>`), so that a served URL cannot be
computed from an image's content. Experiments from before stay NULL and keep their
content-hash names (their schedules hold those names).

Revision ID: c41e7a9d2b88
Revises: 8b3f2d6c1e57
Create Date: 2026-12-06 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c41e7a9d2b88"
down_revision: str | None = "8b3f2d6c1e57"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("experiment") as batch:
        batch.add_column(sa.Column("image_key", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("experiment") as batch:
        batch.drop_column("image_key")
