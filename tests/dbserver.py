"""A private MongoDB for FiftyOne: one ``mongod`` per test session or
benchmark run, on a free loopback port, so FiftyOne's shared auto-started
database is never touched. Import and call :func:`start` before FiftyOne is
imported.
"""

import atexit
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mongod_binary():
    """The ``mongod`` that FiftyOne installed (or one on the PATH)."""
    spec = importlib.util.find_spec("fiftyone")
    if spec is None:
        raise RuntimeError("FiftyOne is not installed")
    path = os.path.join(spec.submodule_search_locations[0], "db", "bin", "mongod")
    if os.path.isfile(path):
        return path
    found = shutil.which("mongod")
    if not found:
        raise RuntimeError(
            f"No mongod at {path}; run scripts/bootstrap.sh, which installs "
            "FiftyOne's database"
        )
    return found


class Server:
    """A running private ``mongod``.

    Attributes:
        workdir: its temporary folder (database files and log)
        uri: the ``mongodb://`` URI
    """

    def __init__(self, workdir=None):
        self.workdir = workdir or tempfile.mkdtemp(prefix="fiftyone-dedup-db-")
        self._dbpath = os.path.join(self.workdir, "db")
        os.makedirs(self._dbpath, exist_ok=True)
        self.port = _free_port()
        self._pidfile = os.path.join(self.workdir, "mongod.pid")
        self.start()
        self.uri = f"mongodb://127.0.0.1:{self.port}"

    def start(self):
        """Starts (or restarts, after :meth:`kill`) ``mongod`` on the same
        files and port."""
        subprocess.run(
            [
                mongod_binary(), "--dbpath", self._dbpath, "--port", str(self.port),
                "--bind_ip", "127.0.0.1", "--fork",
                "--logpath", os.path.join(self.workdir, "mongod.log"),
                "--logappend", "--pidfilepath", self._pidfile,
            ],
            check=True, stdout=subprocess.DEVNULL,
        )
        deadline = time.time() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError(f"mongod did not start; see {self.workdir}")
                time.sleep(0.2)

    def _pid(self):
        with open(self._pidfile) as f:
            return int(f.read().strip())

    def kill(self):
        """Kills ``mongod`` at once (SIGKILL), as a crash or a lost
        connection would leave it."""
        pid = self._pid()
        os.kill(pid, 9)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except OSError:
                return
            time.sleep(0.05)

    def stop(self, remove=True):
        """Stops the server and (by default) deletes its folder."""
        try:
            pid = self._pid()
            os.kill(pid, 15)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)
        except (OSError, ValueError):
            pass
        if remove:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start(workdir=None, stop_at_exit=True):
    """Starts a private server and points FiftyOne at it.

    Args:
        workdir (None): a folder for it; a new temporary one by default
        stop_at_exit (True): stop it when this process exits

    Returns:
        a :class:`Server`
    """
    if "fiftyone" in sys.modules:
        raise RuntimeError("FiftyOne was imported before the database was chosen")
    server = Server(workdir)
    os.environ["FIFTYONE_DATABASE_URI"] = server.uri
    os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"
    os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
    if stop_at_exit:
        atexit.register(server.stop)
    return server
