"""The pairs of a verified duplicates run (``verify="orb"``): candidates
from a bound looser than the threshold and the turned/mirrored DHashes, at
most :data:`CANDIDATES_PER_SAMPLE` per sample, each then verified with
local features (see :mod:`fiftyone_dedup.algorithms.verify`).
"""

import logging

import numpy as np

from fiftyone_dedup.algorithms import grouping
from fiftyone_dedup.algorithms import search
from fiftyone_dedup.algorithms import verify
from fiftyone_dedup.engine.parts import stack
from fiftyone_dedup.progress import ProgressBar

logger = logging.getLogger(__name__)


#: candidates of a verified run: how far past ``threshold`` the encoder's own
#: search looks, per metric (bits for hashes, similarity for embeddings)
CANDIDATE_MARGIN = {"hamming": 10, "cosine": 0.25}

#: the most candidates kept per sample (its nearest), so that the cost of
#: verification grows linearly with the samples however alike they look
CANDIDATES_PER_SAMPLE = 12

#: the largest DHash distance between an image's turned or mirrored version
#: and another image for the pair to be a candidate
DIHEDRAL_BITS = 12


def verify_settings(spec, threshold, method):
    """What decides a verified run, as its record keeps it.

    Args:
        spec: the encoder's spec
        threshold: the run's threshold
        method: the verification method

    Returns:
        a dict: ``method``, ``candidate_threshold``,
        ``candidates_per_sample``, ...
    """
    return {
        "method": method,
        "candidate_threshold": spec.loosen(threshold, CANDIDATE_MARGIN[spec.metric]),
        "candidates_per_sample": CANDIDATES_PER_SAMPLE,
        "dihedral_bits": DIHEDRAL_BITS,
        "min_inliers": verify.MIN_INLIERS,
        "min_inlier_ratio": verify.MIN_INLIER_RATIO,
        "min_coverage": verify.MIN_COVERAGE,
        "feature_size": verify.FEATURE_SIZE,
    }


def _candidates(spec, codes_q, codes_r, dihedral_q, ident_r, bound, cross, progress):
    # the encoder's nearest within the looser bound, plus the nearest of
    # each image's 7 turned/mirrored DHashes (flat images, DHash 0, have none)
    k = CANDIDATES_PER_SAMPLE
    with ProgressBar(
        total=len(codes_q), progress=progress, label="Searching candidates",
        iters_str="encodings",
    ) as pb:
        qa, rb, _ = search.knn_pairs(
            codes_q, codes_r, k, bound, spec.metric, exclude_self=not cross,
            progress=pb.update,
        )
    ok_q = np.flatnonzero(dihedral_q[:, 0] != 0) if len(dihedral_q) else np.zeros(0, np.int64)
    if len(ok_q) and len(ident_r):
        var = dihedral_q[ok_q, 1:].ravel()
        owner = np.repeat(ok_q, 7)
        vi, rj, _ = search.knn_pairs(var, ident_r, 2, DIHEDRAL_BITS, "hamming")
        va = owner[vi]
        if not cross:
            keep = va != rj
            va, rj = va[keep], rj[keep]
        qa = np.r_[qa, va]
        rb = np.r_[rb, rj]
    if not cross:
        qa, rb = np.minimum(qa, rb), np.maximum(qa, rb)
    pairs = np.unique(np.stack([qa, rb], axis=1), axis=0) if len(qa) else np.zeros((0, 2), np.int64)
    return pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)


def _features(items, num_workers, progress):
    feats = [None] * len(items)
    with ProgressBar(
        total=len(items), progress=progress, label="Features for verification",
        iters_str="images",
    ) as pb:
        for k, (f, _) in enumerate(pb(verify.files_features(items.paths, num_workers=num_workers))):
            feats[k] = f
    failed = [items.paths[k] for k, f in enumerate(feats) if f is None]
    if failed:
        logger.warning(
            "%d image(s) could not be read for verification; they are not "
            "called duplicates (first: %s); verify='none' uses the stored "
            "encodings alone", len(failed), failed[0],
        )
    dihedral = np.zeros((len(items), 8), dtype=np.uint64)
    for k, f in enumerate(feats):
        if f is not None:
            dihedral[k] = f.dihedral
    return feats, dihedral


def verified_search(spec, parts, items, mode, settings, num_workers, progress):
    """Candidates, then verification; every item its own key.

    Returns:
        ``(keys, a, b, s, is_ref, inliers, cand_s, verified)``: the verified
        pairs with their encoder scores and inlier counts, and every
        candidate's score and whether it was verified (for the histogram)
    """
    feats, dihedral = _features(items, num_workers, progress)
    bound = settings["candidate_threshold"]
    keys = np.arange(len(items), dtype=np.int64)
    if mode != "query":
        codes = stack(spec, [p.encodings for p in parts])
        a, b = _candidates(spec, codes, codes, dihedral, dihedral[:, 0], bound, False, progress)
        s = spec.pair_scores(codes, codes, a, b)
        is_ref = None
        fa, fb = a, b
    else:
        is_ref = np.array([parts[p].role == "reference" for p in items.part], dtype=bool)
        qidx, ridx = np.flatnonzero(~is_ref), np.flatnonzero(is_ref)
        q = stack(spec, [p.encodings for p in parts if p.role == "query"])
        r = stack(spec, [p.encodings for p in parts if p.role == "reference"])
        qa, rb = _candidates(spec, q, r, dihedral[qidx], dihedral[ridx, 0], bound, True, progress)
        s = spec.pair_scores(q, r, qa, rb)
        # one key space: query items first, then reference items
        order = np.r_[qidx, ridx]
        keys = np.empty(len(items), dtype=np.int64)
        keys[order] = np.arange(len(items))
        fa, fb = qidx[qa], ridx[rb]
        a, b = qa, rb + len(qidx)
    with ProgressBar(
        total=len(a), progress=progress, label="Verifying candidates", iters_str="pairs"
    ) as pb:
        inliers = verify.verify_pairs(feats, fa, fb, progress=pb.update)
    ok = inliers >= 0
    logger.info(
        "Verification: %d of %d candidate pair(s) show the same picture",
        int(ok.sum()), len(a),
    )
    return keys, a[ok], b[ok], s[ok], is_ref, inliers[ok], s, ok


def item_inliers(keys, a, b, inliers, groups):
    """Each duplicate's inlier count with the sample it points to (``-1``
    for the others)."""
    lookup = {}
    for i, j, n in zip(a.tolist(), b.tolist(), inliers.tolist()):
        lookup[(i, j)] = lookup[(j, i)] = n
    out = np.full(len(keys), -1, dtype=np.int64)
    for i in np.flatnonzero(groups.role == grouping.DUPLICATE):
        out[i] = lookup.get((int(keys[i]), int(keys[groups.kept[i]])), -1)
    return out
