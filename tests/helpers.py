"""Test images and subprocess helpers.

Images are made in the tests: real photos that installed packages ship
(scikit-image, scikit-learn; see :mod:`fiftyone_dedup.demo`), distinct
synthetic textures, and near-duplicates made from them by the edits users
meet (resize, crop, JPEG re-encode, colour change).
"""

import io
import os
import subprocess
import sys

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from fiftyone_dedup import demo


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
        f.write(b"\xff\xd8\xff\xe0" + os.urandom(2000))
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
        cwd (None): the working folder
        timeout (900): seconds
        env (None): extra environment variables

    Returns:
        a ``subprocess.CompletedProcess`` (text)
    """
    return subprocess.run(
        [sys.executable, "-m", "fiftyone_dedup", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, cwd=cwd,
        env={**os.environ, **(env or {})},
    )
