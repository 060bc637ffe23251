"""Bytes and cold-start time of the task page in headless Chromium, per image encoding.

Run: `.venv/bin/python -m bench.browser_bytes [--out bench/out/browser_bytes.json]`
(about 5 minutes on 2 shared cores; needs /usr/bin/chromium and playwright).

For each encoding (lossless WebP, lossy WebP q90, PNG) a participant opens the task page in a
fresh browser profile (empty cache) over Chromium's network emulation (20 Mbit/s down, 5 up,
20 ms latency) and an in-page agent (tests/browser/harness.py) answers every trial 500 ms after
onset. Stimuli: a 45-unit set of 224 px 1/f-noise images (900 distinct images: no trial shares
an image) under the test design (9 + 9 references, choice 100 / correct 200 / blank 50 ms),
and, when the IMI follow-up's released stimuli lie at `IMI_ROOT`, their real ones (2 trials of ImageNet
photos, 2 trials of feature visualizations). Bytes are Resource Timing transferSize (body +
headers as sent) plus the navigation's; times are the task page's clock (origin = navigation
start). Prints a markdown table; writes JSON.
"""

from __future__ import annotations

import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from app.config import REPO_ROOT, Settings
from app.db import make_engine, make_sessionmaker
from bench.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.browser.conftest import browser_settings, free_port, serve_app
from tests.browser.harness import (
    Timing,
    agent_script,
    agent_state,
    design_toml,
    enrol_to_task,
    responses,
    write_noise_set,
)

logger = logging.getLogger(__name__)

ENCODINGS = ("lossless", "lossy", "png")
TIMING = Timing(choice_ms=100, correct_ms=200, blank_ms=50)
N_NOISE_UNITS = 45
ANSWER_AFTER_MS = 500.0
THROTTLED = {
    "offline": False,
    "latency": 20,
    "downloadThroughput": 20e6 / 8,
    "uploadThroughput": 5e6 / 8,
}
IMI_ROOT = REPO_ROOT.parent / "shared" / "stimuli" / "imi"
IMI_SETS = {
    "imi-natural": ("demo_natural_9_references", "natural"),
    "imi-synthetic": ("demo_optimized_9_references", "synthetic"),
}

app = typer.Typer(add_completion=False)


def _setup(settings: Settings, root: Path) -> dict[str, tuple[str, int]]:
    """Sets and experiments; returns experiment slug -> (link code, number of trials)."""
    from app.migrate import upgrade
    from app.services.blobs import BlobStore
    from app.services.experiments import create_experiment, launch_session
    from app.services.stimuli import import_stimulus_set

    sets: dict[str, tuple[Path, str, int]] = {
        "noise": (
            write_noise_set(root / "noise", n_units=N_NOISE_UNITS, set_id="bench-noise"),
            "natural",
            N_NOISE_UNITS,
        )
    }
    for name, (folder, kind) in IMI_SETS.items():
        if (IMI_ROOT / folder).is_dir():
            sets[name] = (IMI_ROOT / folder, kind, 2)
    engine = make_engine(settings.database_url, pool_size=1)
    links: dict[str, tuple[str, int]] = {}
    try:
        upgrade(engine)
        with make_sessionmaker(engine)() as session:
            for name, (folder, kind, n_units) in sets.items():
                started = time.perf_counter()
                imported = import_stimulus_set(
                    session, folder, BlobStore(settings.stimuli_dir / "blobs"), set_id=name
                )
                session.commit()
                logger.info("imported %s in %.1f s", name, time.perf_counter() - started)
                for encoding in ENCODINGS:
                    slug = f"{name}-{encoding}"
                    text = design_toml(
                        name=slug,
                        n_units=n_units,
                        n_blocks=1,
                        timing=TIMING,
                        encoding=encoding,
                        reference_type=kind,
                    )
                    experiment = create_experiment(
                        session,
                        slug=slug,
                        stimulus_set=imported,
                        design_source=slug,
                        design_text=text,
                    )
                    launched = launch_session(session, experiment, link_code=f"link-{slug}")
                    session.commit()
                    links[slug] = (launched.link_code, n_units)
    finally:
        engine.dispose()
    return links


def _session(browser: Any, base: str, settings: Settings, link: str, n: int) -> dict[str, Any]:
    token = enrol_to_task(base, link, f"bench-{link}-{time.time_ns()}")
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080})
    ctx.add_init_script(agent_script(delays_ms=[ANSWER_AFTER_MS], inputs=["key"], spin_ms=0))
    page = ctx.new_page()
    cdp = ctx.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", THROTTLED)
    page.goto(f"{base}/p/{token}", wait_until="commit")
    page.wait_for_selector("[data-task]", state="detached", timeout=600_000)
    state = agent_state(page)
    ctx.close()
    rows = responses(settings, token)
    assert len(rows) == n, (len(rows), n)
    first = rows[0]
    assert first.onset_ms is not None
    task = [r for r in state["resources"] if r["load"] == 0]
    first_urls = set(state["inserts"][0]["urls"])
    images = [r for r in task if "/img/" in r["name"]]
    acks = sorted(a["end"] for a in state["acks"])
    offsets = []
    for prev, row in zip(rows, rows[1:], strict=False):
        assert prev.answer_ms is not None and row.onset_ms is not None
        ack = next(a for a in acks if a >= prev.answer_ms)
        black = max(float(TIMING.choice_ms), ack - prev.answer_ms)
        offsets.append(row.onset_ms - prev.answer_ms - black - TIMING.correct_ms - TIMING.blank_ms)
    nav = state["loads"][0]["transfer"] or 0
    return {
        "trials": n,
        "first_onset_ms": round(first.onset_ms, 1),
        "first_trial_images_kb": round(
            sum(r["transfer"] for r in images if r["name"] in first_urls) / 1000, 1
        ),
        "before_first_onset_kb": round(
            (nav + sum(r["transfer"] for r in task if r["end"] <= first.onset_ms)) / 1000, 1
        ),
        "session_kb": round((nav + sum(r["transfer"] for r in task)) / 1000, 1),
        "images_fetched": len({r["name"] for r in images}),
        "mean_image_kb": round(statistics.mean(r["body"] for r in images) / 1000, 1),
        "offset_over_feedback_ms": {
            "median": round(statistics.median(offsets), 1) if offsets else None,
            "max": round(max(offsets), 1) if offsets else None,
        },
    }


@app.command()
def main(
    out: Annotated[Path, typer.Option(help="JSON results")] = Path("bench/out/browser_bytes.json"),
) -> None:
    """Run every set x encoding once and print the table."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise typer.Exit(f"no Chromium at {CHROMIUM}")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="psychvis-bytes-") as tmp:
        port = free_port()
        settings = browser_settings(Path(tmp), port, "bytes")
        links = _setup(settings, Path(tmp))
        with serve_app(settings, port) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                for slug, (link, n) in links.items():
                    results[slug] = _session(browser, base, settings, link, n)
                    logger.info("%s: %s", slug, results[slug])
            finally:
                browser.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"network": THROTTLED, "results": results}, indent=1))
    typer.echo(
        "| set, encoding | mean image kB | 1st trial images kB | kB before 1st onset | "
        "navigation -> 1st onset ms | session kB (trials) | offset over feedback median/max ms |"
    )
    typer.echo("|---|---|---|---|---|---|---|")
    for slug, r in results.items():
        o = r["offset_over_feedback_ms"]
        typer.echo(
            f"| {slug} | {r['mean_image_kb']} | {r['first_trial_images_kb']} | "
            f"{r['before_first_onset_kb']} | {r['first_onset_ms']:.0f} | "
            f"{r['session_kb']:.0f} ({r['trials']}) | {o['median']} / {o['max']} |"
        )


if __name__ == "__main__":
    app()
