"""Keep policies: which member of a duplicate group stays.

A policy gives every sample taking part in a run a preference value (lower
is more wanted); the grouping keeps the most wanted member of each group.
Ties are always broken by the samples' own order (the order of the
collections given, then each collection's order), so the same inputs give
the same choice.

Policies (``keep=``):

-   ``"first"``: the first in order (the default), except that a file
    inside a duplicates folder of an earlier move (a folder holding move
    manifests: the caller's ``in_output_folder`` says which) is kept only
    when its group has no file outside one
-   ``"largest_resolution"``: most pixels (reads image headers for samples
    without ``metadata``)
-   ``"largest_file"``: the largest file on disk
-   ``"most_labels"``: the most labels (objects, classes, keypoints, ...) over
    all label fields
-   ``"oldest"`` / ``"newest"``: by file modification time
-   ``"priority"``: by a list of datasets or folders (``priority=``), in that
    order; e.g. keep what is already in the reference
-   ``"max:<field>"`` / ``"min:<field>"``: the highest (lowest) value of any
    numeric sample field, e.g. ``"max:quality"``; in Python also a
    ``ViewExpression`` (highest kept) or a tuple ``(field_or_expr,
    "max"|"min")``
"""

import logging
import os

import numpy as np

from fiftyone_dedup.algorithms import decode

logger = logging.getLogger(__name__)

#: the named keep policies
POLICIES = (
    "first",
    "largest_resolution",
    "largest_file",
    "most_labels",
    "oldest",
    "newest",
    "priority",
)

_WORST = np.inf


def describe(keep):
    """A short human description of a keep policy, for records and reports."""
    if isinstance(keep, str):
        return keep
    if isinstance(keep, tuple):
        expr, direction = keep
        return f"{direction}:{_expr_str(expr)}"
    return f"max:{_expr_str(keep)}"


def _expr_str(expr):
    try:
        import json

        return json.dumps(expr.to_mongo()) if hasattr(expr, "to_mongo") else str(expr)
    except Exception:  # noqa: BLE001 - a description only
        return str(expr)


def validate_keep(keep, priority=None):
    """Checks a keep policy.

    Args:
        keep: a policy (see the module)
        priority (None): the list for ``"priority"``

    Returns:
        a normalised ``(kind, arg)`` tuple

    Raises:
        ValueError: naming the known policies
    """
    from fiftyone.core.expressions import ViewExpression

    if isinstance(keep, ViewExpression):
        return ("expr", (keep, "max"))
    if isinstance(keep, tuple) and len(keep) == 2:
        expr, direction = keep
        if direction not in ("max", "min"):
            raise ValueError(
                f"keep=(field, direction): direction must be 'max' or 'min', got {direction!r}"
            )
        if not isinstance(expr, (str, ViewExpression)):
            raise ValueError(
                f"keep=(field, direction): field must be a name or expression, got {expr!r}"
            )
        return ("expr", (expr, direction))
    if isinstance(keep, str):
        if keep in POLICIES:
            if keep == "priority":
                if not priority or isinstance(priority, str):
                    raise ValueError(
                        "keep='priority' needs priority=[...]: dataset names or "
                        "folders, most wanted first"
                    )
                return ("priority", [str(p) for p in priority])
            return (keep, None)
        for direction in ("max", "min"):
            prefix = direction + ":"
            if keep.startswith(prefix) and len(keep) > len(prefix):
                return ("expr", (keep[len(prefix):], direction))
    raise ValueError(
        f"Unknown keep policy {keep!r}; expected one of {', '.join(POLICIES)}, "
        "'max:<field>' or 'min:<field>'"
    )


def check_field(samples, keep):
    """Checks that a ``"max:<field>"``/``"min:<field>"`` policy names a
    numeric (or date) field of the collection; other policies pass.

    Args:
        samples: a ``SampleCollection``
        keep: a policy (see the module)

    Raises:
        ValueError: naming the field and the numeric fields there are
    """
    import fiftyone.core.fields as fof

    kind, arg = validate_keep(keep, priority=["-"])
    if kind != "expr" or not isinstance(arg[0], str):
        return
    name = arg[0]
    numeric = (fof.IntField, fof.FloatField, fof.DateField, fof.DateTimeField)
    field = samples.get_field(name)
    if isinstance(field, numeric):
        return
    usable = sorted(
        k for k, f in samples.get_field_schema(flat=True).items()
        if isinstance(f, numeric) and not k.startswith("_")
    )
    known = f"; numeric fields: {', '.join(usable)}" if usable else ""
    if field is None:
        raise ValueError(
            f"no sample field {name!r} in dataset '{samples._root_dataset.name}'{known}"
        )
    raise ValueError(f"{keep!r}: field {name!r} is a {type(field).__name__}, not a number{known}")


def preference(
    samples, ids, keep="first", priority=None, filepaths=None, in_output_folder=None
):
    """Preference values of some samples of one collection (lower is kept).

    Args:
        samples: the ``SampleCollection`` the ids belong to
        ids: the sample ids taking part, in the collection's order
        keep ("first"): the policy
        priority (None): the list for ``"priority"``
        filepaths (None): the samples' filepaths, if already read
        in_output_folder (None): for ``"first"``, a function of a folder
            path that says whether it lies in a duplicates folder of an
            earlier move (files there are kept last); ``None`` for none

    Returns:
        a float array aligned with ``ids``; ties are broken by the caller
    """
    kind, arg = validate_keep(keep, priority)
    n = len(ids)
    if n == 0:
        return np.zeros(n)
    if filepaths is None:
        filepaths = _values_for(samples, ids, "filepath")
    if kind == "first":
        return _moved_out_preference(filepaths, in_output_folder)

    if kind in ("largest_file", "oldest", "newest"):
        out = np.full(n, _WORST)
        for i, path in enumerate(filepaths):
            try:
                st = os.stat(path)
            except OSError:
                continue
            if kind == "largest_file":
                out[i] = -st.st_size
            elif kind == "oldest":
                out[i] = st.st_mtime_ns
            else:
                out[i] = -st.st_mtime_ns
        return out

    if kind == "largest_resolution":
        return _resolution_preference(samples, ids)

    if kind == "most_labels":
        return -_label_counts(samples, ids).astype(float)

    if kind == "priority":
        return _priority_preference(samples, filepaths, arg)

    expr, direction = arg
    values = _values_for(samples, ids, expr)
    out = np.full(n, _WORST)
    for i, v in enumerate(values):
        if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            if np.isfinite(v):
                out[i] = -float(v) if direction == "max" else float(v)
        elif v is not None and hasattr(v, "timestamp"):
            out[i] = -v.timestamp() if direction == "max" else v.timestamp()
    return out


def _values_for(samples, ids, field_or_expr):
    # values() in the collection's order, then aligned to ids
    all_ids = samples.values("id")
    values = samples.values(field_or_expr)
    lookup = dict(zip(all_ids, values))
    return [lookup.get(i) for i in ids]


def _moved_out_preference(filepaths, in_output_folder):
    # 1 for files in a duplicates folder (copies moved out earlier), else 0
    out = np.zeros(len(filepaths))
    if in_output_folder is None:
        return out
    by_folder = {}
    for i, path in enumerate(filepaths):
        by_folder.setdefault(os.path.dirname(path), []).append(i)
    for folder, idx in by_folder.items():
        if in_output_folder(folder):
            out[idx] = 1.0
    return out


def _resolution_preference(samples, ids):
    missing = samples.select(ids).exists("metadata", False)
    if len(missing):
        # only regular files: a FIFO or device would block or never end
        mids, paths = missing.values(["id", "filepath"])
        readable = [i for i, p in zip(mids, paths) if os.path.isfile(p)]
        logger.info("Reading image sizes of %d sample(s)", len(readable))
        if readable:
            decode.register_heif()  # FiftyOne reads the sizes with PIL
            samples.select(readable).compute_metadata()
    widths = _values_for(samples, ids, "metadata.width")
    heights = _values_for(samples, ids, "metadata.height")
    out = np.full(len(ids), _WORST)
    for i, (w, h) in enumerate(zip(widths, heights)):
        if w and h:
            out[i] = -float(w) * float(h)
    return out


def _label_counts(samples, ids):
    import fiftyone as fo
    from fiftyone import ViewField as F

    counts = np.zeros(len(ids), dtype=np.int64)
    schema = samples.get_field_schema(embedded_doc_type=fo.Label)
    for name, field in schema.items():
        doc_type = getattr(field, "document_type", None)
        list_field = getattr(doc_type, "_LABEL_LIST_FIELD", None)
        if list_field:
            expr = F(f"{name}.{list_field}").length()
        else:
            expr = (F(name) != None).if_else(1, 0)  # noqa: E711
        values = _values_for(samples, ids, expr)
        counts += np.array([v or 0 for v in values], dtype=np.int64)
    return counts


def _priority_preference(samples, filepaths, priority):
    dataset_name = samples._root_dataset.name
    rank_of_dataset = {p: r for r, p in enumerate(priority)}
    folders = [
        (r, os.path.abspath(os.path.expanduser(p)).rstrip(os.sep) + os.sep)
        for r, p in enumerate(priority)
    ]
    base = rank_of_dataset.get(dataset_name, len(priority))
    out = np.full(len(filepaths), float(base))
    for i, path in enumerate(filepaths):
        for r, folder in folders:
            if r < out[i] and os.path.abspath(path).startswith(folder):
                out[i] = r
                break
    return out


def keep_order(
    samples, ids, keep="first", priority=None, filepaths=None, in_output_folder=None
):
    """The keep-priority order of some samples of one collection.

    Args:
        samples: the ``SampleCollection`` the ids belong to
        ids: the sample ids taking part, in the collection's order
        keep ("first"): the policy
        priority (None): the list for ``"priority"``
        filepaths (None): the samples' filepaths, if already read
        in_output_folder (None): see :func:`preference`

    Returns:
        an int array: positions into ``ids``, most wanted first
    """
    pref = preference(
        samples, ids, keep, priority=priority, filepaths=filepaths,
        in_output_folder=in_output_folder,
    )
    return np.lexsort((np.arange(len(ids)), pref))
