"""Finding duplicates within one collection, across several, or of a query
set against a reference set; FiftyOne-aware.

One pipeline serves every case: encode each collection taking part (reusing
stored encodings), search (within, or query-vs-reference only), order the
samples by the keep policy, group, then write fields, tags, saved views and
a run record into every dataset taking part.

Modes:

-   ``"within"``: one collection, duplicates among its samples
-   ``"union"``: several collections, duplicates within and across them
-   ``"query"``: a query collection against a reference: only query-reference
    pairs are searched (the reference is never compared with itself), the
    reference always keeps, and each query duplicate points to the reference
    sample it duplicates (dataset, id, filepath)

Grouping (``grouping=``), each with what it trades:

-   ``"near"`` (default): a group is a kept sample and the near matches
    assigned to it; every duplicate is within the threshold of its kept
    sample. Chains are cut at the kept sample: the safest, fewest surprises.
-   ``"components"``: the connected components of the near-match graph (the
    whole chain A~B~C), split by the guard. Shows how far chains reach
    (``<key>_cluster``); with ``guard="complete"`` groups are tighter.
-   ``"dbscan"``: scikit-learn DBSCAN on the encodings (eps from the
    threshold, ``min_samples=1`` as in the seed's notebook: then clusters are
    the components), fed the sparse radius-neighbours graph; ``min_samples >
    1`` leaves isolated pairs as noise. Split by the guard.

Guards against chaining (``guard=``): ``"kept"`` (every member within
``guard_threshold`` of the kept one: a member may be up to twice that from
another member) or ``"complete"`` (every two members within it: the
strictest, may split near matches into several groups). There is no
unguarded option: an unguarded chain is how a photo loses its last copy.
"""

import datetime
import functools
import logging
import time
from dataclasses import dataclass, field as dc_field

import numpy as np

import fiftyone.core.fields as fof

from fiftyone_dedup.engine import core
from fiftyone_dedup.algorithms import encoders
from fiftyone_dedup.algorithms import grouping
from fiftyone_dedup.algorithms import hashing
from fiftyone_dedup.algorithms import keep as keep_policies
from fiftyone_dedup.engine import review
from fiftyone_dedup.engine import runs
from fiftyone_dedup.algorithms import search
from fiftyone_dedup.algorithms import verify
from fiftyone_dedup.progress import ProgressBar

logger = logging.getLogger(__name__)

MODES = ("within", "union", "query")

#: extra room searched beyond the threshold, for the distance histogram
HISTOGRAM_MARGIN = {"hamming": 4, "cosine": 0.05}


@dataclass
class _Part:
    samples: object
    role: str
    ids: list = dc_field(default_factory=list)
    paths: list = dc_field(default_factory=list)
    encodings: object = None
    variants: object = None
    report: object = None
    num_samples: int = 0
    field: str = None
    compute: bool = True

    @property
    def dataset(self):
        return self.samples._root_dataset


def _as_list(collections):
    if isinstance(collections, (list, tuple)):
        return list(collections)
    return [collections]


def validate_options(
    spec, threshold, run_key, keep, priority, grouping_method, guard,
    guard_threshold, min_samples, tag, mode,
):
    """Checks every option before any work; returns them normalised.

    Raises:
        ValueError: naming the bad parameter
    """
    threshold = spec.validate_threshold(threshold)
    core.validate_run_key(run_key)
    keep_policies.validate_keep(keep, priority)
    if grouping_method not in grouping.METHODS:
        raise ValueError(
            f"Unknown grouping {grouping_method!r}; expected one of "
            f"{', '.join(grouping.METHODS)}"
        )
    if guard not in grouping.GUARDS:
        raise ValueError(
            f"Unknown guard {guard!r}; expected one of {', '.join(grouping.GUARDS)} "
            "(an unguarded chain can remove a photo's last copy)"
        )
    if guard_threshold is None:
        guard_threshold = threshold
    else:
        guard_threshold = spec.validate_threshold(guard_threshold)
        looser = guard_threshold < threshold if spec.similarity else guard_threshold > threshold
        if looser:
            raise ValueError(
                f"guard_threshold ({guard_threshold}) must not be looser than "
                f"threshold ({threshold})"
            )
    if isinstance(min_samples, bool) or not isinstance(min_samples, (int, np.integer)) or min_samples < 1:
        raise ValueError(f"min_samples must be an integer >= 1, got {min_samples!r}")
    if tag is not None and (not isinstance(tag, str) or not tag.strip()):
        raise ValueError(f"tag must be a non-empty string or None, got {tag!r}")
    if mode == "query" and grouping_method != "near":
        raise ValueError(
            "Query-vs-reference search supports grouping='near' only: each "
            "query sample points to the reference sample it duplicates"
        )
    return threshold, guard_threshold


def _check_keep_field(parts, keep, priority):
    kind, arg = keep_policies.validate_keep(keep, priority)
    if kind != "expr" or not isinstance(arg[0], str):
        return
    name = arg[0]
    for part in parts:
        if part.samples.get_field(name) is None:
            raise ValueError(
                f"keep: field '{name}' not found on dataset '{part.dataset.name}'"
            )


def find(
    collections,
    reference=None,
    threshold=None,
    encoder="dhash",
    field=None,
    run_key=core.DEFAULT_RUN_KEY,
    keep="first",
    priority=None,
    grouping_method="near",
    guard="kept",
    guard_threshold=None,
    min_samples=1,
    tag=core.DEFAULT_TAG,
    compute=True,
    overwrite_encodings=False,
    encode_kwargs=None,
    save_views=True,
    histogram=True,
    write_reference=True,
    verify_method=verify.DEFAULT_METHOD,
    progress=None,
):
    """Runs a duplicates search; see :func:`fiftyone_dedup.find_duplicates`
    and :func:`fiftyone_dedup.find_cross_duplicates` for the arguments.

    Returns:
        the :class:`fiftyone_dedup.engine.runs.DedupRunResults` of the first dataset
        taking part (each dataset gets its own record)
    """
    spec = encoders.get_encoder(encoder)
    user_field = field
    field = core.validate_field_name(field or spec.default_field)
    collections = _as_list(collections)
    if reference is not None:
        mode = "query"
        parts = [_Part(c, "query") for c in collections]
        parts += [_Part(c, "reference") for c in _as_list(reference)]
    else:
        mode = "within" if len(collections) == 1 else "union"
        parts = [_Part(c, "member") for c in collections]
    verify_method = verify.validate_method(verify_method)
    user_guard = guard_threshold
    threshold, guard_threshold = validate_options(
        spec, threshold, run_key, keep, priority, grouping_method, guard,
        guard_threshold, min_samples, tag, mode,
    )
    verified = verify_method != "none"
    settings = _verify_settings(spec, threshold, verify_method) if verified else None
    # pairs are accepted up to the candidate bound when verified
    accept = settings["candidate_threshold"] if verified else threshold
    if verified and user_guard is None:
        guard_threshold = accept
    encode_kwargs = dict(encode_kwargs or {})
    searcher = _ray_searcher(encode_kwargs)
    model_label = None
    for part in parts:
        core.check_collection(part.samples, nonempty=True)
        core.check_run_key_free(part.samples, run_key)
        part.field, part.compute = field, compute
        if not spec.is_hash:
            part.field, part.compute, label = core.plan_embeddings(
                part.samples, encode_kwargs.get("model"), field, user_field,
                compute, overwrite_encodings,
            )
            model_label = model_label or label
        if not part.compute and not part.dataset.has_sample_field(part.field):
            raise ValueError(
                f"Field '{part.field}' does not exist on dataset "
                f"'{part.dataset.name}'; compute the encodings first or pass "
                "compute=True"
            )
        vfield = core.variants_field(part.field)
        if (
            encode_kwargs.get("invariance")
            and not part.compute
            and not part.dataset.has_sample_field(vfield)
        ):
            raise ValueError(
                f"invariance needs the encodings of flipped/rotated versions "
                f"('{vfield}'), which dataset '{part.dataset.name}' does not "
                "have; let the run compute its encodings (compute=True, and a "
                "model rather than an embeddings field)"
            )
    _check_keep_field(parts, keep, priority)

    started = time.time()
    invariance = encode_kwargs.get("invariance")
    for part in parts:
        part.num_samples = core.count_samples(part.samples)
        if part.compute:
            part.report = core.compute_encodings(
                part.samples, encoder=spec, field=part.field,
                overwrite=overwrite_encodings, progress=progress, **encode_kwargs,
            )
        part.ids, part.encodings, part.paths = core.load_encodings(
            part.samples, spec, part.field, with_paths=True
        )
        if not spec.is_hash:
            part.encodings = search.normalize(part.encodings, inplace=True)
        if invariance:
            part.variants = _load_variants(part, spec, part.field, invariance)
    if mode == "query":
        _drop_query_overlap(parts)

    items = _Items(parts)
    hist, inliers = None, None
    if verified:
        keys, a, b, s, is_ref, inliers, cand_s, cand_ok = _verified_search(
            spec, parts, items, mode, settings, encode_kwargs.get("num_workers"),
            progress,
        )
        weights = np.ones(len(a), dtype=np.int64)
        if histogram:
            hist = _histogram(
                spec, cand_s, np.ones(len(cand_s)), threshold, accept,
                verified=cand_ok,
            )
    else:
        margin = HISTOGRAM_MARGIN[spec.metric] if histogram else 0
        search_threshold = _widen(spec, threshold, margin)
        keys, a, b, s, is_ref = _search(
            spec, parts, items, mode, search_threshold, progress, searcher
        )
        # pairs of encodings stand for every pair of the samples holding them
        multiplicity = np.bincount(keys, minlength=int(keys.max()) + 1 if len(keys) else 0)
        weights = multiplicity[a] * multiplicity[b] if len(a) else np.zeros(0)
        if histogram:
            identical = _identical_pairs(keys) if mode != "query" else 0
            hist = _histogram(spec, s, weights, threshold, search_threshold, identical)
        within = (s >= threshold) if spec.similarity else (s <= threshold)
        a, b, s, weights = a[within], b[within], s[within], weights[within]

    order = _keep_order(parts, items, keep, priority)
    clusters = None
    if grouping_method == "near" and guard_threshold == accept:
        groups = grouping.star_groups(
            keys, a, b, s, order, similarity=spec.similarity, cross_only=is_ref
        )
    else:
        if grouping_method == "dbscan":
            eps = (1.0 - accept) if spec.similarity else accept
            clusters = grouping.dbscan_labels(
                keys, a, b, s, eps, min_samples=min_samples, similarity=spec.similarity
            )
        elif grouping_method == "components":
            comp = grouping.connected_components(int(keys.max()) + 1, a, b)
            clusters = comp[keys]
        else:
            clusters = np.zeros(len(keys), dtype=np.int64)
        ga, gb, gs = grouping.restrict_pairs(
            keys, a, b, s, clusters, guard_threshold, similarity=spec.similarity
        )
        if guard == "complete":
            groups = grouping.complete_groups(keys, ga, gb, gs, order, similarity=spec.similarity)
        else:
            groups = grouping.star_groups(
                keys, ga, gb, gs, order, similarity=spec.similarity, cross_only=is_ref
            )
        if grouping_method == "near":
            clusters = None

    summary = _summary(parts, items, groups, keys, weights, mode)
    if searcher is not None and not verified:
        summary["search"] = dict(searcher.stats)
    item_inliers = None
    if verified:
        summary["num_candidates"] = int(len(cand_ok))
        summary["num_verified"] = int(np.count_nonzero(cand_ok))
        item_inliers = _item_inliers(keys, a, b, inliers, groups)
    options = dict(
        encoder=spec.name, field=parts[0].field, metric=spec.metric, threshold=threshold,
        keep=keep_policies.describe(keep), grouping=grouping_method, tag=tag,
        mode=mode, guard=guard, guard_threshold=guard_threshold,
        min_samples=int(min_samples), priority=list(priority or []),
        model=model_label,
        invariance=invariance,
        verify=verify_method,
        verify_settings=settings,
    )
    results = _write(
        parts, items, groups, clusters, run_key, spec, options, summary, hist,
        started, save_views, write_reference, item_inliers,
    )
    logger.info(
        "Found %d duplicate(s) in %d group(s) among %d sample(s)",
        summary["num_duplicates"], summary["num_groups"], summary["num_samples"],
    )
    return results


def _load_variants(part, spec, field, invariance):
    # the flipped/rotated versions' encodings, per loaded sample
    vfield = core.variants_field(field)
    lookup = dict(zip(*part.samples.values(["id", vfield])))
    count = len(hashing.INVARIANCES[invariance])
    dim = part.encodings.shape[1] if part.encodings.ndim == 2 else 0
    out = []
    for sid in part.ids:
        values = lookup.get(sid) or []
        if len(values) != count:
            values = []  # encoded without this invariance
        if spec.is_hash:
            out.append(hashing.hex_to_codes(values))
        elif values:
            out.append(search.normalize(np.asarray(values, dtype=np.float32)))
        else:
            out.append(np.zeros((0, dim), dtype=np.float32))
    return out


def _variant_codes(parts, roles, spec):
    # every variant encoding of the chosen parts, with the item it belongs to
    codes, owners, offset = [], [], 0
    for p in parts:
        n = len(p.ids)
        if p.role in roles and p.variants is not None:
            for i, v in enumerate(p.variants):
                codes.append(v)
                owners.append(np.full(len(v), offset + i, dtype=np.int64))
        offset += n
    if not codes:
        return _stack(spec, []), np.zeros(0, dtype=np.int64)
    return np.concatenate(codes), np.concatenate(owners)


def _cross(spec):
    if spec.is_hash:
        return search.hamming_cross
    return functools.partial(search.cosine_cross, normalized=True)


def _min_pairs(a, b, s, similarity, symmetric=True):
    # one entry per pair, the closest score
    if symmetric:
        a, b = np.minimum(a, b), np.maximum(a, b)
    if len(a) == 0:
        return a, b, s
    order = np.lexsort((-s if similarity else s, b, a))
    a, b, s = a[order], b[order], s[order]
    first = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])]
    return a[first], b[first], s[first]


def _widen(spec, threshold, margin):
    if not margin:
        return threshold
    if spec.similarity:
        return max(-1.0, threshold - margin)
    return min(64, threshold + margin)


class _Items:
    """All samples taking part, concatenated over the parts."""

    def __init__(self, parts):
        self.part = np.concatenate(
            [np.full(len(p.ids), i, dtype=np.int64) for i, p in enumerate(parts)]
        ) if parts else np.zeros(0, dtype=np.int64)
        self.pos = np.concatenate(
            [np.arange(len(p.ids)) for p in parts]
        ) if parts else np.zeros(0, dtype=np.int64)
        self.ids = [i for p in parts for i in p.ids]
        self.paths = [f for p in parts for f in p.paths]
        self.datasets = [n for p in parts for n in [p.dataset.name] * len(p.ids)]

    def __len__(self):
        return len(self.ids)


def _drop_query_overlap(parts):
    # a sample in both sets would match itself: it stays a reference only
    ref_ids = {
        (p.dataset.name, i) for p in parts if p.role == "reference" for i in p.ids
    }
    for p in parts:
        if p.role != "query":
            continue
        keep = [k for k, i in enumerate(p.ids) if (p.dataset.name, i) not in ref_ids]
        if len(keep) < len(p.ids):
            logger.warning(
                "%d sample(s) of the query are also in the reference; they are "
                "treated as reference only", len(p.ids) - len(keep),
            )
            p.ids = [p.ids[k] for k in keep]
            p.paths = [p.paths[k] for k in keep]
            p.encodings = p.encodings[keep]


def _stack(spec, encodings):
    encodings = [e for e in encodings if len(e)]
    if len(encodings) == 1:
        return encodings[0]  # one collection: no copy
    if not encodings:
        return np.zeros(0, dtype=np.uint64) if spec.is_hash else np.zeros((0, 1), np.float32)
    if not spec.is_hash:
        dims = {e.shape[1] for e in encodings}
        if len(dims) > 1:
            raise ValueError(
                f"Embeddings of different sizes ({sorted(dims)}) cannot be "
                "compared; use the same model for every collection"
            )
    return np.concatenate(encodings)


def _ray_searcher(encode_kwargs):
    nprobe = encode_kwargs.pop("ivf_nprobe", None)
    if encode_kwargs.get("executor") != "ray":
        return None
    from fiftyone_dedup.engine import distributed

    return distributed.Searcher(encode_kwargs.get("ray_address"), ivf_nprobe=nprobe)


def _search(spec, parts, items, mode, threshold, progress, searcher=None):
    invariant = any(
        p.variants is not None and any(len(v) for v in p.variants) for p in parts
    )
    cross = _cross(spec) if searcher is None else searcher.searchers(spec)[1]
    if mode != "query":
        codes = _stack(spec, [p.encodings for p in parts])
        uniq, keys = search.unique_rows(codes)
        with ProgressBar(
            total=len(uniq), progress=progress, label="Searching", iters_str="encodings"
        ) as pb:
            if searcher is not None:
                a, b, s = searcher.searchers(spec)[0](uniq, threshold, progress=pb.update)
            elif spec.is_hash:
                a, b, s = search.hamming_pairs(uniq, threshold, progress=pb.update)
            else:
                a, b, s = search.cosine_pairs(
                    uniq, threshold, progress=pb.update, normalized=True
                )
        vcodes, owners = _variant_codes(parts, ("member",), spec)
        if invariant and len(vcodes) and len(uniq):
            with ProgressBar(
                total=len(vcodes), progress=progress,
                label="Searching flipped/rotated versions", iters_str="encodings",
            ) as pb:
                vi, uj, vs = cross(vcodes, uniq, threshold, progress=pb.update)
            va = keys[owners[vi]]
            other = va != uj
            a, b, s = _min_pairs(
                np.r_[a, va[other]], np.r_[b, uj[other]], np.r_[s, vs[other]],
                spec.similarity,
            )
        return keys, a, b, s, None

    is_ref = np.array([parts[p].role == "reference" for p in items.part], dtype=bool)
    q = _stack(spec, [p.encodings for p in parts if p.role == "query"])
    r = _stack(spec, [p.encodings for p in parts if p.role == "reference"])
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
    vcodes, owners = _variant_codes(parts, ("query",), spec)
    if invariant and len(vcodes) and len(ur):
        vi, rj, vs = cross(vcodes, ur, threshold)
        qa, rb, s = _min_pairs(
            np.r_[qa, keys[owners[vi]]], np.r_[rb, rj], np.r_[s, vs],
            spec.similarity, symmetric=False,
        )
    return keys, qa, rb + len(uq), s, is_ref


def _identical_pairs(keys):
    counts = np.bincount(keys) if len(keys) else np.zeros(0, dtype=np.int64)
    return int(np.sum(counts * (counts - 1) // 2))


def _histogram(spec, scores, weights, threshold, search_threshold, identical=0, verified=None):
    # pairs of identical encodings are counted at distance 0 (similarity 1)
    if spec.is_hash:
        edges = np.arange(0, int(search_threshold) + 2) - 0.5
    else:
        lo = np.floor(search_threshold * 200) / 200
        edges = np.linspace(lo, 1.0, int(round((1.0 - lo) * 200)) + 1)
    counts, edges = np.histogram(scores, bins=edges, weights=weights)
    counts = np.rint(counts).astype(np.int64)
    if identical and len(counts):
        counts[0 if spec.is_hash else -1] += identical
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


def _item_inliers(keys, a, b, inliers, groups):
    # each duplicate's inlier count with the sample it points to
    lookup = {}
    for i, j, n in zip(a.tolist(), b.tolist(), inliers.tolist()):
        lookup[(i, j)] = lookup[(j, i)] = n
    out = np.full(len(keys), -1, dtype=np.int64)
    for i in np.flatnonzero(groups.role == grouping.DUPLICATE):
        out[i] = lookup.get((int(keys[i]), int(keys[groups.kept[i]])), -1)
    return out


def _keep_order(parts, items, keep, priority):
    from fiftyone_dedup.engine import folders

    cache = {}

    def in_output_folder(folder):
        return folders.enclosing_output_folder(folder, cache) is not None

    prefs = []
    for part in parts:
        prefs.append(
            keep_policies.preference(
                part.samples, part.ids, keep, priority=priority, filepaths=part.paths,
                in_output_folder=in_output_folder,
            )
        )
    pref = np.concatenate(prefs) if prefs else np.zeros(0)
    # ties: the order of the collections given, then each one's own order
    return np.lexsort((items.pos, items.part, pref))


def _summary(parts, items, groups, keys, weights, mode):
    num_samples = sum(p.num_samples for p in parts)
    num_encoded = len(items)
    dup = groups.role == grouping.DUPLICATE
    cross = np.zeros(len(items), dtype=bool)
    cross[dup] = items.part[groups.kept[dup]] != items.part[dup]
    per = {}
    for i, part in enumerate(parts):
        name = part.dataset.name
        entry = per.setdefault(
            name, {"samples": 0, "encoded": 0, "kept": 0, "duplicates": 0, "cross": 0}
        )
        in_part = items.part == i
        entry["samples"] += part.num_samples
        entry["encoded"] += int(np.count_nonzero(in_part))
        entry["kept"] += int(np.count_nonzero(in_part & (groups.role == grouping.KEPT)))
        entry["duplicates"] += int(np.count_nonzero(in_part & dup))
        entry["cross"] += int(np.count_nonzero(in_part & cross))
    identical = _identical_pairs(keys) if mode != "query" else 0
    summary = {
        "num_samples": num_samples,
        "num_encoded": num_encoded,
        "num_failed": num_samples - num_encoded,
        "num_pairs": int(np.sum(weights)) + identical,
        "num_groups": groups.num_groups,
        "num_duplicates": groups.num_duplicates,
        "num_cross": int(np.count_nonzero(cross)),
        "datasets": per,
    }
    reports = [p.report for p in parts if p.report is not None]
    if reports:
        summary["num_computed"] = sum(r.num_computed for r in reports)
        summary["num_reused"] = sum(r.num_reused for r in reports)
    return summary


def _write(
    parts, items, groups, clusters, run_key, spec, options, summary, hist,
    started, save_views, write_reference, item_inliers=None,
):
    multi = len({p.dataset.name for p in parts}) > 1 or options["mode"] == "query"
    fields = core.output_fields(run_key, spec.metric)
    if item_inliers is not None:
        fields.append(runs.output_field(run_key, runs.VERIFY_SUFFIX))
    if multi:
        fields += [runs.output_field(run_key, s) for s in runs.CROSS_SUFFIXES]
    if clusters is not None:
        fields.append(runs.output_field(run_key, "cluster"))

    first = None
    by_dataset = {}
    for i, part in enumerate(parts):
        if part.role == "reference" and not write_reference:
            continue
        by_dataset.setdefault(part.dataset.name, []).append(i)
    names = [p.dataset.name for p in parts]

    for name, part_idx in by_dataset.items():
        dataset = parts[part_idx[0]].dataset
        # the record goes on the collection searched, or on the dataset when
        # several of its views took part
        target = parts[part_idx[0]].samples if len(part_idx) == 1 else dataset
        roles = sorted({parts[i].role for i in part_idx})
        views = review.view_names(run_key, cross=multi) if save_views else []
        config = runs.DedupRunConfig(
            output_fields=fields,
            cross_datasets=sorted({n for n in names if n != name}),
            role="+".join(roles),
            saved_views=views,
            **options,
        )
        target.register_run(run_key, config, overwrite=True, cleanup=True)
        in_ds = np.isin(items.part, part_idx)
        _write_fields(
            dataset, items, groups, clusters, run_key, spec, in_ds, multi,
            options["tag"], item_inliers,
        )
        if views:
            review.save_views(target, run_key, views)
        summary_ds = dict(summary, seconds=round(time.time() - started, 3))
        results = runs.DedupRunResults(
            target, config, run_key, summary=summary_ds, histogram=hist
        )
        target.save_run_results(run_key, results, overwrite=True)
        if first is None:
            first = results
    return first


def _write_fields(
    dataset, items, groups, clusters, run_key, spec, mask, multi, tag, item_inliers=None,
):
    group_f, role_f, kept_f, score_f = core.output_fields(run_key, spec.metric)
    same = 1.0 if spec.similarity else 0
    values = {group_f: {}, role_f: {}, kept_f: {}, score_f: {}}
    kds_f = runs.output_field(run_key, "kept_dataset")
    kfp_f = runs.output_field(run_key, "kept_filepath")
    cross_f = runs.output_field(run_key, "cross")
    if multi:
        values[kds_f], values[kfp_f], values[cross_f] = {}, {}, {}
        dup = groups.role == grouping.DUPLICATE
        across = np.zeros(len(items), dtype=bool)
        across[dup] = items.part[groups.kept[dup]] != items.part[dup]
        across[groups.kept[across]] = True
    cluster_f = runs.output_field(run_key, "cluster")
    if clusters is not None:
        values[cluster_f] = {}
    inl_f = runs.output_field(run_key, runs.VERIFY_SUFFIX)
    if item_inliers is not None:
        values[inl_f] = {}
    dup_ids = []
    for i in np.flatnonzero(mask):
        sid = items.ids[i]
        if clusters is not None and clusters[i] >= 0:
            values[cluster_f][sid] = int(clusters[i])
        role = groups.role[i]
        if role == grouping.NONE:
            continue
        k = i if role == grouping.KEPT else groups.kept[i]
        values[group_f][sid] = int(groups.group[i])
        values[role_f][sid] = core.ROLE_KEPT if role == grouping.KEPT else core.ROLE_DUPLICATE
        values[kept_f][sid] = items.ids[k]
        values[score_f][sid] = (
            same if role == grouping.KEPT else core.score_value(groups.score[i], spec.metric)
        )
        if multi:
            values[kds_f][sid] = items.datasets[k]
            values[kfp_f][sid] = items.paths[k]
            values[cross_f][sid] = bool(across[i])
        if role == grouping.DUPLICATE:
            dup_ids.append(sid)
            if item_inliers is not None:
                values[inl_f][sid] = int(item_inliers[i])

    types = {
        group_f: fof.IntField, role_f: fof.StringField, kept_f: fof.StringField,
        score_f: fof.FloatField if spec.similarity else fof.IntField,
        kds_f: fof.StringField, kfp_f: fof.StringField, cluster_f: fof.IntField,
        cross_f: fof.BooleanField, inl_f: fof.IntField,
    }
    for name in values:
        core.ensure_field(dataset, name, types[name])
    _set_fields(dataset, values)
    if tag and dup_ids:
        dataset.select(dup_ids).tag_samples(tag)


def _set_fields(dataset, values):
    """Writes ``{field: {sample id: value}}`` (plain values of existing
    fields) with one update per sample for all its fields; FiftyOne's
    ``set_values`` makes one per sample and field."""
    by_id = {}
    for name, vals in values.items():
        for sid, value in vals.items():
            by_id.setdefault(sid, {})[name] = value
    write = getattr(dataset, "_bulk_write", None)
    if write is None:  # pragma: no cover - a FiftyOne without it
        for name, vals in values.items():
            if vals:
                dataset.set_values(name, vals, key_field="id")
        return
    if not by_id:
        return
    from bson import ObjectId
    from pymongo import UpdateOne

    now = datetime.datetime.now(datetime.timezone.utc)
    ids = [ObjectId(sid) for sid in by_id]
    ops = [
        UpdateOne({"_id": oid}, {"$set": dict(fields, last_modified_at=now)})
        for oid, fields in zip(ids, by_id.values())
    ]
    write(ops, ids=ids)


#: candidates of a verified run: how far past ``threshold`` the encoder's own
#: search looks, per metric (bits for hashes, similarity for embeddings)
CANDIDATE_MARGIN = {"hamming": 10, "cosine": 0.25}

#: the most candidates kept per sample (its nearest), so that the cost of
#: verification grows linearly with the samples however alike they look
CANDIDATES_PER_SAMPLE = 12

#: the largest DHash distance between an image's turned or mirrored version
#: and another image for the pair to be a candidate
DIHEDRAL_BITS = 12


def _verify_settings(spec, threshold, method):
    return {
        "method": method,
        "candidate_threshold": _widen(spec, threshold, CANDIDATE_MARGIN[spec.metric]),
        "candidates_per_sample": CANDIDATES_PER_SAMPLE,
        "dihedral_bits": DIHEDRAL_BITS,
        "min_inliers": verify.MIN_INLIERS,
        "min_inlier_ratio": verify.MIN_INLIER_RATIO,
        "min_coverage": verify.MIN_COVERAGE,
        "feature_size": verify.FEATURE_SIZE,
    }


def _pair_scores(spec, x, y, a, b):
    # the encoder's score of the pairs (x[a], y[b])
    if spec.is_hash:
        return np.bitwise_count(np.bitwise_xor(x[a], y[b])).astype(np.int32)
    return np.minimum(np.einsum("ij,ij->i", x[a], y[b]), 1.0).astype(np.float32)


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


def _verified_search(spec, parts, items, mode, settings, num_workers, progress):
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
        codes = _stack(spec, [p.encodings for p in parts])
        a, b = _candidates(spec, codes, codes, dihedral, dihedral[:, 0], bound, False, progress)
        s = _pair_scores(spec, codes, codes, a, b)
        is_ref = None
        fa, fb = a, b
    else:
        is_ref = np.array([parts[p].role == "reference" for p in items.part], dtype=bool)
        qidx, ridx = np.flatnonzero(~is_ref), np.flatnonzero(is_ref)
        q = _stack(spec, [p.encodings for p in parts if p.role == "query"])
        r = _stack(spec, [p.encodings for p in parts if p.role == "reference"])
        qa, rb = _candidates(spec, q, r, dihedral[qidx], dihedral[ridx, 0], bound, True, progress)
        s = _pair_scores(spec, q, r, qa, rb)
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

