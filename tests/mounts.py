"""Real file-system faults for tests: a small tmpfs (another file system,
which fills up: real ``ENOSPC``) and read-only bind mounts (real
``EROFS``). Mounting needs root (or ``CAP_SYS_ADMIN``); tests that need it
are skipped elsewhere with the reason.
"""

import contextlib
import os
import subprocess
import tempfile

import pytest


def _run(*args):
    return subprocess.run(list(args), capture_output=True, text=True)


def _probe():
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "mounting needs root"
    d = tempfile.mkdtemp(prefix="fod-mount-probe-")
    try:
        out = _run("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d)
        if out.returncode != 0:
            return f"cannot mount a tmpfs: {out.stderr.strip()}"
        _run("umount", d)
        return None
    finally:
        os.rmdir(d)


_REASON = _probe()

#: skips a test that needs to mount file systems
needs_mount = pytest.mark.skipif(_REASON is not None, reason=f"{_REASON}")


@contextlib.contextmanager
def tmpfs(path, size="1m"):
    """Mounts a tmpfs of ``size`` on ``path`` (created) for the block."""
    os.makedirs(path, exist_ok=True)
    out = _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path)
    assert out.returncode == 0, out.stderr
    try:
        yield path
    finally:
        _run("umount", "-l", path)


@contextlib.contextmanager
def read_only(path):
    """Makes a folder read-only for the block: a read-only bind mount as
    root (which ignores permissions), else ``chmod``."""
    if os.geteuid() != 0:
        mode = os.stat(path).st_mode
        os.chmod(path, 0o555)
        try:
            yield path
        finally:
            os.chmod(path, mode)
        return
    out = _run("mount", "--bind", path, path)
    assert out.returncode == 0, out.stderr
    try:
        out = _run("mount", "-o", "remount,ro,bind", path)
        assert out.returncode == 0, out.stderr
        yield path
    finally:
        _run("umount", "-l", path)


def other_filesystem_dir(tmp_path):
    """A folder on another file system than ``tmp_path``, or None.

    A small tmpfs is mounted when possible (the caller unmounts it through
    the returned context); ``/dev/shm`` is used otherwise.
    """
    shm = "/dev/shm"
    if (
        os.path.isdir(shm) and os.access(shm, os.W_OK)
        and os.stat(shm).st_dev != os.stat(tmp_path).st_dev
    ):
        return tempfile.mkdtemp(prefix="fod-otherfs-", dir=shm)
    return None
