"""Hamming radius search over 64-bit hashes (``uint64``).

Pairs within ``threshold`` bits (inclusive), searched with faiss's binary
flat index (popcount over packed codes), blockwise and upper-triangular so
that each pair is computed once; large sets of spread-out codes by
multi-index hashing instead (:mod:`.mih`), which gives the same pairs with
a small fraction of the comparisons.
"""

import logging

import numpy as np

from fiftyone_dedup.algorithms.search import mih
from fiftyone_dedup.algorithms.search import pairs
from fiftyone_dedup.algorithms.search.thresholds import validate_hamming_threshold

logger = logging.getLogger(__name__)

#: queries per faiss call; bounds the memory of one call's results
DEFAULT_BLOCK_SIZE = 16384

HAMMING_METHODS = ("auto", "flat", "mih")


def load_faiss():
    """The faiss module (imported on first use)."""
    import faiss

    return faiss


def as_binary(codes):
    """Hashes as faiss's packed binary codes: ``(n, 8)`` ``uint8``."""
    codes = np.ascontiguousarray(np.asarray(codes, dtype=np.uint64))
    return codes.view(np.uint8).reshape(len(codes), 8)


def _split_range_result(lims, D, I, offset):
    counts = np.diff(lims).astype(np.int64)
    qi = np.repeat(np.arange(len(counts), dtype=np.int64), counts) + offset
    return qi, I.astype(np.int64), D


def mih_plan(query, reference, threshold, method):
    """The multi-index search to run, or ``None`` for the flat index.

    Args:
        query: ``uint64`` query codes
        reference: ``uint64`` reference codes, or ``None`` for a self-join
        threshold: the maximum Hamming distance, in bits
        method: one of :data:`HAMMING_METHODS`

    Returns:
        a :class:`.mih.Plan`, or ``None``
    """
    if method not in HAMMING_METHODS:
        raise ValueError(
            f"method must be one of {', '.join(HAMMING_METHODS)}, got {method!r}"
        )
    if method == "flat" or not len(query) or (reference is not None and not len(reference)):
        return None
    if not mih.available():
        logger.debug("multi-index hashing needs numba; using the flat index")
        return None
    plan = mih.Plan(query, reference, threshold)
    if method == "mih" or plan.worth_it():
        logger.debug("Hamming search by multi-index hashing (%d substrings)", plan.m)
        return plan
    return None


def hamming_pairs(
    codes, threshold, block_size=DEFAULT_BLOCK_SIZE, progress=None, method="auto"
):
    """All pairs of 64-bit hashes within a Hamming distance (inclusive).

    Args:
        codes: a ``uint64`` array of ``n`` hashes
        threshold: the maximum Hamming distance, in bits
        block_size (DEFAULT_BLOCK_SIZE): queries per faiss call
        progress (None): an optional callable invoked with the number of rows
            just searched
        method ("auto"): ``"flat"`` (faiss's brute-force index), ``"mih"``
            (multi-index hashing, needs numba) or ``"auto"`` (multi-index
            hashing where it makes far fewer comparisons: large sets of
            spread-out codes); the result is the same

    Returns:
        a tuple ``(i, j, d)`` of arrays with ``i < j``, sorted by ``(i, j)``
    """
    threshold = validate_hamming_threshold(threshold)
    codes = np.ascontiguousarray(np.asarray(codes, dtype=np.uint64))
    plan = mih_plan(codes, None, threshold, method)
    if plan is not None:
        return plan.search(progress=progress)
    faiss = load_faiss()
    binary = as_binary(codes)
    n = len(binary)
    out_i, out_j, out_d = [], [], []
    for start in range(0, n, block_size):
        stop = min(n, start + block_size)
        # Upper triangle: this block against itself and everything after it
        index = faiss.IndexBinaryFlat(64)
        index.add(binary[start:])
        lims, D, I = index.range_search(binary[start:stop], threshold + 1)
        qi, rj, d = _split_range_result(lims, D, I, start)
        rj += start
        keep = rj > qi
        out_i.append(qi[keep])
        out_j.append(rj[keep])
        out_d.append(d[keep].astype(np.int32))
        if progress is not None:
            progress(stop - start)
    return pairs.concat(out_i, out_j, out_d, np.int32)


def hamming_cross(
    query, reference, threshold, block_size=DEFAULT_BLOCK_SIZE, progress=None,
    method="auto",
):
    """Pairs of (query, reference) hashes within a Hamming distance.

    The reference set is indexed once and never compared with itself, so the
    cost grows with ``len(query) * len(reference)``.

    Args:
        query: a ``uint64`` array of query hashes
        reference: a ``uint64`` array of reference hashes
        threshold: the maximum Hamming distance, in bits
        block_size (DEFAULT_BLOCK_SIZE): queries per faiss call
        progress (None): an optional callable invoked with the number of
            queries just searched
        method ("auto"): ``"flat"``, ``"mih"`` or ``"auto"`` (see
            :func:`hamming_pairs`); the result is the same

    Returns:
        a tuple ``(qi, rj, d)`` of arrays, sorted by ``(qi, rj)``
    """
    threshold = validate_hamming_threshold(threshold)
    query = np.ascontiguousarray(np.asarray(query, dtype=np.uint64))
    reference = np.ascontiguousarray(np.asarray(reference, dtype=np.uint64))
    plan = mih_plan(query, reference, threshold, method)
    if plan is not None:
        return plan.search(progress=progress)
    faiss = load_faiss()
    qbin, rbin = as_binary(query), as_binary(reference)
    index = faiss.IndexBinaryFlat(64)
    if len(rbin):
        index.add(rbin)
    out_i, out_j, out_d = [], [], []
    for start in range(0, len(qbin), block_size):
        stop = min(len(qbin), start + block_size)
        if len(rbin):
            lims, D, I = index.range_search(qbin[start:stop], threshold + 1)
            qi, rj, d = _split_range_result(lims, D, I, start)
            out_i.append(qi)
            out_j.append(rj)
            out_d.append(d.astype(np.int32))
        if progress is not None:
            progress(stop - start)
    return pairs.concat(out_i, out_j, out_d, np.int32)

