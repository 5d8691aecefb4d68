"""The dataset side of a move: the moved samples' documents backed up
before anything changes, the samples deleted, re-pointed and tagged or
moved to a duplicates dataset, and put back on restore from the backup.
"""

import json
import logging
import os

import fiftyone as fo

from fiftyone_dedup.moves import fileops

logger = logging.getLogger(__name__)


def backup_samples(dataset, ids, path):
    """Writes the documents of samples to a new file (one JSON line each),
    flushed to disk.

    Args:
        dataset: the dataset
        ids: the sample ids
        path: the backup file (must not exist)

    Returns:
        ``(sha256, count)`` of the file
    """
    tmp = fileops.temp_path(path)
    count = 0
    with open(tmp, "w", encoding="ascii") as f:
        for sample in dataset.select(ids).iter_samples():
            f.write(json.dumps(sample.to_dict(include_private=True), ensure_ascii=True) + "\n")
            count += 1
        f.flush()
        os.fsync(f.fileno())
    fileops.rename_noreplace(tmp, path)
    fileops.fsync_dir(os.path.dirname(path))
    return fileops.sha256_file(path), count


def _iter_backup_docs(m, dup):
    """The backed-up sample documents of a move, checked."""
    if m.samples_backup is None:
        return
    path = fileops.join_inside(dup, m.samples_backup["backup"], "samples backup")
    if os.path.islink(path) or not os.path.isfile(path):
        logger.warning("The samples backup %s is missing", path)
        return
    if fileops.sha256_file(path) != m.samples_backup["sha256"]:
        logger.warning(
            "The samples backup %s does not match its checksum; using the records that "
            "fit the manifest",
            path,
        )
    with open(path, "rb") as f:
        for line in f:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                yield doc


def _doc_id(doc):
    oid = doc.get("_id")
    return oid.get("$oid") if isinstance(oid, dict) else None


def moved_docs(m, dup):
    """``{sample id: (doc, entry)}`` of moved images whose backed-up
    document matches the manifest (id and original filepath)."""
    entries = {}
    for e in m.moved_entries():
        if e.kind == "image":
            for sid in e.sample_ids:
                entries[sid] = e
    out = {}
    for doc in _iter_backup_docs(m, dup):
        sid = _doc_id(doc)
        e = entries.get(sid)
        if e is None:
            continue
        src = os.path.join(m.roots[e.root].path, *e.src.split("/"))
        if not isinstance(doc.get("filepath"), str) or os.path.normpath(doc["filepath"]) != src:
            continue
        out[sid] = (doc, e)
    return out


def db_error(e, m, what):
    """The error of a database failure while ``what``: the files are safe
    and a rerun finishes."""
    return RuntimeError(
        f"The database could not be updated while {what} ({type(e).__name__}: "
        f"{str(e).splitlines()[0] if str(e) else e}). The files are safe and "
        f"recorded in {m.path}; run the same command again to finish"
    )


def update_samples(m, dup, dataset):
    """Deletes, re-points and tags, or moves to the duplicates dataset the
    samples of a move's moved images (idempotent).

    Raises:
        RuntimeError: if the database fails (a rerun finishes)
    """
    try:
        _update_samples(m, dup, dataset)
    except (ValueError, OSError):
        raise
    except Exception as e:  # noqa: BLE001 - database errors vary (pymongo)
        raise db_error(e, m, "updating the moved samples") from e


def _update_samples(m, dup, dataset):
    dst_of = {}
    for e in m.moved_entries():
        if e.kind == "image":
            for sid in e.sample_ids:
                dst_of[sid] = os.path.join(dup, *e.dst.split("/"))
    if not dst_of:
        return
    present = set(dataset.select(list(dst_of)).values("id"))
    ids = [sid for sid in dst_of if sid in present]
    if m.on_samples == "delete":
        if ids:
            dataset.delete_samples(ids)
        return
    if m.on_samples == "dataset":
        other = _duplicates_dataset(m.duplicates_dataset, create=True)
        docs = moved_docs(m, dup)
        have = set(other.select(list(docs)).values("id"))
        samples = []
        for sid, (doc, e) in docs.items():
            if sid in have:
                continue
            s = fo.Sample.from_dict(doc)
            s.filepath = dst_of[sid]
            if m.labels == "drop":
                for f in m.label_fields:
                    if s.has_field(f):
                        s.clear_field(f)
            if m.tag:
                s.tags = list(dict.fromkeys(list(s.tags) + [m.tag]))
            samples.append(s)
        if samples:
            other._upsert_samples(samples)
        if ids:
            dataset.delete_samples(ids)
        return
    if not ids:
        return
    dataset.set_values("filepath", {sid: dst_of[sid] for sid in ids}, key_field="id")
    if m.tag:
        dataset.select(ids).tag_samples(m.tag)
    if m.labels == "drop":
        for f in m.label_fields:
            if dataset.has_sample_field(f):
                dataset.set_values(f, {sid: None for sid in ids}, key_field="id")


def _duplicates_dataset(name, create):
    if fo.dataset_exists(name):
        return fo.load_dataset(name)
    if not create:
        return None
    ds = fo.Dataset(name, persistent=True)
    return ds


def restore_samples(m, dup, dataset, back_ns, only_out=False):
    """Puts back the samples of the files that are back (``back_ns``: entry
    numbers); with ``only_out``, only those the dataset does not have back
    yet (a rerun: what was restored stays as it is now)."""
    docs = {sid: d for sid, d in moved_docs(m, dup).items() if d[1].n in back_ns}
    if not docs:
        return
    ids = list(docs)
    current = dict(zip(*dataset.select(ids).values(["id", "filepath"])))
    if only_out:
        moved_path = {sid: os.path.join(dup, *e.dst.split("/")) for sid, (_, e) in docs.items()}
        out = {
            sid
            for sid in ids
            if current.get(sid) == moved_path[sid]
            or (sid not in current and m.on_samples != "keep")
        }
        docs = {sid: d for sid, d in docs.items() if sid in out}
        if not docs:
            return
        ids = list(docs)
    present = set(current) & set(ids)
    if m.on_samples == "keep":
        owner = dict(zip(*dataset.values(["filepath", "id"])))
        back = []
        for sid in ids:
            if sid not in present:
                continue
            other = owner.get(docs[sid][0]["filepath"])
            if other is not None and other != sid:
                logger.warning(
                    "Sample %s keeps its moved filepath: sample %s of dataset '%s' now has %s",
                    sid, other, dataset.name, docs[sid][0]["filepath"],
                )
                continue
            back.append(sid)
        if back:
            dataset.set_values(
                "filepath", {sid: docs[sid][0]["filepath"] for sid in back}, key_field="id"
            )
            if m.tag:
                dataset.select(back).untag_samples(m.tag)
            if m.labels == "drop":
                for f in m.label_fields:
                    values = {}
                    for sid in back:
                        doc = docs[sid][0]
                        if doc.get(f) is not None:
                            values[sid] = fo.Sample.from_dict(
                                {"filepath": doc["filepath"], f: doc[f]}
                            )[f]
                    if values and dataset.has_sample_field(f):
                        dataset.set_values(f, values, key_field="id")
    elif m.on_samples == "dataset" and m.duplicates_dataset:
        other = _duplicates_dataset(m.duplicates_dataset, create=False)
        if other is not None:
            there = list(other.select(ids).values("id"))
            if there:
                other.delete_samples(there)
            if len(other) == 0:
                other.delete()
    missing = [sid for sid in ids if sid not in present]
    if not missing:
        return
    taken = set(dataset.values("filepath"))
    samples = []
    for sid in missing:
        doc = docs[sid][0]
        if doc["filepath"] in taken:
            logger.warning(
                "Sample %s not restored: dataset '%s' already has a sample for %s",
                sid,
                dataset.name,
                doc["filepath"],
            )
            continue
        samples.append(fo.Sample.from_dict(doc))
    if samples:
        dataset._upsert_samples(samples)

