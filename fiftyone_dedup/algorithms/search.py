"""Exact radius search over encodings, numpy/faiss (no FiftyOne).

Two kinds of encodings, one shape of answer: sparse pairs ``(i, j, d)``
within a threshold, never an N x N matrix.

-   64-bit hashes (``uint64``): Hamming distance <= ``threshold``, searched
    with faiss's binary flat index (popcount over packed codes), blockwise and
    upper-triangular so that each pair is computed once; large sets of
    spread-out codes by multi-index hashing instead (:mod:`.hamming`), which
    gives the same pairs with a small fraction of the comparisons.
-   embeddings (``float32``): cosine similarity >= ``threshold`` of
    L2-normalised vectors, blockwise and upper-triangular: fast matrix
    products (torch when installed, bfloat16 where the CPU multiplies it
    natively) find candidates within a proven error margin of the
    threshold, and each candidate's similarity is then computed exactly (in
    float64), so the pairs are the same on every machine.

Identical encodings are collapsed first (:func:`unique_rows`): ten thousand
copies of one image cost one search row, not fifty million pairs.

A query set can be searched against a separate reference set, which is never
compared with itself (cross-dataset search).
"""

import logging
import platform
import sys
import warnings

import numpy as np

from fiftyone_dedup.algorithms import hamming

logger = logging.getLogger(__name__)

#: queries per faiss call; bounds the memory of one call's results
DEFAULT_BLOCK_SIZE = 16384

HAMMING_METHODS = ("auto", "flat", "mih")


def _faiss():
    import faiss

    return faiss


def validate_hamming_threshold(threshold, bits=64):
    """Checks a Hamming threshold.

    Args:
        threshold: the maximum Hamming distance, in bits
        bits (64): the hash length

    Returns:
        the threshold as an int

    Raises:
        ValueError: if it is not an integer in ``[0, bits]``
    """
    if not _is_number(threshold) or not _is_integral(threshold):
        raise ValueError(
            f"threshold must be a whole number of bits between 0 and {bits} "
            f"for hashes (maximum Hamming distance; ~10 is typical), got "
            f"{threshold!r}"
        )
    threshold = int(threshold)
    if not 0 <= threshold <= bits:
        raise ValueError(
            f"threshold must be between 0 and {bits} bits for hashes "
            f"(maximum Hamming distance; ~10 is typical), got {threshold}"
        )
    return threshold


def validate_cosine_threshold(threshold):
    """Checks a cosine similarity threshold.

    Args:
        threshold: the minimum cosine similarity

    Returns:
        the threshold as a float

    Raises:
        ValueError: if it is not a number in ``[-1, 1]``
    """
    value = float(threshold) if _is_number(threshold) else None
    if value is None or not np.isfinite(value) or not -1.0 <= value <= 1.0:
        raise ValueError(
            "threshold must be a minimum cosine similarity between -1 and 1 "
            f"for embeddings (0.82-0.9 is typical), got {threshold!r}"
        )
    return value


def _is_number(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(
        x, (bool, np.bool_)
    )


def _is_integral(x):
    try:
        return float(x) == int(x)
    except (TypeError, ValueError, OverflowError):
        return False


def unique_rows(codes):
    """Collapses identical encodings.

    Args:
        codes: an ``(n,)`` or ``(n, d)`` array

    Returns:
        a tuple ``(unique, inverse)`` such that ``unique[inverse] == codes``;
        ``unique`` keeps first-occurrence order (and is ``codes`` itself,
        not a copy, when all rows differ)
    """
    codes = np.asarray(codes)
    if len(codes) == 0:
        return codes, np.zeros(0, dtype=np.int64)
    if codes.ndim > 1:
        found = _unique_by_hash(codes)
        if found is not None:
            first, inverse = found
        else:  # pragma: no cover - a 64-bit hash collision
            _, first, inverse = np.unique(
                codes, axis=0, return_index=True, return_inverse=True
            )
    else:
        _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    if len(first) == len(codes):
        return codes, np.arange(len(codes))  # all distinct: no copy
    # Renumber so that unique rows keep their first-occurrence order
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return codes[np.sort(first)], rank[inverse]


def _unique_by_hash(rows, block_size=4096):
    """Groups identical rows by a 64-bit hash of their bytes, checked
    exactly; memory is a block, not a copy of ``rows`` (as a sort would be).

    Returns:
        ``(first, inverse)`` as ``np.unique`` gives them, or ``None`` if two
        different rows share a hash
    """
    raw = np.ascontiguousarray(rows)
    n = len(raw)
    data = raw.reshape(n, -1).view(np.uint8)
    pad = (-data.shape[1]) % 8
    if pad:
        data = np.concatenate([data, np.zeros((n, pad), np.uint8)], axis=1)
    words = data.view(np.uint64)
    # odd weights: every bit of every word reaches the hash (mod 2^64)
    weights = np.random.default_rng(0x5EED).integers(
        1, 2**63, size=words.shape[1], dtype=np.uint64
    ) | np.uint64(1)
    hashes = np.empty(n, dtype=np.uint64)
    for start in range(0, n, block_size):
        hashes[start : start + block_size] = np.einsum(
            "ij,j->i", words[start : start + block_size], weights
        )
    _, first, inverse, counts = np.unique(
        hashes, return_index=True, return_inverse=True, return_counts=True
    )
    inverse = inverse.reshape(-1)
    if len(first) == n:
        return first, inverse  # distinct hashes: distinct rows
    # rows that share a hash must equal their group's first row
    shared = np.flatnonzero(counts[inverse] > 1)
    for start in range(0, len(shared), block_size):
        rows_ = shared[start : start + block_size]
        if not np.array_equal(raw[rows_], raw[first[inverse[rows_]]]):
            return None
    return first, inverse


def _as_binary(codes):
    codes = np.ascontiguousarray(np.asarray(codes, dtype=np.uint64))
    return codes.view(np.uint8).reshape(len(codes), 8)


def _split_range_result(lims, D, I, offset):
    counts = np.diff(lims).astype(np.int64)
    qi = np.repeat(np.arange(len(counts), dtype=np.int64), counts) + offset
    return qi, I.astype(np.int64), D


def _hamming_plan(query, reference, threshold, method):
    """The multi-index search to run, or ``None`` for the flat index."""
    if method not in HAMMING_METHODS:
        raise ValueError(
            f"method must be one of {', '.join(HAMMING_METHODS)}, got {method!r}"
        )
    if method == "flat" or not len(query) or (reference is not None and not len(reference)):
        return None
    if not hamming.available():
        logger.debug("multi-index hashing needs numba; using the flat index")
        return None
    plan = hamming.Plan(query, reference, threshold)
    if method == "mih" or plan.worth_it():
        logger.debug("Hamming search by multi-index hashing (%d substrings)", plan.m)
        return plan
    return None


def hamming_pairs(
    codes, threshold, block_size=DEFAULT_BLOCK_SIZE, progress=None, method="auto"
):
    """All pairs of 64-bit hashes within a Hamming distance (inclusive).

    Args:
        codes: a ``uint64`` array of ``n`` hashes
        threshold: the maximum Hamming distance, in bits
        block_size (DEFAULT_BLOCK_SIZE): queries per faiss call
        progress (None): an optional callable invoked with the number of rows
            just searched
        method ("auto"): ``"flat"`` (faiss's brute-force index), ``"mih"``
            (multi-index hashing, needs numba) or ``"auto"`` (multi-index
            hashing where it makes far fewer comparisons: large sets of
            spread-out codes); the result is the same

    Returns:
        a tuple ``(i, j, d)`` of arrays with ``i < j``, sorted by ``(i, j)``
    """
    threshold = validate_hamming_threshold(threshold)
    codes = np.ascontiguousarray(np.asarray(codes, dtype=np.uint64))
    plan = _hamming_plan(codes, None, threshold, method)
    if plan is not None:
        return plan.search(progress=progress)
    faiss = _faiss()
    binary = _as_binary(codes)
    n = len(binary)
    out_i, out_j, out_d = [], [], []
    for start in range(0, n, block_size):
        stop = min(n, start + block_size)
        # Upper triangle: this block against itself and everything after it
        index = faiss.IndexBinaryFlat(64)
        index.add(binary[start:])
        lims, D, I = index.range_search(binary[start:stop], threshold + 1)
        qi, rj, d = _split_range_result(lims, D, I, start)
        rj += start
        keep = rj > qi
        out_i.append(qi[keep])
        out_j.append(rj[keep])
        out_d.append(d[keep].astype(np.int32))
        if progress is not None:
            progress(stop - start)
    return _concat(out_i, out_j, out_d, np.int32)


def hamming_cross(
    query, reference, threshold, block_size=DEFAULT_BLOCK_SIZE, progress=None,
    method="auto",
):
    """Pairs of (query, reference) hashes within a Hamming distance.

    The reference set is indexed once and never compared with itself, so the
    cost grows with ``len(query) * len(reference)``.

    Args:
        query: a ``uint64`` array of query hashes
        reference: a ``uint64`` array of reference hashes
        threshold: the maximum Hamming distance, in bits
        block_size (DEFAULT_BLOCK_SIZE): queries per faiss call
        progress (None): an optional callable invoked with the number of
            queries just searched
        method ("auto"): ``"flat"``, ``"mih"`` or ``"auto"`` (see
            :func:`hamming_pairs`); the result is the same

    Returns:
        a tuple ``(qi, rj, d)`` of arrays, sorted by ``(qi, rj)``
    """
    threshold = validate_hamming_threshold(threshold)
    query = np.ascontiguousarray(np.asarray(query, dtype=np.uint64))
    reference = np.ascontiguousarray(np.asarray(reference, dtype=np.uint64))
    plan = _hamming_plan(query, reference, threshold, method)
    if plan is not None:
        return plan.search(progress=progress)
    faiss = _faiss()
    qbin, rbin = _as_binary(query), _as_binary(reference)
    index = faiss.IndexBinaryFlat(64)
    if len(rbin):
        index.add(rbin)
    out_i, out_j, out_d = [], [], []
    for start in range(0, len(qbin), block_size):
        stop = min(len(qbin), start + block_size)
        if len(rbin):
            lims, D, I = index.range_search(qbin[start:stop], threshold + 1)
            qi, rj, d = _split_range_result(lims, D, I, start)
            out_i.append(qi)
            out_j.append(rj)
            out_d.append(d.astype(np.int32))
        if progress is not None:
            progress(stop - start)
    return _concat(out_i, out_j, out_d, np.int32)


def normalize(vectors, inplace=False):
    """L2-normalises embeddings row-wise (zero rows stay zero).

    Args:
        vectors: an ``(n, d)`` array
        inplace (False): normalise ``vectors`` itself when it is a
            C-contiguous ``float32`` array (no copy)

    Returns:
        a C-contiguous ``float32`` array: a new one unless ``inplace``
    """
    x = np.asarray(vectors)
    if not (inplace and x.dtype == np.float32 and x.flags.c_contiguous):
        x = np.array(x, dtype=np.float32, order="C", copy=True)
    if x.ndim != 2:
        raise ValueError(f"Expected a 2-D array of embeddings, got {x.shape}")
    # row norms without an (n, d) temporary
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    norms = norms.astype(np.float32)[:, None]
    np.divide(x, norms, out=x, where=norms > 0)
    return x


#: queries per block of the embedding search; a block of similarities is
#: at most this many queries x ``COSINE_KEY_BLOCK`` keys
COSINE_QUERY_BLOCK = 1024
COSINE_KEY_BLOCK = 16384

#: keys per block of int8 products (blocks are packed once, on fixed
#: boundaries)
INT8_KEY_BLOCK = 4096

#: candidates are checked exactly per chunk of this many pairs
_REFINE_CHUNK = 8192

# How far a fast product may be from the exact similarity of unit vectors
# (u = unit roundoff). bfloat16 (u = 2^-8): both inputs rounded (<= 2u + u^2
# on the product), the output rounded (<= 2u even if truncated), float32
# accumulation (<= d * 2^-24): 0.0157 + 6e-8 * d. float32: accumulation
# only (<= d * 2^-24). With room to spare:
_MARGIN_BASE = {"bf16": 0.02, "fp32": 1e-5}
_MARGIN_PER_DIM = {"bf16": 1e-7, "fp32": 1e-7}

# int8 margins are computed per query, from the quantisation steps (see
# _Int8Products); a block whose margin would exceed this (very spiky
# vectors: too many candidates) is multiplied in float32 instead
_INT8_MAX_MARGIN = 0.1

SIMILARITY_METHODS = ("auto", "bf16", "int8", "fp32")


def _bf16_is_native():
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16, AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _int8_is_available():
    """Whether torch multiplies int8 here with FBGEMM (x86 CPUs)."""
    torch = _torch()
    if torch is None or platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        engine = torch.backends.quantized.engine
        return engine in ("x86", "fbgemm") and hasattr(
            torch.ops.quantized, "linear_dynamic"
        )
    except (AttributeError, RuntimeError):  # pragma: no cover
        return False


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    return torch


def resolve_similarity_method(method="auto"):
    """Chooses how candidate similarities are computed.

    Args:
        method ("auto"): ``"auto"`` (bfloat16 products where the CPU
            multiplies them natively, else int8 products where FBGEMM runs
            them (x86), else float32), ``"bf16"``, ``"int8"`` or ``"fp32"``

    Returns:
        ``"bf16"``, ``"int8"`` or ``"fp32"``

    Raises:
        ValueError: for an unknown method
    """
    if method not in SIMILARITY_METHODS:
        raise ValueError(
            f"method must be one of {', '.join(SIMILARITY_METHODS)}, got {method!r}"
        )
    if method == "auto":
        if _torch() is not None and _bf16_is_native():
            return "bf16"
        return "int8" if _int8_is_available() else "fp32"
    if method == "int8" and not _int8_is_available():
        logger.debug("int8 products need torch with FBGEMM (x86); using float32")
        return "fp32"
    return method


#: with ``method="auto"``, searches of at most this many multiply-adds
#: (queries x keys x dimensions; a self-search computes half) run on numpy's
#: float32 products when torch is not imported yet: importing it costs more
#: (1.6 s here, and hundreds of MB) than it saves. 10k x 1280: numpy ~1 s,
#: torch's bfloat16 0.2 s after its import
NUMPY_MAX_WORK = 2e11


def _products(queries, keys, method):
    work = float(len(queries)) * len(keys) * queries.shape[1]
    if method == "auto" and work <= NUMPY_MAX_WORK and "torch" not in sys.modules:
        return _Products(queries, keys, "fp32", use_torch=False)
    method = resolve_similarity_method(method)
    if method == "int8":
        try:
            return _Int8Products(queries, keys)
        except (RuntimeError, AttributeError, TypeError) as e:  # pragma: no cover
            logger.debug("int8 products unavailable (%s); using float32", e)
            method = "fp32"
    return _Products(queries, keys, method)


class _Products:
    """Blocks of fast inner products between two sets of unit vectors,
    thresholded into candidate pairs."""

    def __init__(self, queries, keys, method, use_torch=True):
        self.method = "fp32" if not use_torch else resolve_similarity_method(method)
        dim = queries.shape[1]
        self.margin = _MARGIN_BASE[self.method] + _MARGIN_PER_DIM[self.method] * dim
        self.torch = _torch() if use_torch else None
        self.num_keys = len(keys)
        self._buffer = None
        if self.torch is None:
            self.method = "fp32"
            self.q, self.k = queries, keys
            return
        dtype = self.torch.bfloat16 if self.method == "bf16" else self.torch.float32
        self.q = self.torch.from_numpy(queries).to(dtype)
        self.k = self.q if keys is queries else self.torch.from_numpy(keys).to(dtype)

    def key_blocks(self, k_start):
        """The ``(k0, k1)`` key blocks that cover keys ``k_start`` onwards."""
        for k0 in range(k_start, self.num_keys, COSINE_KEY_BLOCK):
            yield k0, min(self.num_keys, k0 + COSINE_KEY_BLOCK)

    def _block(self, m, n):
        # One buffer for every block of products: a fresh 64 MB array per
        # block costs its page faults, a third of the time of the product
        if self._buffer is None or len(self._buffer) < m * n:
            if self.torch is None:
                self._buffer = np.empty(m * n, dtype=self.q.dtype)
            else:
                self._buffer = self.torch.empty(m * n, dtype=self.q.dtype)
        return self._buffer[: m * n].reshape(m, n)

    def candidates(self, q0, q1, k0, k1, threshold, upper=False):
        """Local ``(query, key)`` index arrays whose similarity may be at
        least ``threshold``: the fast product is within the margin of it.
        With ``upper``, pairs whose key is not after the query are left out
        (most of them; the caller drops the rest)."""
        cutoff = threshold - self.margin
        block = self._block(q1 - q0, k1 - k0)
        if self.torch is None:
            np.matmul(self.q[q0:q1], self.k[k0:k1].T, out=block)
            if upper:
                _mask_diagonal(block, q0 - k0)
            rows = np.flatnonzero(block.max(axis=1) >= cutoff)
            qi, kj = np.nonzero(block[rows] >= cutoff)
            return rows[qi].astype(np.int64), kj.astype(np.int64)
        torch = self.torch
        with torch.inference_mode():
            torch.mm(self.q[q0:q1], self.k[k0:k1].T, out=block)
            if upper:
                _mask_diagonal(block, q0 - k0)
            return _above(block, cutoff)


def _mask_diagonal(block, offset):
    """Sets each query's product with itself (local key ``row + offset``)
    to -inf, in place: otherwise it makes every row of the diagonal block a
    candidate row. (Pairs with the key before the query are rare; the
    caller drops them.)"""
    if not 0 <= offset < block.shape[1]:
        return
    if isinstance(block, np.ndarray):
        np.fill_diagonal(block[:, offset:], -np.inf)
    else:
        block[:, offset:].diagonal().fill_(float("-inf"))


def _above(block, cutoff):
    """Indices of a torch block's entries >= ``cutoff`` (a number, or one
    per row)."""
    if block.dtype == _torch().bfloat16 and not hasattr(cutoff, "shape") and cutoff > 0:
        return _above_bf16(block, cutoff)
    # candidates are rare: find their rows first (one cheap pass)
    rows = (block.amax(dim=1) >= cutoff).nonzero()[:, 0]
    if len(rows) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy()
    row_cut = cutoff if not hasattr(cutoff, "shape") else cutoff[rows, None]
    found = (block[rows] >= row_cut).nonzero()
    return rows[found[:, 0]].numpy(), found[:, 1].numpy()


def _above_bf16(block, cutoff):
    # Positive bfloat16 values order as their bits (int16); negative ones
    # and -inf have the sign bit, so they sort below. The bits of the
    # largest bfloat16 <= cutoff (float32 truncated) find a superset of the
    # entries >= cutoff, in numpy integer passes (several times faster than
    # bfloat16 comparisons)
    f = np.float32(cutoff)
    if float(f) > cutoff:
        f = np.nextafter(f, np.float32(0))
    bits = np.int16(f.view(np.uint32) >> 16)
    values = block.view(_torch().int16).numpy()
    rows = np.flatnonzero(values.max(axis=1) >= bits)
    qi, kj = np.nonzero(values[rows] >= bits)
    return rows[qi].astype(np.int64), kj.astype(np.int64)


class _Int8Products:
    """Blocks of int8 inner products (FBGEMM), with a proven margin per
    query, thresholded into candidate pairs.

    Keys are quantised once per row (symmetric, step ``s_k = max|k| / 127``,
    error <= ``s_k / 2`` per element) and packed per block of
    :data:`INT8_KEY_BLOCK`. Each query block is scaled row-wise to
    ``max|x| = 1`` (by ``r``) and quantised by FBGEMM to 7-bit unsigned
    values (step ``s_x``: error <= ``s_x / 2``; 7 bits, so that no 16-bit
    sum saturates). Then, exactly (integer accumulation)::

        |x.k - q(x).q(k) / r| <= (s_x/2 |k|_1 + (|r x|_1 + d s_x/2) s_k/2) / r

    taken with the block's largest ``|k|_1`` and ``s_k``, and a little
    room for float rounding.
    """

    method = "int8"

    def __init__(self, queries, keys):
        torch = self.torch = _torch()
        self.dim = queries.shape[1]
        self.num_keys = len(keys)
        self.q = torch.from_numpy(queries)
        self.k = self.q if keys is queries else torch.from_numpy(keys)
        self.fallback = _Products(queries, keys, "fp32")
        self._query = None
        self.blocks = []
        with torch.inference_mode(), warnings.catch_warnings():
            # quantised tensors are deprecated in torch; _products falls
            # back to float32 where they are gone
            warnings.simplefilter("ignore")
            for k0 in range(0, self.num_keys, INT8_KEY_BLOCK):
                kb = self.k[k0 : k0 + INT8_KEY_BLOCK]
                scale = (kb.abs().amax(dim=1).double() / 127).clamp_min(1e-30)
                zeros = torch.zeros(len(kb), dtype=torch.long)
                packed = torch.ops.quantized.linear_prepack(
                    torch.quantize_per_channel(kb, scale, zeros, 0, torch.qint8), None
                )
                l1 = float(kb.abs().sum(dim=1, dtype=torch.float64).max())
                self.blocks.append((packed, l1, float(scale.max()) / 2))

    def key_blocks(self, k_start):
        """The ``(k0, k1)`` key blocks (on packing boundaries) that cover
        keys ``k_start`` onwards."""
        first = k_start - k_start % INT8_KEY_BLOCK
        for k0 in range(first, self.num_keys, INT8_KEY_BLOCK):
            yield k0, min(self.num_keys, k0 + INT8_KEY_BLOCK)

    def _scaled_queries(self, q0, q1):
        if self._query is None or self._query[:2] != (q0, q1):
            torch = self.torch
            q = self.q[q0:q1]
            amax = q.abs().amax(dim=1).double()
            r = torch.where(amax > 0, 1.0 / amax, torch.ones_like(amax))
            scaled = (q.double() * r[:, None]).float()
            lo = min(float(scaled.min()), 0.0)
            hi = max(float(scaled.max()), 0.0)
            half_step = (hi - lo) / 127 / 2
            l1 = scaled.abs().sum(dim=1, dtype=torch.float64)
            self._query = (q0, q1, scaled, r, half_step, l1)
        return self._query[2:]

    def candidates(self, q0, q1, k0, k1, threshold, upper=False):
        """Local ``(query, key)`` index arrays whose similarity may be at
        least ``threshold``: the int8 product is within the query's proven
        margin of it (``upper``: see :meth:`_Products.candidates`)."""
        torch = self.torch
        packed, k_l1, k_half_step = self.blocks[k0 // INT8_KEY_BLOCK]
        with torch.inference_mode():
            scaled, r, half_step, q_l1 = self._scaled_queries(q0, q1)
            bound = half_step * k_l1 + (q_l1 + self.dim * half_step) * k_half_step
            # a zero query is quantised exactly: its products are exact zeros
            margin = torch.where(q_l1 > 0, bound / r * 1.01, 0.0) + 1e-5
            loose = margin > _INT8_MAX_MARGIN
            if bool(loose.all()):
                return self.fallback.candidates(q0, q1, k0, k1, threshold, upper)
            block = torch.ops.quantized.linear_dynamic(scaled, packed, True)
            if upper:
                _mask_diagonal(block, q0 - k0)
            cutoff = ((threshold - margin) * r).float()
            if not bool(loose.any()):
                return _above(block, cutoff)
            # queries with a loose margin: float32 products instead
            cutoff[loose] = float("inf")
            qi, kj = _above(block, cutoff)
            rows = loose.nonzero()[:, 0]
            exact = self.q[q0:q1][rows] @ self.k[k0:k1].T
            fi, fj = _above(exact, threshold - self.fallback.margin)
            qi = np.concatenate([qi, rows.numpy()[fi]])
            kj = np.concatenate([kj, fj])
            order = np.lexsort((kj, qi))
            return qi[order], kj[order]


def _exact_similarities(queries, keys, qi, kj):
    """The similarities of candidate pairs, in float64 (float32 products are
    exact in float64), by chunks."""
    out = np.empty(len(qi), dtype=np.float64)
    for start in range(0, len(qi), _REFINE_CHUNK):
        stop = start + _REFINE_CHUNK
        out[start:stop] = np.einsum(
            "ij,ij->i", queries[qi[start:stop]], keys[kj[start:stop]],
            dtype=np.float64,
        )
    return out


def _radius_block(products, queries, keys, q0, q1, threshold, k_start, upper):
    out_i, out_j, out_s = [], [], []
    for k0, k1 in products.key_blocks(k_start):
        qi, kj = products.candidates(q0, q1, k0, k1, threshold, upper)
        qi += q0
        kj += k0
        if upper:
            keep = kj > qi
            qi, kj = qi[keep], kj[keep]
        if not len(qi):
            continue
        s = _exact_similarities(queries, keys, qi, kj)
        keep = s >= threshold
        out_i.append(qi[keep])
        out_j.append(kj[keep])
        out_s.append(np.minimum(s[keep], 1.0).astype(np.float32))
    return out_i, out_j, out_s


def cosine_pairs(
    vectors,
    threshold,
    block_size=None,
    progress=None,
    normalized=False,
    method="auto",
):
    """All pairs of embeddings with cosine similarity >= ``threshold``.

    Exact: blocks of fast inner products over normalised vectors give the
    candidates within a proven margin of the threshold, whose similarities
    are then computed exactly; upper-triangular; memory is the vectors, one
    block of products and the pairs found.

    Args:
        vectors: an ``(n, d)`` array
        threshold: the minimum cosine similarity, in ``[-1, 1]``
        block_size (None): queries per block; ``None`` for
            :data:`COSINE_QUERY_BLOCK`
        progress (None): an optional callable invoked with the number of rows
            just searched
        normalized (False): whether ``vectors`` are already L2-normalised
            ``float32``
        method ("auto"): how candidates are found (see
            :func:`resolve_similarity_method`); the result is the same

    Returns:
        a tuple ``(i, j, s)`` of arrays with ``i < j`` and ``s`` the
        similarity
    """
    threshold = validate_cosine_threshold(threshold)
    x = vectors if normalized else normalize(vectors)
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    block_size = block_size or COSINE_QUERY_BLOCK
    products = _products(x, x, method)
    out_i, out_j, out_s = [], [], []
    for start in range(0, n, block_size):
        stop = min(n, start + block_size)
        i, j, s = _radius_block(products, x, x, start, stop, threshold, start, True)
        out_i += i
        out_j += j
        out_s += s
        if progress is not None:
            progress(stop - start)
    return _concat(out_i, out_j, out_s, np.float32)


def cosine_cross(
    query,
    reference,
    threshold,
    block_size=None,
    progress=None,
    normalized=False,
    method="auto",
):
    """Pairs of (query, reference) embeddings with cosine similarity >=
    ``threshold``; the reference set is never compared with itself.

    Args:
        query: an ``(nq, d)`` array
        reference: an ``(nr, d)`` array
        threshold: the minimum cosine similarity, in ``[-1, 1]``
        block_size (None): queries per block; ``None`` for
            :data:`COSINE_QUERY_BLOCK`
        progress (None): an optional callable invoked with the number of
            queries just searched
        normalized (False): whether the vectors are already L2-normalised
        method ("auto"): how candidates are found (see
            :func:`resolve_similarity_method`); the result is the same

    Returns:
        a tuple ``(qi, rj, s)`` of arrays
    """
    threshold = validate_cosine_threshold(threshold)
    q = query if normalized else normalize(query)
    r = reference if normalized else normalize(reference)
    q = np.ascontiguousarray(q, dtype=np.float32)
    r = np.ascontiguousarray(r, dtype=np.float32)
    if q.shape[1] != r.shape[1]:
        raise ValueError(
            f"Query embeddings have {q.shape[1]} dimensions but reference "
            f"embeddings have {r.shape[1]}; they must come from the same model"
        )
    block_size = block_size or COSINE_QUERY_BLOCK
    products = _products(q, r, method) if len(r) else None
    out_i, out_j, out_s = [], [], []
    for start in range(0, len(q), block_size):
        stop = min(len(q), start + block_size)
        if products is not None:
            i, j, s = _radius_block(products, q, r, start, stop, threshold, 0, False)
            out_i += i
            out_j += j
            out_s += s
        if progress is not None:
            progress(stop - start)
    return _concat(out_i, out_j, out_s, np.float32)


def _concat(out_i, out_j, out_d, dtype):
    if not out_i:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), np.zeros(0, dtype=dtype)
    return (
        np.concatenate(out_i),
        np.concatenate(out_j),
        np.concatenate(out_d).astype(dtype),
    )


def knn_pairs(query, reference, k, threshold, metric, exclude_self=False, block_size=None, progress=None):
    """Each query's ``k`` nearest references within a bound: a candidate
    search whose output grows linearly with the queries, however alike the
    data (a radius search on a homogeneous set returns nearly every pair).

    Args:
        query: ``uint64`` hashes, or L2-normalised ``float32`` vectors
        reference: the same kind, searched for each query
        k: the most neighbours kept per query
        threshold: the bound (maximum bits for ``"hamming"``, minimum cosine
            similarity for ``"cosine"``)
        metric: ``"hamming"`` or ``"cosine"``
        exclude_self (False): whether ``query`` is ``reference`` and each
            query's own row is skipped
        block_size (None): queries per faiss call
        progress (None): an optional callable invoked with the number of
            queries just searched

    Returns:
        a tuple ``(qi, rj, s)`` of arrays: query row, reference row, score
    """
    faiss = _faiss()
    block_size = block_size or DEFAULT_BLOCK_SIZE
    n_ref = len(reference)
    kk = min(n_ref, int(k) + (1 if exclude_self else 0))
    out_i, out_j, out_s = [], [], []
    if kk == 0 or len(query) == 0:
        return _concat(out_i, out_j, out_s, np.float32)
    if metric == "hamming":
        index = faiss.IndexBinaryFlat(64)
        index.add(_as_binary(reference))
        q = _as_binary(query)
    else:
        reference = np.ascontiguousarray(reference, dtype=np.float32)
        index = faiss.IndexFlatIP(reference.shape[1])
        index.add(reference)
        q = np.ascontiguousarray(query, dtype=np.float32)
    for start in range(0, len(q), block_size):
        stop = min(len(q), start + block_size)
        D, I = index.search(q[start:stop], kk)
        qi = np.repeat(np.arange(start, stop, dtype=np.int64), kk)
        rj, d = I.ravel().astype(np.int64), D.ravel()
        keep = rj >= 0
        keep &= (d <= threshold) if metric == "hamming" else (d >= threshold)
        if exclude_self:
            # at most k besides itself (ties may leave its own row out)
            keep = keep.reshape(-1, kk)
            keep &= I != np.arange(start, stop)[:, None]
            keep &= np.cumsum(keep, axis=1) <= k
            keep = keep.ravel()
        out_i.append(qi[keep])
        out_j.append(rj[keep])
        out_s.append(np.minimum(d[keep], 1.0) if metric == "cosine" else d[keep])
        if progress is not None:
            progress(stop - start)
    return _concat(out_i, out_j, out_s, np.float32 if metric == "cosine" else np.int32)
