"""Identical encodings collapsed before a search, so that ten thousand
copies of one image cost one search row, not fifty million pairs."""

import numpy as np

def unique_rows(codes):
    """Collapses identical encodings.

    Args:
        codes: an ``(n,)`` or ``(n, d)`` array

    Returns:
        a tuple ``(unique, inverse)`` such that ``unique[inverse] == codes``;
        ``unique`` keeps first-occurrence order (and is ``codes`` itself,
        not a copy, when all rows differ)
    """
    codes = np.asarray(codes)
    if len(codes) == 0:
        return codes, np.zeros(0, dtype=np.int64)
    if codes.ndim > 1:
        found = _unique_by_hash(codes)
        if found is not None:
            first, inverse = found
        else:  # pragma: no cover - a 64-bit hash collision
            _, first, inverse = np.unique(
                codes, axis=0, return_index=True, return_inverse=True
            )
    else:
        _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    if len(first) == len(codes):
        return codes, np.arange(len(codes))  # all distinct: no copy
    # Renumber so that unique rows keep their first-occurrence order
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return codes[np.sort(first)], rank[inverse]


def _unique_by_hash(rows, block_size=4096):
    """Groups identical rows by a 64-bit hash of their bytes, checked
    exactly; memory is a block, not a copy of ``rows`` (as a sort would be).

    Returns:
        ``(first, inverse)`` as ``np.unique`` gives them, or ``None`` if two
        different rows share a hash
    """
    raw = np.ascontiguousarray(rows)
    n = len(raw)
    data = raw.reshape(n, -1).view(np.uint8)
    pad = (-data.shape[1]) % 8
    if pad:
        data = np.concatenate([data, np.zeros((n, pad), np.uint8)], axis=1)
    words = data.view(np.uint64)
    # odd weights: every bit of every word reaches the hash (mod 2^64)
    weights = np.random.default_rng(0x5EED).integers(
        1, 2**63, size=words.shape[1], dtype=np.uint64
    ) | np.uint64(1)
    hashes = np.empty(n, dtype=np.uint64)
    for start in range(0, n, block_size):
        hashes[start : start + block_size] = np.einsum(
            "ij,j->i", words[start : start + block_size], weights
        )
    _, first, inverse, counts = np.unique(
        hashes, return_index=True, return_inverse=True, return_counts=True
    )
    inverse = inverse.reshape(-1)
    if len(first) == n:
        return first, inverse  # distinct hashes: distinct rows
    # rows that share a hash must equal their group's first row
    shared = np.flatnonzero(counts[inverse] > 1)
    for start in range(0, len(shared), block_size):
        rows_ = shared[start : start + block_size]
        if not np.array_equal(raw[rows_], raw[first[inverse[rows_]]]):
            return None
    return first, inverse

