"""One encoding pass over a collection: reuse what is still valid, encode
the rest, and store values, errors and stamps as sample fields.

Reads with ``values()`` and writes with ``set_values()`` (never a per-sample
``save()``), so a pass over a large dataset costs a handful of database
round trips. The hash and embedding functions (and the Ray path, which
writes from its workers) share the report and the stamps defined here.
"""

import logging
from dataclasses import dataclass, field as dc_field

import fiftyone.core.fields as fof
from fiftyone import ViewField as F

from fiftyone_dedup.algorithms import decode
from fiftyone_dedup.engine.field_names import error_field, stamp_field
from fiftyone_dedup.engine.samples import ensure_fields
from fiftyone_dedup.progress import ProgressBar

logger = logging.getLogger(__name__)


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



def encode_collection(
    samples, field, settings, encode, overwrite, skip_failures, progress, label,
    field_type=fof.StringField, extra_field=None, extra_type=None, chunk_size=None,
):
    """Encodes the samples whose stored encoding is missing or stale.

    Args:
        samples: a FiftyOne dataset or view
        field: the encodings field
        settings: what the encodings are made with, for their stamps
        encode: a function of a list of paths yielding, per path, a tuple
            ``(value, [variants,] error)``
        overwrite: recompute stored encodings
        skip_failures: if False, raise after storing what was computed
        progress: ``None``, a bool, or a callable
        label: the progress bar's label
        field_type (StringField): the field's type
        extra_field (None): the variants field, with invariance
        extra_type (None): its list element type
        chunk_size (None): values per database write; ``None`` for all

    Returns:
        an :class:`EncodeReport`
    """
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
            ensure_fields(
                samples, {field: field_type, efield: fof.StringField, sfield: fof.StringField}
            )
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
    """Logs a pass's failures, and raises for them unless skipped.

    Args:
        report: an :class:`EncodeReport`
        efield: the error field
        skip_failures: whether failures are only logged

    Raises:
        ValueError: for failures when ``skip_failures`` is False
    """
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



def stamp(settings, file_stamp):
    """The stamp stored with an encoding: its settings and file version.

    Args:
        settings: what the encoding is made with
        file_stamp: :func:`fiftyone_dedup.algorithms.decode.file_stamp`

    Returns:
        a string, or ``None`` for a file that cannot be read
    """
    return None if file_stamp is None else f"{settings}:{file_stamp}"

