"""Decoding: every reason a file cannot be read is named, JPEGs are
draft-decoded (to luma when asked), modes become 8-bit RGB as imagededup
makes them, EXIF orientation is applied."""

import os

import numpy as np
import pytest
from PIL import Image

from fiftyone_dedup.algorithms import decode

import helpers


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return helpers.write_bad_files(str(tmp_path_factory.mktemp("bad")))


def test_unreadable_files_say_why(bad, tmp_path):
    reasons = {}
    for name, path in sorted(bad.items()):
        with pytest.raises(decode.DecodeError) as err:
            decode.load_rgb(path)
        reasons[name] = str(err.value)
    assert reasons["empty"] == "empty file (0 bytes)"
    assert reasons["not_image"] == "not an image PIL can identify"
    with pytest.raises(decode.DecodeError, match="file not found"):
        decode.load_rgb(str(tmp_path / "missing.jpg"))
    with pytest.raises(decode.DecodeError, match="is a directory"):
        decode.load_rgb(str(tmp_path))
    link = tmp_path / "link.jpg"
    os.symlink(tmp_path / "gone.jpg", link)
    with pytest.raises(decode.DecodeError, match="broken symbolic link"):
        decode.load_rgb(str(link))


def test_special_files_are_never_opened(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    assert decode.not_regular_reason(str(fifo)) == "not a regular file: a named pipe (FIFO)"
    with pytest.raises(decode.DecodeError, match="named pipe"):
        decode.load_rgb(str(fifo))  # would block if opened
    assert decode.not_regular_reason("/dev/zero") == "not a regular file: a character device"
    assert decode.not_regular_reason(str(tmp_path)) is None
    assert decode.not_regular_reason(str(tmp_path / "missing")) is None


def test_jpegs_are_draft_decoded_and_luma_on_request(tmp_path):
    path = helpers.save(helpers.photo(0).resize((1600, 1200)), str(tmp_path / "big.jpg"))
    full = decode.load_rgb(path)
    assert full.size == (1600, 1200) and full.mode == "RGB"
    draft = decode.load_rgb(path, draft_size=(224, 224))
    assert draft.size == (400, 300) and draft.mode == "RGB"  # 1/4: still >= 224
    luma = decode.load_rgb(path, draft_size=(224, 224), luma=True)
    assert luma.size == (400, 300) and luma.mode == "L"
    png = helpers.save(helpers.photo(0).resize((800, 600)), str(tmp_path / "p.png"))
    assert decode.load_rgb(png, draft_size=(224, 224), luma=True).size == (800, 600)


def test_too_many_pixels_are_refused_after_the_draft(tmp_path):
    path = helpers.save(helpers.photo(0).resize((1600, 1200)), str(tmp_path / "big.jpg"))
    with pytest.raises(decode.DecodeError, match="image too large: 1600x1200"):
        decode.load_rgb(path, max_pixels=1_000_000)
    # drafted to 400x300 first, it fits
    assert decode.load_rgb(path, draft_size=(300, 300), max_pixels=1_000_000).size == (400, 300)
    assert decode.load_rgb(path, max_pixels=None).size == (1600, 1200)


def test_modes_become_8_bit_rgb():
    grey16 = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    assert np.asarray(decode.to_rgb(grey16)).max() == 255
    floats = Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32))
    assert np.asarray(decode.to_rgb(floats))[0, 0].tolist() == [128] * 3
    rgba = Image.new("RGBA", (2, 2), (10, 20, 30, 0))
    assert decode.to_rgb(rgba).getpixel((0, 0)) == (10, 20, 30)
    rgb = Image.new("RGB", (2, 2))
    assert decode.to_rgb(rgb) is rgb
    assert decode.to_rgb(Image.new("P", (2, 2))).mode == "RGB"


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (200, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    path = str(tmp_path / "rotated.jpg")
    img.save(path, exif=exif)
    assert decode.load_rgb(path).size == (20, 40)


def test_file_stamp_changes_with_the_content(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    os.utime(path, ns=(1, 10**18))
    assert decode.file_stamp(str(path)) == f"3:{10**18}"
    path.write_bytes(b"abcd")
    assert decode.file_stamp(str(path)).startswith("4:")
    assert decode.file_stamp(str(tmp_path / "missing")) is None
