"""A curator's review decisions on a run's groups.

Each decision rewrites the run's per-sample fields and tags, so that every
reader of the run (the App's views, the command line, and the move, which
moves the samples whose role is ``"duplicate"``) honours it, and is also
recorded with the run's results (``results.decisions``), so it survives a
reload:

- ``"not_duplicate"``: the sample stays in its group for review but its
  role becomes ``"not_duplicate"`` and its tag is removed: it never moves;
- ``"keep"``: the sample becomes its group's kept sample and the former
  kept sample a duplicate of it (which the move then moves);
- ``"accept"``: the sample is a duplicate of its group's kept sample (this
  undoes ``"not_duplicate"``; on the kept sample it accepts the group).
"""

import logging

from fiftyone import ViewField as F

from fiftyone_dedup.engine import decision_fields
from fiftyone_dedup.engine import runs
from fiftyone_dedup.engine.decision_fields import (  # noqa: F401 - read as decisions.*
    ACCEPT,
    DECISIONS,
    KEEP,
    NOT_DUPLICATE,
    ROLE_NOT_DUPLICATE,
)
from fiftyone_dedup.engine.field_names import (
    DEFAULT_RUN_KEY,
    ROLE_DUPLICATE,
    ROLE_KEPT,
    output_fields,
)

logger = logging.getLogger(__name__)

# the fields every run writes; any other ``<key>_*`` field is evidence
_STANDARD = runs.OUTPUT_SUFFIXES + tuple(runs.SCORE_SUFFIXES.values()) + runs.CROSS_SUFFIXES


def decide(samples, sample_id, decision, run_key=DEFAULT_RUN_KEY):
    """Records a decision on one sample of a run's group (see the module).

    Args:
        samples: the dataset (or a view of it) the run is on
        sample_id: the sample's id
        decision: ``"accept"``, ``"not_duplicate"`` or ``"keep"``
        run_key ("dedup"): the run

    Returns:
        the run's :class:`fiftyone_dedup.engine.runs.DedupRunResults`, saved

    Raises:
        ValueError: for an unknown decision, a sample outside the run's
            groups, ``"not_duplicate"`` on a kept sample, or ``"keep"`` in a
            group whose kept sample is in another dataset
    """
    return decide_many(samples, {sample_id: decision}, run_key=run_key)


def decide_group(samples, group, decision, run_key=DEFAULT_RUN_KEY):
    """Accepts or rejects a whole group.

    Args:
        samples: the dataset (or a view) the run is on
        group: the group number
        decision: ``"accept"`` (every member a duplicate of the kept sample)
            or ``"reject"`` (none of them is: all ``"not_duplicate"``)
        run_key ("dedup"): the run

    Returns:
        the saved results
    """
    return decide_all(samples, decision, run_key=run_key, groups=[group])


def decide_all(samples, decision, run_key=DEFAULT_RUN_KEY, groups=None):
    """Accepts or rejects every group (or the groups listed).

    Args:
        samples: the dataset (or a view) the run is on
        decision: ``"accept"`` or ``"reject"``
        run_key ("dedup"): the run
        groups (None): group numbers; all by default

    Returns:
        the saved results
    """
    if decision not in (ACCEPT, "reject"):
        raise ValueError(f"decision must be 'accept' or 'reject' for groups, got {decision!r}")
    config = runs.require_run(samples, run_key)
    group_f, role_f = output_fields(run_key, config.metric)[:2]
    view = samples._root_dataset.match(F(role_f).is_in([ROLE_DUPLICATE, ROLE_NOT_DUPLICATE]))
    if groups is not None:
        view = view.match(F(group_f).is_in(list(groups)))
    per = ACCEPT if decision == ACCEPT else NOT_DUPLICATE
    return decide_many(samples, {sid: per for sid in view.values("id")}, run_key=run_key)


def decide_many(samples, decisions, run_key=DEFAULT_RUN_KEY):
    """Records several decisions at once (see :func:`decide`).

    Args:
        samples: the dataset (or a view) the run is on
        decisions: ``{sample_id: decision}``
        run_key ("dedup"): the run

    Returns:
        the saved results
    """
    return decision_fields.apply(runs.load_run(samples, run_key), decisions)


def review_groups(samples, run_key=DEFAULT_RUN_KEY):
    """The run's groups for review: each member with its role, score,
    decision and any other per-sample fields of the run (such as
    verification evidence).

    Args:
        samples: the dataset (or a view) the run is on
        run_key ("dedup"): the run

    Returns:
        a list of ``{"group", "kept": member or None, "duplicates":
        [member]}`` dicts in group order, each member a dict with ``id``,
        ``filepath``, ``role``, ``score``, ``decision`` and ``evidence``
        (``{field: value}``); cross-dataset runs add ``kept_filepath`` and
        ``kept_dataset`` to members whose kept sample is elsewhere
    """
    results = runs.load_run(samples, run_key)
    config = results.config
    decided = getattr(results, "decisions", None) or {}
    group_f, role_f, kept_f, score_f = output_fields(run_key, config.metric)
    dataset = samples._root_dataset
    prefix = run_key + "_"
    extra = [
        name for name in dataset.get_field_schema()
        if name.startswith(prefix) and name[len(prefix):] not in _STANDARD
    ]
    cross = [
        runs.output_field(run_key, s) for s in ("kept_filepath", "kept_dataset")
        if dataset.has_sample_field(runs.output_field(run_key, s))
    ]
    fields = ["id", "filepath", group_f, role_f, score_f] + cross + extra
    values = samples.exists(group_f).values(fields)
    groups = {}
    for row in zip(*values):
        member = dict(zip(fields, row))
        g = member.pop(group_f)
        entry = groups.setdefault(g, {"group": g, "kept": None, "duplicates": []})
        out = {
            "id": member["id"], "filepath": member["filepath"], "role": member[role_f],
            "score": member[score_f], "decision": decided.get(member["id"]),
            "evidence": {f[len(prefix):]: member[f] for f in extra if member[f] is not None},
        }
        for f in cross:
            out[f[len(prefix):]] = member[f]
        if member[role_f] == ROLE_KEPT:
            entry["kept"] = out
        else:
            entry["duplicates"].append(out)
    reverse = config.metric == "cosine"
    for entry in groups.values():
        missing = float("-inf") if reverse else float("inf")
        entry["duplicates"].sort(
            key=lambda d: missing if d["score"] is None else d["score"], reverse=reverse
        )
    return [groups[g] for g in sorted(groups)]


def _inside(score, threshold, metric):
    return score >= threshold if metric == "cosine" else score <= threshold


def threshold_preview(samples, threshold, run_key=DEFAULT_RUN_KEY):
    """What a stricter threshold would leave of a run, from the scores it
    recorded (nothing is encoded or searched again).

    Only thresholds at or inside the run's own can be previewed: pairs past
    it were not recorded per sample.

    Args:
        samples: the dataset (or a view) the run is on
        threshold: a Hamming distance (hashes) or a minimum cosine
            similarity (CNN); None for the run's own
        run_key ("dedup"): the run

    Returns:
        a dict: ``threshold``, ``num_duplicates`` and ``num_groups`` (what
        would remain), ``num_dropped`` (duplicates that would become "not a
        duplicate") and ``dropped`` (their ids)

    Raises:
        ValueError: for a threshold looser than the run's
    """
    config = runs.require_run(samples, run_key)
    metric = config.metric
    if threshold is None:
        threshold = config.threshold
    if not _inside(threshold, config.threshold, metric) and threshold != config.threshold:
        raise ValueError(
            f"The run recorded matches up to {config.threshold}: a preview needs a "
            f"threshold {'at least' if metric == 'cosine' else 'at most'} that, got "
            f"{threshold}; run the search again for a looser one"
        )
    group_f, role_f, _, score_f = output_fields(run_key, metric)
    view = samples._root_dataset.match(F(role_f) == ROLE_DUPLICATE)
    ids, groups, scores = view.values(["id", group_f, score_f])
    kept = [
        (i, g) for i, g, s in zip(ids, groups, scores)
        if s is not None and _inside(s, threshold, metric)
    ]
    dropped = sorted(set(ids) - {i for i, _ in kept})
    return {
        "threshold": threshold,
        "num_duplicates": len(kept),
        "num_groups": len({g for _, g in kept}),
        "num_dropped": len(dropped),
        "dropped": dropped,
    }


def apply_threshold(samples, threshold, run_key=DEFAULT_RUN_KEY):
    """Applies a stricter threshold from the recorded scores: duplicates
    past it are decided "not a duplicate" (see :func:`threshold_preview`).

    Args:
        samples: the dataset (or a view) the run is on
        threshold: the stricter threshold
        run_key ("dedup"): the run

    Returns:
        the saved results (``summary["review_threshold"]`` records it)
    """
    preview = threshold_preview(samples, threshold, run_key=run_key)
    results = decide_many(samples, {i: NOT_DUPLICATE for i in preview["dropped"]}, run_key=run_key)
    results.summary["review_threshold"] = threshold
    results.save()
    return results
