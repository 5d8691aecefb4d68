"""Blocks of pairs joined into one answer."""

import numpy as np

from fiftyone_dedup.algorithms.search import pairs


def test_blocks_are_joined_and_no_block_is_an_empty_answer():
    i, j, d = pairs.concat([np.array([0, 1]), np.array([2])], [np.array([3, 4]), np.array([5])],
                           [np.array([1.5, 2.5]), np.array([3.5])], np.int32)
    assert i.tolist() == [0, 1, 2] and j.tolist() == [3, 4, 5]
    assert d.tolist() == [1, 2, 3] and d.dtype == np.int32
    i, j, s = pairs.concat([], [], [], np.float32)
    assert len(i) == len(j) == len(s) == 0
    assert i.dtype == j.dtype == np.int64 and s.dtype == np.float32 and i is not j
