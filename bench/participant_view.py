"""Screenshots of what participants see, for docs/participant_view.md.

Serves the real app (uvicorn in a thread, a temporary SQLite database) on the sample stimulus
set at 224 px (`app.sample_set`: drawn gratings, not a real study's stimuli), enrols a lab
participant per preset and takes screenshots in headless Chromium (Debian's /usr/bin/chromium)
of the landing page, the instructions, and the first trial with reference images and its
feedback at 1920x1080 and 1280x720 (earlier trials are answered through the JSON API).

    .venv/bin/python -m bench.participant_view docs/img
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from playwright.sync_api import sync_playwright

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.designs import load_design
from app.main import create_app
from app.migrate import upgrade
from app.sample_set import write_sample_set
from app.services.blobs import BlobStore
from app.services.experiments import create_experiment, launch_session
from app.services.stimuli import import_stimulus_set
from bench.chromium import CHROMIUM, CHROMIUM_ARGS

PRESETS = ("paper-exp1", "imi")
VIEWPORTS = ((1920, 1080), (1280, 720))
OPEN = "document.querySelector('[data-stage]')?.dataset.phase === 'open'"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _setup(root: Path, port: int) -> tuple[Settings, dict[str, str]]:
    settings = Settings(
        env="test",
        database_url=f"sqlite:///{root / 'view.sqlite3'}",
        secret_key="screenshots-" + "x" * 40,
        stimuli_dir=root / "stimuli",
        base_url=f"http://127.0.0.1:{port}",
        log_level="WARNING",
    )
    set_root = write_sample_set(root / "set", presets=list(PRESETS), size=224, n_batches=4)
    engine = make_engine(settings.database_url, pool_size=1)
    links = {}
    try:
        upgrade(engine)
        with make_sessionmaker(engine)() as session:
            stimulus_set = import_stimulus_set(
                session, set_root, BlobStore(settings.stimuli_dir / "blobs")
            )
            for preset in PRESETS:
                experiment = create_experiment(
                    session, slug=preset, stimulus_set=stimulus_set, design_source=preset
                )
                links[preset] = launch_session(session, experiment, platform="lab").link_code
            session.commit()
    finally:
        engine.dispose()
    return settings, links


def _to_instructions(base: str, link: str, pid: str) -> str:
    """Start, consent and give any start ratings over HTTP; returns the token."""
    with httpx.Client(base_url=base, timeout=30) as client:
        r = client.post(f"/s/{link}/start", data={"PROLIFIC_PID": pid})
        token = r.headers["location"].rsplit("/", 1)[-1]
        client.post(f"/p/{token}/consent", data={"decision": "agree"})
        # Start ratings are rating trials on the task page: answered as the page would.
        step = client.get(f"/api/p/{token}/next").json() if _on_task_page(client, token) else {}
        while step.get("step") == "trial" and step["trial"]["task"] == "rating":
            body = {
                "response_uuid": str(uuid.uuid4()),
                "trial_index": step["trial"]["trial_index"],
                "answer": {"task": "rating", "value": 0},
                "rt_ms": 3000.0,
            }
            step = client.post(f"/api/p/{token}/responses", json=body).json()["next"]
    return token


def design_has_ratings(preset: str) -> bool:
    return load_design(preset).ratings.start is not None


def _rating_screenshot(page: Any, base: str, link: str, name: str, out: Path) -> None:
    """The first start rating as the participant sees it (a participant of its own)."""
    with httpx.Client(base_url=base, timeout=30) as client:
        r = client.post(f"/s/{link}/start", data={"PROLIFIC_PID": name + "-rating"})
        token = r.headers["location"].rsplit("/", 1)[-1]
        client.post(f"/p/{token}/consent", data={"decision": "agree"})
    page.goto(f"{base}/p/{token}")
    page.locator("[data-continue]").click()
    page.wait_for_function(
        "(() => { const b = document.querySelector('[data-rating-submit]');"
        " return !!b && !b.disabled; })()",
        timeout=30_000,
    )
    page.mouse.move(0, 0)
    page.screenshot(path=out / f"{name}-rating.jpg", type="jpeg", quality=85)


def _on_task_page(client: httpx.Client, token: str) -> bool:
    return 'id="trial-config"' in client.get(f"/p/{token}").text


def _answer_until_references(base: str, token: str) -> None:
    """Answer (through the JSON API) the trials before the first one that shows references
    (Experiment I starts with blocks without references); stops at a block's first trial."""
    with httpx.Client(base_url=base, timeout=30) as client:
        step = client.get(f"/api/p/{token}/next").json()
        while step["step"] == "trial" and (
            step["trial"]["grid_mode"] == "none" or step["trial"]["block"]["position"] != 0
        ):
            body = {
                "response_uuid": str(uuid.uuid4()),
                "trial_index": step["trial"]["trial_index"],
                "response": "upper",
                "confidence": 2,
                "rt_ms": 900.0,
            }
            step = client.post(f"/api/p/{token}/responses", json=body).json()["next"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="psychvis-view-") as tmp:
        port = _free_port()
        settings, links = _setup(Path(tmp), port)
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                for preset in PRESETS:
                    for w, h in VIEWPORTS:
                        name = f"{preset}-{w}x{h}"
                        # Polling with wait_for_function evaluates a string in the page,
                        # which the app's CSP refuses (tests/browser/conftest.py).
                        ctx = browser.new_context(
                            viewport={"width": w, "height": h}, bypass_csp=True
                        )
                        page = ctx.new_page()
                        if (w, h) == VIEWPORTS[0]:
                            page.goto(f"{base}/s/{links[preset]}")
                            page.screenshot(
                                path=args.out / f"{preset}-landing.jpg", type="jpeg", quality=85
                            )
                        if design_has_ratings(preset):
                            _rating_screenshot(page, base, links[preset], name, args.out)
                        token = _to_instructions(base, links[preset], name)
                        page.goto(f"{base}/p/{token}")
                        if (w, h) == VIEWPORTS[0]:
                            page.screenshot(
                                path=args.out / f"{preset}-instructions.jpg",
                                full_page=True,
                                type="jpeg",
                                quality=85,
                            )
                        page.locator("[data-begin]").click()
                        _answer_until_references(base, token)
                        page.goto(f"{base}/p/{token}")
                        page.locator("[data-continue]").click()
                        page.wait_for_function(OPEN, timeout=30_000)
                        page.mouse.move(0, h - 1)
                        page.screenshot(
                            path=args.out / f"{name}-trial.jpg", type="jpeg", quality=85
                        )
                        page.keyboard.press("Digit3")
                        if preset == "imi":
                            page.locator("[data-feedback-text]").wait_for(state="visible")
                        else:
                            page.wait_for_selector("[data-query][data-frame=correct]")
                        page.screenshot(
                            path=args.out / f"{name}-feedback.jpg", type="jpeg", quality=85
                        )
                        ctx.close()
                browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=10)


if __name__ == "__main__":
    main()
