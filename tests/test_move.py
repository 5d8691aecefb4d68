"""Moving duplicates out and back: real database, real files, real
labeled folders (written by FiftyOne's exporters), real faults."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import fiftyone as fo

from fiftyone_dedup.moves import move
from fiftyone_dedup.moves import restore
from fiftyone_dedup.moves import transfer
from fiftyone_dedup.engine import encodings
from fiftyone_dedup.moves import fileops
from fiftyone_dedup.moves import locks
from fiftyone_dedup.moves import manifest as mf

import labeled
import mounts

from moving import load, plain_folder, labels_in, names  # noqa: F401 - names: the fixture


ROUND_TRIPS = [
    ("coco", "delete"),
    ("yolov4", "keep"),
    ("yolov5", "dataset"),
    ("plain", "keep"),
    ("voc", "keep"),
    ("kitti", "delete"),
    ("cvat", "keep"),
    ("fiftyone-detection", "dataset"),
    ("fiftyone-classification", "keep"),
    ("fiftyone", "keep"),
]



@pytest.mark.parametrize("layout, on_samples", ROUND_TRIPS)
def test_move_and_restore_round_trip(tmp_path, names, layout, on_samples):
    root = str(tmp_path / "ds")
    if layout == "plain":
        made = plain_folder(root)
    else:
        made = labeled.make_labeled_folder(root, layout)
    ds = load(
        names, f"rt-{layout}", [root], data_dir=made["data_dir"], annotations=layout != "plain"
    )
    copies = {os.path.join(root, c) for c in made["copies"]}
    assert set(ds.match_tags("duplicate").values("filepath")) == copies
    tree0, db0, n0 = labeled.tree(root), labeled.snapshot(ds), len(ds)
    dup = str(tmp_path / "dups")

    result = move.move_duplicates(ds, dup, on_samples=on_samples)
    assert result.num_moved == len(copies) and result.skipped == []
    moved_to = {os.path.join(dup, "ds", c) for c in made["copies"]}
    assert all(not os.path.exists(c) for c in copies)
    assert all(os.path.isfile(p) for p in moved_to)

    # the source folder is still a valid dataset, without the moved images
    if layout != "plain":
        src = labeled.load_layout(root, layout, made["data_dir"])
        assert len(src) == n0 - len(copies) and not set(src.values("filepath")) & copies
        src.delete()
        # the duplicates folder is a labeled dataset of the same format
        out = labeled.load_layout(os.path.join(dup, "ds"), layout, made["data_dir"])
        assert set(out.values("filepath")) == moved_to
        assert labels_in(out) == len(copies)
        out.delete()

    # the samples, as chosen
    if on_samples == "keep":
        assert len(ds) == n0
        assert set(ds.match_tags("moved").values("filepath")) == moved_to
    elif on_samples == "delete":
        assert len(ds) == n0 - len(copies)
    else:
        other = fo.load_dataset(f"rt-{layout}-duplicates")
        assert set(other.values("filepath")) == moved_to and len(ds) == n0 - len(copies)
        assert labels_in(other) == len(copies)

    restored = restore.restore(dup)
    assert restored.num_restored == len(copies) and restored.messages == []
    assert labeled.tree(root) == tree0
    ds.reload()
    assert labeled.snapshot(ds) == db0
    assert not os.path.exists(os.path.join(dup, "ds"))
    assert not fo.dataset_exists(f"rt-{layout}-duplicates")
    # a second restore has nothing left to do
    again = restore.restore(dup)
    assert again.num_restored == 0 and labeled.tree(root) == tree0



def test_labels_dropped(tmp_path, names):
    root = str(tmp_path / "voc")
    made = labeled.make_labeled_folder(root, "voc")
    ds = load(names, "drop-voc", [root])
    tree0, db0 = labeled.tree(root), labeled.snapshot(ds)
    dup = str(tmp_path / "dups")
    result = move.move_duplicates(ds, dup, labels="drop")
    assert result.num_moved == 2
    # only images in the duplicates folder: no annotations travelled
    files = sorted(labeled.tree(os.path.join(dup, "voc")))
    assert files == sorted(made["copies"])
    # the source lost their annotation files, and stays valid
    for c in made["copies"]:
        stem = os.path.splitext(c[len("data/"):])[0]
        assert not os.path.exists(os.path.join(root, "labels", stem + ".xml"))
    src = labeled.load_layout(root, "voc")
    assert len(src) == 4 and not set(src.values("filepath")) & {
        os.path.join(root, c) for c in made["copies"]
    }
    src.delete()
    # the moved samples lost their labels
    moved = ds.match_tags("moved")
    assert len(moved) == 2 and moved.count("ground_truth.detections") == 0
    assert ds.count("ground_truth.detections") == 4  # the staying samples keep theirs

    restore.restore(dup)
    assert labeled.tree(root) == tree0
    ds.reload()
    assert labeled.snapshot(ds) == db0



def test_coco_labels_dropped_leave_no_annotations(tmp_path, names):
    root = str(tmp_path / "coco")
    labeled.make_labeled_folder(root, "coco")
    ds = load(names, "drop-coco", [root])
    dup = str(tmp_path / "dups")
    move.move_duplicates(ds, dup, labels="drop", on_samples="delete")
    assert not os.path.exists(os.path.join(dup, "coco", "labels.json"))
    assert all(p.endswith(".jpg") for p in labeled.tree(os.path.join(dup, "coco")))
    coco = json.loads(open(os.path.join(root, "labels.json")).read())
    assert len(coco["images"]) == 4 and {a["image_id"] for a in coco["annotations"]} <= {
        i["id"] for i in coco["images"]
    }



def test_move_to_another_file_system_and_back(tmp_path, names):
    other = mounts.other_filesystem_dir(tmp_path)
    if other is None:
        pytest.skip("no second file system (/dev/shm) here")
    try:
        root = str(tmp_path / "yolo")
        made = labeled.make_labeled_folder(root, "yolov4")
        ds = load(names, "xfs", [root])
        tree0, db0 = labeled.tree(root), labeled.snapshot(ds)
        mtimes = {c: os.stat(os.path.join(root, c)).st_mtime_ns for c in made["copies"]}
        dup = os.path.join(other, "dups")
        assert move.move_duplicates(ds, dup).num_moved == 2
        for c in made["copies"]:
            assert os.stat(os.path.join(dup, "yolo", c)).st_mtime_ns == mtimes[c]
        restore.restore(dup)
        assert labeled.tree(root) == tree0
        ds.reload()
        assert labeled.snapshot(ds) == db0
        # times survive the round trip, so stored hashes stay valid
        rep = encodings.compute_hashes(ds, num_workers=0)
        assert rep.num_computed == 0
    finally:
        shutil.rmtree(other, ignore_errors=True)



@mounts.needs_mount
def test_read_only_duplicates_folder_and_source(tmp_path, names):
    root = str(tmp_path / "plain")
    plain_folder(root)
    ds = load(names, "ro", [root], data_dir=False, annotations=False)
    tree0, db0 = labeled.tree(root), labeled.snapshot(ds)
    ro = str(tmp_path / "ro")
    os.makedirs(ro)
    with mounts.read_only(ro):
        with pytest.raises(ValueError, match=f"Cannot write to the duplicates folder {ro}.*"):
            move.move_duplicates(ds, ro)
    with mounts.read_only(root):
        result = move.move_duplicates(ds, str(tmp_path / "dups"))
        assert result.num_moved == 0
        assert all("read-only" in s["reason"] for s in result.skipped) and len(result.skipped) == 2
    assert labeled.tree(root) == tree0
    ds.reload()
    assert labeled.snapshot(ds) == db0



@mounts.needs_mount
def test_full_disk_refused_before_any_change(tmp_path, names):
    root = str(tmp_path / "plain")
    plain_folder(root)
    ds = load(names, "full1", [root], data_dir=False, annotations=False)
    tree0 = labeled.tree(root)
    with mounts.tmpfs(str(tmp_path / "small"), size="64k") as small:
        with pytest.raises(ValueError, match="Not enough space"):
            move.move_duplicates(ds, small)
        assert mf.list_manifests(small) == []
    assert labeled.tree(root) == tree0



@mounts.needs_mount
def test_disk_filling_up_mid_move_loses_nothing(tmp_path, names, monkeypatch):
    """The duplicates folder's disk fills up (another program writes) in
    the middle of the move: real ENOSPC. Nothing is lost; once space is
    freed, the same move finishes, and a restore undoes it."""
    root = str(tmp_path / "coco")
    labeled.make_labeled_folder(root, "coco", num_originals=8, num_copies=8)
    ds = load(names, "full2", [root])
    tree0, db0 = labeled.tree(root), labeled.snapshot(ds)
    with mounts.tmpfs(str(tmp_path / "small"), size="2m") as small:
        filler = os.path.join(small, "filler")
        real_copy = fileops.copy_verified
        calls = []

        def copy_then_fill(src, dst, sha):
            real_copy(src, dst, sha)
            calls.append(dst)
            if len(calls) == 3:  # another program fills the disk
                with open(filler, "wb") as f:
                    try:
                        while True:
                            f.write(b"\0" * 65536)
                    except OSError:
                        pass

        monkeypatch.setattr(fileops, "copy_verified", copy_then_fill)
        with pytest.raises(transfer.DiskFullError, match="is full.*Nothing is lost"):
            move.move_duplicates(ds, small)
        # every duplicate exists exactly once, intact
        for rel, sha in tree0.items():
            if not rel.startswith("data/"):
                continue
            here = [
                p
                for p in (os.path.join(root, rel), os.path.join(small, "coco", rel))
                if os.path.exists(p)
            ]
            assert len(here) == 1 and fileops.sha256_file(here[0]) == sha, rel
        os.remove(filler)
        monkeypatch.setattr(fileops, "copy_verified", real_copy)
        # the interrupted move is finished; what it could not move moves now,
        # into the same folder (never split between coco and coco-2)
        result = move.move_duplicates(ds, small)
        assert len(result.resumed) == 1
        assert sorted(n for n in os.listdir(small) if not n.startswith((".", "manifest-"))) == [
            "coco"
        ]
        moves = restore.list_moves(small)
        assert all(m["state"] == "moved" for m in moves)
        assert sum(m["num_moved"] for m in moves) == 8  # COCO: images only, labels.json is shared
        assert len(ds.match_tags("moved")) == 8
        coco = json.loads(open(os.path.join(root, "labels.json")).read())
        assert len(coco["images"]) == 8
        restore.restore(small)
    assert labeled.tree(root) == tree0
    ds.reload()
    assert labeled.snapshot(ds) == db0



_HOLD = r"""
import sys, time
from fiftyone_dedup.moves import move
from fiftyone_dedup.moves import restore
from fiftyone_dedup.moves import transfer
from fiftyone_dedup.moves import transfer
real = transfer.move_out
def slow(m, e, dup):
    print("moving", flush=True)
    time.sleep(120)
    return real(m, e, dup)
transfer.move_out = slow
import fiftyone as fo
move.move_duplicates(fo.load_dataset(sys.argv[1]), sys.argv[2])
"""



def test_two_runs_at_once_are_refused_and_a_kill_is_finished_later(tmp_path, names):
    root = str(tmp_path / "plain")
    plain_folder(root)
    ds = load(names, "locked", [root], data_dir=False, annotations=False)
    other_root = str(tmp_path / "other")
    plain_folder(other_root)
    other = load(names, "locked2", [other_root], data_dir=False, annotations=False)
    dup = str(tmp_path / "dups")
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, ds.name, dup], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=os.environ.copy(),
    )
    try:
        assert proc.stdout.readline().strip() == "moving", proc.stderr.read()
        with pytest.raises(locks.LockError, match=f"the duplicates folder {dup}"):
            move.move_duplicates(other, dup)
        with pytest.raises(locks.LockError, match="dataset 'locked'"):
            move.move_duplicates(ds, str(tmp_path / "elsewhere"))
        with pytest.raises(locks.LockError, match="duplicates folder"):
            restore.restore(dup)
        assert not os.path.exists(tmp_path / "elsewhere" / "plain")
    finally:
        proc.kill()  # SIGKILL mid-move
        proc.wait()
    assert [m["state"] for m in restore.list_moves(dup)] == ["moving"]
    # elsewhere, the unfinished move is pointed out
    plan = move.move_duplicates(ds, str(tmp_path / "elsewhere"), dry_run=True)
    assert any(f"into {dup} is unfinished" in msg for msg in plan.messages)
    dry = move.move_duplicates(ds, dup, dry_run=True)
    assert any("would be finished first" in msg for msg in dry.messages)
    result = move.move_duplicates(ds, dup)
    assert len(result.resumed) == 1
    assert [m["state"] for m in restore.list_moves(dup)] == ["moved"]
    assert len(ds.match_tags("moved")) == 2



def test_planted_symlinks_for_locks_and_backups_are_refused(tmp_path, names):
    root = str(tmp_path / "ds")
    plain_folder(root)
    ds = load(names, "planted", [root], data_dir=False, annotations=False)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    dup = tmp_path / "dups"
    (dup / ".fiftyone_dedup").mkdir(parents=True)
    os.symlink(victim, dup / ".fiftyone_dedup" / "lock")
    with pytest.raises(locks.LockError, match="must be a plain file"):
        move.move_duplicates(ds, str(dup))
    assert victim.read_text() == "precious"
    shutil.rmtree(dup)
    dup.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, dup / ".fiftyone_dedup")
    with pytest.raises(ValueError, match="not a folder"):
        move.move_duplicates(ds, str(dup))
    assert list(elsewhere.iterdir()) == []
    assert len(ds.match_tags("moved")) == 0

