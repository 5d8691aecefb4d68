"""Hashing: imagededup-compatible values, draft decoding, bad files."""

import os

import numpy as np
import pytest
from PIL import Image
from imagededup.methods import AHash, DHash, PHash, WHash

from fiftyone_dedup.algorithms import hashing

import helpers

IMAGEDEDUP = {"dhash": DHash, "phash": PHash, "ahash": AHash, "whash": WHash}


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    paths = []
    for i in range(helpers.num_photos(grey=True)):
        ext = "jpg" if i % 2 == 0 else "png"
        paths.append(helpers.save(helpers.photo(i, grey=True), str(d / f"p{i}.{ext}")))
    return paths


@pytest.mark.parametrize("method", sorted(IMAGEDEDUP))
def test_exact_hashes_equal_imagededup(photo_files, method):
    ref = IMAGEDEDUP[method](verbose=False)
    for path in photo_files:
        ours, err = hashing.hash_file(path, method=method, exact=True)
        assert err is None
        assert ours == ref.encode_image(image_file=path), path


def test_draft_hashes_stay_close_to_imagededup(photo_files):
    ref = DHash(verbose=False)
    dists = []
    for path in photo_files:
        ours, err = hashing.hash_file(path)
        assert err is None and len(ours) == 16
        dists.append(hashing.hamming(ours, ref.encode_image(image_file=path)))
    # draft decoding changes a hash by a bit or two at most on real photos
    assert max(dists) <= 6
    assert np.mean(dists) <= 1.5
    # PNGs are not draft-decoded: identical
    pngs = [d for p, d in zip(photo_files, dists) if p.endswith(".png")]
    assert pngs and all(d == 0 for d in pngs)


def test_near_duplicates_hash_close_and_distinct_images_far():
    img = helpers.photo(0)
    base = hashing.hash_image(img)
    for name, edit in helpers.NEAR_DUPLICATE_EDITS.items():
        assert hashing.hamming(base, hashing.hash_image(edit(img))) <= 10, name
    others = [hashing.hash_image(helpers.photo(i)) for i in range(1, helpers.num_photos())]
    assert min(hashing.hamming(base, o) for o in others) > 10


def test_bad_files_give_reasons_not_exceptions(tmp_path):
    bad = helpers.write_bad_files(str(tmp_path))
    reasons = {k: hashing.hash_file(p) for k, p in bad.items()}
    for name, (h, err) in reasons.items():
        assert h is None and err, name
    assert "empty" in reasons["empty"][1]
    assert "not an image" in reasons["not_image"][1]
    assert "truncated" in reasons["truncated"][1]
    missing = hashing.hash_file(str(tmp_path / "nope.jpg"))
    assert missing == (None, "file not found")


def test_pool_gives_same_results_in_order(tmp_path):
    paths = [
        helpers.save(helpers.texture(i), str(tmp_path / f"t{i}.jpg")) for i in range(80)
    ]
    bad = helpers.write_bad_files(str(tmp_path / "bad"))
    paths.insert(17, bad["corrupt"])
    serial = list(hashing.hash_files(paths, num_workers=0))
    pooled = list(hashing.hash_files(paths, num_workers=2))
    assert serial == pooled
    assert pooled[17][0] is None and pooled[17][1]
    assert all(h is not None for i, (h, _) in enumerate(pooled) if i != 17)


def test_hex_codes_round_trip():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 2**63, size=100, dtype=np.int64).astype(np.uint64)
    codes[0] = np.uint64(2**64 - 1)
    hexes = hashing.codes_to_hex(codes)
    assert all(len(h) == 16 for h in hexes)
    assert np.array_equal(hashing.hex_to_codes(hexes), codes)
    assert hashing.hamming(hexes[0], "0" * 16) == 64


@pytest.mark.parametrize("value", ["abc", "zz" * 8, 12, None, "0" * 17])
def test_hex_codes_reject_bad_values(value):
    with pytest.raises(ValueError, match="hash"):
        hashing.hex_to_codes(["0" * 16, value])


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="Unknown hash method 'md5'"):
        hashing.hash_file(__file__, method="md5")


def test_exif_rotation_hashes_as_displayed(tmp_path):
    img = helpers.photo(1)
    upright = helpers.save(img, str(tmp_path / "upright.jpg"))
    # stored rotated, with an EXIF tag saying how to display it upright
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 CW to display
    rotated = str(tmp_path / "rotated.jpg")
    img.transpose(Image.Transpose.ROTATE_90).save(rotated, quality=92, exif=exif)
    a, _ = hashing.hash_file(upright)
    b, _ = hashing.hash_file(rotated)
    assert hashing.hamming(a, b) <= 4
    assert os.path.getsize(rotated) > 0


_SERVER_LIKE = r"""
import asyncio, signal, sys
sys.path[:0] = sys.argv[2:3]
from fiftyone_dedup.algorithms import hashing
from fiftyone_dedup.algorithms import verify

paths = sys.argv[1].split("\n")
got = []


async def main():
    loop = asyncio.get_running_loop()
    # what a server (the App's uvicorn) does: a SIGTERM handler on the loop,
    # which sets the process's signal wakeup fd
    loop.add_signal_handler(signal.SIGTERM, lambda: got.append("SIGTERM"))
    hashes = await loop.run_in_executor(
        None, lambda: list(hashing.hash_files(paths, num_workers=2))
    )
    feats = await loop.run_in_executor(
        None, lambda: list(verify.files_features(paths, num_workers=2))
    )
    await asyncio.sleep(0.5)  # a signal byte written by a worker lands here
    print(len(hashes), len(feats), got)


asyncio.run(main())
"""


def test_pool_workers_never_signal_their_parents_loop(tmp_path):
    """Ending a pool (SIGTERM to its workers) must not reach the parent:
    forked workers share the parent's signal wakeup fd, which shut the
    App's server down after a find with enough images for a pool."""
    import subprocess
    import sys

    paths = [
        helpers.save(helpers.photo(i % helpers.num_photos()), str(tmp_path / f"p{i}.jpg"))
        for i in range(70)  # enough for a pool of hashing workers too
    ]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", _SERVER_LIKE, "\n".join(paths), repo],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["70", "70", "[]"], out.stdout + out.stderr
