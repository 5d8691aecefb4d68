"""What a move may touch, out of reach of whoever edits its manifest: the
dataset's record of each move (``dataset.info``), and the checks of a
manifest against it before a restore or a resumed move changes anything.

A manifest is data from a folder anyone may have edited. Its dataset
folders must be ones the dataset (or the caller, by ``trusted_roots``)
vouches for, and its records may name only the files its move planned or
wrote.
"""

import datetime
import logging
import os

from fiftyone_dedup.moves import annotations as annots
from fiftyone_dedup.moves import paths
from fiftyone_dedup.moves.model import ManifestError
from fiftyone_dedup.options import ParameterError

logger = logging.getLogger(__name__)

#: the ``dataset.info`` key recording moves (what restore trusts)
INFO_KEY = "fiftyone_dedup_moves"


def record_move(dataset, m, dup):
    """Records a planned move in its dataset (``dataset.info``): what a
    restore may touch.

    Args:
        dataset: the dataset
        m: the move's :class:`fiftyone_dedup.moves.model.Manifest`
        dup: the duplicates folder
    """
    info = dict(dataset.info or {})
    moves = dict(info.get(INFO_KEY) or {})
    # what restore may touch, out of reach of whoever edits the manifest
    moves[m.move_id] = {
        "duplicates_dir": dup,
        "roots": [r.path for r in m.roots],
        "dests": [r.dest for r in m.roots],
        "layouts": [r.layout for r in m.roots],
        "labels": m.labels,
        "annotations": [[m.roots[a.root].path, a.path, a.sha256] for a in m.annotations],
        "samples_sha256": (m.samples_backup or {}).get("sha256"),
        "created": m.created,
    }
    info[INFO_KEY] = moves
    dataset.info = info
    dataset.save()


def mark_restored(dataset, m):
    """Records in its dataset that a move was restored (bookkeeping only:
    a failure is logged)."""
    try:
        info = dict(dataset.info or {})
        moves = dict(info.get(INFO_KEY) or {})
        if m.move_id in moves and isinstance(moves[m.move_id], dict):
            record = dict(moves[m.move_id])
            record["restored"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"
            )
            moves[m.move_id] = record
            info[INFO_KEY] = moves
            dataset.info = info
            dataset.save()
    except Exception as e:  # noqa: BLE001 - bookkeeping only
        logger.warning("Could not record the restore in dataset '%s': %s", dataset.name, e)


def check_trust(m, dataset, trusted_roots):
    """Checks that a manifest's folders are ones this dataset (or the user)
    vouches for: a manifest is data anyone may have edited."""
    ok = set()
    if dataset is not None:
        info = dataset.info or {}
        record = (info.get(INFO_KEY) or {}).get(m.move_id)
        if isinstance(record, dict):
            ok.update(p for p in record.get("roots") or [] if isinstance(p, str))
        folders = (info.get("fiftyone_dedup") or {}).get("dirs") or []
        ok.update(os.path.normpath(p) for p in folders if isinstance(p, str))
    for p in trusted_roots or ():
        ok.add(os.path.normpath(os.path.abspath(os.path.expanduser(os.fspath(p)))))
    bad = [r.path for r in m.roots if r.path not in ok]
    if bad:
        where = (
            f"dataset '{m.dataset}'"
            if dataset is not None
            else f"the dataset '{m.dataset}' (not found)"
        )
        raise ParameterError(
            "trusted_roots",
            f"The manifest {m.path} names folder(s) that {where} has no record "
            f"of: {', '.join(bad)}. If they are yours, pass them as "
            "trusted_roots to restore into them",
        )


def refused(m, line, text):
    """The :class:`fiftyone_dedup.moves.model.ManifestError` refusing a
    manifest, naming its line (or None) and why."""
    where = f", line {line}" if line else ""
    return ManifestError(
        f"Manifest {m.path}{where}: {text}; refused, nothing was changed "
        "(put back the manifest this move wrote, or remove it)"
    )


def is_image_name(rel):
    """Whether a path has an image file's extension."""
    from fiftyone_dedup.engine.folders import IMAGE_EXTENSIONS

    return os.path.splitext(rel)[1].lower() in IMAGE_EXTENSIONS


def written_allowed(m):
    """The duplicates-folder files a move may write: its annotation files."""
    if m.labels != "keep":
        return set()
    out = set()
    for ri, r in enumerate(m.roots):
        try:
            handler = annots.get_layout(r.layout)
        except annots.AnnotationError:
            continue
        if handler is None:
            out.update(f"{r.dest}/{name}" for name in ("samples.json", "metadata.json"))
            continue
        names = {a.path for a in m.annotations if a.root == ri} | set(handler.shared_names(r.path))
        out.update(f"{r.dest}/{name}" for name in names | set(handler.support_names()))
    return out


def check_records(m, dataset, others, trusted_roots):
    """Refuses a manifest whose well-formed records name files its move did
    not plan, before anything is changed: restore and resume rewrite only
    the annotation files of the move's own plan (as the dataset recorded
    it when there is a record), never an image, and delete or overwrite in
    the duplicates folder only annotation files that this move wrote.

    Raises:
        fiftyone_dedup.moves.model.ManifestError: naming the manifest and record
    """
    if os.path.basename(m.path) != paths.manifest_name(m.move_id):
        raise refused(
            m, 1, f"its header names the move {m.move_id!r}, not the one of its file name"
        )
    info = (dataset.info or {}) if dataset is not None else {}
    record = (info.get(INFO_KEY) or {}).get(m.move_id)
    record = record if isinstance(record, dict) else {}
    rec_roots = [p for p in record.get("roots") or [] if isinstance(p, str)]
    verified = set()
    if isinstance(record.get("dests"), list):
        for r in m.roots:
            if r.path not in rec_roots:
                continue
            j = rec_roots.index(r.path)
            want = (
                (record["dests"] + [None])[j],
                ((record.get("layouts") or []) + [None] * (j + 1))[j],
            )
            if (r.dest, r.layout) != want:
                raise refused(
                    m,
                    1,
                    f"the folder {r.path} was recorded as {want[0]!r} ({want[1] or 'no'} "
                    f"layout), not {r.dest!r} ({r.layout or 'no'} layout)",
                )
            verified.add(r.path)
        if record.get("labels") not in (None, m.labels):
            raise refused(
                m, 1, f"the move was recorded with labels {record['labels']!r}, not {m.labels!r}"
            )
        sha = record.get("samples_sha256")
        if sha and m.samples_backup and m.samples_backup["sha256"] != sha:
            raise refused(m, None, "its samples backup is not the one recorded for this move")
    # folders the dataset has no record of for this move (an older version,
    # the dataset gone, trusted_roots): their layouts must be the folders'
    # own, and their names in the duplicates folder no other move's
    layouts = (info.get("fiftyone_dedup") or {}).get("layouts") or {}
    trusted = {
        os.path.normpath(os.path.abspath(os.path.expanduser(os.fspath(p))))
        for p in trusted_roots or ()
    }
    for ri, r in enumerate(m.roots):
        if r.path in verified:
            continue
        # a restore replaces an annotation file that exists: of that layout only
        present = any(
            a.root == ri and os.path.lexists(os.path.join(r.path, *a.path.split("/")))
            for a in m.annotations
        )
        if r.layout is not None and present:
            if r.path in layouts and r.path not in trusted:
                known = layouts[r.path]
            else:
                from fiftyone_dedup.engine import layouts as layouts_mod

                found = layouts_mod.detect_layout(r.path)
                known = found.name if found is not None else None
            if known != r.layout:
                raise refused(m, 1, f"the folder {r.path} is not a {r.layout} dataset folder")
        for o in others:
            if (
                o.path != m.path
                and r.dest in {x.dest for x in o.roots}
                and o.state not in ("restored", "aborted")
            ):
                raise refused(m, 1, f"its folder {r.dest!r} is the folder of the move {o.move_id}")
    planned = {
        tuple(a) for a in record.get("annotations") or [] if isinstance(a, list) and len(a) == 3
    }
    for ann in m.annotations:
        r = m.roots[ann.root]
        try:
            handler = annots.get_layout(r.layout)
        except annots.AnnotationError as e:
            handler, why = None, str(e)
        else:
            why = f"the folder {r.path} has no annotation files"
        if handler is not None:
            why = None
            if is_image_name(ann.path) or any(
                e.root == ann.root and e.src == ann.path for e in m.files
            ):
                why = f"{ann.path} is an image, not an annotation file"
            elif ann.path not in handler.shared_names(r.path):
                why = f"{ann.path} is not an annotation file of the {r.layout} folder {r.path}"
            elif (
                r.path in verified
                and "annotations" in record
                and (r.path, ann.path, ann.sha256) not in planned
            ):
                why = f"{ann.path} is not in the plan dataset '{m.dataset}' recorded for this move"
        if why:
            raise refused(m, ann.line, f"'annotation' record: {why}")
    allowed = written_allowed(m)
    moved = {e.dst for o in list(others) + [m] for e in o.files}
    for rel in m.written:
        why = None
        if rel in moved or is_image_name(rel):
            why = f"{rel} is a moved image, not an annotation file this move wrote"
        elif rel not in allowed:
            why = f"{rel} is not an annotation file this move writes"
        if why:
            raise refused(m, m.written_lines.get(rel), f"'written' record: {why}")

