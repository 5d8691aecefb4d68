"""Nearest-neighbour search: each query's ``k`` closest references within
a bound (hashes by Hamming distance, embeddings by cosine similarity)."""

import numpy as np

from fiftyone_dedup.algorithms.search import pairs
from fiftyone_dedup.algorithms.search.hamming import DEFAULT_BLOCK_SIZE, as_binary, load_faiss


def knn_pairs(
    query, reference, k, threshold, metric, exclude_self=False, block_size=None, progress=None
):
    """Each query's ``k`` nearest references within a bound: a candidate
    search whose output grows linearly with the queries, however alike the
    data (a radius search on a homogeneous set returns nearly every pair).

    Args:
        query: ``uint64`` hashes, or L2-normalised ``float32`` vectors
        reference: the same kind, searched for each query
        k: the most neighbours kept per query
        threshold: the bound (maximum bits for ``"hamming"``, minimum cosine
            similarity for ``"cosine"``)
        metric: ``"hamming"`` or ``"cosine"``
        exclude_self (False): whether ``query`` is ``reference`` and each
            query's own row is skipped
        block_size (None): queries per faiss call
        progress (None): an optional callable invoked with the number of
            queries just searched

    Returns:
        a tuple ``(qi, rj, s)`` of arrays: query row, reference row, score
    """
    faiss = load_faiss()
    block_size = block_size or DEFAULT_BLOCK_SIZE
    n_ref = len(reference)
    kk = min(n_ref, int(k) + (1 if exclude_self else 0))
    out_i, out_j, out_s = [], [], []
    if kk == 0 or len(query) == 0:
        return pairs.concat(out_i, out_j, out_s, np.float32)
    if metric == "hamming":
        index = faiss.IndexBinaryFlat(64)
        index.add(as_binary(reference))
        q = as_binary(query)
    else:
        reference = np.ascontiguousarray(reference, dtype=np.float32)
        index = faiss.IndexFlatIP(reference.shape[1])
        index.add(reference)
        q = np.ascontiguousarray(query, dtype=np.float32)
    for start in range(0, len(q), block_size):
        stop = min(len(q), start + block_size)
        D, I = index.search(q[start:stop], kk)
        qi = np.repeat(np.arange(start, stop, dtype=np.int64), kk)
        rj, d = I.ravel().astype(np.int64), D.ravel()
        keep = rj >= 0
        keep &= (d <= threshold) if metric == "hamming" else (d >= threshold)
        if exclude_self:
            # at most k besides itself (ties may leave its own row out)
            keep = keep.reshape(-1, kk)
            keep &= I != np.arange(start, stop)[:, None]
            keep &= np.cumsum(keep, axis=1) <= k
            keep = keep.ravel()
        out_i.append(qi[keep])
        out_j.append(rj[keep])
        out_s.append(np.minimum(d[keep], 1.0) if metric == "cosine" else d[keep])
        if progress is not None:
            progress(stop - start)
    return pairs.concat(out_i, out_j, out_s, np.float32 if metric == "cosine" else np.int32)
