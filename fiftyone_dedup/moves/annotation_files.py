"""The annotation files of a move: shared annotation files split when
their images move (the originals backed up first) and put back on
restore; the duplicates folder's own annotation files written, journaled,
and removed on restore.

What a layout's files hold, and how they split, is
:mod:`fiftyone_dedup.moves.annotations`; this module applies it to a move,
each change journaled before it is made and safe to repeat.
"""

import os
import shutil

import fiftyone as fo

from fiftyone_dedup.moves import annotations as annots
from fiftyone_dedup.moves import database
from fiftyone_dedup.moves import fileops
from fiftyone_dedup.moves import journal as jr
from fiftyone_dedup.moves import paths


def _moved_by_root(m):
    out = {}
    for e in m.moved_entries():
        if e.kind == "image":
            out.setdefault(e.root, set()).add(e.src)
    return out


def _write_dup_file(m, dup, rel, data, journal, result):
    """Writes a file into the duplicates folder, journaled; never over a
    file that is not this move's."""
    path = fileops.join_inside(dup, rel, "written path")
    fileops.makedirs_inside(dup, os.path.dirname(path))
    sha = fileops.sha256_bytes(data)
    if os.path.lexists(path):
        current = (
            fileops.sha256_file(path) if os.path.isfile(path) and not os.path.islink(path) else None
        )
        if current == sha:
            return
        if current is None or m.written.get(rel) != current:
            result.messages.append(f"{path} exists and was not written by this move; left as is")
            return
        journal.append(jr.written_record(rel, sha), sync=True)
        fileops.atomic_write(path, data, replace=True)
    else:
        journal.append(jr.written_record(rel, sha), sync=True)
        fileops.atomic_write(path, data, replace=False)
    m.written[rel] = sha
    result.annotations.append({"path": path, "action": "written"})


def read_backup(dup, rel, sha):
    """The bytes of a backup in the duplicates folder, checked against its
    checksum.

    Raises:
        ValueError: if it is a link or does not match
        OSError: if it cannot be read
    """
    path = fileops.join_inside(dup, rel, "backup path")
    if os.path.islink(path):
        raise ValueError(f"The backup {path} is a symbolic link")
    data = fileops.read_bytes(path)
    if fileops.sha256_bytes(data) != sha:
        raise ValueError(f"The backup {path} does not match its checksum in the manifest")
    return data


def move_annotations(m, dup, journal, result):
    """Splits the shared annotation files of a move's moved images and
    writes the duplicates folder's annotation files (idempotent).

    Args:
        m: the move's :class:`fiftyone_dedup.moves.model.Manifest`
        dup: the duplicates folder
        journal: the open :class:`fiftyone_dedup.moves.manifest.Journal`
        result: the :class:`fiftyone_dedup.moves.results.MoveResult`
    """
    moved = _moved_by_root(m)
    for ann in m.annotations:
        r = m.roots[ann.root]
        if ann.root not in moved:
            continue
        handler = annots.get_layout(r.layout)
        original = read_backup(dup, ann.backup, ann.sha256)
        stays, goes, n = handler.split(ann.path, original, moved[ann.root], r.path, r.data_dir)
        src = fileops.join_inside(r.path, ann.path, "annotation path")
        new_sha = fileops.sha256_bytes(stays)
        current = (
            fileops.sha256_file(src) if os.path.isfile(src) and not os.path.islink(src) else None
        )
        if current == new_sha:
            pass
        elif current == ann.sha256:
            journal.append(jr.rewritten_record(ann.a, new_sha), sync=True)
            fileops.atomic_write(src, stays, replace=True)
            m.rewritten[ann.a] = new_sha
            result.annotations.append(
                {"path": src, "action": f"lost the entries of {n} moved image(s)"}
            )
        else:
            result.messages.append(
                f"{src} changed after it was backed up; left as is (it may still list moved images)"
            )
        if m.labels == "keep":
            _write_dup_file(m, dup, f"{r.dest}/{ann.path}", goes, journal, result)
    if m.labels != "keep":
        return
    for ri, r in enumerate(m.roots):
        if ri not in moved:
            continue
        handler = annots.get_layout(r.layout)
        if handler is None:
            if m.label_fields:
                _export_samples(m, dup, ri, journal, result)
            continue
        for rel in handler.support_files(r.path):
            data = fileops.read_bytes(os.path.join(r.path, *rel.split("/")))
            content = handler.support_content(rel, data, moved[ri], r.path, r.data_dir)
            _write_dup_file(m, dup, f"{r.dest}/{rel}", content, journal, result)


def _export_samples(m, dup, ri, journal, result):
    """The moved samples of a root as a FiftyOne dataset in the duplicates
    folder (``samples.json`` and ``metadata.json``)."""
    r = m.roots[ri]
    docs = [(doc, e) for doc, e in database.moved_docs(m, dup).values() if e.root == ri]
    if not docs:
        return
    folder = os.path.join(dup, r.dest)
    tmp_ds = fo.Dataset()
    export_dir = os.path.join(dup, paths.backup_dir(m.move_id), "export")
    try:
        samples = []
        for doc, e in docs:
            s = fo.Sample.from_dict(doc)
            s.filepath = os.path.join(dup, *e.dst.split("/"))
            samples.append(s)
        tmp_ds._upsert_samples(samples)
        shutil.rmtree(export_dir, ignore_errors=True)
        tmp_ds.export(
            export_dir=export_dir,
            dataset_type=fo.types.FiftyOneDataset,
            export_media=False,
            rel_dir=folder,
            progress=False,
        )
        for name in ("metadata.json", "samples.json"):
            path = os.path.join(export_dir, name)
            if os.path.isfile(path):
                _write_dup_file(
                    m, dup, f"{r.dest}/{name}", fileops.read_bytes(path), journal, result
                )
    finally:
        tmp_ds.delete()
        shutil.rmtree(export_dir, ignore_errors=True)


def annotations_to_put_back(m):
    """``(entry, path)`` of the shared annotation files that still hold
    what the move wrote (what a restore puts back)."""
    out = []
    for ann in m.annotations:
        if ann.a not in m.rewritten:
            continue
        try:
            src = fileops.join_inside(m.roots[ann.root].path, ann.path, "annotation path")
        except fileops.UnsafePathError:
            continue
        if (
            os.path.isfile(src)
            and not os.path.islink(src)
            and fileops.sha256_file(src) == m.rewritten[ann.a]
        ):
            out.append((ann, src))
    return out


def restore_annotations(m, dup, result):
    """Puts back the shared annotation files that still hold what the move
    wrote, and removes the files the move wrote into the duplicates folder
    that are unchanged (idempotent).

    Args:
        m: the move's :class:`fiftyone_dedup.moves.model.Manifest`
        dup: the duplicates folder
        result: the :class:`fiftyone_dedup.moves.results.RestoreResult`
    """
    for ann in m.annotations:
        if ann.a not in m.rewritten:
            continue
        r = m.roots[ann.root]
        try:
            src = fileops.join_inside(r.path, ann.path, "annotation path")
            original = read_backup(dup, ann.backup, ann.sha256)
        except (ValueError, OSError) as e:
            result.messages.append(f"annotation file {ann.path} of {r.path} not restored: {e}")
            continue
        current = None
        if os.path.lexists(src):
            current = (
                fileops.sha256_file(src) if os.path.isfile(src) and not os.path.islink(src) else "?"
            )
        if current == ann.sha256:
            continue
        if current is None:
            fileops.makedirs_inside(r.path, os.path.dirname(src))
            fileops.atomic_write(src, original, replace=False)
        elif current == m.rewritten[ann.a]:
            fileops.atomic_write(src, original, replace=True)
        else:
            backup = os.path.join(dup, *ann.backup.split("/"))
            result.messages.append(
                f"{src} changed after the move (an edit or a later move); it was left "
                f"as is. The original is at {backup}: restore later moves first, or merge by hand"
            )
            continue
        result.annotations.append({"path": src, "action": "put back from its backup"})
    # only what this move wrote (checked by trust.check_records), never a moved file
    moved = {e.dst for e in m.files}
    for rel, sha in m.written.items():
        if rel in moved:
            continue
        try:
            path = fileops.join_inside(dup, rel, "written path")
        except fileops.UnsafePathError:
            continue
        if os.path.isfile(path) and not os.path.islink(path):
            if fileops.sha256_file(path) == sha:
                os.unlink(path)
            else:
                result.messages.append(f"{path} changed after the move; left as is")

