"""Test images and subprocess helpers.

Images are made in the tests: real photos that installed packages ship
(scikit-image, scikit-learn; see :mod:`fiftyone_dedup.cli.demo`), distinct
synthetic textures, and near-duplicates made from them by the edits users
meet (resize, crop, JPEG re-encode, colour change).
"""

import io
import os
import random
import subprocess
import sys

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from fiftyone_dedup.cli import demo


def photo(index=0, grey=False):
    """A real photo shipped by an installed package, as RGB.

    Args:
        index (0): which photo (see ``demo.sample_photos``)
        grey (False): count the greyscale photos too

    Returns:
        a ``PIL.Image.Image``
    """
    path, _ = demo.sample_photos(grey=grey)[index]
    return ImageOps.exif_transpose(Image.open(path)).convert("RGB")


def num_photos(grey=False):
    """How many sample photos there are."""
    return len(demo.sample_photos(grey=grey))


def texture(seed, size=(320, 240)):
    """A distinct synthetic colour image (smooth random field).

    Args:
        seed: the random seed; different seeds give unrelated images
        size ((320, 240)): the image size

    Returns:
        an RGB ``PIL.Image.Image``
    """
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize(size, Image.BICUBIC)
    noise = rng.integers(-6, 7, size=(size[1], size[0], 3))
    arr = np.clip(np.asarray(img, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def resized(img, factor=0.5):
    """The image scaled by ``factor``."""
    w, h = img.size
    return img.resize((max(1, int(w * factor)), max(1, int(h * factor))), Image.LANCZOS)


def cropped(img, fraction=0.02):
    """The image with ``fraction`` of each side cut off."""
    w, h = img.size
    dx, dy = int(w * fraction), int(h * fraction)
    return img.crop((dx, dy, w - dx, h - dy))


def jpeg(img, quality=40):
    """The image re-encoded as a low-quality JPEG."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def brighter(img, factor=1.2):
    """The image with brightness scaled."""
    return ImageEnhance.Brightness(img).enhance(factor)


def tinted(img, shift=(12, -8, 0)):
    """The image with a colour cast."""
    arr = np.asarray(img, dtype=np.int16) + np.array(shift, dtype=np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


NEAR_DUPLICATE_EDITS = {
    "resized": resized,
    "cropped": cropped,
    "jpeg": jpeg,
    "brighter": brighter,
    "tinted": tinted,
}


def save(img, path, **kwargs):
    """Saves an image, creating folders.

    Returns:
        the path
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if path.lower().endswith((".jpg", ".jpeg")):
        kwargs.setdefault("quality", 92)
        img = img.convert("RGB")
    img.save(path, **kwargs)
    return path


def make_folder(directory, num_textures=12, edits=("resized", "jpeg", "brighter")):
    """A folder of distinct images with planted near-duplicates.

    Every sample photo and ``num_textures`` textures are written as
    originals; the first photos each get one edited copy per edit in
    ``edits`` (photo i gets edit i % len(edits)), so groups are known.

    Args:
        directory: the folder
        num_textures (12): how many distinct synthetic images to add
        edits: names of :data:`NEAR_DUPLICATE_EDITS` to plant

    Returns:
        a dict: ``originals`` (paths), ``planted`` (``(original, copy)``
        path pairs)
    """
    originals, planted = [], []
    for i in range(num_photos()):
        img = photo(i)
        orig = save(img, os.path.join(directory, f"photo_{i:02d}.jpg"))
        originals.append(orig)
        if i < len(edits) * 2:
            name = edits[i % len(edits)]
            copy = save(
                NEAR_DUPLICATE_EDITS[name](img),
                os.path.join(directory, "copies", f"photo_{i:02d}_{name}.jpg"),
            )
            planted.append((orig, copy))
    for s in range(num_textures):
        originals.append(save(texture(1000 + s), os.path.join(directory, f"texture_{s:02d}.png")))
    return {"originals": originals, "planted": planted}


def write_bad_files(directory):
    """Unreadable files with image names: corrupt, empty, not an image,
    truncated.

    Returns:
        a dict of name -> path
    """
    os.makedirs(directory, exist_ok=True)
    out = {}
    out["empty"] = os.path.join(directory, "empty.jpg")
    open(out["empty"], "wb").close()
    out["not_image"] = os.path.join(directory, "notes.png")
    with open(out["not_image"], "w") as f:
        f.write("this is text, not a picture\n")
    out["corrupt"] = os.path.join(directory, "corrupt.jpg")
    with open(out["corrupt"], "wb") as f:
        # fixed bytes: 1 in 40 random tails reads as "not an image" instead
        f.write(b"\xff\xd8\xff\xe0" + random.Random(0).randbytes(2000))
    good = io.BytesIO()
    texture(7).save(good, format="JPEG", quality=90)
    out["truncated"] = os.path.join(directory, "truncated.jpg")
    with open(out["truncated"], "wb") as f:
        f.write(good.getvalue()[: len(good.getvalue()) // 2])
    return out


def run_python(code, timeout=300):
    """Runs Python code in a fresh process with the test environment.

    Returns:
        a ``subprocess.CompletedProcess`` (text)
    """
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True, text=True, timeout=timeout, env=os.environ.copy(),
    )


def run_cli(*args, cwd=None, timeout=900, env=None):
    """Runs ``python -m fiftyone_dedup`` with the test environment.

    Args:
        *args: the command-line arguments
        cwd (None): the working folder; a new temporary one by default, so
            that the default ``./duplicates`` folder never lands in the
            repository
        timeout (900): seconds
        env (None): extra environment variables

    Returns:
        a ``subprocess.CompletedProcess`` (text)
    """
    if cwd is None:
        import tempfile

        # inside the test session's folder (removed at its end) when known
        plugins = os.environ.get("FIFTYONE_PLUGINS_DIR")
        cwd = tempfile.mkdtemp(prefix="cwd-", dir=os.path.dirname(plugins) if plugins else None)
    return subprocess.run(
        [sys.executable, "-m", "fiftyone_dedup", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def _png_header_only(path, width, height):
    """A PNG that claims huge dimensions: a decompression-bomb header."""
    import struct
    import zlib

    def chunk(kind, data):
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(
            b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
        )
    return path


def write_corpus(directory, outside):
    """Every kind of file a real dataset folder holds, good and bad.

    Args:
        directory: the folder to fill
        outside: a folder outside it (symlink targets)

    Returns:
        a dict: ``good`` (paths that must be encoded), ``bad`` (path ->
        a fragment of the expected reason; an image without an extension is
        one: FiftyOne cannot hold it), ``unnamed`` (bytes paths of files
        whose names are not UTF-8, with the expected reason fragment)
    """
    import pillow_heif

    pillow_heif.register_heif_opener()
    os.makedirs(directory, exist_ok=True)
    os.makedirs(outside, exist_ok=True)
    good, bad = [], {}
    base = texture(42)

    def add(img, name, **kw):
        good.append(save(img, os.path.join(directory, name), **kw))

    add(base, "plain.jpg")
    add(base, "plain.png")
    add(base.convert("CMYK"), "cmyk.jpg")
    arr16 = (np.asarray(base.convert("L"), dtype=np.uint16) * 257)
    add(Image.fromarray(arr16), "sixteen_bit.png")
    add(base.convert("P"), "palette.png", transparency=0)
    add(base.convert("LA"), "grey_alpha.png")
    add(base.convert("P"), "animated.gif", save_all=True, append_images=[texture(43).convert("P")])
    add(base, "multipage.tif", save_all=True, append_images=[texture(44)])
    add(base, "image.webp")
    add(base, "image.heic")
    add(Image.new("RGB", (1, 1), (10, 200, 30)), "tiny_1x1.png")
    exif = base.getexif()
    exif[0x0112] = 6
    add(base.transpose(Image.Transpose.ROTATE_90), "exif_rotated.jpg", exif=exif)
    no_ext = os.path.join(directory, "no_extension")
    base.save(no_ext, format="JPEG", quality=90)
    bad[no_ext] = "looks like a JPEG image"
    add(texture(45), "фото 日本 ünïcode.jpg")
    add(texture(46), "name with spaces.jpg")
    add(texture(47), os.path.join("a", "same_name.jpg"))
    add(texture(48), os.path.join("b", "same_name.jpg"))
    deep = os.path.join(*(["nested_folder_with_a_long_name_" + str(k) for k in range(30)]))
    add(texture(49), os.path.join(deep, "deep.jpg"))
    # a JPEG over Pillow's pixel limit, which draft decoding brings under it
    huge = os.path.join(directory, "huge_14000x13000.jpg")
    Image.new("L", (14000, 13000), 128).save(huge, quality=50)
    good.append(huge)
    target = save(texture(50), os.path.join(outside, "target.jpg"))
    link_out = os.path.join(directory, "link_out_of_dataset.jpg")
    os.symlink(target, link_out)
    good.append(link_out)

    def add_bad(name, reason, data=None):
        path = os.path.join(directory, name)
        if data is not None:
            with open(path, "wb") as f:
                f.write(data)
        bad[path] = reason
        return path

    add_bad("empty.jpg", "empty file", b"")
    add_bad("text.png", "not an image", b"just text\n")
    add_bad("corrupt.jpg", "not an image", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)
    jpg = io.BytesIO()
    texture(51).save(jpg, format="JPEG", quality=95)
    add_bad("truncated.jpg", "truncated", jpg.getvalue()[: len(jpg.getvalue()) // 3])
    png = io.BytesIO()
    texture(52).save(png, format="PNG")
    add_bad("truncated.png", "truncated", png.getvalue()[: len(png.getvalue()) // 2])
    _png_header_only(add_bad("bomb.png", "image too large"), 100000, 100000)
    loop_a = add_bad("loop_a.jpg", "symbolic links")
    loop_b = os.path.join(directory, "loop_b.jpg")
    os.symlink(loop_b, loop_a)
    os.symlink(loop_a, loop_b)
    bad[loop_b] = "symbolic links"
    os.symlink(
        os.path.join(outside, "missing.jpg"), add_bad("broken_link.jpg", "broken symbolic link")
    )
    unnamed = os.fsencode(directory) + b"/bad_name_\xff\xfe.jpg"
    with open(unnamed, "wb") as f:
        f.write(jpg.getvalue())
    return {"good": good, "bad": bad, "unnamed": {unnamed: "not valid UTF-8"}}
