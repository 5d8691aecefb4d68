"""The command line's encodings files and duplicate pictures."""

import json
import os
import time

import pytest
from imagededup.methods import DHash

import fiftyone as fo

import helpers


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("enc-images"))
    made = helpers.make_folder(d, num_textures=8)
    made["dir"] = d
    return made


def _pairs(report):
    return {frozenset((g["keep"], d)) for g in report["groups"] for d in g["duplicates"]}


def _planted(folder):
    return {frozenset(p) for p in folder["planted"]}


def test_encodings_written_by_imagededup_load(folder, tmp_path):
    enc = DHash(verbose=False).encode_images(folder["dir"], recursive=True)
    path = tmp_path / "imagededup_enc.json"
    path.write_text(json.dumps(enc))
    time.sleep(0.01)
    report = tmp_path / "r.json"
    out = helpers.run_cli(
        "-d", folder["dir"], "--no_data_dir", "--no_annot", "--encoder", "DHash",
        "--encodings_in", path, "--report", report, "--dataset", "enc-in", "--dry_run",
    )
    assert out.returncode == 0, out.stderr
    rep = json.loads(report.read_text())
    assert rep["summary"]["num_computed"] == 0  # every encoding came from the file
    assert _pairs(rep) == _planted(folder)
    ds = fo.load_dataset("enc-in")
    by_name = dict(zip(
        [os.path.relpath(p, folder["dir"]) for p in ds.values("filepath")], ds.values("dhash")
    ))
    assert by_name == enc
    ds.delete()


def test_our_encodings_load_in_imagededup(folder, tmp_path):
    out_path = tmp_path / "ours"
    out = helpers.run_cli(
        "-d", folder["dir"], "--no_data_dir", "--no_annot", "--encoder", "DHash",
        "--encodings_out", out_path, "--encodings_format", "imagededup",
        "--encodings_only", "--dataset", "enc-out",
    )
    assert out.returncode == 0, out.stderr
    enc = json.loads((tmp_path / "ours.json").read_text())
    assert len(enc) == len(folder["originals"]) + len(folder["planted"])
    res = DHash(verbose=False).find_duplicates(encoding_map=enc, max_distance_threshold=10)
    pairs = {
        frozenset((os.path.join(folder["dir"], k), os.path.join(folder["dir"], v)))
        for k, vs in res.items() for v in vs
    }
    assert pairs == _planted(folder)
    fo.load_dataset("enc-out").delete()


def test_seed_merge_example_and_shared_names(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "enc_1.json").write_text(json.dumps({"a.jpg": "00000000000000ff"}))
    (home / "enc_2.json").write_text(json.dumps({"a.jpg": "ff00000000000000"}))
    out = helpers.run_cli(
        "--encodings_in", "~/enc_1.json", "~/enc_2", "--encodings_out", "~/enc_merged",
        "--encodings_only", env={"HOME": str(home)},
    )
    assert out.returncode == 0, out.stderr
    merged = json.loads((home / "enc_merged.json").read_text())
    assert [d["encodings"] for d in merged["datasets"]] == [
        {"a.jpg": "00000000000000ff"}, {"a.jpg": "ff00000000000000"}
    ]


def test_stale_entries_are_recomputed_or_dropped(tmp_path):
    d = tmp_path / "imgs"
    paths = [helpers.save(helpers.texture(k), str(d / f"t{k}.png")) for k in range(6)]
    enc_path = tmp_path / "enc.json"
    args = ["-d", d, "--no_data_dir", "--no_annot", "--encoder", "DHash", "--dataset"]
    out = helpers.run_cli(*args, "stale-1", "--encodings_out", enc_path, "--encodings_only")
    assert out.returncode == 0, out.stderr
    helpers.save(helpers.texture(99), paths[0])  # changed
    os.utime(paths[0], (time.time() + 5, time.time() + 5))
    os.remove(paths[1])  # gone
    report = tmp_path / "r.json"
    out = helpers.run_cli(
        *args, "stale-2", "--encodings_in", enc_path, "--report", report, "--dry_run"
    )
    assert out.returncode == 0, out.stderr
    s = json.loads(report.read_text())["summary"]
    assert s["num_samples"] == 5 and s["num_computed"] == 1 and s["num_reused"] == 4
    for name in ("stale-1", "stale-2"):
        fo.load_dataset(name).delete()


def test_encodings_of_another_encoder_are_refused(folder, tmp_path):
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"a.jpg": "00ff00ff00ff00ff"}))
    out = helpers.run_cli(
        "-d", folder["dir"], "--no_data_dir", "--no_annot", "--encoder", "CNN",
        "--encodings_in", path,
    )
    assert out.returncode == 2
    assert "holds hashes, but this run uses --encoder CNN" in out.stderr
    path.write_text(json.dumps({
        "format": "fiftyone-dedup-encodings", "version": 1, "encoder": "phash",
        "datasets": [{"name": "x", "encodings": {"a.jpg": "00ff00ff00ff00ff"}}],
    }))
    out = helpers.run_cli(
        "-d", folder["dir"], "--no_data_dir", "--no_annot", "--encoder", "DHash",
        "--encodings_in", path,
    )
    assert out.returncode == 2 and "made with encoder phash" in out.stderr


def test_display_duplicates_draws_groups(tmp_path):
    root = tmp_path / "root"
    a = helpers.save(helpers.photo(0), str(root / "d1" / "a.jpg"))
    b = helpers.save(helpers.jpeg(helpers.photo(0)), str(root / "d2" / "a2.jpg"))
    c = helpers.save(helpers.photo(1), str(root / "d1" / "c.jpg"))
    d = helpers.save(helpers.resized(helpers.photo(1)), str(root / "d1" / "c_small.jpg"))
    report = tmp_path / "r.json"
    out = helpers.run_cli(
        "-r", root, "-d", "d1", "d2", "--no_data_dir", "--no_annot",
        "--display_duplicates", "--report", report, "--dataset", "display", "--dry_run",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    rep = json.loads(report.read_text())
    index = rep["gallery"]
    assert index == str(tmp_path / "duplicates_display" / "index.html")
    page = open(index).read()
    assert page.count("<section>") == 2 and "cross-folder" in page
    sheets = sorted(f for f in os.listdir(os.path.dirname(index)) if f.endswith(".png"))
    assert sheets == ["group_00001.png", "group_00002.png"]
    assert "[cross]" in out.stdout and f"keep {a}" in out.stdout
    assert b in out.stdout and c in out.stdout and d in out.stdout
    fo.load_dataset("display").delete()
