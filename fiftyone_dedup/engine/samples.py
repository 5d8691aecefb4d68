"""The checks every engine function shares on collections and their fields:
is this an image collection, may this field or run key be written.

Field and run-key names are checked by :mod:`fiftyone_dedup.options`
(re-exported here), so a bad name reads the same from every front end.
"""

import fiftyone.core.collections as foc
import fiftyone.core.media as fom

from fiftyone_dedup.engine import runs
from fiftyone_dedup.options import (  # noqa: F401 - the engine's name checks
    validate_field_name,
    validate_run_key,
)


def count_samples(samples):
    """The number of samples, counted (not MongoDB's fast estimate for whole
    datasets, which can be wrong after the database stopped uncleanly).

    Args:
        samples: a dataset or view

    Returns:
        an int
    """
    try:
        if samples._is_full_collection():
            # an exact count of the collection's documents (20 ms at 50k
            # samples with vectors; count("id") reads every document)
            return samples._dataset._sample_collection.count_documents({})
    except AttributeError:  # pragma: no cover - another FiftyOne
        return samples.count("id")
    return samples.count()  # a view's count is a $count stage, exact


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
    if nonempty and count_samples(samples.limit(1)) == 0:
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


def check_field_type(samples, field, ftype, what):
    """Checks that an existing field can hold the values to be written.

    Args:
        samples: a dataset or view
        field: the field
        ftype: a FiftyOne field class, or a tuple of them
        what: what the values are, for the message

    Raises:
        ValueError: if the field exists with another type
    """
    schema = samples._root_dataset.get_field_schema()
    existing = schema.get(field)
    if existing is not None and not isinstance(existing, ftype):
        raise ValueError(
            f"Field '{field}' already exists with type "
            f"{type(existing).__name__}, which cannot hold {what}; choose "
            "another field name"
        )


def ensure_field(samples, field, field_type):
    """Adds a sample field to the dataset unless it has it.

    Args:
        samples: a dataset or view
        field: the field
        field_type: a FiftyOne field class
    """
    ensure_fields(samples, {field: field_type})


def ensure_fields(samples, types):
    """Adds the sample fields the dataset lacks, as FiftyOne's
    ``add_sample_field`` does each, with one dataset reload for all (one per
    field costs about 5 ms each).

    Args:
        samples: a dataset or view
        types: a dict of field name -> FiftyOne field class
    """
    dataset = samples._root_dataset
    missing = {f: t for f, t in types.items() if not dataset.has_sample_field(f)}
    doc_cls = dataset._sample_doc_cls
    if len(missing) > 1 and hasattr(doc_cls, "_create_field"):
        # add_sample_field's own steps: create each field, merge, reload
        fields = {f: doc_cls._create_field(f, t) for f, t in missing.items()}
        if doc_cls.merge_field_schema(fields):
            dataset._reload()
        return
    for field, field_type in missing.items():
        dataset.add_sample_field(field, field_type)


def check_run_key_free(samples, run_key):
    """Checks that a run may be recorded under ``run_key``: the key is free
    or holds a duplicates run (which the run replaces), and no field of
    another origin has a run field's name.

    Args:
        samples: a dataset or view
        run_key: the run key

    Raises:
        ValueError: naming the run or field in the way
    """
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
