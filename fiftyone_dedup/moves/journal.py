"""The records of a move's manifest: each record's builder beside its
reader.

A manifest (see :mod:`fiftyone_dedup.moves.manifest`) is one JSON object a
line. The first line is a header; then the plan (one ``file`` record per
file to move, one ``annotation`` record per annotation file backed up, one
``samples`` record), closed by a ``planned`` record that is flushed to disk
before the first file moves. Progress records follow (``moved``,
``skipped``, ``failed`` per file; ``rewritten``/``written`` per annotation
file, written before the file is; ``phase`` markers; ``complete``), then
those of a restore. A kill at any point leaves a journal that a rerun
completes, and a torn last line (a kill mid-write) is ignored.

A manifest is data from a folder anyone may have edited: the reader checks
every record and every path, and derives what it can (a file's destination
is its source under the root's folder) instead of trusting it. A record
that fails a check is reported in ``Manifest.problems`` and ignored. The
restore records say what a restore did; whether a move is restored is
derived from its files. Pure Python; no FiftyOne.

Records (all have ``"type"``)::

    header      format, version, move_id, created, dataset, dataset_id,
                run_key, run_timestamp, labels ("keep"|"drop"), on_samples
                ("keep"|"delete"|"dataset"), tag, duplicates_dataset,
                label_fields, roots: [{path, dest, layout, data_dir}]
    file        n, kind ("image"|"label"), root, src, dst, sha256, size,
                mtime_ns, sample_ids, group, kept_id, kept_path
    annotation  a, root, path, sha256, backup
    samples     backup, sha256, count
    planned     num_files, num_annotations
    moved|skipped|failed          n, reason
    rewritten   a, sha256         (a source annotation file's new content)
    written     path, sha256      (a file written into the duplicates folder)
    phase       name ("files"|"annotations"|"database")
    complete    num_moved, num_skipped, num_failed
    aborted     reason
    restore_started
    restored|restore_skipped      n, reason
    restore_phase                 name
    restore_complete
"""

import logging
import os
import re

from fiftyone_dedup.moves import fileops
from fiftyone_dedup.moves import paths
from fiftyone_dedup.moves.model import (
    KINDS,
    LABELS,
    ON_SAMPLES,
    PHASES,
    AnnotationEntry,
    FileEntry,
    Manifest,
    Root,
)

logger = logging.getLogger(__name__)

FORMAT = "fiftyone_dedup.manifest"
VERSION = 1

_SAMPLE_ID = re.compile(r"^[0-9a-f]{24}$")


# ------------------------------------------------------------------ checks


def _str(d, key, allow_none=False):
    value = d.get(key)
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError(f"'{key}' must be a string")
    return value


def _int(d, key, minimum=0, allow_none=False):
    value = d.get(key)
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"'{key}' must be an integer >= {minimum}")
    return value


def _choice(d, key, choices):
    value = d.get(key)
    if value not in choices:
        raise ValueError(f"'{key}' must be one of {', '.join(choices)}")
    return value


def _sha(d, key="sha256"):
    value = d.get(key)
    if not fileops.is_sha256(value):
        raise ValueError(f"'{key}' must be a SHA-256 hex digest")
    return value


def _sample_id(value):
    if not isinstance(value, str) or not _SAMPLE_ID.match(value):
        raise ValueError("sample ids must be 24 hex digits")
    return value


def _component(value, what):
    if (
        not isinstance(value, str)
        or not value
        or value in (".", "..")
        or value.startswith(".")
        or "/" in value
        or "\x00" in value
    ):
        raise ValueError(f"{what} must be a plain folder name, got {value!r}")
    return value


def _abs_path(value, what):
    if (
        not isinstance(value, str)
        or not value.startswith("/")
        or "\x00" in value
        or os.path.normpath(value) != value
    ):
        raise ValueError(f"{what} must be a normalised absolute path, got {value!r}")
    return value


def _next_number(m, d, key, count, what):
    """The number of a plan record, checked: the plan is open and it is
    the ``count``-th record of its kind."""
    if m.planned:
        raise ValueError(f"{what} record after the plan was closed")
    i = _int(d, key)
    if i != count - 1:
        raise ValueError(f"{what} {i} out of order")
    return i


def _root_index(m, d):
    i = _int(d, "root")
    if i >= len(m.roots):
        raise ValueError(f"root {i} does not exist")
    return i


# ------------------------------------------------------------------ the plan


def header_record(m):
    """The header record of a :class:`fiftyone_dedup.moves.model.Manifest`."""
    return {
        "type": "header",
        "format": FORMAT,
        "version": VERSION,
        "move_id": m.move_id,
        "created": m.created,
        "dataset": m.dataset,
        "dataset_id": m.dataset_id,
        "run_key": m.run_key,
        "run_timestamp": m.run_timestamp,
        "labels": m.labels,
        "on_samples": m.on_samples,
        "tag": m.tag,
        "duplicates_dataset": m.duplicates_dataset,
        "label_fields": list(m.label_fields),
        "roots": [
            {"path": r.path, "dest": r.dest, "layout": r.layout, "data_dir": r.data_dir}
            for r in m.roots
        ],
    }


def read_header(d, path):
    """The :class:`fiftyone_dedup.moves.model.Manifest` of a header record.

    Args:
        d: the header record (a dict)
        path: the manifest's path

    Raises:
        ValueError: (or ``TypeError``, ``KeyError``) if it fails a check
    """
    if d.get("type") != "header" or d.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} header")
    if d.get("version") != VERSION:
        raise ValueError(f"unsupported version {d.get('version')!r} (expected {VERSION})")
    move_id = _str(d, "move_id")
    if not paths.MOVE_ID.match(move_id):
        raise ValueError(f"bad move_id {move_id!r}")
    roots_in = d.get("roots")
    if not isinstance(roots_in, list) or not roots_in:
        raise ValueError("'roots' must be a non-empty list")
    roots, dests = [], set()
    for r in roots_in:
        if not isinstance(r, dict):
            raise ValueError("each root must be an object")
        layout = r.get("layout")
        if layout is not None and (not isinstance(layout, str) or not layout):
            raise ValueError("a root's layout must be a name or null")
        data_dir = r.get("data_dir", True)
        if not isinstance(data_dir, bool):
            raise ValueError("a root's data_dir must be true or false")
        root = Root(
            path=_abs_path(r.get("path"), "a root's path"),
            dest=_component(r.get("dest"), "a root's dest"),
            layout=layout,
            data_dir=data_dir,
        )
        if root.dest in dests:
            raise ValueError(f"two roots share the folder {root.dest!r}")
        dests.add(root.dest)
        roots.append(root)
    label_fields = d.get("label_fields", [])
    if not isinstance(label_fields, list) or not all(
        isinstance(f, str) and f.isidentifier() for f in label_fields
    ):
        raise ValueError("'label_fields' must be a list of field names")
    return Manifest(
        path=path,
        move_id=move_id,
        created=_str(d, "created"),
        dataset=_str(d, "dataset"),
        dataset_id=_str(d, "dataset_id", allow_none=True),
        run_key=_str(d, "run_key"),
        run_timestamp=_str(d, "run_timestamp", allow_none=True),
        labels=_choice(d, "labels", LABELS),
        on_samples=_choice(d, "on_samples", ON_SAMPLES),
        tag=_str(d, "tag", allow_none=True),
        duplicates_dataset=_str(d, "duplicates_dataset", allow_none=True),
        label_fields=label_fields,
        roots=roots,
    )


def file_record(e):
    """The record of a :class:`fiftyone_dedup.moves.model.FileEntry`."""
    return {
        "type": "file",
        "n": e.n,
        "kind": e.kind,
        "root": e.root,
        "src": e.src,
        "dst": e.dst,
        "sha256": e.sha256,
        "size": e.size,
        "mtime_ns": e.mtime_ns,
        "sample_ids": list(e.sample_ids),
        "group": e.group,
        "kept_id": e.kept_id,
        "kept_path": e.kept_path,
    }


def _read_file(m, d, line):
    n = _next_number(m, d, "n", m.num_file_records, "file")
    root = _root_index(m, d)
    kind = _choice(d, "kind", KINDS)
    src = fileops.check_relpath(_str(d, "src"), "source path")
    dst = _str(d, "dst")
    expected = paths.destination(m.move_id, m.roots[root], kind, src, m.labels)
    if dst != expected:
        raise ValueError(f"destination {dst!r} is not {expected!r}")
    ids = d.get("sample_ids", [])
    if not isinstance(ids, list):
        raise ValueError("'sample_ids' must be a list")
    group = d.get("group")
    if group is not None and (not isinstance(group, int) or isinstance(group, bool)):
        raise ValueError("'group' must be an integer or null")
    kept_id = d.get("kept_id")
    if kept_id is not None:
        _sample_id(kept_id)
    m.files.append(
        FileEntry(
            n=n,
            kind=kind,
            root=root,
            src=src,
            dst=dst,
            sha256=_sha(d),
            size=_int(d, "size"),
            mtime_ns=_int(d, "mtime_ns"),
            sample_ids=[_sample_id(i) for i in ids],
            group=group,
            kept_id=kept_id,
            kept_path=_str(d, "kept_path", allow_none=True),
        )
    )


def annotation_record(e):
    """The record of a :class:`fiftyone_dedup.moves.model.AnnotationEntry`."""
    return {
        "type": "annotation", "a": e.a, "root": e.root, "path": e.path,
        "sha256": e.sha256, "backup": e.backup,
    }


def _read_annotation(m, d, line):
    a = _next_number(m, d, "a", m.num_annotation_records, "annotation")
    root = _root_index(m, d)
    rel = fileops.check_relpath(_str(d, "path"), "annotation path")
    backup = _str(d, "backup")
    if backup != paths.annotation_backup(m.move_id, root, rel):
        raise ValueError(f"annotation backup {backup!r} is not where backups go")
    m.annotations.append(
        AnnotationEntry(a=a, root=root, path=rel, sha256=_sha(d), backup=backup, line=line)
    )


def samples_record(backup, sha256, count):
    """The record of the moved samples' backup (``Manifest.samples_backup``)."""
    return {"type": "samples", "backup": backup, "sha256": sha256, "count": count}


def _read_samples(m, d, line):
    if m.planned:
        raise ValueError("samples record after the plan was closed")
    backup = _str(d, "backup")
    if backup != paths.samples_backup(m.move_id):
        raise ValueError(f"samples backup {backup!r} is not where backups go")
    m.samples_backup = {"backup": backup, "sha256": _sha(d), "count": _int(d, "count")}


def planned_record(num_files, num_annotations):
    """The record closing the plan."""
    return {"type": "planned", "num_files": num_files, "num_annotations": num_annotations}


def _read_planned(m, d, line):
    if m.planned:
        raise ValueError("the plan was closed twice")
    if _int(d, "num_files") != m.num_file_records:
        raise ValueError("the plan's file count does not match its records")
    m.planned = True


def aborted_record(reason):
    """The record of a plan given up (nothing was moved)."""
    return {"type": "aborted", "reason": reason}


def _read_aborted(m, d, line):
    if m.planned:
        raise ValueError("'aborted' after the plan was closed (only an unfinished plan is aborted)")
    m.aborted = True


# ------------------------------------------------------------------ the move


def outcome_record(kind, n, reason):
    """The record of what became of file ``n``: ``kind`` is ``"moved"``,
    ``"skipped"`` or ``"failed"``."""
    return {"type": kind, "n": n, "reason": reason}


def _read_outcome(m, d, line):
    n = _int(d, "n")
    if n >= m.num_file_records:
        raise ValueError(f"outcome for unknown file {n}")
    m.outcomes[n] = (d["type"], _str(d, "reason", allow_none=True))


def rewritten_record(a, sha256):
    """The record of annotation file ``a``'s new content, written before
    the file is."""
    return {"type": "rewritten", "a": a, "sha256": sha256}


def _read_rewritten(m, d, line):
    a = _int(d, "a")
    if a >= m.num_annotation_records:
        raise ValueError(f"unknown annotation {a}")
    m.rewritten[a] = _sha(d)


def written_record(rel, sha256):
    """The record of a file written into the duplicates folder, written
    before the file is."""
    return {"type": "written", "path": rel, "sha256": sha256}


def _read_written(m, d, line):
    rel = fileops.check_relpath(_str(d, "path"), "written path")
    if not any(rel.startswith(r.dest + "/") for r in m.roots):
        raise ValueError(f"written path {rel!r} is outside this move's folders")
    m.written[rel] = _sha(d)
    m.written_lines.setdefault(rel, line)


def phase_record(name):
    """The record of a finished phase of the move (one of ``PHASES``)."""
    return {"type": "phase", "name": name}


def _read_phase(m, d, line):
    m.phases.add(_choice(d, "name", PHASES))


def complete_record(counts):
    """The record of a finished move, with its ``outcome_counts()``."""
    return {
        "type": "complete", "num_moved": counts["moved"], "num_skipped": counts["skipped"],
        "num_failed": counts["failed"],
    }


def _read_complete(m, d, line):
    m.complete = True


# ------------------------------------------------------------------ the restore


def restore_started_record():
    """The record of a restore's start."""
    return {"type": "restore_started"}


def _read_restore_started(m, d, line):
    m.restore_started = True


def restored_record(kind, n, reason):
    """The record of what a restore did with file ``n``: ``kind`` is
    ``"restored"`` or ``"skipped"``."""
    return {
        "type": "restored" if kind == "restored" else "restore_skipped",
        "n": n,
        "reason": reason,
    }


def _read_restored(m, d, line):
    kind = d["type"]
    if not m.restore_started:
        raise ValueError(f"'{kind}' record before 'restore_started'")
    n = _int(d, "n")
    if n >= m.num_file_records:
        raise ValueError(f"restore outcome for unknown file {n}")
    m.restored[n] = (
        "restored" if kind == "restored" else "skipped",
        _str(d, "reason", allow_none=True),
    )


def restore_phase_record(name):
    """The record of a finished phase of a restore (one of ``PHASES``)."""
    return {"type": "restore_phase", "name": name}


def _read_restore_phase(m, d, line):
    m.restore_phases.add(_choice(d, "name", PHASES))


def restore_complete_record():
    """The record of a finished restore."""
    return {"type": "restore_complete"}


def _read_restore_complete(m, d, line):
    m.restore_complete = True


_READERS = {
    "file": _read_file,
    "annotation": _read_annotation,
    "samples": _read_samples,
    "planned": _read_planned,
    "moved": _read_outcome,
    "skipped": _read_outcome,
    "failed": _read_outcome,
    "rewritten": _read_rewritten,
    "written": _read_written,
    "phase": _read_phase,
    "complete": _read_complete,
    "aborted": _read_aborted,
    "restore_started": _read_restore_started,
    "restored": _read_restored,
    "restore_skipped": _read_restored,
    "restore_phase": _read_restore_phase,
    "restore_complete": _read_restore_complete,
}

#: the records that say the plan was closed
_AFTER_PLAN = (
    "moved", "skipped", "failed", "rewritten", "written", "phase", "complete",
    "restore_started", "restored", "restore_skipped", "restore_phase", "restore_complete",
)


def apply_record(m, d, line=None):
    """Checks a record (after the header) and applies it to a manifest.

    Args:
        m: the :class:`fiftyone_dedup.moves.model.Manifest` read so far
        d: the record (a dict)
        line (None): its line number, kept for messages

    Raises:
        ValueError: (or ``TypeError``, ``KeyError``, ``IndexError``) if the
            record fails a check; it is then not applied
    """
    kind = d.get("type")
    if kind == "file" and not m.planned:
        # a bad file record still takes its number, so the others keep theirs
        m.num_file_records += 1
    if kind == "annotation" and not m.planned:
        m.num_annotation_records += 1
    if kind in _AFTER_PLAN and not m.planned:
        # the plan was closed even if its closing record was damaged
        m.planned = True
        m.problems.append("the plan's closing record is missing; assumed closed")
    reader = _READERS.get(kind) if isinstance(kind, str) else None
    if reader is None:
        raise ValueError(f"unknown record type {kind!r}")
    reader(m, d, line)
