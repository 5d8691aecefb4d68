"""Rewriting a run's fields and tags for a curator's review decisions (see
:mod:`fiftyone_dedup.engine.decisions` for what each decision means).

Works on a loaded run's results, so that both
:meth:`fiftyone_dedup.engine.runs.DedupRunResults.decide` and the functions
of :mod:`fiftyone_dedup.engine.decisions` apply decisions the same way.
"""

import logging

from fiftyone import ViewField as F

from fiftyone_dedup.engine.field_names import (
    ROLE_DUPLICATE,
    ROLE_KEPT,
    output_field,
    output_fields,
)

logger = logging.getLogger(__name__)

ACCEPT = "accept"
NOT_DUPLICATE = "not_duplicate"
KEEP = "keep"

#: the decisions on one sample
DECISIONS = (ACCEPT, NOT_DUPLICATE, KEEP)

#: the role of a sample decided not to be a duplicate
ROLE_NOT_DUPLICATE = "not_duplicate"


def apply(results, decisions):
    """Records decisions on samples of a run's groups and saves the results.

    Args:
        results: the run's loaded
            :class:`fiftyone_dedup.engine.runs.DedupRunResults`
        decisions: ``{sample_id: decision}``

    Returns:
        the saved results

    Raises:
        ValueError: for an unknown decision, a sample outside the run's
            groups, ``"not_duplicate"`` on a kept sample, or ``"keep"`` in a
            group whose kept sample is in another dataset
    """
    config, run_key = results.config, results.key
    dataset = results.samples._root_dataset
    group_f, role_f, kept_f, score_f = output_fields(run_key, config.metric)
    kfp_f = output_field(run_key, "kept_filepath")
    bad = [d for d in decisions.values() if d not in DECISIONS]
    if bad:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, got {bad[0]!r}")
    ids = list(decisions)
    found = dataset.select(ids).exists(group_f)
    rows = dict(zip(found.values("id"), zip(*found.values([group_f, role_f]))))
    missing = [i for i in ids if i not in rows]
    if missing:
        raise ValueError(f"Sample {missing[0]} is not in a group of run '{run_key}'")
    roles, tag_on, tag_off, kept_ids, scores, kept_paths = {}, [], [], {}, {}, {}
    for sid, decision in decisions.items():
        group, role = rows[sid]
        if decision == NOT_DUPLICATE:
            if role == ROLE_KEPT:
                raise ValueError(
                    f"Sample {sid} is the kept sample of group {group}: choose "
                    "'keep' on another member, or reject the group"
                )
            roles[sid] = ROLE_NOT_DUPLICATE
            tag_off.append(sid)
        elif decision == ACCEPT and role == ROLE_NOT_DUPLICATE:
            roles[sid] = ROLE_DUPLICATE
            tag_on.append(sid)
        elif decision == KEEP and role != ROLE_KEPT:
            _swap_keeper(dataset, run_key, config, sid, group, roles, kept_ids, scores, kept_paths)
            tag_off.append(sid)
            tag_on.extend(k for k, r in roles.items() if r == ROLE_DUPLICATE and k != sid)
    writes = ((role_f, roles), (kept_f, kept_ids), (score_f, scores), (kfp_f, kept_paths))
    for field, values in writes:
        if values:
            dataset.set_values(field, values, key_field="id")
    if config.tag:
        if tag_off:
            dataset.select(tag_off).untag_samples(config.tag)
        if tag_on:
            dataset.select(tag_on).tag_samples(config.tag)
    recorded = dict(getattr(results, "decisions", None) or {})
    recorded.update(decisions)
    results.decisions = recorded
    results.summary["num_duplicates"] = len(dataset.match(F(role_f) == ROLE_DUPLICATE))
    results.save()
    logger.info("Recorded %d decision(s) on run '%s'", len(decisions), run_key)
    return results


def _swap_keeper(dataset, run_key, config, sid, group, roles, kept_ids, scores, kept_paths):
    """Makes ``sid`` its group's kept sample (filling the value dicts)."""
    group_f, role_f, kept_f, score_f = output_fields(run_key, config.metric)
    members = dataset.match(F(group_f) == group)
    mids, mroles, mkept, mscores, mpaths = members.values(
        ["id", role_f, kept_f, score_f, "filepath"]
    )
    old = [m for m, r in zip(mids, mroles) if r == ROLE_KEPT]
    if not old:
        raise ValueError(
            f"The kept sample of group {group} is in another dataset; choosing "
            "another one is for groups within one dataset"
        )
    old = old[0]
    same = 1.0 if config.metric == "cosine" else 0
    path_of = dict(zip(mids, mpaths))
    score_of = dict(zip(mids, mscores))
    for m, r in zip(mids, mroles):
        kept_ids[m] = sid
        kept_paths[m] = path_of[sid]
    roles[sid] = ROLE_KEPT
    roles[old] = ROLE_DUPLICATE
    # the pair's score is symmetric; other members' scores stay against the
    # former kept sample (the panel says so)
    scores[old] = score_of[sid]
    scores[sid] = same
    if not dataset.has_sample_field(output_field(run_key, "kept_filepath")):
        kept_paths.clear()
