"""Statistics of a response table (docs/protocol.md, Analysis): accuracy, RT, confidence, catch trials, tests.

All functions take a frame typed by `app.analysis.load.coerce_frame` unless they say otherwise,
and return plain dicts (JSON-ready: Python scalars, None for undefined values) or DataFrames.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from app.analysis.load import PARTICIPANT_KEY, AnalysisInputError, coerce_frame
from app.export_format import DERIVED_COLUMNS

logger = logging.getLogger(__name__)

Z_95 = 1.96
"""Multiplier of the SEM for the 95 % interval the paper reports (mean ± 1.96·SEM)."""
CHANCE = 0.5
"""Chance level of the 2-AFC task."""
DEFAULT_BY: tuple[str, ...] = ("condition",)
DEFAULT_N_BOOT = 10_000
DEFAULT_SEED = 0
CI_LEVEL = 0.95
SD_TOLERANCE = 1e-12
"""SDs of per-participant differences below this count as zero (floating-point noise)."""
MAX_BOOT_CELLS = 2_000_000
"""Resampled values drawn per chunk in `bootstrap_mean_ci` (bounds memory, not results)."""

UNIT_COLUMN = "_unit"
_ALL_COLUMN = "_all"

# End (exclusive) of the 1x1, 3x3, 5x5 and pool branch in InceptionV1's pre-ReLU concatenation
# (docs/protocol.md, Stimuli); lets `--by branch` work on files that only carry layer and channel.
INCEPTION_V1_BRANCH_ENDS: dict[str, tuple[int, int, int, int]] = {
    "mixed3a": (64, 192, 224, 256),
    "mixed3b": (128, 320, 416, 480),
    "mixed4a": (192, 396, 444, 508),
    "mixed4b": (160, 384, 448, 512),
    "mixed4c": (128, 384, 448, 512),
    "mixed4d": (112, 400, 464, 528),
    "mixed4e": (256, 576, 704, 832),
    "mixed5a": (256, 576, 704, 832),
    "mixed5b": (384, 768, 896, 1024),
}
BRANCH_NAMES = ("1x1", "3x3", "5x5", "pool")


@dataclass(frozen=True, slots=True)
class MeanSem:
    """Mean over independent values (participants) with its standard error.

    Attributes:
        mean: Arithmetic mean (NaN when n = 0).
        sd: Sample standard deviation, ddof 1 (NaN when n < 2).
        sem: sd / √n (NaN when n < 2).
        n: Number of values.
    """

    mean: float
    sd: float
    sem: float
    n: int

    @property
    def ci(self) -> float:
        """Half-width of the 95 % interval, 1.96·SEM."""
        return Z_95 * self.sem


@dataclass(slots=True)
class Analysis:
    """Everything `psychvis analyze` reports for one table.

    Attributes:
        by: Grouping columns.
        rows: One dict per group (see `analyze_frame`).
        by_confidence: Accuracy per group and confidence level.
        paired_tests: Natural vs synthetic paired tests, one per stratum.
        catch_by_participant: Catch-trial accuracy of every participant (excluded ones too).
        summary: Counts and settings of the run.
    """

    by: tuple[str, ...]
    rows: list[dict[str, Any]] = field(default_factory=list)
    by_confidence: list[dict[str, Any]] = field(default_factory=list)
    paired_tests: list[dict[str, Any]] = field(default_factory=list)
    catch_by_participant: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def mean_sem(values: Iterable[float]) -> MeanSem:
    """Mean, SD (ddof 1) and SEM = SD/√n of the finite values given.

    Args:
        values: One value per independent unit (usually per participant); NaNs are dropped.

    Returns:
        The statistics; undefined ones are NaN.
    """
    array = np.asarray(list(values), dtype=float)
    array = array[np.isfinite(array)]
    n = int(array.size)
    if n == 0:
        return MeanSem(math.nan, math.nan, math.nan, 0)
    mean = float(array.mean())
    if n < 2:
        return MeanSem(mean, math.nan, math.nan, n)
    sd = float(array.std(ddof=1))
    return MeanSem(mean, sd, sd / math.sqrt(n), n)


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = DEFAULT_SEED,
    level: float = CI_LEVEL,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (IMI style: resample units with replacement).

    Args:
        values: One value per unit (e.g. per-unit proportion correct).
        n_boot: Number of resamples; 0 skips the bootstrap.
        seed: Seed of `numpy.random.default_rng`; same inputs and seed give the same interval.
        level: Coverage of the interval.

    Returns:
        (lower, upper): the (1−level)/2 and (1+level)/2 quantiles of the resampled means;
        (nan, nan) when there are no values or `n_boot` is 0.
    """
    array = np.asarray(values, dtype=float)
    n = int(array.size)
    if n == 0 or n_boot <= 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot, dtype=float)
    chunk = max(1, MAX_BOOT_CELLS // n)
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        draws = rng.integers(0, n, size=(size, n))
        means[start : start + size] = array[draws].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lower, upper = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lower), float(upper)


def paired_test(natural: Sequence[float], synthetic: Sequence[float]) -> dict[str, Any]:
    """Paired comparison of per-participant accuracies (natural vs synthetic).

    Args:
        natural: Accuracy of each participant with natural references.
        synthetic: Accuracy of the same participants, same order, with synthetic references.

    Returns:
        `n_pairs`, `accuracy_natural`, `accuracy_synthetic`, `difference` (natural − synthetic,
        mean over participants), `difference_ci` (1.96·SEM of the differences), `t`, `df`, `p_t`
        (`scipy.stats.ttest_rel`, two-sided; None when the differences have SD 0), `wilcoxon_w`,
        `p_wilcoxon` (`scipy.stats.wilcoxon` with its defaults: zero differences dropped,
        two-sided; None when all differences are zero). Undefined values are None.
    """
    nat = np.asarray(natural, dtype=float)
    syn = np.asarray(synthetic, dtype=float)
    if nat.shape != syn.shape:
        raise ValueError("natural and synthetic need one value per participant each")
    diff = mean_sem(nat - syn)
    t = p_t = w = p_w = math.nan
    n = int(nat.size)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        # Identical differences (SD 0, up to rounding) make t infinite: report it undefined.
        if n >= 2 and diff.sd > SD_TOLERANCE:
            result = scipy_stats.ttest_rel(nat, syn)
            t, p_t = float(result.statistic), float(result.pvalue)
        # With every difference zero, Wilcoxon's test (zeros dropped) has no data; older scipy
        # raises, newer returns p = 1. Report it undefined either way.
        if n >= 2 and np.any(nat != syn):
            wres = scipy_stats.wilcoxon(nat, syn)
            w, p_w = float(wres.statistic), float(wres.pvalue)
    return {
        "n_pairs": n,
        "accuracy_natural": _num(mean_sem(nat).mean),
        "accuracy_synthetic": _num(mean_sem(syn).mean),
        "difference": _num(diff.mean),
        "difference_ci": _num(diff.ci),
        "t": _num(t),
        "df": n - 1 if n >= 2 else None,
        "p_t": _num(p_t),
        "wilcoxon_w": _num(w),
        "p_wilcoxon": _num(p_w),
    }


def add_derived_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with `branch` (InceptionV1 branch or "") and the unit key `_unit`.

    `_unit` is `layer:channel` when both are present, else `unit_label`, else "".
    """
    out = frame.copy()
    layer = out["layer"].astype(str)
    channel = out["channel"]
    has_channel = channel.notna().to_numpy()
    branches = [
        _branch(lay, int(ch)) if ok else ""
        for lay, ch, ok in zip(layer, channel.fillna(-1), has_channel, strict=True)
    ]
    out["branch"] = pd.Series(branches, index=out.index, dtype=object)
    layer_channel = layer + ":" + channel.astype("string").fillna("")
    use_layer = (layer != "") & channel.notna()
    out[UNIT_COLUMN] = layer_channel.where(use_layer, out["unit_label"].astype(str)).astype(object)
    return out


def _branch(layer: str, channel: int) -> str:
    ends = INCEPTION_V1_BRANCH_ENDS.get(layer)
    if ends is None or channel < 0:
        return ""
    for name, end in zip(BRANCH_NAMES, ends, strict=True):
        if channel < end:
            return name
    return ""


def needed_columns(by: Sequence[str]) -> tuple[str, ...]:
    """Export columns that grouping by `by` relies on (`branch` is derived from two)."""
    needed: list[str] = []
    for column in by:
        needed += ["layer", "channel"] if column == "branch" else [column]
    return tuple(dict.fromkeys(needed))


def excluded_participants(frame: pd.DataFrame) -> set[tuple[Any, ...]]:
    """Participants with `excluded` true on any of their rows, as (experiment, participant)."""
    marked = frame.loc[frame["excluded"], list(PARTICIPANT_KEY)].drop_duplicates()
    return {tuple(row) for row in marked.itertuples(index=False, name=None)}


def select_trials(
    frame: pd.DataFrame, kinds: Sequence[str], *, include_excluded: bool = False
) -> pd.DataFrame:
    """Rows of the given trial kinds, without excluded participants unless asked for."""
    keep = frame["trial_kind"].isin(list(kinds))
    if not include_excluded:
        excluded = excluded_participants(frame)
        if excluded:
            keys = pd.Series(
                list(frame[list(PARTICIPANT_KEY)].itertuples(index=False, name=None)),
                index=frame.index,
            )
            keep &= ~keys.isin(excluded)
    return frame.loc[keep]


def participant_table(trials: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Per participant and group: trial count, proportion correct, mean RT, mean confidence.

    Args:
        trials: Selected trials (e.g. main trials of included participants).
        by: Grouping columns; may be empty.

    Returns:
        One row per (group, participant) with columns `*by`, `experiment`, `participant`,
        `n_trials`, `accuracy` (proportion correct), `mean_rt_ms`, `mean_rt_correct_ms` (NaN
        when no trial was correct), `mean_confidence`.
    """
    work, keys = _with_group_keys(trials, by)
    keys = list(dict.fromkeys([*keys, *PARTICIPANT_KEY]))  # `by` may name participant columns
    grouped = work.groupby(keys, dropna=False, sort=True)
    table = grouped.agg(
        n_trials=("correct", "size"),
        accuracy=("correct", "mean"),
        mean_rt_ms=("rt_ms", "mean"),
        mean_confidence=("confidence", "mean"),
    )
    correct = work.loc[work["correct"]]
    rt_correct = correct.groupby(keys, dropna=False, sort=True)["rt_ms"].mean()
    table["mean_rt_correct_ms"] = rt_correct.reindex(table.index)
    table = table.reset_index()
    for column in ("accuracy", "mean_rt_ms", "mean_rt_correct_ms", "mean_confidence"):
        table[column] = table[column].astype(float)
    return table


def group_summary(ptable: pd.DataFrame, by: Sequence[str]) -> list[dict[str, Any]]:
    """Mean over participants (± SEM, ± 1.96·SEM for accuracy) of a `participant_table`.

    Returns:
        One dict per group, sorted by the group values: the group columns, `n_participants`,
        `n_trials`, `accuracy`, `accuracy_sem`, `accuracy_ci`, `rt_ms`, `rt_ms_sem`,
        `rt_correct_ms`, `rt_correct_ms_sem`, `confidence`, `confidence_sem`.
    """
    work, keys = _with_group_keys(ptable, by)
    rows: list[dict[str, Any]] = []
    for key, group in work.groupby(keys, dropna=False, sort=True):
        accuracy = mean_sem(group["accuracy"])
        rt = mean_sem(group["mean_rt_ms"])
        rt_correct = mean_sem(group["mean_rt_correct_ms"])
        confidence = mean_sem(group["mean_confidence"])
        row = _group_values(by, key)
        stats = {
            "n_participants": accuracy.n,
            "n_trials": int(group["n_trials"].sum()),
            "accuracy": _num(accuracy.mean),
            "accuracy_sem": _num(accuracy.sem),
            "accuracy_ci": _num(accuracy.ci),
            "rt_ms": _num(rt.mean),
            "rt_ms_sem": _num(rt.sem),
            "rt_correct_ms": _num(rt_correct.mean),
            "rt_correct_ms_sem": _num(rt_correct.sem),
            "confidence": _num(confidence.mean),
            "confidence_sem": _num(confidence.sem),
        }
        # A group column (e.g. `confidence` in accuracy-by-confidence) keeps its group value.
        row.update({name: value for name, value in stats.items() if name not in row})
        rows.append(row)
    return rows


def unit_summary(
    trials: pd.DataFrame, by: Sequence[str], *, n_boot: int, seed: int
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """IMI-style accuracy: per-unit proportion correct, mean over units, bootstrap CI over units.

    Args:
        trials: Selected trials with the `_unit` column of `add_derived_columns`.
        by: Grouping columns.
        n_boot: Bootstrap resamples (0: no interval).
        seed: Bootstrap seed, used afresh for every group.

    Returns:
        Group key (tuple of group values) -> `n_units`, `unit_accuracy`,
        `unit_accuracy_ci_low`, `unit_accuracy_ci_high`.
    """
    with_unit = trials.loc[trials[UNIT_COLUMN] != ""]
    work, keys = _with_group_keys(with_unit, by)
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for key, group in work.groupby(keys, dropna=False, sort=True):
        per_unit = group.groupby(UNIT_COLUMN, sort=True)["correct"].mean().to_numpy(float)
        low, high = bootstrap_mean_ci(per_unit, n_boot=n_boot, seed=seed)
        out[_key_tuple(by, key)] = {
            "n_units": int(per_unit.size),
            "unit_accuracy": _num(float(per_unit.mean())),
            "unit_accuracy_ci_low": _num(low),
            "unit_accuracy_ci_high": _num(high),
        }
    return out


def accuracy_by_confidence(trials: pd.DataFrame, by: Sequence[str]) -> list[dict[str, Any]]:
    """Accuracy given confidence: per participant, group and level, then over participants.

    Participants who never used a level do not count for that level; trials without a valid
    confidence are left out.

    Returns:
        One dict per group and confidence level: the group columns, `confidence`,
        `n_participants`, `n_trials`, `accuracy`, `accuracy_sem`, `accuracy_ci`.
    """
    keys = list(dict.fromkeys([*by, "confidence"]))
    rated = trials.loc[trials["confidence"].notna()]
    if rated.empty:
        return []
    rows = group_summary(participant_table(rated, keys), keys)
    wanted = (*keys, "n_participants", "n_trials")
    return [
        {k: row[k] for k in wanted}
        | {k: row[k] for k in ("accuracy", "accuracy_sem", "accuracy_ci")}
        for row in rows
    ]


def paired_tests(trials: pd.DataFrame, by: Sequence[str]) -> list[dict[str, Any]]:
    """Natural vs synthetic paired tests on per-participant accuracy.

    Strata are the `by` columns other than `condition` and `reference_type` (so `--by condition`
    gives one overall test, `--by reference_type,n_references,grid_mode` one test per
    n_references × grid_mode, `--by layer` one per layer). Only participants with trials of both
    reference types in a stratum enter it.

    Returns:
        One dict per stratum that has both reference types: the stratum columns and the fields
        of `paired_test`. Empty when the trials lack one of the two reference types.
    """
    strata = [column for column in by if column not in ("condition", "reference_type")]
    subset = trials.loc[trials["reference_type"].isin(["natural", "synthetic"])]
    if subset["reference_type"].nunique() < 2:
        return []
    ptable = participant_table(subset, [*strata, "reference_type"])
    work, keys = _with_group_keys(ptable, strata)
    rows: list[dict[str, Any]] = []
    for key, group in work.groupby(keys, dropna=False, sort=True):
        wide = group.pivot_table(
            index=list(PARTICIPANT_KEY), columns="reference_type", values="accuracy"
        )
        if not {"natural", "synthetic"} <= set(wide.columns):
            continue
        wide = wide.dropna(subset=["natural", "synthetic"])
        if wide.empty:
            continue
        row = _group_values(strata, key)
        row.update(paired_test(wide["natural"].to_numpy(), wide["synthetic"].to_numpy()))
        rows.append(row)
    return rows


def catch_by_participant(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Catch-trial accuracy of every participant, excluded ones included (to judge exclusions).

    Returns:
        One dict per participant with catch trials: `experiment`, `participant`, `n_catch`,
        `catch_accuracy`, `excluded`.
    """
    catch = frame.loc[frame["trial_kind"] == "catch"]
    excluded = excluded_participants(frame)
    rows = []
    for key, group in catch.groupby(list(PARTICIPANT_KEY), sort=True):
        rows.append(
            {
                "experiment": key[0],
                "participant": key[1],
                "n_catch": int(len(group)),
                "catch_accuracy": float(group["correct"].mean()),
                "excluded": tuple(key) in excluded,
            }
        )
    return rows


def analyze_frame(
    frame: pd.DataFrame,
    by: Sequence[str] = DEFAULT_BY,
    *,
    include_excluded: bool = False,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = DEFAULT_SEED,
    strict: bool = False,
) -> list[dict[str, Any]]:
    """Per-group summary rows of a response table (what `--format json` prints).

    Args:
        frame: Response table, raw CSV text or typed (validated here).
        by: Grouping columns (export columns or `branch`); empty for one overall row.
        include_excluded: Keep participants marked excluded.
        n_boot: Bootstrap resamples for the per-unit interval (0: none).
        seed: Bootstrap seed.
        strict: Refuse any invalid value (see `coerce_frame`).

    Returns:
        One dict per group of main trials, sorted by group values, with the group columns,
        `n_participants`, `n_trials`, `accuracy` (proportion correct 0–1, mean over participants),
        `accuracy_sem`, `accuracy_ci` (1.96·SEM half-width), `rt_ms`, `rt_ms_sem`,
        `rt_correct_ms`, `rt_correct_ms_sem`, `confidence`, `confidence_sem`, `n_units`,
        `unit_accuracy`, `unit_accuracy_ci_low`, `unit_accuracy_ci_high`,
        `catch_n_participants`, `catch_accuracy`, `catch_accuracy_ci`. Undefined values are None.

    Raises:
        AnalysisInputError: Invalid table, unknown `by` column, or no main trials left.
    """
    return analyze(
        frame, by, include_excluded=include_excluded, n_boot=n_boot, seed=seed, strict=strict
    ).rows


def analyze(
    frame: pd.DataFrame,
    by: Sequence[str] = DEFAULT_BY,
    *,
    include_excluded: bool = False,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = DEFAULT_SEED,
    validated: bool = False,
    strict: bool = False,
) -> Analysis:
    """Run the whole analysis of docs/protocol.md, Analysis on a response table.

    Args:
        frame: Response table (validated with `coerce_frame` unless `validated`).
        by: Grouping columns.
        include_excluded: Keep participants marked excluded.
        n_boot: Bootstrap resamples for the per-unit interval.
        seed: Bootstrap seed.
        validated: The frame already comes from `read_responses`/`coerce_frame`.
        strict: Validate as `coerce_frame(strict=True)` (refuse any invalid value).

    Returns:
        The `Analysis` with rows, accuracy by confidence, paired tests and catch accuracy.

    Raises:
        AnalysisInputError: Invalid table, unknown `by` column, or no main trials left.
    """
    by = tuple(by)
    typed = frame if validated else coerce_frame(frame, needed=needed_columns(by), strict=strict)
    data = add_derived_columns(typed)
    unknown = [column for column in by if column not in data.columns or column.startswith("_")]
    if unknown:
        available = ", ".join([*typed.columns, *DERIVED_COLUMNS])
        raise AnalysisInputError(
            f"unknown grouping column(s): {', '.join(unknown)}; available: {available}"
        )
    if len(set(by)) != len(by):
        raise AnalysisInputError(f"grouping column named twice: {', '.join(by)}")
    main = select_trials(data, ["main"], include_excluded=include_excluded)
    if main.empty:
        hint = "" if include_excluded else " (all participants with main trials are excluded?)"
        raise AnalysisInputError("no main trials to analyse" + hint)
    catch = select_trials(data, ["catch"], include_excluded=include_excluded)

    rows = group_summary(participant_table(main, by), by)
    units = unit_summary(main, by, n_boot=n_boot, seed=seed)
    catch_rows = {
        _key_tuple(by, tuple(row[c] for c in by)): row
        for row in (group_summary(participant_table(catch, by), by) if not catch.empty else [])
    }
    for row in rows:
        key = _key_tuple(by, tuple(row[c] for c in by))
        row.update(
            units.get(
                key,
                {
                    "n_units": 0,
                    "unit_accuracy": None,
                    "unit_accuracy_ci_low": None,
                    "unit_accuracy_ci_high": None,
                },
            )
        )
        catch_row = catch_rows.get(key)
        row["catch_n_participants"] = catch_row["n_participants"] if catch_row else 0
        row["catch_accuracy"] = catch_row["accuracy"] if catch_row else None
        row["catch_accuracy_ci"] = catch_row["accuracy_ci"] if catch_row else None

    excluded = excluded_participants(data)
    overall_catch = (
        mean_sem(participant_table(catch, [])["accuracy"]) if not catch.empty else mean_sem([])
    )
    summary = {
        "by": list(by),
        "n_rows": int(len(data)),
        "n_main_trials": int(len(main)),
        "n_participants": int(main[list(PARTICIPANT_KEY)].drop_duplicates().shape[0]),
        "n_excluded_participants": len(excluded),
        "include_excluded": include_excluded,
        "catch_accuracy": _num(overall_catch.mean),
        "catch_accuracy_ci": _num(overall_catch.ci),
        "catch_n_participants": overall_catch.n,
        "n_boot": n_boot,
        "seed": seed,
    }
    logger.info(
        "analysis done",
        extra={"groups": len(rows), "main_trials": len(main), "by": ",".join(by)},
    )
    return Analysis(
        by=by,
        rows=rows,
        by_confidence=accuracy_by_confidence(main, by),
        paired_tests=paired_tests(main, by),
        catch_by_participant=catch_by_participant(data),
        summary=summary,
    )


def _with_group_keys(frame: pd.DataFrame, by: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """Return the frame and groupby keys; a constant key stands in for an empty `by`."""
    if by:
        return frame, list(by)
    return frame.assign(**{_ALL_COLUMN: ""}), [_ALL_COLUMN]


def _key_tuple(by: Sequence[str], key: Any) -> tuple[Any, ...]:
    if not by:
        return ()
    values = key if isinstance(key, tuple) else (key,)
    return tuple(_native(value) for value in values)


def _group_values(by: Sequence[str], key: Any) -> dict[str, Any]:
    return dict(zip(by, _key_tuple(by, key), strict=True))


def _native(value: Any) -> Any:
    """Plain Python scalar for JSON: numpy scalars unwrapped, timestamps as ISO 8601 text,
    missing values -> None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _num(value: float) -> float | None:
    """The value as a float, or None when it is undefined (NaN or infinite)."""
    return None if value is None or not math.isfinite(value) else float(value)
