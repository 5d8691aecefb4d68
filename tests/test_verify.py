"""Verification of candidate pairs, on real images made here.

Homogeneous-domain hard negatives (pages of text in one layout, tiles of one
texture, crops of different regions of one large photo, frames of a star
field, tiny noise images): no pair may be verified. Near-duplicates of every
kind and close-to-duplicates of real photos: every pair must be. (The
find pipeline with verification: test_find_verified.py.)
"""

import itertools

import pytest
from PIL import Image

import helpers
import verify_sets
from fiftyone_dedup.algorithms import verify


def _features(images):
    return [verify.image_features(im) for im in images]


def _verified_pairs(feats):
    return [
        (i, j, s)
        for i, j in itertools.combinations(range(len(feats)), 2)
        if (s := verify.verify_pair(feats[i], feats[j])) >= 0
    ]


def _skimage(name):
    import skimage.data as sd

    return Image.fromarray(getattr(sd, name)())


@pytest.mark.parametrize(
    "name, make",
    [
        ("text pages", lambda: verify_sets.text_pages(24)),
        ("texture tiles", lambda: verify_sets.texture_tiles(24)),
        (
            "astronaut regions",
            lambda: verify_sets.photo_regions(24, _skimage("astronaut"), size=200),
        ),
        ("coffee regions", lambda: verify_sets.photo_regions(24, _skimage("coffee"), size=200)),
        ("chelsea regions", lambda: verify_sets.photo_regions(24, _skimage("chelsea"), size=200)),
        ("star fields", lambda: verify_sets.star_fields(24)),
        ("noise", lambda: verify_sets.noise_images(24)),
    ],
)
def test_hard_negatives_never_verified(name, make):
    images = make()
    assert len(images) == 24
    assert _verified_pairs(_features(images)) == [], name


def _photos():
    # real photos shipped by installed packages, large enough to transform
    out = []
    for k in range(helpers.num_photos()):
        img = helpers.photo(k)
        if min(img.size) >= 256:
            out.append(img)
    return out[:6]


@pytest.fixture(scope="module")
def photo_features():
    return [verify.image_features(p) for p in _photos()]


@pytest.mark.parametrize("kind", list(verify_sets.TRANSFORMS))
def test_every_near_duplicate_kind_verified(kind, photo_features, tmp_path):
    fn, fmt = verify_sets.TRANSFORMS[kind]
    photos = _photos()
    assert len(photos) >= 4
    for k, (img, fa) in enumerate(zip(photos, photo_features)):
        path = verify_sets.write(fn(img), str(tmp_path / f"{kind}_{k}"), fmt)
        fb, err = verify.file_features(path)
        assert err is None
        assert verify.verify_pair(fa, fb) >= verify.MIN_INLIERS, (kind, k)
        assert verify.verify_pair(fb, fa) >= verify.MIN_INLIERS, (kind, k)


def test_different_photos_not_verified(photo_features):
    assert _verified_pairs(photo_features) == []


def test_textureless_images_by_thumbnail():
    grey = Image.new("RGB", (200, 150), (90, 90, 90))
    other = Image.new("RGB", (200, 150), (220, 220, 220))
    fa, fb, fc = _features([grey, grey.resize((100, 75)), other])
    assert verify.verify_pair(fa, fb) == verify.THUMB_SCORE
    assert verify.verify_pair(fa, fc) == -1


def test_unreadable_file_gives_reason(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    feats, err = verify.file_features(str(bad))
    assert feats is None and "not an image" in err
    assert verify.verify_pair(None, None) == -1


def test_validate_method():
    assert verify.validate_method(None) == "none"
    assert verify.validate_method("ORB") == "orb"
    with pytest.raises(ValueError, match="verify"):
        verify.validate_method("sift-please")


def test_small_photos_and_their_reencoded_copies_verified(tmp_path):
    # small images give few keypoints (photo 6 at 96 x 72 and its copy at
    # JPEG quality 70: 37 inliers); the thumbnails then confirm the weaker
    # geometric evidence
    photos = [helpers.photo(k).resize((96, 72)) for k in range(helpers.num_photos())]
    assert len(photos) >= 8
    originals, copies = [], []
    for k, img in enumerate(photos):
        for out, im, name in ((originals, img, "p"), (copies, helpers.jpeg(img, 70), "c")):
            feats, err = verify.file_features(helpers.save(im, str(tmp_path / f"{name}{k}.jpg")))
            assert err is None
            out.append(feats)
    for k, (fa, fb) in enumerate(zip(originals, copies)):
        assert verify.verify_pair(fa, fb) >= 0, k
        assert verify.verify_pair(fb, fa) >= 0, k
    assert _verified_pairs(originals) == []


@pytest.mark.parametrize(
    "name, make, size",
    [
        ("text pages", lambda: verify_sets.text_pages(24), (72, 96)),
        ("texture tiles", lambda: verify_sets.texture_tiles(24), (64, 64)),
        ("star fields", lambda: verify_sets.star_fields(24), (96, 72)),
        (
            "coffee regions",
            lambda: verify_sets.photo_regions(24, _skimage("coffee"), size=200),
            (80, 80),
        ),
    ],
)
def test_small_hard_negatives_never_verified(name, make, size):
    images = [im.resize(size, Image.LANCZOS) for im in make()]
    assert _verified_pairs(_features(images)) == [], name


def test_batched_matches_are_opencv_ratio_test(photo_features):
    # the numba kernel against OpenCV's own 2-nearest search, pair by pair
    import cv2
    import numpy as np

    feats = photo_features
    a, b = np.triu_indices(len(feats), 1)
    a, b = np.r_[a, b], np.r_[b, a]
    out_q, out_t, counts = verify._matches(feats, a, b, "descriptors")
    assert counts.sum() > 0
    for r, (i, j) in enumerate(zip(a, b)):
        da, db = feats[i].descriptors, feats[j].descriptors
        dist, nidx = cv2.batchDistance(
            da, db, cv2.CV_32S, normType=cv2.NORM_HAMMING, K=2, update=0, crosscheck=False
        )
        qi = np.flatnonzero(dist[:, 0] < verify.RATIO * dist[:, 1])
        n = counts[r]
        assert out_q[r, :n].tolist() == qi.tolist()
        assert out_t[r, :n].tolist() == nidx[qi, 0].tolist()
