"""Timing harness for the task page in headless Chromium (tests/browser/test_timing.py and
bench/browser_bytes.py): a stimulus set of 1/f-noise images, a short-timing design, enrolment
over HTTP, and an in-page answering agent keyed to the page's own stimulus onset.

Test-only code: nothing in app/ or static/ imports it.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import select

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.models import Participant, TrialResponse

FRAME_60HZ_MS = 1000 / 60


def noise_image(seed: int, size: int = 224, alpha: float = 1.5) -> np.ndarray:
    """A colour 1/f^alpha noise image (uint8 [size, size, 3]).

    Natural photos have amplitude spectra close to 1/f^alpha with alpha about 1-2; alpha 1.5
    encodes to about the size of the IMI follow-up's released stimuli (lossless WebP ~95 KB
    per 224 px image, between the IMI set's natural photos, 57 KB, and its feature
    visualizations, 109 KB), so load and decode work per trial is realistic.
    """
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    amp = f**-alpha
    amp[0, 0] = 0.0
    shape = (3, size, size // 2 + 1)
    spectrum = amp[None] * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
    img = np.fft.irfftn(spectrum, s=(size, size), axes=(1, 2))
    img = (img - img.mean()) / (img.std() * 4) + 0.5
    return (np.clip(img.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)


def write_noise_set(
    root: Path, *, n_units: int, set_id: str, size: int = 224, seed: int = 0
) -> Path:
    """Write a v1 stimulus set of `n_units` main units with one natural batch (number 1) each.

    Every image (2 queries + 9 + 9 references per unit) is distinct noise, so no two trials
    share an image URL.
    """
    root.mkdir(parents=True, exist_ok=True)
    names = [
        f"u{u:03d}/{name}"
        for u in range(n_units)
        for name in (
            "max_query",
            "min_query",
            *(f"max_{i}" for i in range(9)),
            *(f"min_{i}" for i in range(9)),
        )
    ]

    def save(job: tuple[int, str]) -> tuple[str, dict[str, Any]]:
        index, name = job
        rel = f"images/{name}.png"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        image = noise_image(seed * 1_000_003 + index, size)
        Image.fromarray(image).save(path, format="PNG", compress_level=0)
        data = path.read_bytes()
        return rel, {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    with ThreadPoolExecutor(max_workers=2) as pool:
        files = dict(pool.map(save, enumerate(names)))
    units = []
    for u in range(n_units):

        def ex(name: str, rank: int, u: int = u) -> dict[str, Any]:
            return {"path": f"images/u{u:03d}/{name}.png", "rank": rank}

        units.append(
            {
                "id": f"noise:{u}",
                "layer": "noise",
                "channel": u,
                "label": f"noise unit {u}",
                "roles": ["main"],
                "natural": {
                    "batches": [
                        {
                            "batch": 1,
                            "max_query": ex("max_query", 1),
                            "min_query": ex("min_query", 1),
                            "max_references": [ex(f"max_{i}", i + 2) for i in range(9)],
                            "min_references": [ex(f"min_{i}", i + 2) for i in range(9)],
                        }
                    ]
                },
            }
        )
    manifest = {
        "schema": "psychvis.stimulus_set",
        "schema_version": 1,
        "id": set_id,
        "title": "1/f noise images (timing tests)",
        "created_at": "2026-01-01T00:00:00Z",
        "image_size_px": size,
        "provenance": {"builder": "tests.browser.harness", "model": "none", "dataset": None},
        "files": files,
        "units": units,
    }
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return root


@dataclass(frozen=True)
class Timing:
    """The design's [timing] (ms)."""

    choice_ms: int = 100
    correct_ms: int = 200
    blank_ms: int = 50

    @property
    def feedback_ms(self) -> int:
        """Answer to the next trial's insertion when the server acknowledges within choice_ms."""
        return self.choice_ms + self.correct_ms + self.blank_ms


def design_toml(
    *,
    name: str,
    n_units: int,
    n_blocks: int,
    timing: Timing,
    encoding: str = "lossless",
    reference_type: str = "natural",
) -> str:
    """`n_blocks` main blocks of `n_units` 9 + 9 trials, trial-wise feedback, no breaks.

    Block b draws every unit of the set once from its own list (`b0`, `b1`, ...: all the set's
    main units), so trials of later blocks show the images of the first block again. Each block
    opens with the task page's "Next: ..." message.
    """
    lists = "".join(f'[units.b{b}]\nrole = "main"\ncount = {n_units}\n\n' for b in range(n_blocks))
    blocks = "".join(
        f"""[[blocks]]
kind = "main"
condition = "natural"
units = "b{b}"
n_trials = {n_units}
feedback = true
block_feedback = false
break_after = false

"""
        for b in range(n_blocks)
    )
    return f"""name = "{name}"
seed = "timing"

[conditions.natural]
reference_type = "{reference_type}"
n_references = 9
grid_mode = "min_max"

{lists}{blocks}[timing]
choice_ms = {timing.choice_ms}
correct_ms = {timing.correct_ms}
blank_ms = {timing.blank_ms}

[images]
encoding = "{encoding}"

[batches]
rotation = "fixed"
main = 1
"""


def create_set_and_experiments(
    settings: Settings, set_root: Path, designs: dict[str, str]
) -> dict[str, str]:
    """Migrate the database, import the set, create one experiment per design; launch each.

    Args:
        designs: experiment slug -> design TOML.

    Returns:
        Experiment slug -> link code of its open lab session.
    """
    from app.migrate import upgrade
    from app.services.blobs import BlobStore
    from app.services.experiments import create_experiment, launch_session
    from app.services.stimuli import import_stimulus_set

    engine = make_engine(settings.database_url, pool_size=1)
    links: dict[str, str] = {}
    try:
        upgrade(engine)
        with make_sessionmaker(engine)() as session:
            stimulus_set = import_stimulus_set(
                session, set_root, BlobStore(settings.stimuli_dir / "blobs")
            )
            session.commit()
            for slug, text in designs.items():
                experiment = create_experiment(
                    session,
                    slug=slug,
                    stimulus_set=stimulus_set,
                    design_source=slug,
                    design_text=text,
                )
                launched = launch_session(
                    session, experiment, platform="lab", link_code=f"link-{slug}"
                )
                session.commit()
                links[slug] = launched.link_code
    finally:
        engine.dispose()
    return links


def enrol_to_task(base_url: str, link_code: str, pid: str) -> str:
    """Enrol over HTTP (start, consent, instructions): the participant's next page is the task.

    Returns:
        The participant's token.
    """
    import httpx

    with httpx.Client(base_url=base_url, follow_redirects=False, timeout=30) as client:
        r = client.post(f"/s/{link_code}/start", data={"PROLIFIC_PID": pid})
        assert r.status_code == 303, r.text
        token = r.headers["location"].rstrip("/").rsplit("/", 1)[-1]
        r = client.post(f"/p/{token}/consent", data={"decision": "agree"})
        assert r.status_code == 303, r.text
        r = client.post(f"/p/{token}/instructions")
        assert r.status_code == 303, r.text
    return token


def responses(settings: Settings, token: str) -> list[TrialResponse]:
    """The participant's stored answers in trial order."""
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        with make_sessionmaker(engine)() as session:
            participant = session.scalars(
                select(Participant).where(Participant.token == token)
            ).one()
            return list(
                session.scalars(
                    select(TrialResponse)
                    .where(TrialResponse.participant_id == participant.id)
                    .order_by(TrialResponse.trial_index)
                )
            )
    finally:
        engine.dispose()


# In-page answering agent, added with context.add_init_script(agent_script(...)). It never
# touches the page's modules: it watches the stage's data-phase attribute (set by trial.js) and
# reads the onset from the document timeline.
#
# Onset: trial.js (static/timing.js) inserts the images in the microtask checkpoint of a rAF
# callback and stamps onset = max(timestamp of the next rAF callback, time of the insertion),
# then (same microtask checkpoint, response_lock_ms = 0) sets data-phase="open". The agent
# notes the insertion (a MutationObserver on the upper query, a moment after the page's own
# stamp) and, in the MutationObserver callback for data-phase="open" (where
# document.timeline.currentTime is still the onset frame's time), computes the same maximum.
# The tests check it against the stored onset_ms of every trial.
#
# Answer: for answer i the agent sets a timeout for onset + delays_ms[i] - spin_ms, spins until
# onset + delays_ms[i] (a timer may fire late on a busy machine), stamps performance.now() (t_fire) and synchronously
# dispatches a keydown on document ("key") or a pointerdown on a response button ("click"); the
# page's handler runs inside that dispatch. "external" only records onset: the test then sends a
# real (trusted) key or mouse press through CDP, and capture listeners record the events'
# timeStamps (keydown, pointerdown, pointerup).
# Continue buttons are clicked as soon as they are shown (auto_continue). For diagnostics it
# also records when the trial screen was blanked, when images were inserted (and which), and
# every Resource Timing entry (bytes, times). The record lives in window.__psychvisAgent and is
# written to sessionStorage at pagehide (it survives the page's navigation at the end).
_AGENT_JS = r"""
(() => {
  const CFG = __CONFIG__;
  if (window.top !== window) return;
  const KEY = "psychvis-timing-agent";
  const load = () => { try { return JSON.parse(sessionStorage.getItem(KEY)); } catch { return null; } };
  function boot() {
    const stage = document.querySelector("[data-stage]");
    if (!stage) return;
    const state = load() || {
      answers: [], acks: [], keys: [], pointers: [], continues: [], loads: [], blanks: [], inserts: [], resources: [],
    };
    state.pointers = state.pointers || [];
    window.__psychvisAgent = state;
    const load_index = state.loads.length;
    const nav = performance.getEntriesByType("navigation")[0];
    state.loads.push({ time_origin: performance.timeOrigin, transfer: nav ? nav.transferSize : null });
    // Written only when the page goes away: a write during a trial would delay the page.
    window.addEventListener("pagehide", () => sessionStorage.setItem(KEY, JSON.stringify(state)));
    performance.setResourceTimingBufferSize(10000);
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        state.resources.push({
          name: e.name, type: e.initiatorType, start: e.startTime, end: e.responseEnd,
          transfer: e.transferSize, body: e.encodedBodySize, load: load_index,
        });
        if (e.name.includes("/responses")) state.acks.push({ start: e.startTime, end: e.responseEnd, load: load_index });
      }
    }).observe({ type: "resource", buffered: true });
    window.addEventListener("keydown", (e) => {
      state.keys.push({ code: e.code, time_stamp: e.timeStamp, now: performance.now(), trusted: e.isTrusted });
    }, true);
    for (const type of ["pointerdown", "pointerup"]) {
      window.addEventListener(type, (e) => {
        state.pointers.push({ type, time_stamp: e.timeStamp, now: performance.now(), trusted: e.isTrusted });
      }, true);
    }
    const cont = document.querySelector("[data-continue]");
    let contArmed = false;
    const checkContinue = () => {
      const ready = !cont.hidden && !cont.disabled && cont.textContent === "Continue";
      if (!ready) { contArmed = false; return; }
      if (contArmed || !CFG.auto_continue) return;
      contArmed = true;
      const shown = performance.now();
      setTimeout(() => {
        state.continues.push({ shown, clicked: performance.now(), load: load_index });
        cont.click();
      }, 0);
    };
    new MutationObserver(checkContinue).observe(cont, { attributes: true, childList: true, attributeFilter: ["hidden", "disabled"] });
    // The page may have shown its first Continue before DOMContentLoaded (its first step comes
    // with the page, so nothing waits for the network).
    checkContinue();
    const screen = document.querySelector('[data-screen="trial"]');
    new MutationObserver(() => {
      if (screen.dataset.blank === "true") state.blanks.push(performance.now());
    }).observe(screen, { attributes: true, attributeFilter: ["data-blank"] });
    let inserted = null;
    new MutationObserver((records) => {
      if (!records.some((r) => r.addedNodes.length > 0)) return;
      inserted = {
        at: performance.now(), frame: document.timeline.currentTime, load: load_index,
        urls: [...stage.querySelectorAll("img")].map((img) => img.src),
      };
      state.inserts.push(inserted);
    }).observe(document.querySelector('[data-query="upper"]'), { childList: true });
    let armed = false;
    new MutationObserver(() => {
      if (stage.dataset.phase !== "open") { armed = false; return; }
      if (armed) return;
      armed = true;
      const timeline = document.timeline.currentTime;
      const onset = Math.max(timeline, inserted ? inserted.at : -Infinity);
      const i = state.answers.length;
      if (i >= CFG.max_answers) return;
      const d = CFG.delays_ms[i % CFG.delays_ms.length];
      const how = CFG.inputs[i % CFG.inputs.length];
      const rec = { i, d, how, onset, timeline, seen: performance.now(), load: load_index };
      state.open = { i, onset };
      if (how === "external") { state.answers.push(rec); return; }
      const target = onset + d;
      const fire = () => {
        while (performance.now() < target) { /* spin the last spin_ms: timers fire late */ }
        rec.t_fire = performance.now();
        if (how === "key") {
          document.dispatchEvent(new KeyboardEvent("keydown", { code: "Digit1", key: "1", bubbles: true, cancelable: true }));
        } else {
          const b = document.querySelector('[data-response="lower"][data-confidence="2"]');
          b.dispatchEvent(new PointerEvent("pointerdown", { bubbles: true, cancelable: true, button: 0, isPrimary: true, pointerType: "mouse" }));
        }
        rec.t_after = performance.now();
        state.answers.push(rec);
      };
      setTimeout(fire, Math.max(0, target - performance.now() - CFG.spin_ms));
    }).observe(stage, { attributes: true, attributeFilter: ["data-phase"] });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
"""


def agent_script(
    delays_ms: list[float],
    inputs: list[str],
    max_answers: int = 10_000,
    auto_continue: bool = True,
    spin_ms: float = 25.0,
) -> str:
    """The agent's source for `context.add_init_script` (see the comment above _AGENT_JS).

    Args:
        delays_ms: answer i is given delays_ms[i % n] after onset ...
        inputs: ... as "key", "click" or "external" (inputs[i % n]).
        max_answers: answers the agent gives; later trials stay open.
        auto_continue: click every Continue button as soon as it is shown.
        spin_ms: the answer timer is set this much early and the rest is spun, so that a
            late timer on a busy machine does not shift the input.
    """
    config = {
        "spin_ms": spin_ms,
        "delays_ms": delays_ms,
        "inputs": inputs,
        "max_answers": max_answers,
        "auto_continue": auto_continue,
    }
    return _AGENT_JS.replace("__CONFIG__", json.dumps(config))


def agent_state(page: Any) -> dict[str, Any]:
    """What the agent recorded so far in this tab (live on the task page, else as saved)."""
    raw = page.evaluate(
        "window.__psychvisAgent ? JSON.stringify(window.__psychvisAgent)"
        " : sessionStorage.getItem('psychvis-timing-agent')"
    )
    return json.loads(raw) if raw else {}
