"""What a run writes and holds outside its datasets: the folders this tool
wrote (never scanned as data), the duplicates folder's rules, the run lock
and atomic JSON files.
"""

import json
import logging
import os

from fiftyone_dedup.engine.errors import FolderError
from fiftyone_dedup.options import ParameterError

logger = logging.getLogger(__name__)

#: the ``<title>`` of the gallery page :mod:`fiftyone_dedup.cli.gallery` writes
GALLERY_TITLE = b"<title>fiftyone-dedup: duplicates</title>"


def output_folder_kind(directory, names=None):
    """Whether a folder is one that this tool wrote, and which kind.

    Args:
        directory: a folder path
        names (None): the names of the files in it, if already listed

    Returns:
        ``"duplicates folder"`` (it holds a move manifest), ``"gallery"``
        (a page of duplicates written by the command line), or None
    """
    from fiftyone_dedup.moves import manifest as mf

    if names is None:
        try:
            names = os.listdir(directory)
        except OSError:
            return None
    if any(n.startswith(mf.PREFIX) and n.endswith(mf.SUFFIX) for n in names):
        return "duplicates folder"
    if "index.html" in names:
        try:
            with open(os.path.join(directory, "index.html"), "rb") as f:
                if GALLERY_TITLE in f.read(4096):
                    return "gallery"
        except OSError:
            pass
    return None


def enclosing_output_folder(folder, cache=None):
    """The duplicates folder a folder lies in (itself or an ancestor), if any.

    Args:
        folder: a folder path
        cache (None): a dict reused across calls (folder -> answer)

    Returns:
        the duplicates folder's path, or None
    """
    cache = {} if cache is None else cache
    folder = os.path.abspath(folder)
    seen = []
    found = None
    while True:
        if folder in cache:
            found = cache[folder]
            break
        seen.append(folder)
        if output_folder_kind(folder) == "duplicates folder":
            found = folder
            break
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    for f in seen:
        cache[f] = found
    return found


def check_duplicates_dir(duplicates_dir, dirs, images_dirs=None, writable=True):
    """Checks a duplicates folder against the dataset folders of a run,
    before any work.

    Args:
        duplicates_dir: the duplicates folder
        dirs: the absolute dataset folders
        images_dirs (None): the images folders of the labeled datasets
            among them (their annotation readers would see moved files)
        writable (True): whether the folder must be creatable and writable

    Returns:
        the absolute folder path

    Raises:
        ParameterError: naming ``duplicates_dir``
    """
    from fiftyone_dedup.moves import fileops

    def refuse(message):
        raise ParameterError("duplicates_dir", message)

    dup = os.path.abspath(os.path.expanduser(duplicates_dir or ""))
    if not duplicates_dir or not duplicates_dir.strip():
        refuse("duplicates_dir must not be empty")
    if os.path.lexists(dup) and not os.path.isdir(dup):
        refuse(f"duplicates_dir is not a folder: {dup}")
    for d in dirs:
        if fileops.is_inside(d, dup):
            refuse(
                f"duplicates_dir {dup} contains the dataset folder {d}; "
                "choose a folder outside it"
            )
    for images in images_dirs or ():
        if fileops.is_inside(dup, images):
            refuse(
                f"duplicates_dir {dup} is inside {images}, the images folder "
                f"of a labeled dataset; choose a folder outside it"
            )
    if writable:
        parent = dup
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.access(parent, os.W_OK | os.X_OK):
            refuse(f"duplicates_dir cannot be created or written: {parent} is read-only")
    return dup


def _lock_key(name):
    import fiftyone as fo

    # the same dataset name in another database is another dataset
    return f"{fo.config.database_uri or ''}|{fo.config.database_name}|{name}"


def run_lock(name):
    """The lock a command-line run holds on its dataset from start to end, so
    that a second run on the same dataset is refused instead of racing it.

    Args:
        name: the dataset name

    Returns:
        a :class:`fiftyone_dedup.moves.locks.FileLock`
    """
    from fiftyone_dedup.moves import locks

    return locks.FileLock(locks.keyed_lock_path("run", _lock_key(name)), f"dataset '{name}'")


def hold_run_lock(name):
    """Takes :func:`run_lock` or refuses.

    Args:
        name: the dataset name

    Returns:
        the held lock; release it with ``.release()``

    Raises:
        FolderError: naming the other run
    """
    from fiftyone_dedup.moves import locks

    lock = run_lock(name)
    try:
        return lock.acquire()
    except locks.LockError:
        try:
            with open(lock.path, encoding="utf-8", errors="replace") as f:
                holder = f.read(200).strip()
        except OSError:
            holder = ""
        raise FolderError(
            f"Another fiftyone-dedup run is working on dataset '{name}'"
            + (f" ({holder})" if holder else "")
            + "; wait for it to finish and run again"
        ) from None


def write_json(path, obj):
    """Writes JSON atomically (to a temporary file, then renamed).

    Args:
        path: the destination
        obj: a JSON-serializable object
    """
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
