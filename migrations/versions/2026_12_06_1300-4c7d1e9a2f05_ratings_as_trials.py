"""intuitiveness ratings as rating trials

The intuitiveness ratings become trials of the `rating` type (app/tasks/rating), run by the
same engine as the 2-AFC trials: the start ratings are the first block of the schedule (before
the instructions), the end ratings its last. For every participant with ratings in
`participant.rating_specs`, this inserts those trials, shifts the index of every later trial
(in `scheduled_trial`, `trial_response`, `participant_event` and the schedule's `blocks`) by the
number of start ratings, and moves the given ratings from `participant_rating` into
`trial_response` (answer `{"value": v}`, no right answer). `participant_rating` and
`rating_specs` go. The 2-AFC columns of `scheduled_trial` become nullable (a rating trial has no
grids or query order), and so does `trial_response.rt_ms` (a rating given on the old page has no
response time). The downgrade moves everything back.

The rating trials' images are resolved here as the server resolves them at enrolment (the first
nine synthetic and natural max references of batch 0, served under the experiment's names):
self-contained code, since the app's may change after this revision.

Revision ID: 4c7d1e9a2f05
Revises: 9d4e2b7a6f31
Create Date: 2026-12-06 13:00:00+00:00
"""

import hashlib
import hmac
import tomllib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "4c7d1e9a2f05"
down_revision: str | None = "9d4e2b7a6f31"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
AFC2_COLUMNS = (
    ("reference_type", sa.String(length=16)),
    ("n_references", sa.Integer()),
    ("grid_mode", sa.String(length=16)),
    ("query_order", sa.String(length=16)),
)
TITLE = "Next: rate how intuitive the images are"
SHIFT = 1_000_000
"""Renumbering goes through indices above any real one, so that no two rows of a participant
share an index at any moment (the unique keys are checked row by row)."""

participant_t = sa.table(
    "participant",
    sa.column("id", sa.Integer),
    sa.column("experiment_id", sa.Integer),
    sa.column("n_trials", sa.Integer),
    sa.column("blocks", JSON),
    sa.column("rating_specs", JSON),
)
trial_t = sa.table(
    "scheduled_trial",
    sa.column("id", sa.Integer),
    sa.column("participant_id", sa.Integer),
    sa.column("trial_index", sa.Integer),
    sa.column("block_index", sa.Integer),
    sa.column("task", sa.String),
    sa.column("trial_kind", sa.String),
    sa.column("condition", sa.String),
    sa.column("stimulus_unit_id", sa.Integer),
    sa.column("feedback", sa.Boolean),
    sa.column("display", JSON),
    sa.column("solution", JSON),
    sa.column("skipped", sa.Boolean),
)
response_t = sa.table(
    "trial_response",
    sa.column("id", sa.Integer),
    sa.column("participant_id", sa.Integer),
    sa.column("scheduled_trial_id", sa.Integer),
    sa.column("trial_index", sa.Integer),
    sa.column("response_uuid", sa.String),
    sa.column("answer", JSON),
    sa.column("correct", sa.Boolean),
    sa.column("rt_ms", sa.Float),
    sa.column("focus_lost", sa.Boolean),
    sa.column("fullscreen_exited", sa.Boolean),
    sa.column("via_beacon", sa.Boolean),
    sa.column("received_at", sa.DateTime(timezone=True)),
)
rating_t = sa.table(
    "participant_rating",
    sa.column("participant_id", sa.Integer),
    sa.column("rating_index", sa.Integer),
    sa.column("position", sa.String),
    sa.column("unit_key", sa.String),
    sa.column("value", sa.Integer),
    sa.column("rt_ms", sa.Float),
    sa.column("received_at", sa.DateTime(timezone=True)),
)


def _shift(conn: sa.Connection, participant_id: int, by: int, from_index: int = 0) -> None:
    """Add `by` to every trial index >= from_index of a participant (trials, answers, events,
    repeat references)."""
    p = {"p": participant_id, "f": from_index, "by": by, "s": SHIFT}
    for table in ("scheduled_trial", "trial_response"):
        conn.execute(
            sa.text(
                f"UPDATE {table} SET trial_index = trial_index + :s "
                "WHERE participant_id = :p AND trial_index >= :f"
            ),
            p,
        )
        conn.execute(
            sa.text(
                f"UPDATE {table} SET trial_index = trial_index - :s + :by "
                "WHERE participant_id = :p AND trial_index >= :s"
            ),
            p,
        )
    conn.execute(
        sa.text(
            "UPDATE scheduled_trial SET repeat_of_trial_index = repeat_of_trial_index + :by "
            "WHERE participant_id = :p AND repeat_of_trial_index >= :f"
        ),
        p,
    )
    conn.execute(
        sa.text(
            "UPDATE participant_event SET trial_index = trial_index + :by "
            "WHERE participant_id = :p AND trial_index >= :f"
        ),
        p,
    )


class _Images:
    """Served image names of an experiment's stimulus set, as the server names them."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.cache: dict[int, tuple[dict[str, Any], dict[str, str]]] = {}

    def of(self, experiment_id: int) -> tuple[dict[str, Any], dict[str, str]]:
        if experiment_id not in self.cache:
            set_id, key, design = self.conn.execute(
                sa.text(
                    "SELECT stimulus_set_id, image_key, design_toml FROM experiment WHERE id = :e"
                ),
                {"e": experiment_id},
            ).one()
            try:
                encoding = tomllib.loads(design or "").get("images", {}).get("encoding")
            except tomllib.TOMLDecodeError:
                encoding = None
            encoding = encoding if encoding in ("lossless", "lossy", "png") else "lossless"
            ext = "png" if encoding == "png" else "webp"
            units = {
                unit_key: (unit_id, data)
                for unit_id, unit_key, data in self.conn.execute(
                    sa.select(sa.column("id"), sa.column("unit_key"), sa.column("data", JSON))
                    .select_from(sa.table("stimulus_unit"))
                    .where(sa.column("stimulus_set_id") == set_id)
                )
            }
            names = {}
            for path, sha in self.conn.execute(
                sa.text(
                    f"SELECT path, {encoding}_sha256 FROM stimulus_image WHERE stimulus_set_id = :s"
                ),
                {"s": set_id},
            ):
                if key is not None:
                    sha = hmac.new(bytes.fromhex(key), sha.encode(), hashlib.sha256).hexdigest()
                names[path] = f"{sha}.{ext}"
            self.cache[experiment_id] = (units, names)
        return self.cache[experiment_id]

    def display(self, experiment_id: int, unit_key: str) -> tuple[int | None, dict[str, list[str]]]:
        units, names = self.of(experiment_id)
        unit_id, data = units.get(unit_key, (None, {}))
        synthetic = ((data or {}).get("synthetic") or {}).get("max_references", [])
        batches = ((data or {}).get("natural") or {}).get("batches") or []
        batch = next((b for b in batches if b.get("batch") == 0), batches[0] if batches else {})
        natural = batch.get("max_references", [])
        return unit_id, {
            "synthetic": [names[e["path"]] for e in synthetic[:9] if e["path"] in names],
            "natural": [names[e["path"]] for e in natural[:9] if e["path"] in names],
        }


def _rating_block(index: int, position: str, n: int) -> dict[str, Any]:
    return {
        "block_index": index,
        "kind": "task",
        "condition": position,
        "title": TITLE,
        "n_trials": n,
        "block_feedback": False,
        "break_after": False,
        "repeat_until_correct": False,
        "max_attempts": 1,
        "attempt": 1,
        "n_least_confident": 0,
        "before_instructions": position == "start",
    }


def upgrade() -> None:
    with op.batch_alter_table("scheduled_trial") as batch:
        for name, type_ in AFC2_COLUMNS:
            batch.alter_column(name, existing_type=type_, nullable=True)
    with op.batch_alter_table("trial_response") as batch:
        batch.alter_column("rt_ms", existing_type=sa.Float(), nullable=True)

    conn = op.get_bind()
    images = _Images(conn)
    rated = [
        row
        for row in conn.execute(
            sa.select(
                participant_t.c.id,
                participant_t.c.experiment_id,
                participant_t.c.n_trials,
                participant_t.c.blocks,
                participant_t.c.rating_specs,
            )
        )
        if row.rating_specs
    ]
    for row in rated:
        specs = sorted(row.rating_specs, key=lambda r: r["rating_index"])
        start = [r for r in specs if r["position"] == "start"]
        end = [r for r in specs if r["position"] == "end"]
        given = {
            r.rating_index: r
            for r in conn.execute(sa.select(rating_t).where(rating_t.c.participant_id == row.id))
        }
        k = len(start)
        if k:
            _shift(conn, row.id, k)
            conn.execute(
                sa.text(
                    "UPDATE scheduled_trial SET block_index = block_index + 1 "
                    "WHERE participant_id = :p"
                ),
                {"p": row.id},
            )
        blocks = [
            {**b, "block_index": b["block_index"] + (1 if k else 0), "before_instructions": False}
            for b in row.blocks
        ]
        if k:
            blocks.insert(0, _rating_block(0, "start", k))
        if end:
            blocks.append(_rating_block(len(blocks), "end", len(end)))
        placed = [(i, 0, spec) for i, spec in enumerate(start)] + [
            (row.n_trials + k + j, len(blocks) - 1, spec) for j, spec in enumerate(end)
        ]
        for trial_index, block_index, spec in placed:
            unit_id, display = images.display(row.experiment_id, spec["unit_id"])
            trial_id = conn.execute(
                sa.insert(trial_t)
                .values(
                    participant_id=row.id,
                    trial_index=trial_index,
                    block_index=block_index,
                    task="rating",
                    trial_kind="task",
                    condition=spec["position"],
                    stimulus_unit_id=unit_id,
                    feedback=False,
                    display=display,
                    solution=None,
                    skipped=False,
                )
                .returning(trial_t.c.id)
            ).scalar_one()
            answer = given.get(spec["rating_index"])
            if answer is not None:
                conn.execute(
                    sa.insert(response_t).values(
                        participant_id=row.id,
                        scheduled_trial_id=trial_id,
                        trial_index=trial_index,
                        response_uuid=str(uuid.uuid4()),
                        answer={"value": answer.value},
                        correct=None,
                        rt_ms=answer.rt_ms,
                        focus_lost=False,
                        fullscreen_exited=False,
                        via_beacon=False,
                        received_at=answer.received_at or datetime.now(UTC),
                    )
                )
        conn.execute(
            sa.update(participant_t)
            .where(participant_t.c.id == row.id)
            .values(blocks=blocks, n_trials=row.n_trials + len(specs))
        )
    op.drop_table("participant_rating")
    with op.batch_alter_table("participant") as batch:
        batch.drop_column("rating_specs")


def downgrade() -> None:
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
    with op.batch_alter_table("participant") as batch:
        batch.add_column(sa.Column("rating_specs", JSON, nullable=False, server_default="[]"))

    conn = op.get_bind()
    units = sa.table("stimulus_unit", sa.column("id", sa.Integer), sa.column("unit_key", sa.String))
    rating_rows = conn.execute(
        sa.select(
            trial_t.c.id,
            trial_t.c.participant_id,
            trial_t.c.trial_index,
            trial_t.c.condition,
            units.c.unit_key,
            response_t.c.answer,
            response_t.c.rt_ms,
            response_t.c.received_at,
        )
        .select_from(trial_t)
        .outerjoin(units, units.c.id == trial_t.c.stimulus_unit_id)
        .outerjoin(response_t, response_t.c.scheduled_trial_id == trial_t.c.id)
        .where(trial_t.c.task == "rating")
        .order_by(trial_t.c.participant_id, trial_t.c.trial_index)
    ).all()
    by_participant: dict[int, list[Any]] = {}
    for r in rating_rows:
        by_participant.setdefault(r.participant_id, []).append(r)
    for participant_id, rows in by_participant.items():
        specs = []
        for rating_index, r in enumerate(rows):
            specs.append(
                {"rating_index": rating_index, "position": r.condition, "unit_id": r.unit_key}
            )
            if r.answer is not None:
                conn.execute(
                    sa.insert(rating_t).values(
                        participant_id=participant_id,
                        rating_index=rating_index,
                        position=r.condition,
                        unit_key=r.unit_key or "",
                        value=int(r.answer["value"]),
                        rt_ms=r.rt_ms,
                        received_at=r.received_at,
                    )
                )
        ids = [r.id for r in rows]
        conn.execute(sa.delete(response_t).where(response_t.c.scheduled_trial_id.in_(ids)))
        conn.execute(sa.delete(trial_t).where(trial_t.c.id.in_(ids)))
        k = sum(1 for r in rows if r.condition == "start")
        if k:
            _shift(conn, participant_id, -k, from_index=k)
            conn.execute(
                sa.text(
                    "UPDATE scheduled_trial SET block_index = block_index - 1 "
                    "WHERE participant_id = :p"
                ),
                {"p": participant_id},
            )
        n_trials, blocks = conn.execute(
            sa.select(participant_t.c.n_trials, participant_t.c.blocks).where(
                participant_t.c.id == participant_id
            )
        ).one()
        kept = [b for b in blocks if b.get("kind") != "task"]
        blocks = [
            {
                key: value
                for key, value in {**b, "block_index": i}.items()
                if key != "before_instructions"
            }
            for i, b in enumerate(kept)
        ]
        conn.execute(
            sa.update(participant_t)
            .where(participant_t.c.id == participant_id)
            .values(rating_specs=specs, blocks=blocks, n_trials=n_trials - len(rows))
        )
    with op.batch_alter_table("trial_response") as batch:
        batch.alter_column("rt_ms", existing_type=sa.Float(), nullable=False)
    with op.batch_alter_table("scheduled_trial") as batch:
        for name, type_ in AFC2_COLUMNS:
            batch.alter_column(name, existing_type=type_, nullable=False)
