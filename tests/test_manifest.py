"""The move manifest: writing, reading back, torn lines, and hostile input
(hypothesis fuzzing of the reader)."""

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fiftyone_dedup.moves import fileops
from fiftyone_dedup.moves import manifest as mf
from fiftyone_dedup.moves import journal as jr
from fiftyone_dedup.moves import model
from fiftyone_dedup.moves import paths

SHA = "a" * 64
SID = "0123456789abcdef01234567"


def _manifest(move_id="20250101T000000000000Z-abcdef", labels="keep"):
    return model.Manifest(
        path="<test>",
        move_id=move_id,
        created="2025-01-01T00:00:00+00:00",
        dataset="ds",
        dataset_id=SID,
        run_key="dedup",
        run_timestamp=None,
        labels=labels,
        on_samples="keep",
        tag="moved",
        duplicates_dataset=None,
        label_fields=["ground_truth"],
        roots=[model.Root(path="/data/ds", dest="ds", layout="coco", data_dir=True)],
    )


def _records(m, n=3):
    out = [jr.header_record(m)]
    for i in range(n):
        kind = "label" if i == n - 1 else "image"
        src = f"data/sub/img {i}.jpg" if kind == "image" else "labels/x.xml"
        e = model.FileEntry(
            n=i,
            kind=kind,
            root=0,
            src=src,
            dst=paths.destination(m.move_id, m.roots[0], kind, src, m.labels),
            sha256=SHA,
            size=10,
            mtime_ns=5,
            sample_ids=[SID],
            group=1,
            kept_id=SID,
            kept_path="/data/ds/data/k.jpg",
        )
        out.append(jr.file_record(e))
    out.append(
        jr.annotation_record(
            model.AnnotationEntry(
                0, 0, "labels.json", SHA, paths.annotation_backup(m.move_id, 0, "labels.json")
            )
        )
    )
    out.append(
        {"type": "samples", "backup": paths.samples_backup(m.move_id), "sha256": SHA, "count": 2}
    )
    out.append({"type": "planned", "num_files": n, "num_annotations": 1})
    out.append({"type": "moved", "n": 0, "reason": None})
    out.append({"type": "skipped", "n": 1, "reason": "changed"})
    return out


def _bytes(records):
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def test_written_manifest_reads_back(tmp_path):
    m = _manifest()
    path = str(tmp_path / "manifest-x.jsonl")
    with mf.Journal(path, create=True) as j:
        for r in _records(m):
            j.append(r)
        j.append({"type": "phase", "name": "files"}, sync=True)
    got = mf.read_manifest(path)
    assert got.problems == [] and got.state == "moving" and got.planned
    assert [e.src for e in got.files] == [
        "data/sub/img 0.jpg",
        "data/sub/img 1.jpg",
        "labels/x.xml",
    ]
    assert got.files[0].dst == "ds/data/sub/img 0.jpg"
    assert got.outcomes == {0: ("moved", None), 1: ("skipped", "changed")}
    assert got.phases == {"files"}
    assert got.summary()["num_moved"] == 1
    # a new journal never overwrites an existing file
    with pytest.raises(FileExistsError):
        mf.Journal(path, create=True)


def test_dropped_labels_go_to_the_backup_folder():
    m = _manifest(labels="drop")
    got = mf.parse_manifest(_bytes(_records(m)))
    assert got.files[2].dst == f".fiftyone_dedup/{m.move_id}/dropped/ds/labels/x.xml"
    assert got.files[0].dst == "ds/data/sub/img 0.jpg"


def test_torn_last_line_is_ignored_and_cut_on_reopen(tmp_path):
    m = _manifest()
    path = str(tmp_path / "manifest-y.jsonl")
    data = _bytes(_records(m)) + b'{"type": "moved", "n": 2, "rea'
    with open(path, "wb") as f:
        f.write(data)
    got = mf.read_manifest(path)
    assert got.torn_tail and 2 not in got.outcomes and got.problems == []
    with mf.Journal(path) as j:
        j.append({"type": "moved", "n": 2, "reason": None})
    got = mf.read_manifest(path)
    assert not got.torn_tail and got.outcomes[2] == ("moved", None) and got.problems == []


def test_non_utf8_file_names_round_trip(tmp_path):
    m = _manifest()
    name = os.fsdecode(b"data/caf\xe9 \xff.jpg")  # not UTF-8
    records = _records(m, n=2)
    records[1]["src"] = name
    records[1]["dst"] = "ds/" + name
    path = str(tmp_path / "manifest-z.jsonl")
    with mf.Journal(path, create=True) as j:
        for r in records:
            j.append(r)
    got = mf.read_manifest(path)
    assert got.problems == [] and os.fsencode(got.files[0].src) == b"data/caf\xe9 \xff.jpg"


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda r: r[1].update(src="../../etc/passwd", dst="ds/../../etc/passwd"), "'..'"),
        (lambda r: r[1].update(src="/etc/passwd", dst="ds//etc/passwd"), "absolute"),
        (lambda r: r[1].update(dst="../outside.jpg"), "is not"),
        (lambda r: r[1].update(dst="other/data/sub/img 0.jpg"), "is not"),
        (lambda r: r[1].update(src="data/./x.jpg", dst="ds/data/./x.jpg"), "'.'"),
        (lambda r: r[1].update(sha256="zz"), "SHA-256"),
        (lambda r: r[1].update(sample_ids=["$where"]), "24 hex"),
        (lambda r: r[1].update(n=7), "out of order"),
        (lambda r: r[4].update(backup="../../../../etc/passwd"), "not where backups go"),
        (
            lambda r: r[5].update(backup=".fiftyone_dedup/x/../../samples.jsonl"),
            "not where backups go",
        ),
        (lambda r: r[8].update(n=99), "unknown file"),
    ],
)
def test_hostile_records_are_rejected(change, problem):
    records = _records(_manifest())
    change(records)
    got = mf.parse_manifest(_bytes(records))
    assert any(problem in p for p in got.problems), got.problems


@pytest.mark.parametrize(
    "change",
    [
        lambda h: h["roots"][0].update(path="relative/path"),
        lambda h: h["roots"][0].update(path="/data/../etc"),
        lambda h: h["roots"][0].update(dest="../up"),
        lambda h: h["roots"][0].update(dest=".fiftyone_dedup"),
        lambda h: h["roots"][0].update(dest="a/b"),
        lambda h: h.update(move_id="../x"),
        lambda h: h.update(labels="maybe"),
        lambda h: h.update(version=99),
        lambda h: h.update(roots=[]),
    ],
)
def test_hostile_headers_are_refused(change):
    records = _records(_manifest())
    change(records[0])
    with pytest.raises(mf.ManifestError):
        mf.parse_manifest(_bytes(records))


def test_journal_cuts_a_failed_write(tmp_path):
    """A write that fails midway leaves no half record (simulated: the
    file is made unwritable for the failing call)."""
    path = str(tmp_path / "manifest-w.jsonl")
    j = mf.Journal(path, create=True)
    j.append({"type": "header"})
    size = os.path.getsize(path)
    real_write = os.write

    def failing(fd, data):
        real_write(fd, bytes(data[:5]))
        raise OSError(28, "No space left on device")

    os.write = failing
    try:
        with pytest.raises(OSError):
            j.append({"type": "moved", "n": 0})
    finally:
        os.write = real_write
    j.close()
    assert os.path.getsize(path) == size


# ------------------------------------------------------------------ fuzz

_VALID = _bytes(_records(_manifest()))
_HOSTILE_PATHS = st.sampled_from(
    [
        "..",
        "../x",
        "a/../../b",
        "/etc/passwd",
        "",
        ".",
        "a//b",
        "a/./b",
        "x\x00y",
        "~root",
        "a/..",
        "/",
        "ds/../..",
    ]
)
_JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | _HOSTILE_PATHS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _check_invariants(m):
    """Whatever was read: every path is one that stays in its folder."""
    for r in m.roots:
        assert r.path.startswith("/") and os.path.normpath(r.path) == r.path
        assert "/" not in r.dest and not r.dest.startswith(".")
    for e in m.files:
        fileops.check_relpath(e.src)
        fileops.check_relpath(e.dst)
        assert e.dst == paths.destination(m.move_id, m.roots[e.root], e.kind, e.src, m.labels)
        assert fileops.is_sha256(e.sha256)
    for a in m.annotations:
        fileops.check_relpath(a.path)
        assert a.backup == paths.annotation_backup(m.move_id, a.root, a.path)
    for rel in m.written:
        fileops.check_relpath(rel)
        assert any(rel.startswith(r.dest + "/") for r in m.roots)
    assert all(0 <= n < m.num_file_records for n in m.outcomes)
    assert len({e.n for e in m.files}) == len(m.files)


def _parse_or_refuse(data):
    try:
        m = mf.parse_manifest(data)
    except mf.ManifestError:
        return None
    _check_invariants(m)
    return m


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_fuzz_random_bytes(data):
    _parse_or_refuse(data)
    _parse_or_refuse(_VALID[:200] + data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, 9), st.text(max_size=12), _JSONISH), min_size=1, max_size=6)
)
def test_fuzz_mutated_records(mutations):
    records = _records(_manifest())
    for index, key, value in mutations:
        record = records[index % len(records)]
        record[key if key else "src"] = value
    try:
        data = _bytes(records)
    except (TypeError, ValueError):
        return
    _parse_or_refuse(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(1, 9),
            st.sampled_from(["src", "dst", "backup", "path", "n", "root", "dest"]),
            _HOSTILE_PATHS,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_fuzz_hostile_paths(mutations):
    records = _records(_manifest())
    for index, key, value in mutations:
        records[index % len(records)][key] = value
    m = _parse_or_refuse(_bytes(records))
    if m is not None:
        for e in m.files:
            assert ".." not in e.src.split("/") and not e.src.startswith("/")


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(_VALID)))
def test_fuzz_truncated_anywhere(cut):
    m = _parse_or_refuse(_VALID[:cut])
    if m is not None:
        assert len(m.files) <= 3


def test_the_manifests_of_a_folder(tmp_path):
    dup = str(tmp_path)
    m = _manifest()
    path = paths.manifest_path(dup, m.move_id)
    with mf.Journal(path, create=True) as j:
        for r in _records(m)[:-3]:
            j.append(r)
    (tmp_path / "manifest-bad.jsonl").write_bytes(b"not json\n")
    (tmp_path / "manifest-../x.jsonl".replace("/", "_")).write_bytes(b"")
    os.symlink(path, str(tmp_path / "manifest-link.jsonl"))
    assert mf.list_manifests(dup) == [path, str(tmp_path / "manifest-bad.jsonl")]
    assert [x.move_id for x in mf.read_all(dup)] == [m.move_id]
    assert mf.state_of(path) == "planning" and mf.state_of(str(tmp_path / "none")) is None
    assert mf.list_manifests(str(tmp_path / "missing")) == []
    # a plan a kill interrupted is given up, its empty folders removed
    (tmp_path / "ds" / "data").mkdir(parents=True)
    mf.abort_plan(mf.read_manifest(path), dup)
    assert mf.state_of(path) == "aborted" and not (tmp_path / "ds").exists()
