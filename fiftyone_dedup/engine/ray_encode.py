"""Encoding on a Ray cluster (``executor="ray"``): the Ray counterpart of
:func:`fiftyone_dedup.engine.encoding_pass.encode_collection`.

The driver streams sample ids, filepaths and the stored stamps from MongoDB
in chunks and hands each chunk to a Ray task (hashes) or to a pool of Ray
actors that keep the model loaded (CNN; on GPUs when the cluster has them).
Each worker decodes and encodes with the same functions as the local path,
then writes its chunk's encodings, errors and stamps to MongoDB itself, in
one bulk write by sample id (see :mod:`fiftyone_dedup.engine.distributed`).
"""

import datetime
import logging

from fiftyone_dedup.engine.distributed import MAX_RETRIES, collection_info, connect

logger = logging.getLogger(__name__)

#: samples per encoding chunk (one Ray task and one bulk write each)
CHUNK_SIZE = 1024


def encode(
    samples, kind, params, field, settings, overwrite, skip_failures, progress,
    label, field_type, extra_field=None, extra_type=None, ray_address=None,
    chunk_size=None,
):
    """Encodes a collection on Ray; the Ray counterpart of
    :func:`fiftyone_dedup.engine.encoding_pass.encode_collection`.

    Args:
        samples: a FiftyOne dataset or view
        kind: ``"hash"`` or ``"cnn"``
        params: the keyword arguments of ``hashing.hash_files`` or
            ``embeddings.embed_files`` (without paths and workers)
        field: the encodings field
        settings: the stamp settings (``encodings.hash_settings`` or the model's)
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
        a :class:`fiftyone_dedup.engine.encoding_pass.EncodeReport`
    """
    import fiftyone.core.fields as fof

    from fiftyone_dedup.engine import encoding_pass
    from fiftyone_dedup.engine import field_names
    from fiftyone_dedup.engine import samples as samples_checks
    from fiftyone_dedup.progress import ProgressBar

    ray = connect(ray_address)
    n = samples_checks.count_samples(samples)
    report = encoding_pass.EncodeReport(field=field, num_samples=n)
    if n == 0:
        return report
    sfield, efield = field_names.stamp_field(field), field_names.error_field(field)
    schema = samples._root_dataset.get_field_schema()
    reuse = not overwrite and all(f in schema for f in (field, sfield, efield))
    samples_checks.ensure_fields(
        samples, {field: field_type, efield: fof.StringField, sfield: fof.StringField}
    )
    if extra_field is not None and not samples._root_dataset.has_sample_field(
        extra_field
    ):
        samples._root_dataset.add_sample_field(
            extra_field, fof.ListField, subfield=extra_type
        )
    target = collection_info(samples)
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
    encoding_pass.report_failures(report, efield, skip_failures)
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
    from fiftyone_dedup.algorithms import decode
    from fiftyone_dedup.engine.encoding_pass import stamp as make_stamp

    todo, stamps, failures, reused = [], {}, [], 0
    for sid, path, has, error, old in rows:
        stamp = make_stamp(settings, decode.file_stamp(path))
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
