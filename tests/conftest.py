"""Test session set-up: a dedicated MongoDB, and the plugin on FiftyOne's path.

A ``mongod`` of our own is started on a free loopback port before FiftyOne
is imported, and every process the tests start (CLI runs, fresh Python
processes, delegated workers, the App) reaches it through
``FIFTYONE_DATABASE_URI``. FiftyOne's shared auto-started database is never
touched. The plugins directory holds a link to this repository, which is the
plugin.
"""

import os
import shutil
import sys
import tempfile

import pytest

import dbserver

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SESSION_DIR = tempfile.mkdtemp(prefix="fiftyone-dedup-tests-")
_SERVER = None


def _setup_environment():
    global _SERVER
    _SERVER = dbserver.start(os.path.join(_SESSION_DIR, "mongo"), stop_at_exit=False)
    plugins = os.path.join(_SESSION_DIR, "plugins")
    os.makedirs(plugins)
    os.symlink(REPO, os.path.join(plugins, "fiftyone_dedup"))
    env = {
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


_setup_environment()


def pytest_unconfigure(config):
    _SERVER.stop(remove=False)
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


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
