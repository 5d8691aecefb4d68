"""The numba kernel of :mod:`fiftyone_dedup.algorithms.verify`: ORB
descriptor matching with Lowe's ratio test for many image pairs at once, in
parallel (compiled once and cached on disk)."""

import numba
import numpy as np

from fiftyone_dedup.algorithms.search._mih_kernels import popcount


@numba.njit(cache=True, nogil=True, parallel=True)
def ratio_matches(qdesc, qoff, tdesc, toff, a, b, ratio, out_q, out_t, counts):
    """For each pair ``p``, the descriptors of query image ``a[p]`` whose
    nearest descriptor of train image ``b[p]`` (Hamming distance) is nearer
    than ``ratio`` times the second nearest: what OpenCV's ``batchDistance``
    with ``K=2`` and the ratio test give.

    ``qdesc``/``tdesc`` are ``(n, 4)`` uint64 rows (32-byte descriptors), the
    rows of image ``i`` at ``qoff[i]:qoff[i + 1]``; the matches of pair ``p``
    are written to ``out_q[p, :counts[p]]`` and ``out_t[p, :counts[p]]``,
    each image's own row numbers. Images with fewer than 2 descriptors on
    either side have no matches.
    """
    for p in numba.prange(len(a)):
        q0 = qoff[a[p]]
        q1 = qoff[a[p] + 1]
        t0 = toff[b[p]]
        t1 = toff[b[p] + 1]
        n = 0
        if q1 - q0 >= 2 and t1 - t0 >= 2:
            for i in range(q0, q1):
                x0 = qdesc[i, 0]
                x1 = qdesc[i, 1]
                x2 = qdesc[i, 2]
                x3 = qdesc[i, 3]
                d1 = 1 << 30
                d2 = 1 << 30
                j1 = -1
                for j in range(t0, t1):
                    d = np.int64(
                        popcount(x0 ^ tdesc[j, 0]) + popcount(x1 ^ tdesc[j, 1])
                        + popcount(x2 ^ tdesc[j, 2]) + popcount(x3 ^ tdesc[j, 3])
                    )
                    if d < d1:
                        d2 = d1
                        d1 = d
                        j1 = j
                    elif d < d2:
                        d2 = d
                if d1 < ratio * d2:
                    out_q[p, n] = i - q0
                    out_t[p, n] = j1 - t0
                    n += 1
        counts[p] = n
