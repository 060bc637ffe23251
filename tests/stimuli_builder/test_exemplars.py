"""docs/protocol.md, Natural exemplars binning: invariants, the b + B*bin Decision, determinism, tie-breaking."""

from __future__ import annotations

import numpy as np
import pytest

from stimuli_builder.errors import DatasetError
from stimuli_builder.exemplars import bin_side, rank_order, select_unit


def _data(n: int = 500, seed: int = 1) -> tuple[np.ndarray, list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=n).astype(np.float32)
    files = [f"c{i % 7}/img_{i:04d}.JPEG" for i in range(n)]
    return values, files, np.ones(n, dtype=bool)


def test_each_batch_has_one_image_per_bin_and_queries_are_most_extreme() -> None:
    values, files, valid = _data()
    k, batches = 10, 20
    result = select_unit(values, files, valid, "mixed4b:465", k, batches, seed=0)
    assert [b.batch for b in result] == list(range(batches))
    for b in result:
        for side, query, refs in (
            ("max", b.max_query, b.max_references),
            ("min", b.min_query, b.min_references),
        ):
            picks = [query, *refs]
            assert len(refs) == k - 1
            # one image from ranks 1-20, 21-40, ..., 181-200 in display order
            for j, p in enumerate(picks):
                assert j * batches < p.rank <= (j + 1) * batches, (side, j, p.rank)
            assert query.rank <= batches
    # Queries and references never overlap, within and across batches and sides.
    used = [
        p.index
        for b in result
        for p in (b.max_query, b.min_query, *b.max_references, *b.min_references)
    ]
    assert len(used) == len(set(used)) == 2 * k * batches


def test_activation_and_rank_match_the_ranking() -> None:
    values, files, valid = _data()
    result = select_unit(values, files, valid, "u:1", 3, 5, seed=0)
    order_max = np.argsort(-values)
    order_min = np.argsort(values)
    for b in result:
        for p in (b.max_query, *b.max_references):
            assert order_max[p.rank - 1] == p.index
            assert p.activation == pytest.approx(float(values[p.index]))
            assert p.source == files[p.index]
        for p in (b.min_query, *b.min_references):
            assert order_min[p.rank - 1] == p.index


def test_bin_side_follows_the_b_plus_B_times_bin_decision() -> None:
    k, batches = 4, 5
    rng = np.random.default_rng(7)
    table = bin_side(np.arange(100), k, batches, rng)
    rng = np.random.default_rng(7)
    flat = np.arange(k * batches)
    for j in range(k):
        flat[j * batches : (j + 1) * batches] = rng.permutation(
            flat[j * batches : (j + 1) * batches]
        )
    for b in range(batches):
        for j in range(k):
            assert table[b, j] == flat[b + batches * j]
    # every rank of the top k*B is used exactly once
    assert sorted(table.ravel().tolist()) == list(range(k * batches))


def test_same_seed_same_selection_other_seed_differs() -> None:
    values, files, valid = _data()
    a = select_unit(values, files, valid, "u:1", 10, 20, seed=5)
    b = select_unit(values, files, valid, "u:1", 10, 20, seed=5)
    c = select_unit(values, files, valid, "u:1", 10, 20, seed=6)
    assert a == b
    assert a != c


def test_ties_are_broken_by_path_not_by_scan_order() -> None:
    values = np.zeros(6, dtype=np.float32)
    files = ["b.jpg", "a.jpg", "d.jpg", "c.jpg", "f.jpg", "e.jpg"]
    order = rank_order(values, files, "max", np.ones(6, dtype=bool))
    assert [files[i] for i in order] == sorted(files)


def test_skipped_and_nan_rows_are_never_selected() -> None:
    values, files, valid = _data(n=100)
    valid[:10] = False
    values[10:20] = np.nan
    result = select_unit(values, files, valid, "u:1", 2, 10, seed=0)
    used = {
        p.index
        for b in result
        for p in (b.max_query, b.min_query, *b.max_references, *b.min_references)
    }
    assert used.isdisjoint(range(20))


def test_too_few_images_is_a_clear_error() -> None:
    values, files, valid = _data(n=30)
    with pytest.raises(DatasetError, match="needs 40"):
        select_unit(values, files, valid, "mixed3a:25", 2, 10, seed=0)
