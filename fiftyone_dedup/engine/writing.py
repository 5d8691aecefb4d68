"""What a duplicates run writes into every dataset taking part: the
per-sample fields and tags, the saved review views, the run record and its
results (with the run's summary).
"""

import datetime
import time

import numpy as np

import fiftyone.core.fields as fof

from fiftyone_dedup.algorithms import grouping
from fiftyone_dedup.engine import review
from fiftyone_dedup.engine import runs
from fiftyone_dedup.engine.field_names import (
    ROLE_DUPLICATE,
    ROLE_KEPT,
    VERIFY_SUFFIX,
    CROSS_SUFFIXES,
    output_field,
    output_fields,
    score_value,
)
from fiftyone_dedup.engine.pairs import identical_pairs
from fiftyone_dedup.engine.samples import ensure_fields


def summary(parts, items, groups, keys, weights, mode):
    """The counts a run records (``results.summary``), over all datasets
    taking part and per dataset."""
    num_samples = sum(p.num_samples for p in parts)
    num_encoded = len(items)
    dup = groups.role == grouping.DUPLICATE
    cross = np.zeros(len(items), dtype=bool)
    cross[dup] = items.part[groups.kept[dup]] != items.part[dup]
    per = {}
    for i, part in enumerate(parts):
        name = part.dataset.name
        entry = per.setdefault(
            name, {"samples": 0, "encoded": 0, "kept": 0, "duplicates": 0, "cross": 0}
        )
        in_part = items.part == i
        entry["samples"] += part.num_samples
        entry["encoded"] += int(np.count_nonzero(in_part))
        entry["kept"] += int(np.count_nonzero(in_part & (groups.role == grouping.KEPT)))
        entry["duplicates"] += int(np.count_nonzero(in_part & dup))
        entry["cross"] += int(np.count_nonzero(in_part & cross))
    identical = identical_pairs(keys) if mode != "query" else 0
    out = {
        "num_samples": num_samples,
        "num_encoded": num_encoded,
        "num_failed": num_samples - num_encoded,
        "num_pairs": int(np.sum(weights)) + identical,
        "num_groups": groups.num_groups,
        "num_duplicates": groups.num_duplicates,
        "num_cross": int(np.count_nonzero(cross)),
        "datasets": per,
    }
    reports = [p.report for p in parts if p.report is not None]
    if reports:
        out["num_computed"] = sum(r.num_computed for r in reports)
        out["num_reused"] = sum(r.num_reused for r in reports)
    return out


def write(
    parts, items, groups, clusters, run_key, spec, options, summary, hist,
    started, save_views, write_reference, item_inliers=None,
):
    """Writes a run into every dataset taking part (the references only
    with ``write_reference``).

    Returns:
        the :class:`fiftyone_dedup.engine.runs.DedupRunResults` of the
        first dataset written
    """
    multi = len({p.dataset.name for p in parts}) > 1 or options["mode"] == "query"
    fields = output_fields(run_key, spec.metric)
    if item_inliers is not None:
        fields.append(output_field(run_key, VERIFY_SUFFIX))
    if multi:
        fields += [output_field(run_key, s) for s in CROSS_SUFFIXES]
    if clusters is not None:
        fields.append(output_field(run_key, "cluster"))

    first = None
    by_dataset = {}
    for i, part in enumerate(parts):
        if part.role == "reference" and not write_reference:
            continue
        by_dataset.setdefault(part.dataset.name, []).append(i)
    names = [p.dataset.name for p in parts]

    for name, part_idx in by_dataset.items():
        dataset = parts[part_idx[0]].dataset
        # the record goes on the collection searched, or on the dataset when
        # several of its views took part
        target = parts[part_idx[0]].samples if len(part_idx) == 1 else dataset
        roles = sorted({parts[i].role for i in part_idx})
        views = review.view_names(run_key, cross=multi) if save_views else []
        config = runs.DedupRunConfig(
            output_fields=fields,
            cross_datasets=sorted({n for n in names if n != name}),
            role="+".join(roles),
            saved_views=views,
            **options,
        )
        target.register_run(run_key, config, overwrite=True, cleanup=True)
        in_ds = np.isin(items.part, part_idx)
        write_fields(
            dataset, items, groups, clusters, run_key, spec, in_ds, multi,
            options["tag"], item_inliers,
        )
        if views:
            review.save_views(target, run_key, views)
        summary_ds = dict(summary, seconds=round(time.time() - started, 3))
        results = runs.DedupRunResults(
            target, config, run_key, summary=summary_ds, histogram=hist
        )
        target.save_run_results(run_key, results, overwrite=True)
        if first is None:
            first = results
    return first


def write_fields(
    dataset, items, groups, clusters, run_key, spec, mask, multi, tag, item_inliers=None,
):
    group_f, role_f, kept_f, score_f = output_fields(run_key, spec.metric)
    same = 1.0 if spec.similarity else 0
    values = {group_f: {}, role_f: {}, kept_f: {}, score_f: {}}
    kds_f = output_field(run_key, "kept_dataset")
    kfp_f = output_field(run_key, "kept_filepath")
    cross_f = output_field(run_key, "cross")
    if multi:
        values[kds_f], values[kfp_f], values[cross_f] = {}, {}, {}
        dup = groups.role == grouping.DUPLICATE
        across = np.zeros(len(items), dtype=bool)
        across[dup] = items.part[groups.kept[dup]] != items.part[dup]
        across[groups.kept[across]] = True
    cluster_f = output_field(run_key, "cluster")
    if clusters is not None:
        values[cluster_f] = {}
    inl_f = output_field(run_key, VERIFY_SUFFIX)
    if item_inliers is not None:
        values[inl_f] = {}
    dup_ids = []
    for i in np.flatnonzero(mask):
        sid = items.ids[i]
        if clusters is not None and clusters[i] >= 0:
            values[cluster_f][sid] = int(clusters[i])
        role = groups.role[i]
        if role == grouping.NONE:
            continue
        k = i if role == grouping.KEPT else groups.kept[i]
        values[group_f][sid] = int(groups.group[i])
        values[role_f][sid] = ROLE_KEPT if role == grouping.KEPT else ROLE_DUPLICATE
        values[kept_f][sid] = items.ids[k]
        values[score_f][sid] = (
            same if role == grouping.KEPT else score_value(groups.score[i], spec.metric)
        )
        if multi:
            values[kds_f][sid] = items.datasets[k]
            values[kfp_f][sid] = items.paths[k]
            values[cross_f][sid] = bool(across[i])
        if role == grouping.DUPLICATE:
            dup_ids.append(sid)
            if item_inliers is not None:
                values[inl_f][sid] = int(item_inliers[i])

    types = {
        group_f: fof.IntField, role_f: fof.StringField, kept_f: fof.StringField,
        score_f: fof.FloatField if spec.similarity else fof.IntField,
        kds_f: fof.StringField, kfp_f: fof.StringField, cluster_f: fof.IntField,
        cross_f: fof.BooleanField, inl_f: fof.IntField,
    }
    ensure_fields(dataset, {name: types[name] for name in values})
    set_fields(dataset, values)
    if tag and dup_ids:
        dataset.select(dup_ids).tag_samples(tag)


def set_fields(dataset, values):
    """Writes ``{field: {sample id: value}}`` (plain values of existing
    fields) with one update per sample for all its fields; FiftyOne's
    ``set_values`` makes one per sample and field."""
    by_id = {}
    for name, vals in values.items():
        for sid, value in vals.items():
            by_id.setdefault(sid, {})[name] = value
    write = getattr(dataset, "_bulk_write", None)
    if write is None:  # pragma: no cover - a FiftyOne without it
        for name, vals in values.items():
            if vals:
                dataset.set_values(name, vals, key_field="id")
        return
    if not by_id:
        return
    from bson import ObjectId
    from pymongo import UpdateOne

    now = datetime.datetime.now(datetime.timezone.utc)
    ids = [ObjectId(sid) for sid in by_id]
    ops = [
        UpdateOne({"_id": oid}, {"$set": dict(fields, last_modified_at=now)})
        for oid, fields in zip(ids, by_id.values())
    ]
    write(ops, ids=ids)
