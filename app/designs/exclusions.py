"""Exclusion criteria (docs/protocol.md, Designs) evaluated on a participant's running summary."""

from __future__ import annotations

from dataclasses import dataclass

from app.designs.model import Design

PROLIFIC_MIN_STUDY_S = 300.0
"""Prolific: studies over 5 minutes need two failed attention checks before a rejection."""


@dataclass(frozen=True, slots=True)
class ParticipantSummary:
    """What the server knows about a participant so far (built from stored rows).

    Criteria whose inputs are None are not judged. Criteria that need the whole session
    (minimum total time, answers per button row, final catch accuracy) wait for `finished`.
    """

    finished: bool = False
    catch_correct: int = 0
    catch_answered: int = 0
    catch_planned: int | None = None
    """Catch trials in the schedule; lets a hopeless catch accuracy exclude early."""
    total_time_s: float | None = None
    """Consent to completion (or to now while running)."""
    instruction_time_s: float | None = None
    answers_upper: int = 0
    """Main, catch and repeated answers given with the upper button row."""
    answers_lower: int = 0
    practice_attempts: int = 0
    """Attempts of the repeat_until_correct practice block (largest over such blocks)."""
    practice_passed: bool | None = None
    """Whether an attempt ended all correct (None: no such practice or not over yet)."""
    study_duration_s: float | None = None
    """The study's advertised duration, for Prolific's rule (default: total_time_s)."""


def evaluate_exclusions(design: Design, summary: ParticipantSummary) -> list[str]:
    """Reasons to exclude a participant under the design's thresholds.

    Args:
        design: its `[exclusions]` thresholds are used; absent thresholds are not applied.
        summary: the participant's data so far (call again as data arrive).

    Returns:
        Human-readable reasons, in a fixed order; an empty list means included (so far).
    """
    rules = design.exclusions
    reasons: list[str] = []
    if rules.min_catch_accuracy is not None and summary.catch_answered > 0:
        threshold = rules.min_catch_accuracy
        failed = summary.catch_answered - summary.catch_correct
        min_failed = rules.min_failed_catch_to_exclude
        duration = (
            summary.study_duration_s
            if summary.study_duration_s is not None
            else summary.total_time_s
        )
        if rules.prolific_attention_rule and (duration is None or duration > PROLIFIC_MIN_STUDY_S):
            min_failed = max(min_failed, 2)
        if summary.finished:
            accuracy = summary.catch_correct / summary.catch_answered
            hopeless = accuracy < threshold
            total = summary.catch_answered
        elif summary.catch_planned:
            total = summary.catch_planned
            best = summary.catch_correct + (total - summary.catch_answered)
            accuracy = best / total
            hopeless = accuracy < threshold
        else:
            hopeless, accuracy, total = False, 1.0, summary.catch_answered
        if hopeless and failed >= min_failed:
            reasons.append(
                f"catch accuracy {summary.catch_correct}/{total} below {threshold:.2f}"
                f" ({failed} failed)"
            )
    if summary.total_time_s is not None:
        if (
            rules.min_total_time_s is not None
            and summary.finished
            and summary.total_time_s < rules.min_total_time_s
        ):
            reasons.append(
                f"total time {summary.total_time_s:.0f} s below {rules.min_total_time_s:.0f} s"
            )
        if rules.max_total_time_s is not None and summary.total_time_s > rules.max_total_time_s:
            reasons.append(
                f"total time {summary.total_time_s:.0f} s above {rules.max_total_time_s:.0f} s"
            )
    if (
        rules.min_instruction_time_s is not None
        and summary.instruction_time_s is not None
        and summary.instruction_time_s < rules.min_instruction_time_s
    ):
        reasons.append(
            f"instruction time {summary.instruction_time_s:.1f} s below "
            f"{rules.min_instruction_time_s:.0f} s"
        )
    if rules.min_answers_per_row is not None and summary.finished:
        for row, count in (("upper", summary.answers_upper), ("lower", summary.answers_lower)):
            if count < rules.min_answers_per_row:
                reasons.append(
                    f"{count} answers with the {row} button row (fewer than "
                    f"{rules.min_answers_per_row})"
                )
    if (
        rules.max_practice_attempts is not None
        and summary.practice_attempts > rules.max_practice_attempts
    ):
        reasons.append(
            f"{summary.practice_attempts} practice attempts (more than "
            f"{rules.max_practice_attempts})"
        )
    if rules.require_practice_passed and summary.practice_passed is False:
        reasons.append("practice never completed without errors")
    return reasons
