"""Moving duplicates out and restoring them: real database, real files,
real labeled folders (written by FiftyOne's exporters), real faults."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

import fiftyone as fo

from fiftyone_dedup.moves import actions
from fiftyone_dedup.engine import core
from fiftyone_dedup.moves import fileops
from fiftyone_dedup.engine import folders
from fiftyone_dedup.moves import locks
from fiftyone_dedup.moves import manifest as mf

import helpers
import labeled
import mounts


@pytest.fixture
def names():
    """Dataset names a test creates; deleted afterwards."""
    made = []
    yield made
    for name in made + [n + "-duplicates" for n in made]:
        if fo.dataset_exists(name):
            fo.load_dataset(name).delete()


def _load(names, name, dirs, data_dir=True, annotations=True, exclude=()):
    names.append(name)
    if fo.dataset_exists(name):
        fo.load_dataset(name).delete()
    ds = folders.load_folders(
        dirs, name=name, data_dir=data_dir, annotations=annotations, exclude=exclude,
    )[0]
    # moves are tested on the encoder's own pairs (verification has its own tests)
    core.find_duplicates(ds, threshold=10, num_workers=0, verify="none")
    return ds


def _plain_folder(directory, num_originals=4, num_copies=2):
    made = labeled.make_raw(directory, num_originals, num_copies)
    copies = [os.path.relpath(p, directory) for p, _, c in made if c]
    return {"dir": directory, "data_dir": False, "copies": copies, "layout": None}


def _labels_in(ds):
    fields = [f for f in ds.get_field_schema() if f.startswith("ground_truth")]
    total = 0
    for f in fields:
        total += ds.count(f"{f}.detections") if ds.count(f"{f}.detections") else ds.count(f)
    return total


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
        made = _plain_folder(root)
    else:
        made = labeled.make_labeled_folder(root, layout)
    ds = _load(
        names, f"rt-{layout}", [root], data_dir=made["data_dir"], annotations=layout != "plain"
    )
    copies = {os.path.join(root, c) for c in made["copies"]}
    assert set(ds.match_tags("duplicate").values("filepath")) == copies
    tree0, db0, n0 = labeled.tree(root), labeled.snapshot(ds), len(ds)
    dup = str(tmp_path / "dups")

    result = actions.move_duplicates(ds, dup, on_samples=on_samples)
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
        assert _labels_in(out) == len(copies)
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
        assert _labels_in(other) == len(copies)

    restored = actions.restore(dup)
    assert restored.num_restored == len(copies) and restored.messages == []
    assert labeled.tree(root) == tree0
    ds.reload()
    assert labeled.snapshot(ds) == db0
    assert not os.path.exists(os.path.join(dup, "ds"))
    assert not fo.dataset_exists(f"rt-{layout}-duplicates")
    # a second restore has nothing left to do
    again = actions.restore(dup)
    assert again.num_restored == 0 and labeled.tree(root) == tree0


def test_labels_dropped(tmp_path, names):
    root = str(tmp_path / "voc")
    made = labeled.make_labeled_folder(root, "voc")
    ds = _load(names, "drop-voc", [root])
    tree0, db0 = labeled.tree(root), labeled.snapshot(ds)
    dup = str(tmp_path / "dups")
    result = actions.move_duplicates(ds, dup, labels="drop")
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

    actions.restore(dup)
    assert labeled.tree(root) == tree0
    ds.reload()
    assert labeled.snapshot(ds) == db0


def test_coco_labels_dropped_leave_no_annotations(tmp_path, names):
    root = str(tmp_path / "coco")
    labeled.make_labeled_folder(root, "coco")
    ds = _load(names, "drop-coco", [root])
    dup = str(tmp_path / "dups")
    actions.move_duplicates(ds, dup, labels="drop", on_samples="delete")
    assert not os.path.exists(os.path.join(dup, "coco", "labels.json"))
    assert all(p.endswith(".jpg") for p in labeled.tree(os.path.join(dup, "coco")))
    coco = json.loads(open(os.path.join(root, "labels.json")).read())
    assert len(coco["images"]) == 4 and {a["image_id"] for a in coco["annotations"]} <= {
        i["id"] for i in coco["images"]
    }


def test_dry_run_changes_nothing(tmp_path, names):
    root = str(tmp_path / "coco")
    made = labeled.make_labeled_folder(root, "coco")
    ds = _load(names, "dry", [root])
    tree0, db0, info0 = labeled.tree(root), labeled.snapshot(ds), dict(ds.info)
    dup = str(tmp_path / "dups")
    result = actions.move_duplicates(ds, dup, dry_run=True, on_samples="delete")
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
    ds = _load(names, "two", [a, b], data_dir=False, annotations=False)
    dup = str(tmp_path / "dups")
    # something of the user's is already there: never overwritten
    helpers.save(labeled.small_photo(2), os.path.join(dup, "ds", "z_same_name.jpg"))
    mine = labeled.tree(dup)
    result = actions.move_duplicates(ds, dup)
    assert result.num_moved == 2
    dests = sorted(os.path.relpath(f["dst"], dup) for f in result.files)
    assert dests == ["ds-2/z_same_name.jpg", "ds-3/z_same_name.jpg"]
    after = labeled.tree(dup, skip_hidden=True)
    assert all(after[k] == v for k, v in mine.items())


def test_changed_removed_and_kept_missing_are_not_moved(tmp_path, names):
    root = str(tmp_path / "plain")
    _plain_folder(root, num_originals=5, num_copies=4)
    ds = _load(names, "changed", [root], data_dir=False, annotations=False)
    groups = core.get_groups(ds)
    assert len(groups) == 4
    changed, removed, kept_gone, fine = [g["duplicates"][0]["filepath"] for g in groups]
    with open(changed, "ab") as f:
        f.write(b"edited after find")
    os.remove(removed)
    os.remove(groups[2]["keep"]["filepath"])
    edited = fileops.sha256_file(changed)
    result = actions.move_duplicates(ds, str(tmp_path / "dups"))
    reasons = {s["path"]: s["reason"] for s in result.skipped}
    assert "changed since duplicates were found" in reasons[changed]
    assert reasons[removed] == "file not found"
    assert "kept file" in reasons[kept_gone] and "missing" in reasons[kept_gone]
    assert result.num_moved == 1 and not os.path.exists(fine)
    assert fileops.sha256_file(changed) == edited and os.path.exists(kept_gone)


def test_a_file_another_sample_keeps_is_not_moved(tmp_path, names):
    root = str(tmp_path / "shared")
    _plain_folder(root, num_originals=2, num_copies=1)
    paths = sorted(labeled.tree(root))
    copy = os.path.join(root, "sub", "p0_copy.jpg")
    ds = fo.Dataset()
    names.append(ds.name)
    # the copy is also the file of a sample outside the run, which stays
    ds.add_samples(
        [fo.Sample(filepath=os.path.join(root, p)) for p in paths] + [fo.Sample(filepath=copy)]
    )
    core.find_duplicates(ds.limit(len(paths)), threshold=10, num_workers=0)
    assert len(ds.match_tags("duplicate")) == 1
    result = actions.move_duplicates(ds, str(tmp_path / "dups"))
    assert result.num_moved == 0
    assert [s["reason"] for s in result.skipped] == [
        f"also the file of sample {ds.last().id}, which stays"
    ]
    assert os.path.exists(copy)


def test_duplicates_folder_inside_the_dataset(tmp_path, names):
    root = str(tmp_path / "coco")
    labeled.make_labeled_folder(root, "coco")
    ds = _load(names, "inside", [root])
    # inside the images folder of a labeled dataset: refused before any change
    tree0 = labeled.tree(root)
    with pytest.raises(ValueError, match="inside .*data.*images folder"):
        actions.move_duplicates(ds, os.path.join(root, "data", "dups"))
    # containing the dataset: refused
    with pytest.raises(ValueError, match="contains the dataset folder"):
        actions.move_duplicates(ds, str(tmp_path))
    assert labeled.tree(root) == tree0
    # beside data/: fine, and rescans never see the moved files
    dup = os.path.join(root, "duplicates")
    assert actions.move_duplicates(ds, dup).num_moved == 2
    again = folders.load_folders([root], name="inside", exclude=[dup])[0]
    assert not any(p.startswith(dup) for p in again.values("filepath"))
    assert len(again) == 4
    src = labeled.load_layout(root, "coco")
    assert len(src) == 4
    src.delete()


def test_move_to_another_file_system_and_back(tmp_path, names):
    other = mounts.other_filesystem_dir(tmp_path)
    if other is None:
        pytest.skip("no second file system (/dev/shm) here")
    try:
        root = str(tmp_path / "yolo")
        made = labeled.make_labeled_folder(root, "yolov4")
        ds = _load(names, "xfs", [root])
        tree0, db0 = labeled.tree(root), labeled.snapshot(ds)
        mtimes = {c: os.stat(os.path.join(root, c)).st_mtime_ns for c in made["copies"]}
        dup = os.path.join(other, "dups")
        assert actions.move_duplicates(ds, dup).num_moved == 2
        for c in made["copies"]:
            assert os.stat(os.path.join(dup, "yolo", c)).st_mtime_ns == mtimes[c]
        actions.restore(dup)
        assert labeled.tree(root) == tree0
        ds.reload()
        assert labeled.snapshot(ds) == db0
        # times survive the round trip, so stored hashes stay valid
        rep = core.compute_hashes(ds, num_workers=0)
        assert rep.num_computed == 0
    finally:
        shutil.rmtree(other, ignore_errors=True)


@mounts.needs_mount
def test_read_only_duplicates_folder_and_source(tmp_path, names):
    root = str(tmp_path / "plain")
    _plain_folder(root)
    ds = _load(names, "ro", [root], data_dir=False, annotations=False)
    tree0, db0 = labeled.tree(root), labeled.snapshot(ds)
    ro = str(tmp_path / "ro")
    os.makedirs(ro)
    with mounts.read_only(ro):
        with pytest.raises(ValueError, match=f"Cannot write to the duplicates folder {ro}.*"):
            actions.move_duplicates(ds, ro)
    with mounts.read_only(root):
        result = actions.move_duplicates(ds, str(tmp_path / "dups"))
        assert result.num_moved == 0
        assert all("read-only" in s["reason"] for s in result.skipped) and len(result.skipped) == 2
    assert labeled.tree(root) == tree0
    ds.reload()
    assert labeled.snapshot(ds) == db0


@mounts.needs_mount
def test_full_disk_refused_before_any_change(tmp_path, names):
    root = str(tmp_path / "plain")
    _plain_folder(root)
    ds = _load(names, "full1", [root], data_dir=False, annotations=False)
    tree0 = labeled.tree(root)
    with mounts.tmpfs(str(tmp_path / "small"), size="64k") as small:
        with pytest.raises(ValueError, match="Not enough space"):
            actions.move_duplicates(ds, small)
        assert mf.list_manifests(small) == []
    assert labeled.tree(root) == tree0


@mounts.needs_mount
def test_disk_filling_up_mid_move_loses_nothing(tmp_path, names, monkeypatch):
    """The duplicates folder's disk fills up (another program writes) in
    the middle of the move: real ENOSPC. Nothing is lost; once space is
    freed, the same move finishes, and a restore undoes it."""
    root = str(tmp_path / "coco")
    labeled.make_labeled_folder(root, "coco", num_originals=8, num_copies=8)
    ds = _load(names, "full2", [root])
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
        with pytest.raises(actions.DiskFullError, match="is full.*Nothing is lost"):
            actions.move_duplicates(ds, small)
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
        result = actions.move_duplicates(ds, small)
        assert len(result.resumed) == 1
        assert sorted(n for n in os.listdir(small) if not n.startswith((".", "manifest-"))) == [
            "coco"
        ]
        moves = actions.list_moves(small)
        assert all(m["state"] == "moved" for m in moves)
        assert sum(m["num_moved"] for m in moves) == 8  # COCO: images only, labels.json is shared
        assert len(ds.match_tags("moved")) == 8
        coco = json.loads(open(os.path.join(root, "labels.json")).read())
        assert len(coco["images"]) == 8
        actions.restore(small)
    assert labeled.tree(root) == tree0
    ds.reload()
    assert labeled.snapshot(ds) == db0


_HOLD = r"""
import sys, time
from fiftyone_dedup.moves import actions
from fiftyone_dedup.moves import transfer
real = transfer.move_out
def slow(m, e, dup):
    print("moving", flush=True)
    time.sleep(120)
    return real(m, e, dup)
transfer.move_out = slow
import fiftyone as fo
actions.move_duplicates(fo.load_dataset(sys.argv[1]), sys.argv[2])
"""


def test_two_runs_at_once_are_refused_and_a_kill_is_finished_later(tmp_path, names):
    root = str(tmp_path / "plain")
    _plain_folder(root)
    ds = _load(names, "locked", [root], data_dir=False, annotations=False)
    other_root = str(tmp_path / "other")
    _plain_folder(other_root)
    other = _load(names, "locked2", [other_root], data_dir=False, annotations=False)
    dup = str(tmp_path / "dups")
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, ds.name, dup], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=os.environ.copy(),
    )
    try:
        assert proc.stdout.readline().strip() == "moving", proc.stderr.read()
        with pytest.raises(locks.LockError, match=f"the duplicates folder {dup}"):
            actions.move_duplicates(other, dup)
        with pytest.raises(locks.LockError, match="dataset 'locked'"):
            actions.move_duplicates(ds, str(tmp_path / "elsewhere"))
        with pytest.raises(locks.LockError, match="duplicates folder"):
            actions.restore(dup)
        assert not os.path.exists(tmp_path / "elsewhere" / "plain")
    finally:
        proc.kill()  # SIGKILL mid-move
        proc.wait()
    assert [m["state"] for m in actions.list_moves(dup)] == ["moving"]
    # elsewhere, the unfinished move is pointed out
    plan = actions.move_duplicates(ds, str(tmp_path / "elsewhere"), dry_run=True)
    assert any(f"into {dup} is unfinished" in msg for msg in plan.messages)
    dry = actions.move_duplicates(ds, dup, dry_run=True)
    assert any("would be finished first" in msg for msg in dry.messages)
    result = actions.move_duplicates(ds, dup)
    assert len(result.resumed) == 1
    assert [m["state"] for m in actions.list_moves(dup)] == ["moved"]
    assert len(ds.match_tags("moved")) == 2


def _start_mongod(dbpath, port):
    from dbserver import mongod_binary

    os.makedirs(dbpath, exist_ok=True)
    subprocess.run(
        [
            mongod_binary(),
            "--dbpath",
            dbpath,
            "--port",
            str(port),
            "--bind_ip",
            "127.0.0.1",
            "--fork",
            "--logpath",
            os.path.join(dbpath, "log"),
            "--pidfilepath",
            os.path.join(dbpath, "pid"),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.time() + 30
    import socket

    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return int(open(os.path.join(dbpath, "pid")).read())
        except OSError:
            assert time.time() < deadline, "mongod did not start"
            time.sleep(0.2)


_DB_LOST = r"""
import os, signal, sys
from fiftyone_dedup.moves import actions
from fiftyone_dedup.moves import database
from fiftyone_dedup.engine import core
from fiftyone_dedup.engine import folders
mode, root, dup, pidfile = sys.argv[1:5]
if mode == "setup":
    ds = folders.load_folders([root], name="dblost", data_dir=True)[0]
    core.find_duplicates(ds, threshold=10, num_workers=0)
    sys.exit(0)
import fiftyone as fo
ds = fo.load_dataset("dblost")
if mode == "kill":
    real = database.update_samples
    def lose_db(*args):
        os.kill(int(open(pidfile).read()), signal.SIGKILL)  # the database dies
        return real(*args)
    database.update_samples = lose_db
r = actions.move_duplicates(ds, dup)
print("moved", r.num_moved, len(r.resumed), len(ds.match_tags("moved")))
"""


def test_database_lost_mid_move_is_finished_by_a_rerun(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dbpath = str(tmp_path / "db")
    _start_mongod(dbpath, port)
    env = dict(os.environ, FIFTYONE_DATABASE_URI=f"mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=3000")
    root = str(tmp_path / "coco")
    labeled.make_labeled_folder(root, "coco")
    tree0 = labeled.tree(root)
    dup = str(tmp_path / "dups")
    pidfile = os.path.join(dbpath, "pid")

    def run(mode):
        return subprocess.run(
            [sys.executable, "-c", _DB_LOST, mode, root, dup, pidfile],
            capture_output=True, text=True, env=env, timeout=300,
        )

    try:
        assert run("setup").returncode == 0
        out = run("kill")
        assert out.returncode != 0
        assert (
            "The database could not be updated" in out.stderr
            and "run the same command again" in out.stderr
        )
        # files and annotations moved, the database not yet: a rerun repairs it
        m = mf.read_manifest(mf.list_manifests(dup)[0])
        assert m.state == "moving" and "annotations" in m.phases and "database" not in m.phases
        assert len(json.loads(open(os.path.join(root, "labels.json")).read())["images"]) == 4
        _start_mongod(dbpath, port)
        out = run("move")
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["moved", "0", "1", "2"]
        assert actions.list_moves(dup)[0]["state"] == "moved"
    finally:
        try:
            os.kill(int(open(pidfile).read()), 9)
        except (OSError, ValueError):
            pass
    assert len(labeled.tree(root)) == len(tree0) - 2


# ------------------------------------------------------------------ security


def _moved(tmp_path, names, name="sec"):
    root = str(tmp_path / "ds")
    made = labeled.make_labeled_folder(root, "coco")
    ds = _load(names, name, [root])
    tree0 = labeled.tree(root)
    dup = str(tmp_path / "dups")
    actions.move_duplicates(ds, dup)
    return root, dup, ds, tree0, made


def _rewrite_manifest(dup, change):
    path = mf.list_manifests(dup)[0]
    records = [json.loads(line) for line in open(path)]
    change(records)
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return path


def test_restore_refuses_folders_the_dataset_does_not_vouch_for(tmp_path, names):
    root, dup, ds, tree0, made = _moved(tmp_path, names)
    victim = tmp_path / "victim"
    victim.mkdir()
    # the manifest now claims the files came from another folder
    _rewrite_manifest(dup, lambda r: r[0]["roots"][0].update(path=str(victim)))
    result = actions.restore(dup)
    assert result.num_restored == 0
    assert (
        "has no record of" in result.moves[0]["error"] and str(victim) in result.moves[0]["error"]
    )
    assert list(victim.iterdir()) == []
    # naming it explicitly is the user's call
    result = actions.restore(dup, trusted_roots=[str(victim)])
    assert result.num_restored == 2 and sorted(p.name for p in (victim / "data" / "sub").iterdir())


def test_crafted_paths_in_a_manifest_touch_nothing_outside(tmp_path, names):
    root, dup, ds, tree0, made = _moved(tmp_path, names)
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "evil.jpg"

    def craft(records):
        for r in records:
            if r.get("type") == "file" and r["n"] == 0:
                r["src"] = "../outside/evil.jpg"
                r["dst"] = "ds/../outside/evil.jpg"
            if r.get("type") == "annotation":
                r["backup"] = "../../outside/labels.json"

    _rewrite_manifest(dup, craft)
    m = mf.read_manifest(mf.list_manifests(dup)[0])
    assert [e.n for e in m.files] == [1] and m.annotations == []
    assert any("'..'" in p for p in m.problems) and any(
        "not where backups go" in p for p in m.problems
    )
    result = actions.restore(dup)
    assert not target.exists() and list(outside.iterdir()) == []
    # the honest entry went back; the crafted ones were ignored
    assert result.num_restored == 1
    assert os.path.exists(os.path.join(root, made["copies"][1]))


def test_symlinks_planted_in_the_duplicates_folder_are_not_followed(tmp_path, names):
    root, dup, ds, tree0, made = _moved(tmp_path, names)
    outside = tmp_path / "outside"
    shutil.copytree(os.path.join(dup, "ds", "data"), outside)
    shutil.rmtree(os.path.join(dup, "ds", "data"))
    os.symlink(outside, os.path.join(dup, "ds", "data"))
    before = labeled.tree(str(outside))
    result = actions.restore(dup)
    assert result.num_restored == 0
    assert all("symbolic link" in f["reason"] for f in result.files)
    assert labeled.tree(str(outside)) == before  # nothing taken from outside


def test_symlinks_planted_in_the_dataset_are_not_written_through(tmp_path, names):
    root, dup, ds, tree0, made = _moved(tmp_path, names)
    outside = tmp_path / "outside"
    outside.mkdir()
    sub = os.path.join(root, "data", "sub")
    os.rmdir(sub)  # emptied by the move
    os.symlink(outside, sub)
    result = actions.restore(dup)
    assert result.num_restored == 0 and list(outside.iterdir()) == []
    assert all(os.path.exists(os.path.join(dup, "ds", c)) for c in made["copies"])


def test_dataset_paths_leading_outside_are_not_moved(tmp_path, names):
    root = str(tmp_path / "ds")
    _plain_folder(root)
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
    core.find_duplicates(ds, threshold=10, num_workers=0)
    assert len(ds.match_tags("duplicate")) == 2
    result = actions.move_duplicates(ds, str(tmp_path / "dups"), root=root)
    assert result.num_moved == 0
    reasons = {os.path.basename(os.path.dirname(s["path"])): s["reason"] for s in result.skipped}
    assert reasons == {
        "outside": f"outside its dataset folder {root}",  # the '..' path
        "link": f"resolves outside its dataset folder {root} (symbolic link in its path)",
    }
    assert os.path.exists(secret)


def test_bad_arguments_change_nothing(tmp_path, names):
    root = str(tmp_path / "ds")
    _plain_folder(root)
    ds = _load(names, "badargs", [root], data_dir=False, annotations=False)
    file_path = tmp_path / "a_file"
    file_path.write_text("x")
    for kwargs, message in [
        (dict(labels="maybe"), "labels must be one of"),
        (dict(on_samples="archive"), "on_samples must be one of"),
        (dict(run_key="nope"), "No duplicates run 'nope'"),
        (dict(tag=""), "tag must be"),
        (dict(duplicates_dataset="x"), "only used with on_samples='dataset'"),
        (
            dict(on_samples="dataset", duplicates_dataset="badargs"),
            "must not be the dataset itself",
        ),
    ]:
        with pytest.raises(ValueError, match=message):
            actions.move_duplicates(ds, str(tmp_path / "dups"), **kwargs)
    with pytest.raises(ValueError, match="not a folder"):
        actions.move_duplicates(ds, str(file_path))
    with pytest.raises(ValueError, match="must be a folder path"):
        actions.move_duplicates(ds, "")
    with pytest.raises(ValueError, match="not found"):
        actions.restore(str(tmp_path / "nowhere"))
    assert not os.path.exists(tmp_path / "dups")


def test_planted_symlinks_for_locks_and_backups_are_refused(tmp_path, names):
    root = str(tmp_path / "ds")
    _plain_folder(root)
    ds = _load(names, "planted", [root], data_dir=False, annotations=False)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    dup = tmp_path / "dups"
    (dup / ".fiftyone_dedup").mkdir(parents=True)
    os.symlink(victim, dup / ".fiftyone_dedup" / "lock")
    with pytest.raises(locks.LockError, match="must be a plain file"):
        actions.move_duplicates(ds, str(dup))
    assert victim.read_text() == "precious"
    shutil.rmtree(dup)
    dup.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, dup / ".fiftyone_dedup")
    with pytest.raises(ValueError, match="not a folder"):
        actions.move_duplicates(ds, str(dup))
    assert list(elsewhere.iterdir()) == []
    assert len(ds.match_tags("moved")) == 0


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
    core.find_cross_duplicates(query, reference, threshold=10)
    assert len(query.match_tags("duplicate")) == 2
    result = actions.move_duplicates(query, str(tmp_path / "dups"), root=str(tmp_path))
    assert result.num_moved == 1
    assert [f["kept"] for f in result.files] == [ref[0]]
    assert [s["reason"] for s in result.skipped] == [
        f"it is the same file as its kept sample's ({ref[1]})"
    ]
    assert os.path.exists(ref[1]) and not os.path.exists(new[0])
