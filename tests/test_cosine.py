"""Cosine radius search: exact against brute force at the threshold, within
and across sets, whatever the fast products."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fiftyone_dedup.algorithms import search


def _brute_cos(x, y, threshold, upper):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    s = xn @ yn.T
    mask = s >= threshold
    if upper:
        mask = np.triu(mask, k=1)
    return {(a, b) for a, b in zip(*np.nonzero(mask))}



@pytest.mark.parametrize("threshold", [0.5, 0.9, 0.99])
def test_cosine_pairs_equal_brute_force(threshold):
    rng = np.random.default_rng(3)
    base = rng.normal(size=(50, 32)).astype(np.float32)
    x = np.r_[base, base + rng.normal(scale=0.3, size=base.shape).astype(np.float32)]
    x = np.r_[x, rng.normal(size=(200, 32)).astype(np.float32)]
    i, j, s = search.cosine_pairs(x, threshold, block_size=33)
    assert set(zip(i.tolist(), j.tolist())) == _brute_cos(x, x, threshold, True)
    assert np.all(s >= threshold) and np.all(s <= 1.0)


def test_cosine_cross_only_compares_across():
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(120, 16)).astype(np.float32)
    query = ref[:30] * 2.0 + rng.normal(scale=0.05, size=(30, 16)).astype(np.float32)
    qi, rj, s = search.cosine_cross(query, ref, 0.95, block_size=7)
    assert set(zip(qi.tolist(), rj.tolist())) == _brute_cos(query, ref, 0.95, False)
    assert {(q, q) for q in range(30)} <= set(zip(qi.tolist(), rj.tolist()))


def test_cross_dimension_mismatch_is_explained():
    with pytest.raises(ValueError, match="same model"):
        search.cosine_cross(np.ones((2, 3)), np.ones((2, 4)), 0.9)


def test_normalize_leaves_the_callers_vectors_alone():
    x = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    before = x.copy()
    i, j, s = search.cosine_pairs(x, 0.5)
    y = search.normalize(x)
    assert np.array_equal(x, before)
    np.testing.assert_allclose(y, [[0.6, 0.8], [0.0, 0.0]])


def _near_threshold_pairs(n, dim, threshold, seed):
    # unit vectors and partners at similarities within 0.005 of threshold
    rng = np.random.default_rng(seed)
    base = search.normalize(rng.normal(size=(n, dim)))
    noise = rng.normal(size=(n, dim)).astype(np.float32)
    noise -= np.sum(noise * base, axis=1, keepdims=True) * base
    noise = search.normalize(noise)
    target = rng.uniform(threshold - 0.005, threshold + 0.005, size=(n, 1))
    partner = (target * base + np.sqrt(1 - target**2) * noise).astype(np.float32)
    return np.r_[base, partner]


@pytest.mark.parametrize("method", ["bf16", "int8", "fp32"])
def test_cosine_search_is_exact_at_the_threshold_whatever_the_products(method):
    # bfloat16 and int8 products are only candidates: every pair is checked
    # exactly
    x = _near_threshold_pairs(400, 384, 0.9, seed=11)
    xd = search.normalize(x).astype(np.float64)
    sims = xd @ xd.T
    expected = set(zip(*np.nonzero(np.triu(sims >= 0.9, k=1))))
    assert np.sum(np.abs(np.triu(sims, 1) - 0.9) < 1e-3) > 20  # a hard case
    i, j, s = search.cosine_pairs(x, 0.9, block_size=150, method=method)
    assert set(zip(i.tolist(), j.tolist())) == expected
    np.testing.assert_allclose(s, sims[i, j], atol=1e-6)

    qi, rj, _ = search.cosine_cross(x[:400], x[400:], 0.9, block_size=64, method=method)
    cross = sims[:400, 400:]
    assert set(zip(qi.tolist(), rj.tolist())) == set(zip(*np.nonzero(cross >= 0.9)))


def test_small_searches_need_no_torch_and_stay_exact():
    # importing torch costs seconds: small searches use numpy's products
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        sys.path.insert(0, %r)
        from test_cosine import _near_threshold_pairs
        from fiftyone_dedup.algorithms import search
        x = _near_threshold_pairs(400, 384, 0.9, seed=11)
        xd = search.normalize(x).astype(np.float64)
        sims = xd @ xd.T
        i, j, s = search.cosine_pairs(x, 0.9, block_size=150)
        assert set(zip(i.tolist(), j.tolist())) == set(zip(*np.nonzero(np.triu(sims >= 0.9, k=1))))
        qi, rj, _ = search.cosine_cross(x[:400], x[400:], 0.9, block_size=64)
        assert set(zip(qi.tolist(), rj.tolist())) == set(zip(*np.nonzero(sims[:400, 400:] >= 0.9)))
        print("torch" in sys.modules, len(i))
        """
    ) % os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    imported, pairs = out.stdout.split()
