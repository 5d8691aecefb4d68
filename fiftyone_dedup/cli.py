"""The ``fiftyone-dedup`` command line, over the same engine as the App.

Keeps the flags of ``remove_duplicates.py``, the script this grew from::

    fiftyone-dedup -d ~/dataset
    fiftyone-dedup -d ~/images --no_data_dir --no_annot --encoder DHash
    fiftyone-dedup -r ~/dataset -d dir_1 dir_2 --report report.json
    fiftyone-dedup -d ~/dataset --dry_run
    fiftyone-dedup restore duplicates
    fiftyone-dedup demo

Arguments are checked before anything is imported or changed: a bad one
exits with status 2 and a one-line reason. FiftyOne is imported only after
that, so ``--help`` and mistakes answer at once.
"""

import argparse
import logging
import os
import sys

logger = logging.getLogger("fiftyone_dedup")

PROG = "fiftyone-dedup"


class UsageError(Exception):
    """A bad argument: exit 2 with a one-line reason."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _encoder_names():
    from fiftyone_dedup import encoders

    return [s.label for s in encoders.ENCODERS.values()]


def build_parser():
    """The argument parser of the main command."""
    from fiftyone_dedup import encoders
    from fiftyone_dedup import keep

    p = _Parser(
        prog=PROG,
        description=(
            "Find near-duplicate images in dataset folders, keep one per "
            "group and report (and tag, in a FiftyOne dataset) the rest. "
            "Run '%(prog)s demo' for a built-in example."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Folders: each -d DIR is a dataset with its images in DIR/data "
            "and annotations beside them (COCO labels.json, VOC "
            "labels/*.xml, YOLO, CVAT, KITTI or FiftyOne formats, detected "
            "from the files); --no_data_dir for images directly in DIR, "
            "--no_annot for no annotations."
        ),
    )
    p.add_argument(
        "-d", "--dirs", nargs="+", metavar="DIR", required=True,
        help="the datasets to process; with several, duplicates are found "
        "within and across them (cross duplicates)",
    )
    p.add_argument(
        "-r", "--root", metavar="DIR",
        help="a root that the --dirs are relative to (-r ~/dataset -d dir_1 dir_2)",
    )
    p.add_argument(
        "--encoder", default="DHash", metavar="NAME",
        help=f"the encoder: {', '.join(_encoder_names())} (default: DHash)",
    )
    p.add_argument(
        "--threshold", metavar="T",
        help="hashes: maximum Hamming distance in bits (0-64, default 10); "
        f"CNN: {encoders.CNN_HELP} (default "
        f"{encoders.ENCODERS['cnn'].default_threshold})",
    )
    p.add_argument(
        "--duplicates_dir", default="duplicates", metavar="DIR",
        help="where duplicates are moved, each under its dataset folder's "
        "name at the same relative path, with its annotations unless "
        "--drop_labels, and a manifest to undo the move "
        "('%(prog)s restore DIR'); default: duplicates in the current folder",
    )
    p.add_argument(
        "--dry_run", action="store_true",
        help="do not move any file: print the plan (what would move where)",
    )
    p.add_argument(
        "--drop_labels", action="store_true",
        help="move the images without their annotations (the source "
        "annotation files still lose them; the originals are kept for undo)",
    )
    p.add_argument(
        "--moved_samples", default="keep", choices=("keep", "delete", "dataset"),
        help="what becomes of the moved samples in the FiftyOne dataset: keep "
        "them with the new filepath and tag 'moved' (default), delete them, "
        "or move them to the dataset '<dataset>-duplicates'",
    )
    p.add_argument(
        "--no_data_dir", action="store_true",
        help="the images are directly in DIR, not in DIR/data",
    )
    p.add_argument(
        "--no_annot", action="store_true", help="the datasets have no annotations"
    )
    p.add_argument(
        "--dataset_type", metavar="TYPE",
        help="the annotation layout instead of detecting it: "
        "coco, voc, yolov5, yolov4, kitti, cvat, fiftyone-detection, "
        "fiftyone-classification, fiftyone",
    )
    p.add_argument(
        "--report", metavar="PATH",
        help="write a JSON report: {encoder, threshold, groups: [{keep, "
        "duplicates}], failed: [{path, error}], ...}",
    )
    p.add_argument(
        "--dataset", metavar="NAME",
        help="the FiftyOne dataset that keeps the result for the App "
        "(default: a name derived from the folders; reused on the next run)",
    )
    p.add_argument(
        "--keep", default="first", choices=keep.POLICIES,
        help="which member of each group is kept (default: first, in "
        "folder then file-name order)",
    )
    p.add_argument(
        "--run_key", default="dedup", metavar="KEY",
        help="the name of the run in the dataset (default: dedup)",
    )
    p.add_argument(
        "--num_workers", type=int, metavar="N",
        help="worker processes for decoding (default: one per CPU)",
    )
    p.add_argument(
        "--exact", action="store_true",
        help="decode JPEGs fully: hashes bit-identical to imagededup's, slower",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="more logging")
    return p


def _resolve_dirs(args):
    dirs = args.dirs
    if args.root:
        root = os.path.expanduser(args.root)
        if not os.path.isdir(root):
            raise UsageError(f"--root folder not found: {os.path.abspath(root)}")
        dirs = [os.path.join(root, os.path.expanduser(d)) for d in dirs]
    return [os.path.abspath(os.path.expanduser(d)) for d in dirs]


def _parse_threshold(spec, text):
    if text is None:
        return spec.default_threshold
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--threshold must be a number, got {text!r}") from None
    try:
        return spec.validate_threshold(value)
    except ValueError as e:
        raise UsageError(f"--threshold: {e}") from None


def validate_args(args):
    """Checks arguments before any work; returns what the run needs.

    Raises:
        UsageError: with a one-line reason
    """
    from fiftyone_dedup import encoders
    from fiftyone_dedup import folders

    try:
        spec = encoders.get_encoder(args.encoder)
    except ValueError as e:
        raise UsageError(f"--encoder: {e}") from None
    threshold = _parse_threshold(spec, args.threshold)
    if args.num_workers is not None and args.num_workers < 0:
        raise UsageError(f"--num_workers must be 0 or more, got {args.num_workers}")
    if not args.run_key.isidentifier():
        raise UsageError(
            f"--run_key must be letters, digits and underscores, got {args.run_key!r}"
        )
    dirs = _resolve_dirs(args)
    try:
        dirs = folders.check_dirs(dirs, data_dir=not args.no_data_dir)
    except folders.FolderError as e:
        raise UsageError(str(e)) from None
    if args.report:
        parent = os.path.dirname(os.path.abspath(args.report)) or "."
        if os.path.isdir(args.report):
            raise UsageError(f"--report is a folder, expected a file path: {args.report}")
        if os.path.exists(parent) and not os.access(parent, os.W_OK):
            raise UsageError(f"--report folder is not writable: {parent}")
    if args.dataset is not None and not args.dataset.strip():
        raise UsageError("--dataset must not be empty")
    _check_duplicates_dir(args, dirs)
    return spec, threshold, dirs


def _check_duplicates_dir(args, dirs):
    from fiftyone_dedup import fileops
    from fiftyone_dedup import folders

    dup = os.path.abspath(os.path.expanduser(args.duplicates_dir or ""))
    if not args.duplicates_dir or not args.duplicates_dir.strip():
        raise UsageError("--duplicates_dir must not be empty")
    if os.path.lexists(dup) and not os.path.isdir(dup):
        raise UsageError(f"--duplicates_dir is not a folder: {dup}")
    for d in dirs:
        if fileops.is_inside(d, dup):
            raise UsageError(
                f"--duplicates_dir {dup} contains the dataset folder {d}; "
                "choose a folder outside it"
            )
        images = folders.images_dir(d, not args.no_data_dir)
        if not args.no_annot and fileops.is_inside(dup, images):
            raise UsageError(
                f"--duplicates_dir {dup} is inside {images}, the images folder "
                f"of a labeled dataset; choose a folder outside it"
            )
    if not args.dry_run:
        parent = dup
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(f"--duplicates_dir cannot be created or written: {parent} is read-only")
    args.duplicates_dir = dup


def run(args):
    """Runs the main command on parsed arguments.

    Returns:
        the report dict
    """
    spec, threshold, dirs = validate_args(args)

    from fiftyone_dedup import actions
    from fiftyone_dedup import core
    from fiftyone_dedup import folders
    from fiftyone_dedup import report as report_mod

    if not args.verbose:
        # FiftyOne sets its own log level when imported
        logging.getLogger("fiftyone").setLevel(logging.WARNING)
    progress = False if args.quiet else True
    name = args.dataset or folders.default_dataset_name(dirs)
    if not args.dry_run:
        # a move killed earlier is finished before the folders are rescanned
        for done in actions.resume_moves(args.duplicates_dir, dataset_name=name, progress=progress):
            print(f"Finished the interrupted move {done.move_id}: {done.num_moved} image(s) moved")
    dataset, _ = folders.load_folders(
        dirs,
        name=name,
        data_dir=not args.no_data_dir,
        annotations=not args.no_annot,
        dataset_type=args.dataset_type,
        exclude=[args.duplicates_dir],
        progress=progress,
    )
    if len(dataset) == 0:
        raise folders.FolderError(
            "No images found in " + ", ".join(
                folders.images_dir(d, not args.no_data_dir) for d in dirs
            )
        )
    view = dataset.sort_by([(folders.SOURCE_FIELD, 1), ("filepath", 1)])
    results = core.find_duplicates(
        view,
        threshold=threshold,
        encoder=spec.name,
        run_key=args.run_key,
        keep=args.keep,
        exact=args.exact,
        num_workers=args.num_workers,
        progress=progress,
    )
    rep = report_mod.build_report(dataset, results, spec.name, threshold, dirs=dirs)
    moved = actions.move_duplicates(
        dataset,
        args.duplicates_dir,
        run_key=args.run_key,
        labels="drop" if args.drop_labels else "keep",
        on_samples=args.moved_samples,
        dry_run=args.dry_run,
        progress=progress,
    )
    report_mod.add_move(rep, moved)
    if args.report:
        folders.write_json(args.report, rep)
    if moved.files or moved.skipped:
        print("\n" + moved.format(limit=20))
    print(f"\n{PROG}: done\n" + report_mod.summary_table(rep))
    if rep["failed"]:
        print(f"\n{len(rep['failed'])} image(s) could not be read:")
        for f in rep["failed"][:10]:
            print(f"  {f['path']}: {f['error']}")
        if len(rep["failed"]) > 10:
            print(f"  ... and {len(rep['failed']) - 10} more (see --report)")
    if args.report:
        print(f"\nReport: {os.path.abspath(args.report)}")
    if moved.num_moved:
        print(f"Undo the move: {PROG} restore '{args.duplicates_dir}'")
    print(f"Review in the App: fiftyone app launch '{dataset.name}'")
    return rep


def build_restore_parser():
    """The argument parser of ``fiftyone-dedup restore``."""
    p = _Parser(
        prog=f"{PROG} restore",
        description=(
            "Undo moves of duplicates from the manifests in DUPLICATES_DIR: "
            "files, annotation files and dataset samples go back, newest "
            "move first. Safe to interrupt and run again."
        ),
    )
    p.add_argument("duplicates_dir", metavar="DUPLICATES_DIR", help="the duplicates folder of the moves")
    p.add_argument("--move_id", metavar="ID", help="undo only this move (default: every move not yet undone)")
    p.add_argument("--dataset", metavar="NAME", help="undo only the moves of this FiftyOne dataset")
    p.add_argument(
        "--trust_root", nargs="+", metavar="DIR", default=[],
        help="dataset folders to restore into even though no FiftyOne "
        "dataset records them (for example after the dataset was deleted)",
    )
    p.add_argument("--dry_run", action="store_true", help="only print what would be restored")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="more logging")
    return p


def run_restore(args):
    """Runs ``fiftyone-dedup restore`` on parsed arguments.

    Returns:
        the :class:`fiftyone_dedup.actions.RestoreResult`
    """
    dup = os.path.abspath(os.path.expanduser(args.duplicates_dir))
    if not os.path.isdir(dup):
        raise UsageError(f"Duplicates folder not found: {dup}")
    from fiftyone_dedup import actions

    if not args.verbose:
        logging.getLogger("fiftyone").setLevel(logging.WARNING)
    result = actions.restore(
        dup,
        move_id=args.move_id,
        dataset_name=args.dataset,
        trusted_roots=args.trust_root,
        dry_run=args.dry_run,
        progress=False if args.quiet else True,
    )
    print(result.format())
    errors = [m for m in result.moves if m.get("error")]
    if errors and not result.num_restored:
        raise ValueError(errors[0]["error"])
    return result


def _configure_logging(verbose):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    pkg = logging.getLogger("fiftyone_dedup")
    pkg.handlers[:] = [handler]
    pkg.setLevel(logging.DEBUG if verbose else logging.INFO)
    pkg.propagate = False


def main(argv=None):
    """Entry point of ``fiftyone-dedup`` and ``python -m fiftyone_dedup``.

    Returns:
        the exit status: 0 done, 1 failed, 2 bad arguments
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    try:
        if argv and argv[0] == "demo":
            from fiftyone_dedup import demo

            args = demo.build_parser().parse_args(argv[1:])
            _configure_logging(args.verbose)
            demo.run(args)
            return 0
        if argv and argv[0] == "restore":
            args = build_restore_parser().parse_args(argv[1:])
            _configure_logging(args.verbose)
            run_restore(args)
            return 0
        args = build_parser().parse_args(argv)
        _configure_logging(args.verbose)
        run(args)
        return 0
    except UsageError as e:
        print(f"{PROG}: error: {e} (see {PROG} --help)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - one line for the user
        from fiftyone_dedup.folders import FolderError
        from fiftyone_dedup.locks import LockError

        if isinstance(e, (FolderError, ValueError, LockError)):
            print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
            return 2 if isinstance(e, FolderError) else 1
        logger.debug("Failed", exc_info=True)
        print(f"{PROG}: failed: {type(e).__name__}: {_one_line(e)}", file=sys.stderr)
        return 1


def _one_line(e):
    text = str(e).strip()
    return text if "\n" not in text else text.replace("\n", " | ")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
