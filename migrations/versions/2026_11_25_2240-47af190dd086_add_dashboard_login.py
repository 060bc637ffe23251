"""add dashboard_login

Server-side dashboard logins: the signed cookie names one (by a random token whose SHA-256 is
stored), so logging out, a password change or deactivating an account ends every copy of the
cookie at once instead of when it expires.

Revision ID: 47af190dd086
Revises: 5d2e7c1a9b40
Create Date: 2026-11-25 22:40:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "47af190dd086"
down_revision: str | None = "5d2e7c1a9b40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Cookies signed before this revision name no login: their holders log in again once.
    op.create_table(
        "dashboard_login",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("user_agent", sa.String(length=400), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_dashboard_login_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_login")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_dashboard_login_token_sha256")),
    )
    with op.batch_alter_table("dashboard_login", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dashboard_login_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dashboard_login", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dashboard_login_user_id"))
    op.drop_table("dashboard_login")
