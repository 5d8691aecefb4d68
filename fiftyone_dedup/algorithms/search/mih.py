"""Exact Hamming radius search over 64-bit hashes by multi-index hashing.

Multi-index hashing (Norouzi, Punjani and Fleet, CVPR 2012 / TPAMI 2014):
each code is split into ``m`` substrings; two codes within ``r`` bits
differ in at least one substring by at most ``r // m`` bits (pigeonhole).
For each substring the codes are sorted by its value (a table of buckets),
and every bucket is compared only with the buckets within ``r // m`` bits of
it (for 16-bit substrings at radius 2: 137 of the 65,536). A pair is kept in
the first substring where it qualifies, so each pair is reported once; the
result is exactly the brute-force one.

Comparisons are counted exactly before the search (:class:`Plan`), so
clustered codes (dark or blank images share most of their bits, and fill a
few huge buckets) are left to the brute-force index when the buckets would
not save work.

The kernels need numba; without it :func:`available` is false and callers
use the brute-force index.
"""

import importlib.util
import itertools
import logging
import math

import numpy as np

logger = logging.getLogger(__name__)

#: self-joins smaller than this many comparisons go to the brute-force
#: index (it takes well under a second; the tables would cost more)
MIN_COMPARISONS = 2e9

#: multi-index hashing is used when it makes fewer than this fraction of
#: the brute-force comparisons
MAX_COST_FRACTION = 0.5

#: a probe of an empty or small bucket costs about this many comparisons
#: (a random access into the table)
PROBE_COST = 4

#: substrings are at most this wide (a table of 2^24 offsets is 128 MB)
MAX_WIDTH = 24

#: the search is split into this many chunks of buckets per thread
_CHUNKS_PER_THREAD = 32



def available():
    """Whether the multi-index kernels can run (numba is installed)."""
    return importlib.util.find_spec("numba") is not None


def widths(m):
    """The widths of ``m`` substrings of a 64-bit code, as equal as
    possible (the wider ones first)."""
    base, extra = divmod(64, m)
    return [base + 1] * extra + [base] * (m - extra)


def _ball(width, radius):
    # the number of width-bit values within radius bits of a value
    return sum(math.comb(width, k) for k in range(min(width, radius) + 1))


def estimate(n_query, n_ref, threshold, m, self_join):
    """The estimated cost (in comparisons) of a search with ``m``
    substrings, for codes spread uniformly."""
    radius = threshold // m
    cost = 0.0
    for w in widths(m):
        if w > MAX_WIDTH:
            return math.inf
        probes = min(n_query, 2**w) * _ball(w, radius)
        compares = n_query * _ball(w, radius) * n_ref / 2**w
        cost += PROBE_COST * probes + (compares / 2 if self_join else compares)
    return cost


def best_m(n_query, n_ref, threshold, self_join=True):
    """The number of substrings with the least estimated cost."""
    options = range(max(3, math.ceil(64 / MAX_WIDTH)), 17)
    return min(options, key=lambda m: estimate(n_query, n_ref, threshold, m, self_join))


class _Table:
    """Codes sorted by one substring, with the start of each bucket."""

    def __init__(self, codes, shift, width):
        keys = ((codes >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int64)
        self.order = np.argsort(keys, kind="stable")
        self.codes = codes[self.order]
        sorted_keys = keys[self.order]
        counts = np.bincount(sorted_keys, minlength=1 << width)
        self.offsets = np.zeros((1 << width) + 1, dtype=np.int64)
        np.cumsum(counts, out=self.offsets[1:])
        # the distinct substring values present, and where each starts
        first = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]] if len(keys) else np.zeros(0, bool)
        self.unique = sorted_keys[first]
        self.starts = np.r_[np.flatnonzero(first), len(keys)].astype(np.int64)


def _masks(width, radius):
    out = [0]
    for k in range(1, min(width, radius) + 1):
        for bits in itertools.combinations(range(width), k):
            out.append(sum(1 << b for b in bits))
    return np.array(out, dtype=np.int64)


class Plan:
    """A multi-index search, its tables built and its comparisons counted.

    Args:
        query: the ``uint64`` query codes
        reference: the ``uint64`` reference codes, or ``None`` for a
            self-join of ``query``
        threshold: the maximum Hamming distance, in bits
        m (None): the number of substrings; ``None`` for :func:`best_m`
    """

    def __init__(self, query, reference, threshold, m=None):
        self.self_join = reference is None
        self.query = np.ascontiguousarray(query, dtype=np.uint64)
        self.reference = self.query if self.self_join else np.ascontiguousarray(
            reference, dtype=np.uint64
        )
        self.threshold = int(threshold)
        nq, nr = len(self.query), len(self.reference)
        self.m = m or best_m(nq, nr, self.threshold, self.self_join)
        self.radius = self.threshold // self.m
        self.widths = widths(self.m)
        self.shifts = np.cumsum([0] + self.widths[:-1]).tolist()
        self.substring_masks = np.array(
            [((1 << w) - 1) << s for w, s in zip(self.widths, self.shifts)],
            dtype=np.uint64,
        )
        self._tables = None

    def tables(self):
        """Per substring: ``(query table, reference table, masks)``."""
        if self._tables is None:
            self._tables = []
            for w, s in zip(self.widths, self.shifts):
                qt = _Table(self.query, s, w)
                rt = qt if self.self_join else _Table(self.reference, s, w)
                self._tables.append((qt, rt, _masks(w, self.radius)))
        return self._tables

    def brute_force_comparisons(self):
        """The comparisons a brute-force search makes."""
        nq, nr = len(self.query), len(self.reference)
        return nq * (nq - 1) / 2 if self.self_join else float(nq) * nr

    def cost(self):
        """The exact number of comparisons of this search, plus the probes
        weighted by :data:`PROBE_COST`."""
        total = 0.0
        for qt, rt, masks in self.tables():
            compares, probes = _kernels()[0](
                qt.unique, qt.starts, rt.offsets, masks, self.self_join
            )
            total += compares + PROBE_COST * probes
        return total

    def worth_it(self):
        """Whether this search beats the brute-force one by a clear margin
        (and the brute-force one is not already fast)."""
        flat = self.brute_force_comparisons()
        if flat < MIN_COMPARISONS:
            return False
        if estimate(len(self.query), len(self.reference), self.threshold, self.m,
                    self.self_join) > MAX_COST_FRACTION * flat:
            return False  # not even on spread codes: skip the tables
        return self.cost() < MAX_COST_FRACTION * flat

    def search(self, progress=None):
        """Runs the search.

        Args:
            progress (None): an optional callable invoked with a fraction of
                the query rows as each substring is done

        Returns:
            a tuple ``(i, j, d)`` sorted by ``(i, j)``; for a self-join
            ``i < j``
        """
        out_i, out_j, out_d = [], [], []
        nq = len(self.query)
        done = 0
        for k, (qt, rt, masks) in enumerate(self.tables()):
            earlier = self.substring_masks[:k].copy()
            i, j, d = _join(qt, rt, masks, earlier, self.radius, self.threshold, self.self_join)
            out_i.append(i)
            out_j.append(j)
            out_d.append(d)
            if progress is not None:
                step = (nq * (k + 1)) // self.m - done
                done += step
                progress(step)
        i, j, d = np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)
        order = np.lexsort((j, i))
        return i[order], j[order], d[order].astype(np.int32)


def _join(qt, rt, masks, earlier, radius, threshold, self_join):
    _, kernel, num_threads = _kernels()
    nu = len(qt.unique)
    chunks = max(1, min(nu, _CHUNKS_PER_THREAD * num_threads()))
    bounds = np.linspace(0, nu, chunks + 1).astype(np.int64)
    cap = np.full(chunks, 1024, dtype=np.int64)
    todo = np.arange(chunks)
    pieces = [None] * chunks
    while len(todo):
        base = np.r_[0, np.cumsum(cap[todo])].astype(np.int64)
        oi = np.empty(base[-1], dtype=np.int64)
        oj = np.empty(base[-1], dtype=np.int64)
        od = np.empty(base[-1], dtype=np.int8)
        counts = kernel(
            qt.unique, qt.starts, qt.codes, qt.order, rt.offsets, rt.codes, rt.order,
            masks, earlier, radius, threshold, self_join,
            bounds[todo], bounds[todo + 1], base, cap[todo], oi, oj, od,
        )
        again = []
        for c, chunk in enumerate(todo):
            if counts[c] > cap[chunk]:  # its buffer was too small: rerun it
                cap[chunk] = counts[c]
                again.append(chunk)
            else:
                s = slice(base[c], base[c] + counts[c])
                pieces[chunk] = (oi[s], oj[s], od[s])
        todo = np.array(again, dtype=np.int64)
    return tuple(np.concatenate([p[x] for p in pieces]) for x in range(3))


def _kernels():
    """The numba kernels ``(count, kernel, get_num_threads)``; numba is
    imported only here (it costs a fifth of a second)."""
    from fiftyone_dedup.algorithms.search import _mih_kernels as k

    return k.count, k.kernel, k.numba.get_num_threads
