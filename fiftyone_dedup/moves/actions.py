"""Moving duplicates out of a dataset, with their labels or without, and
putting them back.

:func:`move_duplicates` moves the duplicate files of a run into a
duplicates folder, each under its dataset folder's name at the same
relative path, and journals every step in a manifest (see
:mod:`fiftyone_dedup.moves.manifest`) before taking it. Labeled folders stay
valid datasets: their annotation files lose the moved images (the
originals are backed up for undo), and with labels kept the duplicates
folder becomes a dataset of the same format. :func:`restore` undoes a move
from its manifest. Both finish what a killed run left, when run again.

The order of a move, each step journaled first::

    plan      checks (kept file present, file unchanged since the run, inside
              its folder, no symbolic link), checksums, backups of annotation
              files and sample documents; closed by a flushed "planned" record
    files     one atomic no-clobber rename each (or copy, verify, remove
              across file systems)
    annotations  source annotation files rewritten atomically; the
              duplicates folder's annotation files written
    database  samples deleted, re-pointed and tagged, or moved to a
              duplicates dataset
"""

import datetime
import errno
import json
import logging
import os
import stat
from dataclasses import dataclass, field

import fiftyone as fo
import fiftyone.core.labels as fol
import fiftyone.core.media as fom
from fiftyone import ViewField as F

from fiftyone_dedup.moves import annotations as annots
from fiftyone_dedup.engine import core
from fiftyone_dedup.moves import fileops
from fiftyone_dedup.moves import locks
from fiftyone_dedup.moves import manifest as mf
from fiftyone_dedup.engine import runs
from fiftyone_dedup.engine.folders import SOURCE_FIELD
from fiftyone_dedup.progress import ProgressBar

logger = logging.getLogger(__name__)

#: the tag added to moved samples kept in the dataset
DEFAULT_MOVED_TAG = "moved"

#: the default duplicates folder of the command line
DEFAULT_DUPLICATES_DIR = "duplicates"

#: the ``dataset.info`` key recording moves (what restore trusts)
INFO_KEY = "fiftyone_dedup_moves"

LABELS = mf.LABELS
ON_SAMPLES = mf.ON_SAMPLES


class DiskFullError(OSError):
    """The duplicates folder's file system is full."""


# ------------------------------------------------------------------ results


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
        written = {a["path"] for a in self.annotations if fileops.relpath_under(a["path"], self.duplicates_dir)}
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
            line = f"  move {mv['move_id']} (dataset '{mv['dataset']}'): {mv['num_restored']} image(s)"
            if mv.get("error"):
                line += f"; not restored: {mv['error']}"
            lines.append(line)
        for a in self.annotations:
            lines.append(f"  {a['path']}: {a['action']}")
        problems = [f for f in self.files if f["outcome"] == "skipped" and f.get("reason") != "was not moved"]
        for f in problems[:limit]:
            lines.append(f"  left {f['dst']}: {f['reason']}")
        for msg in self.messages:
            lines.append(f"Note: {msg}")
        return "\n".join(lines)


# ------------------------------------------------------------------ checks


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def check_dir_arg(duplicates_dir):
    if not isinstance(duplicates_dir, (str, os.PathLike)) or not str(duplicates_dir).strip():
        raise ValueError(f"duplicates_dir must be a folder path, got {duplicates_dir!r}")
    path = os.path.abspath(os.path.expanduser(os.fspath(duplicates_dir)))
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ValueError(f"duplicates_dir exists and is not a folder: {path}")
    return os.path.normpath(path)


def _label_fields(dataset):
    schema = dataset.get_field_schema(embedded_doc_type=fol.Label)
    return sorted(name for name in schema if name.isidentifier())


def _file_stamp(value):
    """``(size, mtime_ns)`` from an encodings stamp, or None."""
    if not isinstance(value, str):
        return None
    parts = value.rsplit(":", 2)
    if len(parts) < 3:
        return None
    try:
        return int(parts[-2]), int(parts[-1])
    except ValueError:
        return None


def _stamp_changed(path, stamp):
    if stamp is None:
        return False
    try:
        st = os.stat(path)
    except OSError:
        return True
    return (st.st_size, st.st_mtime_ns) != stamp


def _images_folder(root, layout, data_dir):
    if layout == "yolov5":
        return os.path.join(root, "images")
    return os.path.join(root, "data") if data_dir else root


def _dest_name(root, taken, duplicates_dir):
    base = os.path.basename(root.rstrip(os.sep)) or "root"
    if base.startswith("."):
        base = "_" + base[1:]
    name, k = base, 1
    while name in taken or os.path.lexists(os.path.join(duplicates_dir, name)):
        k += 1
        name = f"{base}-{k}"
    return name


# ------------------------------------------------------------------ plan


@dataclass
class _Plan:
    dataset: object
    duplicates_dir: str
    run_key: str
    run_timestamp: object
    labels: str
    on_samples: str
    tag: object
    duplicates_dataset: object
    label_fields: list
    roots: list
    files: list
    skipped: list
    annotations: list  # (root index, rel)
    support: list  # (root index, rel)
    export_roots: list
    already_moved: int


class _Samples:
    """What the plan needs of every sample of the dataset, read once."""

    def __init__(self, dataset, stamp_field):
        has_source = dataset.has_sample_field(SOURCE_FIELD)
        has_stamp = dataset.has_sample_field(stamp_field)
        fields = ["id", "filepath"]
        fields += [SOURCE_FIELD] if has_source else []
        fields += [stamp_field] if has_stamp else []
        values = dataset.values(fields)
        self.ids, self.paths = values[0], values[1]
        n = len(self.ids)
        self.sources = values[2] if has_source else [None] * n
        stamps = values[-1] if has_stamp else [None] * n
        self.path_of = dict(zip(self.ids, self.paths))
        self.source_of = dict(zip(self.ids, self.sources))
        self.stamp_of = dict(zip(self.ids, stamps))
        self.users = {}  # file -> the samples using it
        for sid, p in zip(self.ids, self.paths):
            self.users.setdefault(os.path.normpath(os.path.abspath(p)), []).append(sid)


class _Roots:
    """The dataset folders of the samples: the command line's folders, else
    one folder for the rest (``root``, or their common folder)."""

    def __init__(self, dataset, samples_index, duplicates_dir, root):
        info = (dataset.info or {}).get("fiftyone_dedup") or {}
        self.folder_dirs = [os.path.normpath(d) for d in info.get("dirs") or [] if isinstance(d, str)]
        self.layouts = info.get("layouts") or {}
        self.data_dir = bool(info.get("data_dir", True))
        self._index = samples_index
        self._dup = duplicates_dir
        self._generic = None
        if root is not None:
            self._generic = os.path.normpath(os.path.abspath(os.path.expanduser(os.fspath(root))))
            if not os.path.isdir(self._generic):
                raise ValueError(f"root folder not found: {self._generic}")
        self.roots = []
        self._by_path = {}

    def _generic_root(self):
        if self._generic is None:
            others = [
                os.path.normpath(os.path.abspath(p))
                for p, s in zip(self._index.paths, self._index.sources)
                if s not in self.folder_dirs and not fileops.is_inside(p, self._dup)
            ]
            common = os.path.commonpath(others) if others else "/"
            self._generic = os.path.dirname(common) if len(set(others)) == 1 else common
        return self._generic

    def index_for(self, source):
        """The index of the root of a sample from folder ``source``."""
        if isinstance(source, str) and source in self.folder_dirs:
            path, layout, data_dir = source, self.layouts.get(source), self.data_dir
        else:
            path, layout, data_dir = self._generic_root(), None, True
        if path not in self._by_path:
            self._by_path[path] = len(self.roots)
            self.roots.append(mf.Root(path=path, dest="", layout=layout, data_dir=data_dir))
        return self._by_path[path]

    def all_folders(self):
        """Every dataset folder, used or not, to check the duplicates folder."""
        return self.roots + [
            mf.Root(path=d, dest="", layout=self.layouts.get(d), data_dir=self.data_dir)
            for d in self.folder_dirs
        ]


def _plan(samples, duplicates_dir, run_key, labels, on_samples, tag, duplicates_dataset, root):
    dataset = samples._root_dataset
    config = core.require_run(samples, run_key)
    index = _Samples(dataset, core.stamp_field(config.field))
    roots = _Roots(dataset, index, duplicates_dir, root)
    images, skipped, already = _plan_images(samples, run_key, config, index, roots, duplicates_dir)
    _check_duplicates_dir(roots.all_folders(), duplicates_dir)
    labels_files, label_skips = _plan_label_files(images, roots.roots, index)
    label_fields = _label_fields(dataset)
    annotations, support, export_roots = _plan_annotation_files(images, roots.roots, labels, label_fields)
    taken = set()
    for r in roots.roots:
        r.dest = _dest_name(r.path, taken, duplicates_dir)
        taken.add(r.dest)
    ts = getattr(dataset.get_run_info(run_key), "timestamp", None)
    return _Plan(
        dataset=dataset,
        duplicates_dir=duplicates_dir,
        run_key=run_key,
        run_timestamp=ts.isoformat() if hasattr(ts, "isoformat") else None,
        labels=labels,
        on_samples=on_samples,
        tag=tag,
        duplicates_dataset=duplicates_dataset,
        label_fields=label_fields,
        roots=roots.roots,
        files=images + labels_files,
        skipped=skipped + label_skips,
        annotations=annotations,
        support=support,
        export_roots=export_roots,
        already_moved=already,
    )


def _plan_images(samples, run_key, config, index, roots, duplicates_dir):
    """The duplicates' files that can move, and why the others cannot."""
    group_f, role_f, kept_f, _ = core.output_fields(run_key, config.metric)
    # cross-dataset runs record the kept file, which may be in another dataset
    kfp_f = runs.output_field(run_key, "kept_filepath")
    fields = [f for f in ("id", group_f, kept_f, kfp_f) if f != kfp_f or samples._root_dataset.has_sample_field(f)]
    view = samples.match(F(role_f) == core.ROLE_DUPLICATE)
    values = view.values(fields)
    ids, groups, kept_ids = values[:3]
    kept_paths = values[3] if len(values) > 3 else [None] * len(ids)
    moving_ids = set(ids)
    skipped, by_path, already = [], {}, 0
    for sid, g, kid, kfp in zip(ids, groups, kept_ids, kept_paths):
        path = os.path.normpath(os.path.abspath(index.path_of[sid]))
        if fileops.is_inside(path, duplicates_dir):
            already += 1  # moved by an earlier move that kept its samples
            continue
        ri = roots.index_for(index.source_of.get(sid))
        rpath = roots.roots[ri].path
        rel = fileops.relpath_under(path, rpath)
        reason = None
        if rel is None:
            reason = f"outside its dataset folder {rpath}"
        if reason is None:
            reason = _file_problem(path, rpath, _file_stamp(index.stamp_of.get(sid)))
        if reason is None:
            staying = [u for u in index.users.get(path, []) if u not in moving_ids]
            if staying:
                reason = f"also the file of sample {staying[0]}, which stays"
        if reason is None:
            reason = _kept_problem(index, kid, kfp, path)
        if reason is not None:
            skipped.append({"path": path, "reason": reason, "sample_ids": [sid]})
            continue
        entry = by_path.get(path)
        if entry is None:
            st = os.lstat(path)
            entry = by_path[path] = mf.FileEntry(
                n=-1, kind="image", root=ri, src=rel, dst="", sha256="", size=st.st_size,
                mtime_ns=st.st_mtime_ns, sample_ids=[], group=g, kept_id=kid,
                kept_path=index.path_of.get(kid, kfp),
            )
        entry.sample_ids.append(sid)
    return sorted(by_path.values(), key=lambda e: (e.root, e.src)), skipped, already


def _kept_problem(index, kept_id, kept_filepath=None, path=None):
    """Why a group's kept file cannot vouch for its duplicates, or None.

    The kept sample is in this dataset, or (cross-dataset runs) in another
    one whose file the run recorded.
    """
    kpath = index.path_of.get(kept_id)
    if kpath is None:
        if not isinstance(kept_filepath, str):
            return f"its kept sample {kept_id} is not in the dataset"
        kpath = kept_filepath
    if not os.path.isfile(kpath):
        return f"its kept file {kpath} is missing"
    if path is not None and os.path.samefile(kpath, path):
        # two samples (in two datasets) of one file: moving it loses the kept copy
        return f"it is the same file as its kept sample's ({kpath})"
    if _stamp_changed(kpath, _file_stamp(index.stamp_of.get(kept_id))):
        return f"its kept file {kpath} changed since duplicates were found"
    return None


def _plan_label_files(images, roots, index):
    """The per-image annotation files that travel with their images; one
    that an image which stays also uses stays."""
    moving = {}
    for e in images:
        moving.setdefault(e.root, set()).add(e.src)
    users = {}
    for ri, r in enumerate(roots):
        handler = annots.get_layout(r.layout)
        if handler is None or not handler.has_label_files or ri not in moving:
            continue
        users[ri] = {}
        for p in index.paths:
            rel = fileops.relpath_under(os.path.abspath(p), r.path)
            if rel is not None:
                for lrel in handler.label_files(rel, r.data_dir):
                    users[ri].setdefault(lrel, []).append(rel)
    files, skipped, seen = [], [], set()
    for e in images:
        r = roots[e.root]
        if e.root not in users:
            continue
        for lrel in annots.get_layout(r.layout).label_files(e.src, r.data_dir):
            lpath = os.path.join(r.path, *lrel.split("/"))
            if (e.root, lrel) in seen or not os.path.lexists(lpath):
                continue
            seen.add((e.root, lrel))
            others = [u for u in users[e.root].get(lrel, []) if u not in moving[e.root]]
            problem = _file_problem(lpath, r.path, None)
            if others:
                problem = f"also the annotation file of {others[0]}, which stays"
            if problem:
                skipped.append({"path": lpath, "reason": problem, "sample_ids": list(e.sample_ids)})
                continue
            st = os.lstat(lpath)
            files.append(
                mf.FileEntry(
                    n=-1, kind="label", root=e.root, src=lrel, dst="", sha256="",
                    size=st.st_size, mtime_ns=st.st_mtime_ns, sample_ids=list(e.sample_ids),
                    group=e.group, kept_id=e.kept_id, kept_path=e.kept_path,
                )
            )
    return files, skipped


def _plan_annotation_files(images, roots, labels, label_fields):
    """The shared annotation files to split (each checked to split now,
    before anything changes), the support files to copy, and the roots
    whose moved samples are exported as a FiftyOne dataset."""
    moving = {}
    for e in images:
        moving.setdefault(e.root, set()).add(e.src)
    annotations, support, export_roots = [], [], []
    for ri, r in enumerate(roots):
        if ri not in moving:
            continue
        handler = annots.get_layout(r.layout)
        if handler is None:
            if labels == "keep" and label_fields:
                export_roots.append(ri)
            continue
        for rel in handler.shared_files(r.path, r.data_dir):
            path = os.path.join(r.path, *rel.split("/"))
            problem = _file_problem(path, r.path, None)
            if problem:
                raise ValueError(f"Cannot rewrite the annotation file {path}: {problem}")
            try:
                handler.split(rel, fileops.read_bytes(path), moving[ri], r.path, r.data_dir)
            except (annots.AnnotationError, OSError) as e:
                raise ValueError(f"Cannot split the annotation file {path}: {e}") from None
            annotations.append((ri, rel))
        if labels == "keep":
            support.extend((ri, rel) for rel in handler.support_files(r.path))
    return annotations, support, export_roots


def _file_problem(path, root, stamp):
    """Why a file cannot be moved, or None."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "file not found"
    except OSError as e:
        return f"cannot be read: {e.strerror}"
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link (only regular files are moved)"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if not fileops.is_inside(path, root):
        return f"resolves outside its dataset folder {root} (symbolic link in its path)"
    if not os.access(path, os.R_OK):
        return "cannot be read (permission denied)"
    if not os.access(os.path.dirname(path), os.W_OK | os.X_OK):
        return "its folder is read-only (the file could not be removed)"
    if stamp is not None and (st.st_size, st.st_mtime_ns) != stamp:
        return "changed since duplicates were found (size or time differ); find duplicates again"
    return None


def _check_duplicates_dir(roots, duplicates_dir):
    for r in roots:
        if fileops.is_inside(r.path, duplicates_dir):
            raise ValueError(
                f"The duplicates folder {duplicates_dir} contains the dataset "
                f"folder {r.path}; choose a folder outside it"
            )
        if r.layout is not None:
            images = _images_folder(r.path, r.layout, r.data_dir)
            if fileops.is_inside(duplicates_dir, images):
                raise ValueError(
                    f"The duplicates folder {duplicates_dir} is inside {images}, "
                    f"the images folder of the labeled dataset {r.path}: its "
                    "annotation reader would see the moved files. Choose a "
                    "folder outside it"
                )


def _plan_result(plan, dry_run):
    dup = plan.duplicates_dir
    res = MoveResult(
        duplicates_dir=dup, dry_run=dry_run, labels=plan.labels, on_samples=plan.on_samples,
    )
    for e in plan.files:
        r = plan.roots[e.root]
        dst = mf.destination("<move_id>", r, e.kind, e.src, plan.labels)
        res.files.append(_file_dict(plan.roots, dup, e, dst, "planned"))
    res.skipped = [{"path": s["path"], "reason": s["reason"]} for s in plan.skipped]
    if plan.already_moved:
        res.messages.append(f"{plan.already_moved} duplicate(s) are already in {dup} (moved earlier)")
    moved = {}
    for e in plan.files:
        if e.kind == "image":
            moved.setdefault(e.root, 0)
            moved[e.root] += 1
    for ri, rel in plan.annotations:
        r = plan.roots[ri]
        res.annotations.append(
            {"path": os.path.join(r.path, rel), "action": f"loses the entries of {moved.get(ri, 0)} moved image(s) (original backed up)"}
        )
        if plan.labels == "keep":
            res.annotations.append(
                {"path": os.path.join(dup, r.dest, rel), "action": "written with the moved images' entries"}
            )
    for ri, rel in plan.support:
        r = plan.roots[ri]
        res.annotations.append({"path": os.path.join(dup, r.dest, rel), "action": "copied for loading"})
    for ri in plan.export_roots:
        r = plan.roots[ri]
        res.annotations.append(
            {"path": os.path.join(dup, r.dest, "samples.json"), "action": f"FiftyOne dataset of the moved samples' labels ({', '.join(plan.label_fields)})"}
        )
    if dry_run and plan.files:
        res.messages.append(_samples_text(plan.on_samples, plan.dataset.name, plan.tag, plan.duplicates_dataset, plan.labels, True))
    return res


def _samples_text(on_samples, name, tag, dup_name, labels, dry_run):
    will = "would be" if dry_run else "were"
    if on_samples == "delete":
        text = f"the moved samples {will} deleted from dataset '{name}'"
    elif on_samples == "dataset":
        text = f"the moved samples {will} moved to dataset '{dup_name}'"
    else:
        text = f"the moved samples {will} kept in dataset '{name}' with their new filepath" + (f" and tag '{tag}'" if tag else "")
    if labels == "drop" and on_samples != "delete":
        text += ", without their labels"
    return text


def _file_dict(roots, dup, e, dst_rel, outcome, reason=None):
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


# ------------------------------------------------------------------ move


def move_duplicates(
    samples,
    duplicates_dir,
    run_key=core.DEFAULT_RUN_KEY,
    labels="keep",
    on_samples="keep",
    tag=DEFAULT_MOVED_TAG,
    duplicates_dataset=None,
    root=None,
    dry_run=False,
    progress=None,
):
    """Moves the duplicates of a run into a folder, undoably.

    Each duplicate's file moves to
    ``<duplicates_dir>/<its dataset folder's name>/<its path in that
    folder>``: files of the same name from different folders never meet,
    and an existing file is never overwritten. Every step is journaled in
    ``<duplicates_dir>/manifest-<move_id>.jsonl`` before it is taken (see
    :mod:`fiftyone_dedup.moves.manifest`); :func:`restore` undoes the move from
    it, and running this function again finishes a move that was
    interrupted (even by ``kill -9``) before planning a new one.

    A duplicate is left in place, with the reason in the result, if its
    kept file is missing or changed since the run, if it changed itself
    (size and time checked against the run's record; a checksum is taken
    before the move and verified after), if it is a symbolic link or leads
    outside its dataset folder, or if another sample that stays uses the
    same file.

    Dataset folders (from the command line, see
    :func:`fiftyone_dedup.engine.folders.load_folders`) keep being valid
    datasets: their annotation files lose the moved images (the originals
    are backed up in ``<duplicates_dir>/.fiftyone_dedup/<move_id>/``), and
    with ``labels="keep"`` the moved images' annotations (COCO, VOC, YOLO,
    KITTI, CVAT, FiftyOne formats) land beside them in the same format, so
    each ``<duplicates_dir>/<name>`` loads as a labeled dataset. Other
    datasets' moved samples are written as a FiftyOne dataset
    (``samples.json``) there when labels are kept.

    Args:
        samples: a FiftyOne dataset or view; its duplicates (by the run)
            move
        duplicates_dir: the folder to move them into (created if missing;
            may be on another file system)
        run_key ("dedup"): the duplicates run
        labels ("keep"): ``"keep"``: moved samples keep their labels and
            the duplicates folder gets their annotations; ``"drop"``: no
            annotations travel and the moved samples lose their label
            fields
        on_samples ("keep"): what becomes of the moved samples:
            ``"keep"``: they stay in the dataset with their new filepath
            and ``tag``; ``"delete"``: they are deleted; ``"dataset"``:
            they move to the dataset ``duplicates_dataset``
        tag ("moved"): the tag of moved samples (``on_samples="keep"`` and
            ``"dataset"``); None for none
        duplicates_dataset (None): the dataset for ``on_samples="dataset"``;
            defaults to ``"<dataset name>-duplicates"``
        root (None): for samples not loaded from folders, the folder their
            paths are kept relative to; defaults to the common folder of
            the dataset's files
        dry_run (False): only plan: return (and log) what would move where,
            changing nothing on disk or in the database
        progress (None): ``None``, a bool, or a callable (see
            :mod:`fiftyone_dedup.progress`)

    Returns:
        a :class:`MoveResult`

    Raises:
        ValueError: for bad arguments or an unusable duplicates folder,
            before anything is changed
        fiftyone_dedup.moves.locks.LockError: if another move or restore is
            working on the same duplicates folder, dataset or folders
    """
    core.check_collection(samples)
    if samples.media_type == fom.GROUP:
        raise ValueError("Grouped datasets cannot be moved; select a slice with select_group_slices() first")
    dup = check_dir_arg(duplicates_dir)
    run_key = core.validate_run_key(run_key)
    _check_choice("labels", labels, LABELS)
    _check_choice("on_samples", on_samples, ON_SAMPLES)
    if tag is not None and (not isinstance(tag, str) or not tag.strip()):
        raise ValueError(f"tag must be a non-empty string or None, got {tag!r}")
    dataset = samples._root_dataset
    if on_samples == "dataset":
        duplicates_dataset = duplicates_dataset or f"{dataset.name}-duplicates"
        if not isinstance(duplicates_dataset, str) or not duplicates_dataset.strip():
            raise ValueError(f"duplicates_dataset must be a dataset name, got {duplicates_dataset!r}")
        if duplicates_dataset == dataset.name:
            raise ValueError("duplicates_dataset must not be the dataset itself")
        if fo.dataset_exists(duplicates_dataset):
            other = fo.load_dataset(duplicates_dataset)
            if other.media_type not in (None, fom.IMAGE):
                raise ValueError(f"Dataset '{duplicates_dataset}' does not hold images; choose another duplicates_dataset")
    elif duplicates_dataset is not None:
        raise ValueError("duplicates_dataset is only used with on_samples='dataset'")

    # another process (the App, the command line) may have recorded moves
    dataset.reload()
    if dry_run:
        plan = _plan(samples, dup, run_key, labels, on_samples, tag, duplicates_dataset, root)
        result = _plan_result(plan, dry_run=True)
        for path in mf.list_manifests(dup):
            try:
                m = mf.read_manifest(path)
            except mf.ManifestError:
                continue
            if m.state in ("planning", "moving") and m.dataset == dataset.name:
                result.messages.append(f"the unfinished move {m.move_id} would be finished first")
        result.messages.extend(_unfinished_elsewhere(dataset, dup))
        logger.debug("%s", result.format())  # the caller prints it
        return result

    core.require_run(samples, run_key)
    created = _ensure_writable_dir(dup)
    try:
        return _move_locked(samples, dataset, dup, run_key, labels, on_samples, tag, duplicates_dataset, root, progress)
    except (ValueError, locks.LockError):
        if created:
            _remove_created(dup, created)
        raise


def _move_locked(samples, dataset, dup, run_key, labels, on_samples, tag, duplicates_dataset, root, progress):
    lock_list = [_dir_lock(dup), _dataset_lock(dataset)]
    with locks.hold(lock_list):
        resumed = []
        for m in _unfinished(dup, dataset.name):
            folder_locks = [_folder_lock(r.path) for r in m.roots]
            with locks.hold(folder_locks):
                resumed.append(_finish(m, dup, dataset, progress, MoveResult(dup, False, m.labels, m.on_samples)).move_id)

        plan = _plan(samples, dup, run_key, labels, on_samples, tag, duplicates_dataset, root)
        folder_locks = [_folder_lock(r.path) for r in sorted(plan.roots, key=lambda r: r.path)]
        with locks.hold(folder_locks):
            result = _plan_result(plan, dry_run=False)
            result.resumed = resumed
            result.messages.extend(_unfinished_elsewhere(dataset, dup))
            result.files = []
            result.annotations = []
            m = _prepare(plan, result, progress)
            if m is None:
                logger.info("Nothing to move")
                return result
            return _finish(m, dup, dataset, progress, result)


def _ensure_writable_dir(dup):
    """Creates the duplicates folder if needed and checks it is writable.

    Returns:
        the topmost folder created, or None
    """
    created = None
    parent = dup
    while not os.path.lexists(parent):
        created = parent
        parent = os.path.dirname(parent)
    try:
        os.makedirs(os.path.join(dup, mf.STATE_DIR), exist_ok=True)
        _check_state_dir(dup)
        probe = os.path.join(dup, mf.STATE_DIR, f".probe-{os.getpid()}")
        with open(probe, "wb"):
            pass
        os.unlink(probe)
    except OSError as e:
        raise ValueError(
            f"Cannot write to the duplicates folder {dup}: {e.strerror or e}"
        ) from None
    return created


def _check_state_dir(dup):
    """The hidden state folder must be a real folder of the duplicates
    folder: locks and backups are written there."""
    state = os.path.join(dup, mf.STATE_DIR)
    if os.path.islink(state) or (os.path.lexists(state) and not os.path.isdir(state)):
        raise ValueError(f"{state} is not a folder (a symbolic link?); remove it and try again")


def _remove_created(dup, created):
    """Takes back the empty folders a refused run created."""
    for name in ("lock",):
        try:
            os.unlink(os.path.join(dup, mf.STATE_DIR, name))
        except OSError:
            pass
    fileops.remove_empty_dirs(os.path.join(dup, mf.STATE_DIR), os.path.dirname(created))


def _dir_lock(dup):
    return locks.FileLock(os.path.join(dup, mf.STATE_DIR, "lock"), f"the duplicates folder {dup}")


def _dataset_lock(dataset):
    return locks.FileLock(locks.keyed_lock_path("dataset", dataset._doc.id), f"dataset '{dataset.name}'")


def _folder_lock(path):
    return locks.FileLock(locks.keyed_lock_path("folder", os.path.realpath(path)), f"the folder {path}")


def _unfinished_elsewhere(dataset, dup):
    """Notes on unfinished moves of this dataset in other duplicates
    folders (their files are skipped here, never moved twice)."""
    notes = []
    records = (dataset.info or {}).get(INFO_KEY) or {}
    for move_id, record in sorted(records.items()):
        if not isinstance(record, dict) or record.get("restored"):
            continue
        other = record.get("duplicates_dir")
        if not isinstance(other, str) or other == dup:
            continue
        path = mf.manifest_path(other, move_id)
        if os.path.isfile(path) and _state_of(path) in ("planning", "moving"):
            notes.append(
                f"the move {move_id} into {other} is unfinished: move into "
                f"{other} again to finish it, or restore it"
            )
    return notes


def _unfinished(dup, dataset_name):
    out = []
    for path in mf.list_manifests(dup):
        try:
            m = mf.read_manifest(path)
        except mf.ManifestError as e:
            logger.warning("%s", e)
            continue
        if m.state in ("planning", "moving"):
            if m.dataset != dataset_name:
                logger.warning(
                    "The move %s of dataset '%s' in %s is unfinished; run a move "
                    "or restore on that dataset to finish it", m.move_id, m.dataset, dup,
                )
                continue
            out.append(m)
    return out


def _prepare(plan, result, progress):
    """Checksums, backups and the journaled plan; returns the manifest."""
    dup = plan.duplicates_dir
    dataset = plan.dataset
    files = []
    with ProgressBar(total=len(plan.files), progress=progress, label="Checking files", iters_str="files") as pb:
        for e in pb(plan.files):
            path = os.path.join(plan.roots[e.root].path, *e.src.split("/"))
            try:
                sha = fileops.sha256_file(path)
                st = os.lstat(path)
            except OSError as ex:
                result.skipped.append({"path": path, "reason": f"cannot be read: {ex.strerror}"})
                continue
            if (st.st_size, st.st_mtime_ns) != (e.size, e.mtime_ns):
                result.skipped.append({"path": path, "reason": "changed while being checked"})
                continue
            e.sha256 = sha
            files.append(e)
    images = [e for e in files if e.kind == "image"]
    if not images:
        return None
    image_ids = {sid for e in images for sid in e.sample_ids}
    # a label file whose image was dropped above stays
    files = [e for e in files if e.kind == "image" or set(e.sample_ids) <= image_ids]
    _compact_roots(plan, files)
    _check_space(plan, files, dup)
    move_id = mf.new_move_id()
    for n, e in enumerate(files):
        e.n = n
        e.dst = mf.destination(move_id, plan.roots[e.root], e.kind, e.src, plan.labels)

    state = os.path.join(dup, mf.STATE_DIR, move_id)
    os.makedirs(state)
    for r in plan.roots:
        os.mkdir(os.path.join(dup, r.dest))
    m = mf.Manifest(
        path=mf.manifest_path(dup, move_id),
        move_id=move_id,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        dataset=dataset.name,
        dataset_id=str(dataset._doc.id),
        run_key=plan.run_key,
        run_timestamp=plan.run_timestamp,
        labels=plan.labels,
        on_samples=plan.on_samples,
        tag=plan.tag,
        duplicates_dataset=plan.duplicates_dataset,
        label_fields=plan.label_fields,
        roots=plan.roots,
    )
    with mf.Journal(m.path, create=True) as journal:
        journal.append(mf.header_record(m))
        for e in files:
            journal.append(mf.file_record(e))
        for a, (ri, rel) in enumerate(plan.annotations):
            src = os.path.join(plan.roots[ri].path, *rel.split("/"))
            data = fileops.read_bytes(src)
            backup = mf.annotation_backup(move_id, ri, rel)
            bpath = os.path.join(dup, *backup.split("/"))
            fileops.makedirs_inside(dup, os.path.dirname(bpath))
            fileops.atomic_write(bpath, data, replace=False)
            entry = mf.AnnotationEntry(a, ri, rel, fileops.sha256_bytes(data), backup)
            m.annotations.append(entry)
            journal.append(mf.annotation_record(entry))
        backup = mf.samples_backup(move_id)
        sha, count = _backup_samples(dataset, sorted(image_ids), os.path.join(dup, *backup.split("/")))
        journal.append({"type": "samples", "backup": backup, "sha256": sha, "count": count})
        m.samples_backup = {"backup": backup, "sha256": sha, "count": count}
        try:
            _record_move(dataset, m, dup)
        except Exception as e:  # noqa: BLE001 - database errors vary (pymongo)
            raise RuntimeError(
                f"The database could not be reached while recording the move "
                f"({type(e).__name__}); nothing was moved. Run the same command again"
            ) from e
        journal.append({"type": "planned", "num_files": len(files), "num_annotations": len(plan.annotations)}, sync=True)
    m = mf.read_manifest(m.path)
    if m.problems or not m.planned:
        raise RuntimeError(f"The manifest {m.path} does not read back as written: {m.problems[:1]}")
    return m


def _check_space(plan, files, dup):
    """Refuses, before any change, a move whose copies (across file
    systems) and backups cannot fit in the duplicates folder."""
    dev = os.stat(dup).st_dev
    need = 0
    for e in files:
        src = os.path.join(plan.roots[e.root].path, *e.src.split("/"))
        if os.stat(os.path.dirname(src)).st_dev != dev:
            need += e.size
    for ri, rel in plan.annotations:
        need += 2 * os.path.getsize(os.path.join(plan.roots[ri].path, *rel.split("/")))
    # the manifest and the samples backup: a few KB per file
    need += 4096 * len(files) + (1 << 20)
    free = fileops.free_bytes(dup)
    if need > free:
        raise ValueError(
            f"Not enough space in {dup}: the move needs about "
            f"{need / 1e6:.1f} MB there and {free / 1e6:.1f} MB are free. "
            "Nothing was moved"
        )


def _compact_roots(plan, files):
    """Drops the roots no file moves from, renumbering the others."""
    used = sorted({e.root for e in files})
    index = {old: new for new, old in enumerate(used)}
    plan.roots = [plan.roots[i] for i in used]
    for e in files:
        e.root = index[e.root]
    plan.annotations = [(index[ri], rel) for ri, rel in plan.annotations if ri in index]
    plan.support = [(index[ri], rel) for ri, rel in plan.support if ri in index]
    plan.export_roots = [index[ri] for ri in plan.export_roots if ri in index]


def _backup_samples(dataset, ids, path):
    tmp = fileops.temp_path(path)
    count = 0
    with open(tmp, "w", encoding="ascii") as f:
        for sample in dataset.select(ids).iter_samples():
            f.write(json.dumps(sample.to_dict(include_private=True), ensure_ascii=True) + "\n")
            count += 1
        f.flush()
        os.fsync(f.fileno())
    fileops.rename_noreplace(tmp, path)
    fileops.fsync_dir(os.path.dirname(path))
    return fileops.sha256_file(path), count


def _record_move(dataset, m, dup):
    info = dict(dataset.info or {})
    moves = dict(info.get(INFO_KEY) or {})
    # what restore may touch, out of reach of whoever edits the manifest
    moves[m.move_id] = {
        "duplicates_dir": dup,
        "roots": [r.path for r in m.roots],
        "dests": [r.dest for r in m.roots],
        "layouts": [r.layout for r in m.roots],
        "labels": m.labels,
        "annotations": [[m.roots[a.root].path, a.path, a.sha256] for a in m.annotations],
        "samples_sha256": (m.samples_backup or {}).get("sha256"),
        "created": m.created,
    }
    info[INFO_KEY] = moves
    dataset.info = info
    dataset.save()


def _finish(m, dup, dataset, progress, result):
    """Runs (or finishes) a planned move from its manifest."""
    result.move_id = m.move_id
    result.manifest = m.path
    if m.problems:
        result.messages.append(f"{m.path}: {len(m.problems)} record(s) ignored; first: {m.problems[0]}")
    if m.state == "planning":
        with mf.Journal(m.path) as journal:
            journal.append({"type": "aborted", "reason": "interrupted while planning; nothing was moved"}, sync=True)
        for r in m.roots:
            fileops.prune_empty_tree(os.path.join(dup, r.dest))
        logger.info("Move %s was interrupted while planning; nothing had moved", m.move_id)
        return result
    _check_trust(m, dataset, None)
    _check_records(m, dataset, _read_all(dup), None)
    try:
        _finish_steps(m, dup, dataset, progress, result)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(
                e.errno,
                f"The disk of {dup} is full ({e.strerror}); the move stopped. "
                f"Nothing is lost: free space and run the same move again to "
                f"finish it, or restore it (manifest {m.path})",
            ) from None
        raise
    failed = [f for f in result.files if f["outcome"] == "failed"]
    if failed:
        result.messages.append(f"{len(failed)} file(s) could not be moved; first: {failed[0]['src']}: {failed[0].get('reason')}")
    if result.num_moved:
        result.messages.append(_samples_text(m.on_samples, m.dataset, m.tag, m.duplicates_dataset, m.labels, False))
    logger.debug(
        "Moved %d image(s) into %s (manifest %s)", result.num_moved, dup, m.path,
    )
    return result


def _finish_steps(m, dup, dataset, progress, result):
    with mf.Journal(m.path) as journal:
        try:
            _move_files(m, dup, journal, progress)
        finally:
            for e in m.files:
                kind, reason = m.outcomes.get(e.n, ("planned", None))
                if kind == "moved" or kind == "planned":
                    result.files.append(_file_dict(m.roots, dup, e, e.dst, kind))
                else:
                    result.files.append(_file_dict(m.roots, dup, e, e.dst, kind, reason))
                    result.skipped.append({"path": result.files[-1]["src"], "reason": reason})
        if "files" not in m.phases:
            journal.append({"type": "phase", "name": "files"}, sync=True)
        if "annotations" not in m.phases:
            _move_annotations(m, dup, journal, result)
            journal.append({"type": "phase", "name": "annotations"}, sync=True)
        if "database" not in m.phases:
            _update_database(m, dup, dataset)
            journal.append({"type": "phase", "name": "database"}, sync=True)
        if not m.complete:
            counts = {"moved": 0, "skipped": 0, "failed": 0}
            for kind, _ in m.outcomes.values():
                counts[kind] += 1
            journal.append(
                {"type": "complete", "num_moved": counts["moved"], "num_skipped": counts["skipped"], "num_failed": counts["failed"]},
                sync=True,
            )


def _move_files(m, dup, journal, progress):
    # an unfinished move retries what failed, so that a rerun after a full
    # disk puts every file of a folder into the same destination folder
    todo = [e for e in m.files if m.outcomes.get(e.n, ("failed",))[0] == "failed"]
    with ProgressBar(total=len(todo), progress=progress, label="Moving files", iters_str="files") as pb:
        for e in pb(todo):
            # a full disk stops the move here, unfinished: the rerun goes on
            kind, reason = _move_entry(m, e, dup)
            if m.outcomes.get(e.n) != (kind, reason):
                journal.append({"type": kind, "n": e.n, "reason": reason})
                m.outcomes[e.n] = (kind, reason)


def _move_entry(m, e, dup):
    root = m.roots[e.root]
    try:
        src = fileops.join_inside(root.path, e.src, "source path")
        dst = fileops.join_inside(dup, e.dst, "destination")
    except fileops.UnsafePathError as ex:
        return "failed", str(ex)
    if os.path.isdir(os.path.dirname(dst)):
        fileops.remove_temp_files(os.path.dirname(dst), [os.path.basename(dst)])
    s_ex, d_ex = os.path.lexists(src), os.path.lexists(dst)
    if d_ex and not s_ex:
        if os.path.islink(dst) or not os.path.isfile(dst) or os.path.getsize(dst) != e.size:
            return "failed", f"{dst} is not the file that was moved there"
        return "moved", None
    if s_ex and d_ex:
        # a copy across file systems was interrupted before the source went
        if _is_file_with(src, e.sha256) and _is_file_with(dst, e.sha256):
            os.unlink(src)
            return "moved", None
        return "failed", f"a different file exists at {dst}; left in place"
    if not s_ex:
        return "skipped", "file not found (removed since the move was planned)"
    st = os.lstat(src)
    if not stat.S_ISREG(st.st_mode):
        return "skipped", "no longer a regular file"
    if (st.st_size, st.st_mtime_ns) != (e.size, e.mtime_ns):
        return "skipped", "changed since the move was planned"
    try:
        fileops.makedirs_inside(dup, os.path.dirname(dst))
        how = fileops.move_file(src, dst, e.sha256)
    except fileops.UnsafePathError as ex:
        return "failed", str(ex)
    except fileops.FileChangedError:
        return "skipped", "changed since the move was planned (checksum differs)"
    except FileExistsError:
        return "failed", f"{dst} exists; never overwritten"
    except OSError as ex:
        if ex.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(ex.errno, f"the disk of {dup} is full ({ex.strerror}); free space and move again") from None
        return "failed", f"{ex.strerror or ex}"
    if how == "renamed" and fileops.sha256_file(dst) != e.sha256:
        # changed between the checksum and the rename: put it back
        fileops.rename_noreplace(dst, src)
        return "skipped", "changed since the move was planned (checksum differs)"
    return "moved", None


def _is_file_with(path, sha):
    try:
        return not os.path.islink(path) and os.path.isfile(path) and fileops.sha256_file(path) == sha
    except OSError:
        return False


# ------------------------------------------------------------------ annotations


def _moved_by_root(m):
    out = {}
    for e in m.moved_entries():
        if e.kind == "image":
            out.setdefault(e.root, set()).add(e.src)
    return out


def _write_dup_file(m, dup, rel, data, journal, result):
    """Writes a file into the duplicates folder, journaled; never over a
    file that is not this move's."""
    path = fileops.join_inside(dup, rel, "written path")
    fileops.makedirs_inside(dup, os.path.dirname(path))
    sha = fileops.sha256_bytes(data)
    if os.path.lexists(path):
        current = fileops.sha256_file(path) if os.path.isfile(path) and not os.path.islink(path) else None
        if current == sha:
            return
        if current is None or m.written.get(rel) != current:
            result.messages.append(f"{path} exists and was not written by this move; left as is")
            return
        journal.append({"type": "written", "path": rel, "sha256": sha}, sync=True)
        fileops.atomic_write(path, data, replace=True)
    else:
        journal.append({"type": "written", "path": rel, "sha256": sha}, sync=True)
        fileops.atomic_write(path, data, replace=False)
    m.written[rel] = sha
    result.annotations.append({"path": path, "action": "written"})


def _read_backup(dup, rel, sha):
    path = fileops.join_inside(dup, rel, "backup path")
    if os.path.islink(path):
        raise ValueError(f"The backup {path} is a symbolic link")
    data = fileops.read_bytes(path)
    if fileops.sha256_bytes(data) != sha:
        raise ValueError(f"The backup {path} does not match its checksum in the manifest")
    return data


def _move_annotations(m, dup, journal, result):
    moved = _moved_by_root(m)
    for ann in m.annotations:
        r = m.roots[ann.root]
        if ann.root not in moved:
            continue
        handler = annots.get_layout(r.layout)
        original = _read_backup(dup, ann.backup, ann.sha256)
        stays, goes, n = handler.split(ann.path, original, moved[ann.root], r.path, r.data_dir)
        src = fileops.join_inside(r.path, ann.path, "annotation path")
        new_sha = fileops.sha256_bytes(stays)
        current = fileops.sha256_file(src) if os.path.isfile(src) and not os.path.islink(src) else None
        if current == new_sha:
            pass
        elif current == ann.sha256:
            journal.append({"type": "rewritten", "a": ann.a, "sha256": new_sha}, sync=True)
            fileops.atomic_write(src, stays, replace=True)
            m.rewritten[ann.a] = new_sha
            result.annotations.append({"path": src, "action": f"lost the entries of {n} moved image(s)"})
        else:
            result.messages.append(
                f"{src} changed after it was backed up; left as is (it may still list moved images)"
            )
        if m.labels == "keep":
            _write_dup_file(m, dup, f"{r.dest}/{ann.path}", goes, journal, result)
    if m.labels != "keep":
        return
    for ri, r in enumerate(m.roots):
        if ri not in moved:
            continue
        handler = annots.get_layout(r.layout)
        if handler is None:
            if m.label_fields:
                _export_samples(m, dup, ri, journal, result)
            continue
        for rel in handler.support_files(r.path):
            data = fileops.read_bytes(os.path.join(r.path, *rel.split("/")))
            content = handler.support_content(rel, data, moved[ri], r.path, r.data_dir)
            _write_dup_file(m, dup, f"{r.dest}/{rel}", content, journal, result)


def _iter_backup_docs(m, dup):
    """The backed-up sample documents of a move, checked."""
    if m.samples_backup is None:
        return
    path = fileops.join_inside(dup, m.samples_backup["backup"], "samples backup")
    if os.path.islink(path) or not os.path.isfile(path):
        logger.warning("The samples backup %s is missing", path)
        return
    if fileops.sha256_file(path) != m.samples_backup["sha256"]:
        logger.warning("The samples backup %s does not match its checksum; using the records that fit the manifest", path)
    with open(path, "rb") as f:
        for line in f:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                yield doc


def _doc_id(doc):
    oid = doc.get("_id")
    return oid.get("$oid") if isinstance(oid, dict) else None


def _moved_docs(m, dup):
    """``{sample id: (doc, entry)}`` of moved images whose backed-up
    document matches the manifest (id and original filepath)."""
    entries = {}
    for e in m.moved_entries():
        if e.kind == "image":
            for sid in e.sample_ids:
                entries[sid] = e
    out = {}
    for doc in _iter_backup_docs(m, dup):
        sid = _doc_id(doc)
        e = entries.get(sid)
        if e is None:
            continue
        src = os.path.join(m.roots[e.root].path, *e.src.split("/"))
        if not isinstance(doc.get("filepath"), str) or os.path.normpath(doc["filepath"]) != src:
            continue
        out[sid] = (doc, e)
    return out


def _export_samples(m, dup, ri, journal, result):
    """The moved samples of a root as a FiftyOne dataset in the duplicates
    folder (``samples.json`` and ``metadata.json``)."""
    import shutil

    r = m.roots[ri]
    docs = [(doc, e) for doc, e in _moved_docs(m, dup).values() if e.root == ri]
    if not docs:
        return
    folder = os.path.join(dup, r.dest)
    tmp_ds = fo.Dataset()
    export_dir = os.path.join(dup, mf.STATE_DIR, m.move_id, "export")
    try:
        samples = []
        for doc, e in docs:
            s = fo.Sample.from_dict(doc)
            s.filepath = os.path.join(dup, *e.dst.split("/"))
            samples.append(s)
        tmp_ds._upsert_samples(samples)
        shutil.rmtree(export_dir, ignore_errors=True)
        tmp_ds.export(
            export_dir=export_dir,
            dataset_type=fo.types.FiftyOneDataset,
            export_media=False,
            rel_dir=folder,
            progress=False,
        )
        for name in ("metadata.json", "samples.json"):
            path = os.path.join(export_dir, name)
            if os.path.isfile(path):
                _write_dup_file(m, dup, f"{r.dest}/{name}", fileops.read_bytes(path), journal, result)
    finally:
        tmp_ds.delete()
        shutil.rmtree(export_dir, ignore_errors=True)


# ------------------------------------------------------------------ database


def _db_error(e, m, what):
    return RuntimeError(
        f"The database could not be updated while {what} ({type(e).__name__}: "
        f"{str(e).splitlines()[0] if str(e) else e}). The files are safe and "
        f"recorded in {m.path}; run the same command again to finish"
    )


def _update_database(m, dup, dataset):
    try:
        _update_database_inner(m, dup, dataset)
    except (ValueError, OSError):
        raise
    except Exception as e:  # noqa: BLE001 - database errors vary (pymongo)
        raise _db_error(e, m, "updating the moved samples") from e


def _update_database_inner(m, dup, dataset):
    dst_of = {}
    for e in m.moved_entries():
        if e.kind == "image":
            for sid in e.sample_ids:
                dst_of[sid] = os.path.join(dup, *e.dst.split("/"))
    if not dst_of:
        return
    present = set(dataset.select(list(dst_of)).values("id"))
    ids = [sid for sid in dst_of if sid in present]
    if m.on_samples == "delete":
        if ids:
            dataset.delete_samples(ids)
        return
    if m.on_samples == "dataset":
        other = _duplicates_dataset(m.duplicates_dataset, create=True)
        docs = _moved_docs(m, dup)
        have = set(other.select(list(docs)).values("id"))
        samples = []
        for sid, (doc, e) in docs.items():
            if sid in have:
                continue
            s = fo.Sample.from_dict(doc)
            s.filepath = dst_of[sid]
            if m.labels == "drop":
                for f in m.label_fields:
                    if s.has_field(f):
                        s.clear_field(f)
            if m.tag:
                s.tags = list(dict.fromkeys(list(s.tags) + [m.tag]))
            samples.append(s)
        if samples:
            other._upsert_samples(samples)
        if ids:
            dataset.delete_samples(ids)
        return
    if not ids:
        return
    dataset.set_values("filepath", {sid: dst_of[sid] for sid in ids}, key_field="id")
    if m.tag:
        dataset.select(ids).tag_samples(m.tag)
    if m.labels == "drop":
        for f in m.label_fields:
            if dataset.has_sample_field(f):
                dataset.set_values(f, {sid: None for sid in ids}, key_field="id")


def _duplicates_dataset(name, create):
    if fo.dataset_exists(name):
        return fo.load_dataset(name)
    if not create:
        return None
    ds = fo.Dataset(name, persistent=True)
    return ds


def _check_trust(m, dataset, trusted_roots):
    """Checks that a manifest's folders are ones this dataset (or the user)
    vouches for: a manifest is data anyone may have edited."""
    ok = set()
    if dataset is not None:
        info = dataset.info or {}
        record = (info.get(INFO_KEY) or {}).get(m.move_id)
        if isinstance(record, dict):
            ok.update(p for p in record.get("roots") or [] if isinstance(p, str))
        folders = (info.get("fiftyone_dedup") or {}).get("dirs") or []
        ok.update(os.path.normpath(p) for p in folders if isinstance(p, str))
    for p in trusted_roots or ():
        ok.add(os.path.normpath(os.path.abspath(os.path.expanduser(os.fspath(p)))))
    bad = [r.path for r in m.roots if r.path not in ok]
    if bad:
        where = f"dataset '{m.dataset}'" if dataset is not None else f"the dataset '{m.dataset}' (not found)"
        raise ValueError(
            f"The manifest {m.path} names folder(s) that {where} has no record "
            f"of: {', '.join(bad)}. If they are yours, pass them as "
            "trusted_roots (--trust_root) to restore into them"
        )


def _refused(m, line, text):
    where = f", line {line}" if line else ""
    return mf.ManifestError(
        f"Manifest {m.path}{where}: {text}; refused, nothing was changed "
        "(put back the manifest this move wrote, or remove it)"
    )


def _read_all(dup):
    """Every readable manifest of a duplicates folder."""
    out = []
    for path in mf.list_manifests(dup):
        try:
            out.append(mf.read_manifest(path))
        except mf.ManifestError:
            pass
    return out


def _is_image_name(rel):
    from fiftyone_dedup.engine.folders import IMAGE_EXTENSIONS

    return os.path.splitext(rel)[1].lower() in IMAGE_EXTENSIONS


def _written_allowed(m):
    """The duplicates-folder files a move may write: its annotation files."""
    if m.labels != "keep":
        return set()
    out = set()
    for ri, r in enumerate(m.roots):
        try:
            handler = annots.get_layout(r.layout)
        except annots.AnnotationError:
            continue
        if handler is None:
            out.update(f"{r.dest}/{name}" for name in ("samples.json", "metadata.json"))
            continue
        names = {a.path for a in m.annotations if a.root == ri} | set(handler._shared_names(r.path))
        out.update(f"{r.dest}/{name}" for name in names | set(handler._support_names()))
    return out


def _check_records(m, dataset, others, trusted_roots):
    """Refuses a manifest whose well-formed records name files its move did
    not plan, before anything is changed: restore and resume rewrite only
    the annotation files of the move's own plan (as the dataset recorded
    it when there is a record), never an image, and delete or overwrite in
    the duplicates folder only annotation files that this move wrote.

    Raises:
        fiftyone_dedup.moves.manifest.ManifestError: naming the manifest and record
    """
    if os.path.basename(m.path) != f"{mf.PREFIX}{m.move_id}{mf.SUFFIX}":
        raise _refused(m, 1, f"its header names the move {m.move_id!r}, not the one of its file name")
    info = (dataset.info or {}) if dataset is not None else {}
    record = (info.get(INFO_KEY) or {}).get(m.move_id)
    record = record if isinstance(record, dict) else {}
    rec_roots = [p for p in record.get("roots") or [] if isinstance(p, str)]
    verified = set()
    if isinstance(record.get("dests"), list):
        for r in m.roots:
            if r.path not in rec_roots:
                continue
            j = rec_roots.index(r.path)
            want = (record["dests"] + [None])[j], ((record.get("layouts") or []) + [None] * (j + 1))[j]
            if (r.dest, r.layout) != want:
                raise _refused(m, 1, f"the folder {r.path} was recorded as {want[0]!r} ({want[1] or 'no'} layout), not {r.dest!r} ({r.layout or 'no'} layout)")
            verified.add(r.path)
        if record.get("labels") not in (None, m.labels):
            raise _refused(m, 1, f"the move was recorded with labels {record['labels']!r}, not {m.labels!r}")
        sha = record.get("samples_sha256")
        if sha and m.samples_backup and m.samples_backup["sha256"] != sha:
            raise _refused(m, None, "its samples backup is not the one recorded for this move")
    # folders the dataset has no record of for this move (an older version,
    # the dataset gone, --trust_root): their layouts must be the folders'
    # own, and their names in the duplicates folder no other move's
    layouts = (info.get("fiftyone_dedup") or {}).get("layouts") or {}
    trusted = {os.path.normpath(os.path.abspath(os.path.expanduser(os.fspath(p)))) for p in trusted_roots or ()}
    for ri, r in enumerate(m.roots):
        if r.path in verified:
            continue
        # a restore replaces an annotation file that exists: of that layout only
        present = any(a.root == ri and os.path.lexists(os.path.join(r.path, *a.path.split("/"))) for a in m.annotations)
        if r.layout is not None and present:
            if r.path in layouts and r.path not in trusted:
                known = layouts[r.path]
            else:
                from fiftyone_dedup.engine import layouts as layouts_mod

                found = layouts_mod.detect_layout(r.path)
                known = found.name if found is not None else None
            if known != r.layout:
                raise _refused(m, 1, f"the folder {r.path} is not a {r.layout} dataset folder")
        for o in others:
            if o.path != m.path and r.dest in {x.dest for x in o.roots} and o.state not in ("restored", "aborted"):
                raise _refused(m, 1, f"its folder {r.dest!r} is the folder of the move {o.move_id}")
    planned = {tuple(a) for a in record.get("annotations") or [] if isinstance(a, list) and len(a) == 3}
    for ann in m.annotations:
        r = m.roots[ann.root]
        try:
            handler = annots.get_layout(r.layout)
        except annots.AnnotationError as e:
            handler, why = None, str(e)
        else:
            why = f"the folder {r.path} has no annotation files"
        if handler is not None:
            why = None
            if _is_image_name(ann.path) or any(e.root == ann.root and e.src == ann.path for e in m.files):
                why = f"{ann.path} is an image, not an annotation file"
            elif ann.path not in handler._shared_names(r.path):
                why = f"{ann.path} is not an annotation file of the {r.layout} folder {r.path}"
            elif r.path in verified and "annotations" in record and (r.path, ann.path, ann.sha256) not in planned:
                why = f"{ann.path} is not in the plan dataset '{m.dataset}' recorded for this move"
        if why:
            raise _refused(m, ann.line, f"'annotation' record: {why}")
    allowed = _written_allowed(m)
    moved = {e.dst for o in list(others) + [m] for e in o.files}
    for rel in m.written:
        why = None
        if rel in moved or _is_image_name(rel):
            why = f"{rel} is a moved image, not an annotation file this move wrote"
        elif rel not in allowed:
            why = f"{rel} is not an annotation file this move writes"
        if why:
            raise _refused(m, m.written_lines.get(rel), f"'written' record: {why}")


# ------------------------------------------------------------------ resume


def resume_moves(duplicates_dir, dataset_name=None, progress=None):
    """Finishes moves that were interrupted, from their manifests.

    Args:
        duplicates_dir: the duplicates folder
        dataset_name (None): only finish the moves of this dataset
        progress (None): see :mod:`fiftyone_dedup.progress`

    Returns:
        a list of :class:`MoveResult`, one per move finished

    Raises:
        fiftyone_dedup.moves.locks.LockError: if another run holds a lock
    """
    dup = check_dir_arg(duplicates_dir)
    if not os.path.isdir(dup):
        return []
    pending = [
        p for p in mf.list_manifests(dup)
        if _state_of(p) in ("planning", "moving")
    ]
    if not pending:
        return []
    out = []
    with locks.hold([_dir_lock(dup)]):
        for path in pending:
            m = mf.read_manifest(path)
            if m.state not in ("planning", "moving"):
                continue
            if dataset_name is not None and m.dataset != dataset_name:
                continue
            if not fo.dataset_exists(m.dataset):
                logger.warning(
                    "Cannot finish move %s: dataset '%s' not found; restore it "
                    "with trusted_roots instead", m.move_id, m.dataset,
                )
                continue
            dataset = fo.load_dataset(m.dataset)
            dataset.reload()
            with locks.hold([_dataset_lock(dataset)] + [_folder_lock(r.path) for r in m.roots]):
                out.append(_finish(m, dup, dataset, progress, MoveResult(dup, False, m.labels, m.on_samples)))
    return out


def _state_of(path):
    try:
        return mf.read_manifest(path).state
    except mf.ManifestError:
        return None


def list_moves(duplicates_dir):
    """The moves recorded in a duplicates folder, oldest first.

    Args:
        duplicates_dir: the folder

    Returns:
        a list of summary dicts (``move_id``, ``state``, ``dataset``,
        ``num_moved``, ...; see :meth:`fiftyone_dedup.moves.manifest.Manifest.summary`)
    """
    out = []
    for path in mf.list_manifests(check_dir_arg(duplicates_dir)):
        try:
            out.append(mf.read_manifest(path).summary())
        except mf.ManifestError as e:
            out.append({"manifest": path, "state": "unreadable", "error": str(e)})
    return out


# ------------------------------------------------------------------ restore


def restore(duplicates_dir, move_id=None, dataset_name=None, trusted_roots=None, dry_run=False, progress=None):
    """Undoes moves from their manifests: files, annotation files and
    dataset samples go back.

    Moves are undone newest first. Each file goes back only to a folder
    that the move's dataset has a record of (or that you name in
    ``trusted_roots``), never through a symbolic link out of it, never over
    an existing file, and only if its checksum is the one recorded.
    Annotation files are put back byte for byte from their backups when
    they still hold what the move wrote; only the annotation files of the
    move's plan (as its dataset recorded it) are rewritten, and only the
    annotation files the move wrote are deleted. A move counts as restored
    when its files are back, whatever its manifest records. Safe to
    interrupt and run again.

    Args:
        duplicates_dir: the duplicates folder
        move_id (None): undo only this move; all moves not yet undone by
            default
        dataset_name (None): undo only the moves of this dataset
        trusted_roots (None): dataset folders to restore into even though
            no dataset records them (for example after the dataset was
            deleted)
        dry_run (False): only report what would be restored
        progress (None): see :mod:`fiftyone_dedup.progress`

    Returns:
        a :class:`RestoreResult`

    Raises:
        ValueError: if the folder or move does not exist
        fiftyone_dedup.moves.manifest.ManifestError: if a manifest's records name
            files its move did not plan or write (nothing is changed)
        fiftyone_dedup.moves.locks.LockError: if another run holds a lock
    """
    dup = check_dir_arg(duplicates_dir)
    if not os.path.isdir(dup):
        raise ValueError(f"Duplicates folder not found: {dup}")
    result = RestoreResult(duplicates_dir=dup, dry_run=dry_run)
    manifests = []
    for path in mf.list_manifests(dup):
        try:
            m = mf.read_manifest(path)
        except mf.ManifestError as e:
            result.messages.append(str(e))
            continue
        if move_id is not None and m.move_id != move_id:
            continue
        if dataset_name is not None and m.dataset != dataset_name:
            continue
        manifests.append(m)
    if move_id is not None and not manifests:
        raise ValueError(f"No move {move_id!r} in {dup}")
    todo = [m for m in reversed(manifests) if _needs_restore(m, dup)]
    if not todo:
        result.messages.append(f"nothing to restore in {dup}")
        return result
    if dry_run:
        _check_all(todo, dup, trusted_roots)
        for m in todo:
            _restore_one(m, dup, trusted_roots, True, progress, result)
        return result
    _check_state_dir(dup)
    with locks.hold([_dir_lock(dup)]):
        # as they are now that the lock is held; all checked before any change
        todo = [mf.read_manifest(m.path) for m in todo]
        _check_all(todo, dup, trusted_roots)
        for m in todo:
            m = mf.read_manifest(m.path)
            if not _needs_restore(m, dup):
                continue  # a newer move's restore brought its files back
            dataset = fo.load_dataset(m.dataset) if fo.dataset_exists(m.dataset) else None
            held = ([_dataset_lock(dataset)] if dataset is not None else []) + [
                _folder_lock(r.path) for r in sorted(m.roots, key=lambda r: r.path)
            ]
            with locks.hold(held):
                _restore_one(m, dup, trusted_roots, False, progress, result)
    logger.debug("%s", result.format())  # the caller prints it
    return result


def _files_out(m, dup):
    """The files of a move that are in the duplicates folder and not back."""
    out = []
    for e in m.files:
        try:
            src = fileops.join_inside(m.roots[e.root].path, e.src, "source path")
            dst = fileops.join_inside(dup, e.dst, "destination")
        except fileops.UnsafePathError:
            continue
        if os.path.lexists(dst) and not os.path.lexists(src):
            out.append(e)
    return out


def _needs_restore(m, dup):
    """Whether a move is to be undone: from its files, not its records (a
    move is restored when its files are back)."""
    if m.aborted:
        return False
    return not m.restore_complete or bool(_files_out(m, dup))


def _check_all(todo, dup, trusted_roots):
    every = _read_all(dup)
    for m in todo:
        dataset = fo.load_dataset(m.dataset) if fo.dataset_exists(m.dataset) else None
        if dataset is not None:
            dataset.reload()
        _check_records(m, dataset, every, trusted_roots)


def _restore_one(m, dup, trusted_roots, dry_run, progress, result):
    dataset = fo.load_dataset(m.dataset) if fo.dataset_exists(m.dataset) else None
    if dataset is not None:
        dataset.reload()  # its move records may come from another process
    summary = {"move_id": m.move_id, "dataset": m.dataset, "num_restored": 0, "num_skipped": 0, "error": None}
    result.moves.append(summary)
    if m.problems:
        result.messages.append(
            f"{m.path}: {len(m.problems)} record(s) ignored (their files, if any, "
            f"stay in the duplicates folder); first: {m.problems[0]}"
        )
    try:
        _check_trust(m, dataset, trusted_roots)
    except ValueError as e:
        summary["error"] = str(e)
        result.messages.append(str(e))
        return
    if m.state == "planning":
        if not dry_run:
            with mf.Journal(m.path) as journal:
                journal.append({"type": "aborted", "reason": "interrupted while planning; nothing was moved"}, sync=True)
            for r in m.roots:
                fileops.prune_empty_tree(os.path.join(dup, r.dest))
        return
    if dry_run:
        for e in m.files:
            r = m.roots[e.root]
            src = os.path.join(r.path, *e.src.split("/"))
            dst = os.path.join(dup, *e.dst.split("/"))
            if os.path.lexists(dst) and not os.path.lexists(src):
                result.files.append({"src": src, "dst": dst, "kind": e.kind, "outcome": "planned", "reason": None})
                summary["num_restored"] += e.kind == "image"
        for ann, src in _annotations_to_put_back(m):
            result.annotations.append({"path": src, "action": "would be put back from its backup"})
        return
    with mf.Journal(m.path) as journal:
        if not m.restore_started:
            journal.append({"type": "restore_started"}, sync=True)
            m.restore_started = True
        # every file, whatever the records say: those back already stay back
        outcomes = {}
        with ProgressBar(total=len(m.files), progress=progress, label="Restoring files", iters_str="files") as pb:
            for e in pb(m.files):
                kind, reason = _restore_entry(m, e, dup)
                if m.restored.get(e.n) != (kind, reason):
                    journal.append({"type": "restored" if kind == "restored" else "restore_skipped", "n": e.n, "reason": reason})
                    m.restored[e.n] = (kind, reason)
                outcomes[e.n] = (kind, reason)
        for e in m.files:
            kind, reason = outcomes[e.n]
            r = m.roots[e.root]
            result.files.append({
                "src": os.path.join(r.path, *e.src.split("/")),
                "dst": os.path.join(dup, *e.dst.split("/")),
                "kind": e.kind,
                "outcome": kind,
                "reason": reason,
            })
            if kind == "restored":
                summary["num_restored"] += e.kind == "image"
            elif reason != "was not moved":
                summary["num_skipped"] += 1
        if "files" not in m.restore_phases:
            journal.append({"type": "restore_phase", "name": "files"}, sync=True)
        # put back whatever is still as the move left it (idempotent)
        _restore_annotations(m, dup, result)
        if "annotations" not in m.restore_phases:
            journal.append({"type": "restore_phase", "name": "annotations"}, sync=True)
        back = {n for n, (kind, _) in outcomes.items() if kind == "restored"}
        if dataset is None:
            if "database" not in m.restore_phases:
                result.messages.append(f"dataset '{m.dataset}' not found: its samples were not restored")
        else:
            try:
                _restore_database(m, dup, dataset, back, only_out="database" in m.restore_phases)
            except (ValueError, OSError):
                raise
            except Exception as e:  # noqa: BLE001 - database errors vary
                raise _db_error(e, m, "restoring the samples") from e
        if "database" not in m.restore_phases:
            journal.append({"type": "restore_phase", "name": "database"}, sync=True)
        for r in m.roots:
            fileops.prune_empty_tree(os.path.join(dup, r.dest))
        fileops.prune_empty_tree(os.path.join(dup, mf.STATE_DIR, m.move_id, "dropped"))
        if not m.restore_complete:
            journal.append({"type": "restore_complete"}, sync=True)
    if dataset is not None:
        _mark_restored(dataset, m)


def _restore_entry(m, e, dup):
    root = m.roots[e.root]
    was_moved = m.outcomes.get(e.n, (None,))[0] == "moved"
    try:
        src = fileops.join_inside(root.path, e.src, "source path")
        dst = fileops.join_inside(dup, e.dst, "destination")
    except fileops.UnsafePathError as ex:
        return "skipped", str(ex)
    if os.path.isdir(os.path.dirname(src)):
        fileops.remove_temp_files(os.path.dirname(src), [os.path.basename(src)])
    s_ex, d_ex = os.path.lexists(src), os.path.lexists(dst)
    if s_ex and not d_ex:
        # back already (an earlier restore), or never moved
        return ("restored", None) if was_moved else ("skipped", "was not moved")
    if not d_ex:
        return "skipped", f"missing: neither {src} nor {dst} exists"
    if os.path.islink(dst) or not os.path.isfile(dst):
        return "skipped", f"{dst} is not a regular file; left"
    if not _is_file_with(dst, e.sha256):
        return "skipped", f"{dst} changed since the move (checksum differs); left"
    if s_ex:
        if _is_file_with(src, e.sha256):
            # a copy back across file systems was interrupted
            os.unlink(dst)
            return "restored", None
        return "skipped", f"a different file now exists at {src}; the moved one stays at {dst}"
    try:
        fileops.makedirs_inside(root.path, os.path.dirname(src))
        fileops.move_file(dst, src, e.sha256)
    except fileops.UnsafePathError as ex:
        return "skipped", str(ex)
    except FileExistsError:
        return "skipped", f"a file now exists at {src}; the moved one stays at {dst}"
    except OSError as ex:
        return "skipped", f"cannot move back: {ex.strerror or ex}"
    return "restored", None


def _annotations_to_put_back(m):
    """``(entry, path)`` of the shared annotation files that still hold
    what the move wrote (what a restore puts back)."""
    out = []
    for ann in m.annotations:
        if ann.a not in m.rewritten:
            continue
        try:
            src = fileops.join_inside(m.roots[ann.root].path, ann.path, "annotation path")
        except fileops.UnsafePathError:
            continue
        if os.path.isfile(src) and not os.path.islink(src) and fileops.sha256_file(src) == m.rewritten[ann.a]:
            out.append((ann, src))
    return out


def _restore_annotations(m, dup, result):
    for ann in m.annotations:
        if ann.a not in m.rewritten:
            continue
        r = m.roots[ann.root]
        try:
            src = fileops.join_inside(r.path, ann.path, "annotation path")
            original = _read_backup(dup, ann.backup, ann.sha256)
        except (ValueError, OSError) as e:
            result.messages.append(f"annotation file {ann.path} of {r.path} not restored: {e}")
            continue
        current = None
        if os.path.lexists(src):
            current = fileops.sha256_file(src) if os.path.isfile(src) and not os.path.islink(src) else "?"
        if current == ann.sha256:
            continue
        if current is None:
            fileops.makedirs_inside(r.path, os.path.dirname(src))
            fileops.atomic_write(src, original, replace=False)
        elif current == m.rewritten[ann.a]:
            fileops.atomic_write(src, original, replace=True)
        else:
            backup = os.path.join(dup, *ann.backup.split("/"))
            result.messages.append(
                f"{src} changed after the move (an edit or a later move); it was left "
                f"as is. The original is at {backup}: restore later moves first, or merge by hand"
            )
            continue
        result.annotations.append({"path": src, "action": "put back from its backup"})
    # only what this move wrote (checked by _check_records), never a moved file
    moved = {e.dst for e in m.files}
    for rel, sha in m.written.items():
        if rel in moved:
            continue
        try:
            path = fileops.join_inside(dup, rel, "written path")
        except fileops.UnsafePathError:
            continue
        if os.path.isfile(path) and not os.path.islink(path):
            if fileops.sha256_file(path) == sha:
                os.unlink(path)
            else:
                result.messages.append(f"{path} changed after the move; left as is")


def _restore_database(m, dup, dataset, back_ns, only_out=False):
    """Puts back the samples of the files that are back (``back_ns``: entry
    numbers); with ``only_out``, only those the dataset does not have back
    yet (a rerun: what was restored stays as it is now)."""
    docs = {sid: d for sid, d in _moved_docs(m, dup).items() if d[1].n in back_ns}
    if not docs:
        return
    ids = list(docs)
    current = dict(zip(*dataset.select(ids).values(["id", "filepath"])))
    if only_out:
        moved_path = {sid: os.path.join(dup, *e.dst.split("/")) for sid, (_, e) in docs.items()}
        out = {
            sid for sid in ids
            if current.get(sid) == moved_path[sid] or (sid not in current and m.on_samples != "keep")
        }
        docs = {sid: d for sid, d in docs.items() if sid in out}
        if not docs:
            return
        ids = list(docs)
    present = set(current) & set(ids)
    if m.on_samples == "keep":
        owner = dict(zip(*dataset.values(["filepath", "id"])))
        back = []
        for sid in ids:
            if sid not in present:
                continue
            other = owner.get(docs[sid][0]["filepath"])
            if other is not None and other != sid:
                logger.warning(
                    "Sample %s keeps its moved filepath: sample %s of dataset '%s' now has %s",
                    sid, other, dataset.name, docs[sid][0]["filepath"],
                )
                continue
            back.append(sid)
        if back:
            dataset.set_values("filepath", {sid: docs[sid][0]["filepath"] for sid in back}, key_field="id")
            if m.tag:
                dataset.select(back).untag_samples(m.tag)
            if m.labels == "drop":
                for f in m.label_fields:
                    values = {}
                    for sid in back:
                        doc = docs[sid][0]
                        if doc.get(f) is not None:
                            values[sid] = fo.Sample.from_dict({"filepath": doc["filepath"], f: doc[f]})[f]
                    if values and dataset.has_sample_field(f):
                        dataset.set_values(f, values, key_field="id")
    elif m.on_samples == "dataset" and m.duplicates_dataset:
        other = _duplicates_dataset(m.duplicates_dataset, create=False)
        if other is not None:
            there = list(other.select(ids).values("id"))
            if there:
                other.delete_samples(there)
            if len(other) == 0:
                other.delete()
    missing = [sid for sid in ids if sid not in present]
    if not missing:
        return
    taken = set(dataset.values("filepath"))
    samples = []
    for sid in missing:
        doc = docs[sid][0]
        if doc["filepath"] in taken:
            logger.warning("Sample %s not restored: dataset '%s' already has a sample for %s", sid, dataset.name, doc["filepath"])
            continue
        samples.append(fo.Sample.from_dict(doc))
    if samples:
        dataset._upsert_samples(samples)


def _mark_restored(dataset, m):
    try:
        info = dict(dataset.info or {})
        moves = dict(info.get(INFO_KEY) or {})
        if m.move_id in moves and isinstance(moves[m.move_id], dict):
            record = dict(moves[m.move_id])
            record["restored"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            moves[m.move_id] = record
            info[INFO_KEY] = moves
            dataset.info = info
            dataset.save()
    except Exception as e:  # noqa: BLE001 - bookkeeping only
        logger.warning("Could not record the restore in dataset '%s': %s", dataset.name, e)
