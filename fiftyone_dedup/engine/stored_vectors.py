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
import itertools
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


#: embeddings converted at a time when loading them for a search
LOAD_CHUNK_SIZE = 4096


def load_vectors(samples, field, with_paths=False, chunk_size=None):
    """Reads embeddings chunk by chunk into one float32 array, so that the
    database's documents and the array are never all in memory at once.
    The chunks come through one database cursor, each decoded in threads
    while the next is read.

    Args:
        samples: a FiftyOne dataset or view
        field: the embeddings field
        with_paths (False): also return the samples' filepaths
        chunk_size (None): samples decoded at a time; ``None`` for
            :data:`LOAD_CHUNK_SIZE`

    Returns:
        ``(ids, vectors)`` or ``(ids, vectors, paths)`` of the samples that
        have a vector

    Raises:
        ValueError: for vectors of different sizes, or not finite
    """
    chunk_size = chunk_size or LOAD_CHUNK_SIZE
    n = count_samples(samples)
    out = _Filled(n, field, with_paths)
    workers = max(1, min(os.cpu_count() or 1, 4))
    with ThreadPoolExecutor(workers) as pool:
        pending = None
        for cids, cpaths, values in _chunks(samples, field, n, chunk_size):
            step = max(_MIN_PER_THREAD // 4, -(-len(values) // workers))
            parts = [(i, values[i : i + step], pool.submit(_joined, values[i : i + step]))
                     for i in range(0, len(values), step)]
            if pending is not None:
                out.add(*pending)
            pending = (cids, cpaths, parts)
        if pending is not None:
            out.add(*pending)
    return out.result()


class _Filled:
    """The array :func:`load_vectors` fills, chunk by chunk, with the ids
    (and paths) of the samples that have a vector."""

    def __init__(self, n, field, with_paths):
        self.n, self.field, self.with_paths = n, field, with_paths
        self.ids, self.paths, self.vectors, self.filled = [], [], None, 0

    def add(self, cids, cpaths, parts):
        """Adds a chunk: its ids, paths and ``(start, values, future)``
        parts (the future gives :func:`_joined`'s result)."""
        for start, values, joined in parts:
            ids = cids[start : start + len(values)]
            paths = cpaths[start : start + len(values)]
            found = joined.result()
            if found is None:  # not the common layout: value by value
                values = _convert(values)
                valid = [v is not None for v in values]
                ids, paths = _where(ids, valid), _where(paths, valid)
                block = _stack_vectors([v for v in values if v is not None], ids, self.field)
            else:
                valid, block = found
                if valid is not None:
                    ids, paths = _where(ids, valid), _where(paths, valid)
                block = _checked(block, ids, self.field)
            if len(block):
                self._put(block, ids)
                self.ids += ids
                if self.with_paths:
                    self.paths += paths

    def _put(self, block, ids):
        if self.vectors is None:
            self.vectors = np.empty((max(self.n, len(block)), block.shape[1]), dtype=np.float32)
            self.first = ids[0]
        elif block.shape[1] != self.vectors.shape[1]:
            raise ValueError(
                f"Field '{self.field}' holds embeddings of different sizes: "
                f"sample {self.first} has ({self.vectors.shape[1]},), sample "
                f"{ids[0]} has ({block.shape[1]},); they must come from one "
                "model"
            )
        if self.filled + len(block) > len(self.vectors):  # more than counted
            grown = np.empty((self.filled + len(block), self.vectors.shape[1]), np.float32)
            grown[: self.filled] = self.vectors[: self.filled]
            self.vectors = grown
        self.vectors[self.filled : self.filled + len(block)] = block
        self.filled += len(block)

    def result(self):
        vectors = self.vectors
        if vectors is None:
            vectors = np.zeros((0, 0), dtype=np.float32)
        elif self.filled < len(vectors):
            vectors = vectors[: self.filled].copy()
        if self.with_paths:
            return self.ids, vectors, self.paths
        return self.ids, vectors


def _where(items, keep):
    return [x for x, ok in zip(items, keep) if ok]


def _joined(values):
    """``(valid, block)`` for values all FiftyOne's stored bytes of one 1-D
    layout (or None): each inflated and joined into one 2-D array, with no
    array per value; ``valid`` says which values are not None (``None``:
    all are). ``None`` for anything else, which :func:`to_vector` reads."""
    chunks, header, valid = [], None, None
    for k, v in enumerate(values):
        if v is None:
            if valid is None:
                valid = [True] * len(values)
            valid[k] = False
            continue
        if not isinstance(v, bytes):
            return None
        try:
            data = _inflate(v)
        except (zlib.error, _InflateError):
            return None
        offset = _data_offset(data)
        if header is None:
            parsed = _parse_header(data) if offset else False
            if not parsed:
                return None
            header, (dtype, count) = data[:offset], parsed
            nbytes = count * dtype.itemsize
        if len(data) != offset + nbytes or data[:offset] != header:
            return None
        chunks.append(memoryview(data)[offset:])
    if header is None:
        return valid, np.zeros((0, 0), dtype=np.float32)
    block = np.frombuffer(b"".join(chunks), dtype=dtype).reshape(len(chunks), count)
    return valid, block


def _checked(block, ids, field):
    """The block as float32, every value finite."""
    block = block.astype(np.float32, copy=False)
    bad = ~np.all(np.isfinite(block), axis=1)
    if bad.any():
        raise ValueError(
            f"Field '{field}' has {int(bad.sum())} embedding(s) with NaN or "
            f"infinite values (first: sample {ids[int(np.argmax(bad))]})"
        )
    return block


def _chunks(samples, field, n, chunk_size):
    """``(ids, filepaths, stored values)`` of each chunk of samples, read
    through one database cursor (a skip and limit per chunk would scan the
    skipped documents again, and FiftyOne's ``values()`` adds its own work
    per value)."""
    cursor = _vector_cursor(samples, field)
    if cursor is None:  # pragma: no cover - another FiftyOne
        for start in range(0, n, chunk_size):
            yield samples.skip(start).limit(chunk_size).values(["id", "filepath", field], _raw=True)
        return
    with cursor:
        while True:
            docs = list(itertools.islice(cursor, chunk_size))
            if not docs:
                return
            yield ([str(d["_id"]) for d in docs], [d.get("filepath") for d in docs],
                   [d.get(field) for d in docs])


def _vector_cursor(samples, field):
    """A cursor over the samples' ``_id``, ``filepath`` and stored ``field``
    (in the order ``values()`` gives), or ``None`` where the field's stored
    name differs from its name or the collection cannot be aggregated."""
    try:
        stored = samples.get_field(field).db_field
    except AttributeError:
        return None
    if stored != field or "." in field or not hasattr(samples, "_aggregate"):
        return None
    try:
        return samples._aggregate(pipeline=[{"$project": {"filepath": True, field: True}}])
    except TypeError:  # pragma: no cover - another FiftyOne
        return None


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
