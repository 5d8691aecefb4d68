"""Hostile input from the adversarial pass (issue 13): special files,
outputs aimed at other files, bad values that must be refused before any
work, crafted encodings files. Real folders, a real database, the command
line as a subprocess."""

import json
import os
import socket
import stat

import pytest

import fiftyone as fo

from fiftyone_dedup.algorithms import hashing

import helpers


def _lines(text):
    return [l for l in text.strip().splitlines() if l.strip()]


def _one_error_line(out, *fragments, after_loading=False):
    """Exit 2 with one line on stderr holding every fragment (with
    ``after_loading``, the last line, after the folder loading's log)."""
    assert out.returncode == 2, (out.returncode, out.stdout[-2000:], out.stderr[-2000:])
    lines = _lines(out.stderr)
    if after_loading:
        assert lines[0].startswith("Dataset ") and "sample(s)" in lines[0], out.stderr
        lines = lines[1:]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("fiftyone-dedup: error:"), lines[0]
    for f in fragments:
        assert str(f) in lines[0], (f, lines[0])
    return lines[0]


def _state(*folders):
    """Every file's kind and bytes (or link target) under some folders."""
    out = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in filenames + dirnames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                if stat.S_ISLNK(st.st_mode):
                    out[path] = ("link", os.readlink(path))
                elif stat.S_ISREG(st.st_mode):
                    with open(path, "rb") as f:
                        out[path] = ("file", f.read())
                else:
                    out[path] = (stat.S_IFMT(st.st_mode), None)
    return out


def _plain_folder(directory, num_textures=4, copies=2):
    """A folder of distinct textures, the first ``copies`` with a resized copy."""
    os.makedirs(directory, exist_ok=True)
    for s in range(num_textures):
        img = helpers.texture(500 + s)
        helpers.save(img, os.path.join(directory, f"t{s}.png"))
        if s < copies:
            helpers.save(
                helpers.resized(img, 0.5), os.path.join(directory, "copies", f"t{s}_small.png")
            )
    return str(directory)


# ---------------------------------------------------------- special files


def _special_files(directory):
    """A FIFO, a socket, a link to /dev/zero and a link to the FIFO, named
    as images; a FIFO without an extension. Returns name -> reason."""
    fifo = os.path.join(directory, "pipe.jpg")
    os.mkfifo(fifo)
    os.mkfifo(os.path.join(directory, "pipe_no_extension"))
    os.symlink("/dev/zero", os.path.join(directory, "zero.jpg"))
    os.symlink(fifo, os.path.join(directory, "link_to_pipe.png"))
    cwd = os.getcwd()
    os.chdir(directory)  # a socket path is limited to about 100 bytes
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind("sock.png")
        sock.close()
    finally:
        os.chdir(cwd)
    return {
        "pipe.jpg": "not a regular file: a named pipe (FIFO)",
        "zero.jpg": "not a regular file: a character device, through a symbolic link to /dev/zero",
        "link_to_pipe.png": "not a regular file: a named pipe (FIFO), through a "
        f"symbolic link to {os.path.realpath(fifo)}",
        "sock.png": "not a regular file: a socket",
    }


def test_a_fifo_is_never_opened(tmp_path):
    fifo = str(tmp_path / "pipe.jpg")
    os.mkfifo(fifo)
    # opening it for reading would block until a writer came
    assert hashing.hash_file(fifo) == (None, "not a regular file: a named pipe (FIFO)")


@pytest.mark.parametrize(
    "encoder, keep", [("DHash", "largest_resolution"), ("CNN", "first")]
)
def test_special_files_are_reported_and_skipped(tmp_path, encoder, keep):
    d = _plain_folder(tmp_path / "imgs")
    reasons = _special_files(d)
    before = _state(d)
    report = tmp_path / "r.json"
    out = helpers.run_cli(
        "-d", d, "--no_data_dir", "--no_annot", "--encoder", encoder, "--keep", keep,
        "--report", report, "--dataset", f"special-{encoder}", "--num_workers", "2",
        "--dry_run", timeout=600,
    )
    assert out.returncode == 0, out.stderr
    rep = json.loads(report.read_text())
    failed = {os.path.basename(f["path"]): f["error"] for f in rep["failed"]}
    assert failed == reasons
    assert rep["summary"]["num_duplicates"] >= 2  # the regular files went on
    # nothing was opened or replaced: the special files are still there
    assert _state(d) == before
    assert stat.S_ISFIFO(os.lstat(os.path.join(d, "pipe.jpg")).st_mode)
    ds = fo.load_dataset(f"special-{encoder}")
    assert os.path.join(d, "pipe_no_extension") not in ds.values("filepath")
    if encoder == "CNN":
        # the model loads under its own stage, before the embedding bar
        text = out.stdout + out.stderr
        assert "Loading model efficientnet-lite0" in text
        assert text.index("Loading model") < text.index("Embedding images")
    ds.delete()


def test_progress_written_to_a_log_is_plain_lines(tmp_path):
    d = _plain_folder(tmp_path / "imgs")
    out = helpers.run_cli(
        "-d", d, "--no_data_dir", "--no_annot", "--encoder", "DHash",
        "--dataset", "plain-progress", "--dry_run",
    )
    assert out.returncode == 0, out.stderr
    # stdout is a pipe here, as a log file would be: no redrawn bars
    assert "\r" not in out.stdout and "\r" not in out.stderr
    assert "Hashing images: 6/6 (100%) images, done in" in out.stdout
    fo.load_dataset("plain-progress").delete()


# ------------------------------------------------------------ outputs


@pytest.fixture
def coco(tmp_path):
    import labeled

    made = labeled.make_labeled_folder(str(tmp_path / "dataset"), "coco")
    outside = tmp_path / "mine"
    outside.mkdir()
    (outside / "notes.json").write_text('{"my": "notes"}\n')
    helpers.save(helpers.texture(7), str(outside / "photo.png"))
    helpers.save(helpers.texture(8), str(outside / "photo.jpg"))
    os.symlink(os.path.join(made["dir"], "labels.json"), outside / "link.json")
    made["outside"] = str(outside)
    return made


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--report", "{dir}/labels.json"],
            "--report {dir}/labels.json is a file of the dataset folder {dir}",
        ),
        (
            ["--encodings_out", "{dir}/labels.json"],
            "--encodings_out {dir}/labels.json is a file of the dataset folder",
        ),
        (
            ["--encodings_out", "{dir}/labels"],
            "--encodings_out {dir}/labels.json is a file of the dataset folder",
        ),
        (
            [
                "--report", "{dir}/data/new_report.json",
                "--encodings_out", "{dir}/data/new_report.json",
            ],
            "name the same file",
        ),
        (
            ["--histogram", "{dir}/data/hist.png"],
            "--histogram {dir}/data/hist.png is inside the dataset folder",
        ),
        (
            ["--report", "{out}/notes.json"],
            "--report would overwrite {out}/notes.json, "
            "which is not a report written by fiftyone-dedup",
        ),
        (["--report", "{out}/photo.jpg"], "which is not a report written by"),
        (["--encodings_out", "{out}/notes.json"], "which is not an encodings file written by"),
        (
            ["--histogram", "{out}/photo.png"],
            "--histogram would overwrite {out}/photo.png, which is not a histogram",
        ),
        (["--report", "{out}/link.json"], "is a file of the dataset folder"),
    ],
)
def test_outputs_never_overwrite_other_files(coco, args, message):
    import labeled

    fill = lambda s: s.replace("{dir}", coco["dir"]).replace("{out}", coco["outside"])  # noqa: E731
    before = _state(coco["dir"], coco["outside"])
    out = helpers.run_cli(
        "-d", coco["dir"], "--encoder", "DHash", "--dataset", "out-refused", "--dry_run",
        *map(fill, args),
    )
    _one_error_line(out, fill(message))
    assert _state(coco["dir"], coco["outside"]) == before
    assert not fo.dataset_exists("out-refused")
    # the dataset still loads: its labels.json is intact
    assert len(labeled.load_layout(coco["dir"], "coco")) == 6


def test_own_outputs_are_replaced_by_the_next_run(tmp_path):
    d = _plain_folder(tmp_path / "imgs")
    outs = tmp_path / "outputs"
    args = [
        "-d", d, "--no_data_dir", "--no_annot", "--encoder", "DHash", "--dataset", "own-outputs",
        "--report", outs / "r.json", "--encodings_out", outs / "enc", "--histogram", outs / "h.png",
        "--dry_run", "-q",
    ]
    for fmt in ("fiftyone", "imagededup"):
        out = helpers.run_cli(*args, "--encodings_format", fmt)
        assert out.returncode == 0, out.stderr
    assert json.loads((outs / "r.json").read_text())["format"] == "fiftyone-dedup-report"
    assert len(json.loads((outs / "enc.json").read_text())) == 6  # imagededup's flat map
    assert (outs / "h.png").stat().st_size > 0
    fo.load_dataset("own-outputs").delete()


# ------------------------------------------------- values refused early


def test_priority_folder_must_exist_and_hold_images(tmp_path):
    d = _plain_folder(tmp_path / "imgs")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    before = _state(d)
    base = ["-d", d, "--no_data_dir", "--no_annot", "--encoder", "DHash", "--dataset", "prio-bad"]
    out = helpers.run_cli(*base, "--priority", "/no/such/dir")  # not a dry run
    _one_error_line(out, "--priority folder not found: /no/such/dir")
    out = helpers.run_cli(*base, "--priority", elsewhere)
    _one_error_line(out, f"--priority folder {elsewhere} is neither inside nor above")
    assert _state(d) == before and not fo.dataset_exists("prio-bad")


@pytest.mark.parametrize(
    "keep, message",
    [
        ("max:nofield", "--keep: no sample field 'nofield'"),
        ("min:filepath", "field 'filepath' is a StringField, not a number"),
    ],
)
def test_keep_field_must_be_a_numeric_field(tmp_path, keep, message):
    d = _plain_folder(tmp_path / "imgs")
    before = _state(d)
    out = helpers.run_cli(
        "-d", d, "--no_data_dir", "--no_annot", "--encoder", "DHash", "--keep", keep,
        "--dataset", "keep-bad",
    )
    # a new dataset's fields are known once the folder is loaded
    line = _one_error_line(out, message, after_loading=True)
    assert "numeric fields:" in line
    # refused before any encoding; the dataset made for it is gone again
    assert not fo.dataset_exists("keep-bad") and _state(d) == before


def test_keep_field_of_an_existing_dataset_is_used(tmp_path):
    d = _plain_folder(tmp_path / "imgs")
    args = [
        "-d", d, "--no_data_dir", "--no_annot", "--encoder", "DHash",
        "--dataset", "keep-score", "--dry_run", "-q",
    ]
    assert helpers.run_cli(*args).returncode == 0
    ds = fo.load_dataset("keep-score")
    ds.set_values("score", [float(len(p)) for p in ds.values("filepath")])
    # an existing dataset's fields are checked before anything is loaded
    out = helpers.run_cli(*args, "--keep", "max:scor")
    _one_error_line(out, "--keep: no sample field 'scor'", "score")
    assert len(fo.load_dataset("keep-score")) == 6
    out = helpers.run_cli(*args, "--keep", "max:score", "--report", tmp_path / "r.json")
    assert out.returncode == 0, out.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    # the longer paths (the copies) have the higher score and are kept
    assert all("copies" in g["keep"] for g in rep["groups"]) and len(rep["groups"]) == 2
    assert fo.load_dataset("keep-score").has_sample_field("score")
    fo.load_dataset("keep-score").delete()


def test_restore_of_an_unknown_move_id_lists_the_moves(tmp_path):
    d = _plain_folder(tmp_path / "imgs")
    state0 = _state(d)
    dup = tmp_path / "dups"
    report = tmp_path / "r.json"
    out = helpers.run_cli(
        "-d", d, "--no_data_dir", "--no_annot", "--encoder", "DHash", "--dataset", "restore-id",
        "--duplicates_dir", dup, "--report", report, "-q",
    )
    assert out.returncode == 0, out.stderr
    move_id = json.loads(report.read_text())["move"]["move_id"]
    before = _state(d, dup)
    out = helpers.run_cli("restore", dup, "--move_id", "nope")
    _one_error_line(out, f"--move_id 'nope': no such move in {dup}; the moves there: {move_id}")
    assert _state(d, dup) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    out = helpers.run_cli("restore", empty, "--move_id", "nope")
    _one_error_line(out, "there are no moves there")
    out = helpers.run_cli("restore", dup, "--move_id", move_id, "-q")
    assert out.returncode == 0, out.stderr
    assert _state(d) == state0  # every moved image back
    fo.load_dataset("restore-id").delete()


# ------------------------------------------------ crafted encodings files


def _crafted(path, kind):
    if kind == "fifo":
        os.mkfifo(path)
        return
    text = {
        "400 digits": '{"a.png": [1, %s]}' % ("9" * 400),
        "5000 digits": '{"a.png": [1, %s]}' % ("9" * 5000),
        "deep nesting": '{"a.png": ' + "[" * 100000 + "]" * 100000 + "}",
        "lone surrogate": '{"a\\udc80.png": "00ff00ff00ff00ff"}',
        "version -1": (
            '{"format": "fiftyone-dedup-encodings", "version": -1, '
            '"encoder": "dhash", "datasets": []}'
        ),
        "version true": (
            '{"format": "fiftyone-dedup-encodings", "version": true, '
            '"encoder": "dhash", "datasets": []}'
        ),
        "huge version": (
            '{"format": "fiftyone-dedup-encodings", "version": %s, '
            '"encoder": "dhash", "datasets": []}' % ("7" * 400)
        ),
    }[kind]
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("400 digits", "neither 64-bit hex hashes nor vectors of numbers"),
        ("5000 digits", "a number with thousands of digits"),
        ("deep nesting", "nested too deeply"),
        ("lone surrogate", "is not valid Unicode"),
        ("version -1", "unsupported version -1"),
        ("version true", "unsupported version True"),
        ("huge version", "(400 digits)"),
        ("fifo", "not a regular file"),
    ],
)
def test_crafted_encodings_files_are_refused_naming_the_file(tmp_path, kind, message):
    d = _plain_folder(tmp_path / "imgs")
    path = tmp_path / "crafted.json"
    _crafted(str(path), kind)
    out = helpers.run_cli(
        "-d", d, "--no_data_dir", "--no_annot", "--encoder", "DHash", "--encodings_in", path,
        "--dataset", "crafted", "--dry_run", timeout=300,
    )
    _one_error_line(out, f"--encodings_in: {path}: ", message)
    assert not fo.dataset_exists("crafted")
