"""The FiftyOne-aware engine: encodings as sample fields, duplicate runs,
tags and views.

Reads with ``values()`` and writes with ``set_values()`` (never a per-sample
``save()``), so a run over a large dataset costs a handful of database round
trips. Knows nothing of the App: the operators and the CLI both call these
functions.
"""

import logging
from dataclasses import dataclass, field as dc_field

import numpy as np

import fiftyone.core.collections as foc
import fiftyone.core.fields as fof
import fiftyone.core.media as fom
from fiftyone import ViewField as F

from fiftyone_dedup.algorithms import decode
from fiftyone_dedup.algorithms import embeddings
from fiftyone_dedup.algorithms import encoders
from fiftyone_dedup.algorithms import hashing
from fiftyone_dedup.algorithms import models
from fiftyone_dedup.engine import runs
from fiftyone_dedup.engine import stored_vectors
from fiftyone_dedup.progress import ProgressBar

logger = logging.getLogger(__name__)

#: the default run key
DEFAULT_RUN_KEY = "dedup"

#: the default tag added to duplicates
DEFAULT_TAG = "duplicate"

ROLE_KEPT = "kept"
ROLE_DUPLICATE = "duplicate"


@dataclass
class EncodeReport:
    """What an encoding pass did.

    Attributes:
        field: the sample field holding the encodings
        num_samples: the samples considered
        num_computed: the samples encoded now
        num_reused: the samples whose stored encoding was still valid
        failures: a list of ``{"id", "filepath", "error"}`` dicts, one per
            sample that could not be encoded
    """

    field: str
    num_samples: int = 0
    num_computed: int = 0
    num_reused: int = 0
    failures: list = dc_field(default_factory=list)

    @property
    def num_failed(self):
        """The number of samples that could not be encoded."""
        return len(self.failures)


def error_field(field):
    """The field recording why a sample could not be encoded.

    Args:
        field: an encodings field

    Returns:
        ``"<field>_error"``
    """
    return f"{field}_error"


def stamp_field(field):
    """The field recording which file version and settings an encoding is of.

    Args:
        field: an encodings field

    Returns:
        ``"<field>_stamp"``
    """
    return f"{field}_stamp"


def count_samples(samples):
    """The number of samples, counted (not MongoDB's fast estimate for whole
    datasets, which can be wrong after the database stopped uncleanly).

    Args:
        samples: a dataset or view

    Returns:
        an int
    """
    return samples.count("id")


def check_collection(samples, nonempty=False):
    """Checks that ``samples`` is an image dataset or view.

    Args:
        samples: the object to check
        nonempty (False): whether an empty collection is an error

    Raises:
        ValueError: saying what is wrong
    """
    if not isinstance(samples, foc.SampleCollection):
        raise ValueError(
            "Expected a FiftyOne dataset or view, got "
            f"{type(samples).__name__}"
        )
    if nonempty and count_samples(samples) == 0:
        raise ValueError(
            f"The collection to deduplicate is empty "
            f"(dataset '{samples._root_dataset.name}')"
        )
    if samples.media_type not in (None, fom.IMAGE, fom.GROUP):
        raise ValueError(
            f"Only image collections can be deduplicated; "
            f"'{samples._root_dataset.name}' has media type "
            f"'{samples.media_type}'"
        )


def validate_field_name(name, what="field"):
    """Checks a user-given field name.

    Args:
        name: the name
        what ("field"): what the name is for, for the message

    Returns:
        the name

    Raises:
        ValueError: if it is not a usable top-level field name
    """
    if not isinstance(name, str) or not name or not name.isidentifier():
        raise ValueError(
            f"Invalid {what} {name!r}: use letters, digits and underscores, "
            "not starting with a digit"
        )
    if name in ("id", "filepath", "tags", "metadata", "media_type") or name.startswith("_"):
        raise ValueError(f"Invalid {what} {name!r}: that name is reserved")
    return name


def validate_run_key(run_key):
    """Checks a run key.

    Args:
        run_key: the key

    Returns:
        the key

    Raises:
        ValueError: if it is not a valid identifier
    """
    return validate_field_name(run_key, what="run key")


def _check_field_type(samples, field, ftype, what):
    schema = samples._root_dataset.get_field_schema()
    existing = schema.get(field)
    if existing is not None and not isinstance(existing, ftype):
        raise ValueError(
            f"Field '{field}' already exists with type "
            f"{type(existing).__name__}, which cannot hold {what}; choose "
            "another field name"
        )


def compute_hashes(
    samples,
    field=None,
    method="dhash",
    overwrite=False,
    exact=False,
    num_workers=None,
    skip_failures=True,
    invariance=None,
    progress=None,
    executor="local",
    ray_address=None,
):
    """Computes a perceptual hash of every sample's image as a sample field.

    The hash is imagededup's algorithm (DHash by default: 9x8 gradient, 64
    bits) written as 16 hex digits, so values are interchangeable with
    imagededup encodings. Images that cannot be read get ``None`` and the
    reason in ``<field>_error``; the run goes on. Stored hashes of files that
    have not changed since (same size and modification time) are reused
    unless ``overwrite`` is set.

    Args:
        samples: a FiftyOne dataset or view of images
        field (None): the sample field to store the hashes in; defaults to the
            method name (``"dhash"``)
        method ("dhash"): ``"dhash"``, ``"phash"``, ``"ahash"`` or
            ``"whash"``
        overwrite (False): recompute hashes that are already stored
        exact (False): decode JPEGs fully instead of with draft mode (slower;
            bit-identical to imagededup)
        num_workers (None): worker processes; ``None`` for one per CPU, ``0``
            to hash in this process
        skip_failures (True): record unreadable images and go on; if False,
            raise after storing what was computed
        invariance (None): also store the hashes of the image's flipped
            (``"flip"``), rotated (``"rotation"``: 90, 180, 270 degrees) or
            both (``"dihedral"``) versions in ``<field>_variants``, for
            flip/rotation-invariant matching
        progress (None): ``None``, a bool, or a callable (see
            :mod:`fiftyone_dedup.progress`)
        executor ("local"): ``"local"``, or ``"ray"`` to hash on a Ray
            cluster (see :mod:`fiftyone_dedup.engine.distributed`)
        ray_address (None): with ``"ray"``, the cluster's address; else
            ``RAY_ADDRESS``, else a local Ray started for the run

    Returns:
        an :class:`EncodeReport`

    Raises:
        ValueError: for bad arguments, or an unreadable image when
            ``skip_failures`` is False
    """
    executor = _validate_executor(executor, ray_address)
    method = hashing.validate_method(method)
    invariance = hashing.validate_invariance(invariance)
    field = validate_field_name(field or method)
    check_collection(samples)
    _check_field_type(samples, field, fof.StringField, "hex hashes")
    tag = hash_settings(method, exact=exact, invariance=invariance)
    if executor == "ray":
        from fiftyone_dedup.engine import distributed

        return distributed.encode(
            samples, "hash", dict(method=method, exact=exact, invariance=invariance),
            field, tag, overwrite, skip_failures, progress, "Hashing images (Ray)",
            fof.StringField, variants_field(field) if invariance else None,
            fof.StringField, ray_address=ray_address,
        )

    def encode(paths):
        return hashing.hash_files(
            paths, method=method, exact=exact, num_workers=num_workers,
            invariance=invariance,
        )

    return _encode_collection(
        samples,
        field,
        tag,
        encode,
        overwrite=overwrite,
        skip_failures=skip_failures,
        progress=progress,
        label="Hashing images",
        extra_field=variants_field(field) if invariance else None,
        extra_type=fof.StringField,
    )


def hash_settings(method="dhash", exact=False, invariance=None):
    """What a stored hash was made with, as its stamp records it: a hash is
    reused only when these settings and the file are unchanged.

    Args:
        method ("dhash"): the hash method
        exact (False): whether JPEGs were decoded fully
        invariance (None): the invariance variants stored with it

    Returns:
        a string such as ``"dhash:draft"``
    """
    tag = f"{method}:{'exact' if exact else 'draft'}"
    if invariance:
        tag += f":{invariance}"
    return tag


def variants_field(field):
    """The field holding the hashes of flipped/rotated versions.

    Args:
        field: a hash field

    Returns:
        ``"<field>_variants"``
    """
    return f"{field}_variants"


def _encode_collection(
    samples, field, settings, encode, overwrite, skip_failures, progress, label,
    field_type=fof.StringField, extra_field=None, extra_type=None, chunk_size=None,
):
    ids, paths = samples.values(["id", "filepath"])
    n = len(ids)
    report = EncodeReport(field=field, num_samples=n)
    if n == 0:
        return report

    stamps = [
        stamp(settings, decode.file_stamp(p)) for p in paths
    ]
    sfield, efield = stamp_field(field), error_field(field)
    schema = samples._root_dataset.get_field_schema()
    todo = list(range(n))
    old_errors = [None] * n
    if not overwrite and all(f in schema for f in (field, sfield, efield)):
        # whether a value is stored, not the values (vectors can be large)
        has_value, old_errors, old_stamps = samples.values(
            [F(field).exists(), efield, sfield]
        )
        # reuse values and failures of files that have not changed since
        todo = [
            i
            for i in range(n)
            if old_stamps[i] is None
            or old_stamps[i] != stamps[i]
            or (not has_value[i] and old_errors[i] is None)
        ]
    report.num_reused = n - len(todo)
    report.num_computed = len(todo)
    errors_now = list(old_errors)

    if todo:
        chunk_size = chunk_size or len(todo)
        values, errors, new_stamps, extras = {}, {}, {}, {}

        def flush():
            ensure_field(samples, field, field_type)
            ensure_field(samples, efield, fof.StringField)
            ensure_field(samples, sfield, fof.StringField)
            if extra_field is not None:
                if not samples._root_dataset.has_sample_field(extra_field):
                    samples._root_dataset.add_sample_field(
                        extra_field, fof.ListField, subfield=extra_type
                    )
                samples.set_values(extra_field, extras, key_field="id")
            samples.set_values(field, values, key_field="id")
            samples.set_values(efield, errors, key_field="id")
            samples.set_values(sfield, new_stamps, key_field="id")
            for d in (values, errors, new_stamps, extras):
                d.clear()

        # before the bar: an encoder may load a model first, under its own stage
        results = encode([paths[i] for i in todo])
        with ProgressBar(
            total=len(todo), progress=progress, label=label, iters_str="images"
        ) as pb:
            # the bar first: zip then resumes it after the last image, so
            # that it reaches 100% (and callbacks see it complete)
            for result, i in zip(pb(results), todo):
                sid = ids[i]
                value, error = result[0], result[-1]
                if extra_field is not None:
                    extras[sid] = result[1]
                values[sid] = value
                errors[sid] = error
                errors_now[i] = error
                new_stamps[sid] = stamps[i]
                if len(values) >= chunk_size:
                    flush()
        if values:
            flush()

    report.failures = [
        {"id": ids[i], "filepath": paths[i], "error": errors_now[i]}
        for i in range(n)
        if errors_now[i] is not None
    ]
    report_failures(report, efield, skip_failures)
    return report


def report_failures(report, efield, skip_failures):
    if report.failures:
        first = report.failures[0]
        logger.warning(
            "%d image(s) could not be encoded (reasons in field '%s'); "
            "first: %s: %s",
            len(report.failures), efield, first["filepath"], first["error"],
        )

    if report.failures and not skip_failures:
        first = report.failures[0]
        raise ValueError(
            f"{len(report.failures)} image(s) could not be encoded; first: "
            f"{first['filepath']}: {first['error']}"
        )


def _validate_executor(executor, ray_address):
    if executor in (None, "local") and ray_address is None:
        return "local"
    from fiftyone_dedup.engine import distributed

    return distributed.validate_executor(executor, ray_address)


def stamp(settings, file_stamp):
    return None if file_stamp is None else f"{settings}:{file_stamp}"


def ensure_field(samples, field, field_type):
    dataset = samples._root_dataset
    if not dataset.has_sample_field(field):
        dataset.add_sample_field(field, field_type)


#: embeddings written per database round trip (bounds memory on large sets)
EMBEDDINGS_CHUNK_SIZE = 2048


def compute_embeddings(
    samples,
    model=None,
    field=None,
    transform=None,
    batch_size=None,
    num_workers=None,
    device="auto",
    overwrite=False,
    skip_failures=True,
    invariance=None,
    progress=None,
    executor="local",
    ray_address=None,
):
    """Computes a CNN embedding of every sample's image as a vector field.

    Images are decoded straight to about the model's input size, in worker
    processes, and embedded in batches (on the GPU when there is one); the
    vectors are written in chunks with ``set_values``. Images that cannot be
    read get ``None`` and the reason in ``<field>_error``; the run goes on.
    Stored embeddings of files that have not changed since (same size and
    modification time) and of the same model are reused unless
    ``overwrite`` is set; another model recomputes them.

    An existing embeddings field that fiftyone_dedup did not write (from
    FiftyOne Brain, ``apply_model``, or your own code) is used as is: pass
    its name as ``model`` (or as ``field`` with no ``model``). It is checked,
    never changed.

    Args:
        samples: a FiftyOne dataset or view of images
        model (None): ``None`` or ``"efficientnet-lite0"`` for the default
            (pretrained, works offline); ``"mobilenet_v3_small"``,
            ``"efficientnet_b4"`` or ``"vit_b_16"`` for imagededup's models
            (their weights download on first use); a FiftyOne zoo model name
            or model; a torch module or callable with ``transform``;
            imagededup's ``CustomModel``; or the name of an existing
            embeddings field (see :mod:`fiftyone_dedup.algorithms.models`)
        field (None): the vector field to store embeddings in; defaults to
            ``"cnn_embedding"``
        transform (None): for a torch module or callable, the function that
            turns a PIL RGB image into its ``(C, H, W)`` input tensor
        batch_size (None): images per batch; ``None`` for 16 on the CPU, 64
            on a GPU
        num_workers (None): decode worker processes; ``None`` for one per
            CPU beyond the first, ``0`` to decode in this process
        device ("auto"): ``"auto"`` (a GPU if there is one), ``"cpu"``,
            ``"cuda"``, ``"cuda:N"`` or ``"mps"``
        overwrite (False): recompute embeddings that are already stored
        skip_failures (True): record unreadable images and go on; if False,
            raise after storing what was computed
        invariance (None): also store the embeddings of flipped
            (``"flip"``), rotated (``"rotation"``) or both (``"dihedral"``)
            versions in ``<field>_variants``, for flip/rotation-invariant
            search (costs one more inference per version)
        progress (None): ``None``, a bool, or a callable (see
            :mod:`fiftyone_dedup.progress`)
        executor ("local"): ``"local"``, or ``"ray"`` to embed on a Ray
            cluster (see :mod:`fiftyone_dedup.engine.distributed`)
        ray_address (None): with ``"ray"``, the cluster's address

    Returns:
        an :class:`EncodeReport`

    Raises:
        ValueError: for bad arguments (before anything is changed), a model
            that cannot be loaded here (for example, offline; see
            :class:`fiftyone_dedup.algorithms.models.ModelUnavailableError`), or an
            unreadable image when ``skip_failures`` is False
    """
    executor = _validate_executor(executor, ray_address)
    check_collection(samples)
    existing = _existing_embeddings_field(samples, model, field, overwrite)
    if existing is not None:
        return _check_existing_embeddings(samples, existing, skip_failures)

    name = models.model_name(model, transform)
    field = validate_field_name(field or encoders.ENCODERS["cnn"].default_field)
    _check_default_keeps_other_model(samples, field, model, overwrite)
    _check_field_type(
        samples, field, (fof.VectorField, fof.ArrayField), "embedding vectors"
    )
    embeddings.check_count(batch_size, "batch_size", minimum=1)
    embeddings.check_count(num_workers, "num_workers", minimum=0)
    models.resolve_device(device)
    invariance = hashing.validate_invariance(invariance)
    settings = f"cnn:{name}|{invariance}" if invariance else f"cnn:{name}"
    if executor == "ray":
        from fiftyone_dedup.engine import distributed

        params = dict(model=model, transform=transform, batch_size=batch_size,
                      device=device, invariance=invariance)
        return distributed.encode(
            samples, "cnn", params, field, settings, overwrite, skip_failures,
            progress, "Embedding images (Ray)", fof.VectorField,
            variants_field(field) if invariance else None, fof.ListField,
            ray_address=ray_address,
        )

    def encode(paths):
        loaded = models.load_model_with_progress(
            model, transform=transform, device=device, progress=progress
        )
        return embeddings.embed_files(
            paths,
            model=loaded,
            batch_size=batch_size,
            num_workers=num_workers,
            device=device,
            invariance=invariance,
        )

    return _encode_collection(
        samples,
        field,
        settings,
        encode,
        overwrite=overwrite,
        skip_failures=skip_failures,
        progress=progress,
        label="Embedding images",
        field_type=fof.VectorField,
        extra_field=variants_field(field) if invariance else None,
        extra_type=fof.ListField,
        chunk_size=EMBEDDINGS_CHUNK_SIZE,
    )


def _existing_embeddings_field(samples, model, field, overwrite):
    """The field to use as is, if the arguments name existing embeddings."""
    schema = samples._root_dataset.get_field_schema()
    if isinstance(model, str) and model in schema:
        if field is not None and field != model:
            raise ValueError(
                f"model names the embeddings field '{model}' but field is "
                f"'{field}'; pass one of them"
            )
        _check_vector_field_type(schema, model)
        return model
    if field is None or field not in schema or stamp_field(field) in schema:
        return None
    # a field fiftyone_dedup did not write: never overwritten silently
    if model is None and not overwrite:
        _check_vector_field_type(schema, field)
        return field
    if not overwrite:
        raise ValueError(
            f"Field '{field}' holds values that fiftyone_dedup did not "
            "compute; pass overwrite=True to replace them with this model's "
            "embeddings, or choose another field"
        )
    return None


def stored_model(samples, field):
    """The model that computed a field's embeddings, from its stamps.

    Args:
        samples: a FiftyOne dataset or view
        field: an embeddings field written by :func:`compute_embeddings`

    Returns:
        the model's name (see :func:`fiftyone_dedup.algorithms.models.model_name`), or
        ``None`` if no stamp says
    """
    sfield = stamp_field(field)
    if not samples._root_dataset.has_sample_field(sfield):
        return None
    stamps = samples.exists(sfield).limit(1).values(sfield)
    if not stamps or not stamps[0].startswith("cnn:"):
        return None
    # "cnn:<model>[|<invariance>]:<size>:<mtime>"; names may hold colons
    return stamps[0][len("cnn:"):].rsplit(":", 2)[0].split("|")[0]


def _check_default_keeps_other_model(samples, field, model, overwrite):
    # model=None means the default model, but never silently replaces what
    # another model computed into this field
    if model is not None or overwrite:
        return
    other = stored_model(samples, field)
    if other is not None and other != models.DEFAULT_MODEL:
        raise ValueError(
            f"Field '{field}' holds embeddings of model '{other}'; pass that "
            f"model to update them, compute=False to use them as they are, "
            f"or overwrite=True to replace them with the default model "
            f"'{models.DEFAULT_MODEL}'"
        )


def _check_vector_field_type(schema, name):
    ftype = schema[name]
    ok = (fof.VectorField, fof.ArrayField, fof.ListField)
    if not isinstance(ftype, ok):
        raise ValueError(
            f"Field '{name}' is a {type(ftype).__name__}, not embedding "
            "vectors (VectorField, ArrayField or a list of numbers)"
        )


def _check_existing_embeddings(samples, field, skip_failures):
    ids, paths = samples.values(["id", "filepath"])
    valid_ids, _ = load_encodings(samples, encoders.ENCODERS["cnn"], field)
    valid = set(valid_ids)
    efield = error_field(field)
    errors = {}
    if samples._root_dataset.has_sample_field(efield):
        errors = dict(zip(ids, samples.values(efield)))
    report = EncodeReport(
        field=field, num_samples=len(ids), num_reused=len(valid_ids)
    )
    report.failures = [
        {
            "id": sid,
            "filepath": path,
            "error": errors.get(sid) or f"no embedding in field '{field}'",
        }
        for sid, path in zip(ids, paths)
        if sid not in valid
    ]
    report_failures(report, efield, skip_failures)
    return report


def compute_encodings(samples, encoder="dhash", field=None, **kwargs):
    """Computes encodings of an encoder as a sample field.

    Args:
        samples: a FiftyOne dataset or view of images
        encoder ("dhash"): an encoder name (see
            :mod:`fiftyone_dedup.algorithms.encoders`)
        field (None): the field; defaults to the encoder's
        **kwargs: passed to :func:`compute_hashes` or
            :func:`compute_embeddings`

    Returns:
        an :class:`EncodeReport`
    """
    spec = encoders.get_encoder(encoder)
    if spec.is_hash:
        field = field or spec.default_field
        return compute_hashes(samples, field=field, method=spec.name, **kwargs)
    return compute_embeddings(samples, field=field, **kwargs)


#: embeddings read per database round trip when loading them for a search
LOAD_CHUNK_SIZE = 4096


def load_encodings(samples, spec, field, with_paths=False):
    if not spec.is_hash:
        return _load_vectors(samples, field, with_paths)
    ids, paths, values = samples.values(["id", "filepath", field])
    valid = [i for i, v in enumerate(values) if v is not None]
    encodings = hashing.hex_to_codes([values[i] for i in valid])
    valid_ids = [ids[i] for i in valid]
    if with_paths:
        return valid_ids, encodings, [paths[i] for i in valid]
    return valid_ids, encodings


def _load_vectors(samples, field, with_paths=False, chunk_size=None):
    """Reads embeddings chunk by chunk into one float32 array, so that the
    database's documents and the array are never all in memory at once."""
    chunk_size = chunk_size or LOAD_CHUNK_SIZE
    n = count_samples(samples)
    ids, paths, vectors, filled = [], [], None, 0
    for start in range(0, n, chunk_size):
        cids, cpaths, values = stored_vectors.read_values(
            samples.skip(start).limit(chunk_size), ["id", "filepath", field], field
        )
        valid = [i for i, v in enumerate(values) if v is not None]
        if not valid:
            continue
        cids = [cids[i] for i in valid]
        block = _stack_vectors([values[i] for i in valid], cids, field)
        del values
        if vectors is None:
            vectors = np.empty((n - start, block.shape[1]), dtype=np.float32)
            first = (cids[0], block.shape)
        elif block.shape[1] != vectors.shape[1]:
            raise ValueError(
                f"Field '{field}' holds embeddings of different sizes: "
                f"sample {first[0]} has ({vectors.shape[1]},), sample "
                f"{cids[0]} has ({block.shape[1]},); they must come from one "
                "model"
            )
        vectors[filled : filled + len(block)] = block
        filled += len(block)
        ids += cids
        if with_paths:
            paths += [cpaths[i] for i in valid]
    if vectors is None:
        vectors = np.zeros((0, 0), dtype=np.float32)
    elif filled < len(vectors):
        vectors = vectors[:filled].copy()
    if with_paths:
        return ids, vectors, paths
    return ids, vectors


def _stack_vectors(values, ids, field):
    """Stacks a list of vectors into a float32 array, emptying the list as
    it goes (so the vectors are never held twice)."""
    if not values:
        return np.zeros((0, 0), dtype=np.float32)
    first = _as_vector(values[0], ids[0], field)
    vectors = np.empty((len(values), len(first)), dtype=np.float32)
    for k, v in enumerate(values):
        try:
            if np.ndim(v) != 1:
                raise ValueError
            vectors[k] = v
        except (ValueError, TypeError):
            shape = _as_vector(v, ids[k], field).shape
            raise ValueError(
                f"Field '{field}' holds embeddings of different sizes: "
                f"sample {ids[0]} has {first.shape}, sample {ids[k]} has "
                f"{shape}; they must come from one model"
            ) from None
        values[k] = None
    bad = ~np.all(np.isfinite(vectors), axis=1)
    if bad.any():
        raise ValueError(
            f"Field '{field}' has {int(bad.sum())} embedding(s) with NaN or "
            f"infinite values (first: sample {ids[int(np.argmax(bad))]})"
        )
    return vectors


def _as_vector(value, sid, field):
    try:
        vector = None if isinstance(value, str) else np.asarray(value, np.float32)
    except (ValueError, TypeError):
        vector = None
    if vector is None or vector.ndim != 1:
        raise ValueError(
            f"Field '{field}' does not hold embedding vectors (sample {sid} "
            f"has {type(value).__name__} {_short(value)})"
        )
    return vector


def _short(value, n=40):
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."



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
            :mod:`fiftyone_dedup.algorithms.keep`): ``"first"``,
            ``"largest_resolution"``, ``"largest_file"``, ``"most_labels"``,
            ``"oldest"``, ``"newest"``, ``"priority"``, ``"max:<field>"``,
            ``"min:<field>"``, or a ``ViewExpression`` (highest kept)
        priority (None): for ``keep="priority"``, dataset names or folders,
            most wanted first
        grouping ("near"): ``"near"``, ``"components"`` or ``"dbscan"`` (see
            :mod:`fiftyone_dedup.engine.finder` for what each trades)
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
            at most ``finder.CANDIDATES_PER_SAMPLE`` per sample), or
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
    from fiftyone_dedup.engine import finder

    return finder.find(
        samples,
        threshold=threshold,
        encoder=encoder,
        field=field,
        run_key=run_key,
        keep=keep,
        priority=priority,
        grouping_method=grouping,
        guard=guard,
        guard_threshold=guard_threshold,
        min_samples=min_samples,
        tag=tag,
        compute=compute,
        overwrite_encodings=overwrite_encodings,
        encode_kwargs=encode_kwargs(
            encoder, exact=exact, num_workers=num_workers, invariance=invariance,
            model=model, batch_size=batch_size, device=device,
            executor=executor, ray_address=ray_address, ivf_nprobe=ivf_nprobe,
        ),
        save_views=save_views,
        histogram=histogram,
        verify_method=verify,
        progress=progress,
    )


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
    from fiftyone_dedup.engine import finder

    if reference is None or (isinstance(reference, (list, tuple)) and not reference):
        raise ValueError("reference must be a dataset or view (or a list of them)")
    return finder.find(
        query,
        reference=reference,
        threshold=threshold,
        encoder=encoder,
        field=field,
        run_key=run_key,
        tag=tag,
        compute=compute,
        overwrite_encodings=overwrite_encodings,
        encode_kwargs=encode_kwargs(
            encoder, exact=exact, num_workers=num_workers, invariance=invariance,
            model=model, batch_size=batch_size, device=device,
            executor=executor, ray_address=ray_address,
        ),
        save_views=save_views,
        histogram=histogram,
        write_reference=write_reference,
        verify_method=verify,
        progress=progress,
    )


def encode_kwargs(
    encoder, exact=False, num_workers=None, invariance=None, model=None,
    batch_size=None, device="auto", executor="local", ray_address=None,
    ivf_nprobe=None,
):
    spec = encoders.get_encoder(encoder)
    kwargs = {
        "num_workers": embeddings.check_count(num_workers, "num_workers", 0),
        "invariance": hashing.validate_invariance(invariance),
    }
    if _validate_executor(executor, ray_address) == "ray":
        kwargs.update(executor="ray", ray_address=ray_address)
        if ivf_nprobe is not None:
            kwargs["ivf_nprobe"] = ivf_nprobe
    elif ivf_nprobe is not None:
        raise ValueError("ivf_nprobe applies to executor='ray' only")
    if spec.is_hash:
        if model is not None or batch_size is not None:
            raise ValueError(
                f"model and batch_size apply to the CNN encoder, not {spec.label}"
            )
        kwargs["exact"] = exact
    else:
        embeddings.check_count(batch_size, "batch_size", minimum=1)
        if device not in (None, "auto"):  # "auto" always resolves; no torch import
            models.resolve_device(device)
        kwargs.update(model=model, batch_size=batch_size, device=device)
    return kwargs


def plan_embeddings(samples, model, field, user_field, compute, overwrite):
    """Decides where a CNN run's embeddings come from, before any work.

    Args:
        samples: a FiftyOne dataset or view
        model: the ``model`` argument of the run
        field: the embeddings field (the default filled in)
        user_field: the ``field`` argument as given
        compute: whether missing embeddings may be computed
        overwrite: whether stored embeddings are recomputed

    Returns:
        a tuple ``(field, compute, model_label)``: the field to read, whether
        to compute into it, and the model recorded on the run

    Raises:
        ValueError: if the arguments name embeddings that cannot be used
    """
    existing = _existing_embeddings_field(
        samples, model, field if model is None else user_field, overwrite
    )
    if existing is not None:
        return existing, False, f"field:{existing}"
    if not compute:
        return field, False, stored_model(samples, field) or f"field:{field}"
    _check_default_keeps_other_model(samples, field, model, overwrite)
    return field, True, models.model_name(model)


def check_run_key_free(samples, run_key):
    dataset = samples._root_dataset
    if run_key in dataset.list_runs():
        cfg = dataset.get_run_info(run_key).config
        if not isinstance(cfg, runs.DedupRunConfig):
            raise ValueError(
                f"Run key '{run_key}' is used by another kind of run on "
                f"dataset '{dataset.name}'; choose another run key"
            )
        return
    for suffix in runs.OUTPUT_SUFFIXES:
        name = runs.output_field(run_key, suffix)
        if dataset.has_sample_field(name):
            raise ValueError(
                f"Field '{name}' already exists on dataset '{dataset.name}' "
                f"and does not belong to a duplicates run; choose another "
                "run key"
            )


def output_fields(run_key, metric):
    suffixes = runs.OUTPUT_SUFFIXES + (runs.SCORE_SUFFIXES[metric],)
    return [runs.output_field(run_key, s) for s in suffixes]


def score_value(score, metric):
    return float(score) if metric == "cosine" else int(round(score))


def list_runs(samples):
    """The keys of the duplicate runs recorded on a collection.

    Args:
        samples: a FiftyOne dataset or view

    Returns:
        a sorted list of run keys
    """
    return runs.list_dedup_runs(samples)


def load_run(samples, run_key=DEFAULT_RUN_KEY):
    """Loads a duplicate run's record, also from a fresh process.

    Args:
        samples: a FiftyOne dataset or view
        run_key ("dedup"): the run key

    Returns:
        a :class:`fiftyone_dedup.engine.runs.DedupRunResults`

    Raises:
        ValueError: if there is no such duplicate run
    """
    require_run(samples, run_key)
    return samples.load_run_results(run_key)


def require_run(samples, run_key):
    if run_key not in list_runs(samples):
        runs_ = list_runs(samples)
        known = ", ".join(runs_) if runs_ else "none"
        raise ValueError(
            f"No duplicates run '{run_key}' on dataset "
            f"'{samples._root_dataset.name}' (runs: {known})"
        )
    return samples.get_run_info(run_key).config


def delete_run(samples, run_key=DEFAULT_RUN_KEY):
    """Deletes a duplicate run with the fields and tags it wrote.

    Args:
        samples: a FiftyOne dataset or view
        run_key ("dedup"): the run key

    Raises:
        ValueError: if there is no such duplicate run
    """
    require_run(samples, run_key)
    samples._root_dataset.delete_run(run_key)


def duplicates_view(samples, run_key=DEFAULT_RUN_KEY, role=None, dynamic=False):
    """A view of a run's groups: each kept sample followed by its duplicates,
    nearest first.

    Args:
        samples: a FiftyOne dataset or view
        run_key ("dedup"): the run key
        role (None): ``"kept"`` or ``"duplicate"`` to show only those
        dynamic (False): return a dynamic grouped view (one App group per
            duplicate group) instead of a sorted flat view

    Returns:
        a ``DatasetView``
    """
    config = require_run(samples, run_key)
    group_f, role_f, _, score_f = output_fields(run_key, config.metric)
    order = -1 if config.metric == "cosine" else 1
    view = samples.exists(group_f)
    if role is not None:
        if role not in (ROLE_KEPT, ROLE_DUPLICATE):
            raise ValueError(
                f"role must be '{ROLE_KEPT}', '{ROLE_DUPLICATE}' or None, got {role!r}"
            )
        view = view.match(F(role_f) == role)
    if dynamic:
        return view.group_by(group_f, order_by=score_f, reverse=order < 0)
    return view.sort_by(
        [(F(group_f), 1), (F(role_f) == ROLE_KEPT, -1), (F(score_f), order)]
    )


def get_groups(samples, run_key=DEFAULT_RUN_KEY):
    """Reads a run's groups back from the samples.

    Args:
        samples: a FiftyOne dataset or view
        run_key ("dedup"): the run key

    Returns:
        a list of ``{"group", "keep": {"id", "filepath"}, "duplicates":
        [{"id", "filepath", "score"}]}`` dicts in group order, duplicates
        nearest first; duplicates of a verified run also have ``"inliers"``
        (the verification score)
    """
    config = require_run(samples, run_key)
    group_f, role_f, kept_f, score_f = output_fields(run_key, config.metric)
    inl_f = runs.output_field(run_key, runs.VERIFY_SUFFIX)
    verified = inl_f in (config.output_fields or [])
    view = samples.exists(group_f)
    ids, paths, gs, roles, scores, inliers = view.values(
        ["id", "filepath", group_f, role_f, score_f] + ([inl_f] if verified else ["id"])
    )
    groups = {}
    for sid, path, g, role, score, inl in zip(ids, paths, gs, roles, scores, inliers):
        entry = groups.setdefault(g, {"group": g, "keep": None, "duplicates": []})
        if role == ROLE_KEPT:
            entry["keep"] = {"id": sid, "filepath": path}
        else:
            dup = {"id": sid, "filepath": path, "score": score}
            if verified:
                dup["inliers"] = inl
            entry["duplicates"].append(dup)
    reverse = config.metric == "cosine"
    out = []
    for g in sorted(groups):
        entry = groups[g]
        entry["duplicates"].sort(key=lambda d: d["score"], reverse=reverse)
        out.append(entry)
    return out


def get_failures(samples, field):
    """The samples whose encoding failed, with the reason.

    Args:
        samples: a FiftyOne dataset or view
        field: the encodings field

    Returns:
        a list of ``{"id", "filepath", "error"}`` dicts
    """
    efield = error_field(field)
    if not samples._root_dataset.has_sample_field(efield):
        return []
    view = samples.exists(efield)
    ids, paths, errors = view.values(["id", "filepath", efield])
    return [
        {"id": i, "filepath": p, "error": e} for i, p, e in zip(ids, paths, errors)
    ]
