"""Run-time rules: repeated trials, balanced arms, exclusions."""

from __future__ import annotations

import random

import pytest

from app.designs import (
    AnsweredTrial,
    ParticipantSummary,
    choose_arm,
    evaluate_exclusions,
    fill_repeated,
    generate_schedule,
    load_design,
    parse_design,
)
from app.schedule import Schedule

EXP1 = load_design("paper-exp1")
IMI = load_design("imi")


def answer_all(s: Schedule, confidence_of: dict[int, int] | None = None) -> list[AnsweredTrial]:
    rng = random.Random(0)
    answers = []
    for t in s.trials:
        if t.trial_kind == "repeated":
            continue
        conf = (confidence_of or {}).get(t.trial_index, rng.choice((1, 2, 3)))
        answers.append(
            AnsweredTrial(
                trial_index=t.trial_index,
                trial_kind=t.trial_kind,
                condition=t.condition,
                unit_id=t.unit_id,
                batch=t.batch,
                response="upper",
                confidence=conf,
                correct=rng.random() < 0.8,
            )
        )
    return answers


def test_repeated_trials_are_the_participants_least_and_most_confident() -> None:
    s = generate_schedule(EXP1, None, 2)
    mains = [t for t in s.trials if t.trial_kind == "main"]
    # Unique confidences per condition: exactly 3 trials at 1, 3 at 3, the rest at 2.
    confidence: dict[int, int] = {}
    for condition in ("none", "natural", "synthetic"):
        own = [t for t in mains if t.condition == condition]
        for k, t in enumerate(own):
            confidence[t.trial_index] = 1 if k < 3 else 3 if k >= len(own) - 3 else 2
    answers = answer_all(s, confidence)
    filled = fill_repeated(s, answers)
    slots = [t for t in s.trials if t.trial_kind == "repeated"]
    assert [t.trial_index for t in filled] == [t.trial_index for t in slots]
    by_index = {a.trial_index: a for a in answers}
    for t, slot in zip(filled, slots, strict=True):
        original = by_index[t.repeat_of_trial_index or -1]
        assert original.trial_kind == "main" and original.condition == t.condition == slot.condition
        assert (t.unit_id, t.batch) == (original.unit_id, original.batch)
        assert t.query_order == slot.query_order and t.block_index == slot.block_index
    for condition in ("none", "natural", "synthetic"):
        chosen = [
            by_index[t.repeat_of_trial_index or -1] for t in filled if t.condition == condition
        ]
        assert sorted(a.confidence for a in chosen) == [1, 1, 1, 3, 3, 3]
        assert len({a.trial_index for a in chosen}) == 6


def test_fill_repeated_breaks_ties_by_seed_and_ignores_answer_order() -> None:
    s = generate_schedule(EXP1, None, 4)
    answers = answer_all(s)
    filled = fill_repeated(s, answers)
    assert fill_repeated(s, list(reversed(answers))) == filled
    chosen = {t.repeat_of_trial_index for t in filled}
    kinds = {a.trial_index: a.trial_kind for a in answers}
    assert {kinds[i] for i in chosen if i is not None} == {"main"}
    other = generate_schedule(EXP1.model_copy(update={"seed": "x"}), None, 4)
    assert {t.repeat_of_trial_index for t in fill_repeated(other, answer_all(other))} != chosen


def test_fill_repeated_needs_enough_answers() -> None:
    s = generate_schedule(EXP1, None, 1)
    answers = [a for a in answer_all(s) if a.condition != "natural"]
    with pytest.raises(ValueError, match="natural"):
        fill_repeated(s, answers)


def test_choose_arm_least_filled_with_quotas_and_seeded_ties() -> None:
    design = parse_design(
        IMI_TEXT_WITH_QUOTAS,
        "imi-quota",
    )
    assert choose_arm(design, {"natural": 3, "synthetic": 1}, 9) == "synthetic"
    assert choose_arm(design, {"natural": 1, "synthetic": 0}, 9) == "synthetic"
    assert choose_arm(design, {"natural": 1, "synthetic": 2}, 9) == "natural"
    assert choose_arm(design, {"natural": 2, "synthetic": 2}, 9) == "synthetic"  # natural is full
    assert choose_arm(design, {"natural": 2, "synthetic": 3}, 9) is None
    ties = {choose_arm(design, {}, p) for p in range(1, 30)}
    assert ties == {"natural", "synthetic"}
    assert [choose_arm(design, {}, p) for p in range(1, 9)] == [
        choose_arm(design, {}, p) for p in range(1, 9)
    ]
    assert choose_arm(EXP1, {}, 1) is None


IMI_TEXT_WITH_QUOTAS = """
seed = 7
arms = ["natural", "synthetic"]
quotas = { natural = 2, synthetic = 3 }
[conditions.natural]
reference_type = "natural"
[conditions.synthetic]
reference_type = "synthetic"
[[blocks]]
kind = "main"
condition = "{arm}"
n_trials = 4
"""


def test_imi_exclusions_use_protocol_thresholds() -> None:
    good = ParticipantSummary(
        finished=True,
        catch_correct=4,
        catch_answered=5,
        total_time_s=600,
        instruction_time_s=30,
        answers_upper=20,
        answers_lower=25,
        practice_attempts=2,
        practice_passed=True,
    )
    assert evaluate_exclusions(IMI, good) == []
    bad = ParticipantSummary(
        finished=True,
        catch_correct=3,
        catch_answered=5,
        total_time_s=100,
        instruction_time_s=10,
        answers_upper=43,
        answers_lower=2,
        practice_attempts=4,
    )
    reasons = evaluate_exclusions(IMI, bad)
    assert len(reasons) == 5
    assert reasons[0].startswith("catch accuracy 3/5 below 0.80")
    assert "total time 100 s below 135 s" in reasons
    assert "instruction time 10.0 s below 15 s" in reasons
    assert any("lower button row" in r for r in reasons)
    assert "4 practice attempts (more than 3)" in reasons
    late = ParticipantSummary(finished=True, total_time_s=2600, answers_upper=20, answers_lower=20)
    assert evaluate_exclusions(IMI, late) == ["total time 2600 s above 2500 s"]


def test_exclusions_while_running_judge_only_what_is_known() -> None:
    running = ParticipantSummary(
        catch_correct=0, catch_answered=1, catch_planned=5, total_time_s=60, answers_lower=0
    )
    assert evaluate_exclusions(IMI, running) == []
    hopeless = ParticipantSummary(catch_correct=0, catch_answered=2, catch_planned=5)
    assert evaluate_exclusions(IMI, hopeless) == ["catch accuracy 0/5 below 0.80 (2 failed)"]
    assert evaluate_exclusions(EXP1, hopeless) == []


def test_prolific_rule_needs_two_failed_checks_in_long_studies() -> None:
    text = (
        IMI_TEXT_WITH_QUOTAS
        + """
[exclusions]
min_catch_accuracy = 1.0
prolific_attention_rule = true
"""
    )
    design = parse_design(text, "prolific")
    one_failed = ParticipantSummary(
        finished=True, catch_correct=4, catch_answered=5, total_time_s=900
    )
    two_failed = ParticipantSummary(
        finished=True, catch_correct=3, catch_answered=5, total_time_s=900
    )
    short = ParticipantSummary(
        finished=True, catch_correct=4, catch_answered=5, total_time_s=200, study_duration_s=240
    )
    assert evaluate_exclusions(design, one_failed) == []
    assert evaluate_exclusions(design, two_failed) != []
    assert evaluate_exclusions(design, short) != []
