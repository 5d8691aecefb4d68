"""What a move is, as its manifest records it: its dataset folders
(:class:`Root`), the files it moves (:class:`FileEntry`), the shared
annotation files it rewrites (:class:`AnnotationEntry`), and the whole move
with its progress (:class:`Manifest`).

A move's plan is a :class:`Manifest` too, before it has an id: the plan
fills in the header fields that the journal then records (see
:mod:`fiftyone_dedup.moves.journal`). Pure Python; no FiftyOne.
"""

from dataclasses import dataclass, field

from fiftyone_dedup.moves import paths

LABELS = ("keep", "drop")
ON_SAMPLES = ("keep", "delete", "dataset")
KINDS = ("image", "label")
PHASES = ("files", "annotations", "database")


class ManifestError(ValueError):
    """A manifest that cannot be used at all (no valid header), or one
    that a move or restore refuses."""


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
    """A move: parsed and checked from its manifest (see
    :mod:`fiftyone_dedup.moves.journal` for the records), or planned (no
    ``path``, ``move_id`` or ``created`` yet; ``files`` are the candidates).
    """

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
        return paths.backup_dir(self.move_id)

    def moved_entries(self):
        """The (valid) file entries recorded as moved."""
        return [e for e in self.files if self.outcomes.get(e.n, (None,))[0] == "moved"]

    def outcome_counts(self):
        """``{"moved": n, "skipped": n, "failed": n}`` of the files."""
        counts = {"moved": 0, "skipped": 0, "failed": 0}
        for kind, _ in self.outcomes.values():
            counts[kind] = counts.get(kind, 0) + 1
        return counts

    def summary(self):
        """A JSON-serializable summary of the move."""
        counts = self.outcome_counts()
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

