"""The engine's former single module, now only its old names (temporary).

Everything moved to modules of one concept each (see
:mod:`fiftyone_dedup.engine`); these aliases keep callers that still say
``core.<name>`` working until they are repointed, then this module goes.
"""

from fiftyone_dedup.engine.embedding_fields import (  # noqa: F401
    EMBEDDINGS_CHUNK_SIZE,
    compute_embeddings,
    plan_embeddings,
    stored_model,
)
from fiftyone_dedup.engine.encoding_pass import (  # noqa: F401
    EncodeReport,
    report_failures,
    stamp,
)
from fiftyone_dedup.engine.encodings import (  # noqa: F401
    compute_encodings,
    compute_hashes,
    encode_kwargs,
    get_failures,
    hash_settings,
    load_encodings,
)
from fiftyone_dedup.engine.field_names import (  # noqa: F401
    DEFAULT_RUN_KEY,
    DEFAULT_TAG,
    ROLE_DUPLICATE,
    ROLE_KEPT,
    error_field,
    output_fields,
    score_value,
    stamp_field,
    variants_field,
)
from fiftyone_dedup.engine.find import find_cross_duplicates, find_duplicates  # noqa: F401
from fiftyone_dedup.engine.runs import (  # noqa: F401
    delete_run,
    duplicates_view,
    get_groups,
    list_runs,
    load_run,
    require_run,
)
from fiftyone_dedup.engine.samples import (  # noqa: F401
    check_collection,
    check_run_key_free,
    count_samples,
    ensure_field,
    validate_field_name,
    validate_run_key,
)
