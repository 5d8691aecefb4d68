"""The command line, ``fiftyone-dedup``: the flags of ``remove_duplicates.py``
over the same engine, plus the built-in demo, the report and the gallery.

Flag names live in this package only.
"""

from fiftyone_dedup.cli.commands import main

__all__ = ["main"]
