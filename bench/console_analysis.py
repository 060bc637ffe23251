"""Time of the console's Analysis page: the first load, reloads with no new answer, and the
reload right after a new answer.

Runs the real app in-process on a fresh SQLite file (or the database given by --database-url,
which must be empty): imports a structural stimulus set for the preset, enrols N participants
and stores answers to each one's first M scheduled trials, logs in through the form, then
times `GET /dashboard/experiments/<slug>/analysis` (default grouping) once cold and R times
again, then K rounds of: store one new answer (committed, as a participant would), reload.

A page that shows an older analysis while the new one is computed in the background (it
carries a `<meta http-equiv="refresh">`) is followed at once, without the refresh's wait, until
it shows the current one: "updated view" is the time from the reload to that page.
`--inline` computes inside the request (`PSYCHVIS_ANALYSIS_IN_BACKGROUND=false`).

    .venv/bin/python bench/console_analysis.py --participants 20 --answers 50
"""

from __future__ import annotations

import argparse
import html
import re
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


REFRESH = re.compile(r'<meta http-equiv="refresh" content="\d+; url=([^"]+)">')


def bench(
    url: str | None,
    preset: str,
    n_participants: int,
    n_answers: int,
    reloads: int,
    rounds: int,
    inline: bool,
) -> None:
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
            .limit(rounds)
        ).all()
        assert len(spare) == rounds, "fewer unanswered trials than --rounds"
        slug, email = experiment.slug, user.email
    engine.dispose()

    settings = Settings(env="test", database_url=url, stimuli_dir=tmp, log_level="WARNING")
    if inline:
        settings = settings.model_copy(update={"analysis_in_background": False})
    with TestClient(create_app(settings)) as client:
        login(client, email)
        page = f"/dashboard/experiments/{slug}/analysis"

        def timed() -> tuple[float, float]:
            """(ms until the reload's response, ms until a page shows the current analysis)."""
            start = time.perf_counter()
            response = client.get(page)
            answered = (time.perf_counter() - start) * 1000
            while (refresh := REFRESH.search(response.text)) is not None:
                time.sleep(0.05)
                response = client.get(html.unescape(refresh.group(1)))
            assert response.status_code == 200 and "data-analysis-table" in response.text
            return answered, (time.perf_counter() - start) * 1000

        first = timed()
        again = [timed()[0] for _ in range(reloads)]
        after_answer = []
        engine = make_engine(url)
        for trial in spare:
            with make_sessionmaker(engine)() as session:
                _answer(session, session.get(Participant, last.id), [trial])  # type: ignore[arg-type]
                session.commit()
            after_answer.append(timed())
        engine.dispose()
    reload_ms = [a for a, _ in after_answer]
    updated_ms = [u for _, u in after_answer]
    print(
        f"{preset}: {n_participants} participants x {n_answers} answers, "
        f"{'in the request' if inline else 'in the background'}; "
        f"first load {first[0]:.0f} ms (analysis shown after {first[1]:.0f} ms); "
        f"reloads (n={reloads}) median {statistics.median(again):.1f} ms, "
        f"max {max(again):.1f} ms; reload right after a new answer (n={rounds}) median "
        f"{statistics.median(reload_ms):.1f} ms, max {max(reload_ms):.1f} ms; "
        f"updated view after median {statistics.median(updated_ms):.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help="an empty database (default: SQLite)")
    parser.add_argument("--preset", default="paper-exp1")
    parser.add_argument("--participants", type=int, default=20)
    parser.add_argument("--answers", type=int, default=50, help="answers per participant")
    parser.add_argument("--reloads", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5, help="new answers, each then a reload")
    parser.add_argument(
        "--inline", action="store_true", help="compute in the request, not in the background"
    )
    args = parser.parse_args()
    bench(
        args.database_url,
        args.preset,
        args.participants,
        args.answers,
        args.reloads,
        args.rounds,
        args.inline,
    )


if __name__ == "__main__":
    main()
