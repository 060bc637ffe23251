"""README.md, followed literally: its quick start and "Running a real study", command by command.

Each command of the sections' bash blocks runs in bash with the installed `psychvis` first on
PATH (as after `. .venv/bin/activate`), a temporary folder as working directory, `HOME` and
`PSYCHVIS_HOME`. Only placeholders are replaced: the example database URL, `/srv/psychvis`, and
the port of the commands that start a server, which run until the server answers.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import REPO_ROOT
from tests.conftest import create_database, drop_database

README = REPO_ROOT / "README.md"
# The quick start's installation: the environment running these tests is that virtualenv.
SETUP = ("python3 -m venv .venv && . .venv/bin/activate", "pip install -e '.[web]'")
EXAMPLE_DATABASE_URL = "postgresql://user:pass@host/psychvis"
PASSWORD = "a long enough password"
PROLIFIC_SUFFIX = (
    "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
)


def section_commands(title: str) -> list[str]:
    """The commands of a README section's bash blocks (continuation lines joined)."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else len(text)]
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        pending = ""
        for line in block.splitlines():
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            command = (pending + line).strip()
            pending = ""
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Shell:
    """Runs README commands one by one, keeping what `export` lines set."""

    def __init__(self, cwd: Path, home: Path) -> None:
        bin_dir = str(Path(sys.executable).parent)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("PSYCHVIS_") and k not in ("DATABASE_URL", "VIRTUAL_ENV")
        }
        env.update(
            PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
            VIRTUAL_ENV=str(Path(bin_dir).parent),
            HOME=str(home),
            PSYCHVIS_HOME=str(home / "psychvis"),
            # The console script runs this checkout's code, whatever the venv was installed from.
            PYTHONPATH=str(REPO_ROOT),
        )
        self.env, self.cwd = env, cwd

    def run(self, command: str, stdin: str = "") -> str:
        if command.startswith("export "):
            out = self._bash(f"{command} && env -0", stdin)
            self.env = dict(item.split("=", 1) for item in out.split("\0") if "=" in item and item)
            return ""
        return self._bash(command, stdin)

    def _bash(self, command: str, stdin: str) -> str:
        # A new session has no controlling terminal, so password prompts read standard input.
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            start_new_session=True,
        )
        assert done.returncode == 0, (
            f"README command failed: {command}\n{done.stdout}\n{done.stderr}"
        )
        return done.stdout

    def serve_until(self, command: str, url: str, timeout_s: float = 240) -> str:
        """Start a server command, wait until `url` answers 200, stop it; return its output."""
        proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                assert proc.poll() is None, f"{command} exited:\n{proc.stdout.read()}"  # type: ignore[union-attr]
                assert time.monotonic() < deadline, f"{command}: {url} never answered"
                try:
                    with urllib.request.urlopen(url, timeout=5) as response:
                        if response.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(0.5)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                out, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate()
        return out


def on_port(command: str, port: int) -> str:
    """A server command on a free local port instead of the README's 8000 (or default)."""
    command = command.replace("--host 0.0.0.0", "--host 127.0.0.1")
    if "--port 8000" in command:
        return command.replace("--port 8000", f"--port {port}")
    return f"{command} --port {port}"


def test_quick_start(tmp_path: Path) -> None:
    commands = section_commands("Quick start")
    assert commands[:2] == list(SETUP), "the quick start's installation lines changed"
    commands = commands[2:]
    shell = Shell(tmp_path / "cwd", tmp_path / "home")
    shell.cwd.mkdir()
    port = free_port()
    ran = []
    for command in commands:
        if command.endswith("pytest"):
            continue  # the test suite's own command: this test is part of it
        if command == "psychvis demo":
            out = shell.serve_until(on_port(command, port), f"http://127.0.0.1:{port}/s/demo")
            assert f"data folder: {tmp_path / 'home' / 'psychvis'}" in out
            assert f"participant link http://127.0.0.1:{port}/s/demo" in out
        elif command == "psychvis serve":
            shell.serve_until(on_port(command, port), f"http://127.0.0.1:{port}/dashboard/login")
        elif command.startswith("psychvis users create"):
            assert "created admin you@example.org" in shell.run(
                command, stdin=f"{PASSWORD}\n{PASSWORD}\n"
            )
        else:
            shell.run(command)
        ran.append(command.split()[:2])
    assert ran == [["psychvis", "demo"], ["psychvis", "users"], ["psychvis", "serve"]]
    key = tmp_path / "home" / "psychvis" / "secret_key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert not (shell.cwd / "var").exists() and list(shell.cwd.iterdir()) == []


@pytest.fixture(params=["sqlite", "postgresql"])
def study_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'study.sqlite3'}"
        return
    server = request.getfixturevalue("postgres_server_url")
    url = create_database(server)
    yield url
    drop_database(server, url)


def test_running_a_real_study(tmp_path: Path, study_database: str) -> None:
    commands = section_commands("Running a real study")
    shell = Shell(tmp_path / "cwd", tmp_path / "home")
    shell.cwd.mkdir()
    port = free_port()
    link = ""
    for readme_command in commands:
        command = readme_command.replace(EXAMPLE_DATABASE_URL, study_database).replace(
            "/srv/psychvis", str(tmp_path / "srv")
        )
        if command.startswith("psychvis serve"):
            assert link, "serve before sessions launch"
            code = link.removeprefix("https://study.example.org/s/").split("?")[0]
            filled = f"http://127.0.0.1:{port}/s/{code}?PROLIFIC_PID=p1&STUDY_ID=s1&SESSION_ID=x1"
            shell.serve_until(on_port(command, port), filled)
            continue
        out = shell.run(command)
        if command.startswith("psychvis sessions launch"):
            link = out.strip()
            assert link.startswith("https://study.example.org/s/") and link.endswith(
                PROLIFIC_SUFFIX
            )
        if command.startswith("psychvis stimuli sample"):
            assert "NOT a real study's stimuli" in out
    assert link, "the section launches no session"
    assert (tmp_path / "srv" / "secret_key").stat().st_mode & 0o777 == 0o600
