"""kill -9 at random points of a move of 500 files and of its restore.

Each run happens in a process of its own (forked by ``killer.py``) that
SIGKILLs itself right before its K-th step (a journal record, a rename, an
atomic write, a copy, a database write), K drawn from a seeded generator
within a phase (planning, moving files, annotations and database): the
points are reproducible and printed on failure. After every kill, every
file exists exactly once, intact, at its source or its destination; a rerun
finishes the move, and a restore (itself killed several times, then rerun)
gives back the folder byte for byte and the dataset sample for sample.

``FOD_KILL_SEEDS=1,2,3`` runs other seeds.
"""

import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import fiftyone as fo

from fiftyone_dedup.moves import restore
from fiftyone_dedup.engine import find
from fiftyone_dedup.moves import fileops
from fiftyone_dedup.engine import folders
from fiftyone_dedup.moves import manifest as mf

import labeled
import mounts

KILLER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "killer.py")
SEEDS = [int(s) for s in os.environ.get("FOD_KILL_SEEDS", "12,13,14").split(",") if s]

NUM_ORIGINALS = 100
COPIES_EACH = 5  # 500 duplicates


def _make_coco(root, num_originals=NUM_ORIGINALS, copies_each=COPIES_EACH):
    """Tiny distinct images, each with byte-identical copies, COCO-labeled."""
    rng = np.random.default_rng(0)
    images, annotations = [], []
    data = os.path.join(root, "data")
    os.makedirs(os.path.join(data, "sub"))
    for i in range(num_originals):
        arr = rng.integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
        img = Image.fromarray(arr).resize((32, 24), Image.BICUBIC)
        names = [f"o_{i:03d}.png"] + [f"sub/c_{i:03d}_{k}.png" for k in range(copies_each)]
        for name in names:
            img.save(os.path.join(data, name))
            images.append({"id": len(images) + 1, "file_name": name, "width": 32, "height": 24})
            annotations.append({
                "id": len(annotations) + 1, "image_id": len(images), "category_id": 1,
                "bbox": [2, 2, 10, 8], "area": 80, "iscrowd": 0,
            })
    with open(os.path.join(root, "labels.json"), "w") as f:
        json.dump(
            {
                "categories": [{"id": 1, "name": "thing"}],
                "images": images,
                "annotations": annotations,
            },
            f,
        )


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("kill") / "pristine")
    _make_coco(root)
    return root


def _setup(tmp_path, pristine, name):
    root = str(tmp_path / "ds")
    shutil.copytree(pristine, root)
    if fo.dataset_exists(name):
        fo.load_dataset(name).delete()
    ds = folders.load_folders([root], name=name)[0]
    find.find_duplicates(ds, threshold=0, num_workers=0)
    assert len(ds.match_tags("duplicate")) == NUM_ORIGINALS * COPIES_EACH
    return root, ds


class Runner:
    """The client of a ``killer.py`` fork server."""

    def __init__(self, logdir):
        self.logdir = str(logdir)
        self.proc = subprocess.Popen(
            [sys.executable, KILLER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, env=os.environ.copy(),
        )
        self.count = 0

    def run(self, mode, name, dup, kill_at, after_copy=0, **options):
        """Returns ``(exit code, result or None, stderr text)``."""
        self.count += 1
        log = os.path.join(self.logdir, f"run-{self.count}.log")
        req = dict(
            mode=mode, dataset=name, duplicates_dir=dup, kill_at=kill_at,
            after_copy=after_copy, options=options, stderr=log,
        )
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        result = None
        while True:
            line = self.proc.stdout.readline()
            assert line, "the fork server died"
            d = json.loads(line)
            if "rc" in d:
                break
            result = d
        with open(log) as f:
            return d["rc"], result, f.read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    r = Runner(tmp_path_factory.mktemp("killer-logs"))
    yield r
    r.close()


def _result(run):
    rc, result, err = run
    assert rc == 0, err[-3000:]
    return result


@pytest.fixture(scope="module")
def windows(tmp_path_factory, pristine, runner):
    """The step ranges of each phase of a full move and restore, from one
    uninterrupted run of each (which also leaves the copy pristine)."""
    tmp = tmp_path_factory.mktemp("calibrate")
    name = "kill-calibrate"
    root, ds = _setup(tmp, pristine, name)
    tree0 = labeled.tree(root)
    dup = str(tmp / "dups")
    try:
        move = _result(runner.run("move", name, dup, 0))["marks"]
        restore = _result(runner.run("restore", name, dup, 0))["marks"]
        assert labeled.tree(root) == tree0
    finally:
        ds.delete()
    return {
        "move": [
            (1, move["planned"]),  # planning: checksums, backups, plan records
            (move["planned"] + 1, move["phase:files"]),  # moving files
            (move["phase:files"] + 1, move["complete"]),  # annotations, database
        ],
        "restore": [
            None,  # a restore plans nothing
            (1, restore["restore_phase:files"]),
            (restore["restore_phase:files"] + 1, restore["restore_complete"]),
        ],
    }


def _dests(dup):
    out = set()
    for path in mf.list_manifests(dup):
        try:
            out.update(r.dest for r in mf.read_manifest(path).roots)
        except mf.ManifestError:
            pass  # killed before its header was complete: nothing moved
    return out


def _check_every_file_once(root, dup, tree0, context, allow_two_copies=False):
    dests = _dests(dup)
    for rel, sha in tree0.items():
        if not rel.startswith("data/"):
            continue
        places = [os.path.join(root, rel)] + [os.path.join(dup, d, rel) for d in dests]
        here = [p for p in places if os.path.lexists(p)]
        # a copy across file systems is complete before its source goes
        assert len(here) == 1 or (allow_two_copies and len(here) == 2), (
            f"{context}: {rel} at {here}"
        )
        for p in here:
            assert fileops.sha256_file(p) == sha, f"{context}: {p} changed"
    with open(os.path.join(root, "labels.json")) as f:
        json.load(f)  # rewritten atomically: always whole


def _phase(dup):
    """Where the last move stood when killed, for the log."""
    paths = mf.list_manifests(dup)
    if not paths:
        return "no manifest"
    try:
        m = mf.read_manifest(paths[-1])
    except mf.ManifestError:
        return "header torn"
    if m.restore_started:
        return f"{m.state}, {len(m.restored)} file(s) back, phases {sorted(m.restore_phases)}"
    return f"{m.state}, {len(m.outcomes)} file(s) recorded, phases {sorted(m.phases)}"


def _next_windows(dup, windows, mode):
    """The phase windows (planning, files, annotations and database) of
    the next run, from where the journal stands: a resumed run skips what
    is recorded as done. Two steps per file: its move and its record."""
    tail = windows[mode][-1][1] - windows[mode][-2][1]
    fresh = windows[mode]
    paths = mf.list_manifests(dup)
    m = mf.read_manifest(paths[-1]) if paths else None
    if mode == "move":
        if m is None or m.state in ("moved", "aborted"):
            return fresh
        if m.state == "planning":
            return [(a + 1, b + 1) for a, b in fresh]  # it aborts that plan first
        left = 2 * (len(m.files) - len(m.outcomes))
        done = m.phases
    else:
        if m is None or m.state != "restoring":
            return fresh
        left = 2 * (len(m.files) - len(m.restored))
        done = m.restore_phases
    if "files" in done:
        return [None, None, (1, max(1, tail - 2 * len(done)))]
    return [None, (1, max(1, left)), (left + 1, left + tail)]


def _kill(runner, mode, name, dup, root, tree0, k, log, allow_two_copies=False, **options):
    """Runs and kills at step k, then checks every file."""
    rc, _, err = runner.run(mode, name, dup, k, **options)
    log.append((mode, k, rc, _phase(dup)))
    if rc == 0:
        return  # k was past its end: it finished
    context = f"{mode} killed at step {k} (log: {log})"
    assert rc == -9, f"{context}: {err[-3000:]}"
    _check_every_file_once(root, dup, tree0, context, allow_two_copies)


@pytest.mark.parametrize("seed", SEEDS)
def test_kill_anywhere_during_move_and_restore(tmp_path, pristine, windows, runner, seed):
    """Per seed: the move is killed once in each phase (in a seeded order),
    then once anywhere; the restore twice in each of its phases; each time
    the next run picks up where the killed one stopped."""
    name = f"kill-{seed}"
    root, ds = _setup(tmp_path, pristine, name)
    tree0, db0 = labeled.tree(root), labeled.snapshot(ds)
    dup = str(tmp_path / "dups")
    rng = random.Random(seed)
    on_samples = ("delete", "keep", "dataset")[seed % 3]
    log = []
    try:
        # planning, moving files (twice), annotations and database
        for phase in (0, 1, 1, 2):
            window = _next_windows(dup, windows, "move")[phase]
            if window is not None:
                _kill(
                    runner, "move", name, dup, root, tree0, rng.randint(*window), log,
                    on_samples=on_samples,
                )
        _result(runner.run("move", name, dup, 0, on_samples=on_samples))
        _check_every_file_once(root, dup, tree0, f"after the move (log: {log})")

        moves = restore.list_moves(dup)
        assert all(m["state"] in ("moved", "aborted") for m in moves), (moves, log)
        moved = [m for m in moves if m["state"] == "moved"]
        assert sum(m["num_moved"] for m in moved) == NUM_ORIGINALS * COPIES_EACH, log
        coco = json.loads(open(os.path.join(root, "labels.json")).read())
        assert len(coco["images"]) == len(coco["annotations"]) == NUM_ORIGINALS, log
        ds.reload()
        if on_samples == "keep":
            assert len(ds.match_tags("moved")) == NUM_ORIGINALS * COPIES_EACH
        else:
            assert len(ds) == NUM_ORIGINALS

        # the restore: files (twice), annotations and database (twice)
        for phase in (1, 1, 2, 2):
            window = _next_windows(dup, windows, "restore")[phase]
            if window is not None:
                _kill(runner, "restore", name, dup, root, tree0, rng.randint(*window), log)
        _result(runner.run("restore", name, dup, 0))
        assert labeled.tree(root) == tree0, log
        ds.reload()
        assert labeled.snapshot(ds) == db0, log
        assert not any(p.endswith(".png") for p in labeled.tree(dup, skip_hidden=True)), log
        print(f"seed {seed}: {log}")
    finally:
        for n_ in (name, name + "-duplicates"):
            if fo.dataset_exists(n_):
                fo.load_dataset(n_).delete()


def test_kill_during_a_move_to_another_file_system(tmp_path, pristine, windows, runner):
    other = mounts.other_filesystem_dir(tmp_path)
    if other is None:
        pytest.skip("no second file system (/dev/shm) here")
    name = "kill-xfs"
    root, ds = _setup(tmp_path, pristine, name)
    tree0, db0 = labeled.tree(root), labeled.snapshot(ds)
    dup = os.path.join(other, "dups")
    rng = random.Random(7)
    log = []
    try:
        # right after a copy, before its source is removed: the worst moment
        for _ in range(2):
            rc, _, err = runner.run("move", name, dup, 0, after_copy=rng.randint(1, 200))
            assert rc == -9, err[-3000:]
            _check_every_file_once(root, dup, tree0, "killed after a copy", allow_two_copies=True)
        _kill(
            runner, "move", name, dup, root, tree0, rng.randint(*windows["move"][1]), log,
            allow_two_copies=True,
        )
        _result(runner.run("move", name, dup, 0))
        _check_every_file_once(root, dup, tree0, f"after the move (log: {log})")
        assert not any(fileops.TEMP_MARK in p for p in labeled.tree(dup)), "temporary copies left"
        rc, _, err = runner.run("restore", name, dup, 0, after_copy=rng.randint(1, 400))
        assert rc == -9, err[-3000:]
        _check_every_file_once(
            root, dup, tree0, "restore killed after a copy", allow_two_copies=True
        )
        _kill(
            runner, "restore", name, dup, root, tree0, rng.randint(*windows["restore"][1]), log,
            allow_two_copies=True,
        )
        _result(runner.run("restore", name, dup, 0))
        assert labeled.tree(root) == tree0, log
        ds.reload()
        assert labeled.snapshot(ds) == db0
    finally:
        shutil.rmtree(other, ignore_errors=True)
        if fo.dataset_exists(name):
            fo.load_dataset(name).delete()
