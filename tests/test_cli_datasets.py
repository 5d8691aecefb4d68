"""How the command line turns folders into a FiftyOne dataset, under attack
(issue 13): a --dataset it did not make, earlier duplicates folders and
galleries inside the dataset folder, reruns, and two runs at once.
Real folders, a real database, the CLI as a subprocess."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import fiftyone as fo

from fiftyone_dedup.engine import folders
from fiftyone_dedup.engine import outputs

import helpers
import labeled

DHASH = ("--no_data_dir", "--no_annot", "--encoder", "DHash", "-q")


def make_f10(directory):
    """Ten images: five photos (``p0.jpg``, ``sub/p1.jpg``, ...) and a
    half-size copy of each beside it (``p0_half.jpg``, ...), which sorts
    after its original.

    Returns:
        ``(originals, copies)``: absolute paths
    """
    originals, copies = [], []
    for i in range(5):
        rel = f"p{i}.jpg" if i % 2 == 0 else os.path.join("sub", f"p{i}.jpg")
        img = labeled.small_photo(i, size=(192, 144))
        originals.append(helpers.save(img, os.path.join(directory, rel)))
        copies.append(
            helpers.save(helpers.resized(img), os.path.join(directory, rel[:-4] + "_half.jpg"))
        )
    return originals, copies


def _one_error_line(out):
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("fiftyone-dedup: error:"), lines[0]
    return lines[0]


def _drop(*names):
    for name in names:
        if fo.dataset_exists(name):
            fo.load_dataset(name).delete()


# ------------------------------------------------- a dataset it did not make


def test_existing_dataset_is_never_changed_without_the_flag(tmp_path):
    """Break 1: --dataset naming a hand-made dataset deleted its 4 samples
    and their labels, even with --dry_run."""
    _drop("user-curated")
    mine = tmp_path / "mine"
    ds = fo.Dataset("user-curated", persistent=True)
    ds.add_samples([
        fo.Sample(
            filepath=helpers.save(helpers.texture(60 + i), str(mine / f"m{i}.png")),
            my_label=fo.Classification(label=f"hand-{i}"),
        )
        for i in range(4)
    ])
    before = labeled.snapshot(ds)
    other = tmp_path / "other_folder"
    make_f10(str(other))
    tree0 = labeled.tree(str(other))
    try:
        base = ("-d", other, *DHASH, "--dataset", "user-curated")
        for extra, flag in (
            (("--dry_run",), "a dry run never changes it"),
            ((), "--overwrite_dataset"),
            (("--dry_run", "--overwrite_dataset"), "a dry run never changes it"),
        ):
            out = helpers.run_cli(*base, *extra, cwd=tmp_path)
            assert out.returncode == 2, (extra, out.stdout, out.stderr)
            line = _one_error_line(out)
            assert "'user-curated'" in line and flag in line and "4 sample(s)" in line
            assert labeled.snapshot(fo.load_dataset("user-curated")) == before
            assert labeled.tree(str(other)) == tree0
            assert not (tmp_path / "duplicates").exists()

        # the flag replaces it, as the help says
        out = helpers.run_cli(*base, "--overwrite_dataset", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert "overwriting it" in out.stderr
        ds = fo.load_dataset("user-curated")
        assert not ds.has_sample_field("my_label")
        assert set(ds.values(folders.SOURCE_FIELD)) == {str(other)}
        # now it is ours: the next run on the same folders may update it
        out = helpers.run_cli(*base, "--dry_run", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
    finally:
        _drop("user-curated")


def test_dataset_made_from_other_folders_is_refused(tmp_path):
    _drop("made-from-a")
    a, b = tmp_path / "a", tmp_path / "b"
    make_f10(str(a))
    make_f10(str(b))
    try:
        out = helpers.run_cli("-d", a, *DHASH, "--dataset", "made-from-a", "--dry_run")
        assert out.returncode == 0, out.stderr
        before = labeled.snapshot(fo.load_dataset("made-from-a"))
        out = helpers.run_cli("-d", b, *DHASH, "--dataset", "made-from-a", "--dry_run")
        assert out.returncode == 2, out.stderr
        line = _one_error_line(out)
        assert "made by fiftyone-dedup from other folders" in line and str(a) in line
        assert labeled.snapshot(fo.load_dataset("made-from-a")) == before
        # the same folders in another order are the same dataset
        out = helpers.run_cli("-d", b, a, *DHASH, "--dataset", "made-from-a", "--dry_run")
        assert out.returncode == 2
        out = helpers.run_cli("-d", a, *DHASH, "--dataset", "made-from-a", "--dry_run")
        assert out.returncode == 0, out.stderr
    finally:
        _drop("made-from-a")


# ------------------------------------- earlier duplicates folders, galleries


def _report(path):
    return json.loads(path.read_text())


def test_later_run_never_scans_an_earlier_duplicates_folder(tmp_path):
    """Break 2: run 1 inside the folder moved the copies to f10/duplicates;
    run 2 from its parent kept those copies (their path sorts first) and
    moved the originals out."""
    _drop("f10")
    f10 = tmp_path / "f10"
    originals, copies = make_f10(str(f10))
    tree0 = labeled.tree(str(f10))
    try:
        out = helpers.run_cli("-d", ".", *DHASH, "--dataset", "f10", cwd=f10)
        assert out.returncode == 0, out.stderr
        moved_to = [f10 / "duplicates" / "f10" / os.path.relpath(c, f10) for c in copies]
        assert all(p.exists() for p in moved_to) and all(os.path.exists(p) for p in originals)
        assert not any(os.path.exists(c) for c in copies)

        report = tmp_path / "r2.json"
        out = helpers.run_cli(
            "-d", "f10", *DHASH, "--dataset", "f10", "--report", report, cwd=tmp_path
        )
        assert out.returncode == 0, out.stderr
        assert all(os.path.exists(p) for p in originals)
        assert all(p.exists() for p in moved_to)
        assert not any(k.endswith(".jpg") for k in labeled.tree(str(tmp_path / "duplicates")))
        rep = _report(report)
        assert rep["summary"]["num_samples"] == 5 and rep["groups"] == []
        assert out.stderr.count("Not scanned: 1 folder(s)") == 1
        assert str(f10 / "duplicates") in out.stderr
        # a duplicates folder is not a dataset either
        out = helpers.run_cli("-d", f10 / "duplicates" / "f10", *DHASH, "--dataset", "f10-dups")
        assert out.returncode == 2
        assert "a duplicates folder of an earlier move" in _one_error_line(out)
        assert not fo.dataset_exists("f10-dups")

        out = helpers.run_cli("restore", f10 / "duplicates", "-q")
        assert out.returncode == 0, out.stderr
        after = labeled.tree(str(f10))
        assert {k: v for k, v in after.items() if not k.startswith("duplicates" + os.sep)} == tree0
    finally:
        _drop("f10")


def test_two_explicit_duplicates_folders_inside_the_dataset(tmp_path):
    _drop("f10-two")
    f10 = tmp_path / "f10"
    originals, copies = make_f10(str(f10))
    try:
        for dup in ("dupA", "dupB"):
            out = helpers.run_cli(
                "-d", f10, *DHASH, "--dataset", "f10-two", "--duplicates_dir", f10 / dup,
            )
            assert out.returncode == 0, out.stderr
        assert all(os.path.exists(p) for p in originals)
        assert all((f10 / "dupA" / "f10" / os.path.relpath(c, f10)).exists() for c in copies)
        assert not (f10 / "dupB").exists() or not any(
            name.startswith("manifest-") for name in os.listdir(f10 / "dupB")
        )
    finally:
        _drop("f10-two")


def test_gallery_is_never_loaded_as_images_and_histograms_stay_out(tmp_path):
    """Break 9: ./duplicates_display inside the dataset folder was loaded
    on the next run (10 -> 14 samples). A histogram PNG inside a dataset
    folder is refused outright (it would be scanned as an image)."""
    _drop("shown")
    f10 = tmp_path / "f10"
    make_f10(str(f10))
    report = tmp_path / "r.json"
    hist = tmp_path / "hist.png"
    try:
        args = ("-d", ".", *DHASH, "--dataset", "shown", "--report", report, "--dry_run",
                "--display_duplicates", "--histogram", hist)
        for _ in range(2):
            out = helpers.run_cli(*args, cwd=f10)
            assert out.returncode == 0, out.stderr
            assert _report(report)["summary"]["num_samples"] == 10
        assert (f10 / "duplicates_display" / "index.html").exists() and hist.exists()
        assert len(fo.load_dataset("shown")) == 10
        # from the parent, the gallery inside is another run's: still skipped
        out = helpers.run_cli("-d", "f10", *DHASH, "--dataset", "shown", "--report", report,
                              "--dry_run", "--display_duplicates", "--histogram", hist,
                              cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert _report(report)["summary"]["num_samples"] == 10
        assert (
            "Not scanned: 1 folder(s)" in out.stderr
            and str(f10 / "duplicates_display") in out.stderr
        )
        assert (tmp_path / "duplicates_display" / "index.html").exists()
        # a histogram inside the dataset folder: refused before any work
        out = helpers.run_cli(*args[:-1], "hist.png", cwd=f10)
        assert out.returncode == 2 and "inside the dataset folder" in out.stderr, out.stderr
        assert not (f10 / "hist.png").exists()
        assert len(fo.load_dataset("shown")) == 10
    finally:
        _drop("shown")


# ------------------------------------------------------- two runs at once


def _cli(args, cwd):
    return subprocess.Popen(
        [sys.executable, "-m", "fiftyone_dedup", *map(str, args)],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=os.environ.copy(),
    )


def _holds(lock_path, pid):
    try:
        with open(lock_path, encoding="utf-8") as f:
            return f.read().startswith(f"pid {pid} ")
    except OSError:
        return False


def test_second_run_on_the_same_dataset_is_refused(tmp_path):
    """Break 8: two identical runs started together; the second crashed
    with a raw database error (E11000 duplicate key ... filepath_1). Run A
    is stopped while it holds the dataset; run B must be refused."""
    _drop("race")
    f10 = tmp_path / "f10"
    make_f10(str(f10))
    args = ("-d", f10, *DHASH, "--dataset", "race", "--dry_run")
    lock_path = outputs.run_lock("race").path
    try:
        for _attempt in range(3):
            a = _cli(args, tmp_path)
            while a.poll() is None and not _holds(lock_path, a.pid):
                time.sleep(0.002)
            if a.poll() is not None:
                continue  # finished before it could be caught: try again
            os.kill(a.pid, signal.SIGSTOP)
            try:
                b = helpers.run_cli(*args, cwd=tmp_path)
            finally:
                os.kill(a.pid, signal.SIGCONT)
            assert b.returncode == 2, (b.stdout, b.stderr)
            line = _one_error_line(b)
            assert "Another fiftyone-dedup run is working on dataset 'race'" in line
            assert f"pid {a.pid} " in line
            _, err = a.communicate(timeout=600)
            assert a.returncode == 0, err
            break
        else:
            pytest.fail("run A always finished before it was seen holding the dataset")
        ds = fo.load_dataset("race")
        assert len(ds) == 10 and "dedup" in ds.list_runs()
        assert len(ds.match_tags("duplicate")) == 5
    finally:
        _drop("race")


def test_two_runs_started_together_never_corrupt_the_dataset(tmp_path):
    _drop("race2")
    f10 = tmp_path / "f10"
    make_f10(str(f10))
    args = ("-d", f10, *DHASH, "--dataset", "race2", "--dry_run")
    try:
        procs = [_cli(args, tmp_path) for _ in range(2)]
        outs = [p.communicate(timeout=600) for p in procs]
        codes = sorted(p.returncode for p in procs)
        assert codes in ([0, 0], [0, 2]), outs
        for p, (_, err) in zip(procs, outs):
            assert "Traceback" not in err and "E11000" not in err and "failed:" not in err, err
            if p.returncode == 2:
                assert "Another fiftyone-dedup run is working on dataset 'race2'" in err
        ds = fo.load_dataset("race2")
        assert len(ds) == 10 and "dedup" in ds.list_runs()
        assert len(ds.match_tags("duplicate")) == 5
    finally:
        _drop("race2")
