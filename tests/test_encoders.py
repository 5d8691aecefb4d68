"""The encoders by name, and the behaviour each carries: what its scores
are called, what stricter means, how its encodings are searched."""

import numpy as np
import pytest

from fiftyone_dedup.algorithms import encoders
from fiftyone_dedup.algorithms import hashing
from fiftyone_dedup.algorithms import search

DHASH = encoders.get_encoder("dhash")
CNN = encoders.get_encoder("cnn")


def test_names_are_case_insensitive_and_unknown_ones_list_the_known():
    assert encoders.get_encoder("DHash") is DHASH
    assert encoders.get_encoder("CNN") is CNN
    assert encoders.get_encoder(DHASH) is DHASH
    assert set(encoders.ENCODERS) == set(hashing.METHODS) | {"cnn"}
    with pytest.raises(ValueError, match="expected one of DHash, PHash, AHash, WHash, CNN"):
        encoders.get_encoder("md5")


def test_hashes_and_embeddings_are_described_apart():
    for name in hashing.METHODS:
        spec = encoders.ENCODERS[name]
        assert spec.is_hash and not spec.uses_model and not spec.similarity
        assert spec.default_field == name and spec.default_threshold == 10
        assert spec.label in spec.threshold_help
    assert (DHASH.score_name, CNN.score_name) == ("distance", "similarity")
    labels = (DHASH.threshold_label, CNN.threshold_label)
    assert labels == ("Threshold (bits)", "Minimum similarity")
    assert (DHASH.verb, CNN.verb) == ("hashed", "embedded")
    assert (DHASH.work, CNN.work) == ("hashing", "inference")
    assert CNN.uses_model and not CNN.is_hash and CNN.similarity
    assert CNN.default_field == "cnn_embedding" and CNN.default_threshold == 0.85


def test_stricter_loosen_and_within_follow_the_metric():
    assert DHASH.stricter(4, 10) and not DHASH.stricter(10, 4) and not DHASH.stricter(4, 4)
    assert CNN.stricter(0.9, 0.85) and not CNN.stricter(0.85, 0.9)
    assert DHASH.loosen(10, 4) == 14 and DHASH.loosen(62, 4) == 64
    assert CNN.loosen(0.9, 0.1) == pytest.approx(0.8) and CNN.loosen(-0.95, 0.1) == -1.0
    assert DHASH.loosen(10, 0) == 10 and CNN.loosen(0.9, None) == 0.9
    assert DHASH.within([0, 10, 11], 10).tolist() == [True, True, False]
    assert CNN.within([0.84, 0.85, 1.0], 0.85).tolist() == [False, True, True]


def test_empty_encodings_have_the_stored_dtype():
    h, e = DHASH.empty(), CNN.empty(1280)
    assert h.shape == (0,) and h.dtype == np.uint64
    assert e.shape == (0, 1280) and e.dtype == np.float32


def test_pair_scores_are_bit_distances_or_clipped_similarities():
    codes = np.array([0, 0b1011, 2**64 - 1], dtype=np.uint64)
    d = DHASH.pair_scores(codes, codes, np.array([0, 0, 1]), np.array([1, 2, 2]))
    assert d.tolist() == [3, 64, 61] and d.dtype == np.int32
    x = search.normalize(np.array([[1, 0], [1, 1], [0, 1]], dtype=np.float32))
    s = CNN.pair_scores(x, x, np.array([0, 1, 1]), np.array([1, 2, 1]))
    np.testing.assert_allclose(s, [2**-0.5, 2**-0.5, 1.0], rtol=1e-6)
    assert s.dtype == np.float32 and s.max() <= 1.0


def test_pairs_and_cross_search_as_the_metric_says():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 2**63, size=200, dtype=np.int64).astype(np.uint64)
    codes[7] = codes[3] ^ np.uint64(0b101)
    got = DHASH.pairs(codes, 4)
    want = search.hamming_pairs(codes, 4)
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    assert (3, 7) in set(zip(got[0].tolist(), got[1].tolist()))
    seen = []
    qi, rj, d = DHASH.cross(codes[:10], codes, 0, progress=seen.append)
    assert list(zip(qi.tolist(), rj.tolist())) == [(i, i) for i in range(10)]
    assert sum(seen) == 10 and np.all(d == 0)

    x = search.normalize(rng.normal(size=(100, 16)))
    x[50] = x[10]
    i, j, s = CNN.pairs(x, 0.99)
    assert (10, 50) in set(zip(i.tolist(), j.tolist())) and np.all(s >= 0.99)
    qi, rj, s = CNN.cross(x[:5], x, 0.999)
    assert {(q, q) for q in range(5)} <= set(zip(qi.tolist(), rj.tolist()))


def test_thresholds_are_checked_and_default_per_encoder():
    assert DHASH.validate_threshold(None) == 10 and isinstance(DHASH.validate_threshold(12.0), int)
    assert CNN.validate_threshold(None) == 0.85 and CNN.validate_threshold(1) == 1.0
    with pytest.raises(ValueError, match="between 0 and 64 bits"):
        DHASH.validate_threshold(65)
    with pytest.raises(ValueError, match="between -1 and 1"):
        CNN.validate_threshold(1.5)
