"""The ``fiftyone-dedup`` command line, over the same engine as the App.

Keeps the flags of ``remove_duplicates.py``, the script this grew from::

    fiftyone-dedup -d ~/dataset                       # CNN embeddings (offline model)
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


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _encoder_names():
    from fiftyone_dedup.algorithms import encoders

    return [s.label for s in encoders.ENCODERS.values()]


def build_parser():
    """The argument parser of the main command."""
    from fiftyone_dedup.algorithms import encoders
    from fiftyone_dedup.algorithms import grouping

    p = Parser(
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
        "-d", "--dirs", nargs="+", metavar="DIR",
        help="the datasets to process; with several, duplicates are found "
        "within and across them (cross duplicates)",
    )
    p.add_argument(
        "-r", "--root", metavar="DIR",
        help="a root that the --dirs are relative to (-r ~/dataset -d dir_1 dir_2)",
    )
    p.add_argument(
        "--encoder", metavar="NAME",
        help=f"the encoder: {', '.join(_encoder_names())} (default: CNN, or "
        "the encoder that made the --encodings_in files)",
    )
    p.add_argument(
        "--threshold", metavar="T",
        help="hashes: maximum Hamming distance in bits (0-64, default 10); "
        f"CNN: {encoders.CNN_HELP} (default "
        f"{encoders.ENCODERS['cnn'].default_threshold})",
    )
    p.add_argument(
        "--encodings_in", nargs="+", metavar="F",
        help="load encodings from JSON files (.json may be omitted), one per "
        "dataset in the order of --dirs (or matched by the folder they "
        "record), merged; ours or imagededup's {filename: encoding} files. "
        "Entries of changed or missing files are recomputed or dropped",
    )
    p.add_argument(
        "--encodings_out", metavar="F",
        help="save the (merged) encodings to a JSON file (.json may be omitted)",
    )
    p.add_argument(
        "--encodings_format", choices=("fiftyone", "imagededup"), default="fiftyone",
        help="the --encodings_out format: fiftyone (default; datasets kept "
        "apart, with what made them) or imagededup ({filename: encoding}, "
        "loadable by imagededup's find_duplicates(encoding_map=...))",
    )
    p.add_argument(
        "--encodings_only", action="store_true",
        help="stop after loading/computing and saving encodings; with "
        "--encodings_in and no --dirs, just merge the files",
    )
    p.add_argument(
        "--display_duplicates", action="store_true",
        help="show the duplicates found (and the cross duplicates): list them "
        "and write a PNG contact sheet per group and an HTML page",
    )
    p.add_argument(
        "--display_dir", default="duplicates_display", metavar="DIR",
        help="where --display_duplicates writes (default: ./duplicates_display)",
    )
    p.add_argument(
        "--app", action="store_true",
        help="open the FiftyOne App on the duplicates (until you close it "
        "with Ctrl-C)",
    )
    p.add_argument(
        "--duplicates_dir", default="duplicates", metavar="DIR",
        help="where duplicates are moved, each under its dataset folder's "
        "name at the same relative path, with its annotations unless "
        "--drop_labels, and a manifest to undo the move "
        "('%(prog)s restore DIR'); default: duplicates in the current folder",
    )
    p.add_argument(
        "--model", metavar="NAME",
        help="CNN: the embedding model (default: efficientnet-lite0, "
        "pretrained, needs no download); imagededup's mobilenet_v3_small, "
        "efficientnet_b4 or vit_b_16, or a FiftyOne zoo model name, download "
        "their weights on first use",
    )
    p.add_argument(
        "--batch_size", type=int, metavar="N",
        help="CNN: images per batch (default: 16 on the CPU, 64 on a GPU)",
    )
    p.add_argument(
        "--device", default="auto", metavar="DEVICE",
        help="CNN: where the model runs: auto (a GPU if there is one), cpu, "
        "cuda, cuda:N, mps (default: auto)",
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
        "--overwrite_dataset", action="store_true",
        help="let --dataset name an existing dataset that %(prog)s did not "
        "make from these folders: it is deleted and made anew from them "
        "(refused otherwise, and always with --dry_run)",
    )
    p.add_argument(
        "--keep", default="first", metavar="POLICY",
        help="which member of each group is kept: first (folder order as "
        "given, then file name; the default), largest_resolution, "
        "largest_file, most_labels, oldest, newest, priority (see "
        "--priority), max:FIELD or min:FIELD (a numeric sample field)",
    )
    p.add_argument(
        "--priority", nargs="+", metavar="DIR",
        help="keep images from these folders first, in this order (implies "
        "--keep priority); e.g. the reference set",
    )
    p.add_argument(
        "--grouping", default="near", choices=grouping.METHODS,
        help="near (default): each group is a kept image and its near "
        "matches; components: whole chains of near matches, split by the "
        "guard; dbscan: scikit-learn DBSCAN (eps from the threshold), split "
        "by the guard",
    )
    p.add_argument(
        "--guard", default="kept", choices=grouping.GUARDS,
        help="the guard against chaining: kept (default; every duplicate "
        "within the threshold of its kept image) or complete (every two "
        "members of a group within it)",
    )
    p.add_argument(
        "--guard_threshold", metavar="T",
        help="the guard's threshold (default: --threshold; may not be looser)",
    )
    p.add_argument(
        "--min_samples", type=int, default=1, metavar="N",
        help="DBSCAN's min_samples (default 1, as in the seed's notebook)",
    )
    p.add_argument(
        "--invariance", choices=("flip", "rotation", "dihedral"),
        help="also match mirrored (flip), 90/180/270-degree rotated "
        "(rotation) or both (dihedral) copies; off by default (costs more "
        "encoding: one more hash or inference per version)",
    )
    p.add_argument(
        "--verify", choices=("orb", "none"), default="orb",
        help="verify each candidate pair (default orb: local features and a "
        "RANSAC-fitted transform must show the same picture or scene; "
        "candidates come from a bound looser than --threshold and from "
        "turned/mirrored hashes); none: every pair within --threshold is a "
        "duplicate, as before",
    )
    p.add_argument(
        "--histogram", metavar="PNG",
        help="write a histogram of the match distances near the threshold "
        "as a PNG, to help choose a threshold",
    )
    p.add_argument(
        "--run_key", default="dedup", metavar="KEY",
        help="the name of the run in the dataset (default: dedup)",
    )
    p.add_argument(
        "--num_workers", type=int, metavar="N",
        help="worker processes for decoding (default: one per CPU; for CNN, "
        "one per CPU beyond the first, which inference uses)",
    )
    p.add_argument(
        "--exact", action="store_true",
        help="decode JPEGs fully: hashes bit-identical to imagededup's, slower",
    )
    p.add_argument(
        "--executor", choices=("local", "ray"), default="local",
        help="where encoding and search run: this machine (default) or a Ray "
        "cluster (same results; needs pip install fiftyone-dedup[ray])",
    )
    p.add_argument(
        "--ray_address", metavar="ADDRESS",
        help="with --executor ray, the cluster (default: RAY_ADDRESS, else a "
        "local Ray started for the run)",
    )
    p.add_argument(
        "--ivf_nprobe", type=int, metavar="N",
        help="with --executor ray and CNN: an inverted-file search probing N "
        "lists per vector (approximate; its measured recall is in the "
        "report) instead of the exact tiled search",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="more logging")
    return p


def _read_encodings(args):
    from fiftyone_dedup.engine import encodings_io

    if not args.encodings_in:
        return None
    try:
        return encodings_io.merge([encodings_io.read(p) for p in args.encodings_in])
    except encodings_io.EncodingsFileError as e:
        raise UsageError(f"--encodings_in: {e}") from None


def _check_encodings(args, spec):
    from fiftyone_dedup.engine import encodings_io

    if args.encodings is None:
        return
    try:
        encodings_io.check_compatible(
            args.encodings, spec, model=_model_name(spec, args),
            path=", ".join(args.encodings_in),
        )
    except encodings_io.EncodingsFileError as e:
        raise UsageError(f"--encodings_in: {e}") from None


def _default_encoder(args):
    """CNN, as in the seed script, unless --encodings_in files say which
    encoder (and model) made them."""
    enc = args.encodings
    if enc is None:
        return "CNN"
    if enc.kind == "embedding":
        if args.model is None and enc.model and not enc.model.startswith("field:"):
            args.model = enc.model
        return "CNN"
    # imagededup's hash files do not say which hash: DHash is its default
    return enc.encoder or "DHash"


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


def _priority_dirs(args):
    if not args.priority:
        return None
    base = os.path.expanduser(args.root) if args.root else ""
    return [
        os.path.abspath(os.path.join(base, os.path.expanduser(d))) for d in args.priority
    ]


def _check_model_args(spec, args):
    if spec.is_hash:
        for flag in ("model", "batch_size"):
            if getattr(args, flag) is not None:
                raise UsageError(f"--{flag} applies to --encoder CNN, not {spec.label}")
        return
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch_size must be 1 or more, got {args.batch_size}")
    from fiftyone_dedup.algorithms import models

    try:
        models.model_name(args.model)
    except ValueError as e:
        raise UsageError(f"--model: {e}") from None
    try:
        models.resolve_device(args.device)
    except ValueError as e:
        raise UsageError(f"--device: {e}") from None


def validate_args(args):
    """Checks arguments before any work; returns what the run needs.

    Raises:
        UsageError: with a one-line reason
    """
    from fiftyone_dedup.algorithms import encoders
    from fiftyone_dedup.engine import folders
    from fiftyone_dedup.algorithms import keep

    args.encodings = _read_encodings(args)
    if args.encoder is None:
        args.encoder = _default_encoder(args)
    try:
        spec = encoders.get_encoder(args.encoder)
    except ValueError as e:
        raise UsageError(f"--encoder: {e}") from None
    threshold = _parse_threshold(spec, args.threshold)
    if args.guard_threshold is not None:
        args.guard_threshold = _parse_threshold(spec, args.guard_threshold)
        g = args.guard_threshold
        if (g < threshold) if spec.similarity else (g > threshold):
            raise UsageError(
                f"--guard_threshold ({g}) must not be looser than --threshold ({threshold})"
            )
    if args.priority and args.keep == "first":
        args.keep = "priority"
    try:
        keep.validate_keep(args.keep, _priority_dirs(args))
    except ValueError as e:
        raise UsageError(f"--keep: {e}") from None
    if args.min_samples < 1:
        raise UsageError(f"--min_samples must be 1 or more, got {args.min_samples}")
    _check_model_args(spec, args)
    if (args.ray_address or args.ivf_nprobe is not None) and args.executor != "ray":
        raise UsageError("--ray_address and --ivf_nprobe need --executor ray")
    if args.num_workers is not None and args.num_workers < 0:
        raise UsageError(f"--num_workers must be 0 or more, got {args.num_workers}")
    if not args.run_key.isidentifier():
        raise UsageError(
            f"--run_key must be letters, digits and underscores, got {args.run_key!r}"
        )
    if not args.dirs and not (args.encodings_in and args.encodings_only):
        raise UsageError(
            "the following arguments are required: -d/--dirs (or "
            "--encodings_in with --encodings_only)"
        )
    if args.encodings_only and not (args.encodings_out or args.dirs):
        raise UsageError("--encodings_only needs --encodings_out or --dirs to keep them")
    if args.encodings_only and args.encodings_in and not args.dirs and not args.encodings_out:
        raise UsageError("--encodings_only with no --dirs needs --encodings_out")
    dirs = _resolve_dirs(args) if args.dirs else []
    try:
        dirs = folders.check_dirs(dirs, data_dir=not args.no_data_dir)
    except folders.FolderError as e:
        raise UsageError(str(e)) from None
    _check_encodings(args, spec)
    _check_outputs(args, dirs)
    _check_priority(args, dirs)
    if args.dataset is not None and not args.dataset.strip():
        raise UsageError("--dataset must not be empty")
    _check_duplicates_dir(args, dirs)
    return spec, threshold, dirs


def _check_outputs(args, dirs):
    """Refuses output paths that would overwrite a file this tool did not
    write or any file in a dataset folder (-d), or put a histogram PNG where
    the next run would take it for an image."""
    from fiftyone_dedup.engine import encodings_io
    from fiftyone_dedup.cli import report as report_mod
    from fiftyone_dedup.engine import review

    outputs = []
    if args.report:
        outputs.append(("--report", args.report, "a report", report_mod.is_report_file))
    if args.encodings_out:
        outputs.append((
            "--encodings_out", encodings_io.with_json_suffix(args.encodings_out),
            "an encodings file", encodings_io.is_encodings_file,
        ))
    if args.histogram:
        outputs.append(("--histogram", args.histogram, "a histogram", review.is_histogram_png))
    seen = {}
    for flag, given, what, ours in outputs:
        if os.path.isdir(given):
            expected = "a .png path" if flag == "--histogram" else "a file path"
            raise UsageError(f"{flag} is a folder, expected {expected}: {given}")
        path = os.path.abspath(given)  # as the writers resolve it
        real = os.path.realpath(path)
        if real in seen:
            raise UsageError(f"{flag} and {seen[real]} name the same file: {path}")
        seen[real] = flag
        inside = next((d for d in dirs if _is_inside(path, d)), None)
        # a PNG there would be an image of the next run; any existing file
        # there belongs to the dataset
        if inside and (flag == "--histogram" or os.path.lexists(path)):
            what_there = "a file of" if os.path.lexists(path) else "inside"
            raise UsageError(
                f"{flag} {path} is {what_there} the dataset folder {inside}; "
                "write it outside the dataset folders"
            )
        if os.path.islink(path):
            raise UsageError(f"{flag} {path} is a symbolic link; give the path of a file")
        if os.path.lexists(path):
            if not os.path.isfile(path):
                raise UsageError(f"{flag} {path} is not a regular file")
            if not ours(path):
                raise UsageError(
                    f"{flag} would overwrite {path}, which is not {what} written "
                    f"by {PROG}; choose another path or remove that file"
                )
        parent = os.path.dirname(path)
        if os.path.exists(parent) and not os.access(parent, os.W_OK):
            raise UsageError(f"{flag} folder is not writable: {parent}")


def _is_inside(path, folder):
    from fiftyone_dedup.moves import fileops

    return fileops.is_inside(path, folder)


def _check_priority(args, dirs):
    """Every --priority entry is a folder of (or above) a dataset folder."""
    for p in _priority_dirs(args) or []:
        if not os.path.isdir(p):
            raise UsageError(f"--priority folder not found: {p}")
        if dirs and not any(_is_inside(p, d) or _is_inside(d, p) for d in dirs):
            raise UsageError(
                f"--priority folder {p} is neither inside nor above any of the "
                f"--dirs ({', '.join(dirs)}), so it matches no image"
            )


def _existing_dataset(args, dirs):
    import fiftyone as fo

    from fiftyone_dedup.engine import folders

    name = args.dataset or folders.default_dataset_name(dirs)
    return fo.load_dataset(name) if fo.dataset_exists(name) else None


def _check_keep_field(args, dataset, made_now):
    """--keep max:FIELD / min:FIELD names a numeric field of the dataset; a
    dataset made just now for the run is removed again."""
    from fiftyone_dedup.algorithms import keep

    try:
        keep.check_field(dataset, args.keep)
    except ValueError as e:
        if made_now:
            dataset.delete()
        raise UsageError(f"--keep: {e}") from None


def _check_duplicates_dir(args, dirs):
    from fiftyone_dedup.moves import fileops
    from fiftyone_dedup.engine import folders

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
    if not args.dry_run and not args.encodings_only:
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

    from fiftyone_dedup.engine import core  # noqa: F401 - imports FiftyOne

    if not args.verbose:
        # FiftyOne sets its own log level when imported
        logging.getLogger("fiftyone").setLevel(logging.WARNING)
    progress = False if args.quiet else True
    if args.encodings_only and not dirs:
        return _merge_only(args)

    _connect_database()
    from fiftyone_dedup.engine import folders

    # one run per dataset at a time: a second one is refused, never raced
    lock = folders.hold_run_lock(args.dataset or folders.default_dataset_name(dirs))
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
        raise folders.FolderError(
            f"{reason}; a dry run never changes it: choose another --dataset name to preview"
        )
    if not args.overwrite_dataset:
        raise folders.FolderError(
            f"{reason}; it is left as it is: choose another --dataset name, or "
            "pass --overwrite_dataset to replace it with these folders"
        )


def _run_locked(args, spec, threshold, dirs, progress, lock):
    from fiftyone_dedup.engine import core
    from fiftyone_dedup.cli import report as report_mod

    _check_dataset(args, dirs)
    if not args.dry_run and not args.encodings_only:
        _resume_moves(args, dirs, progress)
    existing = _existing_dataset(args, dirs)
    if existing is not None:
        _check_keep_field(args, existing, made_now=False)  # before any change
    dataset, view = _load(args, dirs, progress)
    if existing is None:
        # a new dataset's fields (annotations, imported fields) are known
        # once loaded, still before any encoding
        _check_keep_field(args, dataset, made_now=True)
    field = spec.default_field
    if args.encodings is not None:
        _import_encodings(args, dataset, dirs, spec, field)
    if args.encodings_only:
        return _encodings_only(args, view, dataset, dirs, spec, field, progress)

    results = core.find_duplicates(
        view,
        threshold=threshold,
        encoder=spec.name,
        run_key=args.run_key,
        keep=args.keep,
        priority=_priority_dirs(args),
        grouping=args.grouping,
        guard=args.guard,
        guard_threshold=args.guard_threshold,
        min_samples=args.min_samples,
        exact=args.exact,
        num_workers=args.num_workers,
        invariance=args.invariance,
        model=None if spec.is_hash else args.model,
        batch_size=None if spec.is_hash else args.batch_size,
        device=args.device,
        verify=args.verify,
        progress=progress,
        executor=args.executor,
        ray_address=args.ray_address,
        ivf_nprobe=args.ivf_nprobe,
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
        from fiftyone_dedup.engine import folders

        folders.write_json(args.report, rep)
    _print_summary(args, rep, dataset)
    if args.app:
        lock.release()  # the App only shows the result
        _open_app(results)
    return rep


#: seconds to wait for FiftyOne's embedded database beyond its own 60
DATABASE_EXTRA_WAIT = 240


class DatabaseStartError(RuntimeError):
    """FiftyOne's embedded database did not start; the message says what to do."""


def _connect_database():
    """Connects to FiftyOne's database before any work, giving its embedded
    ``mongod`` the time a busy machine needs: FiftyOne gives up after 60 s
    (``ServiceListenTimeout``), and has no setting for that."""
    import fiftyone.core.odm.database as food
    import fiftyone.core.service as fos

    try:
        food.get_db_conn()
        return
    except fos.ServiceListenTimeout:
        pass
    service = getattr(food, "_db_service", None)
    logger.warning(
        "FiftyOne's database (mongod) is slow to start, the machine is busy; "
        "waiting up to %d s more", DATABASE_EXTRA_WAIT,
    )
    try:
        port = service._wait_for_child_port(timeout=DATABASE_EXTRA_WAIT)
    except Exception:  # noqa: BLE001 - timed out, or FiftyOne changed inside
        raise DatabaseStartError(
            "FiftyOne's database (mongod) did not start within "
            f"{60 + DATABASE_EXTRA_WAIT} s; run the command again when the "
            "machine is less busy, or start a mongod yourself and set "
            "FIFTYONE_DATABASE_URI=mongodb://127.0.0.1:PORT"
        ) from None
    os.environ["FIFTYONE_PRIVATE_DATABASE_PORT"] = str(port)
    food.get_db_conn()


def _resume_moves(args, dirs, progress):
    """Finishes a move killed earlier, before the folders are rescanned."""
    from fiftyone_dedup.moves import actions
    from fiftyone_dedup.engine import folders

    name = args.dataset or folders.default_dataset_name(dirs)
    for done in actions.resume_moves(args.duplicates_dir, dataset_name=name, progress=progress):
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
        raise folders.FolderError(
            "No images found in " + ", ".join(
                folders.images_dir(d, not args.no_data_dir) for d in dirs
            )
        )
    args.skipped = skipped
    return dataset, folders.folder_order_view(dataset, dirs)


def _move(args, dataset, rep, progress):
    """Moves the duplicates (or, with --dry_run, prints the plan)."""
    from fiftyone_dedup.moves import actions
    from fiftyone_dedup.cli import report as report_mod

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
    if moved.files or moved.skipped:
        print("\n" + moved.format(limit=20))
    return moved


def _model_name(spec, args):
    """The CNN model's recorded name, or None for hashes."""
    if spec.is_hash:
        return None
    from fiftyone_dedup.algorithms import models

    return models.model_name(args.model)


def _import_encodings(args, dataset, dirs, spec, field):
    import fiftyone.core.fields as fof

    from fiftyone_dedup.engine import core
    from fiftyone_dedup.engine import encodings_db

    if args.invariance:
        logger.info("--invariance: encodings from files are recomputed with their variants")
        return None
    if spec.is_hash:
        settings, ftype = core.hash_settings(spec.name, exact=args.exact), None
    else:
        # stamped as the run's model, so that the run reuses them
        settings, ftype = f"cnn:{_model_name(spec, args)}", fof.VectorField
    return encodings_db.import_encodings(
        dataset, args.encodings, dirs, not args.no_data_dir, field, settings,
        field_type=ftype,
    )


def _encodings_only(args, view, dataset, dirs, spec, field, progress):
    from fiftyone_dedup.engine import core

    report = core.compute_encodings(
        view, encoder=spec, field=field, progress=progress,
        **core.encode_kwargs(
            spec, exact=args.exact, num_workers=args.num_workers,
            invariance=args.invariance,
            model=None if spec.is_hash else args.model,
            batch_size=None if spec.is_hash else args.batch_size,
            device=args.device,
            executor=args.executor, ray_address=args.ray_address,
        ),
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
        dataset, dirs, not args.no_data_dir, field, spec, model=_model_name(spec, args)
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
    with ProgressBar(total=shown, progress=progress, label="Drawing groups", iters_str="groups") as pb:
        index = gallery.write_gallery(rep, args.display_dir, max_groups=500, progress=pb.update)
    rep["gallery"] = index


def _open_app(results):
    import sys as _sys

    import fiftyone as fo

    view = results.view()
    # without a display there is no browser to open: serve and print the URL
    headless = _sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
    # an address set by the user wins over FiftyOne's 0.0.0.0 in containers
    address = os.environ.get("FIFTYONE_DEFAULT_APP_ADDRESS") or None
    session = fo.launch_app(view, auto=False, remote=headless, address=address)
    print(f"App: {_browser_url(session)} (Ctrl-C to stop)", flush=True)
    try:
        if not headless:
            try:
                session.open_tab()
            except Exception:  # noqa: BLE001 - no browser: the URL is printed
                pass
        session.wait()
    except KeyboardInterrupt:
        pass
    finally:
        _stop_app(session)


def _browser_url(session):
    """The App's URL as a browser opens it: a server listening on every
    address (0.0.0.0, as in a container) is reached through localhost."""
    if session.config.proxy_url:
        return session.url
    address = session.server_address
    if not address or address in ("0.0.0.0", "::", "[::]"):
        address = "localhost"
    elif ":" in address and not address.startswith("["):
        address = f"[{address}]"  # IPv6
    return f"http://{address}:{session.server_port}/"


def _stop_app(session, grace=0.3):
    """Stops the App server at once: FiftyOne's own stop waits for the
    server's graceful shutdown, which takes half a minute on a busy machine.
    The server only serves the database, so nothing is lost."""
    import psutil

    import fiftyone.core.session.session as fosess

    session._disable_wait_warning = True  # no "call session.wait()" hint
    service = fosess._server_services.pop(session.server_port, None)
    child = getattr(service, "child", None)
    if child is None:
        return
    try:
        top = psutil.Process(child.pid)
        procs = top.children(recursive=True) + [top]
    except psutil.Error:
        procs = []
    for signal_them in ("terminate", "kill"):
        for p in procs:
            try:
                getattr(p, signal_them)()
            except psutil.Error:
                pass
        procs = _wait_gone(procs, grace)
        if not procs:
            break
    try:
        child.stdin.close()
        child.wait(timeout=grace)  # reaps the service process
    except Exception:  # noqa: BLE001 - already gone
        pass


def _wait_gone(procs, timeout):
    """The processes still running after up to ``timeout`` seconds (a
    zombie counts as gone: only its parent can reap it)."""
    import time

    import psutil

    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for p in procs:
            try:
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.Error:
                pass
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def build_restore_parser():
    """The argument parser of ``fiftyone-dedup restore``."""
    p = Parser(
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
        the :class:`fiftyone_dedup.moves.actions.RestoreResult`
    """
    dup = os.path.abspath(os.path.expanduser(args.duplicates_dir))
    if not os.path.isdir(dup):
        raise UsageError(f"Duplicates folder not found: {dup}")
    if args.move_id is not None:
        _check_move_id(dup, args.move_id)
    from fiftyone_dedup.moves import actions

    if not args.verbose:
        logging.getLogger("fiftyone").setLevel(logging.WARNING)
    _connect_database()
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


def _check_move_id(dup, move_id):
    from fiftyone_dedup.moves import manifest

    names = [os.path.basename(p) for p in manifest.list_manifests(dup)]
    ids = [n[len(manifest.PREFIX):-len(manifest.SUFFIX)] for n in names]
    if move_id in ids:
        return
    listed = ", ".join(ids[-10:]) + (f" and {len(ids) - 10} older" if len(ids) > 10 else "")
    there = f"the moves there: {listed}" if ids else "there are no moves there"
    raise UsageError(f"--move_id {move_id!r}: no such move in {dup}; {there}")


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
            from fiftyone_dedup.cli import demo

            args = demo.build_parser().parse_args(argv[1:])
            _configure_logging(args.verbose)
            _connect_database()
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
        from fiftyone_dedup.engine.folders import FolderError
        from fiftyone_dedup.moves.locks import LockError
        from fiftyone_dedup.moves.manifest import ManifestError

        if isinstance(e, (FolderError, ValueError, LockError, DatabaseStartError)):
            print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
            # a refused manifest is bad input too
            return 2 if isinstance(e, (FolderError, ManifestError)) else 1
        logger.debug("Failed", exc_info=True)
        print(f"{PROG}: failed: {type(e).__name__}: {_one_line(e)}", file=sys.stderr)
        return 1


#: parameters of the engine whose flag is not ``--<parameter>``
PARAM_FLAGS = {}


def flag_for(param):
    """The flag that sets an engine parameter, for messages.

    Args:
        param: a parameter's Python name, e.g. ``"trust_root"``

    Returns:
        the flag (``"--trust_root"``), or ``param`` when no flag sets it
    """
    if param in PARAM_FLAGS:
        return PARAM_FLAGS[param]
    flags = set()
    for parser in (build_parser(), build_restore_parser()):
        for action in parser._actions:  # argparse keeps no public list
            flags.update(action.option_strings)
    return f"--{param}" if f"--{param}" in flags else param


def _one_line(e):
    from fiftyone_dedup.options import ParameterError

    text = e.for_name(flag_for(e.param)) if isinstance(e, ParameterError) else str(e)
    text = text.strip()
    return text if "\n" not in text else text.replace("\n", " | ")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
