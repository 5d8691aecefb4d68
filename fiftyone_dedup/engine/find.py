"""Finding duplicates within one collection, across several, or of a query
set against a reference set; FiftyOne-aware.

The public functions check their options once
(:class:`fiftyone_dedup.options.FindOptions`) and pass them down; the steps
live beside this module: :mod:`~fiftyone_dedup.engine.encodings`,
:mod:`~fiftyone_dedup.engine.pairs` or :mod:`~fiftyone_dedup.engine.verified`,
then :mod:`fiftyone_dedup.algorithms.grouping` and
:mod:`~fiftyone_dedup.engine.writing`.

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


import logging
import time

import numpy as np

from fiftyone_dedup.algorithms import grouping
from fiftyone_dedup.engine import keep as keep_policies
from fiftyone_dedup.algorithms import search
from fiftyone_dedup.engine import embedding_fields
from fiftyone_dedup.engine import encodings
from fiftyone_dedup.engine import pairs
from fiftyone_dedup.engine import verified as verified_pairs
from fiftyone_dedup.engine import writing
from fiftyone_dedup.engine.field_names import DEFAULT_RUN_KEY, DEFAULT_TAG, variants_field
from fiftyone_dedup.engine.parts import Items, Part, as_list, drop_query_overlap, load_variants
from fiftyone_dedup.engine.samples import check_collection, check_run_key_free, count_samples
from fiftyone_dedup.options import FindOptions
from fiftyone_dedup.progress import ProgressBar

logger = logging.getLogger(__name__)

MODES = ("within", "union", "query")


def find_duplicates(
    samples,
    threshold=None,
    encoder="dhash",
    field=None,
    run_key=DEFAULT_RUN_KEY,
    keep="first",
    priority=None,
    grouping="near",
    guard="kept",
    guard_threshold=None,
    min_samples=1,
    tag=DEFAULT_TAG,
    compute=True,
    overwrite_encodings=False,
    exact=False,
    num_workers=None,
    invariance=None,
    save_views=True,
    histogram=True,
    model=None,
    batch_size=None,
    device="auto",
    verify="orb",
    progress=None,
    executor="local",
    ray_address=None,
    ivf_nprobe=None,
):
    """Finds near-duplicate images, groups them, keeps one per group and tags
    the rest.

    Each group keeps one sample (by the ``keep`` policy) and marks the others
    duplicates; every duplicate is itself within ``threshold`` of the kept
    sample it points to, so a chain of near matches never removes a photo's
    last copy. Writes per sample ``<run_key>_group`` (int),
    ``<run_key>_role`` (``"kept"``/``"duplicate"``), ``<run_key>_kept_id``
    and ``<run_key>_distance`` (bits, for hashes) or
    ``<run_key>_similarity`` (for embeddings); tags duplicates with ``tag``;
    saves review views (``<run_key>-groups``, ``-kept``, ``-duplicates``);
    records the run under ``run_key`` (replacing an earlier run of that key
    and its fields, tags and views).

    Given a list of collections (datasets or views), finds duplicates within
    and across them (union): groups may span collections, and each dataset
    gets the fields and its own run record, plus ``<run_key>_kept_dataset``,
    ``<run_key>_kept_filepath`` and ``<run_key>_cross``. To search a query
    set against a reference only, see :func:`find_cross_duplicates`.

    Args:
        samples: a FiftyOne dataset or view of images, or a list of them
        threshold (None): for hashes the maximum Hamming distance in bits
            (0-64, default 10); for CNN embeddings the minimum cosine
            similarity (-1 to 1, default
            ``encoders.ENCODERS["cnn"].default_threshold``)
        encoder ("dhash"): the encoder (see :mod:`fiftyone_dedup.algorithms.encoders`):
            ``"dhash"``, ``"phash"``, ``"ahash"``, ``"whash"`` or ``"cnn"``
        field (None): the encodings field; defaults to the encoder's. For
            CNN, an existing embeddings field that fiftyone_dedup did not
            write (FiftyOne Brain's, your own) is used as is
        run_key ("dedup"): the key of the run and prefix of its fields
        keep ("first"): which member of a group stays (see
            :mod:`fiftyone_dedup.engine.keep`): ``"first"``,
            ``"largest_resolution"``, ``"largest_file"``, ``"most_labels"``,
            ``"oldest"``, ``"newest"``, ``"priority"``, ``"max:<field>"``,
            ``"min:<field>"``, or a ``ViewExpression`` (highest kept)
        priority (None): for ``keep="priority"``, dataset names or folders,
            most wanted first
        grouping ("near"): ``"near"``, ``"components"`` or ``"dbscan"`` (see
            :mod:`fiftyone_dedup.engine.find` for what each trades)
        guard ("kept"): the guard against chaining: ``"kept"`` (every member
            within ``guard_threshold`` of the kept one) or ``"complete"``
            (every two members within it)
        guard_threshold (None): the guard's threshold; defaults to
            ``threshold`` and may not be looser
        min_samples (1): DBSCAN's ``min_samples``
        tag ("duplicate"): the tag added to duplicates; ``None`` for none
        compute (True): compute missing or stale encodings first; if False,
            the field must already hold them
        overwrite_encodings (False): recompute all encodings
        exact (False): hash encoders: decode JPEGs fully (bit-identical to
            imagededup, slower)
        num_workers (None): worker processes for encoding
        invariance (None): also match flipped (``"flip"``), rotated
            (``"rotation"``: 90, 180, 270 degrees) or both (``"dihedral"``)
            versions; off by default (costs more encoding and a search per
            variant)
        save_views (True): save the review views on the dataset
        histogram (True): record a histogram of pair distances up to a
            margin past the threshold (``results.histogram``)
        model (None): CNN only: the embedding model (see
            :func:`compute_embeddings`), or the name of an existing
            embeddings field to use as is; ``None`` for the offline default
            ``"efficientnet-lite0"``
        batch_size (None): CNN only: images per batch
        device ("auto"): CNN only: where the model runs
        verify ("orb"): how candidate pairs are verified (see
            :mod:`fiftyone_dedup.algorithms.verify`): ``"orb"`` (local features and a
            RANSAC-fitted transform: a pair is a duplicate only when the two
            images show the same picture or scene; candidates come from a
            bound looser than ``threshold`` and the turned/mirrored DHashes,
            at most ``verified.CANDIDATES_PER_SAMPLE`` per sample), or
            ``"none"`` (every pair within ``threshold`` is a duplicate: the
            results of earlier versions)
        progress (None): ``None``, a bool, or a callable (see
            :mod:`fiftyone_dedup.progress`)
        executor ("local"): ``"local"``, or ``"ray"`` to encode and search on
            a Ray cluster (same results; see
            :mod:`fiftyone_dedup.engine.distributed`)
        ray_address (None): with ``"ray"``, the cluster's address; else
            ``RAY_ADDRESS``, else a local Ray started for the run
        ivf_nprobe (None): with ``"ray"`` and CNN: ``None`` for the exact
            tiled search; a number of lists for an inverted-file search
            probing that many per vector (approximate; its recall against
            exact search, measured on a sample, is in
            ``results.summary["search"]``)

    Returns:
        a :class:`fiftyone_dedup.engine.runs.DedupRunResults` (of the first dataset,
        for several collections)

    Raises:
        ValueError: for bad arguments, before anything is changed
    """
    options = dict(locals())  # the arguments, by name: every option of FindOptions
    del options["samples"], options["progress"]
    return find(samples, options=FindOptions.from_kwargs(**options), progress=progress)


def find_cross_duplicates(
    query,
    reference,
    threshold=None,
    encoder="dhash",
    field=None,
    run_key=DEFAULT_RUN_KEY,
    tag=DEFAULT_TAG,
    compute=True,
    overwrite_encodings=False,
    exact=False,
    num_workers=None,
    invariance=None,
    model=None,
    batch_size=None,
    device="auto",
    write_reference=True,
    save_views=True,
    histogram=True,
    verify="orb",
    progress=None,
    executor="local",
    ray_address=None,
):
    """Finds the samples of a query set that duplicate a reference set.

    Only query-reference pairs are searched: the reference (which may be
    large and frozen) is never compared with itself, and queries are not
    compared with each other, so the time grows with ``len(query) x
    len(reference)``. The reference always keeps: each query duplicate points
    to the nearest reference sample it duplicates, with
    ``<run_key>_kept_dataset``, ``<run_key>_kept_id`` and
    ``<run_key>_kept_filepath``, and is tagged. Use it to find which images
    of a new batch are already in a training set, or which test images leak
    from train.

    Args:
        query: a dataset or view, or a list of them
        reference: a dataset or view, or a list of them
        threshold (None): see :func:`find_duplicates`
        encoder ("dhash"): the encoder
        field (None): the encodings field; defaults to the encoder's
        run_key ("dedup"): the key of the run in each dataset
        tag ("duplicate"): the tag added to query duplicates
        compute (True): compute missing encodings (also for the reference)
        overwrite_encodings (False): recompute all encodings
        exact (False): hash encoders: decode JPEGs fully
        num_workers (None): worker processes for encoding
        invariance (None): also match flipped/rotated versions of the
            queries (see :func:`find_duplicates`)
        model (None): CNN only: the embedding model (see
            :func:`find_duplicates`)
        batch_size (None): CNN only: images per batch
        device ("auto"): CNN only: where the model runs
        write_reference (True): also record the run and the kept fields in
            the reference datasets; False leaves their run records and
            fields untouched
        save_views (True): save review views
        histogram (True): record the distance histogram
        verify ("orb"): how candidate pairs are verified; ``"none"`` for
            none (see :func:`find_duplicates`)
        progress (None): ``None``, a bool, or a callable
        executor ("local"): ``"local"`` or ``"ray"`` (see
            :func:`find_duplicates`)
        ray_address (None): with ``"ray"``, the cluster's address

    Returns:
        the :class:`fiftyone_dedup.engine.runs.DedupRunResults` of the query dataset
    """
    if reference is None or (isinstance(reference, (list, tuple)) and not reference):
        raise ValueError("reference must be a dataset or view (or a list of them)")
    options = dict(locals())  # the arguments, by name: every option of FindOptions
    del options["query"], options["reference"], options["progress"]
    return find(
        query, reference=reference, options=FindOptions.from_kwargs(**options),
        progress=progress,
    )


def find(collections, reference=None, options=None, progress=None):
    """Runs a duplicates search with options checked here, once.

    Args:
        collections: a dataset or view, or a list of them
        reference (None): for a query-vs-reference search, the reference
            (a dataset or view, or a list of them)
        options (None): a :class:`fiftyone_dedup.options.FindOptions`;
            ``None`` for the defaults
        progress (None): ``None``, a bool, or a callable

    Returns:
        the :class:`fiftyone_dedup.engine.runs.DedupRunResults` of the first dataset
        taking part (each dataset gets its own record)

    Raises:
        ValueError: for bad options, before anything is changed
    """
    collections = as_list(collections)
    if reference is not None:
        mode = "query"
        parts = [Part(c, "query") for c in collections]
        parts += [Part(c, "reference") for c in as_list(reference)]
    else:
        mode = "within" if len(collections) == 1 else "union"
        parts = [Part(c, "member") for c in collections]
    opts = (options or FindOptions()).validated(mode)
    enc = opts.encode
    spec, threshold = enc.encoder, opts.threshold
    field = enc.field or spec.default_field
    verified = opts.verify != "none"
    settings = (
        verified_pairs.verify_settings(spec, threshold, opts.verify) if verified else None
    )
    # pairs are accepted up to the candidate bound when verified
    accept = settings["candidate_threshold"] if verified else threshold
    guard_threshold = opts.guard_threshold
    if guard_threshold is None:
        guard_threshold = accept if verified else threshold
    searcher = pairs.ray_searcher(opts)
    model_label = _check_parts(parts, opts, field)
    _check_keep_field(parts, opts.keep, opts.priority)

    started = time.time()
    for part in parts:
        part.num_samples = count_samples(part.samples)
    for k, part in enumerate(parts):
        if part.compute:
            part.report = encodings.encode(part.samples, enc, part.field, progress=progress)
        if k == 0 and spec.metric == "cosine" and not verified and searcher is None:
            _import_torch_soon(parts, mode)
        part.ids, part.encodings, part.paths = encodings.load_encodings(
            part.samples, spec, part.field, with_paths=True
        )
        if spec.uses_model:
            part.encodings = search.normalize(part.encodings, inplace=True)
        if enc.invariance:
            part.variants = load_variants(part, spec, part.field, enc.invariance)
    if mode == "query":
        drop_query_overlap(parts)

    items = Items(parts)
    hist, checks = None, None
    if verified:
        keys, a, b, s, is_ref, checks = verified_pairs.verified_search(
            spec, parts, items, mode, settings, enc.num_workers, progress,
        )
    else:
        margin = pairs.HISTOGRAM_MARGIN[spec.metric] if opts.histogram else 0
        search_threshold = spec.loosen(threshold, margin)
        keys, a, b, s, is_ref = pairs.search_pairs(
            spec, parts, items, mode, search_threshold, progress, searcher
        )
        # pairs of encodings stand for every pair of the samples holding them
        multiplicity = np.bincount(keys, minlength=int(keys.max()) + 1 if len(keys) else 0)
        weights = multiplicity[a] * multiplicity[b] if len(a) else np.zeros(0)
        if opts.histogram:
            identical = pairs.identical_pairs(keys) if mode != "query" else 0
            hist = pairs.histogram(spec, s, weights, threshold, search_threshold, identical)
        within = spec.within(s, threshold)
        a, b, s, weights = a[within], b[within], s[within], weights[within]

    order = _keep_order(parts, items, opts.keep, opts.priority)
    if verified:
        groups, clusters = _group_verified(
            spec, opts, keys, a, b, s, order, is_ref, accept, guard_threshold, checks, progress
        )
        scores = checks.scores(a, b)
        checked, ok = scores != verified_pairs.UNCHECKED, scores >= 0
        weights = np.ones(int(ok.sum()), dtype=np.int64)
        if opts.histogram:
            hist = pairs.histogram(
                spec, s[checked], np.ones(int(checked.sum())), threshold, accept,
                verified=ok[checked],
            )
        logger.info(
            "Verification: %d of %d candidate pair(s) checked, %d show the same picture",
            int(checked.sum()), len(a), int(ok.sum()),
        )
    else:
        groups, clusters = _group(
            spec, opts, keys, a, b, s, order, is_ref, accept, guard_threshold
        )

    summary = writing.summary(parts, items, groups, keys, weights, mode)
    if searcher is not None and not verified:
        summary["search"] = dict(searcher.stats)
    item_inliers = None
    if verified:
        summary["num_candidates"] = int(len(a))
        summary["num_checked"] = int(checked.sum())
        summary["num_verified"] = int(ok.sum())
        item_inliers = verified_pairs.item_inliers(keys, checks, groups)
    record = dict(
        encoder=spec.name, field=parts[0].field, metric=spec.metric, threshold=threshold,
        keep=keep_policies.describe(opts.keep), grouping=opts.grouping, tag=opts.tag,
        mode=mode, guard=opts.guard, guard_threshold=guard_threshold,
        min_samples=int(opts.min_samples), priority=list(opts.priority or []),
        model=model_label,
        invariance=enc.invariance,
        verify=opts.verify,
        verify_settings=settings,
    )
    results = writing.write(
        parts, items, groups, clusters, opts.run_key, spec, record, summary, hist,
        started, opts.save_views, opts.write_reference, item_inliers,
    )
    logger.info(
        "Found %d duplicate(s) in %d group(s) among %d sample(s)",
        summary["num_duplicates"], summary["num_groups"], summary["num_samples"],
    )
    return results


def _import_torch_soon(parts, mode):
    # a search large enough for torch's products starts importing it now,
    # while the vectors load
    first = next(iter(parts[0].samples.limit(1).values(parts[0].field)), None)
    dim = len(first) if first is not None and hasattr(first, "__len__") else 0
    if mode == "query":
        nq = sum(p.num_samples for p in parts if p.role == "query")
        work = float(nq) * sum(p.num_samples for p in parts if p.role == "reference") * dim
    else:
        n = sum(p.num_samples for p in parts)
        work = float(n) * n * dim
    search.import_torch_soon(work)


def _check_parts(parts, opts, field):
    # every check on the collections before any work; returns the model label
    enc, model_label = opts.encode, None
    for part in parts:
        check_collection(part.samples, nonempty=True)
        check_run_key_free(part.samples, opts.run_key)
        part.field, part.compute = field, enc.compute
        if enc.encoder.uses_model:
            part.field, part.compute, label = embedding_fields.plan_embeddings(
                part.samples, enc.model, field, enc.field, enc.compute, enc.overwrite,
            )
            model_label = model_label or label
        if not part.compute and not part.dataset.has_sample_field(part.field):
            raise ValueError(
                f"Field '{part.field}' does not exist on dataset "
                f"'{part.dataset.name}'; compute the encodings first or pass "
                "compute=True"
            )
        vfield = variants_field(part.field)
        if enc.invariance and not part.compute and not part.dataset.has_sample_field(vfield):
            raise ValueError(
                f"invariance needs the encodings of flipped/rotated versions "
                f"('{vfield}'), which dataset '{part.dataset.name}' does not "
                "have; let the run compute its encodings (compute=True, and a "
                "model rather than an embeddings field)"
            )
    return model_label


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


def _keep_order(parts, items, keep, priority):
    from fiftyone_dedup.engine import outputs

    cache = {}

    def in_output_folder(folder):
        return outputs.enclosing_output_folder(folder, cache) is not None

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


def _group_verified(
    spec, opts, keys, a, b, s, order, is_ref, accept, guard_threshold, checks, progress
):
    # "near" grouping checks only the candidates it needs (not two
    # duplicates of one group); the others check every candidate first
    with ProgressBar(
        total=len(a), progress=progress, label="Verifying candidates", iters_str="pairs"
    ) as pb:
        checks.progress = pb.update
        if opts.grouping == "near" and guard_threshold == accept:
            groups = grouping.star_groups(
                keys, a, b, s, order, similarity=spec.similarity, cross_only=is_ref,
                check=checks,
            )
            clusters = None
        else:
            ok = checks(a, b)
            groups, clusters = _group(
                spec, opts, keys, a[ok], b[ok], s[ok], order, is_ref, accept, guard_threshold
            )
        # the rest were not needed
        pb.update(len(a) - checks.num_checked)
    return groups, clusters


def _group(spec, opts, keys, a, b, s, order, is_ref, accept, guard_threshold):
    # the groups, and the clusters they were cut from (None for "near")
    sim = spec.similarity
    if opts.grouping == "near" and guard_threshold == accept:
        groups = grouping.star_groups(keys, a, b, s, order, similarity=sim, cross_only=is_ref)
        return groups, None
    if opts.grouping == "dbscan":
        eps = (1.0 - accept) if sim else accept
        clusters = grouping.dbscan_labels(
            keys, a, b, s, eps, min_samples=opts.min_samples, similarity=sim
        )
    elif opts.grouping == "components":
        comp = grouping.connected_components(int(keys.max()) + 1, a, b)
        clusters = comp[keys]
    else:
        clusters = np.zeros(len(keys), dtype=np.int64)
    ga, gb, gs = grouping.restrict_pairs(
        keys, a, b, s, clusters, guard_threshold, similarity=sim
    )
    if opts.guard == "complete":
        groups = grouping.complete_groups(keys, ga, gb, gs, order, similarity=sim)
    else:
        groups = grouping.star_groups(
            keys, ga, gb, gs, order, similarity=sim, cross_only=is_ref
        )
    return groups, None if opts.grouping == "near" else clusters
