"""Locks that keep two moves or restores from working on the same
duplicates folder, dataset or dataset folder at once.

Each lock is an ``fcntl.flock`` on a small file. The operating system
releases it when its process ends, however it ends (``kill -9`` included),
so a crashed run never leaves a stale lock behind. Locks are per machine:
runs on two machines sharing a network folder are not kept apart.
"""

import contextlib
import datetime
import errno
import fcntl
import hashlib
import logging
import os
import socket
import stat
import tempfile

from fiftyone_dedup.moves.paths import STATE_DIR

logger = logging.getLogger(__name__)


class LockError(RuntimeError):
    """Another run holds the lock; the message names it."""


def locks_dir():
    """The folder of the per-dataset and per-folder lock files.

    Returns:
        ``<tempdir>/fiftyone_dedup-locks-<uid>``
    """
    uid = os.getuid() if hasattr(os, "getuid") else None
    path = os.path.join(tempfile.gettempdir(), f"fiftyone_dedup-locks-{uid}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    # a shared temporary folder: refuse one that another user planted
    if (
        stat.S_ISLNK(st.st_mode)
        or not stat.S_ISDIR(st.st_mode)
        or (uid is not None and st.st_uid != uid)
    ):
        raise LockError(f"The lock folder {path} is not a folder of this user; remove it")
    return path


def keyed_lock_path(kind, key):
    """The lock file of a dataset or folder.

    Args:
        kind: ``"dataset"`` or ``"folder"``
        key: the dataset id or the folder's real path

    Returns:
        a path in :func:`locks_dir`
    """
    digest = hashlib.sha1(str(key).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return os.path.join(locks_dir(), f"{kind}-{digest}.lock")


class FileLock:
    """An exclusive, non-blocking lock on a file.

    Args:
        path: the lock file (created if missing)
        what: what it protects, for the message (``"duplicates folder X"``)
    """

    def __init__(self, path, what):
        self.path = path
        self.what = what
        self._fd = None

    def acquire(self):
        """Takes the lock.

        Raises:
            LockError: if another run holds it, naming that run, or the
                lock file cannot be used (a symbolic link, unwritable)
        """
        # never through a symbolic link: the file is truncated below
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            raise LockError(
                f"Cannot use the lock file {self.path} of {self.what}: "
                f"{e.strerror} (it must be a plain file; remove it)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_holder(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockError(
                    f"Another fiftyone-dedup move or restore is working on "
                    f"{self.what}{holder}; wait for it to finish and try "
                    f"again (lock: {self.path})"
                ) from None
            raise
        now = datetime.datetime.now().isoformat(timespec="seconds")
        info = f"pid {os.getpid()} on {socket.gethostname()} since {now}\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        self._fd = fd
        return self

    def release(self):
        """Releases the lock (the file stays)."""
        if self._fd is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *args):
        self.release()


def _read_holder(fd):
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""
    return f" ({text})" if text else ""


@contextlib.contextmanager
def hold(locks):
    """Takes several locks in order, releasing all on exit or failure.

    Args:
        locks: :class:`FileLock` objects

    Yields:
        the locks
    """
    taken = []
    try:
        for lock in locks:
            lock.acquire()
            taken.append(lock)
        yield taken
    finally:
        for lock in reversed(taken):
            lock.release()


def duplicates_dir_lock(duplicates_dir):
    """The lock of a duplicates folder (a file in its state folder).

    Args:
        duplicates_dir: the duplicates folder

    Returns:
        a :class:`FileLock`
    """
    return FileLock(
        os.path.join(duplicates_dir, STATE_DIR, "lock"), f"the duplicates folder {duplicates_dir}"
    )


def dataset_lock(dataset):
    """The lock of a FiftyOne dataset (by its id).

    Args:
        dataset: the dataset

    Returns:
        a :class:`FileLock`
    """
    return FileLock(keyed_lock_path("dataset", dataset._doc.id), f"dataset '{dataset.name}'")


def folder_lock(path):
    """The lock of a dataset folder (by its real path).

    Args:
        path: the folder

    Returns:
        a :class:`FileLock`
    """
    return FileLock(keyed_lock_path("folder", os.path.realpath(path)), f"the folder {path}")
