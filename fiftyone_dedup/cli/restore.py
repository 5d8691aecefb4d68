"""``fiftyone-dedup restore``: undo moves of duplicates."""

import logging
import os

from fiftyone_dedup.cli.database import connect_database
from fiftyone_dedup.cli.flags import flag_for
from fiftyone_dedup.cli.parser import UsageError


def run_restore(args):
    """Runs ``fiftyone-dedup restore`` on parsed arguments.

    Returns:
        the :class:`fiftyone_dedup.moves.results.RestoreResult`
    """
    dup = os.path.abspath(os.path.expanduser(args.duplicates_dir))
    if not os.path.isdir(dup):
        raise UsageError(f"Duplicates folder not found: {dup}")
    if args.move_id is not None:
        _check_move_id(dup, args.move_id)
    from fiftyone_dedup.moves import restore

    if not args.verbose:
        logging.getLogger("fiftyone").setLevel(logging.WARNING)
    connect_database()
    result = restore.restore(
        dup,
        move_id=args.move_id,
        dataset_name=args.dataset,
        trusted_roots=args.trust_root,
        dry_run=args.dry_run,
        progress=False if args.quiet else True,
    )
    print(_flags_named(result.format()))
    errors = [m for m in result.moves if m.get("error")]
    if errors and not result.num_restored:
        raise ValueError(_flags_named(errors[0]["error"]))
    return result


def _flags_named(text):
    # the engine names its parameter; here it is a flag
    return text.replace("trusted_roots", flag_for("trusted_roots"))


def _check_move_id(dup, move_id):
    from fiftyone_dedup.moves import manifest

    names = [os.path.basename(p) for p in manifest.list_manifests(dup)]
    ids = [n[len(manifest.PREFIX):-len(manifest.SUFFIX)] for n in names]
    if move_id in ids:
        return
    listed = ", ".join(ids[-10:]) + (f" and {len(ids) - 10} older" if len(ids) > 10 else "")
    there = f"the moves there: {listed}" if ids else "there are no moves there"
    raise UsageError(f"--move_id {move_id!r}: no such move in {dup}; {there}")
