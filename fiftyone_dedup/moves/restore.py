"""Moves taken up again from their manifests: :func:`restore` undoes
moves, newest first, checked against what their datasets recorded, and
:func:`resume_moves` finishes moves that were interrupted; :func:`list_moves`
lists them.
"""

import logging
import os

import fiftyone as fo

from fiftyone_dedup.moves import annotation_files
from fiftyone_dedup.moves import database
from fiftyone_dedup.moves import fileops
from fiftyone_dedup.moves import journal as jr
from fiftyone_dedup.moves import locks
from fiftyone_dedup.moves import manifest as mf
from fiftyone_dedup.moves import move
from fiftyone_dedup.moves import paths
from fiftyone_dedup.moves import transfer
from fiftyone_dedup.moves import trust
from fiftyone_dedup.moves.arguments import check_dir_arg
from fiftyone_dedup.moves.results import MoveResult, RestoreResult
from fiftyone_dedup.progress import ProgressBar

logger = logging.getLogger(__name__)


def resume_moves(duplicates_dir, dataset_name=None, progress=None):
    """Finishes moves that were interrupted, from their manifests.

    Args:
        duplicates_dir: the duplicates folder
        dataset_name (None): only finish the moves of this dataset
        progress (None): see :mod:`fiftyone_dedup.progress`

    Returns:
        a list of :class:`MoveResult`, one per move finished

    Raises:
        fiftyone_dedup.moves.locks.LockError: if another run holds a lock
    """
    dup = check_dir_arg(duplicates_dir)
    if not os.path.isdir(dup):
        return []
    pending = [
        p for p in mf.list_manifests(dup)
        if mf.state_of(p) in ("planning", "moving")
    ]
    if not pending:
        return []
    out = []
    with locks.hold([locks.duplicates_dir_lock(dup)]):
        for path in pending:
            m = mf.read_manifest(path)
            if m.state not in ("planning", "moving"):
                continue
            if dataset_name is not None and m.dataset != dataset_name:
                continue
            if not fo.dataset_exists(m.dataset):
                logger.warning(
                    "Cannot finish move %s: dataset '%s' not found; restore it "
                    "with trusted_roots instead", m.move_id, m.dataset,
                )
                continue
            dataset = fo.load_dataset(m.dataset)
            dataset.reload()
            held = [locks.dataset_lock(dataset)] + [locks.folder_lock(r.path) for r in m.roots]
            with locks.hold(held):
                out.append(
                    move.finish(
                        m, dup, dataset, progress, MoveResult(dup, False, m.labels, m.on_samples)
                    )
                )
    return out


def list_moves(duplicates_dir):
    """The moves recorded in a duplicates folder, oldest first.

    Args:
        duplicates_dir: the folder

    Returns:
        a list of summary dicts (``move_id``, ``state``, ``dataset``,
        ``num_moved``, ...; see
        :meth:`fiftyone_dedup.moves.model.Manifest.summary`)
    """
    out = []
    for path in mf.list_manifests(check_dir_arg(duplicates_dir)):
        try:
            out.append(mf.read_manifest(path).summary())
        except mf.ManifestError as e:
            out.append({"manifest": path, "state": "unreadable", "error": str(e)})
    return out


def restore(
    duplicates_dir,
    move_id=None,
    dataset_name=None,
    trusted_roots=None,
    dry_run=False,
    progress=None,
):
    """Undoes moves from their manifests: files, annotation files and
    dataset samples go back.

    Moves are undone newest first. Each file goes back only to a folder
    that the move's dataset has a record of (or that you name in
    ``trusted_roots``), never through a symbolic link out of it, never over
    an existing file, and only if its checksum is the one recorded.
    Annotation files are put back byte for byte from their backups when
    they still hold what the move wrote; only the annotation files of the
    move's plan (as its dataset recorded it) are rewritten, and only the
    annotation files the move wrote are deleted. A move counts as restored
    when its files are back, whatever its manifest records. Safe to
    interrupt and run again.

    Args:
        duplicates_dir: the duplicates folder
        move_id (None): undo only this move; all moves not yet undone by
            default
        dataset_name (None): undo only the moves of this dataset
        trusted_roots (None): dataset folders to restore into even though
            no dataset records them (for example after the dataset was
            deleted)
        dry_run (False): only report what would be restored
        progress (None): see :mod:`fiftyone_dedup.progress`

    Returns:
        a :class:`RestoreResult`

    Raises:
        ValueError: if the folder or move does not exist
        fiftyone_dedup.moves.model.ManifestError: if a manifest's records name
            files its move did not plan or write (nothing is changed)
        fiftyone_dedup.moves.locks.LockError: if another run holds a lock
    """
    dup = check_dir_arg(duplicates_dir)
    if not os.path.isdir(dup):
        raise ValueError(f"Duplicates folder not found: {dup}")
    result = RestoreResult(duplicates_dir=dup, dry_run=dry_run)
    manifests = []
    for path in mf.list_manifests(dup):
        try:
            m = mf.read_manifest(path)
        except mf.ManifestError as e:
            result.messages.append(str(e))
            continue
        if move_id is not None and m.move_id != move_id:
            continue
        if dataset_name is not None and m.dataset != dataset_name:
            continue
        manifests.append(m)
    if move_id is not None and not manifests:
        raise ValueError(f"No move {move_id!r} in {dup}")
    todo = [m for m in reversed(manifests) if _needs_restore(m, dup)]
    if not todo:
        result.messages.append(f"nothing to restore in {dup}")
        return result
    if dry_run:
        _check_all(todo, dup, trusted_roots)
        for m in todo:
            _restore_one(m, dup, trusted_roots, True, progress, result)
        return result
    paths.check_state_dir(dup)
    with locks.hold([locks.duplicates_dir_lock(dup)]):
        # as they are now that the lock is held; all checked before any change
        todo = [mf.read_manifest(m.path) for m in todo]
        _check_all(todo, dup, trusted_roots)
        for m in todo:
            m = mf.read_manifest(m.path)
            if not _needs_restore(m, dup):
                continue  # a newer move's restore brought its files back
            dataset = fo.load_dataset(m.dataset) if fo.dataset_exists(m.dataset) else None
            held = ([locks.dataset_lock(dataset)] if dataset is not None else []) + [
                locks.folder_lock(r.path) for r in sorted(m.roots, key=lambda r: r.path)
            ]
            with locks.hold(held):
                _restore_one(m, dup, trusted_roots, False, progress, result)
    logger.debug("%s", result.format())  # the caller prints it
    return result


def _files_out(m, dup):
    """The files of a move that are in the duplicates folder and not back."""
    out = []
    for e in m.files:
        try:
            src = fileops.join_inside(m.roots[e.root].path, e.src, "source path")
            dst = fileops.join_inside(dup, e.dst, "destination")
        except fileops.UnsafePathError:
            continue
        if os.path.lexists(dst) and not os.path.lexists(src):
            out.append(e)
    return out


def _needs_restore(m, dup):
    """Whether a move is to be undone: from its files, not its records (a
    move is restored when its files are back)."""
    if m.aborted:
        return False
    return not m.restore_complete or bool(_files_out(m, dup))


def _check_all(todo, dup, trusted_roots):
    every = mf.read_all(dup)
    for m in todo:
        dataset = fo.load_dataset(m.dataset) if fo.dataset_exists(m.dataset) else None
        if dataset is not None:
            dataset.reload()
        trust.check_records(m, dataset, every, trusted_roots)


def _restore_one(m, dup, trusted_roots, dry_run, progress, result):
    dataset = fo.load_dataset(m.dataset) if fo.dataset_exists(m.dataset) else None
    if dataset is not None:
        dataset.reload()  # its move records may come from another process
    summary = {
        "move_id": m.move_id,
        "dataset": m.dataset,
        "num_restored": 0,
        "num_skipped": 0,
        "error": None,
    }
    result.moves.append(summary)
    if m.problems:
        result.messages.append(
            f"{m.path}: {len(m.problems)} record(s) ignored (their files, if any, "
            f"stay in the duplicates folder); first: {m.problems[0]}"
        )
    try:
        trust.check_trust(m, dataset, trusted_roots)
    except ValueError as e:
        summary["error"] = str(e)
        result.messages.append(str(e))
        return
    if m.state == "planning":
        if not dry_run:
            mf.abort_plan(m, dup)
        return
    if dry_run:
        for e in m.files:
            r = m.roots[e.root]
            src = os.path.join(r.path, *e.src.split("/"))
            dst = os.path.join(dup, *e.dst.split("/"))
            if os.path.lexists(dst) and not os.path.lexists(src):
                result.files.append(
                    {"src": src, "dst": dst, "kind": e.kind, "outcome": "planned", "reason": None}
                )
                summary["num_restored"] += e.kind == "image"
        for _, src in annotation_files.annotations_to_put_back(m):
            result.annotations.append({"path": src, "action": "would be put back from its backup"})
        return
    with mf.Journal(m.path) as journal:
        if not m.restore_started:
            journal.append(jr.restore_started_record(), sync=True)
            m.restore_started = True
        # every file, whatever the records say: those back already stay back
        outcomes = {}
        with ProgressBar(
            total=len(m.files), progress=progress, label="Restoring files", iters_str="files"
        ) as pb:
            for e in pb(m.files):
                kind, reason = transfer.bring_back(m, e, dup)
                if m.restored.get(e.n) != (kind, reason):
                    journal.append(jr.restored_record(kind, e.n, reason))
                    m.restored[e.n] = (kind, reason)
                outcomes[e.n] = (kind, reason)
        for e in m.files:
            kind, reason = outcomes[e.n]
            r = m.roots[e.root]
            result.files.append({
                "src": os.path.join(r.path, *e.src.split("/")),
                "dst": os.path.join(dup, *e.dst.split("/")),
                "kind": e.kind,
                "outcome": kind,
                "reason": reason,
            })
            if kind == "restored":
                summary["num_restored"] += e.kind == "image"
            elif reason != "was not moved":
                summary["num_skipped"] += 1
        if "files" not in m.restore_phases:
            journal.append(jr.restore_phase_record("files"), sync=True)
        # put back whatever is still as the move left it (idempotent)
        annotation_files.restore_annotations(m, dup, result)
        if "annotations" not in m.restore_phases:
            journal.append(jr.restore_phase_record("annotations"), sync=True)
        back = {n for n, (kind, _) in outcomes.items() if kind == "restored"}
        if dataset is None:
            if "database" not in m.restore_phases:
                result.messages.append(
                    f"dataset '{m.dataset}' not found: its samples were not restored"
                )
        else:
            try:
                database.restore_samples(
                    m, dup, dataset, back, only_out="database" in m.restore_phases
                )
            except (ValueError, OSError):
                raise
            except Exception as e:  # noqa: BLE001 - database errors vary
                raise database.db_error(e, m, "restoring the samples") from e
        if "database" not in m.restore_phases:
            journal.append(jr.restore_phase_record("database"), sync=True)
        for r in m.roots:
            fileops.prune_empty_tree(os.path.join(dup, r.dest))
        fileops.prune_empty_tree(os.path.join(dup, paths.backup_dir(m.move_id), "dropped"))
        if not m.restore_complete:
            journal.append(jr.restore_complete_record(), sync=True)
    if dataset is not None:
        trust.mark_restored(dataset, m)

