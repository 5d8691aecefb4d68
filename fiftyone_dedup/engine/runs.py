"""Persisted records of duplicate-finding runs.

A run is stored on the dataset with FiftyOne's generic run machinery
(``dataset.list_runs()``, ``get_run_info()``, ``load_run_results()``,
``delete_run()``), under classes with a stable import path
(``fiftyone_dedup.engine.runs.*``) so that a fresh Python process loads them back
as themselves. Deleting a run removes the fields it wrote and the tags it
added.
"""

import logging

import fiftyone.core.runs as fors
from fiftyone import ViewField as F

logger = logging.getLogger(__name__)

#: the ``method`` of every run this package records
METHOD = "fiftyone_dedup"

#: per-sample fields every run writes, as suffixes of ``<run_key>_``
OUTPUT_SUFFIXES = ("group", "role", "kept_id")

#: the score field's suffix, per metric: a distance for hashes, a
#: similarity for embeddings
SCORE_SUFFIXES = {"hamming": "distance", "cosine": "similarity"}

#: extra per-sample fields of runs over several collections: the kept
#: sample's dataset and filepath, and whether the sample's group spans
#: collections
CROSS_SUFFIXES = ("kept_dataset", "kept_filepath", "cross")

#: the field of a verified run holding each duplicate's verification score
#: (RANSAC inliers with its kept sample; 0 for textureless images matched by
#: their thumbnails)
VERIFY_SUFFIX = "inliers"


def output_field(run_key, suffix):
    """The name of a per-sample field written by a run.

    Args:
        run_key: the run key
        suffix: one of :data:`OUTPUT_SUFFIXES`, :data:`SCORE_SUFFIXES` or
            :data:`CROSS_SUFFIXES`

    Returns:
        ``"<run_key>_<suffix>"``
    """
    return f"{run_key}_{suffix}"


class DedupRunConfig(fors.RunConfig):
    """Parameters of a duplicate-finding run.

    Args:
        encoder ("dhash"): the encoder name
        field ("dhash"): the sample field holding the encodings
        metric ("hamming"): ``"hamming"`` (distance, bits) or ``"cosine"``
            (similarity)
        threshold (10): the match threshold in the metric's units
        keep ("first"): the keep policy
        grouping ("star"): the grouping method
        tag ("duplicate"): the tag added to duplicates
        output_fields (None): the per-sample fields the run wrote
        cross_datasets (None): for cross-dataset runs, the names of the other
            datasets taking part
        mode (None): ``"within"``, ``"union"`` or ``"query"``
        role (None): this dataset's part: ``"member"``, ``"query"``,
            ``"reference"`` (or several, joined by ``+``)
        guard ("kept"): the guard against chaining
        guard_threshold (None): the guard's threshold
        min_samples (1): DBSCAN's ``min_samples``
        priority (None): the list of the ``"priority"`` keep policy
        model (None): for embeddings, the model that computed them
            (``"efficientnet-lite0"``, ``"zoo:<name>"``, ...), or
            ``"field:<name>"`` for embeddings used as found
        invariance (None): the flip/rotation invariance used, if any
        verify (None): the verification method (``"orb"``), or ``"none"``
        verify_settings (None): for verified runs, what decided: the
            candidate bound, candidates per sample, inliers needed, ...
        saved_views (None): the saved views the run created
        **kwargs: other JSON-serializable parameters
    """

    def __init__(
        self,
        encoder="dhash",
        field="dhash",
        metric="hamming",
        threshold=10,
        keep="first",
        grouping="star",
        tag="duplicate",
        output_fields=None,
        cross_datasets=None,
        mode=None,
        role=None,
        guard="kept",
        guard_threshold=None,
        min_samples=1,
        priority=None,
        model=None,
        invariance=None,
        verify=None,
        verify_settings=None,
        saved_views=None,
        **kwargs,
    ):
        kwargs.setdefault("method", METHOD)
        super().__init__(**kwargs)
        self.encoder = encoder
        self.field = field
        self.metric = metric
        self.threshold = threshold
        self.keep = keep
        self.grouping = grouping
        self.tag = tag
        self.output_fields = list(output_fields or [])
        self.cross_datasets = list(cross_datasets or [])
        self.mode = mode
        self.role = role
        self.guard = guard
        self.guard_threshold = guard_threshold
        self.min_samples = min_samples
        self.priority = list(priority or [])
        self.model = model
        self.invariance = invariance
        self.verify = verify
        self.verify_settings = verify_settings
        self.saved_views = list(saved_views or [])


class DedupRun(fors.Run):
    """The run class of :class:`DedupRunConfig`: knows which fields and tags
    a run wrote, and removes them when the run is deleted or replaced.
    """

    def get_fields(self, samples, key):
        return list(self.config.output_fields)

    def cleanup(self, samples, key):
        dataset = samples._root_dataset
        fields = [
            f for f in self.config.output_fields if dataset.has_sample_field(f)
        ]
        role_field = output_field(key, "role")
        tag = self.config.tag
        if tag and role_field in fields:
            dups = dataset.match(F(role_field) == "duplicate")
            others = _other_runs_tagging(dataset, key, tag)
            for other_role in others:
                dups = dups.match(F(other_role) != "duplicate")
            dups.untag_samples(tag)
        if fields:
            dataset.delete_sample_fields(fields, error_level=1)
        for name in self.config.saved_views:
            if dataset.has_saved_view(name):
                dataset.delete_saved_view(name)

    def rename(self, samples, key, new_key):
        dataset = samples._root_dataset
        renames = {}
        for f in self.config.output_fields:
            if f.startswith(key + "_") and dataset.has_sample_field(f):
                renames[f] = new_key + f[len(key):]
        if renames:
            dataset.rename_sample_fields(renames)
        self.config.output_fields = [
            renames.get(f, f) for f in self.config.output_fields
        ]
        fors.Run.update_run_config(samples, key, self.config)


def _other_runs_tagging(dataset, key, tag):
    roles = []
    for other in dataset.list_runs():
        if other == key:
            continue
        try:
            cfg = dataset.get_run_info(other).config
        except Exception:  # noqa: BLE001 - an unreadable run tags nothing
            continue
        if isinstance(cfg, DedupRunConfig) and cfg.tag == tag:
            role = output_field(other, "role")
            if dataset.has_sample_field(role):
                roles.append(role)
    return roles


class DedupRunResults(fors.RunResults):
    """What a run found, stored with the run.

    Attributes:
        summary: a dict of counts: ``num_samples``, ``num_encoded``,
            ``num_failed``, ``num_pairs``, ``num_groups``, ``num_duplicates``,
            ``num_cross`` (duplicates of a sample in another collection), and
            ``datasets`` (the same per dataset taking part)
        histogram: the distances (or similarities) of the pairs found up to a
            margin past the threshold: ``{"metric", "threshold", "edges",
            "counts"}``, or None
        decisions: a curator's review decisions, ``{sample_id: decision}``
            (see :mod:`fiftyone_dedup.engine.decisions`)
    """

    def __init__(
        self, samples, config, key, backend=None, summary=None, histogram=None,
        decisions=None, **kwargs,
    ):
        super().__init__(samples, config, key, backend=backend, **kwargs)
        self.summary = dict(summary or {})
        self.histogram = histogram
        self.decisions = dict(decisions or {})

    def decide(self, sample_id, decision):
        """Records a review decision on one sample; see
        :func:`fiftyone_dedup.engine.decisions.decide`.

        Args:
            sample_id: the sample's id
            decision: ``"accept"``, ``"not_duplicate"`` or ``"keep"``

        Returns:
            the saved results (reloaded)
        """
        from fiftyone_dedup.engine import decisions

        out = decisions.decide(self.samples, sample_id, decision, run_key=self.key)
        self.decisions, self.summary = out.decisions, out.summary
        return out

    def get_meta(self):
        return dict(self.summary)

    def view(self, role=None, dynamic=False):
        """The run's groups as a view; see
        :func:`fiftyone_dedup.engine.core.duplicates_view`.
        """
        from fiftyone_dedup.engine import core

        return core.duplicates_view(
            self.samples, self.key, role=role, dynamic=dynamic
        )

    def groups(self):
        """The run's groups as dicts; see
        :func:`fiftyone_dedup.engine.core.get_groups`.
        """
        from fiftyone_dedup.engine import core

        return core.get_groups(self.samples, self.key)


def list_dedup_runs(samples):
    """The keys of the duplicate-finding runs on a collection.

    Args:
        samples: a ``fiftyone.core.collections.SampleCollection``

    Returns:
        a sorted list of run keys
    """
    keys = []
    for key in samples.list_runs():
        try:
            cfg = samples.get_run_info(key).config
        except Exception:  # noqa: BLE001
            continue
        if isinstance(cfg, DedupRunConfig):
            keys.append(key)
    return sorted(keys)
