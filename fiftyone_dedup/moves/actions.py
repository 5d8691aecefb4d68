"""The move and restore actions by their first module path.

The public API (``fiftyone_dedup.move_duplicates``, ...) and the App's
and command line's callers reach the moves here; each name lives in the
module of its concept (:mod:`~fiftyone_dedup.moves.move`,
:mod:`~fiftyone_dedup.moves.restore`, :mod:`~fiftyone_dedup.moves.manifest`,
:mod:`~fiftyone_dedup.moves.results`, :mod:`~fiftyone_dedup.moves.arguments`,
:mod:`~fiftyone_dedup.moves.transfer`, :mod:`~fiftyone_dedup.moves.trust`).
"""

from fiftyone_dedup.moves.arguments import check_dir_arg
from fiftyone_dedup.moves.model import LABELS, ON_SAMPLES
from fiftyone_dedup.moves.move import DEFAULT_DUPLICATES_DIR, DEFAULT_MOVED_TAG, move_duplicates
from fiftyone_dedup.moves.restore import list_moves, restore, resume_moves
from fiftyone_dedup.moves.results import MoveResult, RestoreResult
from fiftyone_dedup.moves.transfer import DiskFullError
from fiftyone_dedup.moves.trust import INFO_KEY

__all__ = [
    "DEFAULT_DUPLICATES_DIR",
    "DEFAULT_MOVED_TAG",
    "DiskFullError",
    "INFO_KEY",
    "LABELS",
    "MoveResult",
    "ON_SAMPLES",
    "RestoreResult",
    "check_dir_arg",
    "list_moves",
    "move_duplicates",
    "restore",
    "resume_moves",
]
