"""CNN embeddings with the real pretrained default model on real photos:
quality, the inference pipeline, custom model routes and their errors
(model names and errors: test_models.py; the default model itself:
test_lite0.py; FiftyOne models: test_zoo.py)."""

import os

import numpy as np
import pytest

from fiftyone_dedup.algorithms import embeddings
from fiftyone_dedup.algorithms import grouping
from fiftyone_dedup.algorithms import models
from fiftyone_dedup.algorithms import search

import helpers
from test_lite0 import PlainLite0, _plain_lite0, _plain_transform, _unit



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
        "callable": (
            "custom:test_torch_module_callable_and_custom_model_routes.<locals>.embed_batch"
        ),
        "custom": "custom:lite0-plain",
    }
    for route, kwargs in routes.items():
        assert models.model_name(**kwargs) == names[route]
        got = [v for v, e in embeddings.embed_files(paths, num_workers=0, **kwargs)]
        cos = np.sum(_unit(np.stack(got)) * _unit(ours), axis=1)
        # the same network: only the decoding path differs (full vs draft)
        assert np.all(cos > 0.99), (route, cos)



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




def test_models_that_return_no_embeddings_are_explained(photo_set):
    tf = _plain_transform()
    paths = photo_set["originals"][:2]
    with pytest.raises(ValueError, match=r"expected \(batch, features\)"):
        list(embeddings.embed_files(paths, model=lambda b: b.sum(), transform=tf))

    def ragged(img):
        return tf(img)[:, :, : img.width % 7 + 5]

    with pytest.raises(ValueError, match="different shapes"):
        list(embeddings.embed_files(paths, model=lambda b: b, transform=ragged))
