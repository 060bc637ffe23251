"""Time of the console's Analysis page: the first load and reloads with no new answer.

Runs the real app in-process on a fresh SQLite file (or the database given by --database-url,
which must be empty): imports a structural stimulus set for the preset, enrols N participants
and stores answers to each one's first M scheduled trials, logs in through the form, then
times `GET /dashboard/experiments/<slug>/analysis` (default grouping) once cold and R times
again, then once more after one new answer.

    .venv/bin/python bench/console_analysis.py --participants 20 --answers 50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import designs  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import make_engine, make_sessionmaker, utc_now  # noqa: E402
from app.main import create_app  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.models import Participant, ScheduledTrial, TrialResponse  # noqa: E402
from app.services.blobs import BlobStore  # noqa: E402
from app.services.experiments import create_experiment, launch_session  # noqa: E402
from app.services.participants import enrol  # noqa: E402
from app.services.stimuli import import_stimulus_set  # noqa: E402
from tests.app.routes.dashboard_client import login  # noqa: E402
from tests.factories import make_user, write_structural_set  # noqa: E402


def _answer(session: object, participant: Participant, trials: list[ScheduledTrial]) -> None:
    for trial in trials:
        # Deterministic mix: accuracy differs by participant and trial, RTs spread.
        correct = (participant.participant_number * 7 + trial.trial_index * 3) % 10 < 7
        upper = trial.query_order == "max_upper"
        session.add(  # type: ignore[attr-defined]
            TrialResponse(
                participant_id=participant.id,
                scheduled_trial_id=trial.id,
                trial_index=trial.trial_index,
                response_uuid=f"{participant.id:08d}-{trial.trial_index:027d}",
                answer={
                    "response": "upper" if upper == correct else "lower",
                    "confidence": 1 + (trial.trial_index % 3),
                },
                correct=correct,
                rt_ms=600.0 + 37 * (trial.trial_index % 11) + 5 * participant.participant_number,
                received_at=utc_now(),
            )
        )


def bench(url: str | None, preset: str, n_participants: int, n_answers: int, reloads: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="psychvis-analysis-"))
    url = url or f"sqlite:///{tmp / 'bench.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with make_sessionmaker(engine)() as session:
        root = write_structural_set(tmp / preset, designs.load_design(preset))
        stimulus_set = import_stimulus_set(session, root, BlobStore(tmp / "blobs"))
        experiment = create_experiment(
            session, slug=f"bench-{preset}", stimulus_set=stimulus_set, design_source=preset
        )
        launched = launch_session(session, experiment, platform="prolific")
        user = make_user(session, "bench@example.org", role="admin")
        session.commit()
        people = [
            enrol(session, launched, {"PROLIFIC_PID": f"bench-{i}"})[0]
            for i in range(n_participants)
        ]
        for participant in people:
            trials = list(
                session.scalars(
                    select(ScheduledTrial)
                    .where(ScheduledTrial.participant_id == participant.id)
                    .order_by(ScheduledTrial.trial_index)
                    .limit(n_answers)
                )
            )
            _answer(session, participant, trials)
        session.commit()
        last = people[-1]
        spare = session.scalars(
            select(ScheduledTrial)
            .where(ScheduledTrial.participant_id == last.id)
            .order_by(ScheduledTrial.trial_index)
            .offset(n_answers)
            .limit(1)
        ).all()
        slug, email = experiment.slug, user.email
    engine.dispose()

    settings = Settings(env="test", database_url=url, stimuli_dir=tmp, log_level="WARNING")
    with TestClient(create_app(settings)) as client:
        login(client, email)
        page = f"/dashboard/experiments/{slug}/analysis"

        def timed() -> float:
            start = time.perf_counter()
            response = client.get(page)
            elapsed = (time.perf_counter() - start) * 1000
            assert response.status_code == 200 and "data-analysis-table" in response.text
            return elapsed

        first = timed()
        again = [timed() for _ in range(reloads)]
        engine = make_engine(url)
        with make_sessionmaker(engine)() as session:
            _answer(session, session.get(Participant, last.id), list(spare))  # type: ignore[arg-type]
            session.commit()
        engine.dispose()
        after_answer = timed()
    print(
        f"{preset}: {n_participants} participants x {n_answers} answers; "
        f"first load {first:.0f} ms; reloads (n={reloads}) median "
        f"{statistics.median(again):.1f} ms, max {max(again):.1f} ms; "
        f"after one new answer {after_answer:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help="an empty database (default: SQLite)")
    parser.add_argument("--preset", default="paper-exp1")
    parser.add_argument("--participants", type=int, default=20)
    parser.add_argument("--answers", type=int, default=50, help="answers per participant")
    parser.add_argument("--reloads", type=int, default=5)
    args = parser.parse_args()
    bench(args.database_url, args.preset, args.participants, args.answers, args.reloads)


if __name__ == "__main__":
    main()
