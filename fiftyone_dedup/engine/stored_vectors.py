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
    """Reads embeddings into one float32 array, chunk by chunk through one
    database cursor, so that the database's documents and the array are
    never all in memory at once. Threads inflate each chunk's stored values
    straight into the array while the next chunk is read.

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
    out = _Filled(count_samples(samples), field)
    workers = max(1, min(os.cpu_count() or 1, 4))
    ids, paths = [], []
    with ThreadPoolExecutor(workers) as pool:
        pending = None
        for cids, cpaths, values in _chunks(samples, field, chunk_size):
            ids += cids
            if with_paths:
                paths += cpaths
            if pending is not None:
                out.finish(pending)
            pending = out.start(values, cids, pool, workers)
        if pending is not None:
            out.finish(pending)
    vectors, has = out.result()
    if has is not None:
        ids = [sid for sid, ok in zip(ids, has) if ok]
        paths = [p for p, ok in zip(paths, has) if ok]
    out.check_finite(vectors, ids)
    if with_paths:
        return ids, vectors, paths
    return ids, vectors


class _Filled:
    """The array :func:`load_vectors` fills: one row per sample read, rows
    of samples without a vector dropped at the end."""

    def __init__(self, n, field):
        self.n, self.field = n, field
        self.vectors, self.rows, self.layout = None, 0, None
        self.has, self.first = [], None

    def start(self, values, ids, pool, workers):
        """Starts filling the next rows with a chunk's ``values`` in
        threads; the parts to pass to :meth:`finish` (no part may be in
        flight: the array may be replaced by a larger one)."""
        row0 = self.rows
        if self.layout is None:
            self.layout = _layout(values)
        if self.layout is not None and self.vectors is None:
            self.vectors = np.empty((max(self.n, len(values)), self.layout[2]), np.float32)
        if self.vectors is not None and row0 + len(values) > len(self.vectors):
            # more samples than counted (added meanwhile): room for them
            grown = np.empty((row0 + len(values), self.vectors.shape[1]), np.float32)
            grown[:row0] = self.vectors[:row0]
            self.vectors = grown
        self.rows += len(values)
        step = max(_MIN_PER_THREAD // 4, -(-len(values) // workers))
        # the layout must fill rows of the array's width (else: value by
        # value, which names the sample of the other size)
        fast = self.layout is not None and self.layout[2] == self.vectors.shape[1]
        futures = []
        for i in range(0, len(values), step):
            part, part_ids = values[i : i + step], ids[i : i + step]
            if not fast:
                futures.append((row0 + i, part, part_ids, None))
            else:
                futures.append((row0 + i, part, part_ids, pool.submit(
                    _fill, part, self.vectors, row0 + i, self.layout)))
        return futures

    def finish(self, parts):
        """Waits for a chunk's parts; reads those of another layout value by
        value (which says what is wrong)."""
        for row, values, ids, future in parts:
            has = future.result() if future is not None else None
            if has is None:
                has = self._value_by_value(values, ids, row)
            elif self.first is None and any(has):
                self.first = ids[has.index(True)]
            self.has += has

    def _value_by_value(self, values, ids, row):
        converted = _convert(values)
        has = [v is not None for v in converted]
        ids = [sid for sid, ok in zip(ids, has) if ok]
        block = _stack_vectors([v for v in converted if v is not None], ids, self.field)
        if not len(block):
            return has
        if self.vectors is None:
            self.vectors = np.empty((max(self.n, self.rows), block.shape[1]), np.float32)
        if block.shape[1] != self.vectors.shape[1]:
            raise ValueError(
                f"Field '{self.field}' holds embeddings of different sizes: "
                f"sample {self.first} has ({self.vectors.shape[1]},), sample "
                f"{ids[0]} has ({block.shape[1]},); they must come from one "
                "model"
            )
        if self.first is None:
            self.first = ids[0]
        self.vectors[[row + i for i, ok in enumerate(has) if ok]] = block
        return has

    def result(self):
        """``(vectors, has)``: the rows of the samples with a vector, and
        which samples have one (``None``: all)."""
        if self.vectors is None or not any(self.has):
            return np.zeros((0, 0), dtype=np.float32), (self.has or None)
        if all(self.has):
            return self.vectors[: self.rows], None
        return _compact(self.vectors, self.has), self.has

    def check_finite(self, vectors, ids, rows=8192):
        """Raises if a vector holds NaN or an infinity (checked a slice at
        a time: no array of flags as large as the vectors)."""
        for i in range(0, len(vectors), rows):
            if not np.isfinite(vectors[i : i + rows]).all():
                _checked(vectors[i:], ids[i:], self.field)


def _compact(vectors, has):
    """The rows where ``has`` is true, moved up in place (a copy would
    hold the vectors twice)."""
    keep = np.flatnonzero(np.asarray(has, dtype=bool))
    runs = np.split(keep, np.flatnonzero(np.diff(keep) != 1) + 1)
    filled = 0
    for run in runs:
        if len(run) and run[0] != filled:
            vectors[filled : filled + len(run)] = vectors[run[0] : run[0] + len(run)]
        filled += len(run)
    return vectors[:filled]


def _layout(values):
    """``(header, dtype, count)`` of the first stored vector among
    ``values``, or ``None`` if none is FiftyOne's stored bytes of a 1-D
    array of plain numbers."""
    for v in values:
        if v is None:
            continue
        data = _inflated(v)
        if data is None:
            return None
        offset = _data_offset(data)
        parsed = _parse_header(data) if offset else False
        return (data[:offset], *parsed) if parsed else None
    return None


def _inflated(value):
    """A stored value's inflated bytes, or ``None`` if it is not FiftyOne's
    compressed bytes (:func:`to_vector` then reads it and says why)."""
    if not isinstance(value, bytes):
        return None
    try:
        return _inflate(value)
    except (zlib.error, _InflateError):
        return None


def _fill(values, vectors, row, layout):
    """Inflates stored vectors of ``layout`` into ``vectors[row:]``.

    Returns:
        a list of bools (which values are vectors), or ``None`` if a value
        has another form (the part is then read value by value)
    """
    header, dtype, count = layout
    offset = len(header)
    size = offset + count * dtype.itemsize
    raw = dtype == np.float32
    if raw:
        out = memoryview(vectors.reshape(-1).view(np.uint8))
        width = count * 4
    has = []
    for k, v in enumerate(values):
        if v is None:
            has.append(False)
            continue
        data = _inflated(v)
        if data is None or len(data) != size or not data.startswith(header):
            return None
        if raw:
            at = (row + k) * width
            out[at : at + width] = memoryview(data)[offset:]
        else:
            vectors[row + k] = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        has.append(True)
    return has


def _checked(block, ids, field):
    """Raises if a row of ``block`` is not finite, naming the first's sample."""
    bad = ~np.all(np.isfinite(block), axis=1)
    if bad.any():
        raise ValueError(
            f"Field '{field}' has {int(bad.sum())} embedding(s) with NaN or "
            f"infinite values (first: sample {ids[int(np.argmax(bad))]})"
        )


def _chunks(samples, field, chunk_size):
    """``(ids, filepaths, stored values)`` of each chunk of samples, read
    through one database cursor (a skip and limit per chunk would scan the
    skipped documents again, and FiftyOne's ``values()`` adds its own work
    per value)."""
    cursor = _vector_cursor(samples, field)
    if cursor is None:  # pragma: no cover - another FiftyOne
        for start in range(0, count_samples(samples), chunk_size):
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
    it goes (so the vectors are never held twice); :func:`load_vectors`
    checks that they are finite."""
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
