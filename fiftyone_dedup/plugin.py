"""The plugin's Python entry point (``py_entry`` in ``fiftyone.yml``).

FiftyOne loads this file by path under a module name of its own, so the
engine is imported by its absolute name: run records then store class paths
(``fiftyone_dedup.engine.runs.*``) that any fresh process can import. When the
plugin was copied into a plugins directory without ``pip install``, the
repository root is put on ``sys.path`` so the same absolute imports work.
"""

import os
import sys

try:
    import fiftyone_dedup  # noqa: F401
except ImportError:  # pragma: no cover - plugin copied, not installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fiftyone_dedup.app.operators import register  # noqa: E402,F401
