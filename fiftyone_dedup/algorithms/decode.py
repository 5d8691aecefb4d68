"""Image decoding for encoders: fast, bounded in memory, as displayed.

Pure PIL/numpy; knows nothing of FiftyOne.

Every encoder reads images through :func:`load_rgb`, which

-   decodes JPEGs straight to a reduced size with PIL's draft mode (DCT
    scaling), so a full-HD photo costs a fraction of a full decode;
-   refuses images whose decoded size would exceed ``max_pixels`` with a
    message naming the size, instead of exhausting memory (a JPEG of any size
    is accepted when draft decoding brings it under the limit);
-   applies the EXIF orientation, so an image is encoded as it is displayed;
-   converts every colour mode (palette, greyscale+alpha, CMYK, 16-bit, float)
    to 8-bit RGB the way imagededup does (through RGBA, alpha ignored), with
    16-bit and float images scaled rather than clipped.
"""

import contextlib
import logging
import os
import stat
import threading
import warnings

import numpy as np
from PIL import Image, ImageOps

logger = logging.getLogger(__name__)

#: Pillow's own hard limit (twice ``Image.MAX_IMAGE_PIXELS``)
DEFAULT_MAX_PIXELS = 2 * 89_478_485

_PIL_GUARD_LOCK = threading.Lock()

#: whether pillow-heif's HEIC/HEIF opener (iPhone photos) is registered;
#: ``None`` until the first image is opened (its import costs ~6 ms, which
#: a search of stored encodings need not pay)
HEIF = None


def register_heif():
    """Registers pillow-heif's opener with PIL once, if it is installed.

    Returns:
        whether HEIC/HEIF files can be decoded
    """
    global HEIF
    if HEIF is None:
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
            HEIF = True
        except Exception:  # noqa: BLE001 - optional decoder
            HEIF = False
    return HEIF

_HEIF_EXTENSIONS = (".heic", ".heif", ".avif")


def _new_lock_after_fork():
    # a worker forked while another thread held the lock must not wait on
    # it forever
    global _PIL_GUARD_LOCK
    _PIL_GUARD_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_after_fork)


class DecodeError(Exception):
    """An image could not be decoded; the message says why."""


_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def not_regular_reason(path):
    """Why a path is not a regular file that can be read, or None.

    A FIFO would block whoever opens it until a writer comes, and a device
    such as ``/dev/zero`` never ends, so such paths are never opened.
    Symbolic links are followed. Paths that cannot be stat'ed give None (the
    caller's open says why).

    Args:
        path: a file path

    Returns:
        a reason such as ``"not a regular file: a named pipe (FIFO)"``, or
        None for a regular file, a directory, or a path that cannot be stat'ed
    """
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
        return None
    kind = next((k for test, k in _KINDS if test(st.st_mode)), "a special file")
    if os.path.islink(path):
        try:
            kind += f", through a symbolic link to {os.path.realpath(path)}"
        except (OSError, ValueError):  # pragma: no cover - a link just stat'ed
            pass
    return f"not a regular file: {kind}"


@contextlib.contextmanager
def _bomb_guard_disabled():
    # We check the size ourselves after draft() has been applied, so that a
    # huge JPEG that decodes at 1/8 scale is not refused
    with _PIL_GUARD_LOCK:
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                yield
        finally:
            Image.MAX_IMAGE_PIXELS = old


def open_image(path, draft_size=None, max_pixels=DEFAULT_MAX_PIXELS, luma=False):
    """Opens an image lazily, reducing JPEGs with draft mode.

    Args:
        path: the image path
        draft_size (None): an optional ``(width, height)``; JPEGs are decoded
            at the smallest DCT scale (1, 1/2, 1/4, 1/8) that is still at least
            this large. An int asks for that much on the longer side only
        max_pixels (DEFAULT_MAX_PIXELS): the most pixels an image may decode
            to; ``None`` for no limit
        luma (False): with ``draft_size``, decode colour JPEGs to their luma
            channel only (mode ``"L"``), skipping chroma

    Returns:
        a lazily-loaded ``PIL.Image.Image``

    Raises:
        DecodeError: if the file is not an image or is too large
    """
    reason = not_regular_reason(path)
    if reason:
        raise DecodeError(reason)
    heif = register_heif()
    try:
        with _bomb_guard_disabled():
            img = Image.open(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise DecodeError("broken symbolic link (its target does not exist)") from None
        raise DecodeError("file not found") from None
    except PermissionError:
        raise DecodeError("permission denied") from None
    except IsADirectoryError:
        raise DecodeError("is a directory, not an image") from None
    except Image.UnidentifiedImageError:
        size = _file_size(path)
        if size == 0:
            raise DecodeError("empty file (0 bytes)") from None
        if not heif and str(path).lower().endswith(_HEIF_EXTENSIONS):
            raise DecodeError(
                "HEIC/HEIF image, and no decoder is installed (pip install pillow-heif)"
            ) from None
        raise DecodeError("not an image PIL can identify") from None
    except OSError as e:
        raise DecodeError(f"cannot open: {e}") from None

    width, height = img.size
    if isinstance(draft_size, int):
        draft_size = (draft_size, 1) if width >= height else (1, draft_size)
    if draft_size is not None and img.format == "JPEG":
        try:
            img.draft("L" if luma else "RGB", tuple(int(s) for s in draft_size))
        except Exception:  # pragma: no cover - draft is best effort
            pass

    if max_pixels is not None:
        dw, dh = img.size
        if dw * dh > max_pixels:
            img.close()
            raise DecodeError(
                f"image too large: {width}x{height} pixels exceeds the limit "
                f"of {max_pixels} pixels (max_pixels)"
            )

    return img


def to_rgb(img):
    """Converts a PIL image of any mode to 8-bit RGB, as imagededup does.

    Alpha is dropped (through RGBA, as imagededup does). 16-bit, 32-bit and
    float greyscale images are scaled to 8 bits instead of being clipped.

    Args:
        img: a ``PIL.Image.Image``

    Returns:
        an RGB ``PIL.Image.Image``
    """
    mode = img.mode
    if mode == "RGB":
        return img

    if mode.startswith("I") or mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        if arr.ndim == 3:  # pragma: no cover - multi-band int modes are rare
            arr = arr[..., 0]
        top = float(arr.max()) if arr.size else 0.0
        if mode == "F" and top <= 1.0:
            arr = arr * 255.0  # floats in [0, 1]
        elif mode.startswith("I;16") or 255.0 < top <= 65535.0:
            arr = arr / 257.0
        elif top > 65535.0:
            arr = arr * (255.0 / top)
        img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))
        return img.convert("RGB")

    return img.convert("RGBA").convert("RGB")


def load_rgb(path, draft_size=None, max_pixels=DEFAULT_MAX_PIXELS, luma=False):
    """Decodes an image to RGB as displayed (EXIF orientation applied).

    Args:
        path: the image path
        draft_size (None): an optional ``(width, height)`` (or longer side)
            to which JPEGs may be DCT-reduced while decoding (see
            :func:`open_image`)
        max_pixels (DEFAULT_MAX_PIXELS): the most pixels an image may decode
            to; ``None`` for no limit
        luma (False): with ``draft_size``, return draft-decoded JPEGs as their
            8-bit luma (mode ``"L"``) instead of RGB: what greyscale encoders
            such as DHash use, without decoding chroma

    Returns:
        an RGB (or, with ``luma``, possibly ``"L"``) ``PIL.Image.Image``

    Raises:
        DecodeError: with a message naming the reason
    """
    img = open_image(path, draft_size=draft_size, max_pixels=max_pixels, luma=luma)
    keep_luma = luma and draft_size is not None and img.format == "JPEG"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()
            img = _exif_transpose(img)
            if keep_luma and img.mode == "L":
                return img
            return to_rgb(img)
    except DecodeError:
        raise
    except OSError as e:
        msg = str(e)
        if "truncated" in msg:
            raise DecodeError(f"truncated image file ({msg})") from None
        raise DecodeError(f"cannot decode: {msg}") from None
    except (ValueError, SyntaxError, MemoryError, EOFError) as e:
        raise DecodeError(f"cannot decode: {type(e).__name__}: {e}") from None
    except Exception as e:  # noqa: BLE001 - PIL plugins raise anything
        raise DecodeError(f"cannot decode: {type(e).__name__}: {e}") from None


def from_file(fn, path, draft_size=None, max_pixels=DEFAULT_MAX_PIXELS, what="read"):
    """``fn`` of an image file decoded in grey (see :func:`load_rgb` with
    ``luma=True``); never raises for a bad file.

    Args:
        fn: a function of the decoded PIL image
        path: the image path
        draft_size (None): see :func:`load_rgb`
        max_pixels (DEFAULT_MAX_PIXELS): refuse larger images
        what ("read"): what is done with the file, for the debug log

    Returns:
        a tuple ``(result, error)``: one of them is None
    """
    try:
        img = load_rgb(path, draft_size=draft_size, max_pixels=max_pixels, luma=True)
        return fn(img), None
    except DecodeError as e:
        return None, str(e)
    except Exception as e:  # noqa: BLE001 - one bad file never stops a run
        logger.debug("Failed to %s %s", what, path, exc_info=True)
        return None, f"{type(e).__name__}: {e}"


def _exif_transpose(img):
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - malformed EXIF is not fatal
        return img
    if orientation in (None, 1):
        return img
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - malformed EXIF is not fatal
        logger.debug("Ignoring malformed EXIF orientation", exc_info=True)
        return img


def _file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def file_stamp(path):
    """Returns a string that changes when a file's content likely changed.

    Args:
        path: a file path

    Returns:
        ``"<size>:<mtime_ns>"``, or ``None`` if the file cannot be stat'ed
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}"
