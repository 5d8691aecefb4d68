"""The plugin's operators and panel, and :func:`register`, which
``fiftyone_dedup/plugin.py`` (the plugin's entry point) hands to FiftyOne.

Each operator's name is listed under ``operators:`` in ``fiftyone.yml``
(FiftyOne drops one that is not); its URI is
``@fiftyone_dedup/dedup/<name>``. The operators live by family:
:mod:`~fiftyone_dedup.app.encode_ops`, :mod:`~fiftyone_dedup.app.find_ops`,
:mod:`~fiftyone_dedup.app.run_ops` and :mod:`~fiftyone_dedup.app.move_ops`,
the long-running ones on :class:`fiftyone_dedup.app.base.RunOperator`.
From Python, call an operator like a function: it runs through
``foo.execute_operator`` and returns the run's summary.
"""

from fiftyone_dedup.app.base import PLUGIN_NAME
from fiftyone_dedup.app.encode_ops import ComputeEmbeddings, ComputeHashes
from fiftyone_dedup.app.find_ops import FindCrossDuplicates, FindDuplicates
from fiftyone_dedup.app.move_ops import MoveDuplicates, RestoreDuplicates
from fiftyone_dedup.app.run_ops import ClearDuplicates, ShowDistanceHistogram, ShowDuplicates

__all__ = ["PLUGIN_NAME", "OPERATORS", "register"]

#: the plugin's operator classes, in the operator browser's order
OPERATORS = (
    ComputeHashes,
    ComputeEmbeddings,
    FindDuplicates,
    FindCrossDuplicates,
    ShowDuplicates,
    ShowDistanceHistogram,
    ClearDuplicates,
    MoveDuplicates,
    RestoreDuplicates,
)


def register(p):
    """Registers the plugin's operators and its review panel.

    Args:
        p: the ``PluginContext``
    """
    from fiftyone_dedup.app.review_panel import ReviewPanel

    for cls in OPERATORS:
        p.register(cls)
    p.register(ReviewPanel)
