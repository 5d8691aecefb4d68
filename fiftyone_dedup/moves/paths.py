"""The duplicates folder and the places in it: where a move's manifest,
backups and files go.

Every path a move writes is derived here from the move id, the dataset
folder's name in the duplicates folder and the file's path in its dataset
folder, so that a reader can check a manifest's paths instead of trusting
them. Pure Python; no FiftyOne.
"""

import datetime
import os
import re
import secrets

#: the hidden folder in a duplicates folder holding locks and backups
STATE_DIR = ".fiftyone_dedup"

PREFIX = "manifest-"
SUFFIX = ".jsonl"

#: what a move id may be (it names files and folders)
MOVE_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


def new_move_id(now=None):
    """A new, sortable move id: ``<UTC time>-<random>``.

    Args:
        now (None): a ``datetime``; the current time by default

    Returns:
        a string
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


def manifest_path(duplicates_dir, move_id):
    """The manifest path of a move.

    Args:
        duplicates_dir: the duplicates folder
        move_id: the move id

    Returns:
        ``<duplicates_dir>/manifest-<move_id>.jsonl``
    """
    return os.path.join(duplicates_dir, manifest_name(move_id))


def manifest_name(move_id):
    """The file name of a move's manifest: ``manifest-<move_id>.jsonl``."""
    return f"{PREFIX}{move_id}{SUFFIX}"


def move_id_of(name):
    """The move id of a manifest file name, or None if it names none.

    Args:
        name: a file name

    Returns:
        a move id, or None
    """
    if not (name.startswith(PREFIX) and name.endswith(SUFFIX)):
        return None
    move_id = name[len(PREFIX):-len(SUFFIX)]
    return move_id if MOVE_ID.match(move_id) else None


def backup_dir(move_id):
    """A move's backup folder relative to the duplicates folder."""
    return f"{STATE_DIR}/{move_id}"


def annotation_backup(move_id, root, path):
    """Where an annotation file's original is kept (duplicates-relative)."""
    return f"{backup_dir(move_id)}/originals/{root}/{path}"


def samples_backup(move_id):
    """Where the moved samples' documents are kept (duplicates-relative)."""
    return f"{backup_dir(move_id)}/samples.jsonl"


def destination(move_id, root, kind, src, labels):
    """A file's destination relative to the duplicates folder.

    Images, and annotation files when labels are kept, go to
    ``<root.dest>/<src>``; dropped annotation files are kept for undo in
    the move's backup folder.

    Args:
        move_id: the move id
        root: its :class:`fiftyone_dedup.moves.model.Root`
        kind: ``"image"`` or ``"label"``
        src: its path relative to the root
        labels: ``"keep"`` or ``"drop"``

    Returns:
        a relative path
    """
    if kind == "label" and labels == "drop":
        return f"{backup_dir(move_id)}/dropped/{root.dest}/{src}"
    return f"{root.dest}/{src}"


def dest_name(root, taken, duplicates_dir):
    """The folder name of a dataset folder inside the duplicates folder:
    its own name, made unique (``name-2``, ...) and never hidden.

    Args:
        root: the dataset folder
        taken: the names already given
        duplicates_dir: the duplicates folder (existing names are taken)

    Returns:
        a plain folder name
    """
    base = os.path.basename(root.rstrip(os.sep)) or "root"
    if base.startswith("."):
        base = "_" + base[1:]
    name, k = base, 1
    while name in taken or os.path.lexists(os.path.join(duplicates_dir, name)):
        k += 1
        name = f"{base}-{k}"
    return name


def check_state_dir(duplicates_dir):
    """Checks that the hidden state folder, if there, is a real folder of
    the duplicates folder: locks and backups are written there.

    Raises:
        ValueError: if it is a symbolic link or not a folder
    """
    state = os.path.join(duplicates_dir, STATE_DIR)
    if os.path.islink(state) or (os.path.lexists(state) and not os.path.isdir(state)):
        raise ValueError(f"{state} is not a folder (a symbolic link?); remove it and try again")
