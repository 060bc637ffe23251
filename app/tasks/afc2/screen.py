"""The trial screen's size in CSS pixels, for the screen check before consent.

The numbers mirror static/tasks/afc2/afc2.css (image 224 px, 10 px gaps in a grid, 40 px
between the columns, 6 px query frames, the answer column, the title above each grid) and the
task page around the stage (static/trial.css: progress bar, question, key hint).
tests/browser/test_geometry.py measures the real page in Chromium and checks them.
"""

from __future__ import annotations

import math

from app.designs.model import Design

IMAGE_PX = 224
REF_GAP_PX = 10
COLUMN_GAP_PX = 40
FRAME_PX = 6
SIDE_TITLE_PX = 28 + 8  # title line + its margin
ANSWERS_PX = 2 * 10 + 2 * 40 + 34 + 2 * 6  # padding, two button rows, arrow, gaps
PAGE_CHROME_PX = (0, 36 + 34 + 36)  # around the stage: bar + question + key hint (height)


def stage_size_px(grid_mode: str, n_references: int) -> tuple[int, int]:
    """Width and height of the stage at scale 1 for one layout.

    A max-only grid keeps the (invisible) min grid's place, so the queries stay centred.
    """
    centre_w = IMAGE_PX + 2 * FRAME_PX
    centre_h = 2 * (IMAGE_PX + 2 * FRAME_PX) + ANSWERS_PX
    if grid_mode == "none" or n_references <= 0:
        return centre_w, centre_h
    per_row = 3 if n_references > 1 else 1
    rows = math.ceil(n_references / per_row)
    grid_w = per_row * IMAGE_PX + (per_row - 1) * REF_GAP_PX
    grid_h = rows * IMAGE_PX + (rows - 1) * REF_GAP_PX
    return 2 * grid_w + centre_w + 2 * COLUMN_GAP_PX, max(SIDE_TITLE_PX + grid_h, centre_h)


def largest_stage_px(design: Design) -> tuple[int, int]:
    """The largest stage any of the design's conditions shows."""
    sizes = [stage_size_px(c.grid, c.references) for c in design.conditions.values()]
    return max(w for w, _ in sizes), max(h for _, h in sizes)


def window_needed_px(design: Design, scale: float | None = None) -> tuple[int, int]:
    """The browser window (CSS px) that shows the design's largest stage at `scale`
    (default: the design's minimum scale, `[screen] min_scale`)."""
    s = design.screen.min_scale if scale is None else scale
    w, h = largest_stage_px(design)
    return math.ceil(w * s) + PAGE_CHROME_PX[0], math.ceil(h * s) + PAGE_CHROME_PX[1]
