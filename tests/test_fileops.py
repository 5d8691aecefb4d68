"""Safe file operations and locks, on real files and file systems."""

import errno
import os
import shutil

import pytest

from fiftyone_dedup.moves import fileops

import mounts


def _write(path, data=b"x" * 100):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


@pytest.fixture
def other_fs(tmp_path):
    d = mounts.other_filesystem_dir(tmp_path)
    if d is None:
        pytest.skip("no second file system (/dev/shm) here")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_rename_noreplace_never_overwrites(tmp_path):
    a = _write(str(tmp_path / "a"), b"mine")
    b = _write(str(tmp_path / "b"), b"theirs")
    with pytest.raises(FileExistsError):
        fileops.rename_noreplace(a, b)
    assert open(a, "rb").read() == b"mine" and open(b, "rb").read() == b"theirs"
    fileops.rename_noreplace(a, str(tmp_path / "c"))
    assert not os.path.exists(a) and open(tmp_path / "c", "rb").read() == b"mine"


def test_move_on_one_file_system_is_a_rename(tmp_path):
    src = _write(str(tmp_path / "s" / "f.jpg"), os.urandom(5000))
    sha, st = fileops.sha256_file(src), os.stat(src)
    dst = str(tmp_path / "d" / "f.jpg")
    os.makedirs(os.path.dirname(dst))
    assert fileops.move_file(src, dst, sha) == "renamed"
    assert not os.path.exists(src) and fileops.sha256_file(dst) == sha
    assert os.stat(dst).st_ino == st.st_ino


def test_move_across_file_systems_copies_verifies_then_removes(tmp_path, other_fs):
    src = _write(str(tmp_path / "f.jpg"), os.urandom(300_000))
    sha, mtime = fileops.sha256_file(src), os.stat(src).st_mtime_ns
    dst = os.path.join(other_fs, "f.jpg")
    assert fileops.move_file(src, dst, sha) == "copied"
    assert not os.path.exists(src) and fileops.sha256_file(dst) == sha
    assert os.stat(dst).st_mtime_ns == mtime  # times kept: encodings stay valid
    assert os.listdir(other_fs) == ["f.jpg"]  # no temporary left


def test_a_copy_of_a_changed_file_is_refused_and_removed(tmp_path, other_fs):
    src = _write(str(tmp_path / "f.jpg"), b"changed content")
    dst = os.path.join(other_fs, "f.jpg")
    with pytest.raises(fileops.FileChangedError):
        fileops.move_file(src, dst, "0" * 64)
    assert os.path.exists(src) and os.listdir(other_fs) == []


def test_move_never_overwrites_across_file_systems(tmp_path, other_fs):
    src = _write(str(tmp_path / "f.jpg"), b"new")
    dst = _write(os.path.join(other_fs, "f.jpg"), b"existing")
    with pytest.raises(FileExistsError):
        fileops.move_file(src, dst, fileops.sha256_file(src))
    assert open(src, "rb").read() == b"new" and open(dst, "rb").read() == b"existing"
    assert sorted(os.listdir(other_fs)) == ["f.jpg"]


@mounts.needs_mount
def test_full_disk_keeps_the_source_and_leaves_no_partial_copy(tmp_path):
    src = _write(str(tmp_path / "big.jpg"), os.urandom(400_000))
    sha = fileops.sha256_file(src)
    with mounts.tmpfs(str(tmp_path / "small"), size="128k") as small:
        dst = os.path.join(small, "big.jpg")
        with pytest.raises(OSError) as err:
            fileops.move_file(src, dst, sha)
        assert err.value.errno == errno.ENOSPC
        assert os.listdir(small) == []
    assert fileops.sha256_file(src) == sha


@mounts.needs_mount
def test_unremovable_source_takes_the_copy_back(tmp_path, other_fs):
    folder = str(tmp_path / "ro")
    src = _write(os.path.join(folder, "f.jpg"), b"data")
    sha = fileops.sha256_file(src)
    dst = os.path.join(other_fs, "f.jpg")
    with mounts.read_only(folder):
        with pytest.raises(OSError) as err:
            fileops.move_file(src, dst, sha)
        assert err.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
    assert fileops.sha256_file(src) == sha and not os.path.exists(dst)


def test_atomic_write(tmp_path):
    path = str(tmp_path / "labels.json")
    fileops.atomic_write(path, b"one")
    fileops.atomic_write(path, b"two", replace=True)
    assert open(path, "rb").read() == b"two"
    with pytest.raises(FileExistsError):
        fileops.atomic_write(path, b"three", replace=False)
    assert open(path, "rb").read() == b"two" and os.listdir(tmp_path) == ["labels.json"]


def test_paths_that_leave_their_folder_are_refused(tmp_path):
    base = tmp_path / "base"
    outside = tmp_path / "outside"
    (base / "ok").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, base / "escape")
    os.symlink(base / "ok", base / "inside_link")
    for rel in ("../x", "a/../../x", "/etc/passwd", "", ".", "a//b", "a/./b", "a\x00b"):
        with pytest.raises(fileops.UnsafePathError):
            fileops.join_inside(str(base), rel)
    with pytest.raises(fileops.UnsafePathError, match="symbolic link"):
        fileops.join_inside(str(base), "escape/x.jpg")
    assert fileops.join_inside(str(base), "inside_link/x.jpg") == str(
        base / "inside_link" / "x.jpg"
    )
    assert fileops.join_inside(str(base), "new/sub/x.jpg") == str(base / "new" / "sub" / "x.jpg")
    with pytest.raises(fileops.UnsafePathError):
        fileops.makedirs_inside(str(base), str(base / "escape" / "deeper"))
    assert not (outside / "deeper").exists()
    fileops.makedirs_inside(str(base), str(base / "a" / "b"))
    assert (base / "a" / "b").is_dir()
