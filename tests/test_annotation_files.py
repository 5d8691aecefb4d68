"""A move's annotation files on real folders (no database): a COCO file
split with its original backed up, the duplicates folder's copy written
and journaled, both undone by a restore, and files changed since left."""

import json
import os

import pytest

from fiftyone_dedup.moves import annotation_files
from fiftyone_dedup.moves import fileops
from fiftyone_dedup.moves import journal as jr
from fiftyone_dedup.moves import manifest as mf
from fiftyone_dedup.moves import paths
from fiftyone_dedup.moves.model import AnnotationEntry, FileEntry, Manifest, Root
from fiftyone_dedup.moves.results import MoveResult, RestoreResult

MOVE_ID = "20250101T000000000000Z-abcdef"
COCO = {
    "categories": [{"id": 1, "name": "cat"}],
    "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
    "annotations": [{"id": 5, "image_id": 2, "category_id": 1}],
}


@pytest.fixture
def move(tmp_path):
    """A planned COCO move of ``data/b.jpg``, its file already moved."""
    root, dup = tmp_path / "ds", tmp_path / "dups"
    (root / "data").mkdir(parents=True)
    (dup / "ds" / "data").mkdir(parents=True)
    original = json.dumps(COCO).encode()
    (root / "labels.json").write_bytes(original)
    (root / "data" / "a.jpg").write_bytes(b"a")
    (dup / "ds" / "data" / "b.jpg").write_bytes(b"b")
    backup = paths.annotation_backup(MOVE_ID, 0, "labels.json")
    fileops.makedirs_inside(str(dup), os.path.dirname(os.path.join(dup, backup)))
    fileops.atomic_write(os.path.join(dup, backup), original, replace=False)
    m = Manifest(
        path=paths.manifest_path(str(dup), MOVE_ID), move_id=MOVE_ID, created="now", dataset="d",
        dataset_id=None, run_key="dedup", run_timestamp=None, labels="keep", on_samples="keep",
        tag=None, duplicates_dataset=None, label_fields=["ground_truth"],
        roots=[Root(path=str(root), dest="ds", layout="coco", data_dir=True)],
        files=[FileEntry(n=0, kind="image", root=0, src="data/b.jpg", dst="ds/data/b.jpg",
                         sha256=fileops.sha256_bytes(b"b"), size=1, mtime_ns=1, sample_ids=[])],
        annotations=[AnnotationEntry(0, 0, "labels.json", fileops.sha256_bytes(original), backup)],
        outcomes={0: ("moved", None)}, planned=True,
    )
    with mf.Journal(m.path, create=True) as j:
        j.append(jr.header_record(m))
        j.append(jr.file_record(m.files[0]))
        j.append(jr.annotation_record(m.annotations[0]))
        j.append(jr.planned_record(1, 1))
        j.append(jr.outcome_record("moved", 0, None))
    return m, str(root), str(dup)


def _images(path):
    return [im["file_name"] for im in json.load(open(path))["images"]]


def test_a_split_is_journaled_and_undone(move):
    m, root, dup = move
    result = MoveResult(dup, False, "keep", "keep")
    with mf.Journal(m.path) as j:
        annotation_files.move_annotations(m, dup, j, result)
        annotation_files.move_annotations(m, dup, j, result)  # a rerun changes nothing more
    assert _images(os.path.join(root, "labels.json")) == ["a.jpg"]
    assert _images(os.path.join(dup, "ds", "labels.json")) == ["b.jpg"]
    assert [a["action"] for a in result.annotations] == [
        "lost the entries of 1 moved image(s)", "written",
    ]
    got = mf.read_manifest(m.path)
    assert set(got.rewritten) == {0} and set(got.written) == {"ds/labels.json"}
    assert [a for a, _ in annotation_files.annotations_to_put_back(got)] == got.annotations

    back = RestoreResult(dup, False)
    annotation_files.restore_annotations(got, dup, back)
    assert json.load(open(os.path.join(root, "labels.json"))) == COCO
    assert not os.path.exists(os.path.join(dup, "ds", "labels.json"))
    assert os.path.exists(os.path.join(dup, "ds", "data", "b.jpg"))  # never a moved file
    assert back.annotations == [
        {"path": os.path.join(root, "labels.json"), "action": "put back from its backup"}
    ]


def test_files_changed_since_are_left_as_they_are(move):
    m, root, dup = move
    with mf.Journal(m.path) as j:
        annotation_files.move_annotations(m, dup, j, MoveResult(dup, False, "keep", "keep"))
    got = mf.read_manifest(m.path)
    with open(os.path.join(root, "labels.json"), "w") as f:
        f.write('{"edited": true}')
    with open(os.path.join(dup, "ds", "labels.json"), "w") as f:
        f.write("{}")
    back = RestoreResult(dup, False)
    assert annotation_files.annotations_to_put_back(got) == []
    annotation_files.restore_annotations(got, dup, back)
    assert json.load(open(os.path.join(root, "labels.json"))) == {"edited": True}
    assert os.path.exists(os.path.join(dup, "ds", "labels.json"))
    assert any("changed after the move" in msg for msg in back.messages)


def test_a_file_not_written_by_the_move_is_never_overwritten(move):
    m, root, dup = move
    with open(os.path.join(dup, "ds", "labels.json"), "w") as f:
        f.write("mine")
    result = MoveResult(dup, False, "keep", "keep")
    with mf.Journal(m.path) as j:
        annotation_files.move_annotations(m, dup, j, result)
    assert open(os.path.join(dup, "ds", "labels.json")).read() == "mine"
    assert any("was not written by this move" in msg for msg in result.messages)


def test_a_backup_must_match_its_checksum(move):
    m, root, dup = move
    with open(os.path.join(dup, m.annotations[0].backup), "w") as f:
        f.write("tampered")
    with pytest.raises(ValueError, match="does not match its checksum"):
        annotation_files.read_backup(dup, m.annotations[0].backup, m.annotations[0].sha256)
