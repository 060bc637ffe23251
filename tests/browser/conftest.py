"""Shared pieces of the browser tests: Debian's Chromium through playwright, and the real app
served by uvicorn in a thread on a free port (each test module brings its own database)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from bench.chromium import CHROMIUM, CHROMIUM_ARGS


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def browser_settings(root: Path, port: int, name: str) -> Settings:
    """Settings of a test server: its own SQLite file and blob store under `root`."""
    return Settings(
        env="test",
        database_url=f"sqlite:///{root / f'{name}.sqlite3'}",
        secret_key="test-" + "x" * 40,
        stimuli_dir=root / "stimuli",
        base_url=f"http://127.0.0.1:{port}",
        log_level="WARNING",
    )


@contextmanager
def serve_app(settings: Settings, port: int) -> Iterator[str]:
    """Run `create_app(settings)` with uvicorn in a daemon thread; yield its base URL."""
    uvicorn = pytest.importorskip("uvicorn")
    from app.main import create_app

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )

    def run() -> None:
        # The browser stands for a participant's own computer, which shares no CPU with the
        # server: on a 2-core test machine the server thread yields the CPU to Chromium (nice
        # 10 for this thread only) so that serving images does not make the page's timers late.
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        server.run()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the app did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class HarnessBrowser:
    """A Playwright browser whose contexts bypass the pages' CSP unless asked not to.

    Playwright's `wait_for_function("<expression>")` evaluates its string inside the page,
    which the app's CSP (no 'unsafe-eval', app/security.py) refuses; the tests that poll that
    way test behaviour, and tests/browser/test_csp.py checks the policy itself
    (`new_context(bypass_csp=False)`).
    """

    def __init__(self, browser: Any) -> None:
        self._browser = browser

    def new_context(self, **kwargs: Any) -> Any:
        kwargs.setdefault("bypass_csp", True)
        return self._browser.new_context(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._browser, name)


@pytest.fixture()
def browser() -> Iterator[Any]:
    """Headless Chromium (skips when playwright or /usr/bin/chromium is missing)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian package `chromium`)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield HarnessBrowser(b)
        finally:
            b.close()
