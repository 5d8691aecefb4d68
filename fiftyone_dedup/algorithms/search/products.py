"""Fast inner products between blocks of unit vectors, with a proven error
margin, thresholded into candidate pairs (no FiftyOne).

torch multiplies in bfloat16 where the CPU does it natively, in int8 where
FBGEMM runs it (x86), else in float32; small searches run on numpy while
torch is not imported yet. Every candidate whose fast product is within the
margin of the threshold is returned; :mod:`.cosine` then computes the
exact similarities, so the pairs are the same on every machine.
"""

import logging
import platform
import sys
import warnings

import numpy as np

logger = logging.getLogger(__name__)

#: keys per block of float products; a block of similarities is at most
#: ``COSINE_QUERY_BLOCK`` queries x this many keys
COSINE_KEY_BLOCK = 16384

#: keys per block of int8 products (blocks are packed once, on fixed
#: boundaries)
INT8_KEY_BLOCK = 4096

# How far a fast product may be from the exact similarity of unit vectors
# (u = unit roundoff). bfloat16 (u = 2^-8): both inputs rounded (<= 2u + u^2
# on the product), the output rounded (<= 2u even if truncated), float32
# accumulation (<= d * 2^-24): 0.0157 + 6e-8 * d. float32: accumulation
# only (<= d * 2^-24). With room to spare:
_MARGIN_BASE = {"bf16": 0.02, "fp32": 1e-5}
_MARGIN_PER_DIM = {"bf16": 1e-7, "fp32": 1e-7}

# int8 margins are computed per query, from the quantisation steps (see
# Int8Products); a block whose margin would exceed this (very spiky
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
#: float32 products when torch is not imported yet: importing it costs
#: 1.6 s here and about 500 MB. A find of 20k x 1280 from a field took 2.3 s
#: either way (547 MB on numpy, 1039 MB with torch); at 30k, torch's
#: bfloat16 was 1.5 s faster. About 21k x 1280 for a self-search.
NUMPY_MAX_WORK = 6e11


def import_torch_soon(work):
    """Starts importing torch in a background thread when a search of
    ``work`` multiply-adds will use it (see :data:`NUMPY_MAX_WORK`), so that
    its import (1.6 s here) overlaps the loading of the vectors.

    Args:
        work: the multiply-adds the search will compute

    Returns:
        whether an import was started
    """
    if work <= NUMPY_MAX_WORK or "torch" in sys.modules:
        return False
    import threading

    threading.Thread(target=_torch, name="import-torch", daemon=True).start()
    return True


def make_products(queries, keys, method):
    """The products to search ``queries`` against ``keys`` with.

    Args:
        queries: ``(nq, d)`` unit vectors, C-contiguous ``float32``
        keys: ``(nk, d)`` unit vectors (``queries`` itself for a self-search)
        method: see :func:`resolve_similarity_method`; ``"auto"`` runs small
            searches on numpy while torch is not imported (see
            :data:`NUMPY_MAX_WORK`)

    Returns:
        a :class:`Products` or :class:`Int8Products`
    """
    work = float(len(queries)) * len(keys) * queries.shape[1]
    if method == "auto" and work <= NUMPY_MAX_WORK and "torch" not in sys.modules:
        return Products(queries, keys, "fp32", use_torch=False)
    method = resolve_similarity_method(method)
    if method == "int8":
        try:
            return Int8Products(queries, keys)
        except (RuntimeError, AttributeError, TypeError) as e:  # pragma: no cover
            logger.debug("int8 products unavailable (%s); using float32", e)
            method = "fp32"
    return Products(queries, keys, method)


class Products:
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
                mask_diagonal(block, q0 - k0)
            rows = np.flatnonzero(block.max(axis=1) >= cutoff)
            qi, kj = np.nonzero(block[rows] >= cutoff)
            return rows[qi].astype(np.int64), kj.astype(np.int64)
        torch = self.torch
        with torch.inference_mode():
            torch.mm(self.q[q0:q1], self.k[k0:k1].T, out=block)
            if upper:
                mask_diagonal(block, q0 - k0)
            return above(block, cutoff)


def mask_diagonal(block, offset):
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


def above(block, cutoff):
    """Indices of a torch block's entries >= ``cutoff`` (a number, or one
    per row)."""
    if block.dtype == _torch().bfloat16 and not hasattr(cutoff, "shape") and cutoff > 0:
        return above_bf16(block, cutoff)
    # candidates are rare: find their rows first (one cheap pass)
    rows = (block.amax(dim=1) >= cutoff).nonzero()[:, 0]
    if len(rows) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy()
    row_cut = cutoff if not hasattr(cutoff, "shape") else cutoff[rows, None]
    found = (block[rows] >= row_cut).nonzero()
    return rows[found[:, 0]].numpy(), found[:, 1].numpy()


def above_bf16(block, cutoff):
    """:func:`above` for a bfloat16 block and one positive ``cutoff``."""
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


class Int8Products:
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
        self.fallback = Products(queries, keys, "fp32")
        self._query = None
        self.blocks = []
        with torch.inference_mode(), warnings.catch_warnings():
            # quantised tensors are deprecated in torch; make_products falls
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
        margin of it (``upper``: see :meth:`Products.candidates`)."""
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
                mask_diagonal(block, q0 - k0)
            cutoff = ((threshold - margin) * r).float()
            if not bool(loose.any()):
                return above(block, cutoff)
            # queries with a loose margin: float32 products instead
            cutoff[loose] = float("inf")
            qi, kj = above(block, cutoff)
            rows = loose.nonzero()[:, 0]
            exact = self.q[q0:q1][rows] @ self.k[k0:k1].T
            fi, fj = above(exact, threshold - self.fallback.margin)
            qi = np.concatenate([qi, rows.numpy()[fi]])
            kj = np.concatenate([kj, fj])
            order = np.lexsort((kj, qi))
            return qi[order], kj[order]


