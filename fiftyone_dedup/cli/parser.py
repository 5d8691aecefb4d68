"""The flags of ``fiftyone-dedup`` and its subcommands (those of
``remove_duplicates.py``, the script this grew from): the argument parsers,
and the error a bad argument raises.
"""

import argparse

PROG = "fiftyone-dedup"


class UsageError(Exception):
    """A bad argument: exit 2 with a one-line reason."""


class Parser(argparse.ArgumentParser):
    """An argument parser that raises :class:`UsageError` instead of exiting."""

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
    p.add_argument(
        "duplicates_dir", metavar="DUPLICATES_DIR", help="the duplicates folder of the moves"
    )
    p.add_argument(
        "--move_id", metavar="ID",
        help="undo only this move (default: every move not yet undone)",
    )
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


def build_demo_parser():
    """The argument parser of ``fiftyone-dedup demo``."""
    p = Parser(
        prog=f"{PROG} demo",
        description=(
            "Build a small COCO-labeled dataset with planted near-duplicates "
            "from photos that installed packages ship, and run the whole "
            "flow on it."
        ),
    )
    p.add_argument(
        "--dir", default="fiftyone_dedup_demo", metavar="DIR",
        help="where to write the demo dataset (default: ./fiftyone_dedup_demo)",
    )
    p.add_argument("--encoder", default="CNN", help="the encoder (default: CNN)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="more logging")
    return p


def flags():
    """Every flag of the command and its subcommands.

    Returns:
        a set such as ``{"-d", "--dirs", ...}``
    """
    found = set()
    for parser in (build_parser(), build_restore_parser()):
        for action in parser._actions:  # argparse keeps no public list
            found.update(action.option_strings)
    return found
