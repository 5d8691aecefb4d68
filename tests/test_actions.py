"""The move and restore actions by their first module path: every name the
public API, the App and the command line reach there is the one of its
home module."""

import fiftyone_dedup
from fiftyone_dedup.moves import actions
from fiftyone_dedup.moves import arguments
from fiftyone_dedup.moves import model
from fiftyone_dedup.moves import move
from fiftyone_dedup.moves import restore
from fiftyone_dedup.moves import results
from fiftyone_dedup.moves import transfer
from fiftyone_dedup.moves import trust


def test_the_old_names_are_the_new_homes():
    assert actions.move_duplicates is move.move_duplicates
    assert actions.restore is restore.restore
    assert actions.resume_moves is restore.resume_moves
    assert actions.list_moves is restore.list_moves
    assert actions.MoveResult is results.MoveResult
    assert actions.RestoreResult is results.RestoreResult
    assert actions.check_dir_arg is arguments.check_dir_arg
    assert actions.DiskFullError is transfer.DiskFullError
    assert actions.INFO_KEY == trust.INFO_KEY == "fiftyone_dedup_moves"
    assert actions.LABELS == model.LABELS and actions.ON_SAMPLES == model.ON_SAMPLES
    assert actions.DEFAULT_MOVED_TAG == "moved" and actions.DEFAULT_DUPLICATES_DIR == "duplicates"
    for name in actions.__all__:
        assert getattr(actions, name) is not None


def test_the_public_api_reaches_the_same_functions():
    for name in ("move_duplicates", "restore", "resume_moves", "list_moves", "MoveResult",
                 "RestoreResult"):
        assert getattr(fiftyone_dedup, name) is getattr(actions, name)
