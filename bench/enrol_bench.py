"""Server time of enrolment (schedule generated once and stored) per design preset.

Runs the real app in-process against PostgreSQL (a fresh database on the server given by
--dsn), imports a structural stimulus set carrying every unit the preset needs (20 natural
batches, 9+9 references, synthetic images), launches a session and enrols N participants through
`POST /s/<link>/start`, reading the app's own `Server-Timing: app;dur=` header.

    .venv/bin/python bench/enrol_bench.py --dsn postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import designs  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import make_engine, make_sessionmaker, normalize_url  # noqa: E402
from app.main import create_app  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.services.blobs import BlobStore  # noqa: E402
from app.services.experiments import create_experiment, launch_session  # noqa: E402
from app.services.stimuli import import_stimulus_set  # noqa: E402
from tests.factories import write_structural_set  # noqa: E402

DUR = re.compile(r"app;dur=([0-9.]+)")


def bench(dsn: str, presets: list[str], n: int) -> None:
    server = normalize_url(dsn)
    name = "psychvis_bench_enrol"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    tmp = Path(tempfile.mkdtemp(prefix="psychvis-enrol-"))
    try:
        engine = make_engine(url)
        upgrade(engine)
        links = {}
        with make_sessionmaker(engine)() as session:
            for preset in presets:
                root = write_structural_set(tmp / preset, designs.load_design(preset))
                stimulus_set = import_stimulus_set(session, root, BlobStore(tmp / "blobs"))
                experiment = create_experiment(
                    session, slug=f"bench-{preset}", stimulus_set=stimulus_set, design_source=preset
                )
                links[preset] = launch_session(session, experiment, platform="prolific").link_code
                session.commit()
        engine.dispose()
        settings = Settings(env="test", database_url=url, stimuli_dir=tmp, log_level="WARNING")
        with TestClient(create_app(settings)) as client:
            print(f"{'preset':<12} {'trials':>6} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
            for preset, link in links.items():
                times = []
                for i in range(n + 3):
                    r = client.post(
                        f"/s/{link}/start",
                        data={"PROLIFIC_PID": f"{preset}-{i}"},
                        follow_redirects=False,
                    )
                    assert r.status_code == 303, r.text
                    if i >= 3:  # the first enrolments warm the design and stimulus caches
                        times.append(float(DUR.search(r.headers["server-timing"]).group(1)))
                design = designs.load_design(preset)
                arm = design.arms[0] if design.arms else None
                n_trials = len(designs.generate_schedule(design, None, 1, arm=arm).trials)
                times.sort()
                p95 = times[int(0.95 * (len(times) - 1))]
                print(
                    f"{preset:<12} {n_trials:>6} {statistics.median(times):>10.1f} {p95:>8.1f} {times[-1]:>8.1f}"
                )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--n", type=int, default=50, help="enrolments per preset")
    parser.add_argument("--presets", default="paper-exp1,paper-exp2,imi,demo")
    args = parser.parse_args()
    bench(args.dsn, args.presets.split(","), args.n)


if __name__ == "__main__":
    main()
