"""The plan of a move: which duplicates' files move where, which
annotation files travel with them, split or are copied, and why a file
stays; every check made before anything changes.

A plan's header fields (dataset, run, labels, what becomes of the samples,
the dataset folders and the files) are the :class:`Manifest` the move
journals; :class:`Plan` adds what only planning needs.
"""

import os
import stat
from dataclasses import dataclass

import fiftyone.core.labels as fol
from fiftyone import ViewField as F

from fiftyone_dedup.engine import field_names
from fiftyone_dedup.engine import runs
from fiftyone_dedup.engine.folders import SOURCE_FIELD
from fiftyone_dedup.moves import annotations as annots
from fiftyone_dedup.moves import fileops
from fiftyone_dedup.moves import paths
from fiftyone_dedup.moves.model import FileEntry, Manifest, Root
from fiftyone_dedup.moves.results import MoveResult, file_dict, samples_text


@dataclass
class Plan:
    """A planned move.

    Attributes:
        move: the move's :class:`fiftyone_dedup.moves.model.Manifest`,
            without its id yet; its ``files`` are the candidates
        dataset: the dataset
        duplicates_dir: the duplicates folder
        skipped: one ``{"path", "reason", "sample_ids"}`` dict per file
            that stays
        shared: ``(root index, path)`` of the shared annotation files to
            split
        support: ``(root index, path)`` of the support files to copy
        export_roots: the roots whose moved samples are exported as a
            FiftyOne dataset
        already_moved: duplicates already in the duplicates folder
    """

    move: Manifest
    dataset: object
    duplicates_dir: str
    skipped: list
    shared: list
    support: list
    export_roots: list
    already_moved: int


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
        self.folder_dirs = [
            os.path.normpath(d) for d in info.get("dirs") or [] if isinstance(d, str)
        ]
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
            self.roots.append(Root(path=path, dest="", layout=layout, data_dir=data_dir))
        return self._by_path[path]

    def all_folders(self):
        """Every dataset folder, used or not, to check the duplicates folder."""
        return self.roots + [
            Root(path=d, dest="", layout=self.layouts.get(d), data_dir=self.data_dir)
            for d in self.folder_dirs
        ]


def make_plan(samples, duplicates_dir, run_key, labels, on_samples, tag, duplicates_dataset, root):
    """What a move of a run's duplicates would do, checked; changes nothing.

    Args:
        samples: the dataset or view whose duplicates move
        duplicates_dir: the (checked) duplicates folder
        run_key: the duplicates run
        labels: ``"keep"`` or ``"drop"``
        on_samples: ``"keep"``, ``"delete"`` or ``"dataset"``
        tag: the tag of moved samples, or None
        duplicates_dataset: the dataset for ``on_samples="dataset"``
        root: the folder of samples not loaded from folders, or None

    Returns:
        a :class:`Plan`

    Raises:
        ValueError: if a shared annotation file cannot be split, or the
            duplicates folder is inside a dataset folder
    """
    dataset = samples._root_dataset
    config = runs.require_run(samples, run_key)
    index = _Samples(dataset, field_names.stamp_field(config.field))
    roots = _Roots(dataset, index, duplicates_dir, root)
    images, skipped, already = _plan_images(samples, run_key, config, index, roots, duplicates_dir)
    check_duplicates_dir(roots.all_folders(), duplicates_dir)
    labels_files, label_skips = _plan_label_files(images, roots.roots, index)
    label_fields = _label_fields(dataset)
    shared, support, export_roots = _plan_annotation_files(
        images, roots.roots, labels, label_fields
    )
    taken = set()
    for r in roots.roots:
        r.dest = paths.dest_name(r.path, taken, duplicates_dir)
        taken.add(r.dest)
    ts = getattr(dataset.get_run_info(run_key), "timestamp", None)
    move = Manifest(
        path=None,
        move_id=None,
        created=None,
        dataset=dataset.name,
        dataset_id=str(dataset._doc.id),
        run_key=run_key,
        run_timestamp=ts.isoformat() if hasattr(ts, "isoformat") else None,
        labels=labels,
        on_samples=on_samples,
        tag=tag,
        duplicates_dataset=duplicates_dataset,
        label_fields=label_fields,
        roots=roots.roots,
        files=images + labels_files,
    )
    return Plan(
        move=move,
        dataset=dataset,
        duplicates_dir=duplicates_dir,
        skipped=skipped + label_skips,
        shared=shared,
        support=support,
        export_roots=export_roots,
        already_moved=already,
    )


def _plan_images(samples, run_key, config, index, roots, duplicates_dir):
    """The duplicates' files that can move, and why the others cannot."""
    group_f, role_f, kept_f, _ = field_names.output_fields(run_key, config.metric)
    # cross-dataset runs record the kept file, which may be in another dataset
    kfp_f = runs.output_field(run_key, "kept_filepath")
    fields = [
        f
        for f in ("id", group_f, kept_f, kfp_f)
        if f != kfp_f or samples._root_dataset.has_sample_field(f)
    ]
    view = samples.match(F(role_f) == field_names.ROLE_DUPLICATE)
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
            reason = file_problem(path, rpath, _file_stamp(index.stamp_of.get(sid)))
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
            entry = by_path[path] = FileEntry(
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
            problem = file_problem(lpath, r.path, None)
            if others:
                problem = f"also the annotation file of {others[0]}, which stays"
            if problem:
                skipped.append({"path": lpath, "reason": problem, "sample_ids": list(e.sample_ids)})
                continue
            st = os.lstat(lpath)
            files.append(
                FileEntry(
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
            problem = file_problem(path, r.path, None)
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


def file_problem(path, root, stamp):
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


def check_duplicates_dir(roots, duplicates_dir):
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


def compact_roots(plan, files):
    """Drops the roots no file of ``files`` moves from, renumbering the
    others (in the files and the plan)."""
    used = sorted({e.root for e in files})
    index = {old: new for new, old in enumerate(used)}
    plan.move.roots = [plan.move.roots[i] for i in used]
    for e in files:
        e.root = index[e.root]
    plan.shared = [(index[ri], rel) for ri, rel in plan.shared if ri in index]
    plan.support = [(index[ri], rel) for ri, rel in plan.support if ri in index]
    plan.export_roots = [index[ri] for ri in plan.export_roots if ri in index]


def plan_result(plan, dry_run):
    """The :class:`fiftyone_dedup.moves.results.MoveResult` of a plan: what
    would move where (files named ``<move_id>`` where the id goes)."""
    m = plan.move
    dup = plan.duplicates_dir
    res = MoveResult(
        duplicates_dir=dup, dry_run=dry_run, labels=m.labels, on_samples=m.on_samples,
    )
    for e in m.files:
        r = m.roots[e.root]
        dst = paths.destination("<move_id>", r, e.kind, e.src, m.labels)
        res.files.append(file_dict(m.roots, dup, e, dst, "planned"))
    res.skipped = [{"path": s["path"], "reason": s["reason"]} for s in plan.skipped]
    if plan.already_moved:
        res.messages.append(
            f"{plan.already_moved} duplicate(s) are already in {dup} (moved earlier)"
        )
    moved = {}
    for e in m.files:
        if e.kind == "image":
            moved.setdefault(e.root, 0)
            moved[e.root] += 1
    for ri, rel in plan.shared:
        r = m.roots[ri]
        res.annotations.append(
            {
                "path": os.path.join(r.path, rel),
                "action": f"loses the entries of {moved.get(ri, 0)} moved image(s) "
                "(original backed up)",
            }
        )
        if m.labels == "keep":
            res.annotations.append(
                {
                    "path": os.path.join(dup, r.dest, rel),
                    "action": "written with the moved images' entries",
                }
            )
    for ri, rel in plan.support:
        r = m.roots[ri]
        res.annotations.append(
            {"path": os.path.join(dup, r.dest, rel), "action": "copied for loading"}
        )
    for ri in plan.export_roots:
        r = m.roots[ri]
        res.annotations.append(
            {
                "path": os.path.join(dup, r.dest, "samples.json"),
                "action": "FiftyOne dataset of the moved samples' labels "
                f"({', '.join(m.label_fields)})",
            }
        )
    if dry_run and m.files:
        res.messages.append(
            samples_text(
                m.on_samples, plan.dataset.name, m.tag, m.duplicates_dataset, m.labels, True
            )
        )
    return res

