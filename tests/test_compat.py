"""Runs and moves recorded by the release before the layered layout still
load, review and restore.

The release's own code (``git archive`` of its commit, from this clone's
history) runs in a fresh process against the test database: it hashes a
folder, finds duplicates (labels moved with their files), moves them out
with ``on_samples="delete"``, and records a second run it leaves in place.
This process then reads what that release wrote with today's code.
"""

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

import fiftyone as fo

import fiftyone_dedup as fod
import helpers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: the last commit of release 0.1.0 before the layered layout
RELEASE = "c66a24349ef85a6938e11b0dc2e7284868c9f9f8"

OLD_SCRIPT = r"""
import json, sys
import fiftyone as fo
import fiftyone_dedup as fod
from fiftyone_dedup import runs  # the flat layout of that release
assert fod.__file__.startswith(sys.argv[1]), fod.__file__
args = json.loads(sys.argv[2])
ds = fo.Dataset(args["name"], persistent=True)
ds.add_samples([fo.Sample(filepath=p, note=fo.Classification(label="x")) for p in args["paths"]])
fod.compute_hashes(ds)
kept_run = fod.find_duplicates(ds, threshold=10, run_key="kept_run", verify="none", tag=None)
res = fod.find_duplicates(ds, threshold=10, verify="none")
dups = sorted(fod.duplicates_view(ds, role="duplicate").values("filepath"))
moved = fod.move_duplicates(ds, args["dup_dir"], on_samples="delete")
print(json.dumps({
    "dups": dups,
    "moved": sorted(f["src"] for f in moved.files),
    "move_id": moved.move_id,
    "cls": type(res.config).__module__ + "." + type(res.config).__name__,
    "groups": len(fod.get_groups(ds, run_key="kept_run")),
}))
"""


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory):
    """The release's package, extracted from the repository's history."""
    found = subprocess.run(
        ["git", "-C", REPO, "cat-file", "-e", f"{RELEASE}^{{commit}}"],
        capture_output=True,
    )
    if found.returncode != 0:
        pytest.skip(f"commit {RELEASE[:7]} (release 0.1.0) is not in this clone's history")
    archive = subprocess.run(
        ["git", "-C", REPO, "archive", RELEASE, "fiftyone_dedup"],
        capture_output=True, check=True,
    ).stdout
    dest = tmp_path_factory.mktemp("release-0.1.0")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest)
    assert os.path.isfile(dest / "fiftyone_dedup" / "core.py")  # the flat layout
    return str(dest)


@pytest.fixture(scope="module")
def old_records(release_dir, tmp_path_factory):
    """A dataset, two runs and one move, all written by the release."""
    root = tmp_path_factory.mktemp("compat")
    folder = helpers.make_folder(str(root / "data"), num_textures=4)
    paths = sorted(folder["originals"] + [c for _, c in folder["planted"]])
    checksums = {p: _sha(p) for p in paths}
    args = {"name": "compat-0.1.0", "paths": paths, "dup_dir": str(root / "duplicates")}
    env = {**os.environ, "PYTHONPATH": release_dir}
    out = subprocess.run(
        [sys.executable, "-c", OLD_SCRIPT, release_dir, json.dumps(args)],
        capture_output=True, text=True, timeout=600, cwd=release_dir, env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    written = json.loads(out.stdout.strip().splitlines()[-1])
    return {**args, **written, "checksums": checksums, "planted": folder["planted"]}


def test_the_release_stored_its_flat_class_paths(old_records):
    assert old_records["cls"] == "fiftyone_dedup.runs.DedupRunConfig"
    # the planted copies are what it moved
    assert set(old_records["moved"]) == set(old_records["dups"])
    assert len(old_records["dups"]) >= len(old_records["planted"])


def test_runs_recorded_by_the_release_load(old_records):
    ds = fo.load_dataset(old_records["name"])
    assert {"dedup", "kept_run"} <= set(fod.list_runs(ds))
    results = fod.load_run(ds, "kept_run")
    assert isinstance(results, fod.DedupRunResults)
    assert type(results.config).__name__ == "DedupRunConfig"
    assert results.config.threshold == 10
    groups = fod.get_groups(ds, run_key="kept_run")
    assert len(groups) == old_records["groups"] > 0
    dup_view = fod.duplicates_view(ds, run_key="kept_run", role="duplicate")
    # the release's second run deleted the moved samples; what is left of its
    # first run's duplicates is still tagged by role
    assert set(dup_view.values("filepath")) <= set(old_records["dups"])


def test_moves_recorded_by_the_release_restore(old_records):
    moves = fod.list_moves(old_records["dup_dir"])
    assert [m["move_id"] for m in moves] == [old_records["move_id"]]
    for p in old_records["moved"]:
        assert not os.path.exists(p)
    result = fod.restore(old_records["dup_dir"])
    assert not result.dry_run
    for p, sha in old_records["checksums"].items():
        assert os.path.isfile(p), p
        assert _sha(p) == sha, p
    # the deleted samples are back in the dataset, with their labels
    ds = fo.load_dataset(old_records["name"])
    assert set(old_records["moved"]) <= set(ds.values("filepath"))
    back = ds.select_by("filepath", old_records["moved"])
    assert set(back.values("note.label")) == {"x"}


def test_a_run_key_of_the_release_is_replaced_by_a_new_run(old_records):
    ds = fo.load_dataset(old_records["name"])
    res = fod.find_duplicates(ds, threshold=10, run_key="kept_run", verify="none", tag=None)
    assert type(res.config).__module__ == "fiftyone_dedup.engine.runs"
    assert len(fod.get_groups(ds, run_key="kept_run")) > 0
