"""Run the load generator against fresh servers for several configurations, repeated.

For each (workers, participants, think time) and each repetition: start `psychvis serve
--workers W` on a free port, wait for /healthz, run `bench.load.loadgen` in its own process
(verifying in Postgres), stop the server. Writes every run's JSON and a summary with medians.

Run (after `bench.load.setup_bench`):
    .venv/bin/python -m bench.load.matrix --database-url postgresql://postgres@127.0.0.1/psychvis_bench \
        --stimuli-dir /tmp/psychvis-bench/stimuli --config 1:200:0 --config 2:200:0 --repeats 3 \
        --duration 20 --out bench/out/load
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import psutil
import typer

from bench.load.loadgen import ANSWER_BLOCK_END, START

cli = typer.Typer(add_completion=False)
PSYCHVIS = str(Path(sys.executable).parent / "psychvis")
"""The console script of this environment."""


def server_env(database_url: str, stimuli_dir: Path) -> dict[str, str]:
    """Environment of a benchmark server (production-like: INFO logs off, no reload)."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "PSYCHVIS_STIMULI_DIR": str(stimuli_dir),
        "PSYCHVIS_ENV": "test",
        "PSYCHVIS_SECRET_KEY": "bench-" + "x" * 40,
        "PSYCHVIS_LOG_LEVEL": "WARNING",
        # Every simulated participant starts from 127.0.0.1: the per-address enrolment limit
        # would turn away all but the first few.
        "PSYCHVIS_ENROL_RATE_LIMIT": "1000000",
    }


def start_server(
    database_url: str,
    stimuli_dir: Path,
    port: int,
    workers: int,
    pool_size: int | None = None,
    participant_concurrency: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `psychvis serve` in its own process group and wait until /healthz answers.

    With `PYTHONPATH` in `extra_env` (another checkout, e.g. a `git worktree` of an older
    commit), the server also runs with that folder as its working directory: uvicorn's worker
    processes start with the working directory first on sys.path, so PYTHONPATH alone still
    served this checkout's `app`, and an A/B run would compare this checkout with itself.
    """
    env = {**server_env(database_url, stimuli_dir), **(extra_env or {})}
    code_dir = (
        env["PYTHONPATH"].split(os.pathsep)[0] if extra_env and "PYTHONPATH" in extra_env else None
    )
    if pool_size is not None:
        env["PSYCHVIS_DB_POOL_SIZE"] = str(pool_size)
    if participant_concurrency is not None:
        env["PSYCHVIS_PARTICIPANT_CONCURRENCY"] = str(participant_concurrency)
    proc = subprocess.Popen(
        [PSYCHVIS, "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        cwd=code_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                time.sleep(1.0)  # let every worker finish starting
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_server(proc)
    raise RuntimeError("server did not start")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group and wait (SIGKILL after 20 s)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def loadavg() -> float:
    """The 1-minute load average (the machine is shared)."""
    return os.getloadavg()[0]


def settle(max_busy_percent: float, timeout_s: float) -> float:
    """Wait until the machine's CPU use over one second is at most `max_busy_percent` (e.g.
    autovacuum after the previous run's inserts, or a server still shutting down); give up after
    `timeout_s`. Returns the last reading."""
    deadline = time.monotonic() + timeout_s
    busy = float(psutil.cpu_percent(interval=1.0))
    while busy > max_busy_percent and time.monotonic() < deadline:
        busy = float(psutil.cpu_percent(interval=1.0))
    return busy


def cpu_seconds(procs: list[psutil.Process]) -> float:
    """User + system CPU seconds used so far by these processes (gone ones count 0)."""
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def postgres_processes() -> list[psutil.Process]:
    """Every PostgreSQL server process on this machine (backends of the benchmark included)."""
    return [
        p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("postgres")
    ]


def server_processes(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    root = psutil.Process(proc.pid)
    return [root, *root.children(recursive=True)]


@cli.command()
def main(
    database_url: Annotated[str, typer.Option()],
    stimuli_dir: Annotated[Path, typer.Option()],
    config: Annotated[
        list[str],
        typer.Option(
            help="workers:participants:think_ms[:pool[:participant_concurrency]][@ENV=V,...] "
            "(repeatable; after @, server environment, e.g. @PSYCHVIS_ANSWER_LANE=false)."
        ),
    ],
    repeats: Annotated[int, typer.Option(min=1)] = 3,
    duration: Annotated[float, typer.Option()] = 20.0,
    warmup: Annotated[float, typer.Option()] = 3.0,
    ramp: Annotated[float, typer.Option()] = 0.0,
    link: Annotated[str, typer.Option()] = "bench-lossless",
    port: Annotated[int, typer.Option()] = 8123,
    out: Annotated[Path, typer.Option()] = Path("bench/out/load"),
    settle_percent: Annotated[
        float,
        typer.Option(help="before each run, wait (up to 60 s) until CPU use is at most this"),
    ] = 15.0,
    one_session: Annotated[
        bool,
        typer.Option(help="each participant runs one session, then stops (a study's arrival)"),
    ] = False,
    api_only: Annotated[
        bool,
        typer.Option(help="the generator sends only API calls (no pages after posts, heartbeats)"),
    ] = False,
) -> None:
    """Run every configuration REPEATS times (interleaved) and summarise the medians."""
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in config}
    for rep in range(repeats):
        for cfg in config:
            shape, _, env_text = cfg.partition("@")
            workers, participants, think, *extra = shape.split(":")
            pool = int(extra[0]) if extra and extra[0] else None
            concurrency = int(extra[1]) if len(extra) > 1 else None
            extra_env = dict(kv.split("=", 1) for kv in env_text.split(",") if kv)
            busy_before = settle(settle_percent, 60.0)
            proc = start_server(
                database_url, stimuli_dir, port, int(workers), pool, concurrency, extra_env
            )
            path = out / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', cfg)}_r{rep}.json"
            load_before = loadavg()
            servers = server_processes(proc)
            pg_before = {p.pid: cpu_seconds([p]) for p in postgres_processes()}
            server_before = cpu_seconds(servers)
            children_before = os.times()
            try:
                result = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.load.loadgen",
                        "--url",
                        f"http://127.0.0.1:{port}",
                        "--link",
                        link,
                        "--participants",
                        participants,
                        "--think-ms",
                        think,
                        "--duration",
                        str(duration),
                        "--warmup",
                        str(warmup),
                        "--ramp",
                        str(ramp),
                        "--verify-dsn",
                        database_url,
                        "--out",
                        str(path),
                        *(["--one-session"] if one_session else []),
                        *(["--api-only"] if api_only else []),
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
            finally:
                children_after = os.times()
                server_cpu = cpu_seconds(servers) - server_before
                pg_cpu = sum(
                    cpu_seconds([p]) - pg_before.get(p.pid, 0.0) for p in postgres_processes()
                )
                stop_server(proc)
            typer.echo(f"== {cfg} rep {rep} (load {load_before:.1f})\n{result.stdout}")
            data = json.loads(path.read_text())
            data["loadavg_1m_before"] = load_before
            data["cpu_percent_before"] = busy_before
            # CPU seconds over the whole loadgen run (warm-up included), per answer acked.
            generator_cpu = (children_after.children_user + children_after.children_system) - (
                children_before.children_user + children_before.children_system
            )
            acked = max(1, data["acked_answers"])
            data["cpu_ms_per_answer"] = {
                "server": round(1e3 * server_cpu / acked, 3),
                "postgres": round(1e3 * pg_cpu / acked, 3),
                "generator": round(1e3 * generator_cpu / acked, 3),
            }
            path.write_text(json.dumps(data, indent=1))
            runs[cfg].append(data)
    summary = {}
    for cfg, results in runs.items():
        answer = [r["endpoints"]["answer"] for r in results]
        summary[cfg] = {
            "answers_per_s": statistics.median(a["per_s"] for a in answer),
            "answers_per_s_runs": [a["per_s"] for a in answer],
            "p50_ms": statistics.median(a["p50_ms"] for a in answer),
            "p95_ms": statistics.median(a["p95_ms"] for a in answer),
            "p99_ms": statistics.median(a["p99_ms"] for a in answer),
            "p99_ms_runs": [a["p99_ms"] for a in answer],
            "block_end_p99_ms_runs": [
                r["endpoints"].get(ANSWER_BLOCK_END, {}).get("p99_ms") for r in results
            ],
            "all_requests_p99_ms_runs": [r.get("all_requests_p99_ms") for r in results],
            "start_p50_ms_runs": [r["endpoints"].get(START, {}).get("p50_ms") for r in results],
            "start_p99_ms_runs": [r["endpoints"].get(START, {}).get("p99_ms") for r in results],
            "app_p50_ms": statistics.median(a["app_p50_ms"] for a in answer),
            "app_p99_ms": statistics.median(a["app_p99_ms"] for a in answer),
            "errors": sum(r["errors"] for r in results),
            "lost": sum(r["verify"]["lost"] for r in results),
            "duplicated": sum(r["verify"]["duplicated"] for r in results),
            "acked": sum(r["verify"]["acked"] for r in results),
            "loadavg_1m_before": [r["loadavg_1m_before"] for r in results],
            "cpu_percent_before": [r.get("cpu_percent_before") for r in results],
            "cpu_ms_per_answer": {
                k: statistics.median(r["cpu_ms_per_answer"][k] for r in results)
                for k in ("server", "postgres", "generator")
            },
        }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    typer.echo(json.dumps(summary, indent=1))


if __name__ == "__main__":
    cli()
