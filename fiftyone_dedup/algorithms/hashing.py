"""Perceptual hashes of image files, pure PIL/numpy (no FiftyOne).

The hashes are imagededup's algorithms, so encodings are interchangeable
with ``imagededup.methods.DHash`` & co: a 64-bit hash written as 16 hex
digits. DHash (the default): the image in RGB, resized to 9x8 with Lanczos,
greyscale, one bit per pixel that is brighter than its left neighbour.

Speed comes from decoding each JPEG at the smallest DCT scale that keeps at
least ``DRAFT_SIZES[method]`` pixels (PIL draft mode), luma only (the hashes
are of the greyscale image, and a JPEG's luma is that greyscale), and from a
process pool. Draft decoding changes a hash by about half a bit on average
against a full decode (see the README); ``exact=True`` decodes fully and
gives hashes bit-identical to imagededup's.
"""

import multiprocessing
import os

import numpy as np
from PIL import Image

from fiftyone_dedup.algorithms import decode


#: the hash methods, by name
METHODS = ("dhash", "phash", "ahash", "whash")

#: JPEGs are draft-decoded to at least this size before hashing, per method
DRAFT_SIZES = {
    "dhash": (64, 64),
    "ahash": (64, 64),
    "phash": (128, 128),
    "whash": (512, 512),
}

# Below this many files, a pool costs more than it saves
_MIN_FILES_FOR_POOL = 64


def _bits_to_hex(bits):
    return np.packbits(np.asarray(bits, dtype=bool).ravel()).tobytes().hex()


def dhash(img):
    """DHash of an image, as imagededup computes it.

    Args:
        img: an RGB (or greyscale ``"L"``) ``PIL.Image.Image``

    Returns:
        the 64-bit hash as 16 hex digits
    """
    small = img.resize((9, 8), Image.LANCZOS).convert("L")
    arr = np.asarray(small)
    return _bits_to_hex(arr[:, 1:] > arr[:, :-1])


def ahash(img):
    """Average hash (8x8, pixels at or above the mean), as imagededup
    computes it.

    Args:
        img: an RGB ``PIL.Image.Image``

    Returns:
        the 64-bit hash as 16 hex digits
    """
    arr = np.asarray(img.resize((8, 8), Image.LANCZOS).convert("L"))
    return _bits_to_hex(arr >= np.mean(arr))


def phash(img):
    """Perceptual hash (32x32 DCT, the 8x8 low frequencies at or above their
    median, DC excluded from the median), as imagededup computes it.

    Args:
        img: an RGB ``PIL.Image.Image``

    Returns:
        the 64-bit hash as 16 hex digits
    """
    from scipy.fftpack import dct

    arr = np.asarray(img.resize((32, 32), Image.LANCZOS).convert("L"))
    coeffs = dct(dct(arr, axis=0), axis=1)[:8, :8]
    return _bits_to_hex(coeffs >= np.median(coeffs.ravel()[1:]))


def whash(img):
    """Wavelet hash (256x256, Haar LL band of level 5 at or above its
    median), as imagededup computes it.

    Args:
        img: an RGB ``PIL.Image.Image``

    Returns:
        the 64-bit hash as 16 hex digits
    """
    import pywt

    arr = np.asarray(img.resize((256, 256), Image.LANCZOS).convert("L"))
    ll = pywt.wavedec2(data=arr / 255, wavelet="haar", level=5)[0]
    return _bits_to_hex(ll >= np.median(ll.ravel()))


_HASHERS = {"dhash": dhash, "phash": phash, "ahash": ahash, "whash": whash}


def validate_method(method):
    """Checks a hash method name.

    Args:
        method: a hash method name, case-insensitive

    Returns:
        the lower-case name

    Raises:
        ValueError: if the method is unknown
    """
    name = str(method).lower()
    if name not in _HASHERS:
        raise ValueError(
            f"Unknown hash method {method!r}; expected one of "
            f"{', '.join(METHODS)}"
        )
    return name


def hash_image(img, method="dhash"):
    """Hashes a decoded RGB image.

    Args:
        img: an RGB ``PIL.Image.Image``
        method ("dhash"): one of :data:`METHODS`

    Returns:
        the hash as 16 hex digits
    """
    return _HASHERS[validate_method(method)](img)


def hash_file(
    path,
    method="dhash",
    exact=False,
    max_pixels=decode.DEFAULT_MAX_PIXELS,
):
    """Hashes one image file; never raises for a bad file.

    Args:
        path: the image path
        method ("dhash"): one of :data:`METHODS`
        exact (False): decode JPEGs fully instead of with draft mode, giving
            hashes bit-identical to imagededup's
        max_pixels (decode.DEFAULT_MAX_PIXELS): refuse images that would
            decode to more pixels than this

    Returns:
        a tuple ``(hash, error)``: the hash as 16 hex digits and ``None``, or
        ``None`` and a message saying why the image could not be hashed
    """
    method = validate_method(method)
    hasher = _HASHERS[method]
    draft = None if exact else DRAFT_SIZES[method]
    return decode.from_file(hasher, path, draft, max_pixels, what="hash")


#: transforms whose hashes make matching invariant to them
INVARIANCES = {
    "flip": (Image.Transpose.FLIP_LEFT_RIGHT,),
    "rotation": (
        Image.Transpose.ROTATE_90,
        Image.Transpose.ROTATE_180,
        Image.Transpose.ROTATE_270,
    ),
    "dihedral": (
        Image.Transpose.FLIP_LEFT_RIGHT,
        Image.Transpose.ROTATE_90,
        Image.Transpose.ROTATE_180,
        Image.Transpose.ROTATE_270,
        Image.Transpose.FLIP_TOP_BOTTOM,
        Image.Transpose.TRANSPOSE,
        Image.Transpose.TRANSVERSE,
    ),
}


def validate_invariance(invariance):
    """Checks an invariance name.

    Args:
        invariance: ``None``, ``"flip"`` (mirror), ``"rotation"`` (90, 180,
            270 degrees) or ``"dihedral"`` (all flips and rotations)

    Returns:
        the name, or None

    Raises:
        ValueError: naming the choices
    """
    if invariance in (None, "none"):
        return None
    if invariance not in INVARIANCES:
        raise ValueError(
            f"Unknown invariance {invariance!r}; expected None, "
            f"{', '.join(INVARIANCES)}"
        )
    return invariance


def hash_file_variants(
    path,
    method="dhash",
    invariance="flip",
    exact=False,
    max_pixels=decode.DEFAULT_MAX_PIXELS,
):
    """Hashes an image and its flipped/rotated versions, decoding it once.

    Args:
        path: the image path
        method ("dhash"): one of :data:`METHODS`
        invariance ("flip"): a key of :data:`INVARIANCES`
        exact (False): decode JPEGs fully
        max_pixels (decode.DEFAULT_MAX_PIXELS): refuse larger images

    Returns:
        a tuple ``(hash, variant_hashes, error)``
    """
    method = validate_method(method)
    hasher = _HASHERS[method]
    draft = None if exact else DRAFT_SIZES[method]

    def hashes(img):
        return hasher(img), [hasher(img.transpose(t)) for t in INVARIANCES[invariance]]

    got, error = decode.from_file(hashes, path, draft, max_pixels, what="hash")
    return (None, None, error) if got is None else (got[0], got[1], None)


def _hash_task(args):
    path, method, exact, max_pixels, invariance = args
    if invariance:
        return hash_file_variants(
            path, method=method, invariance=invariance, exact=exact, max_pixels=max_pixels
        )
    return hash_file(path, method=method, exact=exact, max_pixels=max_pixels)


def default_num_workers():
    """The number of CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def pool_context():
    """The multiprocessing context for decode workers.

    Workers only decode images, so ``fork`` is safe and avoids re-importing
    the caller's ``__main__`` (which ``spawn`` does); elsewhere, the platform
    default.
    """
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and os.name == "posix":
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()  # pragma: no cover


def worker_init(*_):
    """Runs first in every decode worker (a pool process or a DataLoader
    worker).

    A forked worker inherits its parent's signal handling. Where the parent
    is a server with an asyncio loop (the App), the wakeup fd is shared with
    the parent, so the SIGTERM that ends a worker would reach the parent's
    loop and shut the server down. Workers get their own default handling.
    """
    import signal

    try:
        signal.set_wakeup_fd(-1)
    except (ValueError, OSError):  # pragma: no cover - not the main thread
        pass
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def process_pool(num_workers):
    """A pool of ``num_workers`` decode workers (see :func:`pool_context`)."""
    return pool_context().Pool(num_workers, initializer=worker_init)


def hash_files(
    paths,
    method="dhash",
    exact=False,
    num_workers=None,
    max_pixels=decode.DEFAULT_MAX_PIXELS,
    invariance=None,
):
    """Hashes image files in a process pool, yielding results in order.

    Args:
        paths: a list of image paths
        method ("dhash"): one of :data:`METHODS`
        exact (False): decode JPEGs fully (bit-identical to imagededup)
        num_workers (None): the number of worker processes; ``None`` for one
            per CPU, ``0`` or ``1`` to hash in this process
        max_pixels (decode.DEFAULT_MAX_PIXELS): refuse larger images
        invariance (None): also hash flipped/rotated versions (see
            :data:`INVARIANCES`)

    Yields:
        a ``(hash, error)`` tuple per path, in the order of ``paths``; with
        ``invariance``, ``(hash, variant_hashes, error)``
    """
    method = validate_method(method)
    invariance = validate_invariance(invariance)
    paths = list(paths)
    if num_workers is None:
        num_workers = default_num_workers()

    tasks = ((p, method, exact, max_pixels, invariance) for p in paths)
    if num_workers <= 1 or len(paths) < _MIN_FILES_FOR_POOL:
        yield from map(_hash_task, tasks)
        return

    chunksize = max(1, min(32, len(paths) // (num_workers * 8)))
    with process_pool(num_workers) as pool:
        yield from pool.imap(_hash_task, tasks, chunksize=chunksize)


def hex_to_codes(hashes):
    """Converts 64-bit hex hashes to a ``uint64`` array.

    Args:
        hashes: an iterable of 16-digit hex strings

    Returns:
        a ``uint64`` numpy array

    Raises:
        ValueError: naming the first value that is not a 64-bit hex hash
    """
    hashes = list(hashes)
    if not hashes:
        return np.zeros(0, dtype=np.uint64)
    try:
        if all(isinstance(h, str) and len(h) == 16 for h in hashes):
            buf = bytes.fromhex("".join(hashes))
            return np.frombuffer(buf, dtype=">u8").astype(np.uint64)
    except ValueError:
        pass
    for h in hashes:
        _check_hex(h)
    raise ValueError("Invalid hash values")  # pragma: no cover


def _check_hex(h):
    if not isinstance(h, str):
        raise ValueError(f"Expected a 64-bit hash as 16 hex digits, got {h!r}")
    if len(h) != 16:
        raise ValueError(
            f"Expected a 64-bit hash as 16 hex digits, got {h!r} "
            f"({len(h)} characters)"
        )
    try:
        int(h, 16)
    except ValueError:
        raise ValueError(f"Not a hex hash: {h!r}") from None


def codes_to_hex(codes):
    """Converts a ``uint64`` array to 16-digit hex strings.

    Args:
        codes: a ``uint64`` array-like

    Returns:
        a list of strings
    """
    buf = np.asarray(codes, dtype=np.uint64).astype(">u8").tobytes().hex()
    return [buf[i : i + 16] for i in range(0, len(buf), 16)]


def hamming(a, b):
    """Hamming distance between two hex hashes.

    Args:
        a: a hex hash
        b: a hex hash

    Returns:
        the number of differing bits
    """
    return bin(int(a, 16) ^ int(b, 16)).count("1")
