"""Cosine radius search over embeddings (``float32``).

Pairs with cosine similarity >= ``threshold`` of L2-normalised vectors,
blockwise and upper-triangular: fast matrix products (:mod:`.products`)
find candidates within a proven error margin of the threshold, and each
candidate's similarity is then computed exactly (in float64), so the pairs
are the same on every machine.
"""

import numpy as np

from fiftyone_dedup.algorithms.search import pairs
from fiftyone_dedup.algorithms.search import products as fast
from fiftyone_dedup.algorithms.search.thresholds import validate_cosine_threshold

#: queries per block of the embedding search; a block of similarities is
#: at most this many queries x ``products.COSINE_KEY_BLOCK`` keys
COSINE_QUERY_BLOCK = 1024

#: candidates are checked exactly per chunk of this many pairs
_REFINE_CHUNK = 8192


def normalize(vectors, inplace=False):
    """L2-normalises embeddings row-wise (zero rows stay zero).

    Args:
        vectors: an ``(n, d)`` array
        inplace (False): normalise ``vectors`` itself when it is a
            C-contiguous ``float32`` array (no copy)

    Returns:
        a C-contiguous ``float32`` array: a new one unless ``inplace``
    """
    x = np.asarray(vectors)
    if not (inplace and x.dtype == np.float32 and x.flags.c_contiguous):
        x = np.array(x, dtype=np.float32, order="C", copy=True)
    if x.ndim != 2:
        raise ValueError(f"Expected a 2-D array of embeddings, got {x.shape}")
    # row norms without an (n, d) temporary
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    norms = norms.astype(np.float32)[:, None]
    np.divide(x, norms, out=x, where=norms > 0)
    return x

def _exact_similarities(queries, keys, qi, kj):
    """The similarities of candidate pairs, in float64 (float32 products are
    exact in float64), by chunks."""
    out = np.empty(len(qi), dtype=np.float64)
    for start in range(0, len(qi), _REFINE_CHUNK):
        stop = start + _REFINE_CHUNK
        out[start:stop] = np.einsum(
            "ij,ij->i", queries[qi[start:stop]], keys[kj[start:stop]],
            dtype=np.float64,
        )
    return out


def _radius_block(products, queries, keys, q0, q1, threshold, k_start, upper):
    out_i, out_j, out_s = [], [], []
    for k0, k1 in products.key_blocks(k_start):
        qi, kj = products.candidates(q0, q1, k0, k1, threshold, upper)
        qi += q0
        kj += k0
        if upper:
            keep = kj > qi
            qi, kj = qi[keep], kj[keep]
        if not len(qi):
            continue
        s = _exact_similarities(queries, keys, qi, kj)
        keep = s >= threshold
        out_i.append(qi[keep])
        out_j.append(kj[keep])
        out_s.append(np.minimum(s[keep], 1.0).astype(np.float32))
    return out_i, out_j, out_s


def cosine_pairs(
    vectors,
    threshold,
    block_size=None,
    progress=None,
    normalized=False,
    method="auto",
):
    """All pairs of embeddings with cosine similarity >= ``threshold``.

    Exact: blocks of fast inner products over normalised vectors give the
    candidates within a proven margin of the threshold, whose similarities
    are then computed exactly; upper-triangular; memory is the vectors, one
    block of products and the pairs found.

    Args:
        vectors: an ``(n, d)`` array
        threshold: the minimum cosine similarity, in ``[-1, 1]``
        block_size (None): queries per block; ``None`` for
            :data:`COSINE_QUERY_BLOCK`
        progress (None): an optional callable invoked with the number of rows
            just searched
        normalized (False): whether ``vectors`` are already L2-normalised
            ``float32``
        method ("auto"): how candidates are found (see
            :func:`products.resolve_similarity_method`); the result is the same

    Returns:
        a tuple ``(i, j, s)`` of arrays with ``i < j`` and ``s`` the
        similarity
    """
    threshold = validate_cosine_threshold(threshold)
    x = vectors if normalized else normalize(vectors)
    x = np.ascontiguousarray(x, dtype=np.float32)
    block_size = block_size or COSINE_QUERY_BLOCK
    products = fast.make_products(x, x, method)
    return _search(products, x, x, threshold, block_size, True, progress)


def cosine_cross(
    query,
    reference,
    threshold,
    block_size=None,
    progress=None,
    normalized=False,
    method="auto",
):
    """Pairs of (query, reference) embeddings with cosine similarity >=
    ``threshold``; the reference set is never compared with itself.

    Args:
        query: an ``(nq, d)`` array
        reference: an ``(nr, d)`` array
        threshold: the minimum cosine similarity, in ``[-1, 1]``
        block_size (None): queries per block; ``None`` for
            :data:`COSINE_QUERY_BLOCK`
        progress (None): an optional callable invoked with the number of
            queries just searched
        normalized (False): whether the vectors are already L2-normalised
        method ("auto"): how candidates are found (see
            :func:`products.resolve_similarity_method`); the result is the same

    Returns:
        a tuple ``(qi, rj, s)`` of arrays
    """
    threshold = validate_cosine_threshold(threshold)
    q = query if normalized else normalize(query)
    r = reference if normalized else normalize(reference)
    q = np.ascontiguousarray(q, dtype=np.float32)
    r = np.ascontiguousarray(r, dtype=np.float32)
    if q.shape[1] != r.shape[1]:
        raise ValueError(
            f"Query embeddings have {q.shape[1]} dimensions but reference "
            f"embeddings have {r.shape[1]}; they must come from the same model"
        )
    block_size = block_size or COSINE_QUERY_BLOCK
    products = fast.make_products(q, r, method) if len(r) else None
    return _search(products, q, r, threshold, block_size, False, progress)


def _search(products, queries, keys, threshold, block_size, upper, progress):
    # every block of queries against the keys (``upper``: a self-search,
    # each block against itself and the keys after it); no products: no keys
    out_i, out_j, out_s = [], [], []
    for start in range(0, len(queries), block_size):
        stop = min(len(queries), start + block_size)
        if products is not None:
            k_start = start if upper else 0
            i, j, s = _radius_block(
                products, queries, keys, start, stop, threshold, k_start, upper
            )
            out_i += i
            out_j += j
            out_s += s
        if progress is not None:
            progress(stop - start)
    return pairs.concat(out_i, out_j, out_s, np.float32)

