"""Threshold checks: whole bits for hashes, a cosine similarity for embeddings."""

import numpy as np
import pytest

from fiftyone_dedup.algorithms import search


@pytest.mark.parametrize("bad", [-1, 65, 2.5, "10", None, True])
def test_hamming_threshold_is_validated(bad):
    with pytest.raises(ValueError, match="threshold"):
        search.hamming_pairs(np.zeros(3, dtype=np.uint64), bad)



@pytest.mark.parametrize("bad", [1.5, -2, "x", None, float("nan")])
def test_cosine_threshold_is_validated(bad):
    with pytest.raises(ValueError, match="cosine similarity between -1 and 1"):
        search.cosine_pairs(np.ones((2, 3)), bad)


def test_valid_thresholds_are_typed():
    assert search.validate_hamming_threshold(np.int64(10)) == 10
    assert isinstance(search.validate_hamming_threshold(10.0), int)
    assert search.validate_hamming_threshold(0) == 0
    assert search.validate_hamming_threshold(24, bits=24) == 24
    assert search.validate_cosine_threshold(np.float32(0.5)) == 0.5
    assert search.validate_cosine_threshold(-1) == -1.0
    with pytest.raises(ValueError, match="between 0 and 24"):
        search.validate_hamming_threshold(25, bits=24)
