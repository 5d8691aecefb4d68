"""The manifest files of a duplicates folder: listing, reading and
appending to them.

Each move writes ``<duplicates_dir>/manifest-<move_id>.jsonl``, a journal
of JSON lines whose records :mod:`fiftyone_dedup.moves.journal` builds and
checks. A torn last line (a kill mid-write) is ignored when reading and cut
when the journal is reopened. Pure Python; no FiftyOne.
"""

import json
import logging
import os

from fiftyone_dedup.moves import fileops
from fiftyone_dedup.moves import paths
from fiftyone_dedup.moves.journal import aborted_record, apply_record, read_header
from fiftyone_dedup.moves.model import ManifestError
from fiftyone_dedup.moves.paths import PREFIX, STATE_DIR, SUFFIX

logger = logging.getLogger(__name__)

# the names other packages read here (the folder sniffing of
# engine.folders, the command line's move ids, its error handling)
__all__ = [
    "PREFIX", "SUFFIX", "STATE_DIR", "ManifestError", "Journal", "abort_plan", "list_manifests",
    "parse_manifest", "read_all", "read_manifest", "state_of",
]

_MAX_LINE = 1 << 24


def list_manifests(duplicates_dir):
    """The manifests in a duplicates folder, oldest first.

    Symbolic links are ignored (a manifest is written to, so it must be a
    file of the folder itself).

    Args:
        duplicates_dir: the folder

    Returns:
        a list of paths
    """
    try:
        names = os.listdir(duplicates_dir)
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for name in sorted(names):
        if paths.move_id_of(name) is None:
            continue
        path = os.path.join(duplicates_dir, name)
        if os.path.islink(path) or not os.path.isfile(path):
            logger.warning("Ignoring %s: not a regular file", path)
            continue
        out.append(path)
    return out


def read_manifest(path):
    """Reads and checks a manifest file.

    Args:
        path: the manifest path

    Returns:
        a :class:`fiftyone_dedup.moves.model.Manifest`

    Raises:
        ManifestError: if the file cannot be read or has no valid header
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ManifestError(f"Cannot read manifest {path}: {e.strerror or e}") from None
    return parse_manifest(data, path)


def parse_manifest(data, path="<manifest>"):
    """Parses and checks manifest bytes.

    Never raises anything but :class:`ManifestError`, whatever the bytes.

    Args:
        data: the file's bytes
        path ("<manifest>"): its name, for messages

    Returns:
        a :class:`fiftyone_dedup.moves.model.Manifest`; records that fail a
        check are listed in its ``problems`` and otherwise ignored

    Raises:
        ManifestError: if there is no valid header
    """
    if not isinstance(data, (bytes, bytearray)):
        raise ManifestError(f"Manifest {path}: expected bytes")
    lines = bytes(data).split(b"\n")
    torn = lines[-1] != b""
    lines = lines[:-1]  # the last piece is either empty or a torn write
    if not lines:
        raise ManifestError(f"Manifest {path} is empty or has no complete line")
    header = _load_line(lines[0])
    if not isinstance(header, dict):
        raise ManifestError(f"Manifest {path}: line 1 is not a JSON object")
    try:
        m = read_header(header, path)
    except (ValueError, TypeError, KeyError) as e:
        raise ManifestError(f"Manifest {path}: bad header: {e}") from None
    m.torn_tail = torn
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        record = _load_line(line)
        if not isinstance(record, dict):
            m.problems.append(f"line {i}: not a JSON object")
            continue
        try:
            apply_record(m, record, i)
        except (ValueError, TypeError, KeyError, IndexError) as e:
            m.problems.append(f"line {i}: {e}")
    if m.problems:  # the callers report them (once)
        logger.debug(
            "Manifest %s: %d record(s) ignored; first: %s",
            path, len(m.problems), m.problems[0],
        )
    return m


def _load_line(line):
    if len(line) > _MAX_LINE:
        return None
    try:
        return json.loads(line.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def read_all(duplicates_dir):
    """Every readable manifest of a duplicates folder, oldest first.

    Args:
        duplicates_dir: the folder

    Returns:
        a list of :class:`fiftyone_dedup.moves.model.Manifest`
    """
    out = []
    for path in list_manifests(duplicates_dir):
        try:
            out.append(read_manifest(path))
        except ManifestError:
            pass
    return out


def state_of(path):
    """The state of the move of a manifest file (see
    :attr:`fiftyone_dedup.moves.model.Manifest.state`), or None if it
    cannot be read."""
    try:
        return read_manifest(path).state
    except ManifestError:
        return None


def abort_plan(m, dup):
    """Gives up a plan that a kill interrupted (nothing was moved): journals
    it aborted and removes the empty folders it made.

    Args:
        m: the :class:`fiftyone_dedup.moves.model.Manifest`, in state
            ``"planning"``
        dup: the duplicates folder
    """
    with Journal(m.path) as journal:
        journal.append(aborted_record("interrupted while planning; nothing was moved"), sync=True)
    for r in m.roots:
        fileops.prune_empty_tree(os.path.join(dup, r.dest))


class Journal:
    """Appends records to a manifest, one JSON line each.

    A new journal is created exclusively (an existing file is never
    overwritten). Reopening one cuts a torn last line first, so that a
    record written after a crash starts on a line of its own. A failed
    write is cut back too, so a full disk never leaves half a record in the
    middle of the file.

    Args:
        path: the manifest path
        create (False): create a new file (which must not exist)
    """

    def __init__(self, path, create=False):
        self.path = path
        flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW
        if create:
            self._fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644)
            fileops.fsync_dir(os.path.dirname(os.path.abspath(path)))
        else:
            self._fd = os.open(path, flags)
            self._cut_torn_tail()

    def _cut_torn_tail(self):
        size = os.fstat(self._fd).st_size
        if size == 0:
            return
        with open(self.path, "rb") as f:
            pos = size
            step = 4096
            while pos > 0:
                start = max(0, pos - step)
                f.seek(start)
                chunk = f.read(pos - start)
                if pos == size and chunk.endswith(b"\n"):
                    return
                i = chunk.rfind(b"\n")
                if i >= 0:
                    os.ftruncate(self._fd, start + i + 1)
                    return
                pos = start
        os.ftruncate(self._fd, 0)

    def append(self, record, sync=False):
        """Appends a record.

        Args:
            record: a JSON-serializable dict
            sync (False): also flush it to the disk (``fsync``)

        Raises:
            OSError: if it cannot be written (nothing of it stays)
        """
        line = (json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")
        start = os.fstat(self._fd).st_size
        try:
            view = memoryview(line)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            if sync:
                os.fsync(self._fd)
        except OSError:
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                pass
            raise

    def sync(self):
        """Flushes what was appended to the disk."""
        os.fsync(self._fd)

    def close(self):
        """Closes the file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.close()

