"""The figures follow `--by`: bars, hue groups, dots and panels checked on matplotlib's artists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer

from app.analysis import analyze, coerce_frame, read_responses
from app.analysis.plots import PLOT_NAMES, Plot, draw_plots
from app.export_format import CORE_RESPONSE_COLUMNS

FIXTURE = Path(__file__).parent / "data" / "responses_small.csv"
CONDITIONS = {"Max-1": (1, "max_only"), "Min-Max-1": (1, "min_max"), "Max-9": (9, "max_only")}
LAYERS = ("mixed3a", "mixed4c", "mixed5b")
N_PARTICIPANTS = 4


def _experiment_2() -> pd.DataFrame:
    """Experiment II's shape: three conditions × natural/synthetic, three layers, four people;
    participant p answers trial k correctly unless (k + p) % 4 == 0 (synthetic also k % 3)."""
    rows: list[dict[str, Any]] = []
    for p in range(N_PARTICIPANTS):
        index = 0
        for condition, (n_refs, grid) in CONDITIONS.items():
            for reference_type in ("natural", "synthetic"):
                for k in range(6):
                    ok = (k + p) % 4 != 0 and not (reference_type == "synthetic" and k % 3 == 0)
                    confidence = 1 + k % 3
                    rows.append(
                        {
                            "experiment": "e2",
                            "session": "s",
                            "participant": f"p{p}",
                            "participant_group": "",
                            "trial_index": index,
                            "block_index": 0,
                            "trial_kind": "main",
                            "condition": condition,
                            "reference_type": reference_type,
                            "n_references": n_refs,
                            "grid_mode": grid,
                            "layer": LAYERS[k % 3],
                            "channel": k,
                            "unit_label": f"u{k}",
                            "hand_picked": False,
                            "batch": 1,
                            "query_order": "max_upper",
                            "response": "upper" if ok else "lower",
                            "correct_response": "upper",
                            "correct": ok,
                            "confidence": confidence,
                            "conf_rating": confidence if ok else -confidence,
                            "rt_ms": 1000.0 + 10 * k,
                            "presented_at": "",
                            "received_at": "",
                            "query_image_upper": "",
                            "query_image_lower": "",
                            "stimulus_set": "s",
                            "repeat_of_trial_index": None,
                            "excluded": False,
                            "exclusion_reasons": "",
                        }
                    )
                    index += 1
    return coerce_frame(pd.DataFrame(rows, columns=list(CORE_RESPONSE_COLUMNS)), strict=True)


def _plots(frame: pd.DataFrame, by: list[str]) -> dict[str, Plot]:
    plots = draw_plots(frame, by=by, validated=True)
    assert [plot.name for plot in plots] == list(PLOT_NAMES)
    return {plot.name: plot for plot in plots}


def _bars(ax: Any) -> list[BarContainer]:
    return [c for c in ax.containers if isinstance(c, BarContainer)]


def _tick_labels(ax: Any) -> list[str]:
    return [tick.get_text() for tick in ax.get_xticklabels()]


def test_accuracy_bars_put_reference_types_side_by_side_per_condition() -> None:
    frame = _experiment_2()
    plot = _plots(frame, ["condition", "reference_type"])["accuracy_by_group"]
    ax = plot.figure.axes[0]
    assert _tick_labels(ax) == ["Max-1", "Max-9", "Min-Max-1"]
    containers = _bars(ax)
    assert [c.get_label() for c in containers] == ["natural", "synthetic"]
    assert [len(c.patches) for c in containers] == [3, 3]
    expected = {
        (row["condition"], row["reference_type"]): row["accuracy"]
        for row in analyze(frame, ["condition", "reference_type"], validated=True, n_boot=0).rows
    }
    for container in containers:
        for tick, bar in enumerate(container.patches):
            centre = bar.get_x() + bar.get_width() / 2
            # natural left of the tick, synthetic right of it, both within its slot
            side = -1 if container.get_label() == "natural" else 1
            assert 0 < side * (centre - tick) < 0.5
            key = (_tick_labels(ax)[tick], str(container.get_label()))
            assert bar.get_y() == 0 and bar.get_height() == pytest.approx(expected[key])
    # one dot per participant and bar
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(dots) == 6 and all(len(c.get_offsets()) == N_PARTICIPANTS for c in dots)
    # chance line at 0.5; the axis starts at 0
    assert any(list(line.get_ydata()) == [0.5, 0.5] for line in ax.lines)
    assert ax.get_ylim()[0] == 0
    assert ax.get_legend().get_title().get_text() == "reference_type"
    assert "4 participants" in plot.caption and "reference_type" in plot.caption


def test_hue_is_reference_type_wherever_it_stands_in_by() -> None:
    plot = _plots(_experiment_2(), ["reference_type", "n_references", "grid_mode"])[
        "accuracy_by_group"
    ]
    ax = plot.figure.axes[0]
    assert _tick_labels(ax) == ["1 · max_only", "1 · min_max", "9 · max_only"]
    assert [c.get_label() for c in _bars(ax)] == ["natural", "synthetic"]
    assert ax.get_xlabel() == "n_references · grid_mode"


def test_one_bar_per_condition_without_a_hue() -> None:
    frame = read_responses(FIXTURE)
    for by in (["condition"], ["condition", "reference_type"]):
        ax = _plots(frame, by)["accuracy_by_group"].figure.axes[0]
        assert _tick_labels(ax) == ["natural", "synthetic"]
        # each condition has one reference type: one full-width bar per tick
        bars = [bar for container in _bars(ax) for bar in container.patches]
        assert len(bars) == 2
        centres = sorted(bar.get_x() + bar.get_width() / 2 for bar in bars)
        assert centres == pytest.approx([0.0, 1.0])


def test_layer_and_confidence_figures_get_a_panel_per_condition_and_a_line_per_type() -> None:
    plots = _plots(_experiment_2(), ["condition", "reference_type"])
    for name, steps in (("accuracy_by_layer", len(LAYERS)), ("accuracy_by_confidence", 3)):
        axes = plots[name].figure.axes
        assert [ax.get_title() for ax in axes] == ["Max-1", "Max-9", "Min-Max-1"]
        for ax in axes:
            labels = [c.get_label() for c in ax.containers]
            assert labels == ["natural", "synthetic"]
            for container in ax.containers:
                line = container.lines[0]
                assert len(line.get_xdata()) == steps
                assert np.all(np.asarray(line.get_ydata()) <= 1.0)
            assert ax.get_ylim()[0] == 0
        assert "a panel per condition" in plots[name].caption


def test_layer_figure_without_hue_is_one_panel_with_a_line_per_group() -> None:
    plots = _plots(_experiment_2(), ["reference_type"])
    axes = plots["accuracy_by_layer"].figure.axes
    assert len(axes) == 1
    assert [c.get_label() for c in axes[0].containers] == ["natural", "synthetic"]
    rt_ax, confidence_ax = plots["rt_confidence_by_group"].figure.axes[:2]
    assert [len(c.patches) for c in _bars(rt_ax)] == [1, 1]
    assert confidence_ax.get_ylim()[0] == 1.0  # the scale's minimum, stated in the caption
    assert "1 (guess) to 3 (sure)" in plots["rt_confidence_by_group"].caption


def test_no_main_trials_gives_empty_figures_not_an_error() -> None:
    frame = _experiment_2()
    frame["trial_kind"] = "practice"
    plots = draw_plots(frame, by=["condition"], validated=True)
    assert [plot.caption for plot in plots] == ["No main trials to plot."] * len(PLOT_NAMES)
