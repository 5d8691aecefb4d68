"""The records of a manifest: each builder's record read back by its
reader, and records out of place refused (pure, no files)."""

import json

import pytest

from fiftyone_dedup.moves import journal as jr
from fiftyone_dedup.moves import manifest as mf
from fiftyone_dedup.moves import model
from fiftyone_dedup.moves import paths

from test_manifest import SHA, _manifest, _records

SHA2 = "b" * 64


def _parse(records):
    return mf.parse_manifest(b"".join(json.dumps(r).encode() + b"\n" for r in records))


def test_every_record_reads_back_by_its_reader():
    m = _manifest()
    plan = _records(m)[:-3]  # header, files, annotation, samples
    records = plan + [
        jr.planned_record(3, 1),
        jr.outcome_record("moved", 0, None),
        jr.outcome_record("skipped", 1, "changed"),
        jr.outcome_record("failed", 2, "no space"),
        jr.phase_record("files"),
        jr.rewritten_record(0, SHA2),
        jr.written_record("ds/labels.json", SHA2),
        jr.phase_record("annotations"),
        jr.phase_record("database"),
        jr.complete_record({"moved": 1, "skipped": 1, "failed": 1}),
        jr.restore_started_record(),
        jr.restored_record("restored", 0, None),
        jr.restored_record("skipped", 1, "was not moved"),
        jr.restore_phase_record("files"),
        jr.restore_complete_record(),
    ]
    got = _parse(records)
    assert got.problems == []
    assert got.outcomes == {
        0: ("moved", None),
        1: ("skipped", "changed"),
        2: ("failed", "no space"),
    }
    assert got.rewritten == {0: SHA2} and got.written == {"ds/labels.json": SHA2}
    assert got.phases == {"files", "annotations", "database"} and got.complete
    assert got.restored == {0: ("restored", None), 1: ("skipped", "was not moved")}
    assert got.restore_phases == {"files"} and got.state == "restored"
    assert got.samples_backup["count"] == 2
    assert [a.path for a in got.annotations] == ["labels.json"]
    assert got.outcome_counts() == {"moved": 1, "skipped": 1, "failed": 1}


def test_the_header_reads_back():
    m = _manifest(labels="drop")
    got = jr.read_header(jr.header_record(m), "p")
    for name in ("move_id", "created", "dataset", "dataset_id", "run_key", "labels",
                 "on_samples", "tag", "label_fields", "roots"):
        assert getattr(got, name) == getattr(m, name), name
    assert got.path == "p" and got.files == []


@pytest.mark.parametrize("change, message", [
    (dict(format="other"), "not a fiftyone_dedup.manifest header"),
    (dict(version=2), "unsupported version"),
    (dict(move_id="../x"), "bad move_id"),
    (dict(roots=[]), "'roots' must be a non-empty list"),
    (dict(labels="maybe"), "'labels' must be one of"),
])
def test_bad_headers_are_refused(change, message):
    d = dict(jr.header_record(_manifest()), **change)
    with pytest.raises(ValueError, match=message):
        jr.read_header(d, "p")


def test_an_aborted_plan_and_an_abort_too_late():
    m = _manifest()
    plan = _records(m)[:-3]
    got = _parse(plan + [jr.aborted_record("interrupted")])
    assert got.state == "aborted" and got.problems == []
    got = _parse(plan + [jr.planned_record(3, 1), jr.aborted_record("late")])
    assert got.state == "moving" and "after the plan was closed" in got.problems[0]


@pytest.mark.parametrize("record, problem", [
    ({"type": "nonsense"}, "unknown record type 'nonsense'"),
    ({"type": ["file"]}, "unknown record type"),
    (jr.restored_record("restored", 0, None), "before 'restore_started'"),
    (jr.outcome_record("moved", 7, None), "outcome for unknown file 7"),
    (jr.rewritten_record(5, SHA), "unknown annotation 5"),
    (jr.written_record("elsewhere/x.json", SHA), "outside this move's folders"),
    (jr.phase_record("lunch"), "'name' must be one of"),
    (jr.samples_record(paths.samples_backup("other"), SHA, 1), "after the plan was closed"),
])
def test_records_out_of_place_are_ignored_with_a_problem(record, problem):
    got = _parse(_records(_manifest()) + [record])
    assert len(got.problems) == 1 and problem in got.problems[0]
    assert got.state == "moving"  # the rest still reads


def test_progress_without_the_closing_record_closes_the_plan():
    m = _manifest()
    got = _parse(_records(m)[:-3] + [jr.outcome_record("moved", 0, None)])
    assert got.planned and got.outcomes == {0: ("moved", None)}
    assert got.problems == ["the plan's closing record is missing; assumed closed"]


def test_a_file_record_must_go_where_files_go():
    m = _manifest()
    records = _records(m)
    records[1] = dict(records[1], dst="elsewhere/img.jpg")
    got = _parse(records)
    assert "is not" in got.problems[0] and [e.n for e in got.files] == [1, 2]


def test_apply_record_builds_a_manifest_in_memory():
    m = _manifest()
    for i, r in enumerate(_records(m)[1:], start=2):
        jr.apply_record(m, r, i)
    assert m.planned and len(m.files) == 3 and m.annotations[0].line == 5
    with pytest.raises(ValueError, match="closed twice"):
        jr.apply_record(m, jr.planned_record(3, 1))
    assert isinstance(m, model.Manifest)
