"""Verification of candidate duplicate pairs: do two images show the same
picture or the same scene? Pure numpy/OpenCV; knows nothing of FiftyOne.

A global encoding (a 64-bit hash, a CNN embedding) says two images *look
alike*; on a homogeneous domain (pages of text, tiles of one texture, frames
of one camera, night scenes) different images look alike too, and no global
threshold separates them. Verification asks for evidence that the two show
the same content, as image retrieval has done since the spatial re-ranking
of Philbin et al. (2007):

1.  each image is decoded once, in grey, to at most :data:`FEATURE_SIZE`
    pixels on its longer side, and gives ORB keypoints and binary
    descriptors of itself and of its mirror image (flips), a small grey
    thumbnail (for images with too little texture for keypoints), and the
    DHash of its 8 dihedral transforms (candidates for turned and mirrored
    copies);
2.  a pair is verified when the descriptors matched with Lowe's ratio test
    fit one similarity transform (rotation, scale, shift: what crops,
    resizes, rotations and small viewpoint changes do) with RANSAC, with at
    least :data:`MIN_INLIERS` inliers (and :data:`MIN_INLIER_RATIO` of the
    matches) spread over at least
    :data:`MIN_COVERAGE` of the smaller image (a shared logo or stamp is not
    enough), and a sane scale. Images with too few keypoints for that are
    compared by their thumbnails instead (correlation and mean difference of
    the grey pixels under one of the 8 dihedral transforms).

The verification score of a pair is its inlier count (the thumbnail check
reports :data:`THUMB_SCORE` when it passes).
"""

from dataclasses import dataclass

import numpy as np

from fiftyone_dedup.algorithms import decode


#: the verification methods; ``"none"`` keeps today's results
METHODS = ("orb", "none")

#: the default method
DEFAULT_METHOD = "orb"

#: longest side, in pixels, of the grey decode features are taken from
FEATURE_SIZE = 384

#: the most a small image is enlarged to reach FEATURE_SIZE
MAX_UPSCALE = 3.0

#: ORB keypoints per image (and per mirror image)
NUM_FEATURES = 400

#: Lowe's ratio for descriptor matches
RATIO = 0.8

#: RANSAC reprojection error, as a fraction of the longer side
REPROJ_FRACTION = 0.012

#: inliers that verify a pair on their own
MIN_INLIERS = 40

#: fewer inliers (at least these) verify a pair when the thumbnails agree
#: too: small or soft images give few keypoints (a 96 x 72 photo and its
#: re-encoded copy: 37 inliers of 52 matches)
MIN_WEAK_INLIERS = 20

#: the share of the ratio-tested matches that must be inliers: repeated
#: structure (words of one font in one layout) gives many matches of which
#: under half fit (measured: at most 0.49 on pages of text, at least 0.59 on
#: near-duplicates of photos)
MIN_INLIER_RATIO = 0.55

#: the fraction of the smaller image the inliers' bounding box must cover
MIN_COVERAGE = 0.05

#: the scale change allowed between the two images
MAX_SCALE = 4.0

#: below this many keypoints, the thumbnail check is used instead
MIN_KEYPOINTS = 30

#: crops whose DHash each image keeps, as ``(side, steps)``: crops of that
#: fraction of each side at ``steps`` x ``steps`` positions, the centre among
#: them. A copy cropped by 25% (10%) has its own DHash near one of the first
#: (second) where the whole image's DHash is far (benchmarks/bench_verify.py)
CROPS = ((0.75, 5), (0.9, 3))

#: thumbnail side for textureless images
THUMB_SIZE = 32

#: the grey correlation the thumbnail check needs
THUMB_CORRELATION = 0.95

#: the largest mean absolute grey difference the thumbnail check allows
THUMB_MAX_DIFF = 12.0

#: the score reported for a pair verified by its thumbnails
THUMB_SCORE = 0


def validate_method(method):
    """Checks a verification method.

    Args:
        method: ``"orb"`` (the default), ``"none"``, or ``None``/``False``
            for none

    Returns:
        the method name

    Raises:
        ValueError: naming the methods
    """
    if method is None or method is False:
        return "none"
    if method is True:
        return DEFAULT_METHOD
    name = str(method).lower()
    if name not in METHODS:
        raise ValueError(
            f"Unknown verify method {method!r}; expected one of {', '.join(METHODS)}"
        )
    return name


@dataclass
class Features:
    """What verification needs of one image (a few tens of kilobytes).

    Attributes:
        size: ``(width, height)`` of the grey decode
        points: ``(n, 2)`` float32 keypoint positions
        descriptors: ``(n, 32)`` uint8 ORB descriptors
        mirror_points: keypoints of the mirrored image, in its own frame
        mirror_descriptors: their descriptors
        thumb: ``(THUMB_SIZE, THUMB_SIZE)`` float32 grey thumbnail
        dihedral: ``(8,)`` uint64 DHash of the 8 dihedral transforms (the
            image itself first)
        crops: uint64 DHash of the crops of :data:`CROPS` (candidates for
            cropped copies: a crop's own DHash is near one of them)
    """

    size: tuple
    points: np.ndarray
    descriptors: np.ndarray
    mirror_points: np.ndarray
    mirror_descriptors: np.ndarray
    thumb: np.ndarray
    dihedral: np.ndarray
    crops: np.ndarray = None


def _cv2():
    import cv2

    return cv2


def _orb(cv2, grey):
    # every image is brought to FEATURE_SIZE first, so a few pyramid levels
    # cover the scale changes of crops
    orb = cv2.ORB_create(
        nfeatures=NUM_FEATURES, scaleFactor=1.3, nlevels=5, fastThreshold=10,
        edgeThreshold=15, patchSize=15,
    )
    kps, desc = orb.detectAndCompute(grey, None)
    empty = np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    if desc is None or not kps:
        return empty, empty
    pts = np.array([k.pt for k in kps], dtype=np.float32)
    # the mirror image's descriptors at the mirrored keypoints (no second
    # detection)
    w = grey.shape[1]
    mkps = [
        cv2.KeyPoint(
            w - 1 - k.pt[0], k.pt[1], k.size, (180.0 - k.angle) % 360.0, k.response, k.octave
        )
        for k in kps
    ]
    mkps, mdesc = orb.compute(np.ascontiguousarray(grey[:, ::-1]), mkps)
    if mdesc is None or not mkps:
        return (pts, desc), empty
    mpts = np.array([k.pt for k in mkps], dtype=np.float32)
    return (pts, desc), (mpts, mdesc)


def _dhash(cv2, grey):
    # a DHash of a greyscale array: 9x8, brighter than the left neighbour
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return np.uint64(int(np.packbits(bits).tobytes().hex(), 16))


def _crops(square):
    # the crops of CROPS, each in a grid of positions, as parts of the
    # image's square thumbnail: a crop of the image is a part of it, and a
    # cropped copy's own thumbnail that part scaled
    size = square.shape[0]
    out = []
    for side, steps in CROPS:
        n = max(1, round(size * side))
        for y in np.linspace(0, size - n, steps).round().astype(int):
            for x in np.linspace(0, size - n, steps).round().astype(int):
                out.append(np.ascontiguousarray(square[y:y + n, x:x + n]))
    return out


def _dihedral(a):
    # the 8 dihedral transforms of a 2D array, the array itself first
    out = []
    for m in (a, a[:, ::-1]):
        for k in range(4):
            out.append(np.rot90(m, k))
    return out


def image_features(image):
    """Computes the :class:`Features` of an image.

    Args:
        image: a PIL image, or a 2D uint8 grey array

    Returns:
        a :class:`Features`
    """
    cv2 = _cv2()
    if not isinstance(image, np.ndarray):
        image = np.asarray(image if image.mode == "L" else image.convert("L"))
    grey = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = grey.shape
    # one scale for all: small images are enlarged (up to MAX_UPSCALE)
    scale = min(FEATURE_SIZE / max(w, h), MAX_UPSCALE)
    if scale != 1:
        grey = cv2.resize(
            grey, (max(1, round(w * scale)), max(1, round(h * scale))),
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        )
    (pts, desc), (mpts, mdesc) = _orb(cv2, grey)
    thumb = cv2.resize(grey, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA)
    # turned versions of a square thumbnail, then their DHash
    square = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA)
    dihedral = np.array(
        [_dhash(cv2, np.ascontiguousarray(t)) for t in _dihedral(square)], dtype=np.uint64
    )
    crops = np.array([_dhash(cv2, c) for c in _crops(square)], dtype=np.uint64)
    return Features(
        size=(grey.shape[1], grey.shape[0]),
        points=pts,
        descriptors=desc,
        mirror_points=mpts,
        mirror_descriptors=mdesc,
        thumb=thumb.astype(np.float32),
        dihedral=dihedral,
        crops=crops,
    )


def file_features(path, max_pixels=decode.DEFAULT_MAX_PIXELS):
    """Decodes an image file once (JPEGs in draft mode, luma only) and
    computes its :class:`Features`.

    Args:
        path: the image path
        max_pixels (decode.DEFAULT_MAX_PIXELS): refuse larger images

    Returns:
        a tuple ``(features, error)``: one of them is None
    """
    return decode.from_file(
        image_features, path, FEATURE_SIZE, max_pixels, what="compute features of"
    )


def files_features(paths, num_workers=None):
    """Computes the features of image files in a process pool, in order.

    Args:
        paths: image paths
        num_workers (None): worker processes; ``None`` for one per CPU, ``0``
            or ``1`` for this process

    Yields:
        a ``(features, error)`` tuple per path
    """
    from fiftyone_dedup.algorithms import hashing

    paths = list(paths)
    if num_workers is None:
        num_workers = hashing.default_num_workers()
    if num_workers <= 1 or len(paths) < 16:
        yield from map(file_features, paths)
        return
    chunksize = max(1, min(16, len(paths) // (num_workers * 8)))
    with hashing.process_pool(num_workers) as pool:
        yield from pool.imap(file_features, paths, chunksize=chunksize)


def _packed(features, images, attr):
    # the descriptors of some images as (n, 4) uint64 rows and their offsets
    arrays = [getattr(features[i], attr) for i in images.tolist()]
    off = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum([len(d) for d in arrays], out=off[1:])
    if not off[-1]:
        return np.zeros((0, 4), np.uint64), off, 0
    rows = np.ascontiguousarray(np.concatenate(arrays)).view(np.uint64).reshape(-1, 4)
    return rows, off, int(np.diff(off).max())


def _matches(features, a, b, attr):
    # Lowe's ratio test on each descriptor's 2 nearest (what BFMatcher's
    # knnMatch gives) for many pairs at once: a's descriptors ``attr``
    # against b's own
    from fiftyone_dedup.algorithms import _match_kernels

    ia, ua = np.unique(a, return_inverse=True)
    ib, ub = np.unique(b, return_inverse=True)
    qrows, qoff, width = _packed(features, ia, attr)
    trows, toff, _ = _packed(features, ib, "descriptors")
    out_q = np.empty((len(a), max(width, 1)), dtype=np.int32)
    out_t = np.empty_like(out_q)
    counts = np.zeros(len(a), dtype=np.int64)
    _match_kernels.ratio_matches(
        qrows, qoff, trows, toff, ua.astype(np.int64), ub.astype(np.int64), RATIO,
        out_q, out_t, counts,
    )
    return out_q, out_t, counts


def _fit(cv2, pa, pb, size_a, size_b):
    # ``(score, inliers)`` of one similarity transform a -> b: the score is
    # the inlier count when the fit is plausible and has at least
    # MIN_WEAK_INLIERS, else 0
    if len(pa) < MIN_WEAK_INLIERS:
        return 0, 0
    reproj = REPROJ_FRACTION * max(size_b)
    model, mask = cv2.estimateAffinePartial2D(
        pa, pb, method=cv2.RANSAC, ransacReprojThreshold=reproj,
        maxIters=2000, confidence=0.995,
    )
    if model is None or mask is None:
        return 0, 0
    inl = mask.ravel().astype(bool)
    n = int(inl.sum())
    if n < MIN_WEAK_INLIERS or n < MIN_INLIER_RATIO * len(pa):
        return 0, n
    scale = float(np.hypot(model[0, 0], model[1, 0]))
    if not (1.0 / MAX_SCALE <= scale <= MAX_SCALE):
        return 0, n
    # inliers spread over the overlap, not one logo: in both images
    for pts, size in ((pa[inl], size_a), (pb[inl], size_b)):
        span = np.ptp(pts, axis=0)
        if span[0] * span[1] < MIN_COVERAGE * size[0] * size[1]:
            return 0, n
    return n, n


def _thumb_check(ta, tb):
    a = ta - ta.mean()
    na = float(np.sqrt((a * a).sum()))
    for t in _dihedral(tb):
        b = t - t.mean()
        nb = float(np.sqrt((b * b).sum()))
        if na < 1e-3 or nb < 1e-3:
            # flat images: the same grey level
            corr = 1.0 if na < 1e-3 and nb < 1e-3 and abs(ta.mean() - t.mean()) < 4 else -1.0
        else:
            corr = float((a * b).sum() / (na * nb))
        if corr >= THUMB_CORRELATION and float(np.abs(ta - t).mean()) <= THUMB_MAX_DIFF:
            return True
    return False


def verify_pair(fa, fb):
    """Whether two images show the same picture or scene.

    Args:
        fa: the :class:`Features` of one image
        fb: the :class:`Features` of the other

    Returns:
        the verification score: the RANSAC inlier count (or
        :data:`THUMB_SCORE` for textureless images that match by their
        thumbnails) when verified, else ``-1``
    """
    return int(verify_pairs([fa, fb], np.array([0]), np.array([1]))[0])


#: the matching passes of a pair ``(a, b)``: a's descriptors (``attr``)
#: against b's, a's mirror image (flipped copies), and, after a near miss
#: (at least MIN_WEAK_INLIERS inliers, too small a share of the matches),
#: b's against a's: the ratio test keeps other matches that way round
_PASSES = (("descriptors", False), ("mirror_descriptors", False), ("descriptors", True))


def _verify_chunk(cv2, features, a, b):
    out = np.full(len(a), -1, dtype=np.int32)
    rest = []
    for k, (i, j) in enumerate(zip(a.tolist(), b.tolist())):
        fa, fb = features[i], features[j]
        if fa is None or fb is None:
            continue
        if min(len(fa.points), len(fb.points)) < MIN_KEYPOINTS:
            if _thumb_check(fa.thumb, fb.thumb):
                out[k] = THUMB_SCORE
            continue
        rest.append(k)
    rest = np.array(rest, dtype=np.int64)
    weak, near = {}, []
    for attr, reverse in _PASSES:
        if reverse:
            rest = np.array([k for k in near if out[k] < 0], dtype=np.int64)
        if not len(rest):
            continue
        q, t = (b[rest], a[rest]) if reverse else (a[rest], b[rest])
        out_q, out_t, counts = _matches(features, q, t, attr)
        failed = []
        for r, k in enumerate(rest.tolist()):
            fq, ft = features[q[r]], features[t[r]]
            n = int(counts[r])
            pts = fq.mirror_points if attr == "mirror_descriptors" else fq.points
            score, inliers = _fit(cv2, pts[out_q[r, :n]], ft.points[out_t[r, :n]], fq.size, ft.size)
            if score >= MIN_INLIERS:
                out[k] = score
                continue
            failed.append(k)
            if score:
                weak[k] = max(score, weak.get(k, 0))
            elif attr == "descriptors" and not reverse and inliers >= MIN_WEAK_INLIERS:
                near.append(k)
        if not reverse:
            rest = np.array(failed, dtype=np.int64)
    # fewer inliers (small or soft images): the thumbnails must agree too
    for k, n in weak.items():
        if out[k] < 0 and _thumb_check(features[a[k]].thumb, features[b[k]].thumb):
            out[k] = n
    return out


#: pairs matched per kernel call (bounds its buffers)
_CHUNK = 2048


def verify_pairs(features, a, b, progress=None):
    """Verifies pairs of images; descriptors are matched for many pairs at
    once, on all cores.

    Args:
        features: a list of :class:`Features` (or None for unreadable
            images), indexed by ``a`` and ``b``
        a: int array, one end of each pair
        b: int array, the other end
        progress (None): an optional callable invoked with the number of
            pairs just verified

    Returns:
        an int32 array of verification scores, ``-1`` where a pair failed
    """
    cv2 = _cv2()
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    out = np.full(len(a), -1, dtype=np.int32)
    for start in range(0, len(a), _CHUNK):
        stop = min(start + _CHUNK, len(a))
        out[start:stop] = _verify_chunk(cv2, features, a[start:stop], b[start:stop])
        if progress is not None:
            progress(stop - start)
    return out
