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
    "compute_hashes": "fiftyone_dedup.engine.encodings",
    "compute_embeddings": "fiftyone_dedup.engine.embedding_fields",
    "compute_encodings": "fiftyone_dedup.engine.encodings",
    "find_duplicates": "fiftyone_dedup.engine.find",
    "find_cross_duplicates": "fiftyone_dedup.engine.find",
    "duplicates_view": "fiftyone_dedup.engine.runs",
    "get_groups": "fiftyone_dedup.engine.runs",
    "get_failures": "fiftyone_dedup.engine.encodings",
    "list_runs": "fiftyone_dedup.engine.runs",
    "load_run": "fiftyone_dedup.engine.runs",
    "delete_run": "fiftyone_dedup.engine.runs",
    "EncodeReport": "fiftyone_dedup.engine.encoding_pass",
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
    "load_model": "fiftyone_dedup.engine.zoo",
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
