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

#: hash runs: the largest DHash distance between a crop of an image
#: (:data:`verify.CROPS`) and another image for the pair to be a candidate,
#: and the most such candidates per image (its nearest)
CROP_BITS = 16
CROP_CANDIDATES = 3


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
        "crop_bits": CROP_BITS if spec.metric == "hamming" else None,
        "min_inliers": verify.MIN_INLIERS,
        "min_inlier_ratio": verify.MIN_INLIER_RATIO,
        "min_coverage": verify.MIN_COVERAGE,
        "feature_size": verify.FEATURE_SIZE,
    }


def _pair_keys(a, b, n, cross):
    return (a if cross else np.minimum(a, b)) * n + (b if cross else np.maximum(a, b))


def _variant_pairs(variants, owners, ident_r, k, bits, cap=None, known=None):
    # each variant's k nearest images within ``bits``; at most ``cap`` per
    # owner (its nearest of those not ``known``: a ``(keys, n, cross)`` of
    # the pairs found already)
    vi, rj, d = search.knn_pairs(variants, ident_r, k, bits, "hamming")
    va = owners[vi]
    if known is not None and len(va):
        keys, n, cross = known
        new = ~np.isin(_pair_keys(va, rj, n, cross), keys) & ((va != rj) | cross)
        va, rj, d = va[new], rj[new], d[new]
    if cap is not None and len(va):
        order = np.lexsort((d, va))
        va, rj, d = va[order], rj[order], d[order]
        _, first = np.unique(np.stack([va, rj], axis=1), axis=0, return_index=True)
        first.sort()
        va, rj = va[first], rj[first]
        rank = np.arange(len(va)) - np.searchsorted(va, va)
        va, rj = va[rank < cap], rj[rank < cap]
    return va, rj


def _candidates(spec, feats_q, feats_r, codes_q, codes_r, bound, cross, progress):
    # the encoder's nearest within the looser bound, plus the nearest of
    # each image's 7 turned/mirrored DHashes (flat images, DHash 0, have
    # none) and, for hash runs, of its crops' DHashes
    k = CANDIDATES_PER_SAMPLE
    with ProgressBar(
        total=len(codes_q), progress=progress, label="Searching candidates",
        iters_str="encodings",
    ) as pb:
        qa, rb, _ = search.knn_pairs(
            codes_q, codes_r, k, bound, spec.metric, exclude_self=not cross,
            progress=pb.update,
        )
    found_a, found_b = [qa], [rb]
    ident_r = feats_r.dihedral[:, 0]
    ok_q = np.flatnonzero(feats_q.dihedral[:, 0] != 0)
    if len(ok_q) and len(ident_r):
        va, rj = _variant_pairs(
            feats_q.dihedral[ok_q, 1:].ravel(), np.repeat(ok_q, 7), ident_r, 2, DIHEDRAL_BITS
        )
        found_a.append(va)
        found_b.append(rj)
    if spec.metric == "hamming":
        # crops of a query near a reference, and (across datasets) the other way
        ways = [(feats_q, feats_r, False)] + ([(feats_r, feats_q, True)] if cross else [])
        n_keys = max(len(codes_q), len(codes_r))
        for src, dst, swap in ways:
            a_, b_ = np.concatenate(found_a), np.concatenate(found_b)
            if swap:
                a_, b_ = b_, a_
            known = (np.unique(_pair_keys(a_, b_, n_keys, cross)), n_keys, cross)
            ok = np.flatnonzero(src.dihedral[:, 0] != 0)
            n = src.crops.shape[1]
            if not (len(ok) and n and len(dst.dihedral)):
                continue
            va, rj = _variant_pairs(
                src.crops[ok].ravel(), np.repeat(ok, n), dst.dihedral[:, 0], 2, CROP_BITS,
                CROP_CANDIDATES, known,
            )
            found_a.append(rj if swap else va)
            found_b.append(va if swap else rj)
    qa, rb = np.concatenate(found_a), np.concatenate(found_b)
    if not cross:
        keep = qa != rb
        qa, rb = np.minimum(qa[keep], rb[keep]), np.maximum(qa[keep], rb[keep])
    pairs = np.unique(np.stack([qa, rb], axis=1), axis=0) if len(qa) else np.zeros((0, 2), np.int64)
    return pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)


class _Variants:
    """The candidate hashes of some images: ``dihedral`` ``(n, 8)`` (the
    image's own DHash first) and ``crops`` (one column per crop of
    :data:`verify.CROPS`)."""

    def __init__(self, dihedral, crops):
        self.dihedral = dihedral
        self.crops = crops

    def take(self, idx):
        return _Variants(self.dihedral[idx], self.crops[idx])


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
    n_crops = next((len(f.crops) for f in feats if f is not None), 0)
    dihedral = np.zeros((len(items), 8), dtype=np.uint64)
    crops = np.zeros((len(items), n_crops), dtype=np.uint64)
    for k, f in enumerate(feats):
        if f is not None:
            dihedral[k] = f.dihedral
            crops[k] = f.crops
    return feats, _Variants(dihedral, crops)


class PairChecks:
    """Verification of candidate pairs on demand, each pair once: the
    ``check`` of :func:`fiftyone_dedup.algorithms.grouping.star_groups`.

    Args:
        feats: the :class:`~fiftyone_dedup.algorithms.verify.Features` of
            each item (None where unreadable)
        item_of_key: ``(n,)`` the item of each key
        progress (None): an optional callable invoked with the number of
            pairs just checked
    """

    def __init__(self, feats, item_of_key, progress=None):
        self.feats = feats
        self.item_of_key = np.asarray(item_of_key, dtype=np.int64)
        self.progress = progress
        self._scores = {}

    @property
    def num_checked(self):
        """How many pairs were checked."""
        return len(self._scores)

    def __call__(self, a, b):
        """Whether each key pair ``(a[k], b[k])`` shows the same picture."""
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        got = self.scores(a, b)
        todo = np.flatnonzero(got == UNCHECKED)
        if len(todo):
            new = verify.verify_pairs(
                self.feats, self.item_of_key[a[todo]], self.item_of_key[b[todo]]
            )
            for i, j, n in zip(a[todo].tolist(), b[todo].tolist(), new.tolist()):
                self._scores[(i, j) if i < j else (j, i)] = n
            got[todo] = new
            if self.progress is not None:
                self.progress(len(todo))
        return got >= 0

    def scores(self, a, b):
        """The verification score of each key pair: the inliers, ``-1`` where
        it failed, :data:`UNCHECKED` where it was not checked."""
        look = self._scores.get
        return np.array(
            [look((i, j) if i < j else (j, i), UNCHECKED) for i, j in zip(a.tolist(), b.tolist())],
            dtype=np.int64,
        )


#: the score of a pair :class:`PairChecks` did not check
UNCHECKED = -2


def verified_search(spec, parts, items, mode, settings, num_workers, progress):
    """The candidate pairs of a verified run, and their checks; every item
    its own key.

    Returns:
        ``(keys, a, b, s, is_ref, checks)``: the candidate pairs (key
        pairs) with their encoder scores, and a :class:`PairChecks` that
        verifies them
    """
    feats, variants = _features(items, num_workers, progress)
    bound = settings["candidate_threshold"]
    keys = np.arange(len(items), dtype=np.int64)
    item_of_key = keys
    if mode != "query":
        codes = stack(spec, [p.encodings for p in parts])
        a, b = _candidates(spec, variants, variants, codes, codes, bound, False, progress)
        s = spec.pair_scores(codes, codes, a, b)
        is_ref = None
    else:
        is_ref = np.array([parts[p].role == "reference" for p in items.part], dtype=bool)
        qidx, ridx = np.flatnonzero(~is_ref), np.flatnonzero(is_ref)
        q = stack(spec, [p.encodings for p in parts if p.role == "query"])
        r = stack(spec, [p.encodings for p in parts if p.role == "reference"])
        qa, rb = _candidates(
            spec, variants.take(qidx), variants.take(ridx), q, r, bound, True, progress
        )
        s = spec.pair_scores(q, r, qa, rb)
        # one key space: query items first, then reference items
        item_of_key = np.r_[qidx, ridx]
        keys = np.empty(len(items), dtype=np.int64)
        keys[item_of_key] = np.arange(len(items))
        a, b = qa, rb + len(qidx)
    return keys, a, b, s, is_ref, PairChecks(feats, item_of_key)


def item_inliers(keys, checks, groups):
    """Each duplicate's inlier count with the sample it points to (``-1``
    for the others)."""
    out = np.full(len(keys), -1, dtype=np.int64)
    dups = np.flatnonzero(groups.role == grouping.DUPLICATE)
    if len(dups):
        out[dups] = np.maximum(checks.scores(keys[dups], keys[groups.kept[dups]]), -1)
    return out
