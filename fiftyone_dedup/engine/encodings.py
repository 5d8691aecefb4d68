"""Encodings as sample fields: hashes and embeddings computed, stored and
read back for a search.

:func:`compute_hashes` here and
:func:`fiftyone_dedup.engine.embedding_fields.compute_embeddings` check
their options once (:class:`fiftyone_dedup.options.EncodeOptions`), then
run one encoding pass (:mod:`fiftyone_dedup.engine.encoding_pass`), locally
or on Ray (:mod:`fiftyone_dedup.engine.ray_encode`).
"""

import dataclasses
import logging

import fiftyone.core.fields as fof

from fiftyone_dedup.algorithms import encoders
from fiftyone_dedup.algorithms import hashing
from fiftyone_dedup.engine import embedding_fields
from fiftyone_dedup.engine import stored_vectors
from fiftyone_dedup.engine.encoding_pass import EncodeReport, encode_collection
from fiftyone_dedup.engine.field_names import error_field, variants_field
from fiftyone_dedup.engine.samples import check_collection, check_field_type
from fiftyone_dedup.options import EncodeOptions

__all__ = [
    "EncodeReport", "compute_hashes", "compute_embeddings", "compute_encodings",
    "hash_settings", "encode", "encode_kwargs", "load_encodings", "get_failures",
]

logger = logging.getLogger(__name__)

#: see :func:`fiftyone_dedup.engine.embedding_fields.compute_embeddings`
compute_embeddings = embedding_fields.compute_embeddings


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

    method = hashing.validate_method(method)
    opts = EncodeOptions(
        encoder=method, field=field, overwrite=overwrite, exact=exact,
        num_workers=num_workers, invariance=invariance, executor=executor,
        ray_address=ray_address,
    ).validated()
    return hash_collection(samples, opts, skip_failures=skip_failures, progress=progress)


def hash_collection(samples, opts, skip_failures=True, progress=None):
    """Hashes a collection with options already checked.

    Args:
        samples: a FiftyOne dataset or view of images
        opts: validated :class:`fiftyone_dedup.options.EncodeOptions` of a
            hash encoder
        skip_failures (True): see :func:`compute_hashes`
        progress (None): see :func:`compute_hashes`

    Returns:
        an :class:`EncodeReport`
    """
    method, invariance, exact = opts.encoder.name, opts.invariance, opts.exact
    field = opts.field or method
    check_collection(samples)
    check_field_type(samples, field, fof.StringField, "hex hashes")
    tag = hash_settings(method, exact=exact, invariance=invariance)
    if opts.executor == "ray":
        from fiftyone_dedup.engine import ray_encode

        return ray_encode.encode(
            samples, "hash", dict(method=method, exact=exact, invariance=invariance),
            field, tag, opts.overwrite, skip_failures, progress, "Hashing images (Ray)",
            fof.StringField, variants_field(field) if invariance else None,
            fof.StringField, ray_address=opts.ray_address,
        )

    def encode_paths(paths):
        return hashing.hash_files(
            paths, method=method, exact=exact, num_workers=opts.num_workers,
            invariance=invariance,
        )

    return encode_collection(
        samples,
        field,
        tag,
        encode_paths,
        overwrite=opts.overwrite,
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
    if spec.uses_model:
        return compute_embeddings(samples, field=field, **kwargs)
    field = field or spec.default_field
    return compute_hashes(samples, field=field, method=spec.name, **kwargs)


def encode(samples, opts, field, progress=None):
    """Computes a run's encodings with options already checked (a duplicates
    run validates its options once, then encodes each collection).

    Args:
        samples: a FiftyOne dataset or view of images
        opts: validated :class:`fiftyone_dedup.options.EncodeOptions`
        field: the field to encode into
        progress (None): ``None``, a bool, or a callable

    Returns:
        an :class:`EncodeReport`
    """
    opts = dataclasses.replace(opts, field=field)
    if opts.encoder.uses_model:
        return embedding_fields.embed_collection(samples, opts, progress=progress)
    return hash_collection(samples, opts, progress=progress)


def encode_kwargs(
    encoder, exact=False, num_workers=None, invariance=None, model=None,
    batch_size=None, device="auto", executor="local", ray_address=None,
):
    """The checked keyword arguments of :func:`compute_encodings` for an
    encoder (see :meth:`fiftyone_dedup.options.EncodeOptions.encode_kwargs`).

    Args:
        encoder: an encoder name or spec
        exact (False): hash encoders: decode JPEGs fully
        num_workers (None): worker processes
        invariance (None): the invariance variants
        model (None): CNN only: the model
        batch_size (None): CNN only: images per batch
        device ("auto"): CNN only: where the model runs
        executor ("local"): ``"local"`` or ``"ray"``
        ray_address (None): with ``"ray"``, the cluster's address

    Returns:
        a dict

    Raises:
        ParameterError: naming the first bad parameter
    """
    return EncodeOptions(
        encoder=encoder, exact=exact, num_workers=num_workers, invariance=invariance,
        model=model, batch_size=batch_size, device=device, executor=executor,
        ray_address=ray_address,
    ).validated().encode_kwargs()



def load_encodings(samples, spec, field, with_paths=False):
    """Reads a collection's valid encodings into one array.

    Args:
        samples: a FiftyOne dataset or view
        spec: the :class:`fiftyone_dedup.algorithms.encoders.EncoderSpec`
        field: the encodings field
        with_paths (False): also return the samples' filepaths

    Returns:
        a tuple ``(ids, encodings)`` (``(ids, encodings, paths)`` with
        paths) of the samples that have an encoding: ``uint64`` codes for
        hashes, a ``float32`` ``(n, d)`` array for embeddings
    """
    if spec.uses_model:
        return stored_vectors.load_vectors(samples, field, with_paths)
    ids, paths, values = samples.values(["id", "filepath", field])
    valid = [i for i, v in enumerate(values) if v is not None]
    encodings = hashing.hex_to_codes([values[i] for i in valid])
    valid_ids = [ids[i] for i in valid]
    if with_paths:
        return valid_ids, encodings, [paths[i] for i in valid]
    return valid_ids, encodings



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
