"""Safe file operations for moving users' files: checksums, no-clobber moves
that survive a kill at any point, atomic writes, and path containment.

Pure Python (no FiftyOne). Every function either completes or leaves the
file where it was: a move never overwrites an existing file, a copy to
another file system is verified before the source is removed, and a
rewritten file is replaced atomically.
"""

import ctypes
import errno
import hashlib
import logging
import os
import re
import shutil

logger = logging.getLogger(__name__)

#: suffix of the temporary names used while copying or writing
TEMP_MARK = ".fiftyone_dedup-part"

_CHUNK = 1 << 20
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

AT_FDCWD = -100
RENAME_NOREPLACE = 1

try:  # Linux: renameat2(RENAME_NOREPLACE) renames atomically without clobbering
    _LIBC = ctypes.CDLL(None, use_errno=True)
    _RENAMEAT2 = getattr(_LIBC, "renameat2", None)
    if _RENAMEAT2 is not None:
        _RENAMEAT2.argtypes = [
            ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint,
        ]
        _RENAMEAT2.restype = ctypes.c_int
except OSError:  # pragma: no cover - no libc to load
    _RENAMEAT2 = None


class FileChangedError(OSError):
    """A file's content is not what was recorded (changed or replaced)."""


class UnsafePathError(ValueError):
    """A path would lead outside the folder it must stay in."""


def is_sha256(value):
    """Whether ``value`` is a lowercase hex SHA-256 digest.

    Args:
        value: anything

    Returns:
        True/False
    """
    return isinstance(value, str) and bool(_HEX64.match(value))


def sha256_file(path):
    """The SHA-256 of a file's content.

    Args:
        path: a file path

    Returns:
        the hex digest
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data):
    """The SHA-256 of bytes, as hex."""
    return hashlib.sha256(data).hexdigest()


def fsync_dir(path):
    """Flushes a folder's entries (new, renamed, removed names) to disk.

    Args:
        path: a folder
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def rename_noreplace(src, dst):
    """Renames ``src`` to ``dst`` atomically, failing if ``dst`` exists.

    Uses ``renameat2(RENAME_NOREPLACE)`` where the kernel and file system
    offer it; elsewhere checks then renames (safe under this package's
    locks, not against another program creating ``dst`` at that instant).

    Args:
        src: the existing path
        dst: the new path

    Raises:
        FileExistsError: if ``dst`` exists
        OSError: ``EXDEV`` if the paths are on different file systems, or
            any other reason the rename failed
    """
    if _RENAMEAT2 is not None:
        ret = _RENAMEAT2(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst), RENAME_NOREPLACE)
        if ret == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            if err == errno.EEXIST:
                raise FileExistsError(err, os.strerror(err), dst)
            raise OSError(err, os.strerror(err), src, None, dst)
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst)
    os.rename(src, dst)


def temp_path(path):
    """The temporary name used while ``path`` is being written.

    Args:
        path: the final path

    Returns:
        a hidden name in the same folder
    """
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}{TEMP_MARK}")


def _copy_and_hash(src, tmp):
    h = hashlib.sha256()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
            for chunk in iter(lambda: fin.read(_CHUNK), b""):
                h.update(chunk)
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
            # read the copy back from the disk, not from the page cache
            try:
                os.posix_fadvise(fout.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            except (AttributeError, OSError):
                pass
    except BaseException:
        _remove_quietly(tmp)
        raise
    return h.hexdigest()


def _remove_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def copy_verified(src, dst, sha256):
    """Copies a file to ``dst`` (never overwriting), checking its checksum.

    The copy is written under a temporary name beside ``dst``, flushed,
    read back and compared with ``sha256``, given the source's mode and
    times, then renamed into place. The source is left untouched.

    Args:
        src: the file to copy
        dst: the destination path (must not exist)
        sha256: the expected checksum of the source

    Raises:
        FileChangedError: if the source's content is not ``sha256`` (the
            partial copy is removed)
        FileExistsError: if ``dst`` exists
        OSError: on any write error, such as ``ENOSPC`` (the partial copy
            is removed)
    """
    tmp = temp_path(dst)
    _remove_quietly(tmp)  # left over from an interrupted run
    got = _copy_and_hash(src, tmp)
    try:
        if got != sha256:
            raise FileChangedError(
                errno.EIO, f"content changed (checksum {got[:12]}, expected {sha256[:12]})", src
            )
        back = sha256_file(tmp)
        if back != sha256:
            raise FileChangedError(
                errno.EIO, f"the copy does not read back identical (checksum {back[:12]})", dst
            )
        shutil.copystat(src, tmp, follow_symlinks=False)
        rename_noreplace(tmp, dst)
    except BaseException:
        _remove_quietly(tmp)
        raise
    fsync_dir(os.path.dirname(dst))


def move_file(src, dst, sha256):
    """Moves a file, never overwriting and never losing it.

    On one file system the move is one atomic no-clobber rename. Across
    file systems the file is copied beside ``dst``, verified against
    ``sha256``, renamed into place, and only then is the source removed: a
    kill at any point leaves at least one complete copy under its own name.

    Args:
        src: the file to move (a regular file)
        dst: the destination path (must not exist; its folder must)
        sha256: the checksum the file must have (checked on copies)

    Returns:
        ``"renamed"`` or ``"copied"``

    Raises:
        FileExistsError: if ``dst`` exists
        FileChangedError: if a copied file's content is not ``sha256``
        OSError: for any other failure; the source is then still in place
    """
    try:
        rename_noreplace(src, dst)
        return "renamed"
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
    copy_verified(src, dst, sha256)
    try:
        os.unlink(src)
    except OSError:
        # the source cannot be removed: take the copy back, leave the source
        _remove_quietly(dst)
        raise
    fsync_dir(os.path.dirname(src))
    return "copied"


def atomic_write(path, data, replace=True):
    """Writes bytes to a file atomically: a temporary file, flushed, then
    renamed over (or, with ``replace=False``, beside) ``path``.

    Args:
        path: the destination
        data: the bytes
        replace (True): replace an existing file; if False an existing
            file raises ``FileExistsError``

    Raises:
        OSError: on failure; ``path`` is then unchanged
    """
    tmp = temp_path(path)
    _remove_quietly(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            if os.path.exists(path):
                shutil.copymode(path, tmp)
            os.replace(tmp, path)
        else:
            rename_noreplace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    fsync_dir(os.path.dirname(path) or ".")


def read_bytes(path):
    """Reads a whole file.

    Args:
        path: a file path

    Returns:
        bytes
    """
    with open(path, "rb") as f:
        return f.read()


def remove_temp_files(folder, names):
    """Removes the temporary files of interrupted writes of ``names``.

    Args:
        folder: the folder
        names: file names whose :func:`temp_path` to remove
    """
    for name in names:
        _remove_quietly(temp_path(os.path.join(folder, name)))


# ------------------------------------------------------------------ paths


def check_relpath(rel, what="path"):
    """Checks that a path from a manifest or annotation file is a plain
    relative path that stays inside the folder it is joined to.

    Args:
        rel: the path (``/``-separated)
        what ("path"): what it is, for the message

    Returns:
        the path

    Raises:
        UnsafePathError: if it is empty, absolute, has ``.``, ``..`` or
            empty components, or a NUL
    """
    if not isinstance(rel, str) or not rel:
        raise UnsafePathError(f"{what} must be a non-empty relative path, got {rel!r}")
    if "\x00" in rel:
        raise UnsafePathError(f"{what} {rel!r} contains a NUL character")
    if rel.startswith("/"):
        raise UnsafePathError(f"{what} {rel!r} is absolute; expected a relative path")
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UnsafePathError(
            f"{what} {rel!r} has an empty, '.' or '..' component"
        )
    return rel


def is_inside(path, folder):
    """Whether ``path`` is ``folder`` or inside it, symbolic links resolved.

    Args:
        path: a path (need not exist)
        folder: a folder

    Returns:
        True/False
    """
    real = os.path.realpath(path)
    base = os.path.realpath(folder)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def join_inside(folder, rel, what="path"):
    """Joins a checked relative path to a folder and makes sure the result
    (with its folders' symbolic links resolved) stays inside the folder.

    The last component itself is not resolved, so that a symbolic link
    there is seen (and refused) by the caller rather than followed.

    Args:
        folder: the folder
        rel: a relative path (see :func:`check_relpath`)
        what ("path"): what it is, for messages

    Returns:
        the joined path

    Raises:
        UnsafePathError: if it leads outside ``folder``
    """
    check_relpath(rel, what)
    path = os.path.join(folder, *rel.split("/"))
    parent = os.path.dirname(path)
    if not is_inside(parent, folder):
        raise UnsafePathError(
            f"{what} {rel!r} leads outside {folder} (through a symbolic link)"
        )
    return path


def makedirs_inside(folder, path):
    """Creates the folders of ``path`` below ``folder``, refusing to create
    or follow anything that leads outside it.

    Args:
        folder: the folder that must contain ``path``
        path: a folder path inside it

    Raises:
        UnsafePathError: if ``path`` (or a symbolic link on the way) leads
            outside ``folder``
    """
    base = os.path.realpath(folder)
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(folder))
    if rel == ".":
        return
    if rel.startswith(".."):
        raise UnsafePathError(f"{path} is outside {folder}")
    current = os.path.abspath(folder)
    for part in rel.split(os.sep):
        current = os.path.join(current, part)
        if not os.path.lexists(current):
            try:
                os.mkdir(current)
            except FileExistsError:
                pass
        if not is_inside(current, base):
            raise UnsafePathError(
                f"{current} leads outside {folder} (through a symbolic link)"
            )
        if not os.path.isdir(current):
            raise UnsafePathError(f"{current} is not a folder")


def relpath_under(path, folder):
    """``path`` relative to ``folder`` as a ``/``-separated path, if it is
    lexically inside it.

    Args:
        path: an absolute path
        folder: an absolute folder

    Returns:
        the relative path, or None if ``path`` is not below ``folder``
    """
    path = os.path.normpath(os.path.abspath(path))
    folder = os.path.normpath(os.path.abspath(folder))
    if not path.startswith(folder.rstrip(os.sep) + os.sep):
        return None
    rel = os.path.relpath(path, folder)
    return rel.replace(os.sep, "/")


def same_filesystem(a, b):
    """Whether two existing paths are on the same file system.

    Args:
        a: a path
        b: a path

    Returns:
        True/False
    """
    return os.stat(a).st_dev == os.stat(b).st_dev


def remove_empty_dirs(top, stop):
    """Removes empty folders from ``top`` upwards, never ``stop`` or above,
    and never a folder that holds anything.

    Args:
        top: the deepest folder to try
        stop: the folder where to stop
    """
    top = os.path.abspath(top)
    stop = os.path.abspath(stop)
    while top != stop and top.startswith(stop.rstrip(os.sep) + os.sep):
        try:
            os.rmdir(top)
        except OSError:
            return
        top = os.path.dirname(top)


def prune_empty_tree(folder):
    """Removes ``folder`` and its subfolders if they hold no files.

    Args:
        folder: the folder

    Returns:
        True if it was removed
    """
    if os.path.islink(folder) or not os.path.isdir(folder):
        return False
    for root, dirs, _ in os.walk(folder, topdown=False):
        for d in dirs:
            p = os.path.join(root, d)
            if not os.path.islink(p):
                try:
                    os.rmdir(p)
                except OSError:
                    pass
    try:
        os.rmdir(folder)
        return True
    except OSError:
        return False


def free_bytes(path):
    """The free space of the file system holding ``path``, in bytes."""
    return shutil.disk_usage(path).free
