"""fiftyone_dedup: find, review and remove duplicate images in FiftyOne
datasets and plain folders.

Usage::

    import fiftyone_dedup as fod

    fod.compute_hashes(dataset)                  # DHash as a sample field
    results = fod.find_duplicates(dataset, threshold=10)
    fod.compute_embeddings(dataset)              # CNN embeddings (offline model)
    results = fod.find_duplicates(dataset, encoder="cnn", run_key="cnn")
    print(results.summary)
    session = fo.launch_app(results.view())
    fod.move_duplicates(dataset, "duplicates")  # undo: fod.restore("duplicates")

Attributes load lazily, so ``import fiftyone_dedup`` does not import
FiftyOne (worker processes that only decode images stay light). This module
never imports ``fiftyone.operators``.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "compute_hashes": "fiftyone_dedup.core",
    "compute_embeddings": "fiftyone_dedup.core",
    "compute_encodings": "fiftyone_dedup.core",
    "find_duplicates": "fiftyone_dedup.core",
    "find_cross_duplicates": "fiftyone_dedup.core",
    "duplicates_view": "fiftyone_dedup.core",
    "get_groups": "fiftyone_dedup.core",
    "get_failures": "fiftyone_dedup.core",
    "list_runs": "fiftyone_dedup.core",
    "load_run": "fiftyone_dedup.core",
    "delete_run": "fiftyone_dedup.core",
    "EncodeReport": "fiftyone_dedup.core",
    "move_duplicates": "fiftyone_dedup.actions",
    "restore": "fiftyone_dedup.actions",
    "resume_moves": "fiftyone_dedup.actions",
    "list_moves": "fiftyone_dedup.actions",
    "MoveResult": "fiftyone_dedup.actions",
    "RestoreResult": "fiftyone_dedup.actions",
    "decide": "fiftyone_dedup.decisions",
    "decide_all": "fiftyone_dedup.decisions",
    "review_groups": "fiftyone_dedup.decisions",
    "DedupRunConfig": "fiftyone_dedup.runs",
    "DedupRunResults": "fiftyone_dedup.runs",
    "get_encoder": "fiftyone_dedup.encoders",
    "ENCODERS": "fiftyone_dedup.encoders",
    "load_model": "fiftyone_dedup.models",
    "ModelUnavailableError": "fiftyone_dedup.models",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fiftyone_dedup' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
