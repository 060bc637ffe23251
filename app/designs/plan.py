"""A participant's block plan: sections ordered, `{variables}` filled in, sizes settled.

Also the seeded random streams every design function uses (`Rng`), which rely only on
`random.Random.random()` with string seeds: the one part of `random` whose output Python
guarantees across versions and machines.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from app.designs.errors import DesignInvalid
from app.designs.model import VAR_PATTERN, BlockKind, BlockTemplate, Design

T = TypeVar("T")
ARM_VAR = "arm"
MAX_PERIOD = 5040
"""Participants scanned when checking every counterbalancing combination of a design."""


class Rng:
    """A seeded stream: `Rng("seed|7|catch|3")` gives the same numbers on every machine."""

    __slots__ = ("_random",)

    def __init__(self, key: str) -> None:
        self._random = random.Random(key)

    def below(self, n: int) -> int:
        """A uniform integer in [0, n)."""
        return min(int(self._random.random() * n), n - 1)

    def coin(self) -> bool:
        return self._random.random() < 0.5

    def shuffle(self, items: list[T]) -> list[T]:
        """Fisher-Yates in place on `items`; returns it."""
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]
        return items

    def sample(self, items: Sequence[T], k: int) -> list[T]:
        return self.shuffle(list(items))[:k]


def stream(design: Design, participant_number: int, *parts: object) -> Rng:
    """The participant's random stream for one purpose (parts name it, e.g. "catch", 3)."""
    key = "|".join(["psychvis", design.seed_text, str(participant_number), *map(str, parts)])
    return Rng(key)


@dataclass(frozen=True, slots=True)
class PlannedBlock:
    """A block of one participant's plan, every placeholder resolved."""

    path: str
    """Where the block is in the design file, e.g. `sections[1].blocks[2]`."""
    section: int
    kind: BlockKind
    condition: str
    units: str
    n_trials: int
    n_catch: int
    title: str
    feedback: bool
    block_feedback: bool
    break_after: bool
    repeat_until_correct: bool
    max_attempts: int


def block_path(design: Design, section: int, block: int) -> str:
    if design.sections:
        return f"sections[{section}].blocks[{block}]"
    return f"blocks[{block}]"


def substitute(text: str, values: Mapping[str, str], where: str) -> str:
    """Fill `{name}` placeholders.

    Raises:
        DesignInvalid: a placeholder has no value.
    """

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            known = ", ".join(sorted(values)) or "none"
            raise DesignInvalid(f"{where}: unknown variable {{{name}}} (known: {known})")
        return values[name]

    return VAR_PATTERN.sub(one, text)


def variables(
    design: Design, participant_number: int, section: int, arm: str | None
) -> dict[str, str]:
    """Values of every `{variable}` for a participant in a section (listed position)."""
    values: dict[str, str] = {}
    for name, cb in design.counterbalance.items():
        index = (participant_number - 1) // cb.every + (section if cb.per_section else 0)
        values[name] = cb.values[index % len(cb.values)]
    if arm is not None:
        values[ARM_VAR] = arm
    values.update(design.section_list()[section].vars)
    return values


def variable_choices(design: Design, section: int) -> dict[str, tuple[str, ...]]:
    """Every value each variable can take in a section, over all participants and arms."""
    choices: dict[str, tuple[str, ...]] = {n: cb.values for n, cb in design.counterbalance.items()}
    if design.arms:
        choices[ARM_VAR] = design.arms
    choices.update({k: (v,) for k, v in design.section_list()[section].vars.items()})
    return choices


def possible_values(template: str, choices: Mapping[str, tuple[str, ...]]) -> Iterator[str]:
    """Every string `template` can become (placeholders without a value are left as they are)."""
    names = [n for n in dict.fromkeys(VAR_PATTERN.findall(template)) if n in choices]
    for combo in itertools.product(*(choices[n] for n in names)):
        values = dict(zip(names, combo, strict=True))
        yield _fill_known(template, values)


def _fill_known(template: str, values: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        return values.get(match.group(1), match.group(0))

    return VAR_PATTERN.sub(one, template)


def williams_rows(n: int) -> list[list[int]]:
    """A Williams-balanced Latin square: n rows for even n, 2n for odd n."""
    first = [0]
    low, high = 1, n - 1
    while len(first) < n:
        first.append(low)
        low += 1
        if len(first) < n:
            first.append(high)
            high -= 1
    rows = [[(x + r) % n for x in first] for r in range(n)]
    if n % 2:
        rows += [list(reversed(row)) for row in rows]
    return rows


def section_sequence(design: Design, participant_number: int) -> list[int]:
    """Listed section indices in the participant's presentation order."""
    sections = design.section_list()
    order = list(range(len(sections)))
    mode = design.section_order.mode
    if mode == "fixed" or len(sections) < 2:
        return order
    names = [s.name for s in sections]
    group = design.section_order.group or tuple(names)
    slots = [names.index(g) for g in group]
    if mode == "latin_square":
        rows = williams_rows(len(slots))
        row = rows[(participant_number - 1) % len(rows)]
        permuted = [slots[i] for i in row]
    else:
        permuted = stream(design, participant_number, "sections").shuffle(list(slots))
    for slot, section in zip(sorted(slots), permuted, strict=True):
        order[slot] = section
    return order


def _resolve(
    design: Design, template: BlockTemplate, values: Mapping[str, str], path: str, section: int
) -> PlannedBlock:
    condition = substitute(template.condition, values, f"{path}.condition")
    spec = design.conditions.get(condition)
    if spec is None:
        raise DesignInvalid(f"{path}.condition: unknown condition {condition!r}")
    fb = design.feedback.practice if template.kind == "practice" else design.feedback.main
    if template.title is not None:
        title = substitute(template.title, values, f"{path}.title")
    elif template.kind == "practice":
        title = f"Practice: {spec.default_title()}"
    else:
        title = f"Next: {spec.default_title()}"
    return PlannedBlock(
        path=path,
        section=section,
        kind=template.kind,
        condition=condition,
        units=substitute(template.unit_list, values, f"{path}.units"),
        n_trials=template.n_trials,
        n_catch=template.n_catch,
        title=title,
        feedback=fb.trial if template.feedback is None else template.feedback,
        block_feedback=fb.block if template.block_feedback is None else template.block_feedback,
        break_after=fb.break_after if template.break_after is None else template.break_after,
        repeat_until_correct=template.repeat_until_correct,
        max_attempts=template.max_attempts,
    )


def plan_blocks(
    design: Design, participant_number: int, arm: str | None, list_sizes: Mapping[str, int]
) -> list[PlannedBlock]:
    """The participant's practice and main blocks in order (repeated blocks come after).

    With `remainder = "rotate"`, a condition whose main blocks fall r units short of their list
    gives one extra trial to r of its blocks, starting at block (p - 1) mod n_blocks.
    """
    sections = design.section_list()
    planned: list[PlannedBlock] = []
    for s in section_sequence(design, participant_number):
        values = variables(design, participant_number, s, arm)
        for b, template in enumerate(sections[s].blocks):
            planned.append(_resolve(design, template, values, block_path(design, s, b), s))
    if design.every_unit_once and design.remainder == "rotate":
        groups: dict[tuple[str, str], list[int]] = {}
        for i, block in enumerate(planned):
            if block.kind == "main":
                groups.setdefault((block.condition, block.units), []).append(i)
        for (_, units), members in groups.items():
            short = list_sizes.get(units, 0) - sum(planned[i].n_trials for i in members)
            if 0 < short <= len(members):
                for k in range(short):
                    i = members[(participant_number - 1 + k) % len(members)]
                    planned[i] = replace(planned[i], n_trials=planned[i].n_trials + 1)
    return planned


def period(design: Design) -> int:
    """Participants after which every counterbalancing rule has come round (capped)."""
    value = 1
    for cb in design.counterbalance.values():
        value = math.lcm(value, cb.every * len(cb.values))
    if design.section_order.mode == "latin_square":
        n = len(design.section_order.group or design.section_list())
        value = math.lcm(value, len(williams_rows(n)))
    return min(value, MAX_PERIOD)
