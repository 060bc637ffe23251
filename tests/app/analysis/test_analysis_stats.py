"""Analysis numbers on the hand-made fixture, computed by hand below (docs/protocol.md, Analysis).

Fixture `data/responses_small.csv` (experiment exp1): participants p1, p2, p3 each answer 4 main
trials per condition (natural, synthetic) on units mixed3a:25, mixed3a:189, mixed5b:119,
mixed5b:684 (in that order), plus 1 practice trial (wrong), 2 catch trials in the natural block
and 1 repeated trial (wrong). p4 is excluded: 2+2 main trials and 2 catch trials, all wrong.

Main trials, (correct, rt_ms, confidence):
    p1 natural   1 1000 3 | 1 1200 3 | 1  800 3 | 1 1000 3    -> acc 1.00, rt 1000, conf 3
    p1 synthetic 1 1100 2 | 1 1100 2 | 0 1100 1 | 1 1100 3    -> acc 0.75, rt 1100, conf 2
    p2 natural   1 1800 3 | 1 1800 2 | 1 1800 2 | 0 2600 1    -> acc 0.75, rt 2000, conf 2
    p2 synthetic 1  900 1 | 0  900 1 | 0  900 1 | 1  900 1    -> acc 0.50, rt  900, conf 1
    p3 natural   1 1200 1 | 0 2400 1 | 1 1200 1 | 1 1200 1    -> acc 0.75, rt 1500, conf 1
    p3 synthetic 0 1000 3 | 1 1000 3 | 1 1000 3 | 1 1000 3    -> acc 0.75, rt 1000, conf 3
Catch (natural block): p1 1 1, p2 1 0, p3 1 1.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from app.analysis import AnalysisInputError, analyze, analyze_frame, read_responses
from app.analysis.stats import (
    bootstrap_mean_ci,
    mean_sem,
    paired_test,
)

FIXTURE = Path(__file__).parent / "data" / "responses_small.csv"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return read_responses(FIXTURE)


def _by_key(rows: list[dict], *columns: str) -> dict:
    return {tuple(row[c] for c in columns): row for row in rows}


def test_accuracy_per_condition_is_mean_of_participant_proportions(frame: pd.DataFrame) -> None:
    rows = _by_key(analyze_frame(frame, ["condition"], n_boot=200), "condition")
    natural, synthetic = rows[("natural",)], rows[("synthetic",)]
    # natural: [1, .75, .75] -> mean 5/6, SD sqrt(1/48), SEM = SD/sqrt(3) = 1/12
    assert natural["n_participants"] == 3
    assert natural["n_trials"] == 12
    assert natural["accuracy"] == pytest.approx(5 / 6)
    assert natural["accuracy_sem"] == pytest.approx(1 / 12)
    assert natural["accuracy_ci"] == pytest.approx(1.96 / 12)
    # synthetic: [.75, .5, .75] -> mean 2/3, same spread
    assert synthetic["accuracy"] == pytest.approx(2 / 3)
    assert synthetic["accuracy_ci"] == pytest.approx(1.96 / 12)


def test_rt_and_confidence_are_means_of_participant_means(frame: pd.DataFrame) -> None:
    rows = _by_key(analyze_frame(frame, ["condition"], n_boot=0), "condition")
    natural, synthetic = rows[("natural",)], rows[("synthetic",)]
    # natural RT per participant [1000, 2000, 1500]: SD 500, SEM 500/sqrt(3)
    assert natural["rt_ms"] == pytest.approx(1500)
    assert natural["rt_ms_sem"] == pytest.approx(500 / math.sqrt(3))
    # correct trials only: p1 1000, p2 1800, p3 1200 -> mean 4000/3, SD sqrt(173333.3)
    assert natural["rt_correct_ms"] == pytest.approx(4000 / 3)
    assert natural["rt_correct_ms_sem"] == pytest.approx(math.sqrt(520000 / 3 / 3))
    # synthetic RT [1100, 900, 1000]: SD 100
    assert synthetic["rt_ms"] == pytest.approx(1000)
    assert synthetic["rt_ms_sem"] == pytest.approx(100 / math.sqrt(3))
    # confidence [3, 2, 1] and [2, 1, 3]: mean 2, SD 1
    for row in (natural, synthetic):
        assert row["confidence"] == pytest.approx(2)
        assert row["confidence_sem"] == pytest.approx(1 / math.sqrt(3))


def test_catch_accuracy_attached_to_its_condition(frame: pd.DataFrame) -> None:
    rows = _by_key(analyze_frame(frame, ["condition"], n_boot=0), "condition")
    # natural catch [1, .5, 1]: mean 5/6, SD sqrt(1/12), SEM 1/6
    assert rows[("natural",)]["catch_n_participants"] == 3
    assert rows[("natural",)]["catch_accuracy"] == pytest.approx(5 / 6)
    assert rows[("natural",)]["catch_accuracy_ci"] == pytest.approx(1.96 / 6)
    assert rows[("synthetic",)]["catch_accuracy"] is None
    assert rows[("synthetic",)]["catch_n_participants"] == 0


def test_excluded_participant_left_out_unless_asked(frame: pd.DataFrame) -> None:
    result = analyze(frame, ["condition"], n_boot=0, validated=True)
    assert result.summary["n_participants"] == 3
    assert result.summary["n_excluded_participants"] == 1
    assert result.summary["n_main_trials"] == 24  # no practice, catch or repeated rows
    rows = _by_key(
        analyze_frame(frame, ["condition"], include_excluded=True, n_boot=0), "condition"
    )
    natural = rows[("natural",)]
    # [1, .75, .75, 0]: mean .625, SD sqrt(.1875), SEM SD/2
    assert natural["n_participants"] == 4
    assert natural["n_trials"] == 14
    assert natural["accuracy"] == pytest.approx(0.625)
    assert natural["accuracy_ci"] == pytest.approx(1.96 * math.sqrt(0.1875) / 2)


def test_accuracy_by_layer(frame: pd.DataFrame) -> None:
    rows = _by_key(analyze_frame(frame, ["layer"], n_boot=0), "layer")
    # mixed3a per participant (4 trials each): p1 1.0, p2 .75, p3 .5 -> mean .75, SD .25
    # mixed5b: p1 .75, p2 .5, p3 1.0 -> same
    for layer in ("mixed3a", "mixed5b"):
        assert rows[(layer,)]["accuracy"] == pytest.approx(0.75)
        assert rows[(layer,)]["accuracy_ci"] == pytest.approx(1.96 * 0.25 / math.sqrt(3))


def test_empty_by_gives_one_overall_row(frame: pd.DataFrame) -> None:
    rows = analyze_frame(frame, [], n_boot=0)
    assert len(rows) == 1
    # per participant over 8 trials: p1 7/8, p2 5/8, p3 6/8 -> mean .75, SD 1/8
    assert rows[0]["accuracy"] == pytest.approx(0.75)
    assert rows[0]["accuracy_sem"] == pytest.approx(0.125 / math.sqrt(3))


def test_branch_is_derived_from_inception_layer_and_channel(frame: pd.DataFrame) -> None:
    rows = _by_key(analyze_frame(frame, ["branch"], n_boot=0), "branch")
    # mixed3a 25 -> 1x1; mixed3a 189 -> 3x3; mixed5b 119 -> 1x1; mixed5b 684 -> 3x3
    assert set(rows) == {("1x1",), ("3x3",)}
    # 1x1 (units 1 and 3), per participant: p1 nat 1,1 syn 1,0; p2 1,1 1,0; p3 1,1 0,1 -> .75 each
    assert rows[("1x1",)]["n_trials"] == 12
    assert rows[("1x1",)]["accuracy"] == pytest.approx(0.75)
    assert rows[("1x1",)]["accuracy_sem"] == pytest.approx(0.0)
    # 3x3 (units 2 and 4): p1 1,1 1,1; p2 1,0 0,1; p3 0,1 1,1 -> [1, .5, .75]
    assert rows[("3x3",)]["accuracy"] == pytest.approx(0.75)


def test_accuracy_by_confidence(frame: pd.DataFrame) -> None:
    result = analyze(frame, ["condition"], n_boot=0, validated=True)
    rows = _by_key(result.by_confidence, "condition", "confidence")
    # natural, confidence 1: p2 0/1, p3 3/4 -> mean .375 over 2 participants, 5 trials
    assert rows[("natural", 1)]["n_participants"] == 2
    assert rows[("natural", 1)]["n_trials"] == 5
    assert rows[("natural", 1)]["accuracy"] == pytest.approx(0.375)
    assert rows[("natural", 1)]["accuracy_ci"] == pytest.approx(1.96 * 0.375)
    # natural, confidence 2: only p2 (2/2) -> no SEM
    assert rows[("natural", 2)]["accuracy"] == pytest.approx(1.0)
    assert rows[("natural", 2)]["accuracy_ci"] is None
    # synthetic, confidence 3: p1 1/1, p3 3/4 -> .875
    assert rows[("synthetic", 3)]["accuracy"] == pytest.approx(0.875)


def test_paired_test_natural_vs_synthetic_by_hand_and_scipy(frame: pd.DataFrame) -> None:
    result = analyze(frame, ["condition"], n_boot=0, validated=True)
    assert len(result.paired_tests) == 1
    test = result.paired_tests[0]
    # differences [.25, .25, 0]: mean 1/6, SEM 1/12 -> t = 2, df 2, p = 1 - 2/sqrt(6)
    assert test["n_pairs"] == 3
    assert test["difference"] == pytest.approx(1 / 6)
    assert test["t"] == pytest.approx(2.0)
    assert test["df"] == 2
    assert test["p_t"] == pytest.approx(1 - 2 / math.sqrt(6))
    expected = scipy_stats.wilcoxon([1.0, 0.75, 0.75], [0.75, 0.5, 0.75])
    assert test["wilcoxon_w"] == pytest.approx(float(expected.statistic))
    assert test["p_wilcoxon"] == pytest.approx(float(expected.pvalue))


def test_paired_tests_stratified_by_layer(frame: pd.DataFrame) -> None:
    result = analyze(frame, ["layer"], n_boot=0, validated=True)
    tests = _by_key(result.paired_tests, "layer")
    assert set(tests) == {("mixed3a",), ("mixed5b",)}
    # mixed3a natural [1, 1, .5], synthetic [1, .5, .5]
    assert tests[("mixed3a",)]["accuracy_natural"] == pytest.approx(5 / 6)
    assert tests[("mixed3a",)]["accuracy_synthetic"] == pytest.approx(2 / 3)


def test_paired_test_matches_scipy_on_known_case() -> None:
    natural = [0.9, 0.95, 0.85, 1.0, 0.8, 0.92, 0.88]
    synthetic = [0.8, 0.9, 0.82, 0.85, 0.7, 0.93, 0.75]
    result = paired_test(natural, synthetic)
    t = scipy_stats.ttest_rel(natural, synthetic)
    w = scipy_stats.wilcoxon(natural, synthetic)
    assert result["t"] == pytest.approx(float(t.statistic))
    assert result["p_t"] == pytest.approx(float(t.pvalue))
    assert result["wilcoxon_w"] == pytest.approx(float(w.statistic))
    assert result["p_wilcoxon"] == pytest.approx(float(w.pvalue))
    diffs = np.subtract(natural, synthetic)
    assert result["difference_ci"] == pytest.approx(1.96 * diffs.std(ddof=1) / math.sqrt(7))


def test_paired_test_with_identical_samples_has_no_p_values() -> None:
    result = paired_test([0.8, 0.9], [0.8, 0.9])
    assert result["difference"] == pytest.approx(0.0)
    assert result["p_t"] is None
    assert result["p_wilcoxon"] is None


def test_no_paired_test_without_both_reference_types(frame: pd.DataFrame) -> None:
    natural_only = frame.loc[frame["reference_type"] == "natural"]
    assert analyze(natural_only, ["condition"], n_boot=0, validated=True).paired_tests == []


def test_unit_accuracy_and_seeded_bootstrap(frame: pd.DataFrame) -> None:
    rows = _by_key(analyze_frame(frame, ["condition"], n_boot=2000, seed=7), "condition")
    natural = rows[("natural",)]
    # per unit over participants: 1, 2/3, 1, 2/3 -> mean 5/6
    assert natural["n_units"] == 4
    assert natural["unit_accuracy"] == pytest.approx(5 / 6)
    assert 2 / 3 <= natural["unit_accuracy_ci_low"] <= 5 / 6 <= natural["unit_accuracy_ci_high"]
    assert natural["unit_accuracy_ci_high"] <= 1.0
    again = _by_key(analyze_frame(frame, ["condition"], n_boot=2000, seed=7), "condition")
    assert again[("natural",)]["unit_accuracy_ci_low"] == natural["unit_accuracy_ci_low"]
    assert again[("natural",)]["unit_accuracy_ci_high"] == natural["unit_accuracy_ci_high"]


def test_bootstrap_is_deterministic_and_matches_numpy_percentiles() -> None:
    values = np.array([0.5, 0.6, 0.9, 1.0, 0.75, 0.8])
    first = bootstrap_mean_ci(values, n_boot=5000, seed=3)
    assert first == bootstrap_mean_ci(values, n_boot=5000, seed=3)
    assert first != bootstrap_mean_ci(values, n_boot=5000, seed=4)
    rng = np.random.default_rng(3)
    means = values[rng.integers(0, values.size, size=(5000, values.size))].mean(axis=1)
    assert first == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))
    # constant values: degenerate interval
    assert bootstrap_mean_ci([0.7, 0.7, 0.7], n_boot=100, seed=0) == pytest.approx((0.7, 0.7))
    assert all(math.isnan(v) for v in bootstrap_mean_ci([], n_boot=100))


def test_mean_sem_uses_ddof_1() -> None:
    result = mean_sem([1.0, 2.0, 3.0, 4.0])
    assert result.mean == pytest.approx(2.5)
    assert result.sd == pytest.approx(math.sqrt(5 / 3))
    assert result.sem == pytest.approx(math.sqrt(5 / 3) / 2)
    assert result.ci == pytest.approx(1.96 * math.sqrt(5 / 3) / 2)
    single = mean_sem([0.8])
    assert single.n == 1 and math.isnan(single.sem)


def test_unknown_grouping_column_is_a_clear_error(frame: pd.DataFrame) -> None:
    with pytest.raises(AnalysisInputError, match="unknown grouping column.*colour"):
        analyze_frame(frame, ["colour"])


def test_only_excluded_participants_is_a_clear_error(frame: pd.DataFrame) -> None:
    only_p4 = frame.loc[frame["participant"] == "p4"]
    with pytest.raises(AnalysisInputError, match="no main trials"):
        analyze(only_p4, n_boot=0, validated=True)


def test_paired_test_with_constant_differences_has_no_t() -> None:
    result = paired_test([0.9, 0.8, 1.0], [0.8, 0.7, 0.9])  # every difference 0.1 (rounded)
    assert result["difference"] == pytest.approx(0.1)
    assert result["t"] is None and result["p_t"] is None
    assert result["p_wilcoxon"] is not None


def test_grouping_by_participant_and_confidence_columns(frame: pd.DataFrame) -> None:
    rows = _by_key(analyze_frame(frame, ["participant"], n_boot=0), "participant")
    assert rows[("p2",)]["n_participants"] == 1
    assert rows[("p2",)]["accuracy"] == pytest.approx(5 / 8)
    result = analyze(frame, ["confidence"], n_boot=0, validated=True)
    assert [row["confidence"] for row in result.rows] == [1, 2, 3]
    assert [row["confidence"] for row in result.by_confidence] == [1, 2, 3]
