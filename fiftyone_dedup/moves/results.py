"""What a move or a restore did, or would do (a dry run):
:class:`MoveResult` and :class:`RestoreResult`, as data and as text."""

import os
from dataclasses import dataclass, field

from fiftyone_dedup.moves import fileops


@dataclass
class MoveResult:
    """What a move did, or would do (dry run).

    Attributes:
        duplicates_dir: the duplicates folder
        dry_run: whether nothing was changed
        labels: ``"keep"`` or ``"drop"``
        on_samples: what happened to the moved samples
        move_id: the move's id (None for a dry run or when nothing moved)
        manifest: the manifest path
        files: one dict per file: ``src``, ``dst`` (absolute), ``kind``
            (``"image"``/``"label"``), ``sample_ids``, ``group``, ``kept``
            (the kept file), ``outcome`` (``"moved"``, ``"skipped"``,
            ``"failed"``, or ``"planned"`` in a dry run)
        skipped: one ``{"path", "reason"}`` dict per duplicate not moved
        annotations: one ``{"path", "action"}`` dict per annotation file
            rewritten or written
        messages: warnings worth reading
        resumed: the ids of unfinished earlier moves finished first
    """

    duplicates_dir: str
    dry_run: bool
    labels: str
    on_samples: str
    move_id: object = None
    manifest: object = None
    files: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    annotations: list = field(default_factory=list)
    messages: list = field(default_factory=list)
    resumed: list = field(default_factory=list)

    @property
    def num_moved(self):
        """Images moved."""
        return sum(1 for f in self.files if f["kind"] == "image" and f["outcome"] == "moved")

    @property
    def num_planned(self):
        """Images planned (that a dry run would move)."""
        return sum(1 for f in self.files if f["kind"] == "image")

    @property
    def num_skipped(self):
        """Duplicates not moved, with a reason."""
        return len(self.skipped)

    def to_dict(self):
        """A JSON-serializable dict."""
        return {
            "duplicates_dir": self.duplicates_dir,
            "dry_run": self.dry_run,
            "labels": self.labels,
            "on_samples": self.on_samples,
            "move_id": self.move_id,
            "manifest": self.manifest,
            "num_moved": self.num_moved,
            "num_planned": self.num_planned,
            "num_skipped": self.num_skipped,
            "files": list(self.files),
            "skipped": list(self.skipped),
            "annotations": list(self.annotations),
            "messages": list(self.messages),
            "resumed": list(self.resumed),
        }

    def format(self, limit=20):
        """The plan or outcome as text, one line per file up to ``limit``.

        Args:
            limit (20): the most file lines; None for all

        Returns:
            a string
        """
        verb = "Would move" if self.dry_run else "Moved"
        labels = [f for f in self.files if f["kind"] == "label"]
        shown = [f for f in self.files if self.dry_run or f["outcome"] == "moved"]
        n_img = self.num_planned if self.dry_run else self.num_moved
        n_lab = len(labels) if self.dry_run else sum(1 for f in labels if f["outcome"] == "moved")
        # shared annotation files: written into the duplicates folder, or
        # rewritten in the dataset folder without the moved images
        written = {
            a["path"]
            for a in self.annotations
            if fileops.relpath_under(a["path"], self.duplicates_dir)
        }
        rewritten = {a["path"] for a in self.annotations} - written
        what = "labels kept" if self.labels == "keep" else "labels dropped"
        first = (
            f"{verb} {n_img} image(s) and {n_lab + len(written)} annotation file(s) into "
            f"{self.duplicates_dir} ({what})"
        )
        if rewritten:
            first += (
                f"; {len(rewritten)} annotation file(s) of the dataset "
                f"{'would lose' if self.dry_run else 'lost'} their entries"
            )
        lines = [first]
        for f in shown[: limit if limit is not None else len(shown)]:
            lines.append(f"  {f['src']} -> {f['dst']}")
        if limit is not None and len(shown) > limit:
            lines.append(f"  ... and {len(shown) - limit} more")
        for a in self.annotations:
            lines.append(f"  {a['path']}: {a['action']}")
        if self.skipped:
            lines.append(f"Not moved: {len(self.skipped)}")
            for s in self.skipped[: limit if limit is not None else len(self.skipped)]:
                lines.append(f"  {s['path']}: {s['reason']}")
            if limit is not None and len(self.skipped) > limit:
                lines.append(f"  ... and {len(self.skipped) - limit} more")
        for msg in self.messages:
            lines.append(f"Note: {msg}")
        if self.manifest:
            lines.append(f"Manifest: {self.manifest}")
        return "\n".join(lines)


@dataclass
class RestoreResult:
    """What a restore did, or would do.

    Attributes:
        duplicates_dir: the duplicates folder
        dry_run: whether nothing was changed
        moves: one dict per move handled: ``move_id``, ``dataset``,
            ``num_restored``, ``num_skipped``, ``error`` (or None)
        files: one ``{"src", "dst", "outcome", "reason"}`` dict per file
            (``src`` is where it goes back to)
        annotations: one ``{"path", "action"}`` dict per shared annotation
            file put back from its backup (or that would be)
        messages: warnings worth reading
    """

    duplicates_dir: str
    dry_run: bool
    moves: list = field(default_factory=list)
    files: list = field(default_factory=list)
    annotations: list = field(default_factory=list)
    messages: list = field(default_factory=list)

    @property
    def num_restored(self):
        """Images put back (or, in a dry run, that would be)."""
        return sum(
            1 for f in self.files
            if f["kind"] == "image" and f["outcome"] in ("restored", "planned")
        )

    @property
    def num_restored_labels(self):
        """Annotation files put back (or that would be): per-image ones
        and shared ones restored from their backups."""
        return len(self.annotations) + sum(
            1 for f in self.files
            if f["kind"] == "label" and f["outcome"] in ("restored", "planned")
        )

    def to_dict(self):
        """A JSON-serializable dict."""
        return {
            "duplicates_dir": self.duplicates_dir,
            "dry_run": self.dry_run,
            "num_restored": self.num_restored,
            "num_restored_labels": self.num_restored_labels,
            "moves": list(self.moves),
            "files": list(self.files),
            "annotations": list(self.annotations),
            "messages": list(self.messages),
        }

    def format(self, limit=20):
        """The outcome as text."""
        verb = "Would restore" if self.dry_run else "Restored"
        lines = [
            f"{verb} {self.num_restored} image(s) and {self.num_restored_labels} "
            f"annotation file(s) from {self.duplicates_dir}"
        ]
        for mv in self.moves:
            line = (
                f"  move {mv['move_id']} (dataset '{mv['dataset']}'): {mv['num_restored']} image(s)"
            )
            if mv.get("error"):
                line += f"; not restored: {mv['error']}"
            lines.append(line)
        for a in self.annotations:
            lines.append(f"  {a['path']}: {a['action']}")
        problems = [
            f
            for f in self.files
            if f["outcome"] == "skipped" and f.get("reason") != "was not moved"
        ]
        for f in problems[:limit]:
            lines.append(f"  left {f['dst']}: {f['reason']}")
        for msg in self.messages:
            lines.append(f"Note: {msg}")
        return "\n".join(lines)


def file_dict(roots, dup, e, dst_rel, outcome, reason=None):
    """The :attr:`MoveResult.files` dict of a file entry.

    Args:
        roots: the move's :class:`fiftyone_dedup.moves.model.Root` list
        dup: the duplicates folder
        e: the :class:`fiftyone_dedup.moves.model.FileEntry`
        dst_rel: its destination relative to ``dup``
        outcome: ``"moved"``, ``"skipped"``, ``"failed"`` or ``"planned"``
        reason (None): why it was not moved

    Returns:
        a dict
    """
    r = roots[e.root]
    d = {
        "src": os.path.join(r.path, *e.src.split("/")),
        "dst": os.path.join(dup, *dst_rel.split("/")),
        "kind": e.kind,
        "sample_ids": list(e.sample_ids),
        "group": e.group,
        "kept": e.kept_path,
        "outcome": outcome,
    }
    if reason:
        d["reason"] = reason
    return d


def samples_text(on_samples, name, tag, dup_name, labels, dry_run):
    """What became (or would become) of the moved samples, as a note."""
    will = "would be" if dry_run else "were"
    if on_samples == "delete":
        text = f"the moved samples {will} deleted from dataset '{name}'"
    elif on_samples == "dataset":
        text = f"the moved samples {will} moved to dataset '{dup_name}'"
    else:
        text = f"the moved samples {will} kept in dataset '{name}' with their new filepath" + (
            f" and tag '{tag}'" if tag else ""
        )
    if labels == "drop" and on_samples != "delete":
        text += ", without their labels"
    return text

