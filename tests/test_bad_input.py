"""Messy folders and wrong parameters: a clear answer, and nothing lost."""

import json
import os

import pytest
from PIL import Image

import fiftyone as fo
import fiftyone.operators as foo

import fiftyone_dedup as fod
from fiftyone_dedup.algorithms import decode
from fiftyone_dedup.algorithms import hashing

import helpers


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    made = helpers.write_corpus(str(root / "dataset"), str(root / "outside"))
    made["dir"] = str(root / "dataset")
    made["outside"] = str(root / "outside")
    return made


def _tree_state(folder):
    state = {}
    for dirpath, dirnames, filenames in os.walk(os.fsencode(folder)):
        for name in filenames + dirnames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            state[path] = (st.st_size, st.st_mtime_ns, os.path.islink(path))
    return state


@pytest.mark.parametrize("encoder, field", [("DHash", "dhash"), ("CNN", "cnn_embedding")])
def test_cli_completes_on_the_corpus(corpus, tmp_path, encoder, field):
    before = _tree_state(corpus["dir"])
    report = tmp_path / "r.json"
    out = helpers.run_cli(
        "-d", corpus["dir"], "--no_data_dir", "--no_annot", "--encoder", encoder,
        "--report", report, "--dataset", "corpus", "--dry_run",
        # the copies are of a plain synthetic texture, which verification
        # matches pair by pair (not all formats with all); this test is
        # about reading every format
        "--verify", "none",
    )
    assert out.returncode == 0, out.stderr
    rep = json.loads(report.read_text(encoding="utf-8"))
    failed = {f["path"]: f["error"] for f in rep["failed"]}
    for path, reason in corpus["bad"].items():
        assert path in failed, path
        assert reason in failed[path], (path, failed[path])
    for raw, reason in corpus["unnamed"].items():
        printable = raw.decode("utf-8", "backslashreplace")
        assert reason in failed[printable]
    assert len(failed) == len(corpus["bad"]) + len(corpus["unnamed"])
    ds = fo.load_dataset("corpus")
    encodings = dict(zip(ds.values("filepath"), ds.values(field)))
    for path in corpus["good"]:
        assert encodings.get(path) is not None, path
    # EXIF orientation is applied: the rotated copy matches the upright one
    group_of = {p: i for i, g in enumerate(rep["groups"]) for p in [g["keep"]] + g["duplicates"]}
    upright = os.path.join(corpus["dir"], "plain.jpg")
    assert group_of[upright] == group_of[os.path.join(corpus["dir"], "exif_rotated.jpg")]
    assert _tree_state(corpus["dir"]) == before  # reading changed nothing
    ds.delete()


def test_permission_denied_is_a_reason(monkeypatch, tmp_path):
    # as root, chmod cannot make a file unreadable: raise what open() would
    path = helpers.save(helpers.texture(3), str(tmp_path / "locked.jpg"))

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(Image, "open", deny)
    assert hashing.hash_file(path) == (None, "permission denied")


def test_heic_without_a_decoder_says_so(monkeypatch, tmp_path):
    path = tmp_path / "photo.heic"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
    monkeypatch.setattr(decode, "HEIF", False)
    h, err = hashing.hash_file(str(path))
    assert h is None and "pip install pillow-heif" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--encoder", "DHash", "--threshold", "-3"], "between 0 and 64"),
        (["--encoder", "DHash", "--threshold", "1e9"], "between 0 and 64"),
        (["--encoder", "CNN", "--threshold", "2"], "between -1 and 1"),
        (["--keep", "tallest"], "--keep: Unknown keep policy"),
        (["--grouping", "kmeans"], "invalid choice: 'kmeans'"),
        (["--guard", "none"], "invalid choice: 'none'"),
        (["--min_samples", "0"], "--min_samples must be 1 or more"),
        (["--min_samples", "x"], "invalid int value: 'x'"),
        (["--dataset_type", "pascal"], "Unknown --dataset_type 'pascal'"),
        (["--invariance", "upside"], "invalid choice: 'upside'"),
        (["--encodings_in", "/no/such/file"], "Encodings file not found"),
        (["--report", "/"], "--report is a folder"),
        (["--histogram", "/"], "--histogram is a folder"),
        (["--root", "/no/such/root"], "--root folder not found"),
        (["--run_key", "my key"], "--run_key must be letters"),
        (["--dataset", " "], "--dataset must not be empty"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_every_bad_cli_parameter_one_line_and_nothing_changed(corpus, args, message):
    names_before = set(fo.list_datasets())
    base = ["-d", os.path.join(corpus["dir"], "a"), "--no_data_dir", "--no_annot"]
    if "--dataset_type" in args:
        base = base[:-1]
    out = helpers.run_cli(*base, *args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert set(fo.list_datasets()) == names_before


@pytest.fixture
def dataset(corpus):
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=p) for p in corpus["good"][:6]])
    yield ds
    ds.delete()


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(encoder="dhash", threshold="ten"), "whole number of bits"),
        (dict(encoder="dhash", threshold=70), "between 0 and 64"),
        (dict(encoder="sift"), "Invalid enum value"),
        (dict(keep="tallest"), "Invalid enum value"),
        (dict(run_key=5), "Invalid run key 5"),
        (dict(field="not a name"), "Invalid field"),
        (dict(grouping="kmeans", advanced=True), "Invalid enum value"),
    ],
)
def test_every_bad_operator_parameter_is_refused_before_work(dataset, params, message):
    before = set(dataset.get_field_schema())
    with pytest.raises(Exception) as err:
        foo.execute_operator(
            "@fiftyone_dedup/dedup/find_duplicates", dict(dataset=dataset), params=params
        )
    assert message in str(err.value)
    assert set(dataset.get_field_schema()) == before and dataset.list_runs() == []


def test_operator_on_a_dataset_that_does_not_exist():
    with pytest.raises(Exception, match="not found|does not exist"):
        foo.execute_operator(
            "@fiftyone_dedup/dedup/find_duplicates", dict(dataset="no-such-dataset-xyz"),
            params={"threshold": 10},
        )


def test_operators_need_an_existing_run(dataset):
    for name in ("show_duplicates", "clear_duplicates", "show_distance_histogram"):
        with pytest.raises(Exception, match="no duplicates runs|Required property|Invalid enum"):
            foo.execute_operator(
                f"@fiftyone_dedup/dedup/{name}", dict(dataset=dataset), params={"run_key": "nope"}
            )


def test_python_unknown_field_and_missing_run(dataset):
    with pytest.raises(ValueError, match="Field 'nothing' does not exist"):
        fod.find_duplicates(dataset, field="nothing", compute=False)
    with pytest.raises(ValueError, match="No duplicates run 'nope'"):
        fod.load_run(dataset, "nope")
    with pytest.raises(ValueError, match="No duplicates run 'nope'"):
        fod.delete_run(dataset, "nope")
    assert dataset.list_runs() == []
