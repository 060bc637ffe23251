"""Deterministic test data builders: they fill sane defaults and flush, never commit."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.models import Experiment, ExperimentSession, StimulusSet
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
