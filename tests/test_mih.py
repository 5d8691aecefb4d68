"""Multi-index Hamming search: the same pairs as the brute-force index on
spread-out codes, on real hashes of photos and their near-duplicates, and on
near-constant hashes (dark or blank images), within a set and across two."""

import io
import sys

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from fiftyone_dedup.algorithms import hashing
from fiftyone_dedup.algorithms import search
from fiftyone_dedup.algorithms.search import hamming, mih

pytestmark = pytest.mark.skipif(not mih.available(), reason="needs numba")

THRESHOLDS = list(range(17))


def _uniform(n, seed):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64)
    codes ^= rng.integers(0, 2, size=n).astype(np.uint64) << np.uint64(63)
    # near copies 1-16 bits from another code, so every threshold has pairs
    src, dst = rng.integers(0, n, size=(2, n // 5))
    for s, d in zip(src, dst):
        bits = rng.choice(64, size=rng.integers(1, 17), replace=False)
        codes[d] = codes[s] ^ np.bitwise_or.reduce(np.uint64(1) << bits.astype(np.uint64))
    return codes


def _sources():
    import skimage.data

    images = []
    for name in ("astronaut", "camera", "coffee", "chelsea", "coins", "moon",
                 "page", "text", "rocket", "horse", "clock", "brick", "grass",
                 "gravel", "hubble_deep_field", "immunohistochemistry"):
        try:
            arr = getattr(skimage.data, name)()
        except Exception:  # noqa: BLE001 - a file this skimage lacks
            continue
        img = Image.fromarray(np.asarray(arr)).convert("RGB")
        img.thumbnail((160, 160))
        images.append(img)
    assert len(images) >= 8
    return images


def _variant(img, rng):
    w, h = img.size
    m = rng.uniform(0, 0.12, size=4)
    img = img.crop((int(w * m[0]), int(h * m[1]), int(w * (1 - m[2])), int(h * (1 - m[3]))))
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.7, 1.3))
    img = img.rotate(rng.uniform(-8, 8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(rng.integers(20, 95)))
    return Image.open(buf).convert("RGB")


@pytest.fixture(scope="module")
def real_hashes():
    """DHashes of photos and of many near-duplicates of each: clustered."""
    rng = np.random.default_rng(0)
    hexes = []
    for img in _sources():
        hexes.append(hashing.hash_image(img))
        hexes += [hashing.hash_image(_variant(img, rng)) for _ in range(120)]
    return hashing.hex_to_codes(hexes)


def _near_constant(n, seed):
    """Hashes of dark or blank images: a few bits set, or a few cleared."""
    rng = np.random.default_rng(seed)
    codes = np.zeros(n, dtype=np.uint64)
    for k in range(n):
        bits = rng.choice(64, size=rng.integers(0, 5), replace=False).astype(np.uint64)
        codes[k] = np.bitwise_or.reduce(np.uint64(1) << bits) if len(bits) else 0
    codes[: n // 4] ^= np.uint64(2**64 - 1)  # nearly all ones
    return codes


def _same(a, b):
    assert [x.dtype for x in a] == [x.dtype for x in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def _check_pairs(codes, thresholds=THRESHOLDS):
    for t in thresholds:
        flat = search.hamming_pairs(codes, t, method="flat")
        mih = search.hamming_pairs(codes, t, method="mih")
        _same(mih, flat)
        assert np.all(mih[0] < mih[1])


def _check_cross(query, reference, thresholds=THRESHOLDS):
    for t in thresholds:
        flat = search.hamming_cross(query, reference, t, method="flat")
        _same(search.hamming_cross(query, reference, t, method="mih"), flat)


def test_same_pairs_as_brute_force_on_uniform_codes():
    _check_pairs(_uniform(4000, seed=1))


def test_same_pairs_as_brute_force_on_real_hashes(real_hashes):
    i, j, _ = search.hamming_pairs(real_hashes, 10, method="flat")
    assert len(i) > 10 * len(real_hashes)  # clustered: many pairs
    _check_pairs(real_hashes)


def test_same_pairs_as_brute_force_on_near_constant_hashes(real_hashes):
    # hundreds of thousands of pairs: buffers overflow and chunks rerun
    codes = np.r_[_near_constant(1200, seed=2), real_hashes, _uniform(1000, seed=3)]
    _check_pairs(codes, thresholds=[0, 1, 2, 5, 8, 10, 13, 16])


def test_same_pairs_across_sets():
    reference = _uniform(3000, seed=4)
    rng = np.random.default_rng(5)
    query = reference[rng.integers(0, 3000, size=800)] ^ (
        np.uint64(1) << rng.integers(0, 64, size=800).astype(np.uint64)
    )
    query = np.r_[query, _uniform(500, seed=6), _near_constant(300, seed=7)]
    reference = np.r_[reference, _near_constant(300, seed=8)]
    _check_cross(query, reference)


def test_same_pairs_across_real_hashes(real_hashes):
    half = len(real_hashes) // 2
    _check_cross(real_hashes[:half], real_hashes[half:], thresholds=[0, 4, 10, 16])


@pytest.mark.parametrize("m", [3, 4, 5, 7, 8, 11, 16])
def test_every_split_gives_the_same_pairs(m, real_hashes):
    codes = np.r_[_uniform(1500, seed=m), real_hashes[::3]]
    for t in (0, m - 1, m, 2 * m + 1, 16):
        flat = search.hamming_pairs(codes, t, method="flat")
        _same(mih.Plan(codes, None, t, m=m).search(), flat)
        q = codes[::2] ^ np.uint64(0b101)
        flat = search.hamming_cross(q, codes, t, method="flat")
        _same(mih.Plan(q, codes, t, m=m).search(), flat)


def test_duplicated_codes_are_paired_at_distance_zero():
    codes = np.r_[_uniform(500, seed=9)[:50].repeat(3), np.uint64(7), np.uint64(7)]
    _check_pairs(codes, thresholds=[0, 3])


def test_auto_uses_the_index_on_spread_codes_and_not_on_clustered_ones():
    spread = _uniform(200_000, seed=10)
    plan = hamming.mih_plan(spread, None, 10, "auto")
    assert plan is not None and plan.m == 4
    assert plan.cost() < 0.05 * plan.brute_force_comparisons()
    # dark images: every code in the same few buckets
    clustered = np.r_[_near_constant(150_000, seed=11), spread[:50_000]]
    assert hamming.mih_plan(clustered, None, 10, "auto") is None
    # small sets: the flat index is already fast
    assert hamming.mih_plan(spread[:5000], None, 10, "auto") is None


def test_progress_counts_every_query():
    codes = _uniform(3000, seed=12)
    seen = []
    search.hamming_pairs(codes, 8, method="mih", progress=seen.append)
    assert sum(seen) == len(codes)


def test_without_numba_the_flat_index_answers(monkeypatch):
    codes = _uniform(2000, seed=13)
    expected = search.hamming_pairs(codes, 10, method="flat")
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba fails
    assert not mih.available()
    _same(search.hamming_pairs(codes, 10, method="mih"), expected)


def test_method_is_validated():
    with pytest.raises(ValueError, match="method must be one of"):
        search.hamming_pairs(np.zeros(3, np.uint64), 4, method="fast")
