"""The database going away mid-run: a clear failure, and a rerun repairs."""

import json
import os
import subprocess
import sys
import time

import pymongo
import pytest

import dbserver
import helpers


@pytest.fixture
def own_db(tmp_path):
    server = dbserver.Server(str(tmp_path / "mongo"))
    yield server
    server.stop()


def _cli(args, uri):
    env = {**os.environ, "FIFTYONE_DATABASE_URI": uri + "/?serverSelectionTimeoutMS=4000"}
    return subprocess.Popen(
        [sys.executable, "-m", "fiftyone_dedup", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _wait_for_samples(uri, name, timeout=120):
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=2000)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            db = client["fiftyone"]
            doc = db.datasets.find_one({"name": name})
            if doc and db[doc["sample_collection_name"]].estimated_document_count() > 0:
                return True
        except pymongo.errors.PyMongoError:
            pass
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("delay", [0.0, 0.4])
def test_database_lost_mid_run_then_rerun_repairs(own_db, tmp_path, delay):
    folder = tmp_path / "imgs"
    made = helpers.make_folder(str(folder), num_textures=400)
    report = tmp_path / "r.json"
    args = ["-d", folder, "--no_data_dir", "--no_annot", "--encoder", "DHash",
            "--dataset", "dbfault", "--report", report, "--quiet", "--num_workers", "0",
            "--duplicates_dir", tmp_path / "dups"]
    proc = _cli(args, own_db.uri)
    assert _wait_for_samples(own_db.uri, "dbfault"), "the run never wrote samples"
    time.sleep(delay)
    own_db.kill()
    out, err = proc.communicate(timeout=300)
    if proc.returncode == 0:
        pytest.skip("the run finished before the database went away")
    lines = [l for l in err.splitlines() if l.strip()]
    assert proc.returncode == 1
    assert lines[-1].startswith("fiftyone-dedup: failed:"), err
    assert not report.exists()  # no report of a half-done run

    own_db.start()
    proc = _cli(args, own_db.uri)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    rep = json.loads(report.read_text())
    expected = len(made["originals"]) + len(made["planted"])
    assert rep["summary"]["num_samples"] == expected
    pairs = {frozenset([g["keep"], d]) for g in rep["groups"] for d in g["duplicates"]}
    assert pairs == {frozenset(p) for p in made["planted"]}
    assert rep["summary"]["num_failed"] == 0


def test_dataset_left_without_media_type_is_rebuilt(tmp_path):
    """The state a crash between inserting samples and saving the dataset
    leaves: samples, but no media type (FiftyOne then refuses new samples)."""
    import fiftyone as fo

    folder = tmp_path / "imgs"
    made = helpers.make_folder(str(folder), num_textures=3)
    ds = fo.Dataset("half-written", persistent=True)
    ds.info = {"fiftyone_dedup": {"dirs": [str(folder)]}}  # marked first, as the CLI does
    ds.save()
    ds.add_samples([fo.Sample(filepath=p) for p in made["originals"][:3]])
    client = pymongo.MongoClient(os.environ["FIFTYONE_DATABASE_URI"])
    client["fiftyone"].datasets.update_one({"name": "half-written"}, {"$set": {"media_type": None}})
    report = tmp_path / "r.json"
    out = helpers.run_cli(
        "-d", folder, "--no_data_dir", "--no_annot", "--encoder", "DHash",
        "--dataset", "half-written", "--report", report, "--dry_run",
    )
    assert out.returncode == 0, out.stderr
    assert "left incomplete by an interrupted run; rebuilding it" in out.stderr
    rep = json.loads(report.read_text())
    assert rep["summary"]["num_samples"] == len(made["originals"]) + len(made["planted"])
    fo.load_dataset("half-written").delete()
