"""Turn a design into one participant's schedule, and fill its repeated trials at run time.

Everything is a pure function of (design, catalog, participant number, arm) and, for the
repeated trials, the participant's answers: the same inputs give the same schedule anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from app.designs.model import BlockKind, Design, UnitList
from app.designs.plan import (
    PlannedBlock,
    Rng,
    period,
    plan_blocks,
    possible_values,
    stream,
    variable_choices,
)
from app.schedule import (
    BlockSpec,
    Catalog,
    QueryOrder,
    Schedule,
    TrialKind,
    TrialSpec,
)
from app.tasks import task_of

STANDARD_LISTS = ("main", "practice", "catch", "intuitiveness")
"""List names usable without declaring them: they take the stimulus set's units of that role."""
TASK_BLOCK_PLACEHOLDERS = 3
"""Placeholder units made for a task block's list of role units when no stimulus set is
given (the intuitiveness ratings' three units)."""


@dataclass(frozen=True, slots=True)
class AnsweredTrial:
    """One answered trial, as `fill_repeated` needs it (the server builds these from its rows)."""

    trial_index: int
    trial_kind: TrialKind
    condition: str
    unit_id: str | None
    batch: int | None
    response: str
    """`upper` or `lower`."""
    confidence: int
    """1 (guess) .. 3 (sure), for the chosen side: the paper's signed scale without its sign."""
    correct: bool


@dataclass
class Usage:
    """What a design draws from its unit lists, over every counterbalancing combination."""

    draws: dict[tuple[str, str, BlockKind], int] = field(default_factory=dict)
    """(list, condition, kind) -> most trials one participant draws."""
    main_totals: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    """(list, condition) -> main-trial totals seen (before remainder rotation)."""
    main_blocks: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(list, condition) -> paths of the main blocks drawing from it."""
    catch_conditions: set[str] = field(default_factory=set)
    catch_max: int = 0
    catch_paths: list[str] = field(default_factory=list)
    group_conditions: dict[str, int] = field(default_factory=dict)
    """group list -> most conditions one participant draws from it."""
    main_per_condition: dict[str, int] = field(default_factory=dict)
    """condition -> fewest main trials one participant gets (for repeated trials)."""
    main_lists: set[str] = field(default_factory=set)
    main_conditions: set[str] = field(default_factory=set)
    paths: dict[str, str] = field(default_factory=dict)
    """list -> path of a block that first uses it (for messages)."""
    offset_clashes: set[tuple[str, str, str]] = field(default_factory=set)
    """(list, condition, condition): one participant sees a list's units in two conditions
    with the same batch offset (the same natural queries twice)."""


def unit_list(design: Design, name: str) -> UnitList | None:
    """The declared list, or the implicit role list for a standard name, or None."""
    found = design.units.get(name)
    if found is None and name in STANDARD_LISTS:
        return UnitList(role=name)
    return found


def usage(design: Design) -> Usage:
    """Scan the block plans of one full counterbalancing period and every arm."""
    use = Usage()
    arms: Sequence[str | None] = design.arms or (None,)
    for p in range(1, period(design) + 1):
        for arm in arms:
            plan = plan_blocks(design, p, arm, {})
            draws: dict[tuple[str, str, BlockKind], int] = {}
            per_condition: dict[str, int] = {}
            groups: dict[str, set[str]] = {}
            for block in plan:
                use.paths.setdefault(block.units, block.path)
                key = (block.units, block.condition, block.kind)
                draws[key] = draws.get(key, 0) + block.n_trials
                listed = unit_list(design, block.units)
                if listed is not None and listed.group_size is not None:
                    groups.setdefault(block.units, set()).add(block.condition)
                if block.kind == "main":
                    use.main_lists.add(block.units)
                    use.main_conditions.add(block.condition)
                    use.main_blocks.setdefault((block.units, block.condition), [])
                    if block.path not in use.main_blocks[(block.units, block.condition)]:
                        use.main_blocks[(block.units, block.condition)].append(block.path)
                    per_condition[block.condition] = (
                        per_condition.get(block.condition, 0) + block.n_trials
                    )
                if block.n_catch:
                    use.catch_conditions.add(block.condition)
                    use.catch_max = max(use.catch_max, block.n_catch)
                    if block.path not in use.catch_paths:
                        use.catch_paths.append(block.path)
            by_list: dict[str, dict[int, str]] = {}
            for name, condition, kind in draws:
                if kind != "main":
                    continue
                offsets = by_list.setdefault(name, {})
                offset = batch_offset(design, condition)
                if offset in offsets and offsets[offset] != condition:
                    pair = sorted((offsets[offset], condition))
                    use.offset_clashes.add((name, pair[0], pair[1]))
                offsets[offset] = condition
            for key, n in draws.items():
                use.draws[key] = max(use.draws.get(key, 0), n)
                if key[2] == "main":
                    use.main_totals.setdefault((key[0], key[1]), set()).add(n)
            for condition in design.conditions:
                n = per_condition.get(condition, 0)
                use.main_per_condition[condition] = min(use.main_per_condition.get(condition, n), n)
            for name, conditions in groups.items():
                use.group_conditions[name] = max(use.group_conditions.get(name, 0), len(conditions))
    return use


def list_needs(design: Design, use: Usage) -> dict[str, int]:
    """Units each referenced list must hold for the design to run."""
    needs: dict[str, int] = {}
    for (name, _, _), n in use.draws.items():
        listed = unit_list(design, name)
        if listed is not None and listed.group_size is not None:
            n = listed.group_size * use.group_conditions.get(name, 1)
        needs[name] = max(needs.get(name, 0), n)
    if use.catch_max:
        needs[design.catch.units] = max(needs.get(design.catch.units, 0), use.catch_max)
    for _, block in design.task_block_list():
        needs[block.units] = max(needs.get(block.units, 0), 1)
    return needs


def resolve_lists(design: Design, catalog: Catalog | None) -> dict[str, tuple[str, ...]]:
    """Unit ids of every list the design uses (placeholders `<prefix>:<i>` without a catalog).

    Role lists take the catalog's units with that role in manifest order (the first `count`).
    Without a catalog they become `count` placeholders, or as many as the design draws.
    """
    names = referenced_lists(design)
    resolved: dict[str, tuple[str, ...]] = {}
    needs: dict[str, int] | None = None
    next_placeholder = 0
    ordered = [n for n in STANDARD_LISTS if n in names] + [
        n for n in design.units if n in names and n not in STANDARD_LISTS
    ]
    ordered += sorted(n for n in names if n not in ordered)
    for name in ordered:
        listed = unit_list(design, name)
        if listed is None:
            continue
        if listed.ids is not None:
            resolved[name] = listed.ids
        elif catalog is not None:
            ids = tuple(u.id for u in catalog.units if listed.role in u.roles)[listed.skip :]
            resolved[name] = ids[: listed.count] if listed.count is not None else ids
        else:
            if listed.count is not None:
                n = listed.count
            else:
                if needs is None:
                    needs = list_needs(design, usage(design))
                n = needs.get(name, 0)
                if name in {block.units for _, block in design.task_block_list()}:
                    n = max(n, TASK_BLOCK_PLACEHOLDERS)
                if listed.group_size is not None and n % listed.group_size:
                    n += listed.group_size - n % listed.group_size
            prefix = design.placeholder_unit_prefix
            resolved[name] = tuple(f"{prefix}:{next_placeholder + i}" for i in range(n))
            next_placeholder += n
    return resolved


def referenced_lists(design: Design) -> set[str]:
    """Every list name any participant's blocks, catch trials or task blocks can use."""
    names: set[str] = set()
    for s, section in enumerate(design.section_list()):
        choices = variable_choices(design, s)
        for block in section.blocks:
            names.update(possible_values(block.unit_list, choices))
            if block.n_catch:
                names.add(design.catch.units)
    names.update(block.units for _, block in design.task_block_list())
    return names


def main_list_names(design: Design) -> set[str]:
    """Lists main blocks can draw from (their units share the batch rotation)."""
    names: set[str] = set()
    for s, section in enumerate(design.section_list()):
        choices = variable_choices(design, s)
        for block in section.blocks:
            if block.kind == "main":
                names.update(possible_values(block.unit_list, choices))
    return names


def batch_pool(
    design: Design, catalog: Catalog | None, lists: Mapping[str, tuple[str, ...]]
) -> list[int]:
    """Batches main trials rotate through: all but the practice batch (docs/protocol.md, Designs).

    With a catalog: the batches every unit of every main list has, minus the practice batch.
    """
    reserved = design.batches.practice
    if catalog is None:
        return [b for b in range(design.batches.count) if b != reserved]
    by_id = {u.id: u for u in catalog.units}
    common: set[int] | None = None
    for name in sorted(main_list_names(design)):
        for unit_id in lists.get(name, ()):
            unit = by_id.get(unit_id)
            batches = set(unit.natural_batches) if unit is not None else set()
            common = batches if common is None else common & batches
    return sorted((common or set()) - {reserved})


def batch_offset(design: Design, condition: str) -> int:
    spec = design.conditions[condition]
    if spec.batch_offset is not None:
        return spec.batch_offset
    return list(design.conditions).index(condition)


class _Decks:
    """Per-participant shuffled decks of units, one per (list, condition, kind)."""

    def __init__(
        self, design: Design, participant_number: int, lists: Mapping[str, tuple[str, ...]]
    ) -> None:
        self.design = design
        self.p = participant_number
        self.lists = lists
        self.decks: dict[tuple[str, str, str], tuple[list[str], int, int]] = {}
        self.group_of: dict[tuple[str, str], tuple[str, ...]] = {}
        self.groups_left: dict[str, list[tuple[str, ...]]] = {}

    def _source(self, name: str, condition: str) -> tuple[str, ...]:
        listed = unit_list(self.design, name)
        units = self.lists.get(name, ())
        if listed is None or listed.group_size is None:
            return units
        key = (name, condition)
        if key not in self.group_of:
            if name not in self.groups_left:
                size = listed.group_size
                groups = [units[i : i + size] for i in range(0, len(units), size)]
                self.groups_left[name] = stream(self.design, self.p, "groups", name).shuffle(groups)
            left = self.groups_left[name]
            self.group_of[key] = left.pop(0) if left else units
        return self.group_of[key]

    def draw(self, name: str, condition: str, kind: str, n: int) -> list[str]:
        """The next n units of the deck; a used-up deck is reshuffled (a new cycle)."""
        source = self._source(name, condition)
        if not source:
            return []
        key = (name, condition, kind)
        deck, pos, cycle = self.decks.get(key, ([], 0, -1))
        out: list[str] = []
        while len(out) < n:
            if pos >= len(deck):
                cycle += 1
                rng = stream(self.design, self.p, "deck", name, condition, kind, cycle)
                fresh = rng.shuffle(list(source))
                # A new cycle should not repeat a unit inside the block being drawn.
                deck = [u for u in fresh if u not in out] + [u for u in fresh if u in out]
                pos = 0
            out.append(deck[pos])
            pos += 1
        self.decks[key] = (deck, pos, cycle)
        return out


def _query_order(rng: Rng) -> QueryOrder:
    return "max_upper" if rng.coin() else "max_lower"


def generate_schedule(
    design: Design, catalog: Catalog | None, participant_number: int, arm: str | None = None
) -> Schedule:
    """Participant `participant_number`'s whole schedule.

    Args:
        design: a loaded design (see `load_design`); check it against the catalog once with
            `check_design_against` before enrolling anyone.
        catalog: the stimulus set's units, or None to take units from the design
            (explicit ids, else placeholders `<placeholder_unit_prefix>:<i>`).
        participant_number: 1-based number within the experiment; drives counterbalancing
            (odd/even, Latin-square rows, batch rotation) and seeds every random choice.
        arm: the between-subject arm (`choose_arm`); required iff the design has arms.

    Returns:
        A Schedule whose trials are indexed 0..n-1 in presentation order. Repeated trials
        have `unit_id` None until `fill_repeated`; reserved practice attempts are blocks with
        `attempt` > 1 (see `attempts_to_skip`).

    Raises:
        ValueError: bad participant number or arm.
    """
    if participant_number < 1:
        raise ValueError("participant_number is 1-based")
    if design.arms and arm not in design.arms:
        raise ValueError(f"arm must be one of {', '.join(design.arms)} (got {arm!r})")
    if not design.arms and arm is not None:
        raise ValueError("this design has no between-subject arms")
    p = participant_number
    lists = resolve_lists(design, catalog)
    sizes = {name: len(ids) for name, ids in lists.items()}
    plan = plan_blocks(design, p, arm, sizes)
    pool = batch_pool(design, catalog, lists) if design.batches.rotation == "participant" else []
    decks = _Decks(design, p, lists)
    queries = stream(design, p, "queries")
    blocks: list[BlockSpec] = []
    trials: list[TrialSpec] = []

    def add_task_blocks(position: Literal["start", "end"]) -> None:
        """The design's task blocks at `position` (Design.task_block_list): one trial of the
        block's type per unit of its list; the start ones come before the instructions."""
        for where, spec in design.task_block_list():
            if spec.position != position:
                continue
            ids = list(lists.get(spec.units, ()))
            if not ids:
                continue
            if spec.shuffle:
                # Keyed by where the block is written: [ratings] keeps the stream ("ratings",
                # position) the paper designs' schedules are drawn from.
                stream(design, p, *where).shuffle(ids)
            block_index = len(blocks)
            blocks.append(
                BlockSpec(
                    block_index=block_index,
                    kind="task",
                    condition=position,
                    title=spec.title or task_of(spec.task).block_title,
                    n_trials=len(ids),
                    block_feedback=False,
                    break_after=False,
                    before_instructions=position == "start",
                )
            )
            for unit_id in ids:
                trials.append(
                    TrialSpec(
                        trial_index=len(trials),
                        block_index=block_index,
                        task=spec.task,
                        trial_kind="task",
                        condition=position,
                        unit_id=unit_id,
                        feedback=False,
                    )
                )

    add_task_blocks("start")

    def main_batch(condition: str) -> int:
        if design.batches.rotation == "fixed" or not pool:
            return design.batches.main
        return pool[(p - 1 + batch_offset(design, condition)) % len(pool)]

    def add_block(planned: PlannedBlock, attempt: int, units: list[tuple[str, TrialKind]]) -> None:
        spec = design.conditions[planned.condition]
        block_index = len(blocks)
        blocks.append(
            BlockSpec(
                block_index=block_index,
                kind=planned.kind,
                condition=planned.condition,
                title=planned.title if attempt == 1 else f"{planned.title} (again)",
                n_trials=len(units),
                block_feedback=planned.block_feedback,
                break_after=planned.break_after,
                repeat_until_correct=planned.repeat_until_correct,
                max_attempts=planned.max_attempts,
                attempt=attempt,
            )
        )
        catch_rng = stream(design, p, "catch-images", block_index)
        for unit_id, kind in units:
            n_refs = spec.references
            catch_indices = None
            if kind == "catch" and design.catch.kind == "identical":
                catch_indices = (catch_rng.below(n_refs), catch_rng.below(n_refs))
            trials.append(
                TrialSpec(
                    trial_index=len(trials),
                    block_index=block_index,
                    trial_kind=kind,
                    condition=planned.condition,
                    reference_type=spec.reference_type,
                    n_references=n_refs,
                    grid_mode=spec.grid,
                    unit_id=unit_id,
                    batch=main_batch(planned.condition)
                    if kind == "main"
                    else design.batches.practice,
                    query_order=_query_order(queries),
                    feedback=planned.feedback,
                    catch_query_indices=catch_indices,
                )
            )

    for planned in plan:
        kind: TrialKind = planned.kind
        drawn = decks.draw(planned.units, planned.condition, planned.kind, planned.n_trials)
        units: list[tuple[str, TrialKind]] = [(u, kind) for u in drawn]
        if planned.n_catch:
            rng = stream(design, p, "catch", len(blocks))
            catch_units = lists.get(design.catch.units, ())
            picked = rng.sample(catch_units, planned.n_catch)
            while len(picked) < planned.n_catch and catch_units:
                picked += rng.sample(catch_units, planned.n_catch - len(picked))
            units += [(u, "catch") for u in picked]
        if planned.kind == "main":
            stream(design, p, "order", len(blocks)).shuffle(units)
        add_block(planned, 1, units)
        for attempt in range(2, planned.max_attempts + 1):
            again = stream(design, p, "attempt", len(blocks)).shuffle(list(units))
            add_block(planned, attempt, again)

    if design.repeated is not None:
        rep = design.repeated
        conditions = list(rep.conditions)
        if rep.order == "random":
            stream(design, p, "repeated-blocks").shuffle(conditions)
        fb = design.feedback.repeated
        for condition in conditions:
            spec = design.conditions[condition]
            block_index = len(blocks)
            n = rep.n_least + rep.n_most
            blocks.append(
                BlockSpec(
                    block_index=block_index,
                    kind="repeated",
                    condition=condition,
                    title=f"Next: {spec.default_title()}",
                    n_trials=n,
                    block_feedback=fb.block,
                    break_after=fb.break_after,
                    n_least_confident=rep.n_least,
                )
            )
            for _ in range(n):
                trials.append(
                    TrialSpec(
                        trial_index=len(trials),
                        block_index=block_index,
                        trial_kind="repeated",
                        condition=condition,
                        reference_type=spec.reference_type,
                        n_references=spec.references,
                        grid_mode=spec.grid,
                        unit_id=None,
                        batch=None,
                        query_order=_query_order(queries),
                        feedback=fb.trial,
                    )
                )
    if blocks and blocks[-1].break_after:
        blocks[-1] = blocks[-1].model_copy(update={"break_after": False})

    add_task_blocks("end")
    return Schedule(
        design=design.name,
        participant_number=p,
        seed=design.seed_text,
        arm=arm,
        blocks=tuple(blocks),
        trials=tuple(trials),
    )


def fill_repeated(schedule: Schedule, answers: Iterable[AnsweredTrial]) -> list[TrialSpec]:
    """The schedule's repeated trials, chosen from the participant's own main trials.

    Per repeated block (one condition): the condition's answered main trials (catch and
    practice trials never count) are put in trial order, shuffled with a seeded stream, then
    stably sorted by confidence (1..3, correctness ignored). The block's
    `n_least_confident` first ones and the remaining block slots from the other end (most
    confident) are chosen, so ties at equal confidence are broken by the seeded shuffle.
    The chosen trials are placed in the block's slots in a seeded random order; each keeps
    the slot's own query order (drawn fresh at generation, independent of the original's).

    Args:
        schedule: the participant's schedule (from `generate_schedule`).
        answers: every answered trial so far (order does not matter).

    Returns:
        One filled TrialSpec per repeated slot, in trial order, with `unit_id`, `batch` and
        `repeat_of_trial_index` set. The same answers always give the same result.

    Raises:
        ValueError: a condition has fewer answered main trials than its repeated block needs.
    """
    by_condition: dict[str, list[AnsweredTrial]] = {}
    for answer in sorted(answers, key=lambda a: a.trial_index):
        if answer.trial_kind == "main" and answer.unit_id is not None:
            by_condition.setdefault(answer.condition, []).append(answer)
    slots: dict[int, list[TrialSpec]] = {}
    for trial in schedule.trials:
        if trial.trial_kind == "repeated":
            slots.setdefault(trial.block_index, []).append(trial)
    filled: list[TrialSpec] = []
    for block in schedule.blocks:
        if block.kind != "repeated":
            continue
        block_slots = slots.get(block.block_index, [])
        key = f"psychvis|{schedule.seed}|{schedule.participant_number}"
        pool = Rng(f"{key}|repeated-ties|{block.condition}").shuffle(
            list(by_condition.get(block.condition, []))
        )
        if len(pool) < len(block_slots):
            raise ValueError(
                f"condition {block.condition!r} has {len(pool)} answered main trials; "
                f"its repeated block needs {len(block_slots)}"
            )
        pool.sort(key=lambda a: a.confidence)
        n_least = min(block.n_least_confident, len(block_slots))
        least = pool[:n_least]
        most = pool[n_least:][::-1][: len(block_slots) - n_least]
        chosen = Rng(f"{key}|repeated-order|{block.condition}").shuffle(least + most)
        for slot, original in zip(block_slots, chosen, strict=True):
            filled.append(
                slot.model_copy(
                    update={
                        "unit_id": original.unit_id,
                        "batch": original.batch,
                        "repeat_of_trial_index": original.trial_index,
                    }
                )
            )
    return sorted(filled, key=lambda t: t.trial_index)


def attempts_to_skip(schedule: Schedule, block_index: int, all_correct: bool) -> tuple[int, ...]:
    """Reserved practice attempts that are no longer needed after a practice block ends.

    A repeat_until_correct block is generated with `max_attempts` copies (attempt 1, 2, ...)
    one after the other. When an attempt ends with every trial correct, the server marks the
    trials of the returned blocks as skipped and moves on; otherwise it shows the next attempt.
    After the last attempt the participant continues either way (exclusions judge it).

    Returns:
        Block indices of the remaining attempts of the same practice block (empty when the
        attempt was not all correct, or the block is not a repeat_until_correct block).
    """
    if not all_correct:
        return ()
    block = schedule.blocks[block_index]
    if not block.repeat_until_correct:
        return ()
    skipped: list[int] = []
    expected = block.attempt + 1
    for later in schedule.blocks[block_index + 1 :]:
        if not later.repeat_until_correct or later.attempt != expected:
            break
        skipped.append(later.block_index)
        expected += 1
    return tuple(skipped)


def choose_arm(design: Design, counts: Mapping[str, int], participant_number: int) -> str | None:
    """The between-subject arm for a new participant (balanced assignment).

    The least-filled arm whose quota is not reached; ties are broken by a shuffle seeded with
    the design seed and the participant number (not by listing order or arrival alone).

    Args:
        counts: participants per arm that count (completed and still active; not returned,
            timed out or test-mode ones); missing arms count 0.
        participant_number: the new participant's number.

    Returns:
        The arm, or None when the design has no arms or every arm has reached its quota
        (the server then reports the study as full).
    """
    open_arms = [a for a in design.arms if counts.get(a, 0) < design.quotas.get(a, 2**62)]
    if not open_arms:
        return None
    fewest = min(counts.get(a, 0) for a in open_arms)
    tied = [a for a in open_arms if counts.get(a, 0) == fewest]
    return stream(design, participant_number, "arm").shuffle(tied)[0]
