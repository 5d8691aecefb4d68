"""The numba kernels of :mod:`fiftyone_dedup.algorithms.search.mih` (imported only when
a multi-index search runs; compiled once and cached on disk)."""

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic


@intrinsic
def popcount(typingctx, x):
    """The number of set bits of a ``uint64`` (one instruction)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@numba.njit(cache=True, nogil=True)
def count(unique, starts, ref_offsets, masks, self_join):
    """The comparisons and probes of one substring's join."""
    compares = 0.0
    probes = 0.0
    for u in range(len(unique)):
        key = unique[u]
        size = starts[u + 1] - starts[u]
        for mask in masks:
            other = key ^ mask
            if self_join and other < key:
                continue
            probes += 1
            n_other = ref_offsets[other + 1] - ref_offsets[other]
            if self_join and other == key:
                compares += size * (size - 1) / 2
            else:
                compares += size * n_other
    return compares, probes


@numba.njit(cache=True, nogil=True, parallel=True)
def kernel(
    unique, starts, qcodes, qorder, ref_offsets, rcodes, rorder,
    masks, earlier, radius, threshold, self_join,
    lo, hi, base, cap, oi, oj, od,
):
    """Joins one substring's buckets: for each chunk ``c`` of query buckets
    ``lo[c]:hi[c]``, every code pair within ``threshold`` bits whose
    earlier substrings are all more than ``radius`` bits apart, written at
    ``base[c]`` (at most ``cap[c]`` of them; the count is returned per
    chunk, so a chunk that did not fit can be rerun with more room)."""
    counts = np.zeros(len(lo), dtype=np.int64)
    for c in numba.prange(len(lo)):
        n = 0
        limit = cap[c]
        at = base[c]
        for u in range(lo[c], hi[c]):
            key = unique[u]
            for mask in masks:
                other = key ^ mask
                if self_join and other < key:
                    continue
                r0 = ref_offsets[other]
                r1 = ref_offsets[other + 1]
                if r0 == r1:
                    continue
                same = self_join and other == key
                for a in range(starts[u], starts[u + 1]):
                    code = qcodes[a]
                    b0 = a + 1 if same else r0
                    for b in range(b0, r1):
                        x = code ^ rcodes[b]
                        d = popcount(x)
                        if d > threshold:
                            continue
                        # reported by an earlier substring already?
                        seen = False
                        for e in earlier:
                            if popcount(x & e) <= radius:
                                seen = True
                                break
                        if seen:
                            continue
                        if n < limit:
                            qa = qorder[a]
                            rb = rorder[b]
                            if self_join and rb < qa:
                                qa, rb = rb, qa
                            oi[at + n] = qa
                            oj[at + n] = rb
                            od[at + n] = d
                        n += 1
        counts[c] = n
    return counts
