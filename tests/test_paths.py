"""The places of a move in the duplicates folder (pure)."""

import datetime
import os

import pytest

from fiftyone_dedup.moves import paths
from fiftyone_dedup.moves.model import Root

MOVE_ID = "20250101T000000000000Z-abcdef"


def test_move_ids_sort_by_time_and_name_their_manifest():
    t = datetime.datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc)
    a, b = paths.new_move_id(t), paths.new_move_id(t + datetime.timedelta(seconds=1))
    assert a.startswith("20250102T030405000006Z-") and a < b
    assert paths.MOVE_ID.match(a)
    assert paths.manifest_name(a) == f"manifest-{a}.jsonl"
    assert paths.manifest_path("/d", a) == f"/d/manifest-{a}.jsonl"
    assert paths.move_id_of(paths.manifest_name(a)) == a
    for name in ("manifest-.jsonl", "manifest-../x.jsonl", "other.jsonl", "manifest-a.json"):
        assert paths.move_id_of(name) is None


def test_backups_live_in_the_moves_state_folder():
    assert paths.backup_dir(MOVE_ID) == f".fiftyone_dedup/{MOVE_ID}"
    assert paths.annotation_backup(MOVE_ID, 1, "a/labels.json") == (
        f".fiftyone_dedup/{MOVE_ID}/originals/1/a/labels.json"
    )
    assert paths.samples_backup(MOVE_ID) == f".fiftyone_dedup/{MOVE_ID}/samples.jsonl"


def test_destinations_keep_the_path_in_the_dataset_folder():
    root = Root(path="/data/ds", dest="ds")
    assert paths.destination(MOVE_ID, root, "image", "data/a.jpg", "keep") == "ds/data/a.jpg"
    assert paths.destination(MOVE_ID, root, "image", "data/a.jpg", "drop") == "ds/data/a.jpg"
    assert paths.destination(MOVE_ID, root, "label", "labels/a.xml", "keep") == "ds/labels/a.xml"
    # dropped labels are kept for undo, out of the duplicates dataset
    assert paths.destination(MOVE_ID, root, "label", "labels/a.xml", "drop") == (
        f".fiftyone_dedup/{MOVE_ID}/dropped/ds/labels/a.xml"
    )


def test_dataset_folder_names_are_unique_and_never_hidden(tmp_path):
    dup = str(tmp_path)
    os.mkdir(os.path.join(dup, "ds"))
    assert paths.dest_name("/data/ds", set(), dup) == "ds-2"
    assert paths.dest_name("/other/ds", {"ds-2"}, dup) == "ds-3"
    assert paths.dest_name("/data/.hidden", set(), dup) == "_hidden"
    assert paths.dest_name("/", set(), dup) == "root"


def test_the_state_folder_must_be_a_folder(tmp_path):
    paths.check_state_dir(str(tmp_path))  # absent is fine
    os.symlink(str(tmp_path), str(tmp_path / paths.STATE_DIR))
    with pytest.raises(ValueError, match="is not a folder"):
        paths.check_state_dir(str(tmp_path))
