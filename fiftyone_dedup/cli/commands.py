"""The ``fiftyone-dedup`` command line, over the same engine as the App.

Keeps the flags of ``remove_duplicates.py``, the script this grew from::

    fiftyone-dedup -d ~/dataset                       # CNN embeddings (offline model)
    fiftyone-dedup -d ~/images --no_data_dir --no_annot --encoder DHash
    fiftyone-dedup -r ~/dataset -d dir_1 dir_2 --report report.json
    fiftyone-dedup -d ~/dataset --dry_run
    fiftyone-dedup restore duplicates
    fiftyone-dedup demo

Arguments are checked before anything is imported or changed: a bad one
exits with status 2 and a one-line reason. FiftyOne is imported only after
that, so ``--help`` and mistakes answer at once.

This module picks the subcommand and turns errors into exit statuses; the
flags are in :mod:`~fiftyone_dedup.cli.parser`, the main command in
:mod:`~fiftyone_dedup.cli.find`, ``restore`` in
:mod:`~fiftyone_dedup.cli.restore` and ``demo`` in
:mod:`~fiftyone_dedup.cli.demo`.
"""

import logging
import os
import sys

from fiftyone_dedup.cli.flags import one_line
from fiftyone_dedup.cli.parser import PROG, UsageError

logger = logging.getLogger("fiftyone_dedup")



def _configure_logging(verbose):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    pkg = logging.getLogger("fiftyone_dedup")
    pkg.handlers[:] = [handler]
    pkg.setLevel(logging.DEBUG if verbose else logging.INFO)
    pkg.propagate = False


def _dispatch(argv):
    from fiftyone_dedup.cli import parser

    if argv and argv[0] == "demo":
        from fiftyone_dedup.cli import database
        from fiftyone_dedup.cli import demo

        args = parser.build_demo_parser().parse_args(argv[1:])
        _configure_logging(args.verbose)
        database.connect_database()
        demo.run(args)
    elif argv and argv[0] == "restore":
        from fiftyone_dedup.cli import restore

        args = parser.build_restore_parser().parse_args(argv[1:])
        _configure_logging(args.verbose)
        restore.run_restore(args)
    else:
        from fiftyone_dedup.cli import find

        args = parser.build_parser().parse_args(argv)
        _configure_logging(args.verbose)
        find.run(args)


def main(argv=None):
    """Entry point of ``fiftyone-dedup`` and ``python -m fiftyone_dedup``.

    Args:
        argv (None): the arguments; defaults to ``sys.argv[1:]``

    Returns:
        the exit status: 0 done, 1 failed, 2 bad arguments, 130 interrupted
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    try:
        _dispatch(argv)
        return 0
    except UsageError as e:
        print(f"{PROG}: error: {e} (see {PROG} --help)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - one line for the user
        from fiftyone_dedup.cli.database import DatabaseStartError
        from fiftyone_dedup.engine.errors import FolderError
        from fiftyone_dedup.moves.locks import LockError
        from fiftyone_dedup.moves.manifest import ManifestError

        if isinstance(e, (FolderError, ValueError, LockError, DatabaseStartError)):
            print(f"{PROG}: error: {one_line(e)}", file=sys.stderr)
            # a refused manifest is bad input too
            return 2 if isinstance(e, (FolderError, ManifestError)) else 1
        logger.debug("Failed", exc_info=True)
        print(f"{PROG}: failed: {type(e).__name__}: {one_line(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
