"""FiftyOne models as embedding models (engine/zoo.py): zoo names and
FiftyOne model objects, known to algorithms.models once the engine is
imported."""

import os
import subprocess
import sys

import numpy as np
import pytest

from fiftyone_dedup.algorithms import embeddings
from fiftyone_dedup.algorithms import models
from fiftyone_dedup.engine import zoo

import helpers
from test_models import offline  # noqa: F401 - a fixture

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_fiftyone_model_route_gives_the_models_own_embeddings():
    import fiftyone.utils.torch as fout
    from PIL import Image

    config = fout.TorchImageModelConfig(
        {
            "entrypoint_fcn": "torchvision.models.mobilenet_v3_small",
            "entrypoint_args": {"weights": None},  # no download: random weights
            "embeddings_layer": "<classifier",
            "image_size": [224, 224],
            "image_mean": [0.485, 0.456, 0.406],
            "image_std": [0.229, 0.224, 0.225],
        }
    )
    fo_model = fout.TorchImageModel(config)
    paths = [p for p, _ in helpers.demo.sample_photos() if p.endswith(".png")][:3]
    assert models.model_name(fo_model) == "fiftyone:torchvision.models.mobilenet_v3_small"
    got = np.stack([v for v, e in embeddings.embed_files(paths, model=fo_model)])
    direct = fo_model.embed_all([Image.open(p).convert("RGB") for p in paths])
    assert got.shape == (3, 576)
    np.testing.assert_allclose(got, direct, rtol=1e-4, atol=1e-5)
    assert fo_model.preprocess  # the caller's model is left as it was



def test_zoo_model_offline_says_so(offline):
    name = "mobilenet-v2-imagenet-torch"
    assert models.model_name(name) == f"zoo:{name}"
    with pytest.raises(models.ModelUnavailableError) as err:
        models.load_model(name)
    msg = str(err.value)
    assert f"zoo model '{name}'" in msg and "download failed" in msg
    assert "'efficientnet-lite0'" in msg



def _zoo_model_without_embeddings():
    import fiftyone.zoo as foz

    for name in foz.list_zoo_models():
        if not foz.get_zoo_model(name).has_tag("embeddings"):
            return name
    pytest.skip("every zoo model exposes embeddings")



def test_a_zoo_model_without_embeddings_is_explained():
    with pytest.raises(ValueError, match="does not expose embeddings"):
        models.load_model(_zoo_model_without_embeddings())


def test_zoo_names_are_known_once_the_engine_is_imported():
    name = "mobilenet-v2-imagenet-torch"
    code = (
        "from fiftyone_dedup.algorithms import models\n"
        "try:\n"
        f"    models.model_name({name!r})\n"
        "except ValueError as e:\n"
        "    print('unknown' if 'Unknown model' in str(e) else e)\n"
        "import fiftyone_dedup.engine\n"
        f"print(models.model_name({name!r}))\n"
        "import fiftyone_dedup as fod\n"
        "print(fod.load_model is models.load_model)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": ROOT}, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["unknown", f"zoo:{name}", "True"]
    assert zoo.load_model is models.load_model
