"""Locks: exclusive, naming their holder, released when the holder dies,
and the locks of a duplicates folder, a dataset and a dataset folder."""

import os
import subprocess
import sys
import time

import pytest

from fiftyone_dedup.moves import locks


def test_a_lock_is_exclusive_and_names_its_holder(tmp_path):
    path = str(tmp_path / "lock")
    first = locks.FileLock(path, "the duplicates folder X").acquire()
    with pytest.raises(locks.LockError) as err:
        locks.FileLock(path, "the duplicates folder X").acquire()
    msg = str(err.value)
    assert "the duplicates folder X" in msg and f"pid {os.getpid()}" in msg and "wait" in msg
    first.release()
    locks.FileLock(path, "X").acquire().release()


def test_a_killed_holder_releases_its_lock(tmp_path):
    path = str(tmp_path / "lock")
    code = (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from fiftyone_dedup.moves import locks\n"
        "locks.FileLock(%r, 'x').acquire(); print('held', flush=True); time.sleep(60)\n"
    ) % (os.path.dirname(os.path.dirname(os.path.abspath(__file__))), path)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(locks.LockError):
            locks.FileLock(path, "x").acquire()
    finally:
        proc.kill()
        proc.wait()
    deadline = time.time() + 5
    while True:
        try:
            locks.FileLock(path, "x").acquire().release()
            break
        except locks.LockError:
            assert time.time() < deadline
            time.sleep(0.05)


def test_the_locks_of_a_move(tmp_path):
    dup = str(tmp_path / "dups")
    os.makedirs(os.path.join(dup, ".fiftyone_dedup"))
    lock = locks.duplicates_dir_lock(dup)
    assert lock.path == os.path.join(dup, ".fiftyone_dedup", "lock")
    with locks.hold([lock, locks.folder_lock(str(tmp_path))]):
        with pytest.raises(locks.LockError, match="the duplicates folder"):
            locks.duplicates_dir_lock(dup).acquire()
        with pytest.raises(locks.LockError, match="the folder"):
            locks.folder_lock(str(tmp_path) + "/").acquire()  # the same folder
    locks.duplicates_dir_lock(dup).acquire().release()


def test_a_dataset_lock_is_keyed_by_the_dataset_id():
    class Doc:
        id = "0123456789abcdef01234567"

    class Dataset:
        name = "ds"
        _doc = Doc()

    a, b = locks.dataset_lock(Dataset()), locks.dataset_lock(Dataset())
    assert a.path == b.path and os.path.dirname(a.path) == locks.locks_dir()
    with locks.hold([a]):
        with pytest.raises(locks.LockError, match="dataset 'ds'"):
            b.acquire()
