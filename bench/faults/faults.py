"""Fault scenarios under load, scripted and repeatable (see docs/reliability.md).

Each scenario: start `psychvis serve --workers 2` whose database connections go through a TCP
proxy (asyncio, in this process) to a private PostgreSQL cluster, run `bench.load.loadgen`
against it, inject the fault after `--fault-at` seconds, and let the load finish. The generator
retries every failed request unchanged (same response_uuid), then verifies in Postgres that every
acknowledged answer is stored exactly once. Nothing is done by hand to recover.

Scenarios: `kill-worker` (SIGKILL one uvicorn worker), `restart-app` (stop the whole server,
start it again), `restart-postgres` (`pg_ctl restart -m fast` of the private cluster),
`postgres-unreachable` (the proxy black-holes all traffic, both directions, for 10 s: packets
held, new connections hang, as with a dropped network link).

Run (the cluster is created on first use under --work-dir, owned by the `postgres` user, on a
port of its own, so the shared server on 5432 is never touched):
    .venv/bin/python -m bench.faults.faults --source-dsn postgresql://postgres@127.0.0.1/psychvis_bench \
        --stimuli-dir /tmp/psychvis-bench/stimuli --scenario all --out bench/out/faults
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import psutil
import typer

from bench.load.matrix import start_server, stop_server

cli = typer.Typer(add_completion=False)

SCENARIOS = ("kill-worker", "restart-app", "restart-postgres", "postgres-unreachable")
PG_PORT = 55439
PROXY_PORT = 55440
APP_PORT = 8131
DB_NAME = "psychvis_faults"


# --- a private PostgreSQL cluster ----------------------------------------------------------------


def pg_bin() -> Path:
    """The newest installed PostgreSQL server binaries (Debian layout)."""
    versions = sorted(Path("/usr/lib/postgresql").iterdir(), key=lambda p: int(p.name))
    return versions[-1] / "bin"


def as_postgres(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a server binary as the `postgres` user (the server refuses to run as root)."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *args], check=True, capture_output=True, text=True)


class Cluster:
    """A throwaway cluster under `root` on `port` (trust auth on 127.0.0.1 only)."""

    def __init__(self, root: Path, port: int = PG_PORT) -> None:
        self.root = root
        self.data = root / "data"
        self.port = port

    def ensure_started(self) -> None:
        """initdb on first use, then start (no-op when running)."""
        if not (self.data / "PG_VERSION").exists():
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.chown(self.root, "postgres")
            as_postgres(
                str(pg_bin() / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"
            )
        if self.status():
            return
        self.pg_ctl("start")

    def pg_ctl(self, action: str) -> None:
        """`pg_ctl <action> -w -m fast` with this cluster's port and socket directory."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        )
        as_postgres(
            str(pg_bin() / "pg_ctl"),
            action,
            "-D",
            str(self.data),
            "-w",
            "-m",
            "fast",
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
        )

    def status(self) -> bool:
        """True while the postmaster runs."""
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        found = subprocess.run(
            [*prefix, str(pg_bin() / "pg_ctl"), "status", "-D", str(self.data)],
            capture_output=True,
            check=False,
        )
        return found.returncode == 0

    def dsn(self, database: str = DB_NAME, port: int | None = None) -> str:
        return f"postgresql://postgres@127.0.0.1:{port or self.port}/{database}"


def copy_database(source_dsn: str, cluster: Cluster) -> None:
    """Recreate DB_NAME in the cluster as a copy of the benchmark database (pg_dump | psql)."""
    admin = cluster.dsn("postgres")
    subprocess.run(
        ["psql", admin, "-qc", f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'], check=True
    )
    subprocess.run(["psql", admin, "-qc", f'CREATE DATABASE "{DB_NAME}"'], check=True)
    dump = subprocess.run(
        ["pg_dump", "--no-owner", source_dsn], check=True, capture_output=True
    ).stdout
    subprocess.run(
        ["psql", "-q", "-v", "ON_ERROR_STOP=1", cluster.dsn()],
        input=dump,
        check=True,
        capture_output=True,
    )


# --- a TCP proxy that can black-hole --------------------------------------------------------------


class BlackholeProxy:
    """Forward 127.0.0.1:listen_port to target_port; `blackhole(s)` holds every byte for s seconds.

    While black-holed, data in both directions and new connections wait (nothing is refused or
    reset: like packets dropped on a broken link); afterwards everything flows again.
    """

    def __init__(self, listen_port: int, target_port: int) -> None:
        self.listen_port = listen_port
        self.target_port = target_port
        self.loop = asyncio.new_event_loop()
        self._open = asyncio.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._open.set()
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.listen_port)
        self._ready.set()
        async with server:
            await server.serve_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._open.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    await self._open.wait()
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def blackhole(self, seconds: float) -> None:
        """Hold all traffic for `seconds` (blocks the caller for that long)."""
        self.loop.call_soon_threadsafe(self._open.clear)
        time.sleep(seconds)
        self.loop.call_soon_threadsafe(self._open.set)


# --- scenarios ------------------------------------------------------------------------------------


def uvicorn_workers(proc: subprocess.Popen[bytes]) -> list[int]:
    """PIDs of the server's worker processes (spawned children, not the resource tracker)."""
    return [
        child.pid
        for child in psutil.Process(proc.pid).children(recursive=True)
        if "spawn_main" in " ".join(child.cmdline())
    ]


def inject(
    scenario: str,
    proc: subprocess.Popen[bytes],
    cluster: Cluster,
    proxy: BlackholeProxy,
    app_dsn: str,
    stimuli_dir: Path,
    blackhole_s: float,
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Inject one fault; returns the (possibly new) server process and what was done."""
    done: dict[str, Any] = {"scenario": scenario, "at": time.time()}
    if scenario == "kill-worker":
        before = uvicorn_workers(proc)
        victim = before[0]
        done["workers_before"] = before
        done["killed_pid"] = victim
        os.kill(victim, signal.SIGKILL)
        time.sleep(5)
        done["workers_after_5s"] = uvicorn_workers(proc)
    elif scenario == "restart-app":
        t0 = time.monotonic()
        stop_server(proc)
        proc = start_server(app_dsn, stimuli_dir, APP_PORT, 2)
        done["downtime_s"] = round(time.monotonic() - t0, 2)
    elif scenario == "restart-postgres":
        t0 = time.monotonic()
        cluster.pg_ctl("restart")
        done["restart_s"] = round(time.monotonic() - t0, 2)
    elif scenario == "postgres-unreachable":
        proxy.blackhole(blackhole_s)
        done["blackhole_s"] = blackhole_s
    else:
        raise typer.BadParameter(f"unknown scenario {scenario!r}")
    return proc, done


def run_scenario(
    scenario: str,
    cluster: Cluster,
    proxy: BlackholeProxy,
    stimuli_dir: Path,
    out: Path,
    participants: int,
    think_ms: float,
    duration: float,
    fault_at: float,
    blackhole_s: float,
) -> dict[str, Any]:
    """Load + one fault + verification; returns the loadgen summary with the fault record."""
    app_dsn = cluster.dsn(port=PROXY_PORT)
    proc = start_server(app_dsn, stimuli_dir, APP_PORT, 2)
    path = out / f"{scenario}.json"
    load = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.load.loadgen",
            "--url",
            f"http://127.0.0.1:{APP_PORT}",
            "--participants",
            str(participants),
            "--think-ms",
            str(think_ms),
            "--duration",
            str(duration),
            "--warmup",
            "0",
            "--ramp",
            "2",
            "--verify-dsn",
            cluster.dsn(),
            "--out",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(fault_at)
        proc, done = inject(scenario, proc, cluster, proxy, app_dsn, stimuli_dir, blackhole_s)
        stdout, _ = load.communicate(timeout=duration + 240)
    finally:
        if load.poll() is None:
            load.kill()
        stop_server(proc)
    typer.echo(f"== {scenario}: {json.dumps(done)}\n{stdout}")
    result = json.loads(path.read_text())
    result["fault"] = done
    result["loadgen_exit"] = load.returncode
    path.write_text(json.dumps(result, indent=1))
    return result


@cli.command()
def main(
    source_dsn: Annotated[str, typer.Option(help="Benchmark database to copy (setup_bench).")],
    stimuli_dir: Annotated[Path, typer.Option()],
    scenario: Annotated[str, typer.Option(help="One of SCENARIOS or 'all'.")] = "all",
    work_dir: Annotated[Path, typer.Option()] = Path("/tmp/psychvis-faults"),
    out: Annotated[Path, typer.Option()] = Path("bench/out/faults"),
    participants: Annotated[int, typer.Option()] = 50,
    think_ms: Annotated[float, typer.Option()] = 100.0,
    duration: Annotated[float, typer.Option()] = 40.0,
    fault_at: Annotated[float, typer.Option()] = 12.0,
    blackhole_s: Annotated[float, typer.Option()] = 10.0,
    stop_cluster: Annotated[bool, typer.Option(help="Stop the private cluster at the end.")] = True,
) -> None:
    """Run fault scenarios under load and check 0 lost / 0 duplicated acknowledged answers."""
    chosen = list(SCENARIOS) if scenario == "all" else [scenario]
    out.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(work_dir)
    cluster.ensure_started()
    proxy = BlackholeProxy(PROXY_PORT, cluster.port)
    proxy.start()
    summary: dict[str, Any] = {}
    try:
        for name in chosen:
            copy_database(source_dsn, cluster)
            result = run_scenario(
                name,
                cluster,
                proxy,
                stimuli_dir,
                out,
                participants,
                think_ms,
                duration,
                fault_at,
                blackhole_s,
            )
            summary[name] = {
                "fault": result["fault"],
                "acked": result["verify"]["acked"],
                "lost": result["verify"]["lost"],
                "duplicated": result["verify"]["duplicated"],
                "unacked_rows": result["verify"]["unacked_rows"],
                "errors": result["errors"],
                "retries": result["retries"],
                "longest_answer_gap_s": result["longest_answer_gap_s"],
                "ok": result["verify"]["ok"] and result["errors"] == 0,
            }
    finally:
        if stop_cluster and cluster.status():
            cluster.pg_ctl("stop")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    typer.echo(json.dumps(summary, indent=1))
    if not all(s["ok"] for s in summary.values()):
        sys.exit(1)


if __name__ == "__main__":
    cli()
