"""CPU per request of the whole participant flow, through the real ASGI app, one at a time.

Drives the app in-process (no sockets, no HTTP parser, no client) with the generator's own
sequence — landing, enrol, consent, instructions, the task page, every answer, completion, and
the other pages and heartbeat a browser adds (`--api-only`: without them) — one request at a time, and
reports for each endpoint the app process's CPU (event loop and thread
pool together, `time.process_time`) and the CPU of this database's Postgres backends (their
run time from /proc/PID/schedstat). The sum per participant, divided by its answers, is
the server-side CPU per answer of a whole session: what caps throughput on a machine whose
cores the app and Postgres share.

Run (after `bench.load.setup_bench`):
`.venv/bin/python -m bench.load.profile_flow --database-url postgresql://postgres@127.0.0.1/psychvis_bench
--stimuli-dir /tmp/psychvis-bench/stimuli --participants 40` (add `--profile ENDPOINT` for a
cProfile of one endpoint's requests).
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import os
import pstats
import random
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import psutil
import typer
from pydantic import SecretStr
from sqlalchemy import event

from app.config import Settings
from app.main import create_app
from bench.load.loadgen import answer_body, task_step
from bench.load.matrix import cpu_seconds

cli = typer.Typer(add_completion=False)


class FlowError(RuntimeError):
    pass


def postgres_backends(dbname: str) -> list[psutil.Process]:
    """This database's Postgres backend processes (the app's pooled connections)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if cmdline.startswith("postgres:") and f" {dbname} " in cmdline:
            found.append(proc)
    return found


def cpu_of(procs: list[psutil.Process]) -> float:
    """CPU seconds of single-threaded `procs` (Postgres backends): the nanosecond run time of
    /proc/PID/schedstat on Linux (user + system of /proc/PID/stat count 10 ms ticks, too coarse
    for one request), psutil elsewhere. schedstat counts the main thread only: not for the
    multi-threaded app (bench.load.matrix.cpu_seconds uses psutil)."""
    total = 0.0
    for proc in procs:
        try:
            with open(f"/proc/{proc.pid}/schedstat") as f:
                total += int(f.read().split()[0]) / 1e9
            continue
        except OSError:
            total += cpu_seconds([proc])
    return total


class Driver:
    """Calls the ASGI app directly and books CPU per endpoint."""

    def __init__(self, app: Any, dbname: str, profile: str | None) -> None:
        self.app = app
        self.dbname = dbname
        self.app_cpu: dict[str, list[float]] = defaultdict(list)
        self.pg_cpu: dict[str, float] = defaultdict(float)
        self.profile = profile
        self.profiler = cProfile.Profile()
        self._backends: list[psutil.Process] = []
        self._last: tuple[str, float, float] = ("", 0.0, 0.0)
        self.statements: list[tuple[float, str]] | None = None
        self.sql_endpoint: str | None = None
        self.last_statements: list[tuple[float, str]] = []

    def rebook(self, name: str) -> None:
        """Book the last request under `name` instead (e.g. answers that ended a block)."""
        old, app_ms, pg_s = self._last
        self.app_cpu[old].pop()
        self.pg_cpu[old] -= pg_s
        self.app_cpu[name].append(app_ms)
        self.pg_cpu[name] += pg_s
        if self.statements is not None and name == self.sql_endpoint:
            self.last_statements = list(self.statements)

    async def request(
        self,
        name: str,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        form: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, dict[str, str], bytes]:
        headers = [(b"host", b"bench"), (b"user-agent", b"profile_flow")]
        body = b""
        if form is not None:
            body = urlencode(form).encode()
            headers.append((b"content-type", b"application/x-www-form-urlencoded"))
        elif json_body is not None:
            body = json.dumps(json_body).encode()
            headers.append((b"content-type", b"application/json"))
        headers.append((b"content-length", str(len(body)).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": urlencode(query or {}).encode(),
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent = False
        status = 0
        out_headers: dict[str, str] = {}
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                out_headers.update(
                    {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
                )
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        if not self._backends:
            self._backends = postgres_backends(self.dbname)
        if self.statements is not None:
            self.statements.clear()
        pg_before = cpu_of(self._backends)
        profiling = self.profile == name
        if profiling:
            self.profiler.enable()
        cpu = time.process_time()
        await self.app(scope, receive, send)
        cpu = time.process_time() - cpu
        if profiling:
            self.profiler.disable()
        backends = postgres_backends(self.dbname)
        if {p.pid for p in backends} != {p.pid for p in self._backends}:
            # A new pooled connection: its start-up is booked on this request.
            self._backends = backends
        self._last = (name, cpu * 1000, cpu_of(self._backends) - pg_before)
        self.pg_cpu[name] += self._last[2]
        self.app_cpu[name].append(self._last[1])
        if self.statements is not None and name == self.sql_endpoint:
            self.last_statements = list(self.statements)
        if status not in ok:
            raise FlowError(f"{name}: HTTP {status}: {b''.join(chunks)[:300]!r}")
        return status, out_headers, b"".join(chunks)


async def one_participant(
    driver: Driver, link: str, pid: str, rng: random.Random, browser: bool = True
) -> int:
    """The generator's sequence for one participant; returns the number of answers.

    With `browser`, as `bench.load.loadgen` by default: the participant page after each form
    post and after completion, and one heartbeat to /events (zero think time: a session lasts
    about one heartbeat interval).
    """

    async def page(always: bool = False) -> bytes | None:
        if not (browser or always):
            return None
        return (await driver.request("page", "GET", f"/p/{token}"))[2]

    await driver.request("landing", "GET", f"/s/{link}", query={"PROLIFIC_PID": pid})
    _, headers, _ = await driver.request(
        "enrol",
        "POST",
        f"/s/{link}/start",
        form={"PROLIFIC_PID": pid, "STUDY_ID": "bench", "SESSION_ID": pid},
        ok=(303,),
    )
    token = headers["location"].removeprefix("/p/")
    await page()
    await driver.request(
        "consent", "POST", f"/p/{token}/consent", form={"decision": "agree"}, ok=(303,)
    )
    await page()
    await driver.request("instructions", "POST", f"/p/{token}/instructions", ok=(303,))
    task = await page(always=True)  # answers are refused before the task page was served
    step = task_step(task.decode()) if task is not None else None
    if step is None:
        step = json.loads((await driver.request("next", "GET", f"/api/p/{token}/next"))[2])
    answers = 0
    while step["step"] == "trial":
        if browser and answers == 20:
            beat = {"kind": "heartbeat", "client_ms": 15000.0, "data": {"visible": True}}
            await driver.request(
                "events", "POST", f"/api/p/{token}/events", json_body={"events": [beat]}
            )
        body = answer_body(step["trial"]["trial_index"], rng)
        ack = json.loads(
            (await driver.request("answer", "POST", f"/api/p/{token}/responses", json_body=body))[2]
        )
        if ack["block_end"] is not None:
            driver.rebook("answer, block end")
        answers += 1
        step = ack["next"]
    await driver.request("complete", "POST", f"/api/p/{token}/complete")
    await page()
    return answers


def _time_statements(engine: Any, statements: list[tuple[float, str]]) -> None:
    """Append (wall ms, first line) of every statement `engine` runs to `statements`."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["profile_flow_t0"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        ms = (time.perf_counter() - conn.info.pop("profile_flow_t0")) * 1000
        statements.append((ms, " ".join(statement.split())[:150]))


async def run(
    database_url: str,
    stimuli_dir: Path,
    link: str,
    participants: int,
    profile: str | None,
    sql: str | None,
    browser: bool = True,
) -> None:
    settings = Settings(
        database_url=database_url,
        stimuli_dir=stimuli_dir,
        env="test",
        secret_key=SecretStr("bench-" + "x" * 40),
        log_level="WARNING",
    )
    app = create_app(settings)
    dbname = database_url.rsplit("/", 1)[-1].split("?")[0]
    driver = Driver(app, dbname, profile)
    statements: list[tuple[float, str]] = []
    if sql:
        for engine in (app.state.engine, app.state.answer_engine):
            if engine is not None:
                _time_statements(engine, statements)
    rng = random.Random(7)
    run_id = f"flow-{os.getpid()}-{time.time_ns()}"
    async with app.router.lifespan_context(app):
        # Warm-up: caches (designs, stimulus sets, templates), pools, prepared statements.
        for i in range(3):
            await one_participant(driver, link, f"{run_id}-warm{i}", rng, browser)
        driver.app_cpu.clear()
        driver.pg_cpu.clear()
        driver.profiler = cProfile.Profile()
        driver.statements = statements if sql else None
        driver.sql_endpoint = sql
        answers = 0
        wall = time.perf_counter()
        for i in range(participants):
            answers += await one_participant(driver, link, f"{run_id}-{i}", rng, browser)
        wall = time.perf_counter() - wall
    typer.echo(f"{participants} participants, {answers} answers in {wall:.1f} s (one at a time)")
    typer.echo(
        f"{'endpoint':<18} {'requests':>8} {'app ms med':>10} {'app ms/req':>10} "
        f"{'pg ms/req':>9} {'ms/answer':>9}"
    )
    total_app = total_pg = 0.0
    for name, values in driver.app_cpu.items():
        app_sum = sum(values)
        pg_sum = driver.pg_cpu[name] * 1000
        total_app += app_sum
        total_pg += pg_sum
        typer.echo(
            f"{name:<18} {len(values):>8} {statistics.median(values):>10.2f} "
            f"{app_sum / len(values):>10.2f} {pg_sum / len(values):>9.2f} "
            f"{(app_sum + pg_sum) / answers:>9.3f}"
        )
    typer.echo(
        f"per answer, whole session: app {total_app / answers:.3f} ms + Postgres "
        f"{total_pg / answers:.3f} ms = {(total_app + total_pg) / answers:.3f} ms of CPU"
    )
    if sql:
        typer.echo(f"SQL of the last '{sql}' request (wall ms, first line):")
        for ms, text in driver.last_statements:
            typer.echo(f"  {ms:7.2f}  {text}")
    if profile:
        stream = io.StringIO()
        pstats.Stats(driver.profiler, stream=stream).sort_stats("cumulative").print_stats(40)
        typer.echo(stream.getvalue())


@cli.command()
def main(
    database_url: Annotated[str, typer.Option()],
    stimuli_dir: Annotated[Path, typer.Option()],
    link: Annotated[str, typer.Option()] = "bench-lossless",
    participants: Annotated[int, typer.Option(min=1)] = 40,
    profile: Annotated[str | None, typer.Option(help="cProfile this endpoint's requests")] = None,
    sql: Annotated[
        str | None, typer.Option(help="list the SQL of this endpoint's last request, timed")
    ] = None,
    api_only: Annotated[
        bool, typer.Option(help="only the API calls: no pages after form posts, no heartbeat")
    ] = False,
) -> None:
    """Whole participant flows through the ASGI app, one request at a time; CPU per endpoint."""
    asyncio.run(
        run(
            database_url,
            stimuli_dir,
            link,
            participants,
            profile,
            sql,
            browser=not api_only,
        )
    )


if __name__ == "__main__":
    cli()
