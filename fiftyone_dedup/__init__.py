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
    "compute_hashes": "fiftyone_dedup.engine.core",
    "compute_embeddings": "fiftyone_dedup.engine.core",
    "compute_encodings": "fiftyone_dedup.engine.core",
    "find_duplicates": "fiftyone_dedup.engine.core",
    "find_cross_duplicates": "fiftyone_dedup.engine.core",
    "duplicates_view": "fiftyone_dedup.engine.core",
    "get_groups": "fiftyone_dedup.engine.core",
    "get_failures": "fiftyone_dedup.engine.core",
    "list_runs": "fiftyone_dedup.engine.core",
    "load_run": "fiftyone_dedup.engine.core",
    "delete_run": "fiftyone_dedup.engine.core",
    "EncodeReport": "fiftyone_dedup.engine.core",
    "move_duplicates": "fiftyone_dedup.moves.move",
    "restore": "fiftyone_dedup.moves.restore",
    "resume_moves": "fiftyone_dedup.moves.restore",
    "list_moves": "fiftyone_dedup.moves.restore",
    "MoveResult": "fiftyone_dedup.moves.results",
    "RestoreResult": "fiftyone_dedup.moves.results",
    "decide": "fiftyone_dedup.engine.decisions",
    "decide_all": "fiftyone_dedup.engine.decisions",
    "review_groups": "fiftyone_dedup.engine.decisions",
    "DedupRunConfig": "fiftyone_dedup.engine.runs",
    "DedupRunResults": "fiftyone_dedup.engine.runs",
    "get_encoder": "fiftyone_dedup.algorithms.encoders",
    "ENCODERS": "fiftyone_dedup.algorithms.encoders",
    "load_model": "fiftyone_dedup.algorithms.models",
    "ModelUnavailableError": "fiftyone_dedup.algorithms.models",
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
