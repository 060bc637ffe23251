"""Where the time of one answer goes: SQL statements per answer, time per stage, cProfile top.

Runs the answer path in-process and single-threaded (no HTTP, no contention) exactly as
`POST /api/p/{token}/responses` runs it: resolve the token, record the answer, block end, next
step, commit, then validate the acknowledgement against `ResponseAck` and serialise it to JSON
as FastAPI does.

Run: `.venv/bin/python -m bench.load.profile_answer --database-url postgresql://postgres@127.0.0.1/psychvis_bench
--participants 20` (after `bench.load.setup_bench`). Prints the statements of one answer, the
median ms per stage and the top functions by cumulative time.
"""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import random
import statistics
import time
from collections import defaultdict
from types import SimpleNamespace
from typing import Annotated, Any

import typer
from sqlalchemy import event, select

from app.db import make_engine, make_sessionmaker
from app.models import Participant
from app.routes.deps import participant_by_token
from app.schemas import ResponseSubmit
from app.services import participants as participant_service
from app.services.answers import submit_answer
from app.services.experiments import get_session_by_link
from bench.load.loadgen import answer_body

cli = typer.Typer(add_completion=False)


def answer_once(
    factory: Any, token: str, body: dict[str, Any], timings: dict[str, list[float]]
) -> bool:
    """One answer through the answer path (`app.services.answers.submit_answer`); False once the session is done.

    Records wall and CPU milliseconds per answer, separately for answers the one-statement path
    acknowledged (`fast_*`) and those the general path finished (`general_*`).
    """
    wall, cpu = time.perf_counter(), time.process_time()
    with factory() as session:
        submit = ResponseSubmit.model_validate_json(json.dumps(body)).to_answer()
        answered = submit_answer(
            session,
            participant_by_token,
            token,
            submit,
            via_beacon=False,
            ahead=SETTINGS.preload_ahead,
            autocommit_engine=ANSWER_ENGINE.get("engine"),
        )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    path = "fast" if answered.one_statement else "general"
    data = answered.ack
    timings[f"{path}_wall"].append(wall * 1000)
    timings[f"{path}_cpu"].append(cpu * 1000)
    return bool(data["next"]["step"] == "trial")


SETTINGS = SimpleNamespace(preload_ahead=3)
ANSWER_ENGINE: dict[str, Any] = {}
"""The app's autocommit engine of the one-statement path (set in main)."""


@cli.command()
def main(
    database_url: Annotated[str, typer.Option()],
    link: Annotated[str, typer.Option()] = "bench-lossless",
    participants: Annotated[int, typer.Option(min=1)] = 20,
) -> None:
    """Profile the answer path for PARTICIPANTS fresh participants of LINK."""
    engine = make_engine(database_url, pool_size=2)
    ANSWER_ENGINE["engine"] = make_engine(
        database_url, pool_size=2, pre_ping=False, generic_plans=True
    )
    factory = make_sessionmaker(engine)
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.split("\n")[0][:110])

    tokens = []
    with factory() as session:
        launched = get_session_by_link(session, link)
        for i in range(participants):
            participant, _ = participant_service.enrol(
                session, launched, {"PROLIFIC_PID": f"prof-{time.time_ns()}-{i}"}
            )
            participant_service.record_consent(participant, True)
            participant_service.finish_instructions(session, participant)
            participant_service.task_page_served(participant)
            tokens.append(participant.token)
        session.commit()
    rng = random.Random(1)
    timings: dict[str, list[float]] = defaultdict(list)
    # Warm up caches (designs, stimulus-set lookups) with the first participant.
    answer_once(factory, tokens[0], answer_body(0, rng), defaultdict(list))
    statements.clear()
    answer_once(factory, tokens[0], answer_body(1, rng), defaultdict(list))
    one_answer = list(statements)
    profiler = cProfile.Profile()
    total = 0
    start = time.perf_counter()
    profiler.enable()
    for token in tokens[1:]:
        index = 0
        while answer_once(factory, token, answer_body(index, rng), timings):
            index += 1
            total += 1
        total += 1
    profiler.disable()
    elapsed = time.perf_counter() - start
    typer.echo(
        f"SQL statements for one answer (BEGIN, COMMIT and the pool pre-ping not shown): {len(one_answer)}"
    )
    for s in one_answer:
        typer.echo(f"  {s}")
    typer.echo(f"{total} answers in {elapsed:.2f} s: {total / elapsed:.0f} answers/s on one thread")
    for name, values in timings.items():
        typer.echo(f"  {name:<13} median {statistics.median(values):6.2f} ms  (n = {len(values)})")
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(25)
    typer.echo(stream.getvalue())
    with factory() as session:
        n = session.scalar(select(Participant.id).where(Participant.token == tokens[-1]))
        typer.echo(f"last participant id {n}")
    engine.dispose()


if __name__ == "__main__":
    cli()
