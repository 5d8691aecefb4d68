"""Nearest-neighbour search: at most k per query, within the bound."""

import numpy as np

from fiftyone_dedup.algorithms import search


def test_knn_pairs_capped_per_query():
    # a homogeneous set: every vector close to every other
    rng = np.random.default_rng(0)
    x = search.normalize(1 + 0.01 * rng.standard_normal((300, 16)).astype(np.float32))
    i, j, s = search.knn_pairs(x, x, 5, 0.5, "cosine", exclude_self=True)
    assert len(i) == 300 * 5
    assert np.all(i != j) and np.all(s >= 0.5)
    assert np.bincount(i, minlength=300).max() == 5
    codes = np.zeros(50, dtype=np.uint64)
    i, j, d = search.knn_pairs(codes, codes, 3, 0, "hamming", exclude_self=True)
    assert np.bincount(i).max() <= 3 and np.all(d == 0)

