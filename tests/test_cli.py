"""The command line, run as a subprocess on real folders."""

import json
import os
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
        "--dry_run",
    ]
    out = helpers.run_cli(*args, cwd=tmp_path)
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
    # the dry run printed and reported its plan, and moved nothing
    assert rep["summary"]["num_planned"] == len(folder["planted"])
    planned = {(f["src"], f["dst"]) for f in rep["move"]["files"]}
    assert {src for src, _ in planned} == dups
    assert all(dst.startswith(str(tmp_path / "duplicates") + "/") for _, dst in planned)
    assert "Would move" in out.stdout and "would move" in out.stdout
    assert not (tmp_path / "duplicates").exists()
    assert all(os.path.exists(p) for pair in folder["planted"] for p in pair)

    again = helpers.run_cli(*args, cwd=tmp_path)
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
        (
            ["-d", "/does/not/exist", "--no_data_dir", "--no_annot"],
            "Folder not found: /does/not/exist",
        ),
        (
            [
                "-d", "{dir}", "--no_data_dir", "--no_annot",
                "--encoder", "DHash", "--threshold", "99",
            ],
            "between 0 and 64",
        ),
        (
            ["-d", "{dir}", "--no_data_dir", "--no_annot", "--threshold", "ten"],
            "--threshold must be a number",
        ),
        (
            ["-d", "{dir}", "--no_data_dir", "--no_annot", "--encoder", "SIFT"],
            "Unknown encoder 'SIFT'",
        ),
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
        "--report", report_path, "--dataset", "cli-cross", "--dry_run",
        cwd=tmp_path,
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
    assert "originals kept (--keep oldest): 5 of 5" in out.stdout
    # the 6 copies moved with their labels; the rest stays a valid COCO dataset
    coco = json.loads((tmp_path / "demo" / "labels.json").read_text())
    assert len(coco["images"]) == len(coco["annotations"]) == 10
    # what stays is the 10 originals (copies are named <subject>_<variant>)
    assert all("_" not in im["file_name"] for im in coco["images"])
    moved = json.loads((tmp_path / "demo" / "duplicates" / "demo" / "labels.json").read_text())
    assert len(moved["images"]) == len(moved["annotations"]) == 6
    for im in moved["images"]:
        assert (tmp_path / "demo" / "duplicates" / "demo" / "data" / im["file_name"]).is_file()
        assert not (tmp_path / "demo" / "data" / im["file_name"]).exists()
    ds = fo.load_dataset("fiftyone-dedup-demo")
    assert ds.count("ground_truth_detections.detections") == 16
    assert len(ds.match_tags("moved")) == 6
    # a folder the demo did not make is never overwritten
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("precious")
    out = helpers.run_cli("demo", "--dir", mine)
    assert out.returncode != 0 and "not made by the demo" in out.stderr
    assert (mine / "keep.txt").read_text() == "precious"


# ------------------------------------------------------------ moving


def _coco_folder(directory):
    import labeled

    return labeled.make_labeled_folder(str(directory), "coco")


def test_coco_dataset_moves_with_labels_and_restores(tmp_path):
    import labeled

    made = _coco_folder(tmp_path / "dataset")
    root = made["dir"]
    tree0 = labeled.tree(root)
    report_path = tmp_path / "r.json"
    out = helpers.run_cli(
        "-d", root, "--encoder", "DHash", "--report", report_path, "--dataset", "cli-move", "-q",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    dup = tmp_path / "duplicates"  # the default, in the current folder
    rep = json.loads(report_path.read_text())
    assert rep["summary"]["num_moved"] == 2 and rep["move"]["manifest"].startswith(str(dup))
    assert {f["dst"] for f in rep["move"]["files"]} == {
        str(dup / "dataset" / c) for c in made["copies"]
    }
    assert "moved" in out.stdout and "fiftyone-dedup restore" in out.stdout
    # the source stays a valid COCO dataset; the duplicates are one too
    src = labeled.load_layout(root, "coco")
    assert len(src) == 4
    src.delete()
    moved = labeled.load_layout(str(dup / "dataset"), "coco")
    assert len(moved) == 2 and moved.count("ground_truth_detections.detections") == 2
    moved.delete()
    # a rerun finds nothing more to move and never rescans the moved files
    out = helpers.run_cli("-d", root, "--dataset", "cli-move", "-q", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert len(fo.load_dataset("cli-move")) == 4

    out = helpers.run_cli("restore", dup, "-q")
    assert out.returncode == 0, out.stderr
    assert "Restored 2 image(s)" in out.stdout
    assert labeled.tree(root) == tree0
    # the rerun had dropped the moved samples (their files were gone): back too
    ds = fo.load_dataset("cli-move")
    assert len(ds) == 6 and set(ds.values("filepath")) >= {
        os.path.join(root, c) for c in made["copies"]
    }
    ds.delete()


def test_drop_labels_and_dry_run_from_the_command_line(tmp_path):
    import labeled

    made = _coco_folder(tmp_path / "dataset")
    tree0 = labeled.tree(made["dir"])
    dup = tmp_path / "elsewhere" / "dups"
    out = helpers.run_cli(
        "-d", made["dir"], "--duplicates_dir", dup, "--dry_run", "--dataset", "cli-drop", "-q",
    )
    assert out.returncode == 0, out.stderr
    assert "Would move 2 image(s)" in out.stdout and "would move" in out.stdout
    assert labeled.tree(made["dir"]) == tree0 and not dup.exists()
    out = helpers.run_cli(
        "-d", made["dir"], "--duplicates_dir", dup, "--drop_labels", "--moved_samples", "delete",
        "--dataset", "cli-drop", "-q",
    )
    assert out.returncode == 0, out.stderr
    assert sorted(labeled.tree(str(dup / "dataset"))) == sorted(made["copies"])
    assert len(fo.load_dataset("cli-drop")) == 4
    fo.load_dataset("cli-drop").delete()


@pytest.mark.parametrize(
    "dup, message",
    [
        ("{dir}/data/dups", "is inside {dir}/data, the images folder"),
        ("{parent}", "contains the dataset folder"),
        ("{dir}/labels.json", "--duplicates_dir is not a folder"),
    ],
)
def test_bad_duplicates_dir_exits_2_before_any_change(tmp_path, dup, message):
    import labeled

    made = _coco_folder(tmp_path / "dataset")
    tree0 = labeled.tree(made["dir"])
    fill = lambda s: s.replace("{dir}", made["dir"]).replace("{parent}", str(tmp_path))  # noqa: E731
    out = helpers.run_cli(
        "-d", made["dir"], "--duplicates_dir", fill(dup), "--dataset", "cli-baddup"
    )
    assert out.returncode == 2, out.stderr
    lines = [l for l in out.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and fill(message) in lines[0], out.stderr
    assert labeled.tree(made["dir"]) == tree0 and not fo.dataset_exists("cli-baddup")


def test_restore_of_a_missing_folder_exits_2():
    out = helpers.run_cli("restore", "/no/such/duplicates")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "fiftyone-dedup: error: Duplicates folder not found: /no/such/duplicates "
        "(see fiftyone-dedup --help)"
    )


def test_app_flag_serves_the_duplicates_view(folder, tmp_path):
    import signal
    import socket
    import time
    import urllib.parse
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "FIFTYONE_DEFAULT_APP_PORT": str(port),
        "FIFTYONE_DEFAULT_APP_ADDRESS": "127.0.0.1",
        "PYTHONFAULTHANDLER": "1",  # SIGABRT prints every thread's stack
    }
    env.pop("DISPLAY", None)
    # stderr to a file: a pipe nobody reads could fill up and block the run
    errors = open(tmp_path / "stderr.txt", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fiftyone_dedup", "-d", folder["dir"], "--no_data_dir",
         "--no_annot", "--encoder", "DHash", "--dataset", "cli-app", "--quiet", "--app",
         "--dry_run"],
        stdout=subprocess.PIPE, stderr=errors, text=True, env=env, cwd=tmp_path,
        # Ctrl-C must reach it even when the tests run as a background job,
        # which inherits SIGINT ignored (the CLI would then never stop)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        url = None
        deadline = time.time() + 240
        while time.time() < deadline and url is None:
            line = proc.stdout.readline()
            if line.startswith("App: "):
                url = line.split()[1]
            elif not line and proc.poll() is not None:
                break
        assert url and f":{port}" in url, (tmp_path / "stderr.txt").read_text()
        # a URL a browser can open, not the 0.0.0.0 a server listens on
        assert urllib.parse.urlsplit(url).hostname in ("127.0.0.1", "localhost"), url
        body = None
        while time.time() < deadline and body is None:
            try:
                body = urllib.request.urlopen(url, timeout=5).read()
            except OSError:
                time.sleep(0.5)
        assert body and b"<html" in body.lower()
        ds = fo.load_dataset("cli-app")
        assert len(ds.match_tags("duplicate")) == len(folder["planted"])
    finally:
        # Ctrl-C stops the App server at once, without its graceful shutdown
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            # where it hangs: faulthandler writes every thread's stack
            proc.send_signal(signal.SIGABRT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        errors.close()
    assert proc.returncode == 0, (tmp_path / "stderr.txt").read_text()
    fo.load_dataset("cli-app").delete()
