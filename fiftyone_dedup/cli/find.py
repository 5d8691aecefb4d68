"""The main command: find the duplicates of dataset folders, keep one per
group, report them, and move (or with ``--dry_run``, plan to move) the rest.
"""

import logging
import os

from fiftyone_dedup.cli import checks
from fiftyone_dedup.cli import database
from fiftyone_dedup.cli.parser import PROG
from fiftyone_dedup.engine.errors import FolderError

logger = logging.getLogger("fiftyone_dedup")


def run(args):
    """Runs the main command on parsed arguments.

    Returns:
        the report dict
    """
    spec, threshold, dirs = checks.validate_args(args)

    import fiftyone  # noqa: F401 - FiftyOne sets its own log level when imported

    if not args.verbose:
        logging.getLogger("fiftyone").setLevel(logging.WARNING)
    progress = False if args.quiet else True
    if args.encodings_only and not dirs:
        return _merge_only(args)

    database.connect_database()
    from fiftyone_dedup.engine import folders
    from fiftyone_dedup.engine import outputs

    # one run per dataset at a time: a second one is refused, never raced
    lock = outputs.hold_run_lock(args.dataset or folders.default_dataset_name(dirs))
    try:
        return _run_locked(args, spec, threshold, dirs, progress, lock)
    finally:
        lock.release()


def _check_dataset(args, dirs):
    """Refuses a --dataset that this tool did not make from these folders."""
    from fiftyone_dedup.engine import folders

    reason = folders.dataset_not_ours(args.dataset or folders.default_dataset_name(dirs), dirs)
    if reason is None:
        return
    if args.dry_run:
        raise FolderError(
            f"{reason}; a dry run never changes it: choose another --dataset name to preview"
        )
    if not args.overwrite_dataset:
        raise FolderError(
            f"{reason}; it is left as it is: choose another --dataset name, or "
            "pass --overwrite_dataset to replace it with these folders"
        )


def _run_locked(args, spec, threshold, dirs, progress, lock):
    from fiftyone_dedup.engine import find
    from fiftyone_dedup.cli import report as report_mod

    _check_dataset(args, dirs)
    if not args.dry_run and not args.encodings_only:
        _resume_moves(args, dirs, progress)
    existing = _existing_dataset(args, dirs)
    if existing is not None:
        checks.check_keep_field(args, existing, made_now=False)  # before any change
    dataset, view = _load(args, dirs, progress)
    if existing is None:
        # a new dataset's fields (annotations, imported fields) are known
        # once loaded, still before any encoding
        checks.check_keep_field(args, dataset, made_now=True)
    field = spec.default_field
    if args.encodings is not None:
        _import_encodings(args, dataset, dirs, spec, field)
    if args.encodings_only:
        return _encodings_only(args, view, dataset, dirs, spec, field, progress)

    results = find.find_duplicates(
        view,
        threshold=threshold,
        encoder=spec.name,
        run_key=args.run_key,
        keep=args.keep,
        priority=checks.priority_dirs(args),
        grouping=args.grouping,
        guard=args.guard,
        guard_threshold=args.guard_threshold,
        min_samples=args.min_samples,
        verify=args.verify,
        progress=progress,
        ivf_nprobe=args.ivf_nprobe,
        **_encode_args(args, spec),
    )
    rep = report_mod.build_report(dataset, results, spec.name, threshold, dirs=dirs)
    rep["failed"] = args.skipped + rep["failed"]
    rep["summary"]["num_failed"] += len(args.skipped)
    if args.encodings_out:
        rep["encodings_out"] = _write_encodings(args, dataset, dirs, spec, field)
    if args.histogram and results.histogram:
        from fiftyone_dedup.engine import review

        review.save_histogram_png(results.histogram, args.histogram)
        rep["histogram_png"] = os.path.abspath(args.histogram)
    if args.display_duplicates:
        _display(args, rep, progress)  # before the move: it reads the files
    _move(args, dataset, rep, progress)
    if args.report:
        from fiftyone_dedup.engine import outputs

        outputs.write_json(args.report, rep)
    _print_summary(args, rep, dataset)
    if args.app:
        lock.release()  # the App only shows the result
        from fiftyone_dedup.cli import app_session

        app_session.open_app(results)
    return rep


def _resume_moves(args, dirs, progress):
    """Finishes a move killed earlier, before the folders are rescanned."""
    from fiftyone_dedup.moves import restore
    from fiftyone_dedup.engine import folders

    name = args.dataset or folders.default_dataset_name(dirs)
    for done in restore.resume_moves(args.duplicates_dir, dataset_name=name, progress=progress):
        print(f"Finished the interrupted move {done.move_id}: {done.num_moved} image(s) moved")


def _load(args, dirs, progress):
    from fiftyone_dedup.engine import folders

    dataset, _, skipped = folders.load_folders(
        dirs,
        name=args.dataset,
        data_dir=not args.no_data_dir,
        annotations=not args.no_annot,
        dataset_type=args.dataset_type,
        # what this run writes is never data
        exclude=[args.duplicates_dir, os.path.abspath(args.display_dir)]
        + ([os.path.abspath(args.histogram)] if args.histogram else []),
        overwrite=args.overwrite_dataset and not args.dry_run,
        progress=progress,
    )
    if dataset.count("id") == 0:
        raise FolderError(
            "No images found in " + ", ".join(
                folders.images_dir(d, not args.no_data_dir) for d in dirs
            )
        )
    args.skipped = skipped
    return dataset, folders.folder_order_view(dataset, dirs)


def _move(args, dataset, rep, progress):
    """Moves the duplicates (or, with --dry_run, prints the plan)."""
    from fiftyone_dedup.moves import move
    from fiftyone_dedup.cli import report as report_mod

    moved = move.move_duplicates(
        dataset,
        args.duplicates_dir,
        run_key=args.run_key,
        labels="drop" if args.drop_labels else "keep",
        on_samples=args.moved_samples,
        dry_run=args.dry_run,
        progress=progress,
    )
    report_mod.add_move(rep, moved)
    if moved.files or moved.skipped:
        print("\n" + moved.format(limit=20))
    return moved


def _encode_args(args, spec):
    """How the encodings are computed, as the engine's keyword arguments."""
    return dict(
        exact=args.exact,
        num_workers=args.num_workers,
        invariance=args.invariance,
        model=args.model if spec.uses_model else None,
        batch_size=args.batch_size if spec.uses_model else None,
        device=args.device,
        executor=args.executor,
        ray_address=args.ray_address,
    )


def _import_encodings(args, dataset, dirs, spec, field):
    import fiftyone.core.fields as fof

    from fiftyone_dedup.engine import encodings
    from fiftyone_dedup.engine import encodings_db

    if args.invariance:
        logger.info("--invariance: encodings from files are recomputed with their variants")
        return None
    if spec.uses_model:
        # stamped as the run's model, so that the run reuses them
        settings, ftype = f"cnn:{checks.model_name(spec, args)}", fof.VectorField
    else:
        settings, ftype = encodings.hash_settings(spec.name, exact=args.exact), None
    return encodings_db.import_encodings(
        dataset, args.encodings, dirs, not args.no_data_dir, field, settings,
        field_type=ftype,
    )


def _encodings_only(args, view, dataset, dirs, spec, field, progress):
    from fiftyone_dedup.engine import encodings

    report = encodings.compute_encodings(
        view, encoder=spec, field=field, progress=progress,
        **encodings.encode_kwargs(spec, **_encode_args(args, spec)),
    )
    path = _write_encodings(args, dataset, dirs, spec, field)
    print(
        f"\n{PROG}: encodings of {report.num_samples} image(s) "
        f"({report.num_computed} computed, {report.num_reused} reused, "
        f"{report.num_failed} unreadable)"
    )
    if path:
        print(f"Encodings: {path}")
    return {"encodings_only": True, "num_samples": report.num_samples, "path": path}


def _print_summary(args, rep, dataset):
    from fiftyone_dedup.cli import report as report_mod

    print(f"\n{PROG}: done\n" + report_mod.summary_table(rep))
    if rep["failed"]:
        print(f"\n{len(rep['failed'])} image(s) could not be read:")
        for f in rep["failed"][:10]:
            print(f"  {f['path']}: {f['error']}")
        if len(rep["failed"]) > 10:
            print(f"  ... and {len(rep['failed']) - 10} more (see --report)")
    print()
    for key, label in (
        ("gallery", "Pictures of the groups"),
        ("histogram_png", "Histogram of match distances"),
        ("encodings_out", "Encodings"),
    ):
        if rep.get(key):
            print(f"{label}: {rep[key]}")
    if args.report:
        print(f"Report: {os.path.abspath(args.report)}")
    if rep["summary"].get("num_moved"):
        print(f"Undo the move: {PROG} restore '{args.duplicates_dir}'")
    print(f"Review in the App: fiftyone app launch '{dataset.name}'")


def _merge_only(args):
    from fiftyone_dedup.engine import encodings_io

    path = encodings_io.write(args.encodings_out, args.encodings, style=args.encodings_format)
    n = len(args.encodings)
    print(
        f"{PROG}: merged {n} encoding(s) of {len(args.encodings.sets)} dataset(s) "
        f"into {path}"
    )
    return {"encodings_only": True, "merged": n, "path": path}


def _write_encodings(args, dataset, dirs, spec, field):
    from fiftyone_dedup.engine import encodings_db
    from fiftyone_dedup.engine import encodings_io

    if not args.encodings_out:
        return None
    enc = encodings_db.export_encodings(
        dataset, dirs, not args.no_data_dir, field, spec, model=checks.model_name(spec, args)
    )
    return encodings_io.write(args.encodings_out, enc, style=args.encodings_format)


def _display(args, rep, progress):
    from fiftyone_dedup.cli import gallery
    from fiftyone_dedup.progress import ProgressBar

    groups = rep["groups"]
    score = "similarity" if rep.get("metric") == "cosine" else "distance"
    print(f"\nDuplicates ({len(groups)} group(s)):")
    for g in groups[:50]:
        print(f"  keep {g['keep']}")
        for d in g["details"]:
            cross = "  [cross]" if d["cross"] else ""
            print(f"    dup  {d['path']}  ({score} {d[score]}){cross}")
    if len(groups) > 50:
        print(f"  ... and {len(groups) - 50} more group(s) (see the report)")
    shown = min(len(groups), 500)
    with ProgressBar(
        total=shown, progress=progress, label="Drawing groups", iters_str="groups"
    ) as pb:
        index = gallery.write_gallery(rep, args.display_dir, max_groups=500, progress=pb.update)
    rep["gallery"] = index


def _existing_dataset(args, dirs):
    import fiftyone as fo

    from fiftyone_dedup.engine import folders

    name = args.dataset or folders.default_dataset_name(dirs)
    return fo.load_dataset(name) if fo.dataset_exists(name) else None
