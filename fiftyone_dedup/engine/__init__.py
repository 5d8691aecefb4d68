"""The FiftyOne-aware engine: encodings as sample fields, finding duplicates,
run records and their views, review decisions, and folders as datasets.

It knows nothing of the App or the command line; both call it.
"""

# zoo names and FiftyOne models for algorithms.models (registered on import)
from fiftyone_dedup.engine import zoo  # noqa: E402, F401
