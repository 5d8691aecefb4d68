"""Labeled dataset layouts: detected from the files, labels loaded."""

import json

import pytest

import fiftyone as fo

from fiftyone_dedup.cli import flags
from fiftyone_dedup.engine import folders
from fiftyone_dedup.engine import layouts
from fiftyone_dedup.engine.errors import FolderError

import helpers
import labeled

FORMATS = {
    "coco": (fo.types.COCODetectionDataset, "ground_truth_detections"),
    "voc": (fo.types.VOCDetectionDataset, "ground_truth"),
    "yolov5": (fo.types.YOLOv5Dataset, "ground_truth"),
    "yolov4": (fo.types.YOLOv4Dataset, "ground_truth"),
    "kitti": (fo.types.KITTIDetectionDataset, "ground_truth"),
    "cvat": (fo.types.CVATImageDataset, "ground_truth_detections"),
    "fiftyone-detection": (fo.types.FiftyOneImageDetectionDataset, "ground_truth"),
    "fiftyone": (fo.types.FiftyOneDataset, "ground_truth"),
}


def _labeled_source(tmp_path, n=5):
    ds = fo.Dataset()
    samples = []
    for i in range(n):
        path = helpers.save(helpers.texture(300 + i), str(tmp_path / "src" / f"img{i}.jpg"))
        dets = [
            fo.Detection(label="thing", bounding_box=[0.1 + 0.1 * k, 0.2, 0.2, 0.3])
            for k in range(i % 3 + 1)
        ]
        samples.append(fo.Sample(filepath=path, ground_truth=fo.Detections(detections=dets)))
    ds.add_samples(samples)
    ds.compute_metadata()
    return ds


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_layout_detected_and_labels_loaded(tmp_path, name):
    src = _labeled_source(tmp_path)
    fo_type, field = FORMATS[name]
    target = tmp_path / name
    kwargs = {"split": "val"} if name == "yolov5" else {}
    src.export(export_dir=str(target), dataset_type=fo_type, label_field="ground_truth", **kwargs)
    n_labels = src.count("ground_truth.detections")
    src.delete()

    assert layouts.detect_layout(str(target)).name == name
    ds, found, skipped = folders.load_folders([str(target)], name=f"layout-{name}")
    try:
        assert found == {str(target): name} and skipped == []
        assert len(ds) == 5
        assert ds.count(f"{field}.detections") == n_labels
        assert set(ds.values(folders.SOURCE_FIELD)) == {str(target)}
    finally:
        ds.delete()


def test_named_type_and_unknown_layouts(tmp_path):
    d = tmp_path / "plain"
    helpers.save(helpers.texture(1), str(d / "data" / "a.jpg"))
    with pytest.raises(FolderError) as err:
        folders.load_folders([str(d)], name="layout-none")
    # the engine names parameters; the command line shows them as its flags
    message = flags.user_text(err.value)
    assert "No annotations found" in message and "coco: data/ + labels.json" in message
    assert "--no_annot" in message
    with pytest.raises(FolderError) as err:
        folders.load_folders([str(d)], name="layout-none", dataset_type="pascal")
    assert "Unknown --dataset_type 'pascal'" in flags.user_text(err.value)
    assert not fo.dataset_exists("layout-none")


def test_cli_on_a_coco_dataset_with_unlabeled_and_missing_images(tmp_path):
    d = tmp_path / "coco"
    src = _labeled_source(tmp_path)
    src.export(
        export_dir=str(d), dataset_type=fo.types.COCODetectionDataset, label_field="ground_truth"
    )
    src.delete()
    # an image without annotations, and an annotation whose image is gone
    extra = helpers.save(helpers.jpeg(helpers.texture(300)), str(d / "data" / "unlabeled_copy.jpg"))
    coco = json.loads((d / "labels.json").read_text())
    coco["images"].append({"id": 999, "file_name": "gone.jpg", "width": 10, "height": 10})
    (d / "labels.json").write_text(json.dumps(coco))
    report = tmp_path / "r.json"
    out = helpers.run_cli(
        "-d", d, "--encoder", "DHash", "--report", report, "--dataset", "cli-coco", "--dry_run"
    )
    assert out.returncode == 0, out.stderr
    rep = json.loads(report.read_text())
    assert rep["summary"]["num_samples"] == 7
    assert [f["path"] for f in rep["failed"]] == [str(d / "data" / "gone.jpg")]
    assert "file not found" in rep["failed"][0]["error"]
    assert any(extra in g["duplicates"] or extra == g["keep"] for g in rep["groups"])
    fo.load_dataset("cli-coco").delete()


def _labels_by_path(ds):
    """``{filepath: sorted labels}`` over every label field of a dataset."""
    schema = ds.get_field_schema(embedded_doc_type=fo.Label)
    out = {}
    for path in ds.values("filepath"):
        out[path] = []
    for name, field in schema.items():
        list_field = getattr(field.document_type, "_LABEL_LIST_FIELD", None)
        for path, value in zip(ds.values("filepath"), ds.values(name)):
            if value is None:
                continue
            items = getattr(value, list_field) if list_field else [value]
            out[path] += sorted(
                (name, x.label, tuple(getattr(x, "bounding_box", None) or ())) for x in items
            )
    return out


@pytest.mark.parametrize("layout", sorted(labeled.LAYOUT_TYPES))
def test_rerun_on_a_labeled_folder_gives_the_same_labels(tmp_path, layout):
    """Issue 13, break 4: every rerun added another copy of every label
    (COCO 113 -> 226 -> 339 detections)."""
    made = labeled.make_labeled_folder(str(tmp_path / layout), layout)
    name = f"rerun-{layout}"
    firsts = []
    try:
        for _ in range(3):
            ds = folders.load_folders([made["dir"]], name=name, data_dir=made["data_dir"])[0]
            firsts.append(_labels_by_path(ds))
        assert sum(len(v) for v in firsts[0].values()) == 6  # one label per image
        assert firsts[1] == firsts[0] and firsts[2] == firsts[0]
    finally:
        if fo.dataset_exists(name):
            fo.load_dataset(name).delete()


def test_rerun_takes_labels_removed_from_the_annotations_away(tmp_path):
    d = tmp_path / "coco"
    src = _labeled_source(tmp_path)
    src.export(
        export_dir=str(d), dataset_type=fo.types.COCODetectionDataset, label_field="ground_truth"
    )
    src.delete()
    ds = folders.load_folders([str(d)], name="rerun-edited")[0]
    try:
        field = FORMATS["coco"][1]
        before = ds.count(f"{field}.detections")
        coco = json.loads((d / "labels.json").read_text())
        first_image = coco["images"][0]["id"]
        dropped = [a for a in coco["annotations"] if a["image_id"] == first_image]
        coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != first_image]
        (d / "labels.json").write_text(json.dumps(coco))
        ds = folders.load_folders([str(d)], name="rerun-edited")[0]
        assert dropped and ds.count(f"{field}.detections") == before - len(dropped)
        path = str(d / "data" / coco["images"][0]["file_name"])
        assert ds[path][field] is None
    finally:
        ds.delete()
