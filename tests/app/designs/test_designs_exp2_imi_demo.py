"""paper-exp2, imi and demo presets (docs/protocol.md, Designs): structure and counterbalancing."""

from __future__ import annotations

from collections import Counter

import pytest

from app.designs import (
    attempts_to_skip,
    check_design_against,
    design_timing,
    generate_schedule,
    load_design,
)
from app.schedule import Catalog

EXP2_WITH_RATINGS = load_design("paper-exp2")
# The 2-AFC part alone (the ratings are separate trials with streams of their own, so leaving
# them out changes nothing else; test_exp2_has_216_trials_each_set_once_per_condition has them).
EXP2 = EXP2_WITH_RATINGS.model_copy(
    update={"ratings": EXP2_WITH_RATINGS.ratings.model_copy(update={"start": None, "end": None})}
)
SETS = {name: set(EXP2.units[name].ids or ()) for name in ("set_a", "set_b", "set_c", "set_d")}
SET_E = set(EXP2.units["set_e"].ids or ())
GRIDS = ("max-1", "min-max-1", "max-9", "min-max-9")


def test_exp2_unit_sets_follow_protocol() -> None:
    assert all(len(ids) == 20 for ids in SETS.values()) and len(SET_E) == 20
    exp1_main = set(load_design("paper-exp1").units["main"].ids or ())
    assert SETS["set_a"] <= exp1_main
    layers = Counter(u.split(":")[0] for u in SETS["set_b"])
    assert layers == {f"mixed{x}": 4 for x in ("3a", "4a", "4c", "4e", "5b")}
    assert "mixed5b:913" in SETS["set_b"] and "mixed4e:6" in SETS["set_c"]


@pytest.mark.parametrize("p", range(1, 9))
def test_exp2_has_216_trials_each_set_once_per_condition(p: int) -> None:
    s = generate_schedule(EXP2_WITH_RATINGS, None, p)
    assert len([t for t in s.trials if t.task == "afc2"]) == 216
    kinds = Counter(t.trial_kind for t in s.trials if t.task == "afc2")
    assert kinds == {"practice": 24, "main": 160, "catch": 32}
    sets_seen = []
    for grid in GRIDS:
        per_type = []
        for rt in ("natural", "synthetic"):
            condition = f"{rt}-{grid}"
            main = [t for t in s.trials if t.condition == condition and t.trial_kind == "main"]
            assert len(main) == 20
            per_type.append(frozenset(t.unit_id for t in main))
            refs = {(t.reference_type, t.n_references, t.grid_mode) for t in main}
            assert refs == {
                (
                    rt,
                    1 if grid.endswith("-1") else 9,
                    "max_only" if grid.startswith("max") else "min_max",
                )
            }
            practice = [
                t for t in s.trials if t.condition == condition and t.trial_kind == "practice"
            ]
            assert len(practice) == 3
        assert per_type[0] == per_type[1]
        sets_seen.append(next(n for n, ids in SETS.items() if ids == per_type[0]))
    assert sorted(sets_seen) == sorted(SETS)
    assert {t.unit_id for t in s.trials if t.trial_kind == "catch"} <= SET_E
    for t in s.trials:
        if t.trial_kind == "catch":
            assert t.catch_query_indices is not None
            assert max(t.catch_query_indices) < t.n_references
    ratings = [(t.trial_index, t.condition) for t in s.trials if t.task == "rating"]
    n = len(s.trials)
    assert ratings == [(0, "start"), (1, "start"), (2, "start")] + [
        (n - 3, "end"),
        (n - 2, "end"),
        (n - 1, "end"),
    ]
    assert [b.kind for b in (s.blocks[0], s.blocks[-1])] == ["task", "task"]
    assert not s.blocks[-2].break_after  # the end ratings follow the last block directly


def _section_order(p: int) -> list[str]:
    s = generate_schedule(EXP2, None, p)
    order: list[str] = []
    for b in s.blocks:
        grid = b.condition.split("-", 1)[1]
        if grid not in order:
            order.append(grid)
    return order


def test_exp2_section_order_is_a_balanced_latin_square() -> None:
    rows = [_section_order(p) for p in range(1, 5)]
    for position in range(4):
        assert sorted(row[position] for row in rows) == sorted(GRIDS)
    pairs = Counter((row[i], row[i + 1]) for row in rows for i in range(3))
    assert len(pairs) == 12 and set(pairs.values()) == {1}
    assert _section_order(5) == _section_order(1)


def test_exp2_sets_rotate_and_natural_first_alternates_every_four() -> None:
    def set_of(p: int, grid: str) -> str:
        s = generate_schedule(EXP2, None, p)
        units = {
            t.unit_id
            for t in s.trials
            if t.condition == f"natural-{grid}" and t.trial_kind == "main"
        }
        return next(n for n, ids in SETS.items() if ids == units)

    for grid in GRIDS:
        assert sorted(set_of(p, grid) for p in range(1, 5)) == sorted(SETS)
    firsts = []
    for p in range(1, 9):
        s = generate_schedule(EXP2, None, p)
        firsts.append(s.blocks[0].condition.split("-")[0])
    assert firsts == ["natural"] * 4 + ["synthetic"] * 4


@pytest.mark.parametrize("p", range(1, 9))
def test_exp2_batches_disjoint_per_unit(p: int) -> None:
    s = generate_schedule(EXP2, None, p)
    seen: dict[str, set[int | None]] = {}
    for t in s.trials:
        if t.trial_kind == "main" and t.unit_id is not None:
            assert t.batch not in seen.setdefault(t.unit_id, set())
            seen[t.unit_id].add(t.batch)
    assert {t.batch for t in s.trials if t.trial_kind != "main"} == {0}


IMI = load_design("imi")


def test_imi_is_between_subject_with_reserved_practice_attempts() -> None:
    assert IMI.arms == ("natural", "synthetic")
    assert design_timing(IMI)["response_lock_ms"] == 1500
    assert IMI.free_text_feedback
    s = generate_schedule(IMI, None, 1, arm="synthetic")
    assert {t.condition for t in s.trials} == {"synthetic"}
    practice_blocks = [b for b in s.blocks if b.kind == "practice"]
    assert [b.attempt for b in practice_blocks] == [1, 2, 3, 4, 5]
    assert all(b.repeat_until_correct and b.max_attempts == 5 for b in practice_blocks)
    first = [t for t in s.trials if t.block_index == 0]
    again = [t for t in s.trials if t.block_index == 1]
    assert sorted(t.unit_id or "" for t in first) == sorted(t.unit_id or "" for t in again)
    assert [t.query_order for t in first] != [t.query_order for t in again] or [
        t.unit_id for t in first
    ] != [t.unit_id for t in again]
    main = [t for t in s.trials if t.block_index == 5]
    assert Counter(t.trial_kind for t in main) == {"main": 40, "catch": 5}
    assert all(t.catch_query_indices is None for t in main)
    assert {t.batch for t in s.trials} == {1}
    with pytest.raises(ValueError, match="arm"):
        generate_schedule(IMI, None, 1)


def test_attempts_to_skip_after_a_passed_attempt() -> None:
    s = generate_schedule(IMI, None, 1, arm="natural")
    assert attempts_to_skip(s, 0, all_correct=True) == (1, 2, 3, 4)
    assert attempts_to_skip(s, 2, all_correct=True) == (3, 4)
    assert attempts_to_skip(s, 4, all_correct=True) == ()
    assert attempts_to_skip(s, 0, all_correct=False) == ()
    assert attempts_to_skip(s, 5, all_correct=True) == ()


def test_demo_preset_without_catalog_uses_demo_units() -> None:
    demo = load_design("demo")
    s = generate_schedule(demo, None, 1)
    assert len(s.trials) == 13
    assert [(b.kind, b.n_trials) for b in s.blocks] == [("practice", 2), ("main", 5), ("main", 6)]
    assert s.blocks[1].block_feedback and s.blocks[1].break_after
    assert {t.unit_id for t in s.trials} == {f"demo:{i}" for i in range(13)}
    catch = [t for t in s.trials if t.trial_kind == "catch"]
    assert len(catch) == 1 and catch[0].block_index == 2 and catch[0].unit_id == "demo:12"
    assert all(t.reference_type == "natural" and t.n_references == 9 for t in s.trials)


def test_demo_preset_with_catalog_takes_units_by_role(make_unit) -> None:  # type: ignore[no-untyped-def]
    demo = load_design("demo")
    units = [make_unit(f"l:{i}", roles=("main",), batches=(0, 1, 2)) for i in range(12)]
    units += [make_unit(f"p:{i}", roles=("practice", "catch"), batches=(0,)) for i in range(3)]
    catalog = Catalog(stimulus_set="demo-set", units=tuple(units))
    check_design_against(demo, catalog)
    s = generate_schedule(demo, catalog, 3)
    main = {t.unit_id for t in s.trials if t.trial_kind == "main"}
    assert main == {f"l:{i}" for i in range(10)}
    assert {t.unit_id for t in s.trials if t.trial_kind == "practice"} == {"p:0", "p:1"}
    assert {t.unit_id for t in s.trials if t.trial_kind == "catch"} == {"p:0"}
    assert {t.batch for t in s.trials if t.trial_kind == "main"} in ({1}, {2})


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_williams_rows_are_latin_and_carry_over_balanced(n: int) -> None:
    from app.designs.plan import williams_rows

    rows = williams_rows(n)
    assert len(rows) == (n if n % 2 == 0 else 2 * n)
    for row in rows:
        assert sorted(row) == list(range(n))
    for position in range(n):
        assert Counter(row[position] for row in rows) == {s: len(rows) // n for s in range(n)}
    pairs = Counter((row[i], row[i + 1]) for row in rows for i in range(n - 1))
    assert len(pairs) == n * (n - 1) and len(set(pairs.values())) == 1


def test_section_group_reorders_only_its_sections() -> None:
    from app.designs import parse_design

    text = """
seed = 3
[conditions.a]
reference_type = "natural"
[conditions.b]
reference_type = "synthetic"
[conditions.c]
reference_type = "none"
[section_order]
mode = "random"
group = ["s2", "s3"]
[[sections]]
name = "s1"
blocks = [{ kind = "main", condition = "c", n_trials = 2 }]
[[sections]]
name = "s2"
blocks = [{ kind = "main", condition = "a", n_trials = 2 }]
[[sections]]
name = "s3"
blocks = [{ kind = "main", condition = "b", n_trials = 2 }]
"""
    design = parse_design(text, "groups")
    orders = {
        tuple(b.condition for b in generate_schedule(design, None, p).blocks) for p in range(1, 20)
    }
    assert orders == {("c", "a", "b"), ("c", "b", "a")}
