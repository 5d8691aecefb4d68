"""Images for verification tests and benchmarks, made here.

Near-duplicates of every kind users meet (colour, brightness, crops of 10%
and 25%, rotations of 5 and 90 degrees, resize, JPEG quality 30, flip, blur,
text stamp, greyscale, format change) and close-to-duplicates (the next
frame of a slow pan, a shifted viewpoint); and homogeneous-domain hard
negatives, sets of different images that look alike to a global encoding:
pages of text in one layout, tiles of one texture, crops of different regions
of one large photo, frames of a synthetic star field.
"""

import io

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps


def _font(size):
    for name in (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "DejaVuSans.ttf",
    ):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default()


def _crop(img, f):
    # a crop of f of each side, at a position of its own for each image size
    # (not always centred)
    w, h = img.size
    rng = np.random.default_rng(w * 7919 + h)
    cw, ch = round(w * (1 - f)), round(h * (1 - f))
    x, y = (int(v) for v in rng.integers(0, [w - cw + 1, h - ch + 1]))
    return img.crop((x, y, x + cw, y + ch))


def _rotate(img, deg):
    w, h = img.size
    rot = img.rotate(deg, resample=Image.BICUBIC, expand=False)
    m = 0.07
    return rot.crop((int(w * m), int(h * m), int(w * (1 - m)), int(h * (1 - m))))


def _jpeg(img, q=30):
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=q)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _stamp(img):
    w, h = img.size
    out = img.convert("RGB").copy()
    draw = ImageDraw.Draw(out, "RGBA")
    bw, bh = int(w * 0.35), int(h * 0.1)
    x, y = w - bw - int(w * 0.03), h - bh - int(h * 0.03)
    draw.rectangle((x, y, x + bw, y + bh), fill=(255, 255, 255, 170))
    draw.text((x + bw * 0.05, y + bh * 0.2), "(c) 2026 stamp", fill=(20, 20, 20, 255),
              font=_font(max(8, int(bh * 0.5))))
    return out


def _next_frame(img):
    # a slow pan: the view moves by 6% and the light changes a little
    w, h = img.size
    dx, dy = int(w * 0.06), int(h * 0.03)
    a = img.crop((0, 0, w - dx, h - dy))
    return ImageEnhance.Brightness(a).enhance(0.93)


def _viewpoint(img):
    # a shifted viewpoint: a mild perspective change and a crop
    w, h = img.size
    coeffs = _perspective_coeffs(
        [(0, 0), (w, 0), (w, h), (0, h)],
        [(w * 0.04, h * 0.02), (w * 0.97, 0), (w, h), (0, h * 0.97)],
    )
    out = img.transform((w, h), Image.PERSPECTIVE, coeffs, Image.BICUBIC)
    return _crop(out, 0.1)


def _perspective_coeffs(src, dst):
    m = []
    for (x, y), (u, v) in zip(dst, src):
        m.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        m.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    a = np.array(m, dtype=np.float64)
    b = np.array(src, dtype=np.float64).reshape(8)
    return np.linalg.solve(a, b).tolist()


#: near-duplicate kinds: name -> (PIL RGB image -> image, file format)
TRANSFORMS = {
    "colour": (
        lambda im: ImageEnhance.Color(ImageEnhance.Contrast(im).enhance(1.15)).enhance(1.4),
        "JPEG",
    ),
    "brightness": (lambda im: ImageEnhance.Brightness(im).enhance(1.3), "JPEG"),
    "crop10": (lambda im: _crop(im, 0.1), "JPEG"),
    "crop25": (lambda im: _crop(im, 0.25), "JPEG"),
    "rotate5": (lambda im: _rotate(im, 5), "JPEG"),
    "rotate90": (lambda im: im.transpose(Image.ROTATE_90), "JPEG"),
    "resize": (
        lambda im: im.resize((max(1, im.width // 3), max(1, im.height // 3)), Image.LANCZOS),
        "JPEG",
    ),
    "jpeg30": (lambda im: _jpeg(im, 30), "JPEG"),
    "flip": (ImageOps.mirror, "JPEG"),
    "blur": (lambda im: im.filter(ImageFilter.GaussianBlur(2)), "JPEG"),
    "stamp": (_stamp, "JPEG"),
    "greyscale": (lambda im: ImageOps.grayscale(im).convert("RGB"), "JPEG"),
    "format": (lambda im: im, "PNG"),
    "next_frame": (_next_frame, "JPEG"),
    "viewpoint": (_viewpoint, "JPEG"),
}


def write(img, path_stem, fmt="JPEG"):
    """Saves an image; returns its path (``.jpg`` or ``.png``)."""
    path = path_stem + (".png" if fmt == "PNG" else ".jpg")
    img = img.convert("RGB")
    if fmt == "PNG":
        img.save(path)
    else:
        img.save(path, quality=90)
    return path


# ------------------------------------------------------------ hard negatives


_WORDS = (
    "the of and to in is for on that by with as at from this be are or an "
    "data model image set value result method figure table section page "
    "report analysis sample system time first group level number point case "
    "study effect test area order rate form line field water light power"
).split()


def text_pages(n, size=(600, 800), seed=0):
    """Different pages of text in one layout (title, two columns of body).

    Returns:
        a list of PIL images
    """
    rng = np.random.default_rng(seed)
    title, body = _font(28), _font(13)
    pages = []
    for _ in range(n):
        img = Image.new("RGB", size, "white")
        d = ImageDraw.Draw(img)
        d.text((40, 30), " ".join(rng.choice(_WORDS, 4)).title(), fill="black", font=title)
        col_w = (size[0] - 100) // 2
        for col in range(2):
            y = 90
            while y < size[1] - 40:
                line, x = [], 0
                while True:
                    w = str(rng.choice(_WORDS))
                    x += 8 * len(w) + 6
                    if x > col_w:
                        break
                    line.append(w)
                d.text((40 + col * (col_w + 20), y), " ".join(line), fill="black", font=body)
                y += 18
        pages.append(img)
    return pages


def texture_tiles(n, size=256, seed=0):
    """Different tiles of one texture (cut from one large synthetic texture
    of many small blobs, with no overlap between tiles).

    Returns:
        a list of PIL images
    """
    rng = np.random.default_rng(seed)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    big = Image.new("RGB", (cols * size, rows * size), (120, 100, 80))
    d = ImageDraw.Draw(big)
    for _ in range(cols * rows * 90):
        x, y = rng.uniform(0, cols * size), rng.uniform(0, rows * size)
        r = rng.uniform(3, 12)
        c = tuple(int(v) for v in rng.integers(60, 200, 3))
        d.ellipse((x - r, y - r, x + r, y + r * rng.uniform(0.5, 1.5)), fill=c)
    tiles = []
    for k in range(n):
        r, c = divmod(k, cols)
        tiles.append(big.crop((c * size, r * size, (c + 1) * size, (r + 1) * size)))
    return tiles


def photo_regions(n, photo, size=160, upscale=4):
    """Crops of different, non-overlapping regions of one large photo (the
    photo upscaled first).

    Args:
        n: how many crops (as many as fit)
        photo: a PIL image
        size (160): the crop side in pixels
        upscale (4): the upscaling factor

    Returns:
        a list of PIL images
    """
    big = photo.convert("RGB").resize(
        (photo.width * upscale, photo.height * upscale), Image.BICUBIC
    )
    out = []
    for y in range(0, big.height - size + 1, size):
        for x in range(0, big.width - size + 1, size):
            out.append(big.crop((x, y, x + size, y + size)))
            if len(out) == n:
                return out
    return out


def star_fields(n, size=(320, 240), stars=250, seed=0):
    """Frames of a synthetic star field: different random skies.

    Returns:
        a list of PIL images
    """
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = np.zeros((size[1], size[0]), np.float32)
        ys = rng.integers(2, size[1] - 2, stars)
        xs = rng.integers(2, size[0] - 2, stars)
        b = rng.uniform(60, 255, stars)
        for y, x, v in zip(ys, xs, b):
            img[y - 1 : y + 2, x - 1 : x + 2] += v * np.array(
                [[0.3, 0.6, 0.3], [0.6, 1, 0.6], [0.3, 0.6, 0.3]]
            )
        img += rng.normal(8, 3, img.shape)
        out.append(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).convert("RGB"))
    return out


def noise_images(n, size=32, seed=0):
    """Tiny random-noise images (nothing to match)."""
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)
    ]
