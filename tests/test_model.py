"""A move as its manifest records it: states, counts, summaries (pure)."""

from fiftyone_dedup.moves.model import FileEntry, Manifest, Root


def _move(**kwargs):
    m = Manifest(
        path="/d/manifest-x.jsonl", move_id="x", created="now", dataset="ds", dataset_id=None,
        run_key="dedup", run_timestamp=None, labels="keep", on_samples="keep", tag="moved",
        duplicates_dataset=None, label_fields=[], roots=[Root(path="/data/ds", dest="ds")],
    )
    for k, v in kwargs.items():
        setattr(m, k, v)
    return m


def _entry(n):
    return FileEntry(n=n, kind="image", root=0, src=f"{n}.jpg", dst=f"ds/{n}.jpg", sha256="a" * 64,
                     size=1, mtime_ns=1, sample_ids=[])


def test_the_state_of_a_move():
    assert _move().state == "planning"
    assert _move(aborted=True).state == "aborted"
    assert _move(planned=True).state == "moving"
    assert _move(planned=True, complete=True).state == "moved"
    assert _move(planned=True, complete=True, restore_started=True).state == "restoring"
    assert _move(restore_started=True, restore_complete=True).state == "restored"


def test_counts_entries_and_summary():
    m = _move(planned=True, files=[_entry(0), _entry(1), _entry(2)])
    m.outcomes = {0: ("moved", None), 1: ("skipped", "changed"), 2: ("moved", None)}
    m.restored = {0: ("restored", None)}
    assert m.outcome_counts() == {"moved": 2, "skipped": 1, "failed": 0}
    assert [e.n for e in m.moved_entries()] == [0, 2]
    assert m.backup_dir == ".fiftyone_dedup/x"
    s = m.summary()
    assert (s["move_id"], s["state"], s["num_files"], s["num_moved"], s["num_skipped"]) == (
        "x", "moving", 3, 2, 1
    )
    assert s["num_restored"] == 1 and s["roots"] == ["/data/ds"] and s["problems"] == []
