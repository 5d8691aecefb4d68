"""What a move or restore did, as data and as text (pure)."""

import json

from fiftyone_dedup.moves.model import FileEntry, Root
from fiftyone_dedup.moves.results import MoveResult, RestoreResult, file_dict, samples_text


def _file(kind, outcome, src="/data/ds/a.jpg"):
    return {"src": src, "dst": "/dups/ds/a.jpg", "kind": kind, "outcome": outcome}


def test_a_move_result_counts_and_reads():
    r = MoveResult("/dups", dry_run=False, labels="keep", on_samples="keep", manifest="/dups/m")
    r.files = [_file("image", "moved"), _file("image", "skipped"), _file("label", "moved")]
    r.skipped = [{"path": "/data/ds/b.jpg", "reason": "changed"}]
    r.annotations = [
        {"path": "/data/ds/labels.json", "action": "lost the entries of 1 moved image(s)"},
        {"path": "/dups/ds/labels.json", "action": "written"},
    ]
    assert (r.num_moved, r.num_planned, r.num_skipped) == (1, 2, 1)
    text = r.format()
    assert text.splitlines()[0] == (
        "Moved 1 image(s) and 2 annotation file(s) into /dups (labels kept); "
        "1 annotation file(s) of the dataset lost their entries"
    )
    assert "Not moved: 1" in text and "Manifest: /dups/m" in text
    assert json.loads(json.dumps(r.to_dict()))["num_moved"] == 1


def test_a_dry_run_lists_what_would_move_up_to_a_limit():
    r = MoveResult("/dups", dry_run=True, labels="drop", on_samples="delete")
    r.files = [_file("image", "planned", f"/data/ds/{i}.jpg") for i in range(5)]
    lines = r.format(limit=2).splitlines()
    assert lines[0].startswith("Would move 5 image(s)") and "labels dropped" in lines[0]
    assert lines[-1] == "  ... and 3 more" and len(lines) == 4


def test_a_restore_result():
    r = RestoreResult("/dups", dry_run=False)
    r.files = [
        _file("image", "restored"), _file("label", "restored"),
        dict(_file("image", "skipped"), reason="was not moved"),
        dict(_file("image", "skipped"), reason="checksum differs"),
    ]
    r.annotations = [{"path": "/data/ds/labels.json", "action": "put back from its backup"}]
    r.moves = [{"move_id": "x", "dataset": "ds", "num_restored": 1, "num_skipped": 1,
                "error": "not trusted"}]
    assert (r.num_restored, r.num_restored_labels) == (1, 2)
    text = r.format()
    assert text.splitlines()[0] == "Restored 1 image(s) and 2 annotation file(s) from /dups"
    assert "not restored: not trusted" in text and "left /dups/ds/a.jpg: checksum differs" in text
    assert "was not moved" not in text
    assert r.to_dict()["num_restored_labels"] == 2


def test_file_dicts_and_sample_notes():
    e = FileEntry(n=0, kind="image", root=0, src="sub/a.jpg", dst="", sha256="", size=1,
                  mtime_ns=1, sample_ids=["s"], group=3, kept_path="/data/ds/k.jpg")
    d = file_dict([Root(path="/data/ds", dest="ds")], "/dups", e, "ds/sub/a.jpg", "failed", "why")
    assert d == {"src": "/data/ds/sub/a.jpg", "dst": "/dups/ds/sub/a.jpg", "kind": "image",
                 "sample_ids": ["s"], "group": 3, "kept": "/data/ds/k.jpg", "outcome": "failed",
                 "reason": "why"}
    assert samples_text("delete", "ds", None, None, "drop", True) == (
        "the moved samples would be deleted from dataset 'ds'"
    )
    assert samples_text("dataset", "ds", "t", "ds-dups", "drop", False) == (
        "the moved samples were moved to dataset 'ds-dups', without their labels"
    )
    assert samples_text("keep", "ds", "moved", None, "keep", False).endswith("and tag 'moved'")
