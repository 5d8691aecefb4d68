"""The checks of the main command's arguments, made before anything is
imported or changed: a bad one raises :class:`UsageError` with a one-line
reason.
"""

import os

from fiftyone_dedup.cli.flags import user_text
from fiftyone_dedup.cli.parser import PROG, UsageError
from fiftyone_dedup.engine.errors import FolderError


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
            args.encodings, spec, model=model_name(spec, args),
            path=", ".join(args.encodings_in),
        )
    except encodings_io.EncodingsFileError as e:
        raise UsageError(f"--encodings_in: {user_text(e)}") from None


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


def priority_dirs(args):
    """The absolute ``--priority`` folders, or None."""
    if not args.priority:
        return None
    base = os.path.expanduser(args.root) if args.root else ""
    return [
        os.path.abspath(os.path.join(base, os.path.expanduser(d))) for d in args.priority
    ]


def _check_model_args(spec, args):
    if not spec.uses_model:
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
    from fiftyone_dedup.engine import keep

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
        _check_guard(spec, threshold, args.guard_threshold)
    if args.priority and args.keep == "first":
        args.keep = "priority"
    try:
        keep.validate_keep(args.keep, priority_dirs(args))
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
    except FolderError as e:
        raise UsageError(user_text(e)) from None
    _check_encodings(args, spec)
    _check_outputs(args, dirs)
    _check_priority(args, dirs)
    if args.dataset is not None and not args.dataset.strip():
        raise UsageError("--dataset must not be empty")
    _check_duplicates_dir(args, dirs)
    return spec, threshold, dirs


def _check_guard(spec, threshold, guard_threshold):
    """The engine's rule: the guard may not be looser than the threshold."""
    from fiftyone_dedup import options

    opts = options.FindOptions(
        threshold=threshold, guard_threshold=guard_threshold,
        encode=options.EncodeOptions(encoder=spec),
    )
    try:
        opts.validated()
    except options.ParameterError as e:
        raise UsageError(user_text(e, also=("threshold",))) from None


def _check_outputs(args, dirs):
    """Refuses output paths that would overwrite a file this tool did not
    write or any file in a dataset folder (-d), or put a histogram PNG where
    the next run would take it for an image."""
    from fiftyone_dedup.cli import report as report_mod
    from fiftyone_dedup.engine import encodings_io
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
    for p in priority_dirs(args) or []:
        if not os.path.isdir(p):
            raise UsageError(f"--priority folder not found: {p}")
        if dirs and not any(_is_inside(p, d) or _is_inside(d, p) for d in dirs):
            raise UsageError(
                f"--priority folder {p} is neither inside nor above any of the "
                f"--dirs ({', '.join(dirs)}), so it matches no image"
            )


def check_keep_field(args, dataset, made_now):
    """--keep max:FIELD / min:FIELD names a numeric field of the dataset; a
    dataset made just now for the run is removed again."""
    from fiftyone_dedup.engine import keep

    try:
        keep.check_field(dataset, args.keep)
    except ValueError as e:
        if made_now:
            dataset.delete()
        raise UsageError(f"--keep: {e}") from None


def _check_duplicates_dir(args, dirs):
    from fiftyone_dedup.engine import folders
    from fiftyone_dedup.engine import outputs
    from fiftyone_dedup.options import ParameterError

    # the annotation readers of labeled datasets would see moved files
    labeled = [] if args.no_annot else [
        folders.images_dir(d, not args.no_data_dir) for d in dirs
    ]
    try:
        args.duplicates_dir = outputs.check_duplicates_dir(
            args.duplicates_dir, dirs, images_dirs=labeled,
            writable=not args.dry_run and not args.encodings_only,
        )
    except ParameterError as e:
        raise UsageError(user_text(e)) from None


def model_name(spec, args):
    """The CNN model's recorded name, or None for hashes."""
    if not spec.uses_model:
        return None
    from fiftyone_dedup.algorithms import models

    return models.model_name(args.model)
