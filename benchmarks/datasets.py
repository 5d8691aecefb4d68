"""Benchmark inputs built from ``../shared/photos`` (never copied into the
repository): full-HD JPEG folders, near-duplicate sets with known truth, and
synthetic hashes.
"""

import glob
import json
import os
import platform
import re

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PHOTOS = os.path.join(os.path.dirname(REPO), "shared", "photos")


def compile_package():
    """Writes the package's bytecode, as ``pip install`` does for an
    installed package. A machine with ``PYTHONDONTWRITEBYTECODE`` set (this
    one is) would otherwise compile fiftyone_dedup from source in each
    measured process (about 40 ms), while the peers' bytecode exists."""
    import compileall

    compileall.compile_dir(os.path.join(REPO, "fiftyone_dedup"), quiet=1)


def machine():
    """What the benchmark ran on: CPUs, their model and vector extensions
    (which decide the fast paths: bfloat16, int8, AVX2), Python, platform."""
    info = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return info
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
    if model:
        info["cpu_model"] = model.group(1).strip()
    if flags:
        wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")
        have = set(flags.group(1).split())
        info["cpu_flags"] = [f for f in wanted if f in have]
    return info


def photo_paths(photos_dir=DEFAULT_PHOTOS):
    """The real photos to build from, sorted."""
    paths = sorted(glob.glob(os.path.join(photos_dir, "*.jpg")))
    if not paths:
        raise SystemExit(
            f"No photos in {photos_dir}; pass --photos DIR (a folder of JPEGs)"
        )
    return paths


def _load(path):
    return ImageOps.exif_transpose(Image.open(path)).convert("RGB")


def fullhd_folder(out_dir, n=1000, photos_dir=DEFAULT_PHOTOS, seed=0):
    """Writes ``n`` 1920x1080 JPEGs made from the photos by random crops.

    Reuses the folder when it already holds the same set.

    Returns:
        the sorted list of paths
    """
    marker = os.path.join(out_dir, ".built.json")
    spec = {"n": n, "seed": seed, "photos": len(photo_paths(photos_dir))}
    if os.path.exists(marker) and json.load(open(marker)) == spec:
        return sorted(glob.glob(os.path.join(out_dir, "*.jpg")))
    os.makedirs(out_dir, exist_ok=True)
    for old in glob.glob(os.path.join(out_dir, "*.jpg")):
        os.remove(old)
    rng = np.random.default_rng(seed)
    sources = photo_paths(photos_dir)
    cache = {}
    paths = []
    for i in range(n):
        src = sources[i % len(sources)]
        img = cache.get(src) or cache.setdefault(src, _load(src))
        w, h = img.size
        # a random 16:9 crop covering 60-100% of the width
        cw = int(w * rng.uniform(0.6, 1.0))
        ch = min(h, int(cw * 9 / 16))
        cw = int(ch * 16 / 9)
        x = int(rng.integers(0, max(1, w - cw + 1)))
        y = int(rng.integers(0, max(1, h - ch + 1)))
        crop = img.crop((x, y, x + cw, y + ch)).resize((1920, 1080), Image.LANCZOS)
        path = os.path.join(out_dir, f"hd_{i:04d}.jpg")
        crop.save(path, quality=90)
        paths.append(path)
        if len(cache) > 8:
            cache.pop(next(iter(cache)))
    with open(marker, "w") as f:
        json.dump(spec, f)
    return paths


# --------------------------------------------------------- near-duplicates


def _colour(img):
    img = ImageEnhance.Brightness(img).enhance(1.15)
    img = ImageEnhance.Contrast(img).enhance(1.1)
    return ImageEnhance.Color(img).enhance(1.3)


def _crop(img):
    w, h = img.size
    return img.crop((int(w * 0.08), int(h * 0.08), int(w * 0.92), int(h * 0.92)))


def _rotation(img):
    w, h = img.size
    rot = img.rotate(6, resample=Image.BICUBIC, expand=False)
    # cut the black corners the rotation leaves
    m = 0.07
    return rot.crop((int(w * m), int(h * m), int(w * (1 - m)), int(h * (1 - m))))


def _resize(img):
    w, h = img.size
    return img.resize((max(1, w // 2), max(1, h // 2)), Image.LANCZOS)


def _jpeg(img):
    import io

    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=25)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _flip(img):
    return ImageOps.mirror(img)


def _stamp(img):
    w, h = img.size
    out = img.copy()
    draw = ImageDraw.Draw(out, "RGBA")
    bw, bh = int(w * 0.35), int(h * 0.12)
    x, y = w - bw - int(w * 0.03), h - bh - int(h * 0.03)
    draw.rectangle((x, y, x + bw, y + bh), fill=(255, 255, 255, 170))
    draw.text((x + bw * 0.06, y + bh * 0.3), "(c) fiftyone-dedup 2026", fill=(20, 20, 20, 255))
    return out


def _greyscale(img):
    return ImageOps.grayscale(img).convert("RGB")


TRANSFORMS = {
    "colour": _colour,
    "crop": _crop,
    "rotation": _rotation,
    "resize": _resize,
    "jpeg": _jpeg,
    "flip": _flip,
    "stamp": _stamp,
    "greyscale": _greyscale,
}


def nearduplicate_set(out_dir, photos_dir=DEFAULT_PHOTOS, transforms=None):
    """Writes each photo and one copy per transform, with the truth.

    File names: ``p<k>.jpg`` for the original of photo ``k`` and
    ``p<k>_<transform>.jpg`` for its copies, so the originals sort first.

    Returns:
        a dict: ``files`` (sorted paths), ``source`` (path -> photo index),
        ``transform`` (path -> transform name, or None for originals)
    """
    transforms = list(transforms or TRANSFORMS)
    marker = os.path.join(out_dir, ".truth.json")
    sources = photo_paths(photos_dir)
    if os.path.exists(marker):
        truth = json.load(open(marker))
        if truth.get("transforms") == transforms and truth.get("n") == len(sources):
            return truth
    os.makedirs(out_dir, exist_ok=True)
    source, transform = {}, {}
    for k, src in enumerate(sources):
        img = _load(src)
        path = os.path.join(out_dir, f"p{k:03d}.jpg")
        img.save(path, quality=92)
        source[path], transform[path] = k, None
        for name in transforms:
            path = os.path.join(out_dir, f"p{k:03d}_{name}.jpg")
            TRANSFORMS[name](img).save(path, quality=92)
            source[path], transform[path] = k, name
    truth = {
        "n": len(sources),
        "transforms": transforms,
        "files": sorted(source),
        "source": source,
        "transform": transform,
    }
    with open(marker, "w") as f:
        json.dump(truth, f)
    return truth


def pair_metrics(groups, truth, files=None):
    """Pair precision / recall / F1 of duplicate groups against the truth.

    A pair counts as found when both images are in the same group; the true
    pairs are all pairs of images made from the same photo.

    Args:
        groups: a list of lists of paths
        truth: from :func:`nearduplicate_set`
        files (None): the files considered (default: all)

    Returns:
        a dict of counts and ratios, with recall per transform
    """
    files = files or truth["files"]
    source = truth["source"]
    by_source = {}
    for f in files:
        by_source.setdefault(source[f], []).append(f)
    true_pairs = sum(len(v) * (len(v) - 1) // 2 for v in by_source.values())

    found = tp = 0
    together = set()
    for g in groups:
        g = list(g)
        for i in range(len(g)):
            for j in range(i + 1, len(g)):
                found += 1
                if source[g[i]] == source[g[j]]:
                    tp += 1
                    together.add(frozenset((g[i], g[j])))
    precision = tp / found if found else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0

    per_transform = {}
    originals = {source[f]: f for f in files if truth["transform"][f] is None}
    for f in files:
        t = truth["transform"][f]
        if t is None:
            continue
        hit = frozenset((originals[source[f]], f)) in together
        n, h = per_transform.get(t, (0, 0))
        per_transform[t] = (n + 1, h + int(hit))
    return {
        "pairs_found": found,
        "true_pairs_found": tp,
        "true_pairs": true_pairs,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "recall_per_transform": {t: h / n for t, (n, h) in per_transform.items()},
    }


def lost_photos(kept_or_alone, truth, files=None):
    """The photos none of whose images survive a removal.

    Args:
        kept_or_alone: the set of paths that stay
        truth: from :func:`nearduplicate_set`
        files (None): the files considered

    Returns:
        a sorted list of photo indices
    """
    files = files or truth["files"]
    alive = {truth["source"][f] for f in files if f in kept_or_alone}
    return sorted({truth["source"][f] for f in files} - alive)


def synthetic_hashes(n, seed=0, near_fraction=0.05, max_flips=12):
    """Random 64-bit hashes with planted near copies.

    Args:
        n: the number of hashes
        seed (0): the random seed
        near_fraction (0.05): the fraction that are near copies (1 to
            ``max_flips`` bits) of another hash
        max_flips (12): the most bits a near copy differs by

    Returns:
        a ``uint64`` array
    """
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64)
    codes ^= rng.integers(0, 2, size=n).astype(np.uint64) << np.uint64(63)
    m = int(n * near_fraction)
    src = rng.integers(0, n, size=m)
    dst = rng.integers(0, n, size=m)
    flips = rng.integers(1, max_flips + 1, size=m)
    for s, d, k in zip(src, dst, flips):
        bits = rng.choice(64, size=k, replace=False).astype(np.uint64)
        codes[d] = codes[s] ^ np.bitwise_or.reduce(np.uint64(1) << bits)
    return codes


def synthetic_embeddings(n, dim=1280, seed=0, near_fraction=0.05):
    """Random embeddings with planted near copies, centred (zero mean).

    Gaussian vectors stand in for CNN embeddings: an exact search costs the
    same whatever the values. A fraction are noisy copies of another vector
    (cosine similarity spread over about 0.7-1), so a radius search has
    pairs to find. The set is centred because FiftyOne Brain centres
    embeddings before its cosine distance: on centred vectors both tools
    measure the same cosine.

    Args:
        n: the number of vectors
        dim (1280): their dimension
        seed (0): the random seed
        near_fraction (0.05): the fraction that are noisy copies

    Returns:
        an ``(n, dim)`` float32 array
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    m = int(n * near_fraction)
    src = rng.integers(0, n, size=m)
    dst = rng.integers(0, n, size=m)
    sigma = rng.uniform(0.05, 1.0, size=m).astype(np.float32)
    noise = rng.standard_normal((m, dim), dtype=np.float32)
    x[dst] = x[src] + sigma[:, None] * noise
    x -= x.mean(axis=0, dtype=np.float64).astype(np.float32)
    return x
