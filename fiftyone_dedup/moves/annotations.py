"""Annotation files of labeled dataset folders, split when images move out.

When duplicates leave a labeled folder, the folder must stay a valid
dataset (its annotation files no longer refer to them) and, with labels
kept, the duplicates folder must become one too. Per layout (see
:mod:`fiftyone_dedup.engine.layouts`) this module knows:

- the per-image annotation files that travel with an image (VOC
  ``labels/<name>.xml``, KITTI ``labels/<name>.txt``, YOLO ``.txt``);
- the shared annotation files to split into "what stays" and "what moved"
  (COCO and FiftyOne ``labels.json``, CVAT ``labels.xml``, FiftyOne
  ``samples.json``, YOLO image lists);
- the support files the duplicates folder needs to load (YOLO
  ``obj.names`` and ``dataset.yaml``, FiftyOne ``metadata.json``).

Splitting works on the files themselves, keeping every other key and
entry as it was. Pure Python; no FiftyOne. Paths are relative to the
dataset folder, ``/``-separated.
"""

import json
import logging
import os
import posixpath
import xml.etree.ElementTree as ET

logger = logging.getLogger(__name__)


class AnnotationError(ValueError):
    """An annotation file cannot be read or split; the message names it."""


def _images_rel(data_dir):
    return "data" if data_dir else ""


def _under(rel, folder):
    """``rel`` relative to ``folder`` (both root-relative), or None."""
    if not folder:
        return rel
    prefix = folder + "/"
    return rel[len(prefix):] if rel.startswith(prefix) else None


def _norm(rel):
    rel = posixpath.normpath(rel)
    return None if rel.startswith("../") or rel == ".." else rel


def _resolve(entry, base, root):
    """A path from an annotation file as a root-relative path, or None.

    Args:
        entry: the path as written (relative to ``base``, or absolute)
        base: the root-relative folder relative entries are relative to
        root: the dataset folder
    """
    if not isinstance(entry, str) or not entry:
        return None
    if entry.startswith("/"):
        path = os.path.normpath(entry)
        prefix = root.rstrip("/") + "/"
        return path[len(prefix):] if path.startswith(prefix) else None
    return _norm(posixpath.join(base, entry) if base else entry)


def _load_json(data, rel):
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise AnnotationError(f"Cannot read {rel} as JSON: {e}") from None


def _dump_json(obj):
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")


class Layout:
    """Annotation handling of one layout; subclasses override what applies.

    Args:
        name: the layout name
    """

    name = None

    #: whether images have annotation files of their own
    has_label_files = False

    def label_files(self, image_rel, data_dir):
        """The per-image annotation files of an image (that may exist).

        Args:
            image_rel: the image's root-relative path
            data_dir: whether images are in ``data/``

        Returns:
            a list of root-relative paths
        """
        return []

    def shared_files(self, root, data_dir):
        """The shared annotation files present in a dataset folder.

        Args:
            root: the dataset folder
            data_dir: whether images are in ``data/``

        Returns:
            a list of root-relative paths
        """
        return [
            rel
            for rel in self.shared_names(root)
            if os.path.isfile(os.path.join(root, rel))
            and not os.path.islink(os.path.join(root, rel))
        ]

    def shared_names(self, root):
        """The names of the shared annotation files a folder of this layout
        may have (root-relative; present or not)."""
        return []

    def split(self, rel, data, moved, root, data_dir):
        """Splits a shared annotation file.

        Args:
            rel: the file's root-relative path
            data: its bytes
            moved: the set of root-relative image paths that move
            root: the dataset folder
            data_dir: whether images are in ``data/``

        Returns:
            a tuple ``(stays, moves, num_moved)``: the new bytes of the
            source file, the bytes of the duplicates folder's copy, and how
            many images' entries moved

        Raises:
            AnnotationError: if the file cannot be read
        """
        raise NotImplementedError

    def support_files(self, root):
        """Files copied (maybe adapted) into the duplicates folder so that
        it loads; root-relative paths of files that exist."""
        return [
            rel
            for rel in self.support_names()
            if os.path.isfile(os.path.join(root, rel))
            and not os.path.islink(os.path.join(root, rel))
        ]

    def support_names(self):
        """The names of this layout's support files (root-relative)."""
        return []

    def support_content(self, rel, data, moved, root, data_dir):
        """The duplicates folder's version of a support file.

        Args:
            rel: the file's root-relative path
            data: its bytes
            moved: the set of root-relative image paths that move
            root: the dataset folder
            data_dir: whether images are in ``data/``

        Returns:
            bytes
        """
        return data


class COCO(Layout):
    """COCO detection: ``labels.json`` with ``images`` and ``annotations``."""

    name = "coco"

    def shared_names(self, root):
        return ["labels.json"]

    def split(self, rel, data, moved, root, data_dir):
        obj = _load_json(data, rel)
        if not isinstance(obj, dict) or not isinstance(obj.get("images", []), list):
            raise AnnotationError(f"{rel} is not a COCO file (no 'images' list)")
        base = _images_rel(data_dir)
        stay_imgs, move_imgs, move_ids = [], [], set()
        for im in obj.get("images") or []:
            path = _resolve(im.get("file_name") if isinstance(im, dict) else None, base, root)
            if path is not None and path in moved:
                move_imgs.append(im)
                image_id = im.get("id")
                if isinstance(image_id, (int, str)):
                    move_ids.add(image_id)
            else:
                stay_imgs.append(im)
        anns = obj.get("annotations") or []
        if not isinstance(anns, list):
            raise AnnotationError(f"{rel}: 'annotations' is not a list")

        def moves(a):
            return (
                isinstance(a, dict)
                and isinstance(a.get("image_id"), (int, str))
                and a["image_id"] in move_ids
            )

        stays = dict(obj)
        stays["images"] = stay_imgs
        stays["annotations"] = [a for a in anns if not moves(a)]
        goes = dict(obj)
        goes["images"] = move_imgs
        goes["annotations"] = [a for a in anns if moves(a)]
        return _dump_json(stays), _dump_json(goes), len(move_imgs)


class _PerImage(Layout):
    """Per-image annotation files in ``labels/``, named like the image."""

    ext = None
    has_label_files = True

    def label_files(self, image_rel, data_dir):
        rel = _under(image_rel, _images_rel(data_dir))
        if rel is None:
            return []
        return ["labels/" + posixpath.splitext(rel)[0] + self.ext]


class VOC(_PerImage):
    """Pascal VOC: ``labels/<name>.xml`` per image."""

    name = "voc"
    ext = ".xml"


class KITTI(_PerImage):
    """KITTI: ``labels/<name>.txt`` per image."""

    name = "kitti"
    ext = ".txt"


def _split_lines(data, rel, moved, root):
    """Splits an image list (one path per line, relative to its folder)."""
    base = posixpath.dirname(rel)
    stay, goes, n = [], [], 0
    for line in data.decode("utf-8", "surrogateescape").splitlines(keepends=True):
        entry = line.strip()
        path = _resolve(entry, base, root) if entry else None
        if path is not None and path in moved:
            n += 1
            # written relative, so the duplicates folder's list points into it
            rel_entry = posixpath.relpath(path, base) if base else path
            goes.append(rel_entry + "\n")
        else:
            stay.append(line)
    encode = lambda lines: "".join(lines).encode("utf-8", "surrogateescape")  # noqa: E731
    return encode(stay), encode(goes), n


class YOLOv4(Layout):
    """YOLOv4: ``obj.names``, a ``.txt`` beside each image, maybe
    ``images.txt``."""

    name = "yolov4"
    has_label_files = True

    def label_files(self, image_rel, data_dir):
        return [posixpath.splitext(image_rel)[0] + ".txt"]

    def shared_names(self, root):
        return ["images.txt"]

    def split(self, rel, data, moved, root, data_dir):
        return _split_lines(data, rel, moved, root)

    def support_names(self):
        return ["obj.names"]


def yolov5_label_path(image_rel):
    """The YOLOv5 labels path of an image (``images`` -> ``labels``).

    Args:
        image_rel: a root-relative image path

    Returns:
        a root-relative path, or None if the path has no ``images`` folder
    """
    path = "/" + image_rel
    chunks = path.rsplit("/images/", 1)
    if len(chunks) < 2:
        return None
    return posixpath.splitext("/labels/".join(chunks)[1:])[0] + ".txt"


class YOLOv5(Layout):
    """YOLOv5: ``dataset.yaml``, ``images/<split>/`` and
    ``labels/<split>/*.txt``."""

    name = "yolov5"
    has_label_files = True

    def label_files(self, image_rel, data_dir):
        path = yolov5_label_path(image_rel)
        return [path] if path else []

    def _read_yaml(self, root):
        import yaml

        try:
            with open(os.path.join(root, "dataset.yaml"), encoding="utf-8") as f:
                d = yaml.safe_load(f)
        except (OSError, ValueError, yaml.YAMLError):
            return None
        return d if isinstance(d, dict) else None

    def _split_entries(self, d, root):
        """``(split, written, root-relative path or None)`` per entry."""
        base = d.get("path") or ""
        if not isinstance(base, str):
            base = ""
        out = []
        for split in ("train", "val", "test"):
            value = d.get(split)
            values = value if isinstance(value, list) else [value]
            for v in values:
                if not isinstance(v, str):
                    continue
                full = os.path.join(base, v) if base else v
                if not os.path.isabs(full):
                    full = os.path.join(root, full)
                rel = _resolve(os.path.normpath(full), "", root)
                out.append((split, v, rel))
        return out

    def shared_names(self, root):
        d = self._read_yaml(root)
        if d is None:
            return []
        return sorted(
            {rel for _, _, rel in self._split_entries(d, root) if rel and rel.endswith(".txt")}
        )

    def split(self, rel, data, moved, root, data_dir):
        return _split_lines(data, rel, moved, root)

    def support_names(self):
        return ["dataset.yaml"]

    def support_content(self, rel, data, moved, root, data_dir):
        import yaml

        d = self._read_yaml(root)
        if d is None:
            return data
        out = {k: v for k, v in d.items() if k not in ("path", "train", "val", "test")}
        for split, _, entry in self._split_entries(d, root):
            if entry is None:
                continue
            if entry.endswith(".txt"):
                keep = True  # the list itself is split alongside
            else:
                keep = any(m.startswith(entry + "/") for m in moved)
            if keep:
                out.setdefault(split, []).append(entry)
        return yaml.safe_dump(out, sort_keys=False, allow_unicode=True).encode("utf-8")


class CVAT(Layout):
    """CVAT images: ``labels.xml`` with one ``<image>`` per image."""

    name = "cvat"

    def shared_names(self, root):
        return ["labels.xml"]

    def split(self, rel, data, moved, root, data_dir):
        try:
            tree = ET.ElementTree(ET.fromstring(data))
        except ET.ParseError as e:
            raise AnnotationError(f"Cannot read {rel} as XML: {e}") from None
        base = _images_rel(data_dir)
        top = tree.getroot()
        stays = ET.Element(top.tag, top.attrib)
        goes = ET.Element(top.tag, top.attrib)
        stays.text = goes.text = top.text
        n = 0
        for child in list(top):
            if child.tag == "image":
                name = child.get("name")
                subset = child.get("subset")
                key = f"{subset}/{name}" if subset and name else name
                path = _resolve(key, base, root)
                if path is not None and path in moved:
                    goes.append(child)
                    n += 1
                else:
                    stays.append(child)
            else:
                stays.append(child)
                goes.append(_copy_element(child))
        dump = lambda e: ET.tostring(e, encoding="utf-8", xml_declaration=True) + b"\n"  # noqa: E731
        return dump(stays), dump(goes), n


def _copy_element(e):
    return ET.fromstring(ET.tostring(e))


class FiftyOneLabels(Layout):
    """FiftyOne image detection/classification: ``labels.json`` with a
    ``labels`` map keyed by the image's path without extension."""

    def __init__(self, name):
        self.name = name

    def shared_names(self, root):
        return ["labels.json"]

    def split(self, rel, data, moved, root, data_dir):
        obj = _load_json(data, rel)
        if not isinstance(obj, dict) or not isinstance(obj.get("labels", {}), dict):
            raise AnnotationError(f"{rel} is not a FiftyOne labels file (no 'labels' map)")
        base = _images_rel(data_dir)
        moved_keys = set()
        for m in moved:
            r = _under(m, base)
            if r is not None:
                moved_keys.add(posixpath.splitext(r)[0])
            moved_keys.add("/" + posixpath.splitext(posixpath.join(root.lstrip("/"), m))[0])
        stay_labels, move_labels = {}, {}
        for key, value in (obj.get("labels") or {}).items():
            k = posixpath.normpath(key) if isinstance(key, str) else key
            if k in moved_keys:
                move_labels[key] = value
            else:
                stay_labels[key] = value
        stays = dict(obj)
        stays["labels"] = stay_labels
        goes = dict(obj)
        goes["labels"] = move_labels
        return _dump_json(stays), _dump_json(goes), len(move_labels)


#: metadata.json keys naming runs, whose results are not copied
_RUN_KEYS = ("annotation_runs", "brain_methods", "evaluations", "runs")


class FiftyOneDataset(Layout):
    """FiftyOne's own format: ``metadata.json`` + ``samples.json``."""

    name = "fiftyone"

    def shared_names(self, root):
        return ["samples.json"]

    def split(self, rel, data, moved, root, data_dir):
        obj = _load_json(data, rel)
        if not isinstance(obj, dict) or not isinstance(obj.get("samples", []), list):
            raise AnnotationError(f"{rel} is not a FiftyOne samples file (no 'samples' list)")
        base = posixpath.dirname(rel)
        stay, goes = [], []
        for s in obj.get("samples") or []:
            path = _resolve(s.get("filepath") if isinstance(s, dict) else None, base, root)
            (goes if path is not None and path in moved else stay).append(s)
        a = dict(obj)
        a["samples"] = stay
        b = dict(obj)
        b["samples"] = goes
        return _dump_json(a), _dump_json(b), len(goes)

    def support_names(self):
        return ["metadata.json"]

    def support_content(self, rel, data, moved, root, data_dir):
        obj = _load_json(data, rel)
        if not isinstance(obj, dict):
            return data
        return _dump_json({k: v for k, v in obj.items() if k not in _RUN_KEYS})


LAYOUTS = {
    h.name: h
    for h in (
        COCO(),
        VOC(),
        KITTI(),
        YOLOv4(),
        YOLOv5(),
        CVAT(),
        FiftyOneLabels("fiftyone-detection"),
        FiftyOneLabels("fiftyone-classification"),
        FiftyOneDataset(),
    )
}


def get_layout(name):
    """The annotation handling of a layout.

    Args:
        name: a layout name (see :mod:`fiftyone_dedup.engine.layouts`), or None

    Returns:
        a :class:`Layout`, or None for no annotations

    Raises:
        AnnotationError: for an unknown layout
    """
    if name is None:
        return None
    layout = LAYOUTS.get(name)
    if layout is None:
        raise AnnotationError(
            f"Unknown annotation layout {name!r}; expected one of {', '.join(LAYOUTS)}"
        )
    return layout
