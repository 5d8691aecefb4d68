"""Running the heavy steps on a Ray cluster (``executor="ray"``).

Everything Ray-specific lives here and is imported only when a run asks for
Ray; the local path never imports it. Ray is an optional extra
(``pip install fiftyone-dedup[ray]``).

Encoding: the driver streams sample ids, filepaths and the stored stamps
from MongoDB in chunks and hands each chunk to a Ray task (hashes) or to a
pool of Ray actors that keep the model loaded (CNN; on GPUs when the
cluster has them). Each worker decodes and encodes with the same functions
as the local path, then writes its chunk's encodings, errors and stamps to
MongoDB itself, in one bulk write by sample id. A chunk is written whole or
not at all, so an interrupted run keeps the chunks it finished and a rerun
skips them (their stamps match). Workers must reach the same database
(``FIFTYONE_DATABASE_URI``) and see the images at the same paths (a shared
file system). Ray retries a chunk whose worker died; writes by sample id
make the retry harmless. Nothing is ever moved by a worker.

The encoding is :mod:`fiftyone_dedup.engine.ray_encode`; the search
:mod:`fiftyone_dedup.engine.ray_search`. This module connects to Ray.

Search: the upper triangle of the pair matrix is cut into tiles (cross
searches: query x reference tiles), each tile a Ray task running the local
search, so the pairs are exactly the local ones. The pair list comes back
to the driver, where grouping, keep policies and the chain guard run as in
a local run.
"""

import atexit
import logging
import os

from fiftyone_dedup.options import EXECUTORS, validate_executor  # noqa: F401 - read here

logger = logging.getLogger(__name__)

#: retries of a chunk or tile whose worker died
MAX_RETRIES = 3

MISSING_RAY = (
    "executor='ray' needs Ray, which is not installed; "
    "pip install fiftyone-dedup[ray]"
)

_STARTED_HERE = False


def _ray():
    try:
        import ray
    except ImportError:
        raise ImportError(MISSING_RAY) from None
    return ray


def connect(ray_address=None):
    """Connects this process to Ray, once.

    Args:
        ray_address (None): the cluster's address (``"host:port"`` or
            ``"ray://..."``); else ``RAY_ADDRESS``; else a local Ray is
            started for this process on 127.0.0.1 (and stopped at exit)

    Returns:
        the ``ray`` module, connected
    """
    global _STARTED_HERE
    ray = _ray()
    if ray.is_initialized():
        return ray
    address = ray_address or os.environ.get("RAY_ADDRESS") or None
    env = {
        k: v
        for k, v in os.environ.items()
        if k.startswith("FIFTYONE_") or k in ("PYTHONPATH", "ORT_DISABLE_TELEMETRY")
    }
    env.update(_database_env())
    kwargs = dict(
        runtime_env={"env_vars": env},
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    if address:
        logger.info("Connecting to Ray at %s", address)
        ray.init(address=address, **kwargs)
    else:
        logger.info("Starting a local Ray for this run (127.0.0.1)")
        ray.init(
            _node_ip_address="127.0.0.1", include_dashboard=False, **kwargs
        )
        _STARTED_HERE = True
        atexit.register(ray.shutdown)
    return ray


def _database_env():
    # the database the driver uses, for workers to reach the same one
    uri = _database_uri()
    return {"FIFTYONE_DATABASE_URI": uri} if uri else {}


def _database_uri():
    import fiftyone as fo
    import fiftyone.core.odm.database as fod

    if fo.config.database_uri:
        return fo.config.database_uri
    host, port = fod.get_db_client().address
    return f"mongodb://{host}:{port}"


def collection_info(samples):
    """Where a collection's samples are, for workers writing to them.

    Args:
        samples: a FiftyOne dataset or view

    Returns:
        a tuple ``(database URI, database name, sample collection name)``
    """
    import fiftyone as fo

    return (
        _database_uri(),
        fo.config.database_name,
        samples._root_dataset._sample_collection_name,
    )
