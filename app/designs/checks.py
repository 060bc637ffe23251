"""Rules that span keys of a design, alone (at load) and against a stimulus set's catalog.

Each check yields `Issue`s (a key path and a message); the loader turns them into one
`DesignInvalid` whose message names the keys and, when the TOML text is known, their lines.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from app.designs.generate import (
    Usage,
    batch_offset,
    batch_pool,
    list_needs,
    main_list_names,
    resolve_lists,
    unit_list,
    usage,
)
from app.designs.model import VAR_PATTERN, BlockTemplate, Design
from app.designs.plan import ARM_VAR, possible_values, variable_choices
from app.schedule import Catalog, UnitInfo
from app.tasks import DEFAULT_TASK, tasks

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Issue:
    path: KeyPath
    message: str


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def parse_path(text: str) -> KeyPath:
    """Inverse of `format_path` for plan paths such as `sections[1].blocks[2]`."""
    parts: list[str | int] = []
    for piece in text.split("."):
        name, _, rest = piece.partition("[")
        if name:
            parts.append(name)
        for index in rest.replace("]", "").split("[") if rest else ():
            parts.append(int(index))
    return tuple(parts)


def _path(where: KeyPath, key: str) -> KeyPath:
    """The key path of a task block's field (`where` from Design.task_block_list): the
    `[ratings]` key itself for the paper's shorthand, else `task_blocks[i].key`."""
    return where if where[0] == "ratings" else (*where, key)


def suggest(word: str, options: Iterable[object]) -> str:
    """A " (did you mean 'x'?)" hint, or "" when nothing is close."""
    close = difflib.get_close_matches(word, [str(o) for o in options], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _block_paths(design: Design) -> Iterator[tuple[int, BlockTemplate, KeyPath]]:
    for s, section in enumerate(design.section_list()):
        for b, block in enumerate(section.blocks):
            base: KeyPath = ("sections", s, "blocks", b) if design.sections else ("blocks", b)
            yield s, block, base


def static_issues(design: Design) -> list[Issue]:
    """Everything checkable without a stimulus set. Stops early when later checks would only
    repeat an earlier problem."""
    issues: list[Issue] = []
    if len(set(design.arms)) != len(design.arms):
        issues.append(Issue(("arms",), "an arm is listed twice"))
    for arm in design.quotas:
        if arm not in design.arms:
            issues.append(Issue(("quotas", arm), f"not an arm{suggest(arm, design.arms)}"))
    if ARM_VAR in design.counterbalance:
        issues.append(Issue(("counterbalance", ARM_VAR), "`arm` is reserved for the arm name"))
    names = [s.name for s in design.sections]
    if len(set(names)) != len(names):
        issues.append(Issue(("sections",), "section names must be unique"))
    for s, section in enumerate(design.sections):
        for var in section.vars:
            if var in design.counterbalance or var == ARM_VAR:
                issues.append(
                    Issue(
                        ("sections", s, "vars", var), "shadows a counterbalance variable or `arm`"
                    )
                )
    group = design.section_order.group
    if group is not None:
        if len(set(group)) != len(group):
            issues.append(Issue(("section_order", "group"), "a section is listed twice"))
        for g in group:
            if g not in names:
                issues.append(
                    Issue(("section_order", "group"), f"unknown section {g!r}{suggest(g, names)}")
                )
    if design.remainder == "rotate" and not design.every_unit_once:
        issues.append(Issue(("remainder",), "`rotate` needs every_unit_once = true"))
    for name, spec in design.conditions.items():
        if not name or VAR_PATTERN.search(name) or "|" in name:
            issues.append(Issue(("conditions", name), "condition names cannot hold { } or |"))
        if spec.batch_offset is not None and spec.batch_offset >= 1000:
            issues.append(Issue(("conditions", name, "batch_offset"), "too large"))
    if issues:
        return issues

    catch_used = False
    for s, block, base in _block_paths(design):
        choices = variable_choices(design, s)
        for key, template in (("condition", block.condition), ("units", block.unit_list)):
            for var in VAR_PATTERN.findall(template):
                if var not in choices:
                    issues.append(
                        Issue(
                            (*base, key),
                            f"unknown variable {{{var}}}{suggest(var, choices)}"
                            f" (known: {', '.join(sorted(choices)) or 'none'})",
                        )
                    )
        if block.title is not None:
            for var in VAR_PATTERN.findall(block.title):
                if var not in choices:
                    issues.append(Issue((*base, "title"), f"unknown variable {{{var}}}"))
        if issues:
            continue
        for condition in possible_values(block.condition, choices):
            found = design.conditions.get(condition)
            if found is None:
                issues.append(
                    Issue(
                        (*base, "condition"),
                        f"unknown condition {condition!r}{suggest(condition, design.conditions)}",
                    )
                )
            elif block.n_catch and design.catch.kind == "identical" and found.references == 0:
                issues.append(
                    Issue(
                        (*base, "n_catch"),
                        f"identical-image catch trials copy displayed references; condition "
                        f"{condition!r} shows none (use catch.kind = 'easy' or n_catch = 0)",
                    )
                )
        for name in possible_values(block.unit_list, choices):
            if unit_list(design, name) is None:
                issues.append(
                    Issue(
                        (*base, "units"),
                        f"unknown unit list {name!r}{suggest(name, design.units)}"
                        f" (declare it under [units])",
                    )
                )
        catch_used = catch_used or block.n_catch > 0
    if catch_used and unit_list(design, design.catch.units) is None:
        issues.append(Issue(("catch", "units"), f"unknown unit list {design.catch.units!r}"))
    for where, task_block in design.task_block_list():
        path = _path(where, "units")
        if unit_list(design, task_block.units) is None:
            issues.append(Issue(path, f"unknown unit list {task_block.units!r}"))
        if task_block.task == DEFAULT_TASK:
            issues.append(
                Issue(_path(where, "task"), "2-AFC trials come from [[sections]] or [[blocks]]")
            )
        elif task_block.task not in tasks():
            issues.append(
                Issue(
                    _path(where, "task"),
                    f"unknown trial type {task_block.task!r}{suggest(task_block.task, tasks())}",
                )
            )
    if design.repeated is not None:
        for i, condition in enumerate(design.repeated.conditions):
            if condition not in design.conditions:
                issues.append(
                    Issue(
                        ("repeated", "conditions", i),
                        f"unknown condition {condition!r}{suggest(condition, design.conditions)}",
                    )
                )
    if issues:
        return issues

    use = usage(design)
    explicit = {
        name: len(listed.ids)
        for name in use.paths | {design.catch.units: ""}
        if (listed := unit_list(design, name)) is not None and listed.ids is not None
    }
    for name in use.paths:
        listed = unit_list(design, name)
        if listed is not None and listed.role is not None and listed.count is not None:
            explicit[name] = listed.count
    issues += _size_issues(design, use, explicit)
    if design.repeated is not None:
        need = design.repeated.n_least + design.repeated.n_most
        for i, condition in enumerate(design.repeated.conditions):
            have = use.main_per_condition.get(condition, 0)
            if have < need:
                issues.append(
                    Issue(
                        ("repeated", "conditions", i),
                        f"condition {condition!r} has {have} main trials; repeating "
                        f"{design.repeated.n_least} least + {design.repeated.n_most} most "
                        f"confident ones needs {need}",
                    )
                )
    if design.batches.rotation == "participant":
        pool = [b for b in range(design.batches.count) if b != design.batches.practice]
        for condition in sorted(use.main_conditions):
            offset = batch_offset(design, condition)
            if offset >= len(pool):
                issues.append(
                    Issue(
                        ("conditions", condition, "batch_offset"),
                        f"offset {offset} wraps around the {len(pool)} batches left besides the "
                        f"practice batch (batches.count = {design.batches.count})",
                    )
                )
        for name, a, b in sorted(use.offset_clashes):
            issues.append(
                Issue(
                    ("conditions", b, "batch_offset"),
                    f"conditions {a!r} and {b!r} show units of list {name!r} to the same "
                    f"participant with the same batch offset (the same natural queries twice)",
                )
            )
    return issues


def _size_issues(design: Design, use: Usage, sizes: dict[str, int]) -> list[Issue]:
    """Block sizes against list sizes (known ones only)."""
    issues: list[Issue] = []
    if design.every_unit_once:
        for (name, condition), totals in sorted(use.main_totals.items()):
            if name not in sizes:
                continue
            size = sizes[name]
            paths = use.main_blocks.get((name, condition), [])
            for total in sorted(totals):
                short = size - total
                ok = short == 0 or (design.remainder == "rotate" and 0 < short <= len(paths))
                if ok:
                    continue
                hint = (
                    "; remainder = 'rotate' can spread up to one spare unit per block"
                    if 0 < short and design.remainder == "error"
                    else ""
                )
                first = _first_path(paths)
                issues.append(
                    Issue(
                        (*first, "n_trials"),
                        f"condition {condition!r} shows {total} main trials from unit list "
                        f"{name!r} ({size} units) in {', '.join(paths)}; every_unit_once needs "
                        f"{size}{hint}",
                    )
                )
    for name, n_conditions in use.group_conditions.items():
        listed = unit_list(design, name)
        if listed is None or listed.group_size is None or name not in sizes:
            continue
        groups = sizes[name] // listed.group_size
        if groups < n_conditions:
            issues.append(
                Issue(
                    ("units", name, "group_size"),
                    f"{groups} groups of {listed.group_size} for {n_conditions} conditions",
                )
            )
        for (list_name, condition, _), n in use.draws.items():
            if list_name == name and n > listed.group_size:
                issues.append(
                    Issue(
                        ("units", name, "group_size"),
                        f"condition {condition!r} draws {n} units from a group of "
                        f"{listed.group_size}",
                    )
                )
    if use.catch_max and design.catch.units in sizes:
        size = sizes[design.catch.units]
        if size < use.catch_max:
            first = _first_path(use.catch_paths)
            issues.append(
                Issue(
                    (*first, "n_catch"),
                    f"{use.catch_max} catch trials in one block but unit list "
                    f"{design.catch.units!r} has {size} units",
                )
            )
    return issues


def _first_path(paths: list[str]) -> KeyPath:
    return parse_path(paths[0]) if paths else ()


def _unit_path(design: Design, name: str, index: int) -> KeyPath:
    listed = design.units.get(name)
    if listed is not None and listed.ids is not None:
        return ("units", name, index)
    return ("units", name)


def catalog_issues(design: Design, catalog: Catalog) -> list[Issue]:
    """What the stimulus set lacks for this design (units, references, batches)."""
    issues: list[Issue] = []
    by_id = {u.id: u for u in catalog.units}
    set_name = catalog.stimulus_set or "the stimulus set"
    lists = resolve_lists(design, catalog)
    for name, ids in lists.items():
        for i, unit_id in enumerate(ids):
            if unit_id not in by_id:
                issues.append(
                    Issue(
                        _unit_path(design, name, i),
                        f"unit {unit_id!r} is not in {set_name}{suggest(unit_id, by_id)}",
                    )
                )
    if issues:
        return issues
    use = usage(design)
    needs = list_needs(design, use)
    for name, need in sorted(needs.items()):
        listed = unit_list(design, name)
        if listed is not None and listed.role is not None and len(lists[name]) < need:
            issues.append(
                Issue(
                    ("units", name),
                    f"{set_name} has {len(lists[name])} units with role {listed.role!r}; "
                    f"the design needs {need}",
                )
            )
    issues += _size_issues(design, use, {n: len(ids) for n, ids in lists.items()})
    if issues:
        return issues

    def refs(unit: UnitInfo, condition: str, what: str) -> str | None:
        spec = design.conditions[condition]
        n = spec.references
        lacking = []
        if spec.reference_type in ("natural", "mixed") and unit.n_natural_references < n:
            lacking.append(f"{n} natural references per side (has {unit.n_natural_references})")
        if spec.reference_type in ("synthetic", "mixed") and unit.n_synthetic_references < n:
            lacking.append(f"{n} synthetic references per side (has {unit.n_synthetic_references})")
        if not lacking:
            return None
        return f"{what} unit {unit.id!r} lacks {' and '.join(lacking)} for condition {condition!r}"

    seen: set[tuple[str, str]] = set()
    for name, condition, _ in sorted(use.draws):
        for unit_id in lists.get(name, ()):
            problem = refs(by_id[unit_id], condition, "")
            if problem and (unit_id, condition) not in seen:
                seen.add((unit_id, condition))
                issues.append(Issue(("units", name), problem.strip()))
    for condition in sorted(use.catch_conditions):
        for unit_id in lists.get(design.catch.units, ()):
            problem = refs(by_id[unit_id], condition, "catch")
            if problem and (unit_id, condition) not in seen:
                seen.add((unit_id, condition))
                issues.append(Issue(("catch", "units"), problem))
    practice_batch = design.batches.practice
    practice_lists = {name for name, _, kind in use.draws if kind == "practice"}
    if use.catch_max:
        practice_lists.add(design.catch.units)
    for name in sorted(practice_lists):
        for unit_id in lists.get(name, ()):
            if practice_batch not in by_id[unit_id].natural_batches:
                issues.append(
                    Issue(
                        ("batches", "practice"),
                        f"unit {unit_id!r} (list {name!r}) has no natural batch {practice_batch}",
                    )
                )
    if design.batches.rotation == "participant":
        pool = batch_pool(design, catalog, lists)
        offsets = [batch_offset(design, c) for c in use.main_conditions]
        need = max(offsets, default=0) + 1
        if len(pool) < need:
            issues.append(
                Issue(
                    ("batches", "rotation"),
                    f"the main units of {set_name} share {len(pool)} natural batches besides "
                    f"the practice batch {practice_batch} ({pool}); the batch rotation needs "
                    f"{need} so that no participant sees a query twice",
                )
            )
    else:
        for name in sorted(main_list_names(design)):
            for unit_id in lists.get(name, ()):
                if design.batches.main not in by_id[unit_id].natural_batches:
                    issues.append(
                        Issue(
                            ("batches", "main"),
                            f"unit {unit_id!r} has no natural batch {design.batches.main}",
                        )
                    )
    for where, task_block in design.task_block_list():
        task = tasks().get(task_block.task)
        if task is None:
            continue
        for unit_id in lists.get(task_block.units, ()):
            problem = task.unit_problem(by_id[unit_id])
            if problem is not None:
                issues.append(Issue(_path(where, "units"), f"unit {unit_id!r} {problem}"))
    return issues
