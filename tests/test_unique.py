"""Identical encodings collapsed: first-occurrence order, no copy when distinct."""

import numpy as np

from fiftyone_dedup.algorithms import search


def test_unique_rows_keeps_first_occurrence_order():
    codes = np.array([5, 3, 5, 9, 3, 3], dtype=np.uint64)
    uniq, inv = search.unique_rows(codes)
    assert uniq.tolist() == [5, 3, 9]
    assert inv.tolist() == [0, 1, 0, 2, 1, 1]
    vecs = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    uniq, inv = search.unique_rows(vecs)
    assert uniq.tolist() == [[1, 0], [0, 1]] and inv.tolist() == [0, 1, 0]


def test_unique_vectors_match_numpy_and_copy_nothing_when_distinct():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(300, 7)).astype(np.float32)
    x = base[rng.integers(0, 300, size=1000)]  # many repeats
    uniq, inv = search.unique_rows(x)
    assert np.array_equal(uniq[inv], x)
    assert len(uniq) == len(np.unique(x, axis=0))
    distinct = rng.normal(size=(50, 7)).astype(np.float32)
    same, inv = search.unique_rows(distinct)
    assert same is distinct and inv.tolist() == list(range(50))


def test_unique_rows_by_hash_match_numpy_with_many_copies():
    rng = np.random.default_rng(3)
    base = rng.standard_normal((50, 9)).astype(np.float32)  # 36 bytes: padded
    x = base[rng.integers(0, 50, size=3000)]
    uniq, inv = search.unique_rows(x)
    assert np.array_equal(uniq[inv], x)
    assert len(uniq) == len(np.unique(x, axis=0))
    firsts = [int(np.flatnonzero((x == u).all(axis=1))[0]) for u in uniq]
    assert firsts == sorted(firsts)
