"""The command line, run as a subprocess on real folders."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import fiftyone as fo

import helpers


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("cli-images"))
    made = helpers.make_folder(d)
    made["bad"] = helpers.write_bad_files(os.path.join(d, "bad"))
    made["dir"] = d
    return made


def _pairs(report):
    out = set()
    for g in report["groups"]:
        for d in g["duplicates"]:
            out.add(frozenset((g["keep"], d)))
    return out


def test_plain_folder_report_and_reuse(folder, tmp_path):
    report_path = tmp_path / "report.json"
    args = [
        "-d", folder["dir"], "--no_data_dir", "--no_annot", "--encoder", "DHash",
        "--threshold", "10", "--report", report_path, "--dataset", "cli-plain",
    ]
    out = helpers.run_cli(*args)
    assert out.returncode == 0, out.stderr
    rep = json.loads(report_path.read_text())
    assert rep["encoder"] == "DHash" and rep["threshold"] == 10
    assert {frozenset(p) for p in folder["planted"]} == _pairs(rep)
    # every group keeps a file that exists, and nothing kept is a duplicate
    kept = {g["keep"] for g in rep["groups"]}
    dups = {d for g in rep["groups"] for d in g["duplicates"]}
    assert not kept & dups and all(os.path.exists(k) for k in kept)
    failed = {f["path"]: f["error"] for f in rep["failed"]}
    assert set(failed) == set(folder["bad"].values())
    assert all(failed.values())
    assert "duplicates" in out.stdout and "unreadable" in out.stdout

    again = helpers.run_cli(*args)
    assert again.returncode == 0, again.stderr
    rep2 = json.loads(report_path.read_text())
    assert rep2["summary"]["num_computed"] == 0
    assert rep2["summary"]["num_reused"] == rep2["summary"]["num_samples"]
    assert _pairs(rep2) == _pairs(rep)

    ds = fo.load_dataset("cli-plain")
    assert len(ds.match_tags("duplicate")) == len(folder["planted"])
    ds.delete()


def test_console_script_and_help():
    script = os.path.join(os.path.dirname(sys.executable), "fiftyone-dedup")
    assert os.path.exists(script), "pip install -e . provides the fiftyone-dedup script"
    out = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for flag in ("--dirs", "--root", "--encoder", "--threshold", "--dry_run",
                 "--no_data_dir", "--no_annot", "--report", "--dataset"):
        assert flag in out.stdout
    mod = helpers.run_cli("--help")
    assert mod.returncode == 0 and mod.stdout == out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["-d", "/does/not/exist", "--no_data_dir", "--no_annot"], "Folder not found: /does/not/exist"),
        (["-d", "{dir}", "--no_data_dir", "--no_annot", "--encoder", "DHash", "--threshold", "99"], "between 0 and 64"),
        (["-d", "{dir}", "--no_data_dir", "--no_annot", "--threshold", "ten"], "--threshold must be a number"),
        (["-d", "{dir}", "--no_data_dir", "--no_annot", "--encoder", "SIFT"], "Unknown encoder 'SIFT'"),
        (["-d", "{dir}", "--no_annot"], "No 'data' folder in"),
        (["-d", "{dir}", "--no_data_dir"], "No annotations found"),
        (["-d", "{dir}", "--no_data_dir", "--no_annot", "--num_workers", "-2"], "--num_workers"),
        (["--no_annot"], "required: -d/--dirs"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(folder, args, message):
    args = [a.replace("{dir}", folder["dir"]) for a in args]
    out = helpers.run_cli(*args, "--dataset", "cli-bad")
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [l for l in out.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, out.stderr
    assert message in lines[0] and lines[0].startswith("fiftyone-dedup: error:")
    assert not fo.dataset_exists("cli-bad")


def test_cross_folder_duplicates_with_root(tmp_path):
    root = tmp_path / "root"
    a = helpers.save(helpers.photo(0), str(root / "dir_1" / "a.jpg"))
    helpers.save(helpers.texture(1), str(root / "dir_1" / "t.png"))
    b = helpers.save(helpers.jpeg(helpers.photo(0)), str(root / "dir_2" / "a_copy.jpg"))
    c = helpers.save(helpers.resized(helpers.photo(1)), str(root / "dir_2" / "c.jpg"))
    d = helpers.save(helpers.photo(1), str(root / "dir_2" / "sub" / "c_orig.jpg"))
    report_path = tmp_path / "r.json"
    out = helpers.run_cli(
        "-r", root, "-d", "dir_1", "dir_2", "--no_data_dir", "--no_annot",
        "--report", report_path, "--dataset", "cli-cross",
    )
    assert out.returncode == 0, out.stderr
    rep = json.loads(report_path.read_text())
    assert rep["dirs"] == [str(root / "dir_1"), str(root / "dir_2")]
    assert _pairs(rep) == {frozenset((a, b)), frozenset((c, d))}
    cross = {
        (g["keep"], det["path"]): det["cross"]
        for g in rep["groups"] for det in g["details"]
    }
    assert cross[(a, b)] is True
    assert list(cross.values()).count(True) == 1
    assert rep["summary"]["num_cross"] == 1
    assert "cross-folder duplicates" in out.stdout
    fo.load_dataset("cli-cross").delete()


def test_demo_builds_a_labeled_dataset_and_finds_every_planted_copy(tmp_path):
    out = helpers.run_cli("demo", "--dir", tmp_path / "demo", "--quiet")
    assert out.returncode == 0, out.stderr
    assert "Planted near-duplicates found: 6 of 6" in out.stdout
    coco = json.loads((tmp_path / "demo" / "labels.json").read_text())
    assert len(coco["images"]) == len(coco["annotations"]) == 16
    ds = fo.load_dataset("fiftyone-dedup-demo")
    assert ds.count("ground_truth_detections.detections") == 16
    # a folder the demo did not make is never overwritten
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("precious")
    out = helpers.run_cli("demo", "--dir", mine)
    assert out.returncode != 0 and "not made by the demo" in out.stderr
    assert (mine / "keep.txt").read_text() == "precious"
