"""FiftyOne's database, connected before any work of the command line."""

import logging
import os

logger = logging.getLogger("fiftyone_dedup")


DATABASE_EXTRA_WAIT = 240


class DatabaseStartError(RuntimeError):
    """FiftyOne's embedded database did not start; the message says what to do."""


def connect_database():
    """Connects to FiftyOne's database before any work, giving its embedded
    ``mongod`` the time a busy machine needs: FiftyOne gives up after 60 s
    (``ServiceListenTimeout``), and has no setting for that."""
    import fiftyone.core.odm.database as food
    import fiftyone.core.service as fos

    try:
        food.get_db_conn()
        return
    except fos.ServiceListenTimeout:
        pass
    service = getattr(food, "_db_service", None)
    logger.warning(
        "FiftyOne's database (mongod) is slow to start, the machine is busy; "
        "waiting up to %d s more", DATABASE_EXTRA_WAIT,
    )
    try:
        port = service._wait_for_child_port(timeout=DATABASE_EXTRA_WAIT)
    except Exception:  # noqa: BLE001 - timed out, or FiftyOne changed inside
        raise DatabaseStartError(
            "FiftyOne's database (mongod) did not start within "
            f"{60 + DATABASE_EXTRA_WAIT} s; run the command again when the "
            "machine is less busy, or start a mongod yourself and set "
            "FIFTYONE_DATABASE_URI=mongodb://127.0.0.1:PORT"
        ) from None
    os.environ["FIFTYONE_PRIVATE_DATABASE_PORT"] = str(port)
    food.get_db_conn()
