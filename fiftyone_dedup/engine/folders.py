"""Folders of images, labeled or not, as a persistent FiftyOne dataset.

The command line works on folders the way the script it grew from did: each
folder is a dataset whose images are in ``DIR/data`` (or directly in
``DIR`` with ``data_dir=False``), with annotations beside them in one of the
formats FiftyOne reads (or none, with ``annotations=False``). All folders of
a run go into one persistent FiftyOne dataset, each sample remembering its
folder in ``source_dir``; a later run on the same folders updates that
dataset in place (new files added, removed files dropped, labels re-read and
replaced), so stored encodings of unchanged files are reused.

What this tool writes is never scanned as data: duplicates folders (any
folder holding a move manifest, see :mod:`fiftyone_dedup.engine.outputs`),
galleries of duplicates and the folders passed in ``exclude``. A dataset
this module did not make from the same folders is never changed unless
``overwrite=True``.
"""

import hashlib
import logging
import os

import fiftyone as fo

from fiftyone_dedup.engine.outputs import enclosing_output_folder, output_folder_kind
from fiftyone_dedup.engine.errors import FolderError, FolderParameterError

logger = logging.getLogger(__name__)

#: file extensions scanned as images (case-insensitive)
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .bmp .gif .tif .tiff .webp .ppm .pgm .pbm "
    ".pnm .mpo .heic .heif .avif .dib .ico".split()
)

#: the sample field naming the folder a sample came from
SOURCE_FIELD = "source_dir"

#: the sample field holding the rank of the sample's folder in ``-d``
ORDER_FIELD = "source_order"

#: the label field annotations load into
LABEL_FIELD = "ground_truth"

#: the dataset ``info`` key recording the folders a dataset was made from
INFO_KEY = "fiftyone_dedup"

#: sample fields that every dataset has; never cleared before labels reload
_DEFAULT_FIELDS = frozenset(
    ("id", "filepath", "tags", "metadata", "created_at", "last_modified_at")
)

_MAGIC = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG",
    b"GIF8",
    b"BM",
    b"II*\x00",  # TIFF
    b"MM\x00*",
    b"RIFF",  # WebP (checked further below)
    b"\x00\x00\x00",  # ISO-BMFF (HEIC/AVIF), checked further below
    b"P1", b"P2", b"P3", b"P4", b"P5", b"P6",
)


def looks_like_image(path):
    """Whether a file without an image extension starts like an image.

    Args:
        path: a file path

    Returns:
        True/False
    """
    head = _head(path)
    if head is None:
        return False
    if head.startswith(b"RIFF"):
        return head[8:12] == b"WEBP"
    if head.startswith(b"\x00\x00\x00"):
        return head[4:8] == b"ftyp"
    return any(head.startswith(m) for m in _MAGIC)


def printable_path(path):
    """A path as text that can be printed and stored, even when its name is
    not valid UTF-8 (undecodable bytes become ``\\xNN``).

    Args:
        path: a path

    Returns:
        a string
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _utf8_ok(path):
    try:
        path.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def scan_images(directory, exclude=(), skipped=None, outputs=None):
    """Lists the image files under a folder, recursively, sorted.

    Files with an image extension are listed whether or not they decode (a
    corrupt one is then reported by the encoder); files without an extension
    are listed when their first bytes look like an image. Hidden files and
    folders are skipped, and so are the folders (and files) in ``exclude``
    (such as the duplicates folder) and every folder this tool wrote (see
    :func:`output_folder_kind`). Symlinked folders are not followed, so a
    link loop cannot trap the scan.

    Args:
        directory: the folder
        exclude (()): absolute folder paths not to descend into
        skipped (None): an optional list that receives ``{"path", "error"}``
            for image files that cannot be used at all (names that are not
            valid UTF-8, which FiftyOne cannot store)
        outputs (None): an optional list that receives the folders not
            scanned because this tool wrote them

    Returns:
        a sorted list of absolute paths
    """
    directory = os.path.abspath(directory)
    excluded = {os.path.realpath(e) for e in exclude}
    excluded_files = excluded | {os.path.abspath(e) for e in exclude}
    outputs = [] if outputs is None else outputs
    out = []

    def onerror(err):
        logger.warning("Cannot read folder %s: %s", err.filename, err.strerror)

    for root, dirs, files in os.walk(directory, onerror=onerror):
        if root != directory and output_folder_kind(root, dirs + files):
            outputs.append(root)
            dirs[:] = []
            continue
        keep = []
        for d in sorted(dirs):
            if d.startswith("."):
                continue
            if os.path.realpath(os.path.join(root, d)) in excluded:
                outputs.append(os.path.join(root, d))
                continue
            keep.append(d)
        dirs[:] = keep
        for name in files:
            if name.startswith("."):
                continue
            path = os.path.join(root, name)
            if path in excluded_files:
                continue
            ext = os.path.splitext(name)[1].lower()
            if ext in IMAGE_EXTENSIONS or (not ext and looks_like_image(path)):
                reason = _unusable_reason(path)
                if reason is None:
                    out.append(path)
                elif skipped is not None:
                    skipped.append({"path": printable_path(path), "error": reason})
    return sorted(out)


def _unusable_reason(path):
    # files FiftyOne cannot hold as image samples at all
    if not _utf8_ok(path):
        return (
            "file name is not valid UTF-8, which FiftyOne cannot store; "
            "rename the file"
        )
    import fiftyone.core.media as fom

    if fom.get_media_type(path) != fom.IMAGE:
        kind = _sniff_format(path)
        hint = f" (it looks like a {kind} image)" if kind else ""
        return (
            "FiftyOne needs a known image file extension to hold an image"
            f"{hint}; rename the file with its extension"
        )
    return None


def _head(path):
    """A file's first 16 bytes, or None when it is no regular readable file."""
    if not os.path.isfile(path):  # a FIFO or device is never opened
        return None
    try:
        with open(path, "rb") as f:
            return f.read(16)
    except OSError:
        return None


def _sniff_format(path):
    head = _head(path)
    if head is None:
        return None
    for magic, name in (
        (b"\xff\xd8\xff", "JPEG"), (b"\x89PNG", "PNG"), (b"GIF8", "GIF"),
        (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
    ):
        if head.startswith(magic):
            return name
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WebP"
    return None


def images_dir(directory, data_dir=True):
    """The folder holding a dataset's images.

    Args:
        directory: the dataset folder
        data_dir (True): whether images are in ``directory/data`` (YOLOv5
            datasets, which have ``dataset.yaml`` and ``images/<split>/``
            instead, use ``directory/images``)

    Returns:
        the images folder
    """
    if not data_dir:
        return directory
    data = os.path.join(directory, "data")
    yolo = os.path.join(directory, "images")
    if (
        not os.path.isdir(data)
        and os.path.isfile(os.path.join(directory, "dataset.yaml"))
        and os.path.isdir(yolo)
    ):
        return yolo
    return data


def check_dirs(dirs, data_dir=True):
    """Checks that dataset folders exist and can be read.

    Args:
        dirs: folder paths
        data_dir (True): whether each must have a ``data`` subfolder

    Returns:
        the absolute, normalised paths

    Raises:
        FolderError: naming the first bad folder
    """
    out = []
    for d in dirs:
        path = os.path.abspath(os.path.expanduser(d))
        if not os.path.exists(path):
            raise FolderError(f"Folder not found: {path}")
        if not os.path.isdir(path):
            raise FolderError(f"Not a folder: {path}")
        if not os.access(path, os.R_OK | os.X_OK):
            raise FolderError(f"Folder cannot be read (permission denied): {path}")
        if data_dir:
            data = images_dir(path, True)
            if not os.path.isdir(data):
                raise FolderParameterError(
                    "data_dir",
                    f"No 'data' folder in {path}: expected the images in "
                    f"{data} (pass data_dir=False if they are directly in the "
                    "folder)",
                )
        if path in out:
            raise FolderError(f"Folder given twice: {path}")
        dup = enclosing_output_folder(path)
        if dup is not None:
            raise FolderError(
                f"Folder {path} is inside {dup}, a duplicates folder of an "
                "earlier move (it holds move manifests), which is never "
                f"scanned as a dataset; undo the move with 'fiftyone-dedup "
                f"restore {dup}' or choose another folder"
            )
        out.append(path)
    for a in out:
        for b in out:
            if a != b and b.startswith(a + os.sep):
                raise FolderError(f"Folder {b} is inside folder {a}")
    return out


def default_dataset_name(dirs):
    """A dataset name that is stable for the same folders.

    Args:
        dirs: absolute folder paths

    Returns:
        ``"fiftyone-dedup-<names>-<hash>"``
    """
    digest = hashlib.sha1("\n".join(sorted(dirs)).encode()).hexdigest()[:8]
    names = "+".join(os.path.basename(d.rstrip(os.sep)) or "root" for d in dirs)
    if len(names) > 60:
        names = names[:60]
    return f"fiftyone-dedup-{names}-{digest}"


def dataset_not_ours(name, dirs):
    """Why an existing dataset may not be changed by a run on some folders.

    Only a dataset that :func:`load_folders` made from the same folders (in
    any order) may be changed without ``overwrite``.

    Args:
        name: the dataset name
        dirs: the absolute folder paths of the run

    Returns:
        a reason naming the dataset, or None when it does not exist or is ours
    """
    if not fo.dataset_exists(name):
        return None
    dataset = fo.load_dataset(name)
    mine = (dataset.info or {}).get(INFO_KEY)
    if isinstance(mine, dict) and sorted(mine.get("dirs") or []) == sorted(dirs):
        return None
    n = dataset.count()
    if isinstance(mine, dict) and mine.get("dirs"):
        made = "was made by fiftyone-dedup from other folders (" + ", ".join(mine["dirs"]) + ")"
    else:
        made = "was not made by fiftyone-dedup from these folders"
    return f"Dataset '{name}' ({n} sample(s)) {made}"


def load_folders(
    dirs,
    name=None,
    data_dir=True,
    annotations=True,
    dataset_type=None,
    exclude=(),
    overwrite=False,
    progress=None,
):
    """Loads (or updates) a persistent dataset with the images of folders.

    A rerun on the same folders updates the dataset it made: new files are
    added, removed ones dropped, and labels replaced by what the
    annotations say now. An existing dataset made otherwise (by hand, or
    from other folders) is refused unless ``overwrite``.

    Args:
        dirs: the dataset folders
        name (None): the dataset name; defaults to
            :func:`default_dataset_name`
        data_dir (True): whether images are in ``DIR/data``
        annotations (True): whether folders have annotations to load
        dataset_type (None): the annotation format name (see
            :mod:`fiftyone_dedup.engine.layouts`); detected when omitted
        exclude (()): folders (and files) never scanned (such as the
            duplicates folder)
        overwrite (False): delete an existing dataset of that name that
            was not made from these folders, and make it anew
        progress (None): FiftyOne's ``progress`` argument

    Returns:
        a tuple ``(dataset, layouts, skipped)``: the dataset; per folder, the
        detected layout name or ``None``; and ``{"path", "error"}`` dicts for
        image files that could not be added at all

    Raises:
        FolderError: if a folder is unusable or matches no layout, or the
            dataset exists and was not made from these folders
    """
    from fiftyone_dedup.engine import layouts as lay

    dirs = check_dirs(dirs, data_dir=data_dir)
    name = name or default_dataset_name(dirs)
    reason = dataset_not_ours(name, dirs)
    if reason and not overwrite:
        raise FolderError(f"{reason}; it is left as it is (overwrite=True replaces it)")

    plans, skipped, outputs = [], [], []
    for d in dirs:
        layout = None
        if annotations:
            layout = lay.resolve_layout(d, data_dir=data_dir, dataset_type=dataset_type)
        files = scan_images(
            images_dir(d, data_dir), exclude=exclude, skipped=skipped, outputs=outputs
        )
        plans.append((d, layout, files))
    if outputs:
        logger.info(
            "Not scanned: %d folder(s) that fiftyone-dedup wrote (duplicates "
            "folders, galleries): %s%s",
            len(outputs), ", ".join(outputs[:3]), ", ..." if len(outputs) > 3 else "",
        )

    if reason:
        logger.warning("%s; overwriting it", reason)
        fo.load_dataset(name).delete()
    dataset = _open_dataset(name, dirs, data_dir)
    if not dataset.has_sample_field(SOURCE_FIELD):
        dataset.add_sample_field(SOURCE_FIELD, fo.StringField)
    dataset.create_index("filepath", unique=True)
    before = set(dataset.values("filepath"))

    wanted = {}
    for d, layout, files in plans:
        for path in files:
            wanted[path] = d
        if layout is not None:
            labeled = lay.import_labels(d, layout, data_dir=data_dir, progress=progress)
            for path in labeled.values("filepath"):
                wanted.setdefault(path, d)
            _clear_labels(dataset, labeled, d)
            labeled.create_index("filepath", unique=True)
            dataset.merge_samples(
                labeled, key_field="filepath", insert_new=True, progress=progress
            )
            labeled.delete()

    existing = dict(zip(*dataset.values(["filepath", "id"])))
    gone = [sid for path, sid in existing.items() if path not in wanted]
    if gone:
        dataset.delete_samples(gone)
    missing = [p for p in wanted if p not in existing]
    if missing:
        dataset.add_samples(
            [fo.Sample(filepath=p) for p in missing], progress=progress
        )
    new = [p for p in wanted if p not in before]
    ids, paths = dataset.values(["id", "filepath"])
    dataset.set_values(
        SOURCE_FIELD, {i: wanted.get(p) for i, p in zip(ids, paths)}, key_field="id"
    )
    info = dict(dataset.info or {})
    info[INFO_KEY] = {
        "dirs": dirs,
        "data_dir": data_dir,
        "layouts": {d: (layout.name if layout else None) for d, layout, _ in plans},
    }
    dataset.info = info
    dataset.save()
    logger.info(
        "Dataset '%s': %d sample(s) (%d new, %d removed)",
        name, dataset.count("id"), len(new), len(gone),
    )
    return (
        dataset,
        {d: (layout.name if layout else None) for d, layout, _ in plans},
        skipped,
    )


def folder_order_view(dataset, dirs):
    """The dataset's samples in folder order (as given), then by file path:
    the order the ``"first"`` keep policy follows.

    Args:
        dataset: a dataset from :func:`load_folders`
        dirs: the folders, in the order given

    Returns:
        a ``DatasetView``
    """
    rank = {d: i for i, d in enumerate(dirs)}
    ids, sources = dataset.values(["id", SOURCE_FIELD])
    if not dataset.has_sample_field(ORDER_FIELD):
        dataset.add_sample_field(ORDER_FIELD, fo.IntField)
    dataset.set_values(
        ORDER_FIELD,
        {i: rank.get(s, len(rank)) for i, s in zip(ids, sources)},
        key_field="id",
    )
    return dataset.sort_by([(ORDER_FIELD, 1), ("filepath", 1)])


def _clear_labels(dataset, labeled, directory):
    """Empties, on the samples of a folder already in the dataset, the fields
    its annotations load into: merging would add a second copy of every
    label (new ids each import), and keep labels the files no longer have."""
    from fiftyone import ViewField as F

    fields = [
        f for f in labeled.get_field_schema()
        if f not in _DEFAULT_FIELDS and dataset.has_sample_field(f)
    ]
    if not fields:
        return
    view = dataset.match(F("filepath").starts_with(directory.rstrip(os.sep) + os.sep))
    for f in fields:
        view.clear_sample_field(f)


def _new_dataset(name, dirs, data_dir):
    dataset = fo.Dataset(name, persistent=True)
    # marked as ours from the start, so that a rerun after a crash may update it
    dataset.info = {INFO_KEY: {"dirs": list(dirs), "data_dir": data_dir}}
    dataset.save()
    return dataset


def _open_dataset(name, dirs, data_dir):
    if not fo.dataset_exists(name):
        return _new_dataset(name, dirs, data_dir)
    dataset = fo.load_dataset(name)
    if dataset.media_type not in (None, "image"):
        raise FolderParameterError(
            "name",
            f"Dataset '{name}' exists and does not hold images; choose "
            "another dataset name",
        )
    if dataset.media_type is None and dataset.count("id") > 0:
        # an interrupted run added samples but not the dataset's media type;
        # it holds only what the folders give again, so rebuild it
        logger.warning(
            "Dataset '%s' was left incomplete by an interrupted run; rebuilding it",
            name,
        )
        dataset.delete()
        return _new_dataset(name, dirs, data_dir)
    return dataset
