"""Labeled dataset layouts on disk: detection, and loading into FiftyOne.

A dataset folder holds its images in ``data/`` and its annotations beside
them in a format FiftyOne reads. The layout is detected from the files
present, or named (``dataset_type``); a folder that matches none gets a
message listing what each layout expects.
"""

import glob
import json
import logging
import os
from dataclasses import dataclass

import fiftyone as fo

from fiftyone_dedup.engine.errors import FolderError, FolderParameterError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Layout:
    """A labeled dataset layout.

    Attributes:
        name: the name users pass as ``dataset_type``
        fo_type: the ``fiftyone.types`` class name
        expects: what files the layout has, for messages
        label_kind: ``"detections"``, ``"classification"`` or ``"dataset"``
            (FiftyOne's own format, any fields)
    """

    name: str
    fo_type: str
    expects: str
    label_kind: str = "detections"

    @property
    def dataset_type(self):
        """The ``fiftyone.types`` class."""
        return getattr(fo.types, self.fo_type)


LAYOUTS = {
    layout.name: layout
    for layout in (
        Layout(
            "coco", "COCODetectionDataset",
            "data/ + labels.json (COCO: 'images', 'annotations')",
        ),
        Layout("voc", "VOCDetectionDataset", "data/ + labels/*.xml (Pascal VOC)"),
        Layout("yolov5", "YOLOv5Dataset", "dataset.yaml + images/<split>/ + labels/<split>/*.txt"),
        Layout("yolov4", "YOLOv4Dataset", "obj.names + data/ with a .txt beside each image"),
        Layout("kitti", "KITTIDetectionDataset", "data/ + labels/*.txt (KITTI)"),
        Layout("cvat", "CVATImageDataset", "data/ + labels.xml (CVAT images)"),
        Layout(
            "fiftyone-detection",
            "FiftyOneImageDetectionDataset",
            "data/ + labels.json (FiftyOne detections: 'labels' of lists)",
        ),
        Layout(
            "fiftyone-classification",
            "FiftyOneImageClassificationDataset",
            "data/ + labels.json (FiftyOne classification: 'labels' of classes)",
            label_kind="classification",
        ),
        Layout(
            "fiftyone",
            "FiftyOneDataset",
            "metadata.json + samples.json + data/ (FiftyOne dataset export)",
            label_kind="dataset",
        ),
    )
}


def _read_json_head(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def detect_layout(directory):
    """Detects the layout of a dataset folder from the files present.

    Args:
        directory: the dataset folder

    Returns:
        a :class:`Layout`, or None
    """
    def has(*parts):
        return os.path.exists(os.path.join(directory, *parts))

    if has("metadata.json") and has("samples.json"):
        return LAYOUTS["fiftyone"]
    if has("dataset.yaml"):
        return LAYOUTS["yolov5"]
    if has("obj.names"):
        return LAYOUTS["yolov4"]
    if has("labels.xml"):
        return LAYOUTS["cvat"]
    if has("labels.json"):
        d = _read_json_head(os.path.join(directory, "labels.json"))
        if isinstance(d, dict) and "images" in d and "annotations" in d:
            return LAYOUTS["coco"]
        if isinstance(d, dict) and isinstance(d.get("labels"), dict):
            values = list(d["labels"].values())
            first = next((v for v in values if v is not None), None)
            if isinstance(first, list):
                return LAYOUTS["fiftyone-detection"]
            return LAYOUTS["fiftyone-classification"]
        return None
    if glob.glob(os.path.join(directory, "labels", "*.xml")):
        return LAYOUTS["voc"]
    if glob.glob(os.path.join(directory, "labels", "*.txt")):
        return LAYOUTS["kitti"]
    return None


def expected_layouts_text():
    """One line per layout saying what it expects."""
    return "\n".join(
        f"  {layout.name}: {layout.expects}" for layout in LAYOUTS.values()
    )


def resolve_layout(directory, data_dir=True, dataset_type=None):
    """The layout of a dataset folder, named or detected.

    Args:
        directory: the dataset folder
        data_dir (True): whether images are in ``data/``
        dataset_type (None): a layout name to use instead of detecting

    Returns:
        a :class:`Layout`

    Raises:
        FolderParameterError: if the name is unknown (``dataset_type``), or
            no layout matches (``annotations``), with what each layout expects
    """
    if dataset_type is not None:
        layout = LAYOUTS.get(str(dataset_type).lower())
        if layout is None:
            raise FolderParameterError(
                "dataset_type",
                f"Unknown dataset_type {dataset_type!r}; expected one of "
                f"{', '.join(LAYOUTS)}",
            )
        return layout

    layout = detect_layout(directory)
    if layout is None:
        raise FolderParameterError(
            "annotations",
            f"No annotations found in {directory}. Expected one of these "
            f"layouts:\n{expected_layouts_text()}\nPass annotations=False for a "
            "folder of images without annotations"
            + ("" if data_dir else " (with data_dir=False: images directly in the folder)"),
        )
    return layout


def import_labels(directory, layout, data_dir=True, progress=None):
    """Loads a labeled folder into a temporary (non-persistent) dataset.

    Args:
        directory: the dataset folder
        layout: a :class:`Layout`
        data_dir (True): whether images are in ``data/``
        progress (None): FiftyOne's ``progress`` argument

    Returns:
        a non-persistent ``fiftyone.Dataset``; delete it when done
    """
    kwargs = {}
    if layout.label_kind != "dataset":
        kwargs["label_field"] = "ground_truth"
    if layout.name not in ("fiftyone", "yolov5") and not data_dir:
        kwargs["data_path"] = directory
    try:
        if layout.name == "yolov5":
            return _import_yolov5(directory, progress)
        if layout.name == "coco":
            return _import_coco(directory, data_dir, progress)
        return fo.Dataset.from_dir(
            dataset_dir=directory,
            dataset_type=layout.dataset_type,
            progress=progress,
            **kwargs,
        )
    except Exception as e:  # noqa: BLE001 - importer errors vary by format
        raise FolderError(
            f"Cannot read the {layout.name} annotations in {directory}: "
            f"{type(e).__name__}: {e}"
        ) from e


def _import_coco(directory, data_dir, progress):
    """COCO import that survives annotations of images that are gone: those
    become samples without labels, which the encoder reports as missing."""
    import tempfile

    data = os.path.join(directory, "data") if data_dir else directory
    labels_path = os.path.join(directory, "labels.json")
    with open(labels_path, "r", encoding="utf-8") as f:
        coco = json.load(f)
    images = coco.get("images") or []
    present = [
        im for im in images
        if os.path.isfile(os.path.join(data, str(im.get("file_name", ""))))
    ]
    missing = [im for im in images if im not in present]
    kwargs = dict(dataset_type=fo.types.COCODetectionDataset, data_path=data,
                  label_field="ground_truth", progress=progress)
    if not missing:
        return fo.Dataset.from_dir(labels_path=labels_path, **kwargs)
    logger.warning(
        "%s lists %d image(s) missing from %s; they are reported as missing",
        labels_path, len(missing), data,
    )
    kept_ids = {im.get("id") for im in present}
    filtered = dict(coco)
    filtered["images"] = present
    filtered["annotations"] = [
        a for a in coco.get("annotations") or [] if a.get("image_id") in kept_ids
    ]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_labels = os.path.join(tmp, "labels.json")
        with open(tmp_labels, "w", encoding="utf-8") as f:
            json.dump(filtered, f)
        dataset = fo.Dataset.from_dir(labels_path=tmp_labels, **kwargs)
    dataset.add_samples(
        [fo.Sample(filepath=os.path.join(data, str(im.get("file_name")))) for im in missing]
    )
    return dataset


def _import_yolov5(directory, progress):
    import yaml

    with open(os.path.join(directory, "dataset.yaml"), encoding="utf-8") as f:
        spec = yaml.safe_load(f) or {}
    splits = [s for s in ("train", "val", "test") if s in spec] or ["val"]
    dataset = fo.Dataset()
    for split in splits:
        dataset.add_dir(
            dataset_dir=directory,
            dataset_type=fo.types.YOLOv5Dataset,
            split=split,
            label_field="ground_truth",
            tags=[split],
            progress=progress,
        )
    return dataset
