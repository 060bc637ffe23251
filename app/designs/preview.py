"""Render a participant's schedule as a text table or JSON (CLI preview, dashboard)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Literal

from app.designs.generate import choose_arm
from app.designs.model import Design
from app.schedule import Catalog, Schedule, TrialSpec
from app.tasks.afc2 import correct_side

PreviewFormat = Literal["table", "json"]


def expected_arm(design: Design, participant_number: int) -> str | None:
    """The arm participant N gets if participants 1..N-1 all took part (for previews)."""
    if not design.arms:
        return None
    counts: dict[str, int] = {}
    arm: str | None = None
    for p in range(1, participant_number + 1):
        arm = choose_arm(design, counts, p)
        if arm is None:
            return None
        counts[arm] = counts.get(arm, 0) + 1
    return arm


def _layer_channel(unit_id: str | None, catalog: Catalog | None) -> tuple[str | None, int | None]:
    if unit_id is None:
        return None, None
    if catalog is not None:
        unit = catalog.get(unit_id)
        if unit is not None:
            return unit.layer, unit.channel
    layer, sep, channel = unit_id.rpartition(":")
    if sep and channel.isdigit():
        return layer, int(channel)
    return unit_id, None


def preview_rows(schedule: Schedule, catalog: Catalog | None = None) -> list[dict[str, Any]]:
    """One JSON-ready dict per trial, in presentation order.

    Keys: trial_index, block_index, attempt, task, trial_kind, condition, reference_type,
    n_references, grid_mode, unit_id, layer, channel, batch, query_order, feedback,
    catch_query_indices, repeat_of_trial_index. Repeated trials not yet chosen have
    unit_id, layer, channel and batch null.
    """
    attempts = {b.block_index: b.attempt for b in schedule.blocks}
    rows = []
    for t in schedule.trials:
        layer, channel = _layer_channel(t.unit_id, catalog)
        rows.append(
            {
                "trial_index": t.trial_index,
                "block_index": t.block_index,
                "attempt": attempts[t.block_index],
                "task": t.task,
                "trial_kind": t.trial_kind,
                "condition": t.condition,
                "reference_type": t.reference_type,
                "n_references": t.n_references,
                "grid_mode": t.grid_mode,
                "unit_id": t.unit_id,
                "layer": layer,
                "channel": channel,
                "batch": t.batch,
                "query_order": t.query_order,
                "feedback": t.feedback,
                "catch_query_indices": list(t.catch_query_indices)
                if t.catch_query_indices
                else None,
                "repeat_of_trial_index": t.repeat_of_trial_index,
            }
        )
    return rows


def _cell(t: TrialSpec, catalog: Catalog | None) -> str:
    layer, channel = _layer_channel(t.unit_id, catalog)
    if t.unit_id is None:
        return "(chosen at run time)"
    if channel is None:
        return t.unit_id
    return f"{layer}:{channel}"


def render_preview(
    schedule: Schedule, fmt: PreviewFormat = "table", catalog: Catalog | None = None
) -> str:
    """The schedule as text.

    Args:
        schedule: from `generate_schedule`.
        fmt: `json` (a list of trial objects, see `preview_rows`) or `table` (blocks with
            their trials, ratings and counts per kind and condition, for people).
        catalog: to show layer and channel of units whose id is not `layer:channel`.
    """
    if fmt == "json":
        return json.dumps(preview_rows(schedule, catalog), indent=1)
    out = [
        f"design {schedule.design}  participant {schedule.participant_number}  "
        f"seed {schedule.seed}" + (f"  arm {schedule.arm}" if schedule.arm else ""),
        f"{len(schedule.trials)} trials in {len(schedule.blocks)} blocks",
    ]
    for position in ("start", "end"):
        shown = [t for t in schedule.trials if t.trial_kind == "task" and t.condition == position]
        for task in dict.fromkeys(t.task for t in shown):
            units = ", ".join(t.unit_id or "" for t in shown if t.task == task)
            out.append(f"{task} trials at the {position}: {units}")
    by_block: dict[int, list[TrialSpec]] = {}
    for t in schedule.trials:
        by_block.setdefault(t.block_index, []).append(t)
    for block in schedule.blocks:
        flags = [
            f
            for f, on in (
                ("block feedback", block.block_feedback),
                ("break after", block.break_after),
            )
            if on
        ]
        if block.repeat_until_correct:
            flags.append(
                f"attempt {block.attempt}/{block.max_attempts}, skipped once passed"
                if block.attempt > 1
                else f"repeat until all correct, up to {block.max_attempts} attempts"
            )
        out.append("")
        out.append(
            f"block {block.block_index}  {block.kind}  {block.condition}  "
            f'{block.n_trials} trials  "{block.title}"'
            + (f"  [{', '.join(flags)}]" if flags else "")
        )
        out.append(
            f"  {'trial':>5}  {'kind':<8}  {'refs':<20}  {'unit':<22}  {'batch':>5}  "
            f"{'max query':<9}  notes"
        )
        for t in by_block.get(block.block_index, []):
            if t.trial_kind == "task":
                refs = f"({t.task} trial)"
            else:
                refs = (
                    f"{t.reference_type} {t.n_references} {t.grid_mode}"
                    if t.n_references
                    else "none"
                )
            notes = []
            if t.catch_query_indices is not None:
                notes.append(
                    f"queries = max ref {t.catch_query_indices[0]}, "
                    f"min ref {t.catch_query_indices[1]}"
                )
            if t.repeat_of_trial_index is not None:
                notes.append(f"repeats trial {t.repeat_of_trial_index}")
            if not t.feedback:
                notes.append("no feedback")
            batch = "-" if t.batch is None else str(t.batch)
            order = correct_side(t.query_order) if t.query_order is not None else "-"
            out.append(
                f"  {t.trial_index:>5}  {t.trial_kind:<8}  {refs:<20}  {_cell(t, catalog):<22}  "
                f"{batch:>5}  {order:<9}  {'; '.join(notes)}"
            )
    counts = Counter((t.trial_kind, t.condition) for t in schedule.trials)
    out.append("")
    out.append("trials per kind and condition:")
    for (kind, condition), n in sorted(counts.items()):
        out.append(f"  {kind:<9} {condition:<24} {n:>4}")
    return "\n".join(out) + "\n"
