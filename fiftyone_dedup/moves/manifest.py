"""The move manifest: a JSON-lines journal of one move and its undo.

Each move writes ``<duplicates_dir>/manifest-<move_id>.jsonl``. The first
line is a header; then the plan (one ``file`` record per file to move, one
``annotation`` record per annotation file backed up, one ``samples``
record), closed by a ``planned`` record that is flushed to disk before the
first file moves. Progress records follow (``moved``, ``skipped``,
``failed`` per file; ``rewritten``/``written`` per annotation file, written
before the file is; ``phase`` markers; ``complete``), then those of a
restore. A kill at any point leaves a journal that a rerun completes, and a
torn last line (a kill mid-write) is ignored.

A manifest is data from a folder anyone may have edited: the reader checks
every record and every path, and derives what it can (a file's destination
is its source under the root's folder) instead of trusting it. A record
that fails a check is reported in ``Manifest.problems`` and ignored. The
restore records say what a restore did; whether a move is restored is
derived from its files. Pure Python; no FiftyOne.

Records (all have ``"type"``)::

    header      format, version, move_id, created, dataset, dataset_id,
                run_key, run_timestamp, labels ("keep"|"drop"), on_samples
                ("keep"|"delete"|"dataset"), tag, duplicates_dataset,
                label_fields, roots: [{path, dest, layout, data_dir}]
    file        n, kind ("image"|"label"), root, src, dst, sha256, size,
                mtime_ns, sample_ids, group, kept_id, kept_path
    annotation  a, root, path, sha256, backup
    samples     backup, sha256, count
    planned     num_files, num_annotations
    moved|skipped|failed          n, reason
    rewritten   a, sha256         (a source annotation file's new content)
    written     path, sha256      (a file written into the duplicates folder)
    phase       name ("files"|"annotations"|"database")
    complete    num_moved, num_skipped, num_failed
    aborted     reason
    restore_started
    restored|restore_skipped      n, reason
    restore_phase                 name
    restore_complete
"""

import datetime
import json
import logging
import os
import re
import secrets
from dataclasses import dataclass, field

from fiftyone_dedup.moves import fileops

logger = logging.getLogger(__name__)

FORMAT = "fiftyone_dedup.manifest"
VERSION = 1

#: the hidden folder in a duplicates folder holding locks and backups
STATE_DIR = ".fiftyone_dedup"

PREFIX = "manifest-"
SUFFIX = ".jsonl"

LABELS = ("keep", "drop")
ON_SAMPLES = ("keep", "delete", "dataset")
KINDS = ("image", "label")
PHASES = ("files", "annotations", "database")

_MOVE_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
_SAMPLE_ID = re.compile(r"^[0-9a-f]{24}$")
_MAX_LINE = 1 << 24


class ManifestError(ValueError):
    """A manifest that cannot be used at all (no valid header)."""


@dataclass
class Root:
    """A dataset folder of a move.

    Attributes:
        path: the folder (absolute)
        dest: its folder name inside the duplicates folder
        layout: the annotation layout name, or None
        data_dir: whether its images are in ``data/``
    """

    path: str
    dest: str
    layout: object = None
    data_dir: bool = True


@dataclass
class FileEntry:
    """A file to move.

    Attributes:
        n: its number in the manifest
        kind: ``"image"`` or ``"label"`` (a per-image annotation file)
        root: the index of its :class:`Root`
        src: its path relative to the root
        dst: its path relative to the duplicates folder
        sha256: its checksum when planned
        size: its size in bytes
        mtime_ns: its modification time
        sample_ids: the samples whose file it is
        group: the duplicate group
        kept_id: the id of the kept sample of the group
        kept_path: the kept sample's file (for people reading the manifest)
    """

    n: int
    kind: str
    root: int
    src: str
    dst: str
    sha256: str
    size: int
    mtime_ns: int
    sample_ids: list
    group: object = None
    kept_id: object = None
    kept_path: object = None


@dataclass
class AnnotationEntry:
    """A source annotation file backed up before it is rewritten.

    Attributes:
        a: its number
        root: the index of its :class:`Root`
        path: its path relative to the root
        sha256: the original's checksum
        backup: the backup's path relative to the duplicates folder
    """

    a: int
    root: int
    path: str
    sha256: str
    backup: str
    line: object = None


@dataclass
class Manifest:
    """A parsed and checked manifest. See the module for the records."""

    path: str
    move_id: str
    created: str
    dataset: str
    dataset_id: object
    run_key: str
    run_timestamp: object
    labels: str
    on_samples: str
    tag: object
    duplicates_dataset: object
    label_fields: list
    roots: list
    files: list = field(default_factory=list)
    annotations: list = field(default_factory=list)
    samples_backup: object = None
    planned: bool = False
    outcomes: dict = field(default_factory=dict)
    rewritten: dict = field(default_factory=dict)
    written: dict = field(default_factory=dict)
    phases: set = field(default_factory=set)
    complete: bool = False
    aborted: bool = False
    restore_started: bool = False
    restored: dict = field(default_factory=dict)
    restore_phases: set = field(default_factory=set)
    restore_complete: bool = False
    problems: list = field(default_factory=list)
    torn_tail: bool = False
    num_file_records: int = 0
    num_annotation_records: int = 0
    written_lines: dict = field(default_factory=dict)

    @property
    def state(self):
        """``"restored"``, ``"restoring"``, ``"moved"``, ``"moving"``,
        ``"aborted"`` or ``"planning"`` (plan never finished: nothing
        moved)."""
        if self.restore_complete:
            return "restored"
        if self.restore_started:
            return "restoring"
        if self.aborted:
            return "aborted"
        if self.complete:
            return "moved"
        if self.planned:
            return "moving"
        return "planning"

    @property
    def backup_dir(self):
        """This move's backup folder, relative to the duplicates folder."""
        return backup_dir(self.move_id)

    def moved_entries(self):
        """The (valid) file entries recorded as moved."""
        return [e for e in self.files if self.outcomes.get(e.n, (None,))[0] == "moved"]

    def summary(self):
        """A JSON-serializable summary of the move."""
        counts = {"moved": 0, "skipped": 0, "failed": 0}
        for kind, _ in self.outcomes.values():
            counts[kind] = counts.get(kind, 0) + 1
        return {
            "move_id": self.move_id,
            "manifest": self.path,
            "state": self.state,
            "created": self.created,
            "dataset": self.dataset,
            "run_key": self.run_key,
            "labels": self.labels,
            "on_samples": self.on_samples,
            "roots": [r.path for r in self.roots],
            "num_files": len(self.files),
            "num_moved": counts["moved"],
            "num_skipped": counts["skipped"],
            "num_failed": counts["failed"],
            "num_restored": sum(1 for k, _ in self.restored.values() if k == "restored"),
            "problems": list(self.problems),
        }


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
    return os.path.join(duplicates_dir, f"{PREFIX}{move_id}{SUFFIX}")


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
        root: its :class:`Root`
        kind: ``"image"`` or ``"label"``
        src: its path relative to the root
        labels: ``"keep"`` or ``"drop"``

    Returns:
        a relative path
    """
    if kind == "label" and labels == "drop":
        return f"{backup_dir(move_id)}/dropped/{root.dest}/{src}"
    return f"{root.dest}/{src}"


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
        if not (name.startswith(PREFIX) and name.endswith(SUFFIX)):
            continue
        move_id = name[len(PREFIX):-len(SUFFIX)]
        path = os.path.join(duplicates_dir, name)
        if not _MOVE_ID.match(move_id):
            continue
        if os.path.islink(path) or not os.path.isfile(path):
            logger.warning("Ignoring %s: not a regular file", path)
            continue
        out.append(path)
    return out


# ------------------------------------------------------------------ reading


def read_manifest(path):
    """Reads and checks a manifest file.

    Args:
        path: the manifest path

    Returns:
        a :class:`Manifest`

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
        a :class:`Manifest`; records that fail a check are listed in its
        ``problems`` and otherwise ignored

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
        m = _parse_header(header, path)
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
            _apply_record(m, record, i)
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


def _str(d, key, allow_none=False):
    value = d.get(key)
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError(f"'{key}' must be a string")
    return value


def _int(d, key, minimum=0, allow_none=False):
    value = d.get(key)
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"'{key}' must be an integer >= {minimum}")
    return value


def _choice(d, key, choices):
    value = d.get(key)
    if value not in choices:
        raise ValueError(f"'{key}' must be one of {', '.join(choices)}")
    return value


def _sha(d, key="sha256"):
    value = d.get(key)
    if not fileops.is_sha256(value):
        raise ValueError(f"'{key}' must be a SHA-256 hex digest")
    return value


def _sample_id(value):
    if not isinstance(value, str) or not _SAMPLE_ID.match(value):
        raise ValueError("sample ids must be 24 hex digits")
    return value


def _component(value, what):
    if (
        not isinstance(value, str)
        or not value
        or value in (".", "..")
        or value.startswith(".")
        or "/" in value
        or "\x00" in value
    ):
        raise ValueError(f"{what} must be a plain folder name, got {value!r}")
    return value


def _abs_path(value, what):
    if (
        not isinstance(value, str)
        or not value.startswith("/")
        or "\x00" in value
        or os.path.normpath(value) != value
    ):
        raise ValueError(f"{what} must be a normalised absolute path, got {value!r}")
    return value


def _parse_header(d, path):
    if d.get("type") != "header" or d.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} header")
    if d.get("version") != VERSION:
        raise ValueError(f"unsupported version {d.get('version')!r} (expected {VERSION})")
    move_id = _str(d, "move_id")
    if not _MOVE_ID.match(move_id):
        raise ValueError(f"bad move_id {move_id!r}")
    roots_in = d.get("roots")
    if not isinstance(roots_in, list) or not roots_in:
        raise ValueError("'roots' must be a non-empty list")
    roots, dests = [], set()
    for r in roots_in:
        if not isinstance(r, dict):
            raise ValueError("each root must be an object")
        layout = r.get("layout")
        if layout is not None and (not isinstance(layout, str) or not layout):
            raise ValueError("a root's layout must be a name or null")
        data_dir = r.get("data_dir", True)
        if not isinstance(data_dir, bool):
            raise ValueError("a root's data_dir must be true or false")
        root = Root(
            path=_abs_path(r.get("path"), "a root's path"),
            dest=_component(r.get("dest"), "a root's dest"),
            layout=layout,
            data_dir=data_dir,
        )
        if root.dest in dests:
            raise ValueError(f"two roots share the folder {root.dest!r}")
        dests.add(root.dest)
        roots.append(root)
    label_fields = d.get("label_fields", [])
    if not isinstance(label_fields, list) or not all(
        isinstance(f, str) and f.isidentifier() for f in label_fields
    ):
        raise ValueError("'label_fields' must be a list of field names")
    run_key = _str(d, "run_key")
    tag = _str(d, "tag", allow_none=True)
    return Manifest(
        path=path,
        move_id=move_id,
        created=_str(d, "created"),
        dataset=_str(d, "dataset"),
        dataset_id=_str(d, "dataset_id", allow_none=True),
        run_key=run_key,
        run_timestamp=_str(d, "run_timestamp", allow_none=True),
        labels=_choice(d, "labels", LABELS),
        on_samples=_choice(d, "on_samples", ON_SAMPLES),
        tag=tag,
        duplicates_dataset=_str(d, "duplicates_dataset", allow_none=True),
        label_fields=label_fields,
        roots=roots,
    )


def _root_index(m, d):
    i = _int(d, "root")
    if i >= len(m.roots):
        raise ValueError(f"root {i} does not exist")
    return i


_AFTER_PLAN = (
    "moved", "skipped", "failed", "rewritten", "written", "phase", "complete",
    "restore_started", "restored", "restore_skipped", "restore_phase", "restore_complete",
)


def _apply_record(m, d, line=None):
    kind = d.get("type")
    if kind == "file" and not m.planned:
        # a bad file record still takes its number, so the others keep theirs
        m.num_file_records += 1
    if kind == "annotation" and not m.planned:
        m.num_annotation_records += 1
    if kind in _AFTER_PLAN and not m.planned:
        # the plan was closed even if its closing record was damaged
        m.planned = True
        m.problems.append("the plan's closing record is missing; assumed closed")
    if kind == "file":
        _apply_file(m, d)
    elif kind == "annotation":
        if m.planned:
            raise ValueError("annotation record after the plan was closed")
        a = _int(d, "a")
        if a != m.num_annotation_records - 1:
            raise ValueError(f"annotation {a} out of order")
        root = _root_index(m, d)
        rel = fileops.check_relpath(_str(d, "path"), "annotation path")
        backup = _str(d, "backup")
        if backup != annotation_backup(m.move_id, root, rel):
            raise ValueError(f"annotation backup {backup!r} is not where backups go")
        m.annotations.append(AnnotationEntry(a=a, root=root, path=rel, sha256=_sha(d), backup=backup, line=line))
    elif kind == "samples":
        if m.planned:
            raise ValueError("samples record after the plan was closed")
        backup = _str(d, "backup")
        if backup != samples_backup(m.move_id):
            raise ValueError(f"samples backup {backup!r} is not where backups go")
        m.samples_backup = {"backup": backup, "sha256": _sha(d), "count": _int(d, "count")}
    elif kind == "planned":
        if m.planned:
            raise ValueError("the plan was closed twice")
        if _int(d, "num_files") != m.num_file_records:
            raise ValueError("the plan's file count does not match its records")
        m.planned = True
    elif kind in ("moved", "skipped", "failed"):
        n = _int(d, "n")
        if n >= m.num_file_records:
            raise ValueError(f"outcome for unknown file {n}")
        m.outcomes[n] = (kind, _str(d, "reason", allow_none=True))
    elif kind == "rewritten":
        a = _int(d, "a")
        if a >= m.num_annotation_records:
            raise ValueError(f"unknown annotation {a}")
        m.rewritten[a] = _sha(d)
    elif kind == "written":
        rel = fileops.check_relpath(_str(d, "path"), "written path")
        if not any(rel.startswith(r.dest + "/") for r in m.roots):
            raise ValueError(f"written path {rel!r} is outside this move's folders")
        m.written[rel] = _sha(d)
        m.written_lines.setdefault(rel, line)
    elif kind == "phase":
        m.phases.add(_choice(d, "name", PHASES))
    elif kind == "complete":
        m.complete = True
    elif kind == "aborted":
        if m.planned:
            raise ValueError("'aborted' after the plan was closed (only an unfinished plan is aborted)")
        m.aborted = True
    elif kind == "restore_started":
        m.restore_started = True
    elif kind in ("restored", "restore_skipped"):
        if not m.restore_started:
            raise ValueError(f"'{kind}' record before 'restore_started'")
        n = _int(d, "n")
        if n >= m.num_file_records:
            raise ValueError(f"restore outcome for unknown file {n}")
        m.restored[n] = ("restored" if kind == "restored" else "skipped", _str(d, "reason", allow_none=True))
    elif kind == "restore_phase":
        m.restore_phases.add(_choice(d, "name", PHASES))
    elif kind == "restore_complete":
        m.restore_complete = True
    else:
        raise ValueError(f"unknown record type {kind!r}")


def _apply_file(m, d):
    if m.planned:
        raise ValueError("file record after the plan was closed")
    n = _int(d, "n")
    if n != m.num_file_records - 1:
        raise ValueError(f"file {n} out of order")
    root = _root_index(m, d)
    kind = _choice(d, "kind", KINDS)
    src = fileops.check_relpath(_str(d, "src"), "source path")
    dst = _str(d, "dst")
    expected = destination(m.move_id, m.roots[root], kind, src, m.labels)
    if dst != expected:
        raise ValueError(f"destination {dst!r} is not {expected!r}")
    ids = d.get("sample_ids", [])
    if not isinstance(ids, list):
        raise ValueError("'sample_ids' must be a list")
    group = d.get("group")
    if group is not None and (not isinstance(group, int) or isinstance(group, bool)):
        raise ValueError("'group' must be an integer or null")
    kept_id = d.get("kept_id")
    if kept_id is not None:
        _sample_id(kept_id)
    m.files.append(
        FileEntry(
            n=n,
            kind=kind,
            root=root,
            src=src,
            dst=dst,
            sha256=_sha(d),
            size=_int(d, "size"),
            mtime_ns=_int(d, "mtime_ns"),
            sample_ids=[_sample_id(i) for i in ids],
            group=group,
            kept_id=kept_id,
            kept_path=_str(d, "kept_path", allow_none=True),
        )
    )


# ------------------------------------------------------------------ writing


def header_record(m):
    """The header record of a :class:`Manifest`."""
    return {
        "type": "header",
        "format": FORMAT,
        "version": VERSION,
        "move_id": m.move_id,
        "created": m.created,
        "dataset": m.dataset,
        "dataset_id": m.dataset_id,
        "run_key": m.run_key,
        "run_timestamp": m.run_timestamp,
        "labels": m.labels,
        "on_samples": m.on_samples,
        "tag": m.tag,
        "duplicates_dataset": m.duplicates_dataset,
        "label_fields": list(m.label_fields),
        "roots": [
            {"path": r.path, "dest": r.dest, "layout": r.layout, "data_dir": r.data_dir}
            for r in m.roots
        ],
    }


def file_record(e):
    """The record of a :class:`FileEntry`."""
    return {
        "type": "file",
        "n": e.n,
        "kind": e.kind,
        "root": e.root,
        "src": e.src,
        "dst": e.dst,
        "sha256": e.sha256,
        "size": e.size,
        "mtime_ns": e.mtime_ns,
        "sample_ids": list(e.sample_ids),
        "group": e.group,
        "kept_id": e.kept_id,
        "kept_path": e.kept_path,
    }


def annotation_record(e):
    """The record of an :class:`AnnotationEntry`."""
    return {
        "type": "annotation", "a": e.a, "root": e.root, "path": e.path,
        "sha256": e.sha256, "backup": e.backup,
    }


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
