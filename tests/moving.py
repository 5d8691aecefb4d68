"""Datasets and moves the move and restore tests share: real folders
loaded into the database, duplicates found, moved."""

import json
import os

import pytest

import fiftyone as fo

from fiftyone_dedup.moves import move
from fiftyone_dedup.engine import find
from fiftyone_dedup.engine import folders
from fiftyone_dedup.moves import manifest as mf

import labeled


@pytest.fixture
def names():
    """Dataset names a test creates; deleted afterwards."""
    made = []
    yield made
    for name in made + [n + "-duplicates" for n in made]:
        if fo.dataset_exists(name):
            fo.load_dataset(name).delete()



def load(names, name, dirs, data_dir=True, annotations=True, exclude=()):
    names.append(name)
    if fo.dataset_exists(name):
        fo.load_dataset(name).delete()
    ds = folders.load_folders(
        dirs, name=name, data_dir=data_dir, annotations=annotations, exclude=exclude,
    )[0]
    # moves are tested on the encoder's own pairs (verification has its own tests)
    find.find_duplicates(ds, threshold=10, num_workers=0, verify="none")
    return ds



def plain_folder(directory, num_originals=4, num_copies=2):
    made = labeled.make_raw(directory, num_originals, num_copies)
    copies = [os.path.relpath(p, directory) for p, _, c in made if c]
    return {"dir": directory, "data_dir": False, "copies": copies, "layout": None}



def labels_in(ds):
    fields = [f for f in ds.get_field_schema() if f.startswith("ground_truth")]
    total = 0
    for f in fields:
        total += ds.count(f"{f}.detections") if ds.count(f"{f}.detections") else ds.count(f)
    return total



def moved_dataset(tmp_path, names, name="sec"):
    root = str(tmp_path / "ds")
    made = labeled.make_labeled_folder(root, "coco")
    ds = load(names, name, [root])
    tree0 = labeled.tree(root)
    dup = str(tmp_path / "dups")
    move.move_duplicates(ds, dup)
    return root, dup, ds, tree0, made



def rewrite_manifest(dup, change):
    path = mf.list_manifests(dup)[0]
    records = [json.loads(line) for line in open(path)]
    change(records)
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return path

