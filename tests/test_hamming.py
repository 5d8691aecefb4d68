"""Hamming radius search: exact against brute force, within and across sets."""

import numpy as np
import pytest

from fiftyone_dedup.algorithms import search


def _popcount(x):
    x = x.astype(np.uint64)
    return np.array([bin(int(v)).count("1") for v in x.ravel()]).reshape(x.shape)


def _random_codes(n, seed, planted=0, flips=(0, 12)):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64)
    codes ^= rng.integers(0, 2, size=n).astype(np.uint64) << np.uint64(63)
    # plant near copies with a known number of flipped bits
    for k in range(planted):
        src = rng.integers(0, n)
        dst = rng.integers(0, n)
        nbits = rng.integers(flips[0], flips[1] + 1)
        mask = np.uint64(0)
        for b in rng.choice(64, size=nbits, replace=False):
            mask |= np.uint64(1) << np.uint64(b)
        codes[dst] = codes[src] ^ mask
    return codes


def _brute_pairs(codes, threshold):
    d = _popcount(codes[:, None] ^ codes[None, :])
    i, j = np.nonzero(np.triu(d <= threshold, k=1))
    return {(a, b, d[a, b]) for a, b in zip(i, j)}


@pytest.mark.parametrize("threshold", [0, 3, 10, 16])
def test_hamming_pairs_equal_brute_force(threshold):
    codes = _random_codes(600, seed=threshold, planted=120)
    i, j, d = search.hamming_pairs(codes, threshold, block_size=97)
    found = set(zip(i.tolist(), j.tolist(), d.tolist()))
    assert len(found) == len(i)  # no pair twice
    assert found == _brute_pairs(codes, threshold)
    assert np.all(i < j)


def test_hamming_pairs_threshold_is_inclusive():
    codes = np.array([0, 0b1111111111, 0b11111111111], dtype=np.uint64)
    i, j, d = search.hamming_pairs(codes, 10)
    assert set(zip(i.tolist(), j.tolist())) == {(0, 1), (1, 2)}
    assert sorted(d.tolist()) == [1, 10]


def test_hamming_cross_only_compares_across():
    ref = _random_codes(300, seed=1, planted=60)
    query = ref[:50] ^ np.uint64(0b111)  # 3 bits from their reference
    query = np.r_[query, query[:5]]  # queries that duplicate each other too
    qi, rj, d = search.hamming_cross(query, ref, 5, block_size=16)
    found = set(zip(qi.tolist(), rj.tolist(), d.tolist()))
    dist = _popcount(query[:, None] ^ ref[None, :])
    expected = {(a, b, dist[a, b]) for a, b in zip(*np.nonzero(dist <= 5))}
    assert found == expected
    assert all((q % 50, q % 50, 3) in found for q in range(55))
