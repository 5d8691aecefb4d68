"""Restoring moves: symbolic links planted on either side are never
followed."""

import os
import shutil

from fiftyone_dedup.moves import restore

import labeled

from moving import moved_dataset, names  # noqa: F401 - names: the fixture


def test_symlinks_planted_in_the_duplicates_folder_are_not_followed(tmp_path, names):
    root, dup, ds, tree0, made = moved_dataset(tmp_path, names)
    outside = tmp_path / "outside"
    shutil.copytree(os.path.join(dup, "ds", "data"), outside)
    shutil.rmtree(os.path.join(dup, "ds", "data"))
    os.symlink(outside, os.path.join(dup, "ds", "data"))
    before = labeled.tree(str(outside))
    result = restore.restore(dup)
    assert result.num_restored == 0
    assert all("symbolic link" in f["reason"] for f in result.files)
    assert labeled.tree(str(outside)) == before  # nothing taken from outside



def test_symlinks_planted_in_the_dataset_are_not_written_through(tmp_path, names):
    root, dup, ds, tree0, made = moved_dataset(tmp_path, names)
    outside = tmp_path / "outside"
    outside.mkdir()
    sub = os.path.join(root, "data", "sub")
    os.rmdir(sub)  # emptied by the move
    os.symlink(outside, sub)
    result = restore.restore(dup)
    assert result.num_restored == 0 and list(outside.iterdir()) == []
    assert all(os.path.exists(os.path.join(dup, "ds", c)) for c in made["copies"])

