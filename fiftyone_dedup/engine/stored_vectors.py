"""Embedding vectors read from FiftyOne's stored form, fast.

FiftyOne stores a vector field as ``zlib(np.save(vector))`` bytes, and
turns each value back with ``np.load``, whose header parsing costs more
than the rest (50,000 vectors: about 6 s of an 8 s read). Here each stored
value is decompressed and read with ``np.frombuffer`` after the first
value with the same header has been parsed once: the same arrays,
about 2.5x faster. Anything else (lists, other layouts) is left to
FiftyOne's own conversion. :func:`load_vectors` reads a whole field this
way, chunk by chunk, into one array for a search.
"""

import io
import os
import zlib
from concurrent.futures import ThreadPoolExecutor

try:  # ISA-L's inflate: the same bytes, about 1.6x faster than zlib's
    from isal.isal_zlib import decompress as _inflate
    from isal.isal_zlib import error as _InflateError
except ImportError:  # pragma: no cover - isal is a dependency
    _inflate, _InflateError = zlib.decompress, zlib.error

import numpy as np

import fiftyone.core.utils as fou

from fiftyone_dedup.engine.samples import count_samples

_MAGIC = b"\x93NUMPY"


def read_values(samples, fields, vector_field):
    """``samples.values(fields)`` with the vector field's stored values
    turned into arrays here rather than by FiftyOne.

    Args:
        samples: a FiftyOne collection
        fields: a list of field names, ``vector_field`` among them
        vector_field: the embeddings field

    Returns:
        a list of value lists, as ``samples.values(fields)`` returns
    """
    try:
        columns = list(samples.values(fields, _raw=True))
    except TypeError:  # pragma: no cover - a FiftyOne without _raw
        return samples.values(fields)
    k = fields.index(vector_field)
    columns[k] = _to_vectors(columns[k])
    return columns


#: values converted per thread at least (fewer: no threads)
_MIN_PER_THREAD = 1024


def _to_vectors(values):
    # zlib releases the GIL while it inflates: threads share the work
    workers = min(os.cpu_count() or 1, 4, len(values) // _MIN_PER_THREAD)
    if workers < 2:
        return _convert(values)
    step = -(-len(values) // workers)
    with ThreadPoolExecutor(workers) as pool:
        parts = pool.map(_convert, [values[i : i + step] for i in range(0, len(values), step)])
        return [v for part in parts for v in part]


def _convert(values):
    headers = {}
    return [to_vector(v, headers) for v in values]


def to_vector(value, headers):
    """One stored vector field value as an array.

    Args:
        value: the stored value (``bytes`` for a vector field; other values
            are returned unchanged)
        headers: a dict that caches parsed ``.npy`` headers between calls

    Returns:
        a numpy array, or ``value`` itself if it is not stored bytes
    """
    if not isinstance(value, bytes):
        return value
    try:
        data = _inflate(value)
    except (zlib.error, _InflateError):
        return fou.deserialize_numpy_array(value)  # says what is wrong
    offset = _data_offset(data)
    parsed = False
    if offset:
        header = data[:offset]
        if header not in headers:
            headers[header] = _parse_header(data)
        parsed = headers[header]
    if parsed and len(data) == offset + parsed[1] * parsed[0].itemsize:
        return np.frombuffer(data, dtype=parsed[0], count=parsed[1], offset=offset)
    return np.load(io.BytesIO(data), allow_pickle=False)


def _data_offset(data):
    # .npy: magic, version, header length (2 bytes in 1.0, 4 in 2.0/3.0)
    if not data.startswith(_MAGIC) or len(data) < 10:
        return 0
    if data[6] == 1:
        return 10 + int.from_bytes(data[8:10], "little")
    if len(data) < 12:
        return 0
    return 12 + int.from_bytes(data[8:12], "little")


def _parse_header(data):
    """``(dtype, count)`` for a 1-D C-order array of plain numbers, else
    ``False`` (read such values with ``np.load``)."""
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            return False
    except (ValueError, OSError, SyntaxError):
        return False
    if len(shape) != 1 or fortran or dtype.hasobject or dtype.kind not in "fiu":
        return False
    return dtype, int(shape[0])


#: embeddings read per database round trip when loading them for a search
LOAD_CHUNK_SIZE = 4096


def load_vectors(samples, field, with_paths=False, chunk_size=None):
    """Reads embeddings chunk by chunk into one float32 array, so that the
    database's documents and the array are never all in memory at once.

    Args:
        samples: a FiftyOne dataset or view
        field: the embeddings field
        with_paths (False): also return the samples' filepaths
        chunk_size (None): samples per read; ``None`` for
            :data:`LOAD_CHUNK_SIZE`

    Returns:
        ``(ids, vectors)`` or ``(ids, vectors, paths)`` of the samples that
        have a vector

    Raises:
        ValueError: for vectors of different sizes, or not finite
    """
    chunk_size = chunk_size or LOAD_CHUNK_SIZE
    n = count_samples(samples)
    ids, paths, vectors, filled = [], [], None, 0
    for start in range(0, n, chunk_size):
        cids, cpaths, values = read_values(
            samples.skip(start).limit(chunk_size), ["id", "filepath", field], field
        )
        valid = [i for i, v in enumerate(values) if v is not None]
        if not valid:
            continue
        cids = [cids[i] for i in valid]
        block = _stack_vectors([values[i] for i in valid], cids, field)
        del values
        if vectors is None:
            vectors = np.empty((n - start, block.shape[1]), dtype=np.float32)
            first = (cids[0], block.shape)
        elif block.shape[1] != vectors.shape[1]:
            raise ValueError(
                f"Field '{field}' holds embeddings of different sizes: "
                f"sample {first[0]} has ({vectors.shape[1]},), sample "
                f"{cids[0]} has ({block.shape[1]},); they must come from one "
                "model"
            )
        vectors[filled : filled + len(block)] = block
        filled += len(block)
        ids += cids
        if with_paths:
            paths += [cpaths[i] for i in valid]
    if vectors is None:
        vectors = np.zeros((0, 0), dtype=np.float32)
    elif filled < len(vectors):
        vectors = vectors[:filled].copy()
    if with_paths:
        return ids, vectors, paths
    return ids, vectors


def _stack_vectors(values, ids, field):
    """Stacks a list of vectors into a float32 array, emptying the list as
    it goes (so the vectors are never held twice)."""
    if not values:
        return np.zeros((0, 0), dtype=np.float32)
    first = _as_vector(values[0], ids[0], field)
    vectors = np.empty((len(values), len(first)), dtype=np.float32)
    for k, v in enumerate(values):
        try:
            if np.ndim(v) != 1:
                raise ValueError
            vectors[k] = v
        except (ValueError, TypeError):
            shape = _as_vector(v, ids[k], field).shape
            raise ValueError(
                f"Field '{field}' holds embeddings of different sizes: "
                f"sample {ids[0]} has {first.shape}, sample {ids[k]} has "
                f"{shape}; they must come from one model"
            ) from None
        values[k] = None
    bad = ~np.all(np.isfinite(vectors), axis=1)
    if bad.any():
        raise ValueError(
            f"Field '{field}' has {int(bad.sum())} embedding(s) with NaN or "
            f"infinite values (first: sample {ids[int(np.argmax(bad))]})"
        )
    return vectors


def _as_vector(value, sid, field):
    try:
        vector = None if isinstance(value, str) else np.asarray(value, np.float32)
    except (ValueError, TypeError):
        vector = None
    if vector is None or vector.ndim != 1:
        raise ValueError(
            f"Field '{field}' does not hold embedding vectors (sample {sid} "
            f"has {type(value).__name__} {_short(value)})"
        )
    return vector


def _short(value, n=40):
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."
