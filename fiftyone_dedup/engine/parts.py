"""The samples taking part in a duplicates run, part by part: each
collection's ids, paths and loaded encodings (with their flipped/rotated
variants), and all of them concatenated as one list of items.
"""

import logging
from dataclasses import dataclass, field as dc_field

import numpy as np

from fiftyone_dedup.algorithms import hashing
from fiftyone_dedup.engine.field_names import variants_field

logger = logging.getLogger(__name__)


@dataclass
class Part:
    """One collection taking part in a run, in its role (``"member"``,
    ``"query"`` or ``"reference"``)."""

    samples: object
    role: str
    ids: list = dc_field(default_factory=list)
    paths: list = dc_field(default_factory=list)
    encodings: object = None
    variants: object = None
    report: object = None
    num_samples: int = 0
    field: str = None
    compute: bool = True

    @property
    def dataset(self):
        """The collection's dataset."""
        return self.samples._root_dataset


def as_list(collections):
    """A collection or a list of them, as a list."""
    if isinstance(collections, (list, tuple)):
        return list(collections)
    return [collections]


class Items:
    """All samples taking part, concatenated over the parts."""

    def __init__(self, parts):
        self.part = np.concatenate(
            [np.full(len(p.ids), i, dtype=np.int64) for i, p in enumerate(parts)]
        ) if parts else np.zeros(0, dtype=np.int64)
        self.pos = np.concatenate(
            [np.arange(len(p.ids)) for p in parts]
        ) if parts else np.zeros(0, dtype=np.int64)
        self.ids = [i for p in parts for i in p.ids]
        self.paths = [f for p in parts for f in p.paths]
        self.datasets = [n for p in parts for n in [p.dataset.name] * len(p.ids)]

    def __len__(self):
        return len(self.ids)


def drop_query_overlap(parts):
    """Drops from the queries the samples that are also references (a
    sample in both sets would match itself: it stays a reference only)."""
    ref_ids = {
        (p.dataset.name, i) for p in parts if p.role == "reference" for i in p.ids
    }
    for p in parts:
        if p.role != "query":
            continue
        keep = [k for k, i in enumerate(p.ids) if (p.dataset.name, i) not in ref_ids]
        if len(keep) < len(p.ids):
            logger.warning(
                "%d sample(s) of the query are also in the reference; they are "
                "treated as reference only", len(p.ids) - len(keep),
            )
            p.ids = [p.ids[k] for k in keep]
            p.paths = [p.paths[k] for k in keep]
            p.encodings = p.encodings[keep]


def stack(spec, encodings):
    """The parts' encodings as one array.

    Raises:
        ValueError: for embeddings of different sizes
    """
    encodings = [e for e in encodings if len(e)]
    if len(encodings) == 1:
        return encodings[0]  # one collection: no copy
    if not encodings:
        return spec.empty(1)
    dims = {e.shape[1] for e in encodings if e.ndim == 2}
    if len(dims) > 1:
        raise ValueError(
            f"Embeddings of different sizes ({sorted(dims)}) cannot be "
            "compared; use the same model for every collection"
        )
    return np.concatenate(encodings)


def load_variants(part, spec, field, invariance):
    """The encodings of the flipped/rotated versions of a part's loaded
    samples: one array per sample (empty for one encoded without them)."""
    vfield = variants_field(field)
    lookup = dict(zip(*part.samples.values(["id", vfield])))
    count = len(hashing.INVARIANCES[invariance])
    dim = part.encodings.shape[1] if part.encodings.ndim == 2 else 0
    out = []
    for sid in part.ids:
        values = lookup.get(sid) or []
        if len(values) != count:
            values = []  # encoded without this invariance
        out.append(spec.as_codes(values) if values else spec.empty(dim))
    return out


def variant_codes(parts, roles, spec):
    """Every variant encoding of the parts in ``roles``, with the item each
    belongs to."""
    codes, owners, offset = [], [], 0
    for p in parts:
        n = len(p.ids)
        if p.role in roles and p.variants is not None:
            for i, v in enumerate(p.variants):
                codes.append(v)
                owners.append(np.full(len(v), offset + i, dtype=np.int64))
        offset += n
    if not codes:
        return stack(spec, []), np.zeros(0, dtype=np.int64)
    return np.concatenate(codes), np.concatenate(owners)
