"""Natural exemplar selection (docs/protocol.md, Natural exemplars): ranking, binning, queries and references.

numpy only (no torch). Ranking is by the spatial mean, descending for ``max`` and ascending for
``min``; ties are broken by file path so the order never depends on the scan order.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stimuli_builder.errors import DatasetError


@dataclass(frozen=True)
class Pick:
    """One selected natural image."""

    index: int
    """Row in the scan table (index into the sorted file list)."""
    source: str
    rank: int
    """1-based rank from the extreme end of the side."""
    activation: float


@dataclass(frozen=True)
class NaturalBatch:
    """One trial folder of a unit: queries are the most extreme image of each side."""

    batch: int
    max_query: Pick
    min_query: Pick
    max_references: tuple[Pick, ...]
    min_references: tuple[Pick, ...]


def rank_order(
    values: np.ndarray, files: Sequence[str], side: str, valid: np.ndarray
) -> np.ndarray:
    """Row indices of valid images from the extreme end of ``side`` (``"max"`` or ``"min"``).

    Args:
        values: float32 [N] spatial means of one channel.
        files: the N file paths (tie breaker).
        side: ``"max"`` (most activating first) or ``"min"`` (least activating first).
        valid: bool [N]; invalid rows (skipped images, NaN) are left out.
    """
    idx = np.flatnonzero(valid & np.isfinite(values))
    key = values[idx].astype(np.float64)
    if side == "max":
        key = -key
    path_rank = np.argsort(
        np.argsort(np.asarray(files, dtype=object)[idx], kind="stable"), kind="stable"
    )
    order = np.lexsort((path_rank, key))
    return idx[order]


def bin_side(order: np.ndarray, k: int, n_batches: int, rng: np.random.Generator) -> np.ndarray:
    """Cut the top ``k * n_batches`` of ``order`` into ``k`` bins of ``n_batches``, shuffle each.

    Returns:
        int [n_batches, k] of positions into ``order`` (0-based ranks): row ``b`` is batch ``b``,
        column ``j`` its image from bin ``j``, i.e. shuffled bin ``j``'s element ``b`` -- the
        image at ``b + n_batches * j`` of the shuffled top list (docs/protocol.md, Natural exemplars).
    """
    flat = np.arange(k * n_batches)
    for j in range(k):
        seg = flat[j * n_batches : (j + 1) * n_batches]
        flat[j * n_batches : (j + 1) * n_batches] = rng.permutation(seg)
    out = np.empty((n_batches, k), dtype=np.int64)
    for b in range(n_batches):
        for j in range(k):
            out[b, j] = flat[b + n_batches * j]
    return out


def unit_rng(seed: int, unit_id: str, side: str) -> np.random.Generator:
    """Independent, reproducible generator per (seed, unit, side)."""
    return np.random.default_rng([seed, zlib.crc32(unit_id.encode()), 0 if side == "max" else 1])


def select_unit(
    values: np.ndarray,
    files: Sequence[str],
    valid: np.ndarray,
    unit_id: str,
    k: int,
    n_batches: int,
    seed: int,
) -> list[NaturalBatch]:
    """Queries and references of every batch of one unit.

    Args:
        values: float32 [N] spatial mean of the unit's channel for every image.
        files: N source paths.
        valid: bool [N] usable rows.
        unit_id: ``"<layer>:<channel>"`` (seeds the shuffles).
        k: images per side per batch (1 query + k-1 references).
        n_batches: B; batch 0 is reserved for practice and catch trials.
        seed: build seed.

    Returns:
        ``n_batches`` batches, ``batch`` 0..B-1.

    Raises:
        DatasetError: fewer than ``2 * k * n_batches`` usable images (top and bottom would overlap).
    """
    need = 2 * k * n_batches
    n_valid = int((valid & np.isfinite(values)).sum())
    if n_valid < need:
        raise DatasetError(
            f"unit {unit_id}: {n_valid} usable images, but k={k} x batches={n_batches} needs "
            f"{need} (top and bottom {k * n_batches} each); add images or lower k/batches"
        )
    sides: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for side in ("max", "min"):
        order = rank_order(values, files, side, valid)
        sides[side] = (order, bin_side(order, k, n_batches, unit_rng(seed, unit_id, side)))

    def pick(side: str, pos: int) -> Pick:
        row = int(sides[side][0][pos])
        return Pick(row, files[row], pos + 1, float(values[row]))

    batches = []
    for b in range(n_batches):
        mx = [pick("max", int(p)) for p in sides["max"][1][b]]
        mn = [pick("min", int(p)) for p in sides["min"][1][b]]
        batches.append(NaturalBatch(b, mx[0], mn[0], tuple(mx[1:]), tuple(mn[1:])))
    return batches
