"""One file moved out and brought back: the resumable, idempotent transfer
in both directions, on real files (no database)."""

import errno
import os

import pytest

from fiftyone_dedup.moves import fileops
from fiftyone_dedup.moves import transfer
from fiftyone_dedup.moves.model import FileEntry, Manifest, Root

MOVE_ID = "20250101T000000000000Z-abcdef"


def _setup(tmp_path, data=b"image bytes"):
    root = tmp_path / "ds"
    dup = tmp_path / "dups"
    (root / "sub").mkdir(parents=True)
    dup.mkdir()
    src = root / "sub" / "a.jpg"
    src.write_bytes(data)
    st = os.lstat(src)
    e = FileEntry(
        n=0, kind="image", root=0, src="sub/a.jpg", dst="ds/sub/a.jpg",
        sha256=fileops.sha256_bytes(data), size=st.st_size, mtime_ns=st.st_mtime_ns,
        sample_ids=["0" * 24],
    )
    m = Manifest(
        path=str(dup / f"manifest-{MOVE_ID}.jsonl"), move_id=MOVE_ID, created="now",
        dataset="d", dataset_id=None, run_key="dedup", run_timestamp=None, labels="keep",
        on_samples="keep", tag=None, duplicates_dataset=None, label_fields=[],
        roots=[Root(path=str(root), dest="ds")], files=[e],
    )
    return m, e, str(dup), src, dup / "ds" / "sub" / "a.jpg"


def test_move_out_and_back_are_idempotent(tmp_path):
    m, e, dup, src, dst = _setup(tmp_path)
    assert transfer.move_out(m, e, dup) == ("moved", None)
    assert dst.read_bytes() == b"image bytes" and not src.exists()
    assert transfer.move_out(m, e, dup) == ("moved", None)  # a rerun finds it moved
    m.outcomes[e.n] = ("moved", None)
    assert transfer.bring_back(m, e, dup) == ("restored", None)
    assert src.read_bytes() == b"image bytes" and not dst.exists()
    assert transfer.bring_back(m, e, dup) == ("restored", None)


def test_an_interrupted_copy_finishes_in_both_directions(tmp_path):
    m, e, dup, src, dst = _setup(tmp_path)
    dst.parent.mkdir(parents=True)
    dst.write_bytes(src.read_bytes())  # copied; the kill came before the source went
    assert transfer.move_out(m, e, dup) == ("moved", None)
    assert not src.exists() and dst.exists()
    src.write_bytes(dst.read_bytes())  # copied back; the kill came again
    assert transfer.bring_back(m, e, dup) == ("restored", None)
    assert src.exists() and not dst.exists()


def test_a_different_file_in_the_way_is_never_overwritten(tmp_path):
    m, e, dup, src, dst = _setup(tmp_path)
    dst.parent.mkdir(parents=True)
    dst.write_bytes(b"someone else's")
    kind, reason = transfer.move_out(m, e, dup)
    assert kind == "failed" and "a different file exists" in reason
    assert dst.read_bytes() == b"someone else's" and src.exists()
    # back: the moved file stays where it is when the dataset has another
    dst.write_bytes(src.read_bytes())
    src.write_bytes(b"a new file")
    kind, reason = transfer.bring_back(m, e, dup)
    assert kind == "skipped" and "a different file now exists" in reason
    assert src.read_bytes() == b"a new file" and dst.exists()


def test_a_file_at_the_wrong_size_is_not_the_moved_one(tmp_path):
    m, e, dup, src, dst = _setup(tmp_path)
    dst.parent.mkdir(parents=True)
    dst.write_bytes(b"short")
    src.unlink()
    kind, reason = transfer.move_out(m, e, dup)
    assert kind == "failed" and "is not the file that was moved there" in reason


def test_changed_and_missing_files_are_skipped(tmp_path):
    m, e, dup, src, dst = _setup(tmp_path)
    src.write_bytes(b"changed, and longer")
    assert transfer.move_out(m, e, dup) == ("skipped", "changed since the move was planned")
    src.unlink()
    kind, reason = transfer.move_out(m, e, dup)
    assert kind == "skipped" and "file not found" in reason
    kind, reason = transfer.bring_back(m, e, dup)
    assert kind == "skipped" and reason.startswith("missing: neither")
    dst.parent.mkdir(parents=True)
    dst.write_bytes(b"edited in the duplicates folder")
    kind, reason = transfer.bring_back(m, e, dup)
    assert kind == "skipped" and "checksum differs" in reason and not src.exists()


def test_a_file_never_moved_is_not_brought_back(tmp_path):
    m, e, dup, src, dst = _setup(tmp_path)
    assert transfer.bring_back(m, e, dup) == ("skipped", "was not moved")
    assert src.exists()


def test_links_are_not_moved(tmp_path):
    m, e, dup, src, dst = _setup(tmp_path)
    target = tmp_path / "outside.jpg"
    target.write_bytes(src.read_bytes())
    src.unlink()
    os.symlink(target, src)
    assert transfer.move_out(m, e, dup) == ("skipped", "no longer a regular file")
    dst.parent.mkdir(parents=True)
    os.symlink(target, dst)
    src.unlink()
    kind, reason = transfer.bring_back(m, e, dup)
    assert kind == "skipped" and "is not a regular file" in reason
    assert target.exists()


def test_paths_leaving_their_folder_are_refused(tmp_path):
    m, e, dup, src, dst = _setup(tmp_path)
    e.dst = "../escaped.jpg"
    kind, _ = transfer.move_out(m, e, dup)
    assert kind == "failed" and src.exists()
    kind, _ = transfer.bring_back(m, e, dup)
    assert kind == "skipped"
    assert not (tmp_path / "escaped.jpg").exists()


def test_leftover_temporary_copies_are_removed(tmp_path):
    m, e, dup, src, dst = _setup(tmp_path)
    dst.parent.mkdir(parents=True)
    tmp = fileops.temp_path(str(dst))
    with open(tmp, "wb") as f:
        f.write(b"half a co")
    assert transfer.move_out(m, e, dup) == ("moved", None)
    assert not os.path.exists(tmp)


def test_a_full_disk_stops_a_move_but_not_a_restore(tmp_path, monkeypatch):
    m, e, dup, src, dst = _setup(tmp_path)

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileops, "move_file", full)
    with pytest.raises(transfer.DiskFullError, match="is full"):
        transfer.move_out(m, e, dup)
    assert src.exists()
    monkeypatch.undo()
    transfer.move_out(m, e, dup)
    m.outcomes[e.n] = ("moved", None)
    monkeypatch.setattr(fileops, "move_file", full)
    kind, reason = transfer.bring_back(m, e, dup)
    assert kind == "skipped" and reason.startswith("cannot move back")
    assert dst.exists()


def test_a_file_already_there_is_never_overwritten(tmp_path, monkeypatch):
    m, e, dup, src, dst = _setup(tmp_path)

    def exists(*args):
        raise FileExistsError(errno.EEXIST, "File exists")

    monkeypatch.setattr(fileops, "move_file", exists)
    kind, reason = transfer.move_out(m, e, dup)
    assert kind == "failed" and "never overwritten" in reason


def test_is_file_with(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"x")
    sha = fileops.sha256_bytes(b"x")
    assert transfer.is_file_with(str(p), sha)
    assert not transfer.is_file_with(str(p), fileops.sha256_bytes(b"y"))
    assert not transfer.is_file_with(str(tmp_path / "missing"), sha)
    os.symlink(p, tmp_path / "link")
    assert not transfer.is_file_with(str(tmp_path / "link"), sha)
