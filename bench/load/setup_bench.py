"""Prepare a benchmark database: schema, a 45-unit demo stimulus set, three 45-trial
experiments (lossless / lossy / png) and an open Prolific link for each.

Run: `.venv/bin/python -m bench.load.setup_bench --database-url postgresql://postgres@127.0.0.1/psychvis_bench
--stimuli-dir /tmp/psychvis-bench/stimuli`. Idempotent. Prints the link codes
(`bench-lossless`, `bench-lossy`, `bench-png`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select

from app.db import make_engine, make_sessionmaker
from app.demo import write_demo_set
from app.migrate import upgrade
from app.models import Experiment, ExperimentSession, StimulusSet
from app.services.blobs import BlobStore
from app.services.experiments import create_experiment, launch_session
from app.services.stimuli import get_stimulus_set, import_stimulus_set

logger = logging.getLogger(__name__)

SET_ID = "bench-demo45"
ENCODINGS = ("lossless", "lossy", "png")
N_TRIALS = 45

# 45 main trials with 9 + 9 natural references, three blocks of 15, no practice or catch:
# the "45-trial session with 9+9 references" of the participant-server issue.
DESIGN_TEMPLATE = """
name = "bench45-{encoding}"
title = "Benchmark: 45 trials, 9+9 natural references ({encoding})"
seed = "bench45"
placeholder_unit_prefix = "demo"

[conditions.natural]
reference_type = "natural"
n_references = 9
grid_mode = "min_max"

[units.main]
role = "main"
count = 45

[images]
encoding = "{encoding}"

[[blocks]]
kind = "main"
condition = "natural"
n_trials = 15
block_feedback = true
break_after = true

[[blocks]]
kind = "main"
condition = "natural"
n_trials = 15
block_feedback = true
break_after = true

[[blocks]]
kind = "main"
condition = "natural"
n_trials = 15
block_feedback = true
"""

cli = typer.Typer(add_completion=False)


def setup_bench(
    database_url: str, stimuli_dir: Path, image_size: int | None = None
) -> dict[str, str]:
    """Create (idempotently) the benchmark set, experiments and links.

    `image_size`: pixels of the demo images (default: the demo set's; tests use small ones).

    Returns:
        encoding -> link code.
    """
    engine = make_engine(database_url, pool_size=1)
    links: dict[str, str] = {}
    try:
        upgrade(engine)
        with make_sessionmaker(engine)() as session:
            if session.scalar(select(StimulusSet.id).where(StimulusSet.slug == SET_ID)) is None:
                source = write_demo_set(
                    stimuli_dir / "bench-source",
                    n_main_units=N_TRIALS,
                    n_practice_units=2,
                    set_id=SET_ID,
                    **({"size": image_size} if image_size is not None else {}),
                )
                import_stimulus_set(session, source, BlobStore(stimuli_dir / "blobs"))
                session.commit()
            stimulus_set = get_stimulus_set(session, SET_ID)
            design_dir = stimuli_dir / "designs"
            design_dir.mkdir(parents=True, exist_ok=True)
            for encoding in ENCODINGS:
                slug = f"bench-{encoding}"
                if session.scalar(select(Experiment.id).where(Experiment.slug == slug)) is None:
                    path = design_dir / f"bench45-{encoding}.toml"
                    path.write_text(DESIGN_TEMPLATE.format(encoding=encoding), encoding="utf-8")
                    experiment = create_experiment(
                        session, slug=slug, stimulus_set=stimulus_set, design_source=str(path)
                    )
                    session.flush()
                    launch_session(
                        session,
                        experiment,
                        platform="prolific",
                        completion_code="BENCH",
                        link_code=slug,
                    )
                    session.commit()
                found = session.scalar(
                    select(ExperimentSession.link_code).where(ExperimentSession.link_code == slug)
                )
                assert found is not None
                links[encoding] = found
    finally:
        engine.dispose()
    return links


@cli.command()
def main(
    database_url: Annotated[str, typer.Option(help="SQLAlchemy/psycopg URL.")],
    stimuli_dir: Annotated[Path, typer.Option(help="The server's PSYCHVIS_STIMULI_DIR.")],
) -> None:
    """Create the benchmark experiments and print their link codes."""
    logging.basicConfig(level=logging.INFO)
    for encoding, link in setup_bench(database_url, stimuli_dir).items():
        typer.echo(f"{encoding}\t{link}")


if __name__ == "__main__":
    cli()
