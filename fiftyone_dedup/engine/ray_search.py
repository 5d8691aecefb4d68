"""Searching on a Ray cluster (``executor="ray"``).

Exact: the upper triangle of the pair matrix is cut into tiles (cross
searches: query x reference tiles), each tile a Ray task running the local
search, so the pairs are exactly the local ones. Approximate (CNN, with
``ivf_nprobe``): an inverted-file partition whose lists are searched
exactly, with its recall measured. The pair list comes back to the driver,
where grouping, keep policies and the chain guard run as in a local run.
"""

import logging

import numpy as np

from fiftyone_dedup.engine.distributed import MAX_RETRIES, connect

logger = logging.getLogger(__name__)

#: encodings per side of a search tile
TILE_SIZE = 16384


class Searcher:
    """The tiled Ray search, with the local search functions' signatures.

    Args:
        ray_address (None): see :func:`connect`
        tile_size (None): encodings per tile side; ``None`` for
            :data:`TILE_SIZE`
    """

    def __init__(self, ray_address=None, tile_size=None, ivf_nprobe=None):
        self.ray_address = ray_address
        self.tile_size = tile_size or TILE_SIZE
        self.ivf_nprobe = _check_nprobe(ivf_nprobe)
        self.num_tiles = 0
        self.stats = {"executor": "ray", "method": "exact tiles"}

    def searchers(self, spec):
        """The ``(pairs, cross)`` functions for an encoder spec."""
        return (
            lambda codes, threshold, progress=None: self.pairs(
                spec, codes, threshold, progress
            ),
            lambda q, r, threshold, progress=None: self.cross(
                spec, q, r, threshold, progress
            ),
        )

    def pairs(self, spec, codes, threshold, progress=None):
        """All pairs within ``threshold``, ``i < j``: tiles of the upper
        triangle, each searched by the local code (``spec.pairs``)."""
        if self.ivf_nprobe and spec.uses_model:
            i, j, s, stats = ivf_cosine_pairs(
                codes, threshold, self.ivf_nprobe, ray_address=self.ray_address
            )
            self.stats = {"executor": "ray", **stats}
            if progress is not None:
                progress(len(codes))
            return i, j, s
        n, t = len(codes), self.tile_size
        starts = list(range(0, n, t))
        tiles = [(a, b) for ai, a in enumerate(starts) for b in starts[ai:]]
        return self._run(spec, codes, codes, threshold, tiles, True, progress, n)

    def cross(self, spec, query, reference, threshold, progress=None):
        """All (query, reference) pairs within ``threshold``, by
        query x reference tiles."""
        t = self.tile_size
        tiles = [
            (a, b) for a in range(0, len(query), t) for b in range(0, len(reference), t)
        ]
        return self._run(
            spec, query, reference, threshold, tiles, False, progress, len(query)
        )

    def _run(self, spec, q, r, threshold, tiles, upper, progress, total):
        dtype = np.float32 if spec.similarity else np.int32
        if not tiles:
            e = np.zeros(0, dtype=np.int64)
            return e, e.copy(), np.zeros(0, dtype=dtype)
        ray = connect(self.ray_address)
        qref = ray.put(np.ascontiguousarray(q))
        rref = qref if upper else ray.put(np.ascontiguousarray(r))
        task = ray.remote(_search_tile).options(num_cpus=1, max_retries=MAX_RETRIES)
        t = self.tile_size
        refs = {
            task.remote(qref, rref, a, b, t, threshold, spec, upper): (a, b)
            for a, b in tiles
        }
        self.num_tiles += len(tiles)
        self.stats["tiles"] = self.num_tiles
        out_i, out_j, out_s = [], [], []
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                i, j, s = ray.get(ref)
                out_i.append(i)
                out_j.append(j)
                out_s.append(s)
                a, b = refs[ref]
                if progress is not None and b == (a if upper else 0):
                    progress(min(t, total - a))
        i, j, s = np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_s)
        # the local search's order: by query, then key
        order = np.lexsort((j, i))
        return i[order], j[order], s[order].astype(dtype)


def _search_tile(q, r, a, b, t, threshold, spec, upper):
    # a Ray task: one tile, searched by the encoder's local search
    qa, rb = q[a : a + t], r[b : b + t]
    if upper and a == b:
        i, j, s = spec.pairs(qa, threshold)
    else:
        i, j, s = spec.cross(qa, rb, threshold)
    return i + a, j + b, s


# -------------------------------------------------------------------- IVF

#: vectors per list the k-means aims at (lists = n / this, at least 1)
IVF_LIST_SIZE = 1024

#: queries whose exact pairs measure the IVF recall in every run
IVF_RECALL_SAMPLE = 256


def _check_nprobe(nprobe):
    if nprobe is None:
        return None
    if isinstance(nprobe, bool) or not isinstance(nprobe, (int, np.integer)) or nprobe < 1:
        raise ValueError(f"ivf_nprobe must be a whole number of lists, 1 or more; got {nprobe!r}")
    return int(nprobe)


def ivf_cosine_pairs(
    vectors, threshold, nprobe, nlist=None, recall_sample=None, seed=0,
    ray_address=None,
):
    """Pairs of normalised embeddings with cosine similarity >= threshold,
    by an inverted-file partition searched on Ray: approximate, with its
    recall against exact search measured on a sample.

    k-means centroids are trained on a sample; each vector joins the
    ``nprobe`` lists of its nearest centroids; each list is searched exactly
    (the local code) as a Ray task; pairs found in several lists are kept
    once. A pair is missed only if its two vectors share no list.

    Args:
        vectors: an ``(n, d)`` array of L2-normalised ``float32`` vectors
        threshold: the minimum cosine similarity
        nprobe: lists per vector (the knob: more is slower and finds more)
        nlist (None): the number of lists; ``None`` for ``n /``
            :data:`IVF_LIST_SIZE`
        recall_sample (None): queries for the recall measurement; ``None``
            for :data:`IVF_RECALL_SAMPLE`
        seed (0): the seed of the k-means and of the sample
        ray_address (None): see :func:`connect`

    Returns:
        a tuple ``(i, j, s, stats)``: pairs with ``i < j`` in the exact
        search's order, and a dict with ``method``, ``nlist``, ``nprobe``,
        ``recall``, ``recall_sample`` and ``recall_pairs``
    """
    import faiss

    from fiftyone_dedup.algorithms import search

    nprobe = _check_nprobe(nprobe)
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = x.shape
    nlist = max(1, min(n, nlist or n // IVF_LIST_SIZE or 1))
    nprobe = min(nprobe, nlist)
    rng = np.random.default_rng(seed)
    if nlist > 1:
        train = x[rng.choice(n, size=min(n, 64 * nlist), replace=False)]
        km = faiss.Kmeans(d, nlist, niter=20, seed=seed, spherical=True, verbose=False)
        km.train(train)
        index = faiss.IndexFlatIP(d)
        index.add(km.centroids)
        _, assign = index.search(x, nprobe)
    else:
        assign = np.zeros((n, 1), dtype=np.int64)
    owners = np.repeat(np.arange(n, dtype=np.int64), assign.shape[1])
    lists = assign.reshape(-1)
    order = np.argsort(lists, kind="stable")
    bounds = np.searchsorted(lists[order], np.arange(nlist + 1))
    members = [owners[order[bounds[k] : bounds[k + 1]]] for k in range(nlist)]

    ray = connect(ray_address)
    xref = ray.put(x)
    task = ray.remote(_search_list).options(num_cpus=1, max_retries=MAX_RETRIES)
    refs = [task.remote(xref, m, threshold) for m in members if len(m) > 1]
    parts = ray.get(refs)
    if parts:
        i = np.concatenate([p[0] for p in parts])
        j = np.concatenate([p[1] for p in parts])
        s = np.concatenate([p[2] for p in parts])
    else:
        i = j = np.zeros(0, dtype=np.int64)
        s = np.zeros(0, dtype=np.float32)
    key = i * n + j
    key, first = np.unique(key, return_index=True)  # sorted: by i, then j
    i, j, s = i[first], j[first], s[first].astype(np.float32)

    # recall: exact pairs of sampled queries against everything
    m = min(n, recall_sample or IVF_RECALL_SAMPLE)
    sample = np.sort(rng.choice(n, size=m, replace=False)) if m else np.zeros(0, np.int64)
    qi, kj, _ = search.cosine_cross(x[sample], x, threshold, normalized=True)
    qi = sample[qi]
    other = qi != kj
    a, b = np.minimum(qi[other], kj[other]), np.maximum(qi[other], kj[other])
    truth = np.unique(a * n + b)
    found = np.isin(truth, key).sum() if len(truth) else 0
    recall = float(found / len(truth)) if len(truth) else 1.0
    stats = {
        "method": "ivf", "nlist": int(nlist), "nprobe": int(nprobe),
        "recall": round(recall, 6), "recall_sample": int(m),
        "recall_pairs": int(len(truth)),
    }
    logger.info(
        "IVF search: %d lists, %d probed; recall %.4f on %d sampled queries "
        "(%d exact pairs)", nlist, nprobe, recall, m, len(truth),
    )
    return i, j, s, stats


def _search_list(x, members, threshold):
    # a Ray task: one inverted list searched exactly by the local code
    from fiftyone_dedup.algorithms import search

    members = np.sort(members)
    i, j, s = search.cosine_pairs(x[members], threshold, normalized=True)
    return members[i], members[j], s
