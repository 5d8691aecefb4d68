"""Persisted records of duplicate-finding runs.

A run is stored on the dataset with FiftyOne's generic run machinery
(``dataset.list_runs()``, ``get_run_info()``, ``load_run_results()``,
``delete_run()``), under classes with a stable import path
(``fiftyone_dedup.engine.runs.*``; records written before the layered
layout name ``fiftyone_dedup.runs.*``, an alias of this module) so that a
fresh Python process loads them back as themselves. Deleting a run removes
the fields it wrote and the tags it added.

The results own their views, as FiftyOne Brain's do: ``results.view()``
and ``results.groups()``; :func:`duplicates_view` and :func:`get_groups`
are the same for a collection and a run key.
"""

import logging

import fiftyone.core.runs as fors
from fiftyone import ViewField as F

from fiftyone_dedup.engine import decision_fields
from fiftyone_dedup.engine.field_names import (  # noqa: F401 - read as runs.*
    CROSS_SUFFIXES,
    DEFAULT_RUN_KEY,
    OUTPUT_SUFFIXES,
    ROLE_DUPLICATE,
    ROLE_KEPT,
    SCORE_SUFFIXES,
    VERIFY_SUFFIX,
    output_field,
    output_fields,
)

logger = logging.getLogger(__name__)

#: the ``method`` of every run this package records
METHOD = "fiftyone_dedup"

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
        out = decision_fields.apply(
            load_run(self.samples, self.key), {sample_id: decision}
        )
        self.decisions, self.summary = out.decisions, out.summary
        return out

    def get_meta(self):
        return dict(self.summary)

    def view(self, role=None, dynamic=False):
        """The run's groups as a view; see :func:`duplicates_view`."""
        return duplicates_view(self.samples, self.key, role=role, dynamic=dynamic)

    def groups(self):
        """The run's groups as dicts; see :func:`get_groups`."""
        return get_groups(self.samples, self.key)


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


def list_runs(samples):
    """The keys of the duplicate runs recorded on a collection.

    Args:
        samples: a FiftyOne dataset or view

    Returns:
        a sorted list of run keys
    """
    return list_dedup_runs(samples)


def load_run(samples, run_key=DEFAULT_RUN_KEY):
    """Loads a duplicate run's record, also from a fresh process.

    Args:
        samples: a FiftyOne dataset or view
        run_key ("dedup"): the run key

    Returns:
        a :class:`DedupRunResults`

    Raises:
        ValueError: if there is no such duplicate run
    """
    require_run(samples, run_key)
    return samples.load_run_results(run_key)


def require_run(samples, run_key):
    """The config of a duplicate run, which must exist.

    Args:
        samples: a FiftyOne dataset or view
        run_key: the run key

    Returns:
        the run's :class:`DedupRunConfig`

    Raises:
        ValueError: naming the runs there are
    """
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
    inl_f = output_field(run_key, VERIFY_SUFFIX)
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

