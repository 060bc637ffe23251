"""Deterministic test data builders: they fill sane defaults and flush, never commit."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.designs import Design
from app.models import (
    Experiment,
    ExperimentSession,
    Participant,
    ScheduledTrial,
    StimulusSet,
    StimulusUnit,
    TrialResponse,
    User,
)
from app.services.experiments import create_experiment, launch_session

_counter = {"n": 0}


def _next(prefix: str) -> str:
    _counter["n"] += 1
    return f"{prefix}-{_counter['n']}"


def make_experiment(
    session: Session, stimulus_set: StimulusSet, *, design: str = "demo", **overrides: Any
) -> Experiment:
    return create_experiment(
        session,
        slug=overrides.pop("slug", _next("exp")),
        stimulus_set=stimulus_set,
        design_source=design,
        **overrides,
    )


def make_launch(session: Session, experiment: Experiment, **overrides: Any) -> ExperimentSession:
    overrides.setdefault("platform", "prolific")
    overrides.setdefault("completion_code", "C0DE1234")
    return launch_session(session, experiment, **overrides)


ROLES = ("main", "practice", "catch", "intuitiveness")


def write_structural_set(
    root: Path, design: Design, *, n_batches: int = 20, size: int = 16
) -> Path:
    """A v1 set with every unit `design` names (or enough per role), all sharing 38 tiny images.

    Cheap to write and import, so designs can be tested through the API; every batch of every
    unit has distinct queries and references, as the format requires.
    """
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}

    def image(name: str, shade: int) -> str:
        rel = f"images/{name}.png"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (size, size), (shade, 255 - shade, (shade * 7) % 256)).save(path)
        data = path.read_bytes()
        files[rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        return rel

    natural = {
        "max_query": {"path": image("max_query", 250)},
        "min_query": {"path": image("min_query", 5)},
        "max_references": [{"path": image(f"max_{i}", 200 + i)} for i in range(9)],
        "min_references": [{"path": image(f"min_{i}", 20 + i)} for i in range(9)],
    }
    synthetic = {
        "max_references": [{"path": image(f"syn_max_{i}", 150 + i)} for i in range(9)],
        "min_references": [{"path": image(f"syn_min_{i}", 60 + i)} for i in range(9)],
    }
    roles: dict[str, set[str]] = {}
    for name, unit_list in design.units.items():
        role = name if name in ROLES else (unit_list.role or "main")
        ids = list(unit_list.ids or ())
        if not ids:
            ids = [f"{role}:{i}" for i in range(unit_list.count or 1)]
        for unit_id in ids:
            roles.setdefault(unit_id, set()).add(role if role in ROLES else "main")
    units = []
    for index, (unit_id, unit_roles) in enumerate(sorted(roles.items())):
        layer, _, channel = unit_id.partition(":")
        units.append(
            {
                "id": unit_id,
                "layer": layer,
                "channel": int(channel) if channel.isdigit() else index,
                "roles": sorted(unit_roles),
                "natural": {"batches": [{"batch": b, **natural} for b in range(n_batches)]},
                "synthetic": synthetic,
            }
        )
    manifest = {
        "schema": "psychvis.stimulus_set",
        "schema_version": 1,
        "id": f"structural-{design.name}",
        "image_size_px": size,
        "files": files,
        "units": units,
    }
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return root


def make_user(
    session: Session,
    email: str | None = None,
    *,
    role: str = "experimenter",
    password: str = "correct horse battery",
) -> User:
    from app.services.auth import create_user

    return create_user(session, email or f"{_next('user')}@example.org", password, role)  # type: ignore[arg-type]


def add_end_rating(
    session: Session,
    participant: Participant,
    value: int,
    *,
    rt_ms: float | None,
    unit: StimulusUnit | None = None,
) -> ScheduledTrial:
    """An answered rating trial after the participant's schedule (as an end rating is): the
    trial and its answer, flushed. rt_ms None: a rating carried over from the old pages."""
    trial = ScheduledTrial(
        participant_id=participant.id,
        trial_index=participant.n_trials,
        block_index=len(participant.blocks),
        task="rating",
        trial_kind="task",
        condition="end",
        stimulus_unit_id=unit.id if unit is not None else None,
        feedback=False,
        display={"synthetic": [], "natural": []},
        solution=None,
    )
    session.add(trial)
    session.flush()
    session.add(
        TrialResponse(
            participant_id=participant.id,
            scheduled_trial_id=trial.id,
            trial_index=trial.trial_index,
            response_uuid=str(uuid.uuid4()),
            answer={"value": value},
            correct=None,
            rt_ms=rt_ms,
        )
    )
    session.flush()
    return trial


def answer_main_trials(
    session: Session, participant: Participant, n: int, *, offset: int = 0
) -> None:
    """Store answers ("upper", confidence 2, 700 ms) to the participant's main trials
    offset..offset+n-1, as the answer path would (correct from the query order); flushed."""
    trials = session.scalars(
        select(ScheduledTrial)
        .where(ScheduledTrial.participant_id == participant.id, ScheduledTrial.trial_kind == "main")
        .order_by(ScheduledTrial.trial_index)
        .offset(offset)
        .limit(n)
    ).all()
    assert len(trials) == n
    for trial in trials:
        session.add(
            TrialResponse(
                participant_id=participant.id,
                scheduled_trial_id=trial.id,
                trial_index=trial.trial_index,
                response_uuid=f"{participant.id:08d}-{trial.trial_index:027d}",
                answer={"response": "upper", "confidence": 2},
                correct=trial.query_order == "max_upper",
                rt_ms=700.0,
            )
        )
    session.flush()
