"""Old import path of :mod:`fiftyone_dedup.engine.runs`, kept for run records.

Runs recorded before the layered layout store the class paths
``fiftyone_dedup.runs.DedupRunConfig`` and ``fiftyone_dedup.runs.DedupRunResults``
in the database; this name is the same module object, so they load.
"""

import sys

from fiftyone_dedup.engine import runs as _runs

sys.modules[__name__] = _runs
