"""The trial screen's geometry in headless Chromium: what a participant sees, measured.

For each grid mode (min+max 9, max-only 9, min+max 1, none) and four common window sizes, a
real task page shows a trial of 224 px images; the test reads every image's and button's box
and checks the protocol's layout (docs/protocol.md, "The task"; docs/participant_view.md):
all images one size s (224 px, or one uniform scale of it when the window is smaller), gaps
of 10·s/224 px, the min grid left and the max grid right of the queries, the six buttons
between the two queries, nothing overlapping, nothing outside the window. The stage size and
the page around it must be what `app.tasks.afc2.screen` computes for the landing page's screen
check, and the scale is stored with the answer (`display_scale`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from app.config import Settings
from app.tasks.afc2.screen import IMAGE_PX, PAGE_CHROME_PX, REF_GAP_PX, stage_size_px
from tests.browser.conftest import browser_settings, free_port, serve_app
from tests.browser.harness import (
    create_set_and_experiments,
    enrol_to_task,
    responses,
    write_noise_set,
)

pytestmark = pytest.mark.browser

MODES = {
    # experiment slug: (grid_mode, n_references)
    "geo-minmax9": ("min_max", 9),
    "geo-max9": ("max_only", 9),
    "geo-minmax1": ("min_max", 1),
    "geo-none": ("none", 0),
}
VIEWPORTS = [(1920, 1080), (1600, 900), (1366, 768), (1280, 720)]
N_UNITS = 2


def _design(slug: str, grid_mode: str, n_refs: int) -> str:
    condition = (
        'reference_type = "none"'
        if grid_mode == "none"
        else f'reference_type = "natural"\nn_references = {n_refs}\ngrid_mode = "{grid_mode}"'
    )
    return f"""name = "{slug}"
seed = "geometry"

[conditions.c]
{condition}

[units.main]
role = "main"
count = {N_UNITS}

[[blocks]]
kind = "main"
condition = "c"
n_trials = {N_UNITS}
feedback = false
block_feedback = false
break_after = false

[batches]
rotation = "fixed"
main = 1
"""


@pytest.fixture(scope="module")
def geometry_app(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, dict[str, str], Settings]]:
    root = tmp_path_factory.mktemp("geometry")
    port = free_port()
    settings = browser_settings(root, port, "geometry")
    set_root = write_noise_set(root / "set", n_units=N_UNITS, set_id="geometry-noise")
    links = create_set_and_experiments(
        settings, set_root, {slug: _design(slug, *mode) for slug, mode in MODES.items()}
    )
    with serve_app(settings, port) as base:
        yield base, links, settings


MEASURE = """() => {
  const box = (el) => { const r = el.getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height}; };
  const visible = (el) => getComputedStyle(el).visibility !== "hidden" && el.getClientRects().length > 0;
  const imgs = (sel) => [...document.querySelectorAll(sel + " img")].filter(visible).map(box);
  return {
    stage: box(document.querySelector("[data-stage]")),
    min: imgs('[data-grid="min"]'),
    max: imgs('[data-grid="max"]'),
    upper: imgs('[data-query="upper"]'),
    lower: imgs('[data-query="lower"]'),
    buttons: [...document.querySelectorAll("[data-response]")].map(box),
    viewport: {w: innerWidth, h: innerHeight},
  };
}"""

OPEN = "document.querySelector('[data-stage]')?.dataset.phase === 'open'"


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["w"] - 0.5
        and b["x"] < a["x"] + a["w"] - 0.5
        and a["y"] < b["y"] + b["h"] - 0.5
        and b["y"] < a["y"] + a["h"] - 0.5
    )


def _check_grid(images: list[dict[str, float]], n: int, s: float, problems: list[str]) -> None:
    if len(images) != n:
        problems.append(f"grid has {len(images)} images, expected {n}")
        return
    if n <= 1:
        return
    xs = sorted({round(i["x"], 1) for i in images})
    ys = sorted({round(i["y"], 1) for i in images})
    if len(xs) != 3 or len(ys) != 3:
        problems.append(f"not a 3x3 grid: columns {xs}, rows {ys}")
        return
    pitch = (IMAGE_PX + REF_GAP_PX) * s
    for a, b in itertools.pairwise(xs):
        if abs((b - a) - pitch) > 0.6:
            problems.append(f"column pitch {b - a:.2f} != {pitch:.2f}")
    for a, b in itertools.pairwise(ys):
        if abs((b - a) - pitch) > 0.6:
            problems.append(f"row pitch {b - a:.2f} != {pitch:.2f}")


@pytest.mark.parametrize("slug", list(MODES))
def test_trial_screen_geometry_at_common_window_sizes(
    slug: str, geometry_app: tuple[str, dict[str, str], Settings], browser: Any
) -> None:
    base, links, settings = geometry_app
    grid_mode, n_refs = MODES[slug]
    stage_w, stage_h = stage_size_px(grid_mode, n_refs)
    report: dict[tuple[int, int], list[str]] = {}
    for vw, vh in VIEWPORTS:
        token = enrol_to_task(base, links[slug], f"{slug}-{vw}x{vh}")
        ctx = browser.new_context(viewport={"width": vw, "height": vh})
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
        page.goto(f"{base}/p/{token}")
        page.locator("[data-continue]").click()
        page.wait_for_function(OPEN, timeout=30_000)
        m = page.evaluate(MEASURE)
        page.keyboard.press("Digit3")  # answer, so that the stored display_scale can be read
        page.wait_for_function(f"{OPEN} === false || true", timeout=5_000)
        page.wait_for_timeout(300)
        ctx.close()

        problems = list(errors)
        s = min(1.0, (vw - PAGE_CHROME_PX[0]) / stage_w, (vh - PAGE_CHROME_PX[1]) / stage_h)
        size = IMAGE_PX * s
        stage = m["stage"]
        if abs(stage["w"] - stage_w * s) > 1 or abs(stage["h"] - stage_h * s) > 1:
            problems.append(
                f"stage {stage['w']:.1f}x{stage['h']:.1f}, expected {stage_w * s:.1f}x{stage_h * s:.1f}"
            )
        images = m["min"] + m["max"] + m["upper"] + m["lower"]
        for img in images:
            if abs(img["w"] - size) > 0.5 or abs(img["h"] - size) > 0.5:
                problems.append(f"image {img['w']:.1f}x{img['h']:.1f} px, expected {size:.1f}")
                break
        n_min = n_refs if grid_mode == "min_max" else 0
        _check_grid(m["min"], n_min, s, problems)
        _check_grid(m["max"], n_refs if grid_mode != "none" else 0, s, problems)
        if len(m["upper"]) != 1 or len(m["lower"]) != 1:
            problems.append("not exactly one image per query")
        else:
            upper, lower = m["upper"][0], m["lower"][0]
            centre_x = upper["x"] + upper["w"] / 2
            if abs(centre_x - (lower["x"] + lower["w"] / 2)) > 0.5 or upper["y"] >= lower["y"]:
                problems.append("queries are not stacked in one column")
            for b in m["buttons"]:
                if not (upper["y"] + upper["h"] <= b["y"] and b["y"] + b["h"] <= lower["y"]):
                    problems.append(f"button at y={b['y']:.1f} is not between the queries")
                    break
                if not (upper["x"] <= b["x"] and b["x"] + b["w"] <= upper["x"] + upper["w"]):
                    problems.append(f"button at x={b['x']:.1f} is outside the query column")
                    break
            if m["min"] and max(i["x"] + i["w"] for i in m["min"]) >= upper["x"]:
                problems.append("min grid is not left of the queries")
            if m["max"] and min(i["x"] for i in m["max"]) <= upper["x"] + upper["w"]:
                problems.append("max grid is not right of the queries")
        boxes = images + m["buttons"]
        for a, b in itertools.combinations(boxes, 2):
            if _overlap(a, b):
                problems.append(f"overlap: {a} and {b}")
                break
        for b in boxes:
            if b["x"] < 0 or b["y"] < 0 or b["x"] + b["w"] > vw + 0.5 or b["y"] + b["h"] > vh + 0.5:
                problems.append(f"outside the window: {b}")
                break
        stored = responses(settings, token)
        if len(stored) != 1 or stored[0].display_scale is None:
            problems.append("the answer's display_scale was not stored")
        elif abs(stored[0].display_scale - round(s, 3)) > 0.0015:
            problems.append(f"display_scale {stored[0].display_scale} != {s:.4f}")
        if problems:
            report[(vw, vh)] = problems
    assert report == {}, report
