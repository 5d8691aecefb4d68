"""Annotation files split when images move out: pure tests on real files
of each layout (COCO, VOC, KITTI, YOLOv4, YOLOv5, CVAT, FiftyOne), no
database."""

import json
import os
import xml.etree.ElementTree as ET

import pytest
import yaml

from fiftyone_dedup.moves import annotations as annots


def _write(root, rel, data):
    path = os.path.join(root, *rel.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


COCO = {
    "info": {"description": "test"},
    "categories": [{"id": 1, "name": "cat"}],
    "images": [
        {"id": 1, "file_name": "a.jpg", "width": 8, "height": 8},
        {"id": 2, "file_name": "sub/b.jpg", "width": 8, "height": 8},
        {"id": 3, "file_name": "c.jpg", "width": 8, "height": 8},
    ],
    "annotations": [
        {"id": 10, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]},
        {"id": 11, "image_id": 2, "category_id": 1, "bbox": [0, 0, 2, 2]},
        {"id": 12, "image_id": 2, "category_id": 1, "bbox": [1, 1, 2, 2]},
    ],
}


def test_coco_split_moves_images_and_their_annotations(tmp_path):
    root = str(tmp_path)
    data = _write(root, "labels.json", json.dumps(COCO))
    handler = annots.get_layout("coco")
    assert handler.shared_files(root, True) == ["labels.json"]
    stays, goes, n = handler.split(
        "labels.json", open(data, "rb").read(), {"data/sub/b.jpg"}, root, True
    )
    stays, goes = json.loads(stays), json.loads(goes)
    assert n == 1
    assert [im["id"] for im in stays["images"]] == [1, 3]
    assert [a["id"] for a in stays["annotations"]] == [10]
    assert [im["id"] for im in goes["images"]] == [2]
    assert [a["id"] for a in goes["annotations"]] == [11, 12]
    # every other key is kept in both
    for part in (stays, goes):
        assert part["info"] == COCO["info"] and part["categories"] == COCO["categories"]


def test_coco_absolute_file_names_and_images_outside_data(tmp_path):
    root = str(tmp_path)
    coco = dict(COCO, images=[
        {"id": 1, "file_name": os.path.join(root, "data", "a.jpg")},
        {"id": 2, "file_name": "/elsewhere/a.jpg"},
    ])
    stays, goes, n = annots.get_layout("coco").split(
        "labels.json", json.dumps(coco).encode(), {"data/a.jpg"}, root, True
    )
    assert n == 1
    assert [im["id"] for im in json.loads(goes)["images"]] == [1]
    assert [im["id"] for im in json.loads(stays)["images"]] == [2]


@pytest.mark.parametrize(
    "data", [b"not json", b"[1, 2]", b'{"images": 3}', b'{"images": [], "annotations": 1}']
)
def test_coco_files_that_are_not_coco_are_refused(data):
    with pytest.raises(annots.AnnotationError, match="labels.json"):
        annots.get_layout("coco").split("labels.json", data, set(), "/r", True)


@pytest.mark.parametrize("layout, ext", [("voc", ".xml"), ("kitti", ".txt")])
def test_per_image_label_files(layout, ext):
    handler = annots.get_layout(layout)
    assert handler.has_label_files
    assert handler.label_files("data/sub/a.jpg", True) == ["labels/sub/a" + ext]
    assert handler.label_files("a.jpg", False) == ["labels/a" + ext]
    assert handler.label_files("other/a.jpg", True) == []  # not an image of data/
    assert handler.shared_files("/nonexistent", True) == []


def test_yolov4_label_files_image_list_and_names(tmp_path):
    root = str(tmp_path)
    _write(root, "obj.names", "cat\ndog\n")
    listing = _write(root, "images.txt", "data/a.jpg\ndata/b.jpg\n\ndata/c.jpg\n")
    handler = annots.get_layout("yolov4")
    assert handler.label_files("data/a.jpg", True) == ["data/a.txt"]
    assert handler.shared_files(root, True) == ["images.txt"]
    assert handler.support_files(root) == ["obj.names"]
    stays, goes, n = handler.split(
        "images.txt", open(listing, "rb").read(), {"data/b.jpg"}, root, True
    )
    assert n == 1
    assert stays == b"data/a.jpg\n\ndata/c.jpg\n"
    assert goes == b"data/b.jpg\n"


def test_image_lists_in_a_subfolder_stay_relative_to_it(tmp_path):
    root = str(tmp_path)
    stays, goes, n = annots.get_layout("yolov4").split(
        "lists/train.txt", b"../data/a.jpg\n../data/b.jpg\n", {"data/a.jpg"}, root, True
    )
    assert (stays, goes, n) == (b"../data/b.jpg\n", b"../data/a.jpg\n", 1)


def test_yolov5_label_paths_lists_and_dataset_yaml(tmp_path):
    root = str(tmp_path)
    assert annots.yolov5_label_path("images/train/a.jpg") == "labels/train/a.txt"
    assert annots.yolov5_label_path("a.jpg") is None
    handler = annots.get_layout("yolov5")
    assert handler.label_files("images/val/x.png", False) == ["labels/val/x.txt"]
    _write(root, "dataset.yaml", yaml.safe_dump(
        {"path": root, "train": "images/train", "val": "val.txt", "names": {0: "cat"}}
    ))
    _write(root, "val.txt", "images/val/a.jpg\nimages/val/b.jpg\n")
    assert handler.shared_files(root, False) == ["val.txt"]
    assert handler.support_files(root) == ["dataset.yaml"]
    stays, goes, n = handler.split(
        "val.txt",
        open(os.path.join(root, "val.txt"), "rb").read(),
        {"images/val/b.jpg"},
        root,
        False,
    )
    assert (stays, goes, n) == (b"images/val/a.jpg\n", b"images/val/b.jpg\n", 1)
    # the duplicates folder's yaml lists the splits with moved images, relative
    content = yaml.safe_load(handler.support_content(
        "dataset.yaml", b"", {"images/train/c.jpg"}, root, False
    ))
    assert content == {"names": {0: "cat"}, "train": ["images/train"], "val": ["val.txt"]}
    content = yaml.safe_load(handler.support_content("dataset.yaml", b"", set(), root, False))
    assert content == {"names": {0: "cat"}, "val": ["val.txt"]}


CVAT = b"""<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><name>t</name></task></meta>
  <image id="0" name="a.jpg" width="8" height="8">
    <box label="cat" xtl="0" ytl="0" xbr="1" ybr="1"/>
  </image>
  <image id="1" name="b.jpg" width="8" height="8"/>
</annotations>
"""


def test_cvat_split_keeps_the_meta_in_both(tmp_path):
    handler = annots.get_layout("cvat")
    _write(str(tmp_path), "labels.xml", CVAT)
    assert handler.shared_files(str(tmp_path), True) == ["labels.xml"]
    stays, goes, n = handler.split("labels.xml", CVAT, {"data/a.jpg"}, str(tmp_path), True)
    assert n == 1
    stays, goes = ET.fromstring(stays), ET.fromstring(goes)
    assert [i.get("name") for i in stays.iter("image")] == ["b.jpg"]
    assert [i.get("name") for i in goes.iter("image")] == ["a.jpg"]
    assert goes.find("image/box").get("label") == "cat"
    for part in (stays, goes):
        assert part.find("meta/task/name").text == "t" and part.find("version").text == "1.1"
    with pytest.raises(annots.AnnotationError, match="XML"):
        handler.split("labels.xml", b"<annotations>", set(), str(tmp_path), True)


@pytest.mark.parametrize("layout", ["fiftyone-detection", "fiftyone-classification"])
def test_fiftyone_labels_split_by_key(tmp_path, layout):
    labels = {"classes": ["cat"], "labels": {"a": [{"label": 0}], "sub/b": [], "c": None}}
    stays, goes, n = annots.get_layout(layout).split(
        "labels.json",
        json.dumps(labels).encode(),
        {"data/sub/b.jpg", "data/c.png"},
        str(tmp_path),
        True,
    )
    stays, goes = json.loads(stays), json.loads(goes)
    assert n == 2
    assert set(stays["labels"]) == {"a"} and set(goes["labels"]) == {"sub/b", "c"}
    assert stays["classes"] == goes["classes"] == ["cat"]
    with pytest.raises(annots.AnnotationError, match="labels"):
        annots.get_layout(layout).split("labels.json", b'{"labels": []}', set(), "/r", True)


def test_fiftyone_dataset_samples_and_metadata(tmp_path):
    root = str(tmp_path)
    handler = annots.get_layout("fiftyone")
    samples = {"samples": [{"filepath": "data/a.jpg"}, {"filepath": "data/b.jpg"}], "x": 1}
    _write(root, "samples.json", json.dumps(samples))
    _write(root, "metadata.json", json.dumps({"name": "d", "brain_methods": {"k": 1}}))
    assert handler.shared_files(root, True) == ["samples.json"]
    assert handler.support_files(root) == ["metadata.json"]
    stays, goes, n = handler.split(
        "samples.json", json.dumps(samples).encode(), {"data/b.jpg"}, root, True
    )
    assert n == 1
    assert json.loads(stays) == {"samples": [{"filepath": "data/a.jpg"}], "x": 1}
    assert json.loads(goes) == {"samples": [{"filepath": "data/b.jpg"}], "x": 1}
    meta = handler.support_content(
        "metadata.json", open(os.path.join(root, "metadata.json"), "rb").read(), set(), root, True
    )
    assert json.loads(meta) == {"name": "d"}  # runs are not copied


def test_shared_files_are_regular_files_only(tmp_path):
    root = str(tmp_path)
    target = _write(root, "elsewhere.json", json.dumps(COCO))
    os.symlink(target, os.path.join(root, "labels.json"))
    assert annots.get_layout("coco").shared_files(root, True) == []
    os.mkdir(os.path.join(root, "obj.names"))
    assert annots.get_layout("yolov4").support_files(root) == []


def test_layouts_by_name():
    assert annots.get_layout(None) is None
    assert set(annots.LAYOUTS) >= {"coco", "voc", "kitti", "yolov4", "yolov5", "cvat", "fiftyone"}
    for name, handler in annots.LAYOUTS.items():
        assert annots.get_layout(name) is handler and handler.name == name
    with pytest.raises(annots.AnnotationError, match="Unknown annotation layout 'nope'"):
        annots.get_layout("nope")
