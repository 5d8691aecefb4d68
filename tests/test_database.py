"""The dataset side of a move: a database lost mid-move, finished by a
rerun (a private mongod killed)."""

import json
import os
import subprocess
import sys
import time

from fiftyone_dedup.moves import restore
from fiftyone_dedup.moves import manifest as mf

import labeled


def _start_mongod(dbpath, port):
    from dbserver import mongod_binary

    os.makedirs(dbpath, exist_ok=True)
    subprocess.run(
        [
            mongod_binary(),
            "--dbpath",
            dbpath,
            "--port",
            str(port),
            "--bind_ip",
            "127.0.0.1",
            "--fork",
            "--logpath",
            os.path.join(dbpath, "log"),
            "--pidfilepath",
            os.path.join(dbpath, "pid"),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.time() + 30
    import socket

    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return int(open(os.path.join(dbpath, "pid")).read())
        except OSError:
            assert time.time() < deadline, "mongod did not start"
            time.sleep(0.2)



_DB_LOST = r"""
import os, signal, sys
from fiftyone_dedup.moves import move
from fiftyone_dedup.moves import restore
from fiftyone_dedup.moves import database
from fiftyone_dedup.engine import find
from fiftyone_dedup.engine import folders
mode, root, dup, pidfile = sys.argv[1:5]
if mode == "setup":
    ds = folders.load_folders([root], name="dblost", data_dir=True)[0]
    find.find_duplicates(ds, threshold=10, num_workers=0)
    sys.exit(0)
import fiftyone as fo
ds = fo.load_dataset("dblost")
if mode == "kill":
    real = database.update_samples
    def lose_db(*args):
        os.kill(int(open(pidfile).read()), signal.SIGKILL)  # the database dies
        return real(*args)
    database.update_samples = lose_db
r = move.move_duplicates(ds, dup)
print("moved", r.num_moved, len(r.resumed), len(ds.match_tags("moved")))
"""



def test_database_lost_mid_move_is_finished_by_a_rerun(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dbpath = str(tmp_path / "db")
    _start_mongod(dbpath, port)
    env = dict(os.environ, FIFTYONE_DATABASE_URI=f"mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=3000")
    root = str(tmp_path / "coco")
    labeled.make_labeled_folder(root, "coco")
    tree0 = labeled.tree(root)
    dup = str(tmp_path / "dups")
    pidfile = os.path.join(dbpath, "pid")

    def run(mode):
        return subprocess.run(
            [sys.executable, "-c", _DB_LOST, mode, root, dup, pidfile],
            capture_output=True, text=True, env=env, timeout=300,
        )

    try:
        assert run("setup").returncode == 0
        out = run("kill")
        assert out.returncode != 0
        assert (
            "The database could not be updated" in out.stderr
            and "run the same command again" in out.stderr
        )
        # files and annotations moved, the database not yet: a rerun repairs it
        m = mf.read_manifest(mf.list_manifests(dup)[0])
        assert m.state == "moving" and "annotations" in m.phases and "database" not in m.phases
        assert len(json.loads(open(os.path.join(root, "labels.json")).read())["images"]) == 4
        _start_mongod(dbpath, port)
        out = run("move")
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["moved", "0", "1", "2"]
        assert restore.list_moves(dup)[0]["state"] == "moved"
    finally:
        try:
            os.kill(int(open(pidfile).read()), 9)
        except (OSError, ValueError):
            pass
    assert len(labeled.tree(root)) == len(tree0) - 2

