"""trial types and generic answers

A trial has a type (`scheduled_trial.task`, app/tasks) and stores what a correct answer
contains (`scheduled_trial.solution`); an answer stores its type-specific fields as one JSON
object (`trial_response.answer`) instead of the 2-AFC columns `response` and `confidence`, and
`correct` may be NULL (a trial without a right answer). Existing rows are carried over: every
trial so far is a 2-AFC trial, its solution is the side of the maximally activating query, its
answer `{"response", "confidence"}` from the old columns. The downgrade restores them.

Revision ID: 9d4e2b7a6f31
Revises: e5a91c3f7d20
Create Date: 2026-12-06 10:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "9d4e2b7a6f31"
down_revision: str | None = "e5a91c3f7d20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _json_object(*pairs: str) -> str:
    """SQL building a JSON object from `'key', expression` pairs, on either database."""
    function = "jsonb_build_object" if op.get_bind().dialect.name == "postgresql" else "json_object"
    return f"{function}({', '.join(pairs)})"


def upgrade() -> None:
    with op.batch_alter_table("scheduled_trial") as batch:
        batch.add_column(
            sa.Column("task", sa.String(length=16), server_default="afc2", nullable=False)
        )
        batch.add_column(sa.Column("solution", JSON, nullable=True))
    side = "CASE WHEN query_order = 'max_upper' THEN 'upper' ELSE 'lower' END"
    op.execute(f"UPDATE scheduled_trial SET solution = {_json_object(repr('response'), side)}")

    with op.batch_alter_table("trial_response") as batch:
        batch.add_column(sa.Column("answer", JSON, nullable=True))
    op.execute(
        "UPDATE trial_response SET answer = "
        + _json_object("'response'", "response", "'confidence'", "confidence")
    )
    with op.batch_alter_table("trial_response") as batch:
        batch.alter_column("answer", existing_type=JSON, nullable=False)
        batch.alter_column("correct", existing_type=sa.Boolean(), nullable=True)
        batch.drop_constraint(op.f("ck_trial_response_confidence"), type_="check")
        batch.drop_constraint(op.f("ck_trial_response_response"), type_="check")
        batch.drop_column("response")
        batch.drop_column("confidence")


def downgrade() -> None:
    with op.batch_alter_table("trial_response") as batch:
        batch.add_column(sa.Column("response", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("confidence", sa.Integer(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE trial_response SET response = answer->>'response', "
            "confidence = (answer->>'confidence')::int"
        )
    else:
        op.execute(
            "UPDATE trial_response SET response = json_extract(answer, '$.response'), "
            "confidence = json_extract(answer, '$.confidence')"
        )
    with op.batch_alter_table("trial_response") as batch:
        batch.alter_column("response", existing_type=sa.String(length=8), nullable=False)
        batch.alter_column("confidence", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("correct", existing_type=sa.Boolean(), nullable=False)
        batch.create_check_constraint(
            op.f("ck_trial_response_confidence"), "confidence BETWEEN 1 AND 3"
        )
        batch.create_check_constraint(
            op.f("ck_trial_response_response"), "response IN ('upper', 'lower')"
        )
        batch.drop_column("answer")
    with op.batch_alter_table("scheduled_trial") as batch:
        batch.drop_column("solution")
        batch.drop_column("task")
