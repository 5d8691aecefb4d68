"""The command line, ``fiftyone-dedup``: the flags of ``remove_duplicates.py``
over the same engine, plus the built-in demo, the report and the gallery.

Flag names live in this package only.
"""


def main(argv=None):
    """Runs the command line (the ``fiftyone-dedup`` console script)."""
    from fiftyone_dedup.cli.commands import main as _main

    return _main(argv)
