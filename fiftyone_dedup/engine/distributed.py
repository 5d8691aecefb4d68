"""Running the heavy steps on a Ray cluster (``executor="ray"``).

Everything Ray-specific lives here and is imported only when a run asks for
Ray; the local path never imports it. Ray is an optional extra
(``pip install fiftyone-dedup[ray]``).

Encoding: the driver streams sample ids, filepaths and the stored stamps
from MongoDB in chunks and hands each chunk to a Ray task (hashes) or to a
pool of Ray actors that keep the model loaded (CNN; on GPUs when the
cluster has them). Each worker decodes and encodes with the same functions
as the local path, then writes its chunk's encodings, errors and stamps to
MongoDB itself, in one bulk write by sample id. A chunk is written whole or
not at all, so an interrupted run keeps the chunks it finished and a rerun
skips them (their stamps match). Workers must reach the same database
(``FIFTYONE_DATABASE_URI``) and see the images at the same paths (a shared
file system). Ray retries a chunk whose worker died; writes by sample id
make the retry harmless. Nothing is ever moved by a worker.

Search: the upper triangle of the pair matrix is cut into tiles (cross
searches: query x reference tiles), each tile a Ray task running the local
search, so the pairs are exactly the local ones. The pair list comes back
to the driver, where grouping, keep policies and the chain guard run as in
a local run.
"""

import atexit
import datetime
import logging
import os

import numpy as np

logger = logging.getLogger(__name__)

#: the executors a run can use
EXECUTORS = ("local", "ray")

#: samples per encoding chunk (one Ray task and one bulk write each)
CHUNK_SIZE = 1024

#: encodings per side of a search tile
TILE_SIZE = 16384

#: retries of a chunk or tile whose worker died
MAX_RETRIES = 3

MISSING_RAY = (
    "executor='ray' needs Ray, which is not installed; "
    "pip install fiftyone-dedup[ray]"
)

_STARTED_HERE = False


def validate_executor(executor, ray_address=None):
    """Checks an executor choice.

    Args:
        executor: ``"local"``, ``"ray"`` or ``None`` (local)
        ray_address (None): a Ray address (only with ``"ray"``)

    Returns:
        ``"local"`` or ``"ray"``

    Raises:
        ValueError: for an unknown executor, or an address without Ray
    """
    executor = "local" if executor is None else executor
    if executor not in EXECUTORS:
        raise ValueError(
            f"executor must be one of {', '.join(EXECUTORS)}; got {executor!r}"
        )
    if ray_address is not None and executor != "ray":
        raise ValueError("ray_address applies to executor='ray' only")
    return executor


def _ray():
    try:
        import ray
    except ImportError:
        raise ImportError(MISSING_RAY) from None
    return ray


def connect(ray_address=None):
    """Connects this process to Ray, once.

    Args:
        ray_address (None): the cluster's address (``"host:port"`` or
            ``"ray://..."``); else ``RAY_ADDRESS``; else a local Ray is
            started for this process on 127.0.0.1 (and stopped at exit)

    Returns:
        the ``ray`` module, connected
    """
    global _STARTED_HERE
    ray = _ray()
    if ray.is_initialized():
        return ray
    address = ray_address or os.environ.get("RAY_ADDRESS") or None
    env = {
        k: v
        for k, v in os.environ.items()
        if k.startswith("FIFTYONE_") or k in ("PYTHONPATH", "ORT_DISABLE_TELEMETRY")
    }
    env.update(_database_env())
    kwargs = dict(
        runtime_env={"env_vars": env},
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    if address:
        logger.info("Connecting to Ray at %s", address)
        ray.init(address=address, **kwargs)
    else:
        logger.info("Starting a local Ray for this run (127.0.0.1)")
        ray.init(
            _node_ip_address="127.0.0.1", include_dashboard=False, **kwargs
        )
        _STARTED_HERE = True
        atexit.register(ray.shutdown)
    return ray


def _database_env():
    # the database the driver uses, for workers to reach the same one
    uri = _database_uri()
    return {"FIFTYONE_DATABASE_URI": uri} if uri else {}


def _database_uri():
    import fiftyone as fo
    import fiftyone.core.odm.database as fod

    if fo.config.database_uri:
        return fo.config.database_uri
    host, port = fod.get_db_client().address
    return f"mongodb://{host}:{port}"


def _collection_info(samples):
    import fiftyone as fo

    return (
        _database_uri(),
        fo.config.database_name,
        samples._root_dataset._sample_collection_name,
    )


# --------------------------------------------------------------- encoding


def encode(
    samples, kind, params, field, settings, overwrite, skip_failures, progress,
    label, field_type, extra_field=None, extra_type=None, ray_address=None,
    chunk_size=None,
):
    """Encodes a collection on Ray; the Ray counterpart of
    ``core._encode_collection``.

    Args:
        samples: a FiftyOne dataset or view
        kind: ``"hash"`` or ``"cnn"``
        params: the keyword arguments of ``hashing.hash_files`` or
            ``embeddings.embed_files`` (without paths and workers)
        field: the encodings field
        settings: the stamp settings (``core.hash_settings`` or the model's)
        overwrite: recompute stored encodings
        skip_failures: if False, raise after storing what was computed
        progress: ``None``, a bool or a callable
        label: the progress bar's label
        field_type: the field's type (a FiftyOne field class)
        extra_field (None): the variants field, with invariance
        extra_type (None): its list element type
        ray_address (None): see :func:`connect`
        chunk_size (None): samples per chunk; ``None`` for
            :data:`CHUNK_SIZE`

    Returns:
        a :class:`fiftyone_dedup.engine.core.EncodeReport`
    """
    import fiftyone.core.fields as fof

    from fiftyone_dedup.engine import core
    from fiftyone_dedup.progress import ProgressBar

    ray = connect(ray_address)
    n = core.count_samples(samples)
    report = core.EncodeReport(field=field, num_samples=n)
    if n == 0:
        return report
    sfield, efield = core.stamp_field(field), core.error_field(field)
    schema = samples._root_dataset.get_field_schema()
    reuse = not overwrite and all(f in schema for f in (field, sfield, efield))
    core.ensure_field(samples, field, field_type)
    core.ensure_field(samples, efield, fof.StringField)
    core.ensure_field(samples, sfield, fof.StringField)
    if extra_field is not None and not samples._root_dataset.has_sample_field(
        extra_field
    ):
        samples._root_dataset.add_sample_field(
            extra_field, fof.ListField, subfield=extra_type
        )
    target = _collection_info(samples)
    fields = (field, efield, sfield, extra_field)
    job = dict(kind=kind, params=params, settings=settings, reuse=reuse)

    if kind == "hash":
        worker = ray.remote(_encode_chunk_task).options(
            num_cpus=1, max_retries=MAX_RETRIES
        )
        submit = lambda rows: worker.remote(rows, job, target, fields)  # noqa: E731
        slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        actors = []
    else:
        actors = _embedders(ray, job)
        slots = len(actors)
        counter = iter(range(1 << 62))
        submit = lambda rows: actors[next(counter) % slots].run.remote(  # noqa: E731
            rows, job, target, fields
        )

    results = {}
    try:
        with ProgressBar(total=n, progress=progress, label=label, iters_str="images") as pb:
            pending = {}
            for index, rows in enumerate(_chunks(samples, fields, chunk_size or CHUNK_SIZE)):
                pending[submit(rows)] = index
                while len(pending) >= 2 * slots:
                    _collect(ray, pending, results, pb)
            while pending:
                _collect(ray, pending, results, pb)
    finally:
        for actor in actors:  # their CPUs (or GPUs) go back to the cluster
            ray.kill(actor)

    for index in sorted(results):
        out = results[index]
        report.num_reused += out["reused"]
        report.num_computed += out["computed"]
        report.failures.extend(out["failures"])
    _warn_unseen_files(report)
    core.report_failures(report, efield, skip_failures)
    return report


def _collect(ray, pending, results, pb):
    done, _ = ray.wait(list(pending), num_returns=1)
    for ref in done:
        index = pending.pop(ref)
        results[index] = out = ray.get(ref)
        pb.update(out["reused"] + out["computed"])


def _warn_unseen_files(report):
    missing = [f for f in report.failures if f["error"] == "file not found"]
    if missing:
        logger.warning(
            "%d file(s) were not found by the Ray workers (first: %s); workers "
            "read the images at the paths the dataset stores, so they must see "
            "the same files (a shared file system)",
            len(missing), missing[0]["filepath"],
        )


def _chunks(samples, fields, chunk_size):
    # streams (id, filepath, has value, old error, old stamp) in chunks
    field, efield, sfield, _ = fields
    pipeline = samples._pipeline() + [
        {
            "$project": {
                "filepath": True,
                "has": {"$gt": ["$" + field, None]},
                "error": "$" + efield,
                "stamp": "$" + sfield,
            }
        }
    ]
    cursor = samples._root_dataset._sample_collection.aggregate(
        pipeline, batchSize=chunk_size, allowDiskUse=True
    )
    rows = []
    for doc in cursor:
        rows.append(
            (str(doc["_id"]), doc["filepath"], bool(doc.get("has")),
             doc.get("error"), doc.get("stamp"))
        )
        if len(rows) >= chunk_size:
            yield rows
            rows = []
    if rows:
        yield rows


def _plan_chunk(rows, settings, reuse):
    # which rows to encode: reuse unchanged files, as the local path does
    from fiftyone_dedup.engine import core
    from fiftyone_dedup.algorithms import decode

    todo, stamps, failures, reused = [], {}, [], 0
    for sid, path, has, error, old in rows:
        stamp = core.stamp(settings, decode.file_stamp(path))
        if reuse and old is not None and old == stamp and (has or error is not None):
            reused += 1
            if error is not None:
                failures.append({"id": sid, "filepath": path, "error": error})
            continue
        todo.append((sid, path))
        stamps[sid] = stamp
    return todo, stamps, failures, reused


def _write_chunk(target, fields, todo, stamps, results, to_mongo):
    # one bulk write by sample id; every row of the chunk or none
    import pymongo
    from bson import ObjectId

    field, efield, sfield, extra_field = fields
    uri, dbname, cname = target
    now = datetime.datetime.utcnow()
    ops, failures = [], []
    for (sid, path), result in zip(todo, results):
        value, error = result[0], result[-1]
        update = {
            field: None if value is None else to_mongo(value),
            efield: error,
            sfield: stamps[sid],
            "last_modified_at": now,
        }
        if extra_field is not None:
            update[extra_field] = result[1]
        ops.append(pymongo.UpdateOne({"_id": ObjectId(sid)}, {"$set": update}))
        if error is not None:
            failures.append({"id": sid, "filepath": path, "error": error})
    if ops:
        with pymongo.MongoClient(uri) as client:
            client[dbname][cname].bulk_write(ops, ordered=False)
    return failures


def _encode_chunk_task(rows, job, target, fields):
    # a Ray task: hash one chunk with the local hashing code, write it
    from fiftyone_dedup.algorithms import hashing

    todo, stamps, failures, reused = _plan_chunk(rows, job["settings"], job["reuse"])
    results = list(
        hashing.hash_files([p for _, p in todo], num_workers=0, **job["params"])
    )
    failures += _write_chunk(target, fields, todo, stamps, results, lambda v: v)
    return {"reused": reused, "computed": len(todo), "failures": _ordered(rows, failures)}


def _ordered(rows, failures):
    pos = {r[0]: i for i, r in enumerate(rows)}
    return sorted(failures, key=lambda f: pos[f["id"]])


class _Embedder:
    """A Ray actor keeping one loaded model; embeds chunks with the local
    embedding code and writes them."""

    def __init__(self, params):
        from fiftyone_dedup.algorithms import embeddings

        params = dict(params)
        self.model = embeddings.load_model(
            params.pop("model"), transform=params.pop("transform"),
            device=params.get("device", "auto"),
        )
        self.params = params

    def run(self, rows, job, target, fields):
        import fiftyone.core.fields as fof

        from fiftyone_dedup.algorithms import embeddings

        todo, stamps, failures, reused = _plan_chunk(rows, job["settings"], job["reuse"])
        results = list(
            embeddings.embed_files(
                [p for _, p in todo], model=self.model, num_workers=0, **self.params
            )
        )
        to_mongo = fof.VectorField().to_mongo
        failures += _write_chunk(target, fields, todo, stamps, results, to_mongo)
        return {
            "reused": reused, "computed": len(todo),
            "failures": _ordered(rows, failures),
        }


def _embedders(ray, job):
    # one actor per CPU (or per GPU when the cluster has GPUs and may use them)
    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0))
    device = job["params"].get("device", "auto")
    if gpus and device != "cpu":
        opts, count = dict(num_gpus=1, num_cpus=1), gpus
    else:
        opts, count = dict(num_cpus=1), max(1, int(res.get("CPU", 1)))
    cls = ray.remote(_Embedder).options(
        max_restarts=MAX_RETRIES, max_task_retries=MAX_RETRIES, **opts
    )
    return [cls.remote(job["params"]) for _ in range(count)]


# ----------------------------------------------------------------- search


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
                spec.is_hash, codes, threshold, progress
            ),
            lambda q, r, threshold, progress=None: self.cross(
                spec.is_hash, q, r, threshold, progress
            ),
        )

    def pairs(self, is_hash, codes, threshold, progress=None):
        """All pairs within ``threshold``, ``i < j``: tiles of the upper
        triangle, each searched by the local code."""
        if self.ivf_nprobe and not is_hash:
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
        return self._run(is_hash, codes, codes, threshold, tiles, True, progress, n)

    def cross(self, is_hash, query, reference, threshold, progress=None):
        """All (query, reference) pairs within ``threshold``, by
        query x reference tiles."""
        t = self.tile_size
        tiles = [
            (a, b) for a in range(0, len(query), t) for b in range(0, len(reference), t)
        ]
        return self._run(
            is_hash, query, reference, threshold, tiles, False, progress, len(query)
        )

    def _run(self, is_hash, q, r, threshold, tiles, upper, progress, total):
        dtype = np.int32 if is_hash else np.float32
        if not tiles:
            e = np.zeros(0, dtype=np.int64)
            return e, e.copy(), np.zeros(0, dtype=dtype)
        ray = connect(self.ray_address)
        qref = ray.put(np.ascontiguousarray(q))
        rref = qref if upper else ray.put(np.ascontiguousarray(r))
        task = ray.remote(_search_tile).options(num_cpus=1, max_retries=MAX_RETRIES)
        t = self.tile_size
        refs = {
            task.remote(qref, rref, a, b, t, threshold, is_hash, upper): (a, b)
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


def _search_tile(q, r, a, b, t, threshold, is_hash, upper):
    # a Ray task: one tile, searched by the local code
    from fiftyone_dedup.algorithms import search

    qa, rb = q[a : a + t], r[b : b + t]
    if is_hash:
        pairs, cross = search.hamming_pairs, search.hamming_cross
    else:
        pairs = lambda x, th: search.cosine_pairs(x, th, normalized=True)  # noqa: E731
        cross = lambda x, y, th: search.cosine_cross(x, y, th, normalized=True)  # noqa: E731
    if upper and a == b:
        i, j, s = pairs(qa, threshold)
    else:
        i, j, s = cross(qa, rb, threshold)
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
