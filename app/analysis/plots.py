"""Figures of an analysis (matplotlib, PNG and SVG), in the style of the paper's main figure.

matplotlib is imported inside `write_plots` and draws on the Agg canvas directly (no pyplot, no
global backend switch), so importing this module is cheap and safe inside a web server.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from app.analysis.load import coerce_frame
from app.analysis.stats import (
    CHANCE,
    Z_95,
    accuracy_by_confidence,
    add_derived_columns,
    group_summary,
    participant_table,
    select_trials,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

PLOT_NAMES: tuple[str, ...] = (
    "accuracy_by_condition",
    "accuracy_by_layer",
    "rt_confidence_by_condition",
    "accuracy_by_confidence",
)
"""Base names of the figures; each is written as `<name>.png` and `<name>.svg`."""

Y_BOTTOM = 0.4
Y_TOP = 1.0
PNG_DPI = 150
REFERENCE_COLOURS = {
    "natural": "#E69F00",
    "synthetic": "#0072B2",
    "none": "#8C8C8C",
    "mixed": "#009E73",
}
_FALLBACK_COLOURS = ("#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000", "#009E73")


def write_plots(
    frame: pd.DataFrame,
    out_dir: Path,
    *,
    include_excluded: bool = False,
    validated: bool = False,
) -> list[Path]:
    """Draw the analysis figures of the main trials and save each as PNG and SVG.

    Figures: accuracy per condition (mean over participants ± 1.96·SEM, participants as dots,
    dashed chance line at 0.5), accuracy per layer and condition, RT and confidence per condition
    (± 1 SEM), accuracy per confidence level and condition. Accuracy axes run from 0.4 to 1 and
    extend lower only when a mean or a participant's value would fall below 0.4 (error bars
    may be clipped, as in the paper's figures).

    Args:
        frame: Response table (validated here unless `validated`).
        out_dir: Folder for the files (created if missing).
        include_excluded: Keep participants marked excluded.
        validated: The frame already comes from `read_responses`/`coerce_frame`.

    Returns:
        Paths of the files written, PNG and SVG of each figure.
    """
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    typed = frame if validated else coerce_frame(frame)
    main = select_trials(add_derived_columns(typed), ["main"], include_excluded=include_excluded)
    out_dir.mkdir(parents=True, exist_ok=True)
    conditions = sorted(main["condition"].unique().tolist())
    colours = _condition_colours(main, conditions)
    ptable = participant_table(main, ["condition"])
    rows = {row["condition"]: row for row in group_summary(ptable, ["condition"])}
    n_participants = int(ptable[["experiment", "participant"]].drop_duplicates().shape[0])

    written: list[Path] = []
    with rc_context({"svg.hashsalt": "psychvis", "font.size": 10}):
        drawers = {
            "accuracy_by_condition": lambda fig: _accuracy_by_condition(
                fig, conditions, rows, ptable, colours, n_participants
            ),
            "accuracy_by_layer": lambda fig: _accuracy_by_layer(fig, main, conditions, colours),
            "rt_confidence_by_condition": lambda fig: _rt_confidence(
                fig, conditions, rows, ptable, colours
            ),
            "accuracy_by_confidence": lambda fig: _accuracy_by_confidence(
                fig, main, conditions, colours
            ),
        }
        for name in PLOT_NAMES:
            fig = Figure(figsize=(6.4, 4.2), layout="constrained")
            FigureCanvasAgg(fig)
            drawers[name](fig)
            png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
            fig.savefig(png, dpi=PNG_DPI)
            fig.savefig(svg, metadata={"Date": None})
            written += [png, svg]
    logger.info("plots written", extra={"dir": str(out_dir), "files": len(written)})
    return written


def _condition_colours(main: pd.DataFrame, conditions: Sequence[str]) -> dict[str, str]:
    """Colour each condition by its reference type when that is unambiguous."""
    ref_types = main.groupby("condition")["reference_type"].agg(lambda s: s.mode().iloc[0])
    one_per_type = ref_types.nunique() == len(ref_types)
    colours: dict[str, str] = {}
    for index, condition in enumerate(conditions):
        ref_type = ref_types.get(condition)
        if one_per_type and ref_type in REFERENCE_COLOURS:
            colours[condition] = REFERENCE_COLOURS[ref_type]
        else:
            colours[condition] = _FALLBACK_COLOURS[index % len(_FALLBACK_COLOURS)]
    return colours


def _accuracy_axes(ax: Axes, lowest: float) -> None:
    bottom = Y_BOTTOM
    if math.isfinite(lowest) and lowest < Y_BOTTOM:
        bottom = max(0.0, math.floor(lowest * 10) / 10)
    ax.axhline(CHANCE, color="black", linestyle="--", linewidth=1, zorder=4)
    ax.annotate(
        "chance",
        xy=(1.0, CHANCE),
        xycoords=("axes fraction", "data"),
        xytext=(-2, 2),
        textcoords="offset points",
        ha="right",
        va="bottom",
        fontsize=8,
    )
    ax.set_ylim(bottom, Y_TOP + 0.02)
    ax.set_ylabel("Proportion correct")
    ax.spines[["top", "right"]].set_visible(False)


def _err(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _accuracy_by_condition(
    fig: Figure,
    conditions: Sequence[str],
    rows: dict[str, dict[str, Any]],
    ptable: pd.DataFrame,
    colours: dict[str, str],
    n_participants: int,
) -> None:
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)  # fixed jitter: identical figures from identical data
    lowest = math.inf
    for x, condition in enumerate(conditions):
        points = ptable.loc[ptable["condition"] == condition, "accuracy"].to_numpy(float)
        jitter = rng.uniform(-0.12, 0.12, size=points.size)
        ax.scatter(x + 0.25 + jitter, points, s=14, color=colours[condition], alpha=0.45, zorder=2)
        row = rows[condition]
        mean, half = _err(row["accuracy"]), _err(row["accuracy_ci"])
        ax.bar(x, mean, width=0.45, color=colours[condition], alpha=0.85, zorder=2)
        ax.errorbar(x, mean, yerr=half, color="black", capsize=5, linewidth=1.5, zorder=3)
        lowest = min(lowest, float(np.min(points)) if points.size else mean, mean)
    ax.set_xticks(range(len(conditions)), [_label(c, rows[c]) for c in conditions])
    ax.set_xlim(-0.6, len(conditions) - 0.25)
    ax.set_xlabel("Condition")
    _accuracy_axes(ax, lowest)
    ax.set_title(
        f"Accuracy per condition ({n_participants} participants; "
        "mean ± 1.96·SEM, dots: participants)",
        fontsize=9,
    )


def _label(condition: str, row: dict[str, Any]) -> str:
    return f"{condition}\n(n={row['n_participants']})"


def _accuracy_by_layer(
    fig: Figure, main: pd.DataFrame, conditions: Sequence[str], colours: dict[str, str]
) -> None:
    ax = fig.add_subplot()
    with_layer = main.loc[main["layer"] != ""]
    layers = sorted(with_layer["layer"].unique().tolist())
    if not layers:
        ax.text(0.5, 0.5, "No trials with a layer.", ha="center", va="center")
        ax.set_axis_off()
        return
    rows = group_summary(
        participant_table(with_layer, ["layer", "condition"]), ["layer", "condition"]
    )
    width = 0.7 / max(1, len(conditions))
    lowest = math.inf
    for index, condition in enumerate(conditions):
        xs, means, halves = [], [], []
        for row in rows:
            if row["condition"] != condition:
                continue
            xs.append(layers.index(row["layer"]) + (index - (len(conditions) - 1) / 2) * width)
            means.append(_err(row["accuracy"]))
            halves.append(_err(row["accuracy_ci"]))
        if not xs:
            continue
        ax.errorbar(
            xs,
            means,
            yerr=np.nan_to_num(halves),
            fmt="o-",
            color=colours[condition],
            capsize=3,
            label=condition,
            zorder=3,
        )
        lowest = min(lowest, *means)
    ax.set_xticks(range(len(layers)), layers, rotation=30, ha="right")
    ax.set_xlim(-0.5, len(layers) - 0.5)
    ax.set_xlabel("Layer")
    _accuracy_axes(ax, lowest)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title("Accuracy per layer (mean over participants ± 1.96·SEM)", fontsize=9)


def _rt_confidence(
    fig: Figure,
    conditions: Sequence[str],
    rows: dict[str, dict[str, Any]],
    ptable: pd.DataFrame,
    colours: dict[str, str],
) -> None:
    rt_ax, conf_ax = fig.subplots(1, 2)
    panels = (
        (rt_ax, "rt_ms", "mean_rt_ms", "Response time (ms)"),
        (conf_ax, "confidence", "mean_confidence", "Confidence (1 = guess, 3 = sure)"),
    )
    for ax, stat, column, label in panels:
        for x, condition in enumerate(conditions):
            row = rows[condition]
            ax.bar(
                x,
                _err(row[stat]),
                yerr=_err(row[f"{stat}_sem"]),
                width=0.6,
                color=colours[condition],
                alpha=0.85,
                capsize=5,
            )
            points = ptable.loc[ptable["condition"] == condition, column].to_numpy(float)
            ax.scatter(np.full(points.size, x + 0.2), points, s=10, color="black", alpha=0.4)
        ax.set_xticks(range(len(conditions)), conditions, rotation=20)
        ax.set_ylabel(label)
        ax.spines[["top", "right"]].set_visible(False)
    conf_ax.set_ylim(1, 3.1)
    fig.suptitle("RT and confidence per condition (mean of participant means ± SEM)", fontsize=9)


def _accuracy_by_confidence(
    fig: Figure, main: pd.DataFrame, conditions: Sequence[str], colours: dict[str, str]
) -> None:
    ax = fig.add_subplot()
    rows = accuracy_by_confidence(main, ["condition"])
    offsets = np.linspace(-0.12, 0.12, num=max(1, len(conditions)))
    lowest = math.inf
    for offset, condition in zip(offsets, conditions, strict=True):
        mine = [row for row in rows if row["condition"] == condition]
        if not mine:
            continue
        xs = [int(row["confidence"]) + offset for row in mine]
        means = [_err(row["accuracy"]) for row in mine]
        halves = np.nan_to_num([_err(row["accuracy_ci"]) for row in mine])
        ax.errorbar(
            xs, means, yerr=halves, fmt="o-", color=colours[condition], capsize=3, label=condition
        )
        lowest = min(lowest, *means)
    ax.set_xticks([1, 2, 3], ["1 (guess)", "2", "3 (sure)"])
    ax.set_xlabel("Confidence")
    _accuracy_axes(ax, lowest)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title(
        f"Accuracy by confidence (mean over participants who used the level ± {Z_95}·SEM)",
        fontsize=9,
    )
