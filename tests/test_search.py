"""Radius search: exact against brute force, within and across sets."""

import os
import subprocess
import sys
import textwrap

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


@pytest.mark.parametrize("bad", [-1, 65, 2.5, "10", None, True])
def test_hamming_threshold_is_validated(bad):
    with pytest.raises(ValueError, match="threshold"):
        search.hamming_pairs(np.zeros(3, dtype=np.uint64), bad)


def test_unique_rows_keeps_first_occurrence_order():
    codes = np.array([5, 3, 5, 9, 3, 3], dtype=np.uint64)
    uniq, inv = search.unique_rows(codes)
    assert uniq.tolist() == [5, 3, 9]
    assert inv.tolist() == [0, 1, 0, 2, 1, 1]
    vecs = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    uniq, inv = search.unique_rows(vecs)
    assert uniq.tolist() == [[1, 0], [0, 1]] and inv.tolist() == [0, 1, 0]


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


@pytest.mark.parametrize("bad", [1.5, -2, "x", None, float("nan")])
def test_cosine_threshold_is_validated(bad):
    with pytest.raises(ValueError, match="cosine similarity between -1 and 1"):
        search.cosine_pairs(np.ones((2, 3)), bad)


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
        from test_search import _near_threshold_pairs
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
    assert imported == "False" and int(pairs) > 0


@pytest.mark.parametrize("shape", ["non-negative", "spiky", "sign", "zero rows"])
def test_int8_margins_hold_on_hard_vectors(shape):
    # The int8 margin is proven per query from the quantisation steps: on
    # vectors that stress it (all non-negative as CNN features are, a few
    # huge components, every component at full scale, zero vectors) every
    # pair at the threshold is a candidate, and the pairs are exactly those
    # of float64 products
    rng = np.random.default_rng(len(shape))
    x = _near_threshold_pairs(600, 512, 0.8, seed=3)
    if shape == "non-negative":
        x = np.abs(x)
    elif shape == "spiky":  # some with margins too loose for int8
        x[:, :2] *= rng.uniform(1, 8, size=(len(x), 1)).astype(np.float32)
    elif shape == "sign":
        x = np.sign(x) + 0.01 * x
    else:
        x[::50] = 0
    x = search.normalize(x)
    xd = x.astype(np.float64)
    sims = xd @ xd.T
    products = search._products(x, x, "int8")
    if products.method != "int8":
        pytest.skip("int8 products need FBGEMM (x86)")
    for k0, k1 in products.key_blocks(0):
        qi, kj = products.candidates(0, 600, k0, k1, 0.8)
        exact = sims[:600, k0:k1]
        assert set(zip(*np.nonzero(exact >= 0.8))) <= set(zip(qi.tolist(), kj.tolist()))
    for threshold in (0.8, 0.95):
        i, j, s = search.cosine_pairs(x, threshold, block_size=256, method="int8")
        expected = set(zip(*np.nonzero(np.triu(sims >= threshold, k=1))))
        assert set(zip(i.tolist(), j.tolist())) == expected


def test_similarity_method_is_validated():
    assert search.resolve_similarity_method("fp32") == "fp32"
    assert search.resolve_similarity_method() in ("bf16", "int8", "fp32")
    with pytest.raises(ValueError, match="method must be one of"):
        search.cosine_pairs(np.ones((2, 3)), 0.9, method="int4")
