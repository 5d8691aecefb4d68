"""Test session set-up: a dedicated MongoDB, and the plugin on FiftyOne's path.

A ``mongod`` of our own is started on a free loopback port before FiftyOne
is imported, and every process the tests start (CLI runs, fresh Python
processes, delegated workers, the App) reaches it through
``FIFTYONE_DATABASE_URI``. FiftyOne's shared auto-started database is never
touched. The plugins directory holds a link to this repository, which is the
plugin.
"""

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.dirname(os.path.abspath(__file__))

_SESSION_DIR = tempfile.mkdtemp(prefix="fiftyone-dedup-tests-")


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mongod_binary():
    spec = importlib.util.find_spec("fiftyone")
    if spec is None:
        raise RuntimeError("FiftyOne is not installed")
    path = os.path.join(spec.submodule_search_locations[0], "db", "bin", "mongod")
    if not os.path.isfile(path):
        found = shutil.which("mongod")
        if not found:
            raise RuntimeError(
                f"No mongod at {path}; run scripts/bootstrap.sh, which "
                "installs FiftyOne's database"
            )
        path = found
    return path


def _start_mongod():
    dbpath = os.path.join(_SESSION_DIR, "db")
    os.makedirs(dbpath)
    port = _free_port()
    cmd = [
        _mongod_binary(), "--dbpath", dbpath, "--port", str(port),
        "--bind_ip", "127.0.0.1", "--fork", "--logpath",
        os.path.join(_SESSION_DIR, "mongod.log"),
        "--pidfilepath", os.path.join(_SESSION_DIR, "mongod.pid"),
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return port
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("mongod did not start; see " + _SESSION_DIR)


def _stop_mongod():
    pidfile = os.path.join(_SESSION_DIR, "mongod.pid")
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
        os.kill(pid, 15)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)
    except (OSError, ValueError):
        pass
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


def _setup_environment():
    port = _start_mongod()
    plugins = os.path.join(_SESSION_DIR, "plugins")
    os.makedirs(plugins)
    os.symlink(REPO, os.path.join(plugins, "fiftyone_dedup"))
    env = {
        "FIFTYONE_DATABASE_URI": f"mongodb://127.0.0.1:{port}",
        "FIFTYONE_DATABASE_VALIDATION": "false",
        "FIFTYONE_DO_NOT_TRACK": "true",
        "FIFTYONE_PLUGINS_DIR": plugins,
        "FIFTYONE_SHOW_PROGRESS_BARS": "false",
        "FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS": "true",
        "FIFTYONE_DEFAULT_DATASET_DIR": os.path.join(_SESSION_DIR, "fiftyone"),
        "FIFTYONE_MODEL_ZOO_DIR": os.path.join(_SESSION_DIR, "zoo-models"),
    }
    os.environ.update(env)
    # the package under test, for subprocesses too
    os.environ["PYTHONPATH"] = REPO + os.pathsep + os.environ.get("PYTHONPATH", "")
    if REPO not in sys.path:
        sys.path.insert(0, REPO)


if "fiftyone" in sys.modules:  # pragma: no cover - guards the database choice
    raise RuntimeError("FiftyOne was imported before the test database was set")

_setup_environment()


def pytest_unconfigure(config):
    _stop_mongod()


@pytest.fixture(scope="session")
def session_dir():
    """A temporary folder that lives for the test session."""
    return _SESSION_DIR


@pytest.fixture
def fresh_dataset():
    """A new, empty, non-persistent dataset; deleted after the test."""
    import fiftyone as fo

    ds = fo.Dataset()
    yield ds
    if fo.dataset_exists(ds.name):
        ds.delete()
