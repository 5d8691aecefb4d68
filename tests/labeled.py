"""Labeled dataset folders for move/restore tests, written by FiftyOne's own
exporters, and snapshots of folder trees and datasets to compare.
"""

import hashlib
import os
import shutil

import fiftyone as fo

import helpers

#: layout name -> (FiftyOne type, label kind, whether images are in data/)
LAYOUT_TYPES = {
    "coco": ("COCODetectionDataset", "detections", True),
    "voc": ("VOCDetectionDataset", "detections", True),
    "kitti": ("KITTIDetectionDataset", "detections", True),
    "yolov4": ("YOLOv4Dataset", "detections", True),
    "yolov5": ("YOLOv5Dataset", "detections", False),
    "cvat": ("CVATImageDataset", "detections", True),
    "fiftyone-detection": ("FiftyOneImageDetectionDataset", "detections", True),
    "fiftyone-classification": ("FiftyOneImageClassificationDataset", "classification", True),
    "fiftyone": ("FiftyOneDataset", "detections", True),
}


def small_photo(i, size=(96, 72)):
    """A real photo, small (fast to hash)."""
    return helpers.photo(i).resize(size)


def make_raw(directory, num_originals=4, num_copies=2):
    """Images with near-duplicates, and their labels.

    Photo i is ``p<i>.jpg``; the first ``num_copies`` photos get a
    re-encoded copy ``sub/p<i>_copy.jpg`` (the duplicates).

    Returns:
        a list of ``(path, label name, is_copy)``
    """
    out = []
    for i in range(num_originals):
        img = small_photo(i)
        out.append((helpers.save(img, os.path.join(directory, f"p{i}.jpg")), f"c{i}", False))
        if i < num_copies:
            copy = helpers.jpeg(img, quality=70)
            copy_path = helpers.save(copy, os.path.join(directory, "sub", f"p{i}_copy.jpg"))
            out.append((copy_path, f"c{i}", True))
    return out


def make_labeled_folder(directory, layout, num_originals=4, num_copies=2):
    """A labeled dataset folder in a layout, made with FiftyOne's exporter.

    Args:
        directory: the folder to create
        layout: a key of :data:`LAYOUT_TYPES`
        num_originals (4): distinct photos
        num_copies (2): how many of them get a near-duplicate copy

    Returns:
        a dict: ``dir``, ``data_dir`` (bool), ``copies`` (root-relative
        paths of the copies)
    """
    fo_type, kind, data_dir = LAYOUT_TYPES[layout]
    raw = directory + "-raw"
    shutil.rmtree(raw, ignore_errors=True)
    made = make_raw(raw, num_originals, num_copies)
    ds = fo.Dataset()
    samples = []
    for path, label, _ in made:
        if kind == "classification":
            gt = fo.Classification(label=label)
        else:
            gt = fo.Detections(
                detections=[fo.Detection(label=label, bounding_box=[0.1, 0.2, 0.5, 0.4])]
            )
        samples.append(fo.Sample(filepath=path, ground_truth=gt))
    ds.add_samples(samples)
    kwargs = {}
    if fo_type != "FiftyOneDataset":
        kwargs["label_field"] = "ground_truth"
    if layout == "yolov5":
        kwargs["split"] = "val"
    ds.export(
        export_dir=directory,
        dataset_type=getattr(fo.types, fo_type),
        export_media=True,
        rel_dir=raw,
        **kwargs,
    )
    ds.delete()
    shutil.rmtree(raw)
    images = "images/val" if layout == "yolov5" else "data"
    copies = [
        f"{images}/{os.path.relpath(p, raw)}" for p, _, is_copy in made if is_copy
    ]
    return {"dir": directory, "data_dir": data_dir, "copies": copies, "layout": layout}


def tree(directory, skip_hidden=False):
    """``{relative path: sha256}`` of every file under a folder."""
    out = {}
    if not os.path.isdir(directory):
        return out
    for root, dirs, files in os.walk(directory):
        if skip_hidden:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return out


def snapshot(dataset):
    """The dataset's samples as comparable dicts, by id."""
    out = {}
    for s in dataset.iter_samples():
        d = s.to_dict()
        for key in ("created_at", "last_modified_at"):
            d.pop(key, None)
        out[s.id] = d
    return out


def load_layout(directory, layout, data_dir=True):
    """Loads a dataset folder with FiftyOne's importer (a temporary
    dataset; delete it when done)."""
    from fiftyone_dedup.engine import layouts

    return layouts.import_labels(directory, layouts.LAYOUTS[layout], data_dir=data_dir)
