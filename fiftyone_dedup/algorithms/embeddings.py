"""CNN embeddings of image files: batched inference.

Knows nothing of FiftyOne datasets; torch is imported lazily. Models are
resolved by :mod:`fiftyone_dedup.algorithms.models` (the offline default
``"efficientnet-lite0"``, imagededup's models, FiftyOne zoo models, torch
modules and callables).

Speed: each image is decoded straight to about the model's input size (JPEG
DCT scaling, see :mod:`fiftyone_dedup.algorithms.decode`) in DataLoader worker
processes (fork), batches run under ``torch.inference_mode`` on the GPU when
there is one (``device="auto"``), and results stream out one batch at a
time. Unreadable images are reported per file and skipped.
"""

import logging

import numpy as np

from fiftyone_dedup.algorithms import decode
from fiftyone_dedup.algorithms.models import EmbeddingModel, load_model

logger = logging.getLogger(__name__)

#: images per batch by default, per device type
DEFAULT_BATCH_SIZES = {"cpu": 16, "cuda": 64, "mps": 32}

# Below this many images, worker processes cost more than they save
_MIN_FILES_FOR_WORKERS = 32


class _ImageFiles:
    """A map-style dataset of ``(index, input, error)`` per image file."""

    def __init__(
        self, paths, transform, draft_size, max_pixels, luma=False, transposes=()
    ):
        self.paths = paths
        self.transform = transform
        self.draft_size = draft_size
        self.max_pixels = max_pixels
        self.luma = luma
        self.transposes = tuple(transposes)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        path = self.paths[i]
        try:
            img = decode.load_rgb(
                path,
                draft_size=self.draft_size,
                max_pixels=self.max_pixels,
                luma=self.luma,
            )
        except decode.DecodeError as e:
            return i, None, str(e)
        except Exception as e:  # noqa: BLE001 - one bad file never stops a run
            return i, None, f"cannot decode: {type(e).__name__}: {e}"
        try:
            if not self.transposes:
                return i, self.transform(img), None
            # the image and its flipped/rotated versions, one after another
            views = [img] + [img.transpose(t) for t in self.transposes]
            return i, [self.transform(v) for v in views], None
        except Exception as e:  # noqa: BLE001
            return i, None, f"transform failed: {type(e).__name__}: {e}"


class _Collate:
    def __init__(self, stack, views=1):
        self.stack = stack
        self.views = views

    def __call__(self, items):
        index = [i for i, x, _ in items if x is not None]
        inputs = [x for _, x, _ in items if x is not None]
        if self.views > 1:
            inputs = [v for x in inputs for v in x]
        errors = {i: e for i, x, e in items if x is None}
        if self.stack and inputs:
            import torch

            try:
                inputs = torch.stack(inputs)
            except RuntimeError as e:
                shapes = sorted({tuple(x.shape) for x in inputs})
                raise ValueError(
                    f"The transform returned inputs of different shapes "
                    f"{shapes}; it must resize every image to one size ({e})"
                ) from None
        return index, inputs, errors


def default_batch_size(device):
    """The default batch size on a device.

    Args:
        device: a ``torch.device``

    Returns:
        an int
    """
    return DEFAULT_BATCH_SIZES.get(getattr(device, "type", "cpu"), 16)


def default_num_workers():
    """Decode workers by default: one per CPU beyond the first, at most 8
    (inference uses the CPUs too)."""
    from fiftyone_dedup.algorithms.hashing import default_num_workers as cpus

    return max(1, min(8, cpus() - 1))


def embed_files(
    paths,
    model=None,
    transform=None,
    batch_size=None,
    num_workers=None,
    device="auto",
    max_pixels=decode.DEFAULT_MAX_PIXELS,
    invariance=None,
):
    """Embeds image files in batches, yielding one result per file in order.

    The model is loaded before the first result (so a model that cannot be
    loaded fails before anything is read); images are decoded in worker
    processes while the model runs.

    Args:
        paths: a list of image paths
        model (None): see :func:`load_model`; a loaded
            :class:`EmbeddingModel` is used as is
        transform (None): see :func:`load_model`
        batch_size (None): images per batch; ``None`` for 16 on the CPU, 64
            on a GPU
        num_workers (None): decode worker processes; ``None`` for one per CPU
            beyond the first (at most 8), ``0`` to decode in this process
        device ("auto"): see :func:`resolve_device`
        max_pixels (decode.DEFAULT_MAX_PIXELS): refuse larger images
        invariance (None): also embed flipped/rotated versions (a key of
            :data:`fiftyone_dedup.algorithms.hashing.INVARIANCES`); each batch then
            holds every version of its images

    Yields:
        a ``(vector, error)`` tuple per path: a ``float32`` array and
        ``None``, or ``None`` and why the image could not be embedded; with
        ``invariance``, ``(vector, variants, error)`` where ``variants`` is a
        list of the versions' vectors

    Raises:
        ModelUnavailableError: if the model cannot be loaded here
        ValueError: for bad arguments or a model that returns no embeddings
    """
    paths = list(paths)
    batch_size = check_count(batch_size, "batch_size", minimum=1)
    num_workers = check_count(num_workers, "num_workers", minimum=0)
    loaded = load_model(model, transform=transform, device=device)
    if not paths:
        return
    if batch_size is None:
        batch_size = default_batch_size(loaded.device)
    if num_workers is None:
        num_workers = default_num_workers()
    if len(paths) < _MIN_FILES_FOR_WORKERS:
        num_workers = 0

    import torch.utils.data

    from fiftyone_dedup.algorithms.hashing import pool_context, worker_init

    from fiftyone_dedup.algorithms.hashing import INVARIANCES, validate_invariance

    invariance = validate_invariance(invariance)
    transposes = INVARIANCES[invariance] if invariance else ()
    views = 1 + len(transposes)
    files = _ImageFiles(
        paths, loaded.transform, loaded.input_size, max_pixels, loaded.luma,
        transposes,
    )
    kwargs = {}
    if num_workers > 0:
        kwargs = dict(
            multiprocessing_context=pool_context(), prefetch_factor=2,
            worker_init_fn=worker_init,
        )
    loader = torch.utils.data.DataLoader(
        files,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_Collate(loaded.stack, views),
        pin_memory=getattr(loaded.device, "type", "cpu") == "cuda",
        **kwargs,
    )
    for index, inputs, errors in loader:
        vectors = loaded.embed_batch(inputs) if index else None
        by_index = {}
        if index:
            vectors = np.asarray(vectors).reshape(len(index), views, -1)
            by_index = dict(zip(index, vectors))
        first = min(index[:1] + list(errors))  # batches are contiguous
        for i in range(first, first + len(index) + len(errors)):
            if i in errors:
                yield (None, None, errors[i]) if invariance else (None, errors[i])
                continue
            v = by_index[i]
            if not np.all(np.isfinite(v)):
                error = f"the model returned non-finite values ({loaded.name})"
                yield (None, None, error) if invariance else (None, error)
            elif invariance:
                yield v[0], [x.tolist() for x in v[1:]], None
            else:
                yield v[0], None


def check_count(value, name, minimum):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def embed_images(images, model=None, transform=None, device="auto"):
    """Embeds PIL images in one batch (for small sets and tests).

    Args:
        images: a list of PIL images
        model (None): see :func:`load_model`
        transform (None): see :func:`load_model`
        device ("auto"): see :func:`resolve_device`

    Returns:
        an ``(n, D)`` float32 array
    """
    loaded = model if isinstance(model, EmbeddingModel) else load_model(
        model, transform=transform, device=device
    )
    items = [loaded.transform(img.convert("RGB")) for img in images]
    _, inputs, _ = _Collate(loaded.stack)([(i, x, None) for i, x in enumerate(items)])
    return loaded.embed_batch(inputs)
