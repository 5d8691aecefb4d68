"""Every example line of the README of ``remove_duplicates.py`` (the script
this grew from), as it is written there with ``fiftyone-dedup`` in place of
``python remove_duplicates.py``, run in a home folder of real COCO-labeled
datasets made from sample photos, with the default encoder (CNN)."""

import json
import os
import shutil

import pytest

import fiftyone as fo
import fiftyone.types as fot

from fiftyone_dedup.cli import demo

import helpers


def _tree(directory):
    """Every file under a folder with its size and modification time."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            st = os.stat(path)
            out[os.path.relpath(path, directory)] = (st.st_size, st.st_mtime_ns)
    return out


def _images(directory):
    data = os.path.join(directory, "data")
    return sorted(
        os.path.relpath(os.path.join(r, f), data)
        for r, _, files in os.walk(data) for f in files
    )


def _assert_valid_coco(directory):
    """The folder is a COCO detection dataset whose labels name exactly its
    images; returns the dataset FiftyOne loads from it."""
    with open(os.path.join(directory, "labels.json")) as f:
        coco = json.load(f)
    listed = sorted(img["file_name"] for img in coco["images"])
    assert listed == _images(directory)
    image_ids = {img["id"] for img in coco["images"]}
    assert all(a["image_id"] in image_ids for a in coco["annotations"])
    ds = fo.Dataset.from_dir(
        dataset_dir=directory, dataset_type=fot.COCODetectionDataset,
    )
    try:
        assert len(ds) == len(listed)
        assert all(s.detections is not None for s in ds)
    finally:
        ds.delete()
    return coco


@pytest.fixture
def home(tmp_path_factory):
    """A home folder with ``~/dataset`` (COCO, planted near-duplicates) and a
    working folder; ``HOME`` points at it for the CLI."""
    home = tmp_path_factory.mktemp("home")
    made = demo.make_demo_dataset(str(home / "dataset"))
    os.makedirs(home / "cwd")
    return home, made


def _run(home, line, **kwargs):
    # the line exactly as the script's README writes it; the shell would
    # expand "~", here the CLI does (as it must when quoted)
    args = line.split()
    out = helpers.run_cli(*args, cwd=str(home / "cwd"), env={"HOME": str(home)}, **kwargs)
    assert out.returncode == 0, out.stderr
    return out


def _planted_groups(made):
    """Each original with its planted copies."""
    groups = {}
    for original, copy in made["planted"]:
        groups.setdefault(original, {original}).add(copy)
    return list(groups.values())


def test_d_dataset_moves_duplicates_with_their_labels(home):
    home, made = home
    before = _images(made["dir"])
    out = _run(home, "-d ~/dataset")
    moved_root = home / "cwd" / "duplicates" / "dataset"
    moved = _images(str(moved_root))
    # one of each planted group stays (which one is the keep policy's
    # choice), the others moved
    assert len(moved) == len(made["planted"])
    for group in _planted_groups(made):
        assert len(group - set(moved)) == 1
    assert sorted(_images(made["dir"]) + moved) == before
    # the dataset stays valid COCO; the moved images carry their labels
    kept = _assert_valid_coco(made["dir"])
    gone = _assert_valid_coco(str(moved_root))
    assert len(kept["annotations"]) + len(gone["annotations"]) == len(before)
    assert "Undo the move" in out.stdout


def test_dirs_duplicates_dir_encoder_threshold(home):
    home, made = home
    _run(home, "--dirs ~/dataset --duplicates_dir ~/duplicates --encoder CNN --threshold 0.85")
    moved = _images(str(home / "duplicates" / "dataset"))
    assert len(moved) == len(made["planted"])
    assert not os.path.exists(home / "cwd" / "duplicates")
    _assert_valid_coco(made["dir"])


def test_two_datasets_display_duplicates(home):
    home, made = home
    shutil.copytree(made["dir"], home / "dataset_1")
    shutil.copytree(made["dir"], home / "dataset_2")
    report = home / "report.json"
    out = _run(home, f"-d ~/dataset_1 ~/dataset_2 --display_duplicates --report {report}")
    rep = json.loads(report.read_text())
    # every image of dataset_2 is a cross duplicate of dataset_1's copy
    assert rep["summary"]["num_cross"] >= made["num_images"] - len(made["planted"])
    display = home / "cwd" / "duplicates_display"
    assert rep["gallery"] == str(display / "index.html")
    assert f"Pictures of the groups: {rep['gallery']}" in out.stdout
    sheets = [f for f in os.listdir(display) if f.endswith(".png")]
    assert len(sheets) == rep["summary"]["num_groups"]
    _assert_valid_coco(str(home / "dataset_1"))
    _assert_valid_coco(str(home / "dataset_2"))


def test_merge_encodings_files(home):
    home, made = home
    shutil.copytree(made["dir"], home / "dataset_1")
    shutil.copytree(made["dir"], home / "dataset_2")
    _run(home, "-d ~/dataset_1 --encodings_out ~/enc_1.json --encodings_only")
    _run(home, "-d ~/dataset_2 --encodings_out ~/enc_2 --encodings_only")
    _run(home, "--encodings_in ~/enc_1.json ~/enc_2 --encodings_out ~/enc_merged --encodings_only")
    merged = json.loads((home / "enc_merged.json").read_text())
    parts = [json.loads((home / f"enc_{i}.json").read_text()) for i in (1, 2)]
    assert merged["encoder"] == "cnn" and merged["model"] == "efficientnet-lite0"
    # the same file names in both datasets stay apart, each with its vector
    assert len(merged["datasets"]) == 2
    for got, part in zip(merged["datasets"], parts):
        assert got["encodings"] == part["datasets"][0]["encodings"]
        assert len(got["encodings"]) == made["num_images"]


def test_root_and_relative_dirs(home):
    home, made = home
    for name in ("dir_1", "dir_2"):
        shutil.copytree(made["dir"], home / "dataset" / name)
    report = home / "report.json"
    _run(home, f"-r ~/dataset -d dir_1 dir_2 --report {report}")
    rep = json.loads(report.read_text())
    assert rep["dirs"] == [str(home / "dataset" / d) for d in ("dir_1", "dir_2")]
    # dir_2 repeats dir_1: all of it goes, dir_1 loses its planted copies
    moved_2 = _images(str(home / "cwd" / "duplicates" / "dir_2"))
    assert len(moved_2) == made["num_images"]
    assert len(_images(str(home / "dataset" / "dir_1"))) == (
        made["num_images"] - len(made["planted"])
    )
    _assert_valid_coco(str(home / "dataset" / "dir_1"))


def test_dry_run_changes_nothing(home):
    home, made = home
    before = _tree(str(home))
    out = _run(home, "-d ~/dataset --dry_run")
    # the plan names every file that would move, and nothing did
    would_move = [line for line in out.stdout.splitlines() if " -> " in line]
    assert len(would_move) == len(made["planted"])
    after = _tree(str(home))
    assert after == before


def test_plain_images_folder(home):
    home, made = home
    images = home / "images_dir"
    os.makedirs(images)
    data = os.path.join(made["dir"], "data")
    for name in _images(made["dir"]):
        shutil.copy(os.path.join(data, name), images / name.replace("/", "_"))
    _run(home, "-d ~/images_dir --no_data_dir --no_annot")
    moved = os.listdir(home / "cwd" / "duplicates" / "images_dir")
    assert len(moved) == len(made["planted"])
    assert len(os.listdir(images)) == made["num_images"] - len(made["planted"])
