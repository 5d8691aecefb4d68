"""Exact radius search over encodings, numpy/faiss (no FiftyOne).

Two kinds of encodings, one shape of answer: sparse pairs ``(i, j, d)``
within a threshold, never an N x N matrix (:mod:`.pairs`).

-   64-bit hashes (``uint64``): Hamming distance <= ``threshold``
    (:mod:`.hamming`; multi-index hashing for large spread-out sets,
    :mod:`.mih`).
-   embeddings (``float32``): cosine similarity >= ``threshold`` of
    L2-normalised vectors (:mod:`.cosine`, over the fast products of
    :mod:`.products`), exact on every machine.

Identical encodings are collapsed first (:mod:`.unique`). A query set can
be searched against a separate reference set, which is never compared with
itself (cross-dataset search); :mod:`.knn` keeps each query's nearest
references instead. Thresholds are checked by :mod:`.thresholds`.
"""

from fiftyone_dedup.algorithms.search.cosine import (  # noqa: F401
    COSINE_QUERY_BLOCK,
    cosine_cross,
    cosine_pairs,
    normalize,
)
from fiftyone_dedup.algorithms.search.hamming import (  # noqa: F401
    DEFAULT_BLOCK_SIZE,
    HAMMING_METHODS,
    hamming_cross,
    hamming_pairs,
)
from fiftyone_dedup.algorithms.search.knn import knn_pairs  # noqa: F401
from fiftyone_dedup.algorithms.search.products import (  # noqa: F401
    COSINE_KEY_BLOCK,
    INT8_KEY_BLOCK,
    NUMPY_MAX_WORK,
    SIMILARITY_METHODS,
    import_torch_soon,
    resolve_similarity_method,
)
from fiftyone_dedup.algorithms.search.thresholds import (  # noqa: F401
    validate_cosine_threshold,
    validate_hamming_threshold,
)
from fiftyone_dedup.algorithms.search.unique import unique_rows  # noqa: F401
