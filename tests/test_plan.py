"""The plan of a move: what moves where, and why a file stays (real
database, real folders)."""

import os

import pytest

import fiftyone as fo

from fiftyone_dedup.moves import move
from fiftyone_dedup.engine import find
from fiftyone_dedup.engine import runs
from fiftyone_dedup.moves import fileops
from fiftyone_dedup.engine import folders

import helpers
import labeled

from moving import load, plain_folder, names  # noqa: F401 - names: the fixture


def test_dry_run_changes_nothing(tmp_path, names):
    root = str(tmp_path / "coco")
    made = labeled.make_labeled_folder(root, "coco")
    ds = load(names, "dry", [root])
    tree0, db0, info0 = labeled.tree(root), labeled.snapshot(ds), dict(ds.info)
    dup = str(tmp_path / "dups")
    result = move.move_duplicates(ds, dup, dry_run=True, on_samples="delete")
    assert result.dry_run and result.num_planned == 2 and result.num_moved == 0
    assert {f["src"] for f in result.files} == {os.path.join(root, c) for c in made["copies"]}
    assert {f["dst"] for f in result.files} == {
        os.path.join(dup, "coco", c) for c in made["copies"]
    }
    text = result.format()
    assert "Would move 2 image(s)" in text and "labels.json" in text and "deleted" in text
    assert labeled.tree(root) == tree0 and not os.path.exists(dup)
    ds.reload()
    assert labeled.snapshot(ds) == db0 and ds.info == info0



def test_files_of_the_same_name_from_two_folders_never_collide(tmp_path, names):
    a, b = str(tmp_path / "x" / "ds"), str(tmp_path / "y" / "ds")
    for d in (a, b):
        img = labeled.small_photo(0 if d == a else 1)
        helpers.save(img, os.path.join(d, "orig.jpg"))
        helpers.save(helpers.jpeg(img), os.path.join(d, "z_same_name.jpg"))
    ds = load(names, "two", [a, b], data_dir=False, annotations=False)
    dup = str(tmp_path / "dups")
    # something of the user's is already there: never overwritten
    helpers.save(labeled.small_photo(2), os.path.join(dup, "ds", "z_same_name.jpg"))
    mine = labeled.tree(dup)
    result = move.move_duplicates(ds, dup)
    assert result.num_moved == 2
    dests = sorted(os.path.relpath(f["dst"], dup) for f in result.files)
    assert dests == ["ds-2/z_same_name.jpg", "ds-3/z_same_name.jpg"]
    after = labeled.tree(dup, skip_hidden=True)
    assert all(after[k] == v for k, v in mine.items())



def test_changed_removed_and_kept_missing_are_not_moved(tmp_path, names):
    root = str(tmp_path / "plain")
    plain_folder(root, num_originals=5, num_copies=4)
    ds = load(names, "changed", [root], data_dir=False, annotations=False)
    groups = runs.get_groups(ds)
    assert len(groups) == 4
    changed, removed, kept_gone, fine = [g["duplicates"][0]["filepath"] for g in groups]
    with open(changed, "ab") as f:
        f.write(b"edited after find")
    os.remove(removed)
    os.remove(groups[2]["keep"]["filepath"])
    edited = fileops.sha256_file(changed)
    result = move.move_duplicates(ds, str(tmp_path / "dups"))
    reasons = {s["path"]: s["reason"] for s in result.skipped}
    assert "changed since duplicates were found" in reasons[changed]
    assert reasons[removed] == "file not found"
    assert "kept file" in reasons[kept_gone] and "missing" in reasons[kept_gone]
    assert result.num_moved == 1 and not os.path.exists(fine)
    assert fileops.sha256_file(changed) == edited and os.path.exists(kept_gone)



def test_a_file_another_sample_keeps_is_not_moved(tmp_path, names):
    root = str(tmp_path / "shared")
    plain_folder(root, num_originals=2, num_copies=1)
    paths = sorted(labeled.tree(root))
    copy = os.path.join(root, "sub", "p0_copy.jpg")
    ds = fo.Dataset()
    names.append(ds.name)
    # the copy is also the file of a sample outside the run, which stays
    ds.add_samples(
        [fo.Sample(filepath=os.path.join(root, p)) for p in paths] + [fo.Sample(filepath=copy)]
    )
    find.find_duplicates(ds.limit(len(paths)), threshold=10, num_workers=0)
    assert len(ds.match_tags("duplicate")) == 1
    result = move.move_duplicates(ds, str(tmp_path / "dups"))
    assert result.num_moved == 0
    assert [s["reason"] for s in result.skipped] == [
        f"also the file of sample {ds.last().id}, which stays"
    ]
    assert os.path.exists(copy)



def test_duplicates_folder_inside_the_dataset(tmp_path, names):
    root = str(tmp_path / "coco")
    labeled.make_labeled_folder(root, "coco")
    ds = load(names, "inside", [root])
    # inside the images folder of a labeled dataset: refused before any change
    tree0 = labeled.tree(root)
    with pytest.raises(ValueError, match="inside .*data.*images folder"):
        move.move_duplicates(ds, os.path.join(root, "data", "dups"))
    # containing the dataset: refused
    with pytest.raises(ValueError, match="contains the dataset folder"):
        move.move_duplicates(ds, str(tmp_path))
    assert labeled.tree(root) == tree0
    # beside data/: fine, and rescans never see the moved files
    dup = os.path.join(root, "duplicates")
    assert move.move_duplicates(ds, dup).num_moved == 2
    again = folders.load_folders([root], name="inside", exclude=[dup])[0]
    assert not any(p.startswith(dup) for p in again.values("filepath"))
    assert len(again) == 4
    src = labeled.load_layout(root, "coco")
    assert len(src) == 4
    src.delete()



def test_dataset_paths_leading_outside_are_not_moved(tmp_path, names):
    root = str(tmp_path / "ds")
    plain_folder(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = helpers.save(labeled.small_photo(0), str(outside / "secret.jpg"))
    os.symlink(outside, os.path.join(root, "link"))
    ds = fo.Dataset()
    names.append(ds.name)
    ds.add_samples([fo.Sample(filepath=os.path.join(root, "p0.jpg"))])
    ds.add_samples([fo.Sample(filepath=os.path.join(root, "link", "secret.jpg"))])
    ds.add_samples(
        [fo.Sample(filepath=os.path.join(root, "sub", "..", "..", "outside", "secret.jpg"))]
    )
    find.find_duplicates(ds, threshold=10, num_workers=0)
    assert len(ds.match_tags("duplicate")) == 2
    result = move.move_duplicates(ds, str(tmp_path / "dups"), root=root)
    assert result.num_moved == 0
    reasons = {os.path.basename(os.path.dirname(s["path"])): s["reason"] for s in result.skipped}
    assert reasons == {
        "outside": f"outside its dataset folder {root}",  # the '..' path
        "link": f"resolves outside its dataset folder {root} (symbolic link in its path)",
    }
    assert os.path.exists(secret)



def test_cross_dataset_duplicates_move_and_shared_files_stay(tmp_path, names):
    ref_dir, new_dir = str(tmp_path / "train"), str(tmp_path / "batch")
    imgs = [labeled.small_photo(i) for i in range(3)]
    ref = [helpers.save(img, os.path.join(ref_dir, f"r{i}.jpg")) for i, img in enumerate(imgs)]
    new = [helpers.save(helpers.jpeg(imgs[0]), os.path.join(new_dir, "leak.jpg"))]
    reference, query = fo.Dataset(), fo.Dataset()
    names.extend([reference.name, query.name])
    reference.add_samples([fo.Sample(filepath=p) for p in ref])
    # the query also holds one of the reference's own files
    query.add_samples([fo.Sample(filepath=p) for p in new + [ref[1]]])
    find.find_cross_duplicates(query, reference, threshold=10)
    assert len(query.match_tags("duplicate")) == 2
    result = move.move_duplicates(query, str(tmp_path / "dups"), root=str(tmp_path))
    assert result.num_moved == 1
    assert [f["kept"] for f in result.files] == [ref[0]]
    assert [s["reason"] for s in result.skipped] == [
        f"it is the same file as its kept sample's ({ref[1]})"
    ]
    assert os.path.exists(ref[1]) and not os.path.exists(new[0])

