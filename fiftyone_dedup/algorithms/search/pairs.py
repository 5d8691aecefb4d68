"""The shape of every search's answer: sparse pairs ``(i, j, score)``."""

import numpy as np


def concat(out_i, out_j, out_d, dtype):
    """Joins blocks of pairs into three arrays.

    Args:
        out_i: a list of arrays of first indices
        out_j: a list of arrays of second indices
        out_d: a list of arrays of scores
        dtype: the scores' dtype

    Returns:
        a tuple ``(i, j, scores)``; empty ``int64`` indices when no block
    """
    if not out_i:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), np.zeros(0, dtype=dtype)
    return (
        np.concatenate(out_i),
        np.concatenate(out_j),
        np.concatenate(out_d).astype(dtype),
    )
