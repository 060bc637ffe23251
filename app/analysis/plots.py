"""Figures of an analysis (matplotlib, PNG and SVG), grouped like the table (`--by`).

The first grouping columns place the bars; one column (`reference_type` when grouped by it,
else the second) becomes the hue, so natural and synthetic stand side by side per condition
as in the paper's figures. matplotlib is imported inside the drawing functions and draws on the
Agg canvas directly (no pyplot, no global backend switch), so importing this module is cheap and
safe inside a web server.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from app.analysis.load import PARTICIPANT_KEY, coerce_frame
from app.analysis.stats import (
    CHANCE,
    DEFAULT_BY,
    Z_95,
    accuracy_by_confidence,
    add_derived_columns,
    group_summary,
    needed_columns,
    participant_table,
    select_trials,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

PLOT_NAMES: tuple[str, ...] = (
    "accuracy_by_group",
    "accuracy_by_layer",
    "rt_confidence_by_group",
    "accuracy_by_confidence",
)
"""Base names of the figures; each is written as `<name>.png` and `<name>.svg`."""

PNG_DPI = 150
HUE_PREFERENCE = "reference_type"
"""The grouping column that becomes the hue whenever it is one of two or more."""
REFERENCE_COLOURS = {
    "natural": "#E69F00",
    "synthetic": "#0072B2",
    "none": "#8C8C8C",
    "mixed": "#009E73",
}
REFERENCE_ORDER = ("natural", "synthetic", "none", "mixed")
_PALETTE = ("#CC79A7", "#56B4E9", "#D55E00", "#009E73", "#F0E442", "#000000", "#8C8C8C")
_SINGLE_COLOUR = "#56B4E9"
_EMPTY_LABEL = "(empty)"
_GROUP_WIDTH = 0.8
"""Width of one x position's bars together (axis units; positions are 1 apart)."""
_X = "_x"
_HUE = "_hue"


@dataclass(frozen=True, slots=True)
class Plot:
    """One figure: file base name, a caption saying what is plotted, the matplotlib Figure."""

    name: str
    caption: str
    figure: Figure

    def png(self) -> bytes:
        """The figure as PNG bytes (what the console shows)."""
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=PNG_DPI)
        return buffer.getvalue()


@dataclass(slots=True)
class _Grouping:
    """How `by` maps onto a figure: x columns, hue column and the labels in drawing order."""

    x_columns: tuple[str, ...]
    hue: str | None
    x_labels: list[str] = field(default_factory=list)
    hue_labels: list[str] = field(default_factory=list)
    colours: dict[str, str] = field(default_factory=dict)

    @property
    def x_title(self) -> str:
        return " · ".join(self.x_columns) if self.x_columns else ""

    def describe(self, marks: str = "bars") -> str:
        """`condition` or `condition (bars by reference_type)`, for titles and captions."""
        text = self.x_title or "all main trials"
        return f"{text} ({marks} by {self.hue})" if self.hue else text


def write_plots(
    frame: pd.DataFrame,
    out_dir: Path,
    *,
    by: Sequence[str] = DEFAULT_BY,
    include_excluded: bool = False,
    validated: bool = False,
) -> list[Path]:
    """Draw the figures of `draw_plots` and save each as PNG (150 dpi) and SVG.

    Args:
        frame: Response table (validated here unless `validated`).
        out_dir: Folder for the files (created if missing).
        by: Grouping columns, as for the table.
        include_excluded: Keep participants marked excluded.
        validated: The frame already comes from `read_responses`/`coerce_frame`.

    Returns:
        Paths of the files written, PNG and SVG of each figure.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for plot in draw_plots(frame, by=by, include_excluded=include_excluded, validated=validated):
        png, svg = out_dir / f"{plot.name}.png", out_dir / f"{plot.name}.svg"
        plot.figure.savefig(png, dpi=PNG_DPI)
        plot.figure.savefig(svg, metadata={"Date": None})
        written += [png, svg]
    logger.info("plots written", extra={"dir": str(out_dir), "files": len(written)})
    return written


def draw_plots(
    frame: pd.DataFrame,
    *,
    by: Sequence[str] = DEFAULT_BY,
    include_excluded: bool = False,
    validated: bool = False,
) -> list[Plot]:
    """The analysis figures of the main trials, one `Plot` per name of `PLOT_NAMES`.

    - `accuracy_by_group`: a bar per group at the mean over participants of their proportion
      correct, error bar ± 1.96·SEM, one dot per participant, dashed chance line at 0.5; the
      axis starts at 0.
    - `accuracy_by_layer`: the same statistic per layer, a line per group.
    - `rt_confidence_by_group`: mean RT and mean confidence (mean of participant means ± SEM),
      bars grouped as in the first figure; the confidence axis spans the scale, 1 to 3.
    - `accuracy_by_confidence`: accuracy per confidence level, a line per group.

    Groups follow `by`: with two or more columns, `reference_type` (or else the second column)
    is the hue and the others place the bars. The layer and confidence figures leave `layer` and
    `confidence` out of the grouping; when a bar position holds several hues they get one panel
    per position.

    Args:
        frame: Response table (validated here unless `validated`).
        by: Grouping columns, as for the table.
        include_excluded: Keep participants marked excluded.
        validated: The frame already comes from `read_responses`/`coerce_frame`.

    Returns:
        The figures with their captions, in `PLOT_NAMES` order.
    """
    from matplotlib import rc_context

    by = tuple(by)
    typed = frame if validated else coerce_frame(frame, needed=needed_columns(by))
    main = select_trials(add_derived_columns(typed), ["main"], include_excluded=include_excluded)
    n_participants = int(main[list(PARTICIPANT_KEY)].drop_duplicates().shape[0])
    who = f"{n_participants} participant{'s' if n_participants != 1 else ''}"
    drawers: dict[str, Callable[[Figure], str]] = {
        "accuracy_by_group": lambda fig: _accuracy_bars(fig, main, by, who),
        "accuracy_by_layer": lambda fig: _accuracy_lines(
            fig,
            main.loc[main["layer"] != ""],
            tuple(c for c in by if c != "layer"),
            "layer",
            who,
        ),
        "rt_confidence_by_group": lambda fig: _rt_confidence(fig, main, by, who),
        "accuracy_by_confidence": lambda fig: _accuracy_lines(
            fig,
            main.loc[main["confidence"].notna()],
            tuple(c for c in by if c != "confidence"),
            "confidence",
            who,
        ),
    }
    plots: list[Plot] = []
    with rc_context({"svg.hashsalt": "psychvis", "font.size": 9}):
        for name in PLOT_NAMES:
            fig = _figure((8.0, 4.2) if name == "rt_confidence_by_group" else (6.4, 4.2))
            if main.empty:
                _nothing(fig.add_subplot(), "No main trials.")
                caption = "No main trials to plot."
            else:
                caption = drawers[name](fig)
            plots.append(Plot(name, caption, fig))
    return plots


def _figure(size: tuple[float, float]) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


# --- grouping -------------------------------------------------------------------------------


def _grouping(main: pd.DataFrame, by: tuple[str, ...]) -> tuple[_Grouping, pd.DataFrame]:
    """Split `by` into x columns and hue; return it with `main` plus `_x`/`_hue` label columns."""
    hue: str | None = None
    if len(by) >= 2:
        hue = HUE_PREFERENCE if HUE_PREFERENCE in by else by[1]
    x_columns = tuple(column for column in by if column != hue)
    grouping = _Grouping(x_columns, hue)
    work = main.copy()
    work[_X] = _labels(work, x_columns, "all")
    work[_HUE] = _labels(work, (hue,) if hue else (), "")
    grouping.x_labels = _ordered(work, x_columns, _X)
    grouping.hue_labels = _ordered(work, (hue,) if hue else (), _HUE)
    if hue == "reference_type":
        known = [label for label in REFERENCE_ORDER if label in grouping.hue_labels]
        grouping.hue_labels = known + [h for h in grouping.hue_labels if h not in known]
    grouping.colours = _colours(work, grouping)
    return grouping, work


def _labels(frame: pd.DataFrame, columns: tuple[str, ...], default: str) -> pd.Series:
    if not columns:
        return pd.Series(default, index=frame.index, dtype=object)
    parts = [frame[column].map(_text) for column in columns]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + " · " + part
    return joined.astype(object)


def _text(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return _EMPTY_LABEL
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    text = str(value)
    return text if text else _EMPTY_LABEL


def _ordered(frame: pd.DataFrame, columns: tuple[str, ...], label: str) -> list[str]:
    """Distinct labels, sorted by the underlying values (numbers as numbers)."""
    if not columns:
        return list(dict.fromkeys(frame[label]))
    firsts = frame.drop_duplicates(subset=[label])
    keyed = []
    for _, row in firsts.iterrows():
        key = tuple(_sort_key(row[column]) for column in columns)
        keyed.append((key, str(row[label])))
    return [name for _, name in sorted(keyed)]


def _sort_key(value: Any) -> tuple[int, float, str]:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return (2, 0.0, "")
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    ):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _colours(work: pd.DataFrame, grouping: _Grouping) -> dict[str, str]:
    """Colour per hue label, or per x label without a hue (its reference type if it has one)."""
    colours: dict[str, str] = {}
    if grouping.hue:
        for index, label in enumerate(grouping.hue_labels):
            fallback = _PALETTE[index % len(_PALETTE)]
            colours[label] = (
                REFERENCE_COLOURS.get(label, fallback)
                if grouping.hue == "reference_type"
                else fallback
            )
        return colours
    types = work.groupby(_X)["reference_type"].agg(lambda s: sorted(set(s)))
    for label in grouping.x_labels:
        kinds = types.get(label, [])
        colours[label] = (
            REFERENCE_COLOURS.get(kinds[0], _SINGLE_COLOUR) if len(kinds) == 1 else _SINGLE_COLOUR
        )
    return colours


def _colour(grouping: _Grouping, x_label: str, hue_label: str) -> str:
    return grouping.colours[hue_label] if grouping.hue else grouping.colours[x_label]


# --- bars -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Cell:
    """One bar: its group labels, the mean and error half-width, participants' values."""

    x_label: str
    hue_label: str
    mean: float
    half: float
    points: np.ndarray
    n: int


def _cells(
    work: pd.DataFrame, stat: str, column: str, error: Callable[[dict[str, Any]], float]
) -> list[_Cell]:
    """Per (x, hue) group: `stat` of `group_summary` and the participants' `column` values."""
    ptable = participant_table(work, [_X, _HUE])
    cells = []
    for row in group_summary(ptable, [_X, _HUE]):
        mine = ptable.loc[(ptable[_X] == row[_X]) & (ptable[_HUE] == row[_HUE]), column]
        cells.append(
            _Cell(
                row[_X],
                row[_HUE],
                _float(row[stat]),
                error(row),
                mine.to_numpy(dtype=float),
                int(row["n_participants"]),
            )
        )
    return cells


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _draw_bars(
    ax: Axes,
    grouping: _Grouping,
    cells: list[_Cell],
    *,
    bottom: float = 0.0,
    annotate_n: bool = True,
    label_room: int = 48,
) -> None:
    """Grouped bars: one BarContainer per hue (labelled with it), dots, ± error bars.

    At each x position only the hues that occur there are drawn, centred, so a position with a
    single hue (Experiment I's `none`) gets one full-width bar.
    """
    rng = np.random.default_rng(0)  # fixed jitter: identical figures from identical data
    by_position: dict[str, list[_Cell]] = {}
    for cell in cells:
        by_position.setdefault(cell.x_label, []).append(cell)
    placed: dict[str, list[tuple[float, float, _Cell]]] = {}
    for x, x_label in enumerate(grouping.x_labels):
        here = by_position.get(x_label, [])
        order = grouping.hue_labels if grouping.hue else [""]
        here.sort(key=lambda c: order.index(c.hue_label) if c.hue_label in order else len(order))
        width = _GROUP_WIDTH / max(1, len(here))
        for index, cell in enumerate(here):
            centre = x - _GROUP_WIDTH / 2 + width * (index + 0.5)
            key = cell.hue_label if grouping.hue else x_label
            placed.setdefault(key, []).append((centre, width, cell))
    for key, bars in placed.items():
        centres = [centre for centre, _, _ in bars]
        widths = [width * 0.92 for _, width, _ in bars]
        heights = [cell.mean - bottom for _, _, cell in bars]
        colours = [_colour(grouping, cell.x_label, cell.hue_label) for _, _, cell in bars]
        ax.bar(
            centres,
            heights,
            width=widths,
            bottom=bottom,
            color=colours,
            alpha=0.85,
            label=key if grouping.hue else None,
            zorder=2,
        )
        for centre, width, cell in bars:
            if cell.points.size:
                jitter = rng.uniform(-width * 0.3, width * 0.3, size=cell.points.size)
                ax.scatter(
                    centre + jitter,
                    cell.points,
                    s=10,
                    color="black",
                    alpha=0.35,
                    linewidths=0,
                    zorder=3,
                )
            if math.isfinite(cell.half):
                ax.errorbar(
                    centre, cell.mean, yerr=cell.half, color="black", capsize=4, lw=1.3, zorder=4
                )
            if annotate_n:
                ax.annotate(
                    f"n={cell.n}",
                    xy=(centre, bottom),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    zorder=5,
                )
    ax.set_xticks(range(len(grouping.x_labels)), grouping.x_labels)
    if sum(len(label) + 2 for label in grouping.x_labels) > label_room:
        for tick in ax.get_xticklabels():
            tick.set_rotation(30)
            tick.set_horizontalalignment("right")
    ax.set_xlim(-0.6, len(grouping.x_labels) - 0.4)
    if grouping.x_title:
        ax.set_xlabel(grouping.x_title)
    ax.spines[["top", "right"]].set_visible(False)
    if grouping.hue:
        ax.legend(title=grouping.hue, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)


def _accuracy_axis(ax: Axes) -> None:
    """Proportion correct from 0 to 1 with the dashed chance line."""
    ax.axhline(CHANCE, color="black", linestyle="--", linewidth=1, zorder=1)
    ax.annotate(
        "chance",
        xy=(0.0, CHANCE),
        xycoords=("axes fraction", "data"),
        xytext=(2, 2),
        textcoords="offset points",
        ha="left",
        va="bottom",
        fontsize=7,
    )
    ax.set_ylim(0.0, 1.05)
    ax.set_yticks([0.0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel("Proportion correct")


def _nothing(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def _accuracy_bars(fig: Figure, main: pd.DataFrame, by: tuple[str, ...], who: str) -> str:
    ax = fig.add_subplot()
    grouping, work = _grouping(main, by)
    cells = _cells(work, "accuracy", "accuracy", lambda row: _float(row["accuracy_ci"]))
    _draw_bars(ax, grouping, cells)
    _accuracy_axis(ax)
    ax.set_title(f"Proportion correct by {grouping.describe()}", fontsize=9)
    return (
        f"Proportion correct of main trials by {grouping.describe()}: bars at the mean over "
        f"participants ({who}; n per bar), error bars ± {Z_95}·SEM, dots: single "
        f"participants, dashed line: chance (0.5). The axis starts at 0."
    )


def _rt_confidence(fig: Figure, main: pd.DataFrame, by: tuple[str, ...], who: str) -> str:
    rt_ax, conf_ax = fig.subplots(1, 2)
    grouping, work = _grouping(main, by)
    rt_cells = _cells(work, "rt_ms", "mean_rt_ms", lambda row: _float(row["rt_ms_sem"]))
    _draw_bars(rt_ax, grouping, rt_cells, annotate_n=False, label_room=20)
    rt_ax.set_ylim(bottom=0.0)
    rt_ax.set_ylabel("Response time (ms)")
    conf_cells = _cells(
        work, "confidence", "mean_confidence", lambda row: _float(row["confidence_sem"])
    )
    _draw_bars(conf_ax, grouping, conf_cells, bottom=1.0, annotate_n=False, label_room=20)
    conf_ax.set_ylim(1.0, 3.05)
    conf_ax.set_yticks([1, 2, 3], ["1 guess", "2", "3 sure"])
    conf_ax.set_ylabel("Confidence")
    if grouping.hue:
        rt_ax.get_legend().remove()
    fig.suptitle(f"Response time and confidence by {grouping.describe()}", fontsize=9)
    return (
        f"Response time (left) and confidence (right) of main trials by {grouping.describe()}: "
        f"mean of participant means ({who}) ± 1 SEM, dots: single participants. RT axis "
        "starts at 0; the confidence axis spans the rating scale, 1 (guess) to 3 (sure). Trials "
        "with an invalid RT or confidence are left out of that panel."
    )


# --- lines (by layer, by confidence) -------------------------------------------------------


def _accuracy_lines(
    fig: Figure, trials: pd.DataFrame, by: tuple[str, ...], along: str, who: str
) -> str:
    """Accuracy along `layer` or `confidence`, a line per group; a panel per bar position when
    a position holds several hues (Experiment II: a panel per condition, natural vs synthetic)."""
    what = "layer" if along == "layer" else "confidence level"
    if trials.empty:
        _nothing(fig.add_subplot(), f"No main trials with a {what}.")
        return f"Proportion correct by {what}: no main trials with a {what}."
    grouping, work = _grouping(trials, by)
    if along == "layer":
        steps = _ordered(work, ("layer",), "layer")
        tick_labels = steps
    else:
        steps = ["1", "2", "3"]
        tick_labels = ["1 guess", "2", "3 sure"]
    hues_per_x = work.groupby(_X)[_HUE].nunique()
    panels = grouping.hue is not None and bool((hues_per_x > 1).any())
    panel_labels = grouping.x_labels if panels else [""]
    axes = fig.subplots(1, len(panel_labels), sharey=True, squeeze=False)[0]
    if len(panel_labels) > 2:
        fig.set_size_inches(min(3.0 * len(panel_labels), 14.0), 4.2)
    for ax, panel in zip(axes, panel_labels, strict=True):
        subset = work.loc[work[_X] == panel] if panels else work
        series = grouping.hue_labels if panels or not grouping.x_columns else grouping.x_labels
        column = _HUE if panels or not grouping.x_columns else _X
        offsets = np.linspace(-0.12, 0.12, num=max(1, len(series))) if len(series) > 1 else [0.0]
        for offset, label in zip(offsets, series, strict=True):
            mine = subset.loc[subset[column] == label]
            if mine.empty:
                continue
            hue_label = str(mine[_HUE].iloc[0])
            x_label = str(mine[_X].iloc[0])
            points = _along(mine, along)
            xs = [steps.index(step) + offset for step, _, _ in points]
            ax.errorbar(
                xs,
                [mean for _, mean, _ in points],
                yerr=[half for _, _, half in points],
                fmt="o-",
                color=_colour(grouping, x_label, hue_label),
                capsize=3,
                label=label if label else None,
                zorder=3,
            )
        ax.set_xticks(range(len(steps)), tick_labels)
        if along == "layer" and len(steps) > 3:
            ax.tick_params(axis="x", labelrotation=35)
        ax.set_xlim(-0.5, len(steps) - 0.5)
        ax.set_xlabel("Layer" if along == "layer" else "Confidence")
        ax.spines[["top", "right"]].set_visible(False)
        _accuracy_axis(ax)
        if panels:
            ax.set_title(panel, fontsize=9)
        if ax is not axes[0]:
            ax.set_ylabel("")
    legend_title = grouping.hue if panels or not grouping.x_columns else grouping.x_title
    if axes[-1].get_legend_handles_labels()[1]:
        axes[-1].legend(
            title=legend_title or None,
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            frameon=False,
        )
    grouped = f", per {grouping.describe('lines')}" if by else ""
    fig.suptitle(f"Proportion correct by {what}{grouped}", fontsize=9)
    counted = "participants who used the level" if along == "confidence" else "participants"
    return (
        f"Proportion correct of main trials by {what}{grouped}"
        + (f", a panel per {grouping.x_title}" if panels else "")
        + f": mean over {counted} ({who} in all) ± {Z_95}·SEM, dashed line: chance (0.5). "
        "The axis starts at 0."
    )


def _along(trials: pd.DataFrame, along: str) -> list[tuple[str, float, float]]:
    """(step label, mean accuracy, 1.96·SEM or 0) per layer or confidence level present."""
    if along == "layer":
        rows = group_summary(participant_table(trials, ["layer"]), ["layer"])
        return [
            (str(row["layer"]), _float(row["accuracy"]), _zero(row["accuracy_ci"])) for row in rows
        ]
    return [
        (str(row["confidence"]), _float(row["accuracy"]), _zero(row["accuracy_ci"]))
        for row in accuracy_by_confidence(trials, [])
    ]


def _zero(value: Any) -> float:
    return 0.0 if value is None else float(value)
