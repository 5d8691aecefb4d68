"""Moving the duplicates of a run out of their dataset: the move itself,
in the order of its journal, and finishing moves that were interrupted.

The order of a move, each step journaled first::

    plan      checks (kept file present, file unchanged since the run, inside
              its folder, no symbolic link), checksums, backups of annotation
              files and sample documents; closed by a flushed "planned" record
    files     one atomic no-clobber rename each (or copy, verify, remove
              across file systems)
    annotations  source annotation files rewritten atomically; the
              duplicates folder's annotation files written
    database  samples deleted, re-pointed and tagged, or moved to a
              duplicates dataset
"""

import datetime
import errno
import logging
import os


from fiftyone_dedup.engine import field_names
from fiftyone_dedup.engine import runs
from fiftyone_dedup.moves import annotation_files
from fiftyone_dedup.moves import arguments
from fiftyone_dedup.moves import database
from fiftyone_dedup.moves import fileops
from fiftyone_dedup.moves import journal as jr
from fiftyone_dedup.moves import locks
from fiftyone_dedup.moves import manifest as mf
from fiftyone_dedup.moves import paths
from fiftyone_dedup.moves import transfer
from fiftyone_dedup.moves import trust
from fiftyone_dedup.moves.model import AnnotationEntry
from fiftyone_dedup.moves.plan import compact_roots, make_plan, plan_result
from fiftyone_dedup.moves.results import MoveResult, file_dict, samples_text
from fiftyone_dedup.progress import ProgressBar

logger = logging.getLogger(__name__)

#: the tag added to moved samples kept in the dataset
DEFAULT_MOVED_TAG = "moved"

#: the default duplicates folder of the command line
DEFAULT_DUPLICATES_DIR = "duplicates"

def move_duplicates(
    samples,
    duplicates_dir,
    run_key=field_names.DEFAULT_RUN_KEY,
    labels="keep",
    on_samples="keep",
    tag=DEFAULT_MOVED_TAG,
    duplicates_dataset=None,
    root=None,
    dry_run=False,
    progress=None,
):
    """Moves the duplicates of a run into a folder, undoably.

    Each duplicate's file moves to
    ``<duplicates_dir>/<its dataset folder's name>/<its path in that
    folder>``: files of the same name from different folders never meet,
    and an existing file is never overwritten. Every step is journaled in
    ``<duplicates_dir>/manifest-<move_id>.jsonl`` before it is taken (see
    :mod:`fiftyone_dedup.moves.journal`);
    :func:`~fiftyone_dedup.moves.restore.restore` undoes the move from it,
    and running this function again finishes a move that was interrupted
    (even by ``kill -9``) before planning a new one.

    A duplicate is left in place, with the reason in the result, if its
    kept file is missing or changed since the run, if it changed itself
    (size and time checked against the run's record; a checksum is taken
    before the move and verified after), if it is a symbolic link or leads
    outside its dataset folder, or if another sample that stays uses the
    same file.

    Dataset folders (from the command line, see
    :func:`fiftyone_dedup.engine.folders.load_folders`) keep being valid
    datasets: their annotation files lose the moved images (the originals
    are backed up in ``<duplicates_dir>/.fiftyone_dedup/<move_id>/``), and
    with ``labels="keep"`` the moved images' annotations (COCO, VOC, YOLO,
    KITTI, CVAT, FiftyOne formats) land beside them in the same format, so
    each ``<duplicates_dir>/<name>`` loads as a labeled dataset. Other
    datasets' moved samples are written as a FiftyOne dataset
    (``samples.json``) there when labels are kept.

    Args:
        samples: a FiftyOne dataset or view; its duplicates (by the run)
            move
        duplicates_dir: the folder to move them into (created if missing;
            may be on another file system)
        run_key ("dedup"): the duplicates run
        labels ("keep"): ``"keep"``: moved samples keep their labels and
            the duplicates folder gets their annotations; ``"drop"``: no
            annotations travel and the moved samples lose their label
            fields
        on_samples ("keep"): what becomes of the moved samples:
            ``"keep"``: they stay in the dataset with their new filepath
            and ``tag``; ``"delete"``: they are deleted; ``"dataset"``:
            they move to the dataset ``duplicates_dataset``
        tag ("moved"): the tag of moved samples (``on_samples="keep"`` and
            ``"dataset"``); None for none
        duplicates_dataset (None): the dataset for ``on_samples="dataset"``;
            defaults to ``"<dataset name>-duplicates"``
        root (None): for samples not loaded from folders, the folder their
            paths are kept relative to; defaults to the common folder of
            the dataset's files
        dry_run (False): only plan: return (and log) what would move where,
            changing nothing on disk or in the database
        progress (None): ``None``, a bool, or a callable (see
            :mod:`fiftyone_dedup.progress`)

    Returns:
        a :class:`MoveResult`

    Raises:
        ValueError: for bad arguments or an unusable duplicates folder,
            before anything is changed
        fiftyone_dedup.moves.locks.LockError: if another move or restore is
            working on the same duplicates folder, dataset or folders
    """
    dup, run_key, duplicates_dataset = arguments.check_move_args(
        samples, duplicates_dir, run_key, labels, on_samples, tag, duplicates_dataset
    )
    dataset = samples._root_dataset

    # another process (the App, the command line) may have recorded moves
    dataset.reload()
    if dry_run:
        plan = make_plan(samples, dup, run_key, labels, on_samples, tag, duplicates_dataset, root)
        result = plan_result(plan, dry_run=True)
        for m in mf.read_all(dup):
            if m.state in ("planning", "moving") and m.dataset == dataset.name:
                result.messages.append(f"the unfinished move {m.move_id} would be finished first")
        result.messages.extend(_unfinished_elsewhere(dataset, dup))
        logger.debug("%s", result.format())  # the caller prints it
        return result

    runs.require_run(samples, run_key)
    created = _ensure_writable_dir(dup)
    try:
        return _move_locked(
            samples,
            dataset,
            dup,
            run_key,
            labels,
            on_samples,
            tag,
            duplicates_dataset,
            root,
            progress,
        )
    except (ValueError, locks.LockError):
        if created:
            _remove_created(dup, created)
        raise


def _move_locked(
    samples, dataset, dup, run_key, labels, on_samples, tag, duplicates_dataset, root, progress
):
    lock_list = [locks.duplicates_dir_lock(dup), locks.dataset_lock(dataset)]
    with locks.hold(lock_list):
        resumed = []
        for m in _unfinished(dup, dataset.name):
            folder_locks = [locks.folder_lock(r.path) for r in m.roots]
            with locks.hold(folder_locks):
                resumed.append(
                    finish(
                        m, dup, dataset, progress, MoveResult(dup, False, m.labels, m.on_samples)
                    ).move_id
                )

        plan = make_plan(samples, dup, run_key, labels, on_samples, tag, duplicates_dataset, root)
        folder_locks = [
            locks.folder_lock(r.path) for r in sorted(plan.move.roots, key=lambda r: r.path)
        ]
        with locks.hold(folder_locks):
            result = plan_result(plan, dry_run=False)
            result.resumed = resumed
            result.messages.extend(_unfinished_elsewhere(dataset, dup))
            result.files = []
            result.annotations = []
            m = _prepare(plan, result, progress)
            if m is None:
                logger.info("Nothing to move")
                return result
            return finish(m, dup, dataset, progress, result)


def _ensure_writable_dir(dup):
    """Creates the duplicates folder if needed and checks it is writable.

    Returns:
        the topmost folder created, or None
    """
    created = None
    parent = dup
    while not os.path.lexists(parent):
        created = parent
        parent = os.path.dirname(parent)
    try:
        os.makedirs(os.path.join(dup, paths.STATE_DIR), exist_ok=True)
        paths.check_state_dir(dup)
        probe = os.path.join(dup, paths.STATE_DIR, f".probe-{os.getpid()}")
        with open(probe, "wb"):
            pass
        os.unlink(probe)
    except OSError as e:
        raise ValueError(
            f"Cannot write to the duplicates folder {dup}: {e.strerror or e}"
        ) from None
    return created


def _remove_created(dup, created):
    """Takes back the empty folders a refused run created."""
    for name in ("lock",):
        try:
            os.unlink(os.path.join(dup, paths.STATE_DIR, name))
        except OSError:
            pass
    fileops.remove_empty_dirs(os.path.join(dup, paths.STATE_DIR), os.path.dirname(created))


def _unfinished_elsewhere(dataset, dup):
    """Notes on unfinished moves of this dataset in other duplicates
    folders (their files are skipped here, never moved twice)."""
    notes = []
    records = (dataset.info or {}).get(trust.INFO_KEY) or {}
    for move_id, record in sorted(records.items()):
        if not isinstance(record, dict) or record.get("restored"):
            continue
        other = record.get("duplicates_dir")
        if not isinstance(other, str) or other == dup:
            continue
        path = paths.manifest_path(other, move_id)
        if os.path.isfile(path) and mf.state_of(path) in ("planning", "moving"):
            notes.append(
                f"the move {move_id} into {other} is unfinished: move into "
                f"{other} again to finish it, or restore it"
            )
    return notes


def _unfinished(dup, dataset_name):
    out = []
    for path in mf.list_manifests(dup):
        try:
            m = mf.read_manifest(path)
        except mf.ManifestError as e:
            logger.warning("%s", e)
            continue
        if m.state in ("planning", "moving"):
            if m.dataset != dataset_name:
                logger.warning(
                    "The move %s of dataset '%s' in %s is unfinished; run a move "
                    "or restore on that dataset to finish it", m.move_id, m.dataset, dup,
                )
                continue
            out.append(m)
    return out


def _prepare(plan, result, progress):
    """Checksums, backups and the journaled plan; returns the manifest."""
    dup = plan.duplicates_dir
    dataset = plan.dataset
    m = plan.move
    files = []
    with ProgressBar(
        total=len(m.files), progress=progress, label="Checking files", iters_str="files"
    ) as pb:
        for e in pb(m.files):
            path = os.path.join(m.roots[e.root].path, *e.src.split("/"))
            try:
                sha = fileops.sha256_file(path)
                st = os.lstat(path)
            except OSError as ex:
                result.skipped.append({"path": path, "reason": f"cannot be read: {ex.strerror}"})
                continue
            if (st.st_size, st.st_mtime_ns) != (e.size, e.mtime_ns):
                result.skipped.append({"path": path, "reason": "changed while being checked"})
                continue
            e.sha256 = sha
            files.append(e)
    images = [e for e in files if e.kind == "image"]
    if not images:
        return None
    image_ids = {sid for e in images for sid in e.sample_ids}
    # a label file whose image was dropped above stays
    files = [e for e in files if e.kind == "image" or set(e.sample_ids) <= image_ids]
    compact_roots(plan, files)
    _check_space(plan, files, dup)
    move_id = paths.new_move_id()
    for n, e in enumerate(files):
        e.n = n
        e.dst = paths.destination(move_id, m.roots[e.root], e.kind, e.src, m.labels)

    os.makedirs(os.path.join(dup, paths.backup_dir(move_id)))
    for r in m.roots:
        os.mkdir(os.path.join(dup, r.dest))
    m.move_id = move_id
    m.path = paths.manifest_path(dup, move_id)
    m.created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    m.files = files
    with mf.Journal(m.path, create=True) as journal:
        journal.append(jr.header_record(m))
        for e in files:
            journal.append(jr.file_record(e))
        for a, (ri, rel) in enumerate(plan.shared):
            src = os.path.join(m.roots[ri].path, *rel.split("/"))
            data = fileops.read_bytes(src)
            backup = paths.annotation_backup(move_id, ri, rel)
            bpath = os.path.join(dup, *backup.split("/"))
            fileops.makedirs_inside(dup, os.path.dirname(bpath))
            fileops.atomic_write(bpath, data, replace=False)
            entry = AnnotationEntry(a, ri, rel, fileops.sha256_bytes(data), backup)
            m.annotations.append(entry)
            journal.append(jr.annotation_record(entry))
        backup = paths.samples_backup(move_id)
        sha, count = database.backup_samples(
            dataset, sorted(image_ids), os.path.join(dup, *backup.split("/"))
        )
        journal.append(jr.samples_record(backup, sha, count))
        m.samples_backup = {"backup": backup, "sha256": sha, "count": count}
        try:
            trust.record_move(dataset, m, dup)
        except Exception as e:  # noqa: BLE001 - database errors vary (pymongo)
            raise RuntimeError(
                f"The database could not be reached while recording the move "
                f"({type(e).__name__}); nothing was moved. Run the same command again"
            ) from e
        journal.append(jr.planned_record(len(files), len(plan.shared)), sync=True)
    m = mf.read_manifest(m.path)
    if m.problems or not m.planned:
        raise RuntimeError(f"The manifest {m.path} does not read back as written: {m.problems[:1]}")
    return m


def _check_space(plan, files, dup):
    """Refuses, before any change, a move whose copies (across file
    systems) and backups cannot fit in the duplicates folder."""
    dev = os.stat(dup).st_dev
    need = 0
    for e in files:
        src = os.path.join(plan.move.roots[e.root].path, *e.src.split("/"))
        if os.stat(os.path.dirname(src)).st_dev != dev:
            need += e.size
    for ri, rel in plan.shared:
        need += 2 * os.path.getsize(os.path.join(plan.move.roots[ri].path, *rel.split("/")))
    # the manifest and the samples backup: a few KB per file
    need += 4096 * len(files) + (1 << 20)
    free = fileops.free_bytes(dup)
    if need > free:
        raise ValueError(
            f"Not enough space in {dup}: the move needs about "
            f"{need / 1e6:.1f} MB there and {free / 1e6:.1f} MB are free. "
            "Nothing was moved"
        )


def finish(m, dup, dataset, progress, result):
    """Runs (or finishes) a planned move from its manifest; the caller holds
    the locks of the duplicates folder, the dataset and its folders.

    Args:
        m: the move's :class:`fiftyone_dedup.moves.model.Manifest`
        dup: the duplicates folder
        dataset: the move's dataset
        progress: see :mod:`fiftyone_dedup.progress`
        result: the :class:`fiftyone_dedup.moves.results.MoveResult` to fill

    Returns:
        ``result``
    """
    result.move_id = m.move_id
    result.manifest = m.path
    if m.problems:
        result.messages.append(
            f"{m.path}: {len(m.problems)} record(s) ignored; first: {m.problems[0]}"
        )
    if m.state == "planning":
        mf.abort_plan(m, dup)
        logger.info("Move %s was interrupted while planning; nothing had moved", m.move_id)
        return result
    trust.check_trust(m, dataset, None)
    trust.check_records(m, dataset, mf.read_all(dup), None)
    try:
        _finish_steps(m, dup, dataset, progress, result)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise transfer.DiskFullError(
                e.errno,
                f"The disk of {dup} is full ({e.strerror}); the move stopped. "
                f"Nothing is lost: free space and run the same move again to "
                f"finish it, or restore it (manifest {m.path})",
            ) from None
        raise
    failed = [f for f in result.files if f["outcome"] == "failed"]
    if failed:
        result.messages.append(
            f"{len(failed)} file(s) could not be moved; first: {failed[0]['src']}: "
            f"{failed[0].get('reason')}"
        )
    if result.num_moved:
        result.messages.append(
            samples_text(m.on_samples, m.dataset, m.tag, m.duplicates_dataset, m.labels, False)
        )
    logger.debug(
        "Moved %d image(s) into %s (manifest %s)", result.num_moved, dup, m.path,
    )
    return result


def _finish_steps(m, dup, dataset, progress, result):
    with mf.Journal(m.path) as journal:
        try:
            _move_files(m, dup, journal, progress)
        finally:
            for e in m.files:
                kind, reason = m.outcomes.get(e.n, ("planned", None))
                if kind == "moved" or kind == "planned":
                    result.files.append(file_dict(m.roots, dup, e, e.dst, kind))
                else:
                    result.files.append(file_dict(m.roots, dup, e, e.dst, kind, reason))
                    result.skipped.append({"path": result.files[-1]["src"], "reason": reason})
        if "files" not in m.phases:
            journal.append(jr.phase_record("files"), sync=True)
        if "annotations" not in m.phases:
            annotation_files.move_annotations(m, dup, journal, result)
            journal.append(jr.phase_record("annotations"), sync=True)
        if "database" not in m.phases:
            database.update_samples(m, dup, dataset)
            journal.append(jr.phase_record("database"), sync=True)
        if not m.complete:
            journal.append(jr.complete_record(m.outcome_counts()), sync=True)


def _move_files(m, dup, journal, progress):
    # an unfinished move retries what failed, so that a rerun after a full
    # disk puts every file of a folder into the same destination folder
    todo = [e for e in m.files if m.outcomes.get(e.n, ("failed",))[0] == "failed"]
    with ProgressBar(
        total=len(todo), progress=progress, label="Moving files", iters_str="files"
    ) as pb:
        for e in pb(todo):
            # a full disk stops the move here, unfinished: the rerun goes on
            kind, reason = transfer.move_out(m, e, dup)
            if m.outcomes.get(e.n) != (kind, reason):
                journal.append(jr.outcome_record(kind, e.n, reason))
                m.outcomes[e.n] = (kind, reason)

