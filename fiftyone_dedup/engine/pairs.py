"""The pairs of a duplicates run without verification: every pair of
encodings within the threshold (within the collections, or query vs
reference only), with the flipped/rotated variants, searched locally or on
Ray; and the histogram of their scores near the threshold.
"""

import numpy as np

from fiftyone_dedup.algorithms import search
from fiftyone_dedup.engine.parts import stack, variant_codes
from fiftyone_dedup.progress import ProgressBar

#: extra room searched beyond the threshold, for the distance histogram
HISTOGRAM_MARGIN = {"hamming": 4, "cosine": 0.05}


def min_pairs(a, b, s, similarity, symmetric=True):
    """One entry per pair, with its closest score."""
    if symmetric:
        a, b = np.minimum(a, b), np.maximum(a, b)
    if len(a) == 0:
        return a, b, s
    order = np.lexsort((-s if similarity else s, b, a))
    a, b, s = a[order], b[order], s[order]
    first = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])]
    return a[first], b[first], s[first]



def ray_searcher(opts):
    """The Ray search of a run, or ``None`` for a local one.

    Args:
        opts: validated :class:`fiftyone_dedup.options.FindOptions`

    Returns:
        a :class:`fiftyone_dedup.engine.ray_search.Searcher` or ``None``
    """
    if opts.encode.executor != "ray":
        return None
    from fiftyone_dedup.engine import ray_search

    return ray_search.Searcher(opts.encode.ray_address, ivf_nprobe=opts.ivf_nprobe)


def search_pairs(spec, parts, items, mode, threshold, progress, searcher=None):
    """Every pair within ``threshold``, on the unique encodings.

    Returns:
        ``(keys, a, b, s, is_ref)``: each item's key (its unique encoding),
        the pairs of keys with their scores, and for query runs which items
        are references (else ``None``)
    """
    invariant = any(
        p.variants is not None and any(len(v) for v in p.variants) for p in parts
    )
    cross = spec.cross if searcher is None else searcher.searchers(spec)[1]
    if mode != "query":
        codes = stack(spec, [p.encodings for p in parts])
        uniq, keys = search.unique_rows(codes)
        with ProgressBar(
            total=len(uniq), progress=progress, label="Searching", iters_str="encodings"
        ) as pb:
            pairs = spec.pairs if searcher is None else searcher.searchers(spec)[0]
            a, b, s = pairs(uniq, threshold, progress=pb.update)
        vcodes, owners = variant_codes(parts, ("member",), spec)
        if invariant and len(vcodes) and len(uniq):
            with ProgressBar(
                total=len(vcodes), progress=progress,
                label="Searching flipped/rotated versions", iters_str="encodings",
            ) as pb:
                vi, uj, vs = cross(vcodes, uniq, threshold, progress=pb.update)
            va = keys[owners[vi]]
            other = va != uj
            a, b, s = min_pairs(
                np.r_[a, va[other]], np.r_[b, uj[other]], np.r_[s, vs[other]],
                spec.similarity,
            )
        return keys, a, b, s, None

    is_ref = np.array([parts[p].role == "reference" for p in items.part], dtype=bool)
    q = stack(spec, [p.encodings for p in parts if p.role == "query"])
    r = stack(spec, [p.encodings for p in parts if p.role == "reference"])
    uq, qkeys = search.unique_rows(q)
    ur, rkeys = search.unique_rows(r)
    with ProgressBar(
        total=len(uq), progress=progress, label="Searching (query vs reference)",
        iters_str="encodings",
    ) as pb:
        qa, rb, s = cross(uq, ur, threshold, progress=pb.update)
    # one key space: query keys first, then reference keys
    keys = np.empty(len(items), dtype=np.int64)
    keys[~is_ref] = qkeys
    keys[is_ref] = rkeys + len(uq)
    vcodes, owners = variant_codes(parts, ("query",), spec)
    if invariant and len(vcodes) and len(ur):
        vi, rj, vs = cross(vcodes, ur, threshold)
        qa, rb, s = min_pairs(
            np.r_[qa, keys[owners[vi]]], np.r_[rb, rj], np.r_[s, vs],
            spec.similarity, symmetric=False,
        )
    return keys, qa, rb + len(uq), s, is_ref


def identical_pairs(keys):
    """The pairs of items with identical encodings (one key)."""
    counts = np.bincount(keys) if len(keys) else np.zeros(0, dtype=np.int64)
    return int(np.sum(counts * (counts - 1) // 2))


def histogram(spec, scores, weights, threshold, search_threshold, identical=0, verified=None):
    """The histogram of pair scores up to ``search_threshold``, as a run
    records it (``results.histogram``); for verified runs, of the
    candidates, with which were verified."""
    # pairs of identical encodings are counted at distance 0 (similarity 1)
    if spec.similarity:
        lo = np.floor(search_threshold * 200) / 200
        edges = np.linspace(lo, 1.0, int(round((1.0 - lo) * 200)) + 1)
    else:
        edges = np.arange(0, int(search_threshold) + 2) - 0.5
    counts, edges = np.histogram(scores, bins=edges, weights=weights)
    counts = np.rint(counts).astype(np.int64)
    if identical and len(counts):
        counts[-1 if spec.similarity else 0] += identical
    out = {
        "metric": spec.metric,
        "threshold": threshold,
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
    }
    if verified is not None:
        # candidates of a verified run: which passed verification
        ok, _ = np.histogram(scores[verified], bins=edges)
        out["verified"] = [int(c) for c in ok]
        out["rejected"] = [int(c) - int(v) for c, v in zip(out["counts"], ok)]
        # candidates from turned/mirrored hashes, beyond the encoder's window
        beyond = (scores < edges[0]) | (scores > edges[-1])
        out["verified_beyond"] = int(np.count_nonzero(beyond & verified))
        out["rejected_beyond"] = int(np.count_nonzero(beyond & ~verified))
    return out
