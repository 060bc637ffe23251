"""add dashboard accounts, experiment shares, audit log and login attempts

Revision ID: c9f1626addfc
Revises: 0e8aa0de38ee
Create Date: 2026-11-25 20:34:35.879336+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c9f1626addfc"
down_revision: str | None = "0e8aa0de38ee"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "app_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('admin', 'experimenter')", name=op.f("ck_app_user_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
        sa.UniqueConstraint("email", name=op.f("uq_app_user_email")),
    )
    op.create_table(
        "login_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempt")),
    )
    with op.batch_alter_table("login_attempt", schema=None) as batch_op:
        batch_op.create_index(
            "ix_login_attempt_address_attempted_at", ["address", "attempted_at"], unique=False
        )
        batch_op.create_index(
            "ix_login_attempt_email_attempted_at", ["email", "attempted_at"], unique=False
        )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("user_email", sa.String(length=254), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=True),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_audit_log_user_id_app_user"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_user_id"), ["user_id"], unique=False)

    op.create_table(
        "experiment_share",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiment.id"],
            name=op.f("fk_experiment_share_experiment_id_experiment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_experiment_share_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_share")),
        sa.UniqueConstraint(
            "experiment_id", "user_id", name=op.f("uq_experiment_share_experiment_id_user_id")
        ),
    )
    with op.batch_alter_table("experiment_share", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_experiment_share_experiment_id"), ["experiment_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_experiment_share_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("experiment", schema=None) as batch_op:
        # Experiments created before accounts existed have no owner (admins see them).
        batch_op.add_column(sa.Column("owner_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "platform_id_export",
                sa.String(length=16),
                nullable=False,
                server_default="pseudonymised",
            )
        )
        batch_op.create_index(batch_op.f("ix_experiment_owner_id"), ["owner_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_experiment_owner_id_app_user"),
            "app_user",
            ["owner_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_check_constraint(
            "platform_id_export", "platform_id_export IN ('raw', 'pseudonymised')"
        )


def downgrade() -> None:
    with op.batch_alter_table("experiment", schema=None) as batch_op:
        batch_op.drop_constraint("platform_id_export", type_="check")
        batch_op.drop_constraint(batch_op.f("fk_experiment_owner_id_app_user"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_experiment_owner_id"))
        batch_op.drop_column("platform_id_export")
        batch_op.drop_column("owner_id")

    with op.batch_alter_table("experiment_share", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_experiment_share_user_id"))
        batch_op.drop_index(batch_op.f("ix_experiment_share_experiment_id"))
    op.drop_table("experiment_share")

    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_user_id"))
        batch_op.drop_index(batch_op.f("ix_audit_log_created_at"))
    op.drop_table("audit_log")

    with op.batch_alter_table("login_attempt", schema=None) as batch_op:
        batch_op.drop_index("ix_login_attempt_email_attempted_at")
        batch_op.drop_index("ix_login_attempt_address_attempted_at")
    op.drop_table("login_attempt")
    op.drop_table("app_user")
