"""Attacks on moving and restoring: hand-crafted manifests in a duplicates
folder, a restore killed across file systems, and what the command line
prints (a disk filling up mid-move: ``test_actions.py``). Real folders, a
real database, real files.

Each crafted manifest is refused as a whole before anything changes, with
one line naming the manifest and its record (exit status 2 at the command
line); every image, annotation file and sample stays as it was.
"""

import json
import os
import shutil

import pytest

import fiftyone as fo

from fiftyone_dedup.moves import move
from fiftyone_dedup.moves import restore
from fiftyone_dedup.engine import find
from fiftyone_dedup.moves import fileops
from fiftyone_dedup.engine import folders
from fiftyone_dedup.moves import manifest as mf
from fiftyone_dedup.moves import journal as jr
from fiftyone_dedup.moves import paths

import helpers
import labeled
import mounts
from moving import names  # noqa: F401 - the fixture: datasets deleted afterwards


def _load(names, name, dirs, **kwargs):
    names.append(name)
    if fo.dataset_exists(name):
        fo.load_dataset(name).delete()
    ds = folders.load_folders(dirs, name=name, **kwargs)[0]
    find.find_duplicates(ds, threshold=10, num_workers=0)
    return ds


def _coco_moved(tmp_path, names, name):
    """A COCO folder whose 2 duplicates were moved (labels kept)."""
    root = str(tmp_path / "ds")
    made = labeled.make_labeled_folder(root, "coco")
    ds = _load(names, name, [root])
    tree0, db0 = labeled.tree(root), labeled.snapshot(ds)
    dup = str(tmp_path / "dups")
    result = move.move_duplicates(ds, dup)
    assert result.num_moved == 2
    return root, dup, ds, tree0, db0, made


def _records(path):
    return [json.loads(line) for line in open(path)]


def _write(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def _state(root, dup, ds):
    """Everything a refused restore must leave as it is."""
    ds.reload()
    # the lock file records its last holder
    files = {k: v for k, v in labeled.tree(dup).items() if k != f"{mf.STATE_DIR}/lock"}
    return labeled.tree(root), files, labeled.snapshot(ds)


def _refused(dup, before, root, ds, match):
    """A restore is refused (Python and command line) and changes nothing."""
    with pytest.raises(mf.ManifestError, match=match):
        restore.restore(dup)
    assert _state(root, dup, ds) == before
    out = helpers.run_cli("restore", dup, "-q")
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Manifest " in lines[0] and "line " in lines[0], out.stderr
    assert _state(root, dup, ds) == before
    return lines[0]


# ------------------------------------------------------------------ break 3a


def test_annotation_record_naming_an_image_cannot_overwrite_it(tmp_path, names):
    """An `annotation` record whose path is an image of the dataset, a
    backup holding other bytes, a `rewritten` checksum of the current file:
    restore used to overwrite data/p0.jpg, the photo's last copy."""
    root, dup, ds, tree0, db0, made = _coco_moved(tmp_path, names, "atk-image")
    path = mf.list_manifests(dup)[0]
    m = mf.read_manifest(path)
    victim = os.path.join(root, "data", "p0.jpg")
    rel = "data/p0.jpg"
    backup = paths.annotation_backup(m.move_id, 0, rel)
    other = b"not the photo"
    bpath = os.path.join(dup, *backup.split("/"))
    os.makedirs(os.path.dirname(bpath), exist_ok=True)
    with open(bpath, "wb") as f:
        f.write(other)
    records = _records(path)
    at = next(i for i, r in enumerate(records) if r["type"] == "planned")
    records.insert(at, {"type": "annotation", "a": len(m.annotations), "root": 0, "path": rel,
                        "sha256": fileops.sha256_bytes(other), "backup": backup})
    records.append(
        {"type": "rewritten", "a": len(m.annotations), "sha256": fileops.sha256_file(victim)}
    )
    _write(path, records)
    photo = fileops.sha256_file(victim)
    line = _refused(dup, _state(root, dup, ds), root, ds, "data/p0.jpg is an image")
    assert path in line and f"line {at + 1}" in line
    assert fileops.sha256_file(victim) == photo
    # the same record in a move left unfinished: finishing it is refused too
    _write(path, [r for r in records if r["type"] not in ("phase", "complete")])
    before = _state(root, dup, ds)
    with pytest.raises(mf.ManifestError, match="data/p0.jpg is an image"):
        move.move_duplicates(ds, dup)
    with pytest.raises(mf.ManifestError, match="data/p0.jpg is an image"):
        restore.resume_moves(dup)
    assert _state(root, dup, ds) == before and fileops.sha256_file(victim) == photo


def test_annotation_record_for_a_plain_folder_cannot_overwrite_a_users_file(tmp_path, names):
    """A fresh manifest claims a plain folder is a COCO folder and 'puts
    back' the user's own labels.json there."""
    root = str(tmp_path / "plain")
    labeled.make_raw(root)
    mine = os.path.join(root, "labels.json")
    with open(mine, "w") as f:
        f.write('{"mine": true}')
    ds = _load(names, "atk-plain", [root], data_dir=False, annotations=False)
    dup = str(tmp_path / "dups")
    move.move_duplicates(ds, dup)
    move_id = paths.new_move_id()
    backup = paths.annotation_backup(move_id, 0, "labels.json")
    bpath = os.path.join(dup, *backup.split("/"))
    os.makedirs(os.path.dirname(bpath))
    with open(bpath, "wb") as f:
        f.write(b'{"images": [], "annotations": []}')
    header = jr.header_record(mf.read_manifest(mf.list_manifests(dup)[0]))
    header.update(
        move_id=move_id, roots=[{"path": root, "dest": "other", "layout": "coco", "data_dir": True}]
    )
    _write(paths.manifest_path(dup, move_id), [
        header,
        {"type": "annotation", "a": 0, "root": 0, "path": "labels.json",
         "sha256": fileops.sha256_file(bpath), "backup": backup},
        {"type": "planned", "num_files": 0, "num_annotations": 1},
        {"type": "rewritten", "a": 0, "sha256": fileops.sha256_file(mine)},
        {"type": "complete"},
    ])
    before = open(mine).read()
    _refused(dup, _state(root, dup, ds), root, ds, "is not a coco dataset folder")
    assert open(mine).read() == before


# ------------------------------------------------------------------ break 3b


def _two_folder_moves(tmp_path, names):
    """Two moves into one duplicates folder: m1/p0_dup.jpg, m2/p0_dup.jpg."""
    roots = []
    for k, name in enumerate(("m1", "m2")):
        d = str(tmp_path / name)
        img = labeled.small_photo(k)
        helpers.save(img, os.path.join(d, "p0.jpg"))
        helpers.save(helpers.jpeg(img), os.path.join(d, "p0_dup.jpg"))
        roots.append(d)
    dup = str(tmp_path / "dups")
    sets = []
    for k, d in enumerate(roots):
        ds = _load(names, f"atk-two-{k}", [d], data_dir=False, annotations=False)
        assert move.move_duplicates(ds, dup).num_moved == 1
        sets.append(ds)
    return roots, dup, sets


def test_written_record_cannot_delete_another_moves_file(tmp_path, names):
    roots, dup, (ds1, ds2) = _two_folder_moves(tmp_path, names)
    target = os.path.join(dup, "m1", "p0_dup.jpg")
    # the second move's manifest now claims it wrote m1/p0_dup.jpg
    path = mf.list_manifests(dup)[1]
    records = _records(path)
    records[0]["roots"][0]["dest"] = "m1"
    for r in records:
        if r["type"] == "file":
            r["dst"] = "m1/" + r["src"]
    records.append(
        {"type": "written", "path": "m1/p0_dup.jpg", "sha256": fileops.sha256_file(target)}
    )
    _write(path, records)
    before = _state(roots[1], dup, ds2)
    with pytest.raises(mf.ManifestError, match="was recorded as 'm2'"):
        restore.restore(dup)
    assert _state(roots[1], dup, ds2) == before and os.path.isfile(target)
    # without the folder's rename, the record is outside the move's folders:
    # ignored and said; both moves come back, m1/p0_dup.jpg with them
    sha = fileops.sha256_file(target)
    records[0]["roots"][0]["dest"] = "m2"
    for r in records:
        if r["type"] == "file":
            r["dst"] = "m2/" + r["src"]
    _write(path, records)
    result = restore.restore(dup)
    assert result.num_restored == 2
    assert any("outside this move's folders" in msg for msg in result.messages)
    assert fileops.sha256_file(os.path.join(roots[0], "p0_dup.jpg")) == sha


def test_fresh_manifest_claiming_another_moves_folder_is_refused(tmp_path, names):
    """A hand-written manifest (no record in the database) whose folder is
    another move's and whose `written` record names that move's file."""
    roots, dup, (ds1, ds2) = _two_folder_moves(tmp_path, names)
    target = os.path.join(dup, "m1", "p0_dup.jpg")
    move_id = paths.new_move_id()
    header = jr.header_record(mf.read_manifest(mf.list_manifests(dup)[0]))
    header.update(move_id=move_id)
    _write(paths.manifest_path(dup, move_id), [
        header,
        {"type": "planned", "num_files": 0, "num_annotations": 0},
        {"type": "written", "path": "m1/p0_dup.jpg", "sha256": fileops.sha256_file(target)},
        {"type": "complete"},
    ])
    line = _refused(dup, _state(roots[0], dup, ds1), roots[0], ds1, "is the folder of the move")
    assert move_id in line and os.path.isfile(target)


def test_written_record_cannot_delete_the_moves_own_image(tmp_path, names):
    """The move's image cannot go back (a different file now sits at its
    source); a `written` record with its checksum would have deleted the
    only copy."""
    roots, dup, (ds1, ds2) = _two_folder_moves(tmp_path, names)
    target = os.path.join(dup, "m1", "p0_dup.jpg")
    helpers.save(labeled.small_photo(3), os.path.join(roots[0], "p0_dup.jpg"))
    path = mf.list_manifests(dup)[0]
    records = _records(path) + [
        {"type": "written", "path": "m1/p0_dup.jpg", "sha256": fileops.sha256_file(target)}
    ]
    _write(path, records)
    _refused(dup, _state(roots[0], dup, ds1), roots[0], ds1, "is a moved image")
    assert os.path.isfile(target)


# ------------------------------------------------------------------ break 3c


@pytest.mark.parametrize(
    "claims",
    [
        [{"type": "restored", "n": 0}],
        [{"type": "restore_started"}, {"type": "restored", "n": 0}, {"type": "restored", "n": 1}],
        [
            {"type": "restore_started"},
            {"type": "restore_phase", "name": "files"},
            {"type": "restore_phase", "name": "annotations"},
            {"type": "restore_phase", "name": "database"},
            {"type": "restore_complete"},
        ],
    ],
)
def test_records_claiming_a_restore_do_not_keep_files_out(tmp_path, names, claims):
    """A move is restored when its files are back, whatever its records say."""
    root, dup, ds, tree0, db0, made = _coco_moved(tmp_path, names, "atk-claim")
    path = mf.list_manifests(dup)[0]
    _write(path, _records(path) + claims)
    result = restore.restore(dup)
    assert result.num_restored == 2
    assert labeled.tree(root) == tree0
    ds.reload()
    assert labeled.snapshot(ds) == db0
    assert restore.restore(dup).num_restored == 0  # now it is restored


# ------------------------------------------------------------------ break 10


def test_restore_killed_across_file_systems_never_loses_a_file_and_converges(tmp_path, names):
    """Killed right after a copy back to the dataset's file system, before
    the duplicates folder's copy is removed: the file is at both places,
    identical; the rerun removes the extra copy."""
    from test_kill import Runner

    other = mounts.other_filesystem_dir(tmp_path)
    if other is None:
        pytest.skip("no second file system (/dev/shm) here")
    runner = Runner(tmp_path)
    try:
        root = str(tmp_path / "ds")
        made = labeled.make_labeled_folder(root, "coco")
        ds = _load(names, "atk-xfs", [root])
        tree0, db0 = labeled.tree(root), labeled.snapshot(ds)
        dup = os.path.join(other, "dups")
        assert move.move_duplicates(ds, dup).num_moved == 2
        rc, _, err = runner.run("restore", ds.name, dup, 0, after_copy=1)
        assert rc == -9, err[-3000:]
        places = [(os.path.join(root, c), os.path.join(dup, "ds", c)) for c in made["copies"]]
        for src, dst in places:
            here = [p for p in (src, dst) if os.path.exists(p)]
            assert here, f"{src} lost"
            for p in here:
                assert fileops.sha256_file(p) == tree0[os.path.relpath(src, root)]
        assert sum(len([p for p in pair if os.path.exists(p)]) for pair in places) == 3
        rc, _, err = runner.run("restore", ds.name, dup, 0)
        assert rc == 0, err[-3000:]
        assert labeled.tree(root) == tree0
        assert not any(os.path.exists(dst) for _, dst in places)
        ds.reload()
        assert labeled.snapshot(ds) == db0
    finally:
        runner.close()
        shutil.rmtree(other, ignore_errors=True)


# ------------------------------------------------------------------ frictions


def test_cli_prints_the_plan_and_the_restore_once_and_counts_annotation_files(tmp_path):
    root = str(tmp_path / "dataset")
    labeled.make_labeled_folder(root, "coco")
    tree0 = labeled.tree(root)
    dup = tmp_path / "dups"
    try:
        out = helpers.run_cli(
            "-d", root, "--duplicates_dir", dup, "--dry_run", "--dataset", "atk-cli", "-q"
        )
        assert out.returncode == 0, out.stderr
        both = out.stdout + out.stderr
        assert both.count("Would move 2 image(s)") == 1, both
        assert "Would move 2 image(s) and 1 annotation file(s)" in out.stdout
        assert "1 annotation file(s) of the dataset would lose their entries" in out.stdout
        out = helpers.run_cli("-d", root, "--duplicates_dir", dup, "--dataset", "atk-cli", "-q")
        assert out.returncode == 0, out.stderr
        assert "Moved 2 image(s) and 1 annotation file(s)" in out.stdout, out.stdout
        assert "1 annotation file(s) of the dataset lost their entries" in out.stdout
        out = helpers.run_cli("restore", dup, "-q")
        assert out.returncode == 0, out.stderr
        both = out.stdout + out.stderr
        assert both.count("Restored 2 image(s)") == 1, both
        assert "Restored 2 image(s) and 1 annotation file(s)" in out.stdout
        assert labeled.tree(root) == tree0
    finally:
        if fo.dataset_exists("atk-cli"):
            fo.load_dataset("atk-cli").delete()
