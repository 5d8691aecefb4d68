"""CNN embeddings as a vector field: computed, or found and checked.

An existing embeddings field that fiftyone_dedup did not write (FiftyOne
Brain's, ``apply_model``'s, your own) is used as is and never changed; a
field written here records the model in its stamps, so that another model
never silently replaces it.
"""

import logging

import fiftyone.core.fields as fof

from fiftyone_dedup.algorithms import embeddings
from fiftyone_dedup.algorithms import encoders
from fiftyone_dedup.algorithms import models
from fiftyone_dedup.engine import stored_vectors
from fiftyone_dedup.engine.encoding_pass import EncodeReport, encode_collection, report_failures
from fiftyone_dedup.engine.field_names import error_field, stamp_field, variants_field
from fiftyone_dedup.engine.samples import check_collection, check_field_type
from fiftyone_dedup.options import EncodeOptions

logger = logging.getLogger(__name__)


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

    opts = EncodeOptions(
        encoder="cnn", field=field, model=model, batch_size=batch_size,
        num_workers=num_workers, device=device, overwrite=overwrite,
        invariance=invariance, executor=executor, ray_address=ray_address,
    ).validated()
    return embed_collection(
        samples, opts, transform=transform, skip_failures=skip_failures, progress=progress
    )


def embed_collection(samples, opts, transform=None, skip_failures=True, progress=None):
    """Embeds a collection with options already checked.

    Args:
        samples: a FiftyOne dataset or view of images
        opts: validated :class:`fiftyone_dedup.options.EncodeOptions` of the
            CNN encoder
        transform (None): see :func:`compute_embeddings`
        skip_failures (True): see :func:`compute_embeddings`
        progress (None): see :func:`compute_embeddings`

    Returns:
        an :class:`EncodeReport`
    """
    model, field, overwrite = opts.model, opts.field, opts.overwrite
    batch_size, device, invariance = opts.batch_size, opts.device, opts.invariance
    check_collection(samples)
    existing = _existing_embeddings_field(samples, model, field, overwrite)
    if existing is not None:
        return _check_existing_embeddings(samples, existing, skip_failures)

    name = models.model_name(model, transform)
    field = field or encoders.ENCODERS["cnn"].default_field
    _check_default_keeps_other_model(samples, field, model, overwrite)
    check_field_type(
        samples, field, (fof.VectorField, fof.ArrayField), "embedding vectors"
    )
    settings = f"cnn:{name}|{invariance}" if invariance else f"cnn:{name}"
    if opts.executor == "ray":
        from fiftyone_dedup.engine import ray_encode

        params = dict(model=model, transform=transform, batch_size=batch_size,
                      device=device, invariance=invariance)
        return ray_encode.encode(
            samples, "cnn", params, field, settings, overwrite, skip_failures,
            progress, "Embedding images (Ray)", fof.VectorField,
            variants_field(field) if invariance else None, fof.ListField,
            ray_address=opts.ray_address,
        )

    def encode(paths):
        loaded = models.load_model_with_progress(
            model, transform=transform, device=device, progress=progress
        )
        return embeddings.embed_files(
            paths,
            model=loaded,
            batch_size=batch_size,
            num_workers=opts.num_workers,
            device=device,
            invariance=invariance,
        )

    return encode_collection(
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
    valid_ids, _ = stored_vectors.load_vectors(samples, field)
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

