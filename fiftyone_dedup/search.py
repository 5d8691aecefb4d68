"""Exact radius search over encodings, pure numpy/faiss (no FiftyOne).

Two kinds of encodings, one shape of answer: sparse pairs ``(i, j, d)``
within a threshold, never an N x N matrix.

-   64-bit hashes (``uint64``): Hamming distance <= ``threshold``, searched
    with faiss's binary flat index (popcount over packed codes), blockwise and
    upper-triangular so that each pair is computed once.
-   embeddings (``float32``): cosine similarity >= ``threshold``, searched
    with faiss's inner-product range search on L2-normalised vectors,
    blockwise.

Identical encodings are collapsed first (:func:`unique_rows`): ten thousand
copies of one image cost one search row, not fifty million pairs.

A query set can be searched against a separate reference set, which is never
compared with itself (cross-dataset search).
"""

import logging

import numpy as np

logger = logging.getLogger(__name__)

#: queries per faiss call; bounds the memory of one call's results
DEFAULT_BLOCK_SIZE = 16384


def _faiss():
    import faiss

    return faiss


def validate_hamming_threshold(threshold, bits=64):
    """Checks a Hamming threshold.

    Args:
        threshold: the maximum Hamming distance, in bits
        bits (64): the hash length

    Returns:
        the threshold as an int

    Raises:
        ValueError: if it is not an integer in ``[0, bits]``
    """
    if not _is_number(threshold) or not _is_integral(threshold):
        raise ValueError(
            f"threshold must be a whole number of bits between 0 and {bits} "
            f"for hashes (maximum Hamming distance; ~10 is typical), got "
            f"{threshold!r}"
        )
    threshold = int(threshold)
    if not 0 <= threshold <= bits:
        raise ValueError(
            f"threshold must be between 0 and {bits} bits for hashes "
            f"(maximum Hamming distance; ~10 is typical), got {threshold}"
        )
    return threshold


def validate_cosine_threshold(threshold):
    """Checks a cosine similarity threshold.

    Args:
        threshold: the minimum cosine similarity

    Returns:
        the threshold as a float

    Raises:
        ValueError: if it is not a number in ``[-1, 1]``
    """
    value = float(threshold) if _is_number(threshold) else None
    if value is None or not np.isfinite(value) or not -1.0 <= value <= 1.0:
        raise ValueError(
            "threshold must be a minimum cosine similarity between -1 and 1 "
            f"for embeddings (0.82-0.9 is typical), got {threshold!r}"
        )
    return value


def _is_number(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(
        x, (bool, np.bool_)
    )


def _is_integral(x):
    try:
        return float(x) == int(x)
    except (TypeError, ValueError, OverflowError):
        return False


def unique_rows(codes):
    """Collapses identical encodings.

    Args:
        codes: an ``(n,)`` or ``(n, d)`` array

    Returns:
        a tuple ``(unique, inverse)`` such that ``unique[inverse] == codes``;
        ``unique`` keeps first-occurrence order
    """
    codes = np.asarray(codes)
    if len(codes) == 0:
        return codes, np.zeros(0, dtype=np.int64)
    axis = 0 if codes.ndim > 1 else None
    _, first, inverse = np.unique(
        codes, axis=axis, return_index=True, return_inverse=True
    )
    inverse = inverse.reshape(-1)
    # Renumber so that unique rows keep their first-occurrence order
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return codes[np.sort(first)], rank[inverse]


def _as_binary(codes):
    codes = np.ascontiguousarray(np.asarray(codes, dtype=np.uint64))
    return codes.view(np.uint8).reshape(len(codes), 8)


def _split_range_result(lims, D, I, offset):
    counts = np.diff(lims).astype(np.int64)
    qi = np.repeat(np.arange(len(counts), dtype=np.int64), counts) + offset
    return qi, I.astype(np.int64), D


def hamming_pairs(
    codes, threshold, block_size=DEFAULT_BLOCK_SIZE, progress=None
):
    """All pairs of 64-bit hashes within a Hamming distance (inclusive).

    Args:
        codes: a ``uint64`` array of ``n`` hashes
        threshold: the maximum Hamming distance, in bits
        block_size (DEFAULT_BLOCK_SIZE): queries per faiss call
        progress (None): an optional callable invoked with the number of rows
            just searched

    Returns:
        a tuple ``(i, j, d)`` of arrays with ``i < j``
    """
    threshold = validate_hamming_threshold(threshold)
    faiss = _faiss()
    binary = _as_binary(codes)
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
    return _concat(out_i, out_j, out_d, np.int32)


def hamming_cross(
    query, reference, threshold, block_size=DEFAULT_BLOCK_SIZE, progress=None
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

    Returns:
        a tuple ``(qi, rj, d)`` of arrays
    """
    threshold = validate_hamming_threshold(threshold)
    faiss = _faiss()
    qbin, rbin = _as_binary(query), _as_binary(reference)
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
    return _concat(out_i, out_j, out_d, np.int32)


def normalize(vectors):
    """L2-normalises embeddings row-wise (zero rows stay zero).

    Args:
        vectors: an ``(n, d)`` array

    Returns:
        a new C-contiguous ``float32`` array (``vectors`` is left as it is)
    """
    x = np.array(vectors, dtype=np.float32, order="C", copy=True)
    if x.ndim != 2:
        raise ValueError(f"Expected a 2-D array of embeddings, got {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


def cosine_pairs(
    vectors,
    threshold,
    block_size=DEFAULT_BLOCK_SIZE,
    progress=None,
    normalized=False,
):
    """All pairs of embeddings with cosine similarity >= ``threshold``.

    Exact: blockwise inner products over normalised vectors (faiss range
    search), upper-triangular; memory is the vectors plus the pairs found.

    Args:
        vectors: an ``(n, d)`` array
        threshold: the minimum cosine similarity, in ``[-1, 1]``
        block_size (DEFAULT_BLOCK_SIZE): queries per faiss call
        progress (None): an optional callable invoked with the number of rows
            just searched
        normalized (False): whether ``vectors`` are already L2-normalised
            ``float32``

    Returns:
        a tuple ``(i, j, s)`` of arrays with ``i < j`` and ``s`` the
        similarity
    """
    threshold = validate_cosine_threshold(threshold)
    faiss = _faiss()
    x = vectors if normalized else normalize(vectors)
    n, dim = x.shape
    radius = _similarity_radius(threshold)
    out_i, out_j, out_s = [], [], []
    for start in range(0, n, block_size):
        stop = min(n, start + block_size)
        index = faiss.IndexFlatIP(dim)
        index.add(x[start:])
        lims, D, I = index.range_search(x[start:stop], radius)
        qi, rj, s = _split_range_result(lims, D, I, start)
        rj += start
        keep = (rj > qi) & (s >= threshold)
        out_i.append(qi[keep])
        out_j.append(rj[keep])
        out_s.append(np.minimum(s[keep], 1.0).astype(np.float32))
        if progress is not None:
            progress(stop - start)
    return _concat(out_i, out_j, out_s, np.float32)


def cosine_cross(
    query,
    reference,
    threshold,
    block_size=DEFAULT_BLOCK_SIZE,
    progress=None,
    normalized=False,
):
    """Pairs of (query, reference) embeddings with cosine similarity >=
    ``threshold``; the reference set is never compared with itself.

    Args:
        query: an ``(nq, d)`` array
        reference: an ``(nr, d)`` array
        threshold: the minimum cosine similarity, in ``[-1, 1]``
        block_size (DEFAULT_BLOCK_SIZE): queries per faiss call
        progress (None): an optional callable invoked with the number of
            queries just searched
        normalized (False): whether the vectors are already L2-normalised

    Returns:
        a tuple ``(qi, rj, s)`` of arrays
    """
    threshold = validate_cosine_threshold(threshold)
    faiss = _faiss()
    q = query if normalized else normalize(query)
    r = reference if normalized else normalize(reference)
    if q.shape[1] != r.shape[1]:
        raise ValueError(
            f"Query embeddings have {q.shape[1]} dimensions but reference "
            f"embeddings have {r.shape[1]}; they must come from the same model"
        )
    index = faiss.IndexFlatIP(r.shape[1])
    if len(r):
        index.add(r)
    radius = _similarity_radius(threshold)
    out_i, out_j, out_s = [], [], []
    for start in range(0, len(q), block_size):
        stop = min(len(q), start + block_size)
        if len(r):
            lims, D, I = index.range_search(q[start:stop], radius)
            qi, rj, s = _split_range_result(lims, D, I, start)
            keep = s >= threshold
            out_i.append(qi[keep])
            out_j.append(rj[keep])
            out_s.append(np.minimum(s[keep], 1.0).astype(np.float32))
        if progress is not None:
            progress(stop - start)
    return _concat(out_i, out_j, out_s, np.float32)


def _similarity_radius(threshold):
    # faiss keeps inner products strictly above the radius; step just below
    # the threshold (float32 rounding) and filter exactly afterwards
    return float(np.nextafter(np.float32(threshold), np.float32(-2.0))) - 1e-6


def _concat(out_i, out_j, out_d, dtype):
    if not out_i:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), np.zeros(0, dtype=dtype)
    return (
        np.concatenate(out_i),
        np.concatenate(out_j),
        np.concatenate(out_d).astype(dtype),
    )
