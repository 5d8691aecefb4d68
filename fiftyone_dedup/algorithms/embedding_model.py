"""A model ready for batched inference, whatever runs it (torch, ONNX
Runtime, a FiftyOne model), and the transforms that prepare its input.

Pure; torch is imported only when a batch is embedded.
"""

import logging

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)


class ModelUnavailableError(ValueError):
    """A model cannot be loaded here (weights not downloadable, a package
    missing); the message says why and what to use instead."""


# ------------------------------------------------------------- transforms


class SquashTransform:
    """Resizes a whole PIL image to a fixed size (no crop) and returns it as
    a ``uint8`` ``(C, H, W)`` tensor; the model normalises on its device.

    Args:
        size: the ``(width, height)`` to resize to
        grey (False): return the luma channel only, ``(1, H, W)``
    """

    def __init__(self, size, grey=False):
        self.size = tuple(int(s) for s in size)
        self.grey = grey

    def __call__(self, img):
        import torch

        mode = "L" if self.grey else "RGB"
        if img.mode != mode:
            img = img.convert(mode)
        if img.size != self.size:
            img = img.resize(self.size, Image.BILINEAR)
        arr = np.array(img)  # a writable copy, as torch wants
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(arr))

    def __repr__(self):
        return f"SquashTransform(size={self.size}, grey={self.grey})"


class EmbeddingModel:
    """A model ready for batched inference.

    Args:
        name: the model's identity, stored with each embedding so that
            embeddings of another model are never reused
        forward: a function of a batch (a tensor on ``device``, or a list
            when ``stack`` is False) returning ``(N, D)`` embeddings
        transform: a function of a PIL RGB image returning one input
        input_size (None): the ``(width, height)`` that images may be
            draft-decoded down to (never below); ``None`` for a full decode
        module (None): the ``torch.nn.Module`` to move to the device, if any
        channels_last (False): feed batches in channels-last layout
        stack (True): stack inputs into one tensor (else pass a list)
        device (None): the ``torch.device`` the model runs on
        luma (False): JPEGs may be decoded to their luma channel only (for
            models that see images in greyscale)
        runtime ("torch"): what runs the model (``"torch"``,
            ``"onnxruntime"``, ``"fiftyone"``), for logs and benchmarks
    """

    def __init__(
        self,
        name,
        forward,
        transform,
        input_size=None,
        module=None,
        channels_last=False,
        stack=True,
        device=None,
        luma=False,
        runtime="torch",
    ):
        self.name = name
        self.forward = forward
        self.transform = transform
        self.input_size = input_size
        self.module = module
        self.channels_last = channels_last
        self.stack = stack
        self.device = device
        self.luma = luma
        self.runtime = runtime

    def to(self, device):
        """Moves the model to a device.

        Args:
            device: a ``torch.device``

        Returns:
            self
        """
        if self.module is not None:
            self.module.to(device)
            self.device = device
            # a CPU-only runtime (ONNX Runtime) gives way to torch elsewhere
            if getattr(self.forward, "cpu_only", False) and device.type != "cpu":
                self.forward, self.runtime = self.module, "torch"
        return self

    def embed_batch(self, batch):
        """Embeds one batch of transformed inputs.

        Args:
            batch: a stacked tensor (or a list, for models that take lists)

        Returns:
            an ``(N, D)`` float32 numpy array
        """
        import torch

        if self.stack and self.device is not None:
            batch = batch.to(self.device, non_blocking=True)
            if self.channels_last and batch.dim() == 4:
                batch = batch.contiguous(memory_format=torch.channels_last)
        n = len(batch)
        with torch.inference_mode():
            out = self.forward(batch)
        return _as_embeddings(out, n, self.name)

    def __repr__(self):
        return (
            f"EmbeddingModel({self.name!r}, input_size={self.input_size}, "
            f"runtime={self.runtime!r})"
        )


def _as_embeddings(out, n, name):
    if hasattr(out, "detach"):
        out = out.detach().float().cpu().numpy()
    out = np.asarray(out, dtype=np.float32)
    # (N, D, 1, 1) feature maps, as pooled convnets return
    while out.ndim > 2 and out.shape[-1] == 1:
        out = out[..., 0]
    if out.ndim != 2 or out.shape[0] != n:
        raise ValueError(
            f"Model {name!r} returned an array of shape {out.shape} for a "
            f"batch of {n} images; expected (batch, features): one embedding "
            "vector per image"
        )
    return out



def transform_size(transform):
    """The ``(width, height)`` a transform produces, found by trying it on a
    blank image; ``None`` when it cannot be told."""
    try:
        out = transform(Image.new("RGB", (640, 480)))
        shape = tuple(out.shape)
    except Exception:  # noqa: BLE001 - an odd transform: decode fully
        logger.debug("Could not probe the transform's size", exc_info=True)
        return None
    if len(shape) != 3:
        return None
    return (int(shape[2]), int(shape[1]))


def draft_size(size):
    """The size images may be draft-decoded down to for a model whose input
    is ``size`` (``None``: decode fully)."""
    # imagededup's transforms resize to 256 then crop 224 (and the like):
    # decode to at least the larger side, so no detail is lost
    if size is None:
        return None
    side = int(max(size) * 8 / 7)
    return (side, side)

