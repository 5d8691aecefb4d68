"""The ``fiftyone-dedup`` command line, over the same engine as the App.

Keeps the flags of ``remove_duplicates.py``, the script this grew from::

    fiftyone-dedup -d ~/dataset                       # CNN embeddings (offline model)
    fiftyone-dedup -d ~/images --no_data_dir --no_annot --encoder DHash
    fiftyone-dedup -r ~/dataset -d dir_1 dir_2 --report report.json
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
        "--encoder", default="CNN", metavar="NAME",
        help=f"the encoder: {', '.join(_encoder_names())} (default: CNN)",
    )
    p.add_argument(
        "--threshold", metavar="T",
        help="hashes: maximum Hamming distance in bits (0-64, default 10); "
        f"CNN: {encoders.CNN_HELP} (default "
        f"{encoders.ENCODERS['cnn'].default_threshold})",
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
        help="do not move any file (find, tag and report only)",
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
        help="worker processes for decoding (default: one per CPU; for CNN, "
        "one per CPU beyond the first, which inference uses)",
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


def _check_model_args(spec, args):
    if spec.is_hash:
        for flag in ("model", "batch_size"):
            if getattr(args, flag) is not None:
                raise UsageError(f"--{flag} applies to --encoder CNN, not {spec.label}")
        return
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch_size must be 1 or more, got {args.batch_size}")
    from fiftyone_dedup import models

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
    from fiftyone_dedup import encoders
    from fiftyone_dedup import folders

    try:
        spec = encoders.get_encoder(args.encoder)
    except ValueError as e:
        raise UsageError(f"--encoder: {e}") from None
    threshold = _parse_threshold(spec, args.threshold)
    _check_model_args(spec, args)
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
    return spec, threshold, dirs


def run(args):
    """Runs the main command on parsed arguments.

    Returns:
        the report dict
    """
    spec, threshold, dirs = validate_args(args)

    from fiftyone_dedup import core
    from fiftyone_dedup import folders
    from fiftyone_dedup import report as report_mod

    if not args.verbose:
        # FiftyOne sets its own log level when imported
        logging.getLogger("fiftyone").setLevel(logging.WARNING)
    progress = False if args.quiet else True
    dataset, _ = folders.load_folders(
        dirs,
        name=args.dataset,
        data_dir=not args.no_data_dir,
        annotations=not args.no_annot,
        dataset_type=args.dataset_type,
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
        model=None if spec.is_hash else args.model,
        batch_size=None if spec.is_hash else args.batch_size,
        device=args.device,
        progress=progress,
    )
    rep = report_mod.build_report(dataset, results, spec.name, threshold, dirs=dirs)
    if args.report:
        folders.write_json(args.report, rep)
    print(f"\n{PROG}: done\n" + report_mod.summary_table(rep))
    if rep["failed"]:
        print(f"\n{len(rep['failed'])} image(s) could not be read:")
        for f in rep["failed"][:10]:
            print(f"  {f['path']}: {f['error']}")
        if len(rep["failed"]) > 10:
            print(f"  ... and {len(rep['failed']) - 10} more (see --report)")
    if args.report:
        print(f"\nReport: {os.path.abspath(args.report)}")
    print(f"Review in the App: fiftyone app launch '{dataset.name}'")
    return rep


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

        if isinstance(e, (FolderError, ValueError)):
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
