"""Moving encodings between files and a folder dataset (FiftyOne-aware).

Encodings read from files are written into the dataset's encodings field
for the samples they belong to, stamped as current, so the encoder reuses
them instead of decoding those images again; entries whose file changed or
is gone are left to be recomputed or dropped. Exporting writes one set per
folder, names relative to the folder's images.
"""

import logging
import os

import numpy as np

import fiftyone.core.fields as fof

from fiftyone_dedup.engine import field_names
from fiftyone_dedup.engine import samples
from fiftyone_dedup.algorithms import decode
from fiftyone_dedup.engine import encodings_io
from fiftyone_dedup.engine import folders

logger = logging.getLogger(__name__)


def _match_sets(encodings, dirs, data_dir):
    """Pairs each encodings set with a folder: by root when recorded, else
    in the order given."""
    roots = {folders.images_dir(d, data_dir): d for d in dirs}
    pairs, unplaced = [], []
    used = set()
    for s in encodings.sets:
        if s.root and s.root in roots:
            pairs.append((s, roots[s.root]))
            used.add(roots[s.root])
        else:
            unplaced.append(s)
    free = [d for d in dirs if d not in used]
    for s, d in zip(unplaced, free):
        pairs.append((s, d))
    for s in unplaced[len(free):]:
        logger.warning(
            "Encodings of '%s' match no folder given with -d; they are not used", s.name
        )
    return pairs


def import_encodings(dataset, encodings, dirs, data_dir, field, settings, field_type=None):
    """Writes file encodings into a folder dataset's encodings field.

    Args:
        dataset: the dataset from :func:`fiftyone_dedup.engine.folders.load_folders`
        encodings: an :class:`fiftyone_dedup.engine.encodings_io.Encodings`
        dirs: the folders of the run
        data_dir: whether images are in ``DIR/data``
        field: the encodings field
        settings: the stamp prefix the encoder expects (so that it reuses the
            imported values), e.g. ``"dhash:draft"``
        field_type (None): the field type (default: string, for hashes)

    Returns:
        a dict of counts: ``used``, ``changed``, ``gone``, ``unmatched``
    """
    ids_by_path = dict(zip(*dataset.values(["filepath", "id"])))
    values, stamps, errors = {}, {}, {}
    counts = {"used": 0, "changed": 0, "gone": 0, "unmatched": 0}
    for s, d in _match_sets(encodings, dirs, data_dir):
        base = folders.images_dir(d, data_dir)
        for name, value in s.encodings.items():
            path = os.path.join(base, name)
            sid = ids_by_path.get(path)
            stamp = decode.file_stamp(path)
            try:
                mtime = os.path.getmtime(path)
            except OSError:
                mtime = None
            reason = encodings_io.stale_reason(s, name, stamp, mtime)
            if reason == "gone":
                counts["gone"] += 1
                continue
            if sid is None:
                counts["unmatched"] += 1
                continue
            if reason == "changed":
                counts["changed"] += 1
                continue
            values[sid] = np.asarray(value, np.float32) if isinstance(value, list) else value
            stamps[sid] = f"{settings}:{stamp}"
            errors[sid] = None
            counts["used"] += 1
    if values:
        for name, ftype in (
            (field, field_type or fof.StringField),
            (field_names.error_field(field), fof.StringField),
            (field_names.stamp_field(field), fof.StringField),
        ):
            samples.ensure_field(dataset, name, ftype)
        dataset.set_values(field, values, key_field="id")
        dataset.set_values(field_names.stamp_field(field), stamps, key_field="id")
        dataset.set_values(field_names.error_field(field), errors, key_field="id")
    logger.info(
        "Encodings from files: %d used, %d of changed files and %d of missing "
        "files dropped, %d not in the folders",
        counts["used"], counts["changed"], counts["gone"], counts["unmatched"],
    )
    return counts


def export_encodings(dataset, dirs, data_dir, field, spec, model=None):
    """The encodings of a folder dataset, one set per folder.

    Args:
        dataset: the dataset from :func:`fiftyone_dedup.engine.folders.load_folders`
        dirs: the folders, in order
        data_dir: whether images are in ``DIR/data``
        field: the encodings field
        spec: the ``EncoderSpec``
        model (None): the model name, for embeddings

    Returns:
        an :class:`fiftyone_dedup.engine.encodings_io.Encodings`
    """
    paths, sources, values = dataset.values(["filepath", folders.SOURCE_FIELD, field])
    sets = []
    for d in dirs:
        base = folders.images_dir(d, data_dir)
        enc, stamps = {}, {}
        for path, src, value in zip(paths, sources, values):
            if src != d or value is None:
                continue
            name = os.path.relpath(path, base)
            enc[name] = list(map(float, value)) if spec.uses_model else value
            stamp = decode.file_stamp(path)
            if stamp:
                stamps[name] = stamp
        set_name = os.path.basename(d.rstrip(os.sep)) or "root"
        sets.append(encodings_io.EncodingsSet(set_name, base, enc, stamps))
    if not sets:
        return encodings_io.Encodings(spec.kind, spec.name, model)
    return encodings_io.merge(
        [encodings_io.Encodings(spec.kind, spec.name, model, [s]) for s in sets]
    )
