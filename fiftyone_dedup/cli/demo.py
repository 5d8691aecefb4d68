"""The built-in example: a small labeled dataset with near-duplicates.

``fiftyone-dedup demo`` writes a COCO-labeled dataset (``data/`` +
``labels.json``) made from real photos that installed packages ship
(scikit-image and scikit-learn sample images, no download), with planted
near-duplicates (resized, re-encoded, brightened, cropped, copied), and runs
the whole command-line flow on it, keeping the oldest file of each group (the
originals are written an hour older than their copies): the duplicates move,
with their labels, to ``<dir>/duplicates``.
"""

import importlib.util
import json
import logging
import os
import shutil
import time

from PIL import Image, ImageEnhance, ImageOps

logger = logging.getLogger(__name__)

#: marks a folder as written by the demo, so it may be rebuilt
MARKER = ".fiftyone_dedup_demo"

#: colour photos shipped by scikit-image / scikit-learn, with a subject
PHOTOS = (
    ("skimage", "astronaut.png", "person"),
    ("skimage", "chelsea.png", "cat"),
    ("skimage", "coffee.png", "cup"),
    ("skimage", "rocket.jpg", "rocket"),
    ("skimage", "hubble_deep_field.jpg", "galaxy"),
    ("skimage", "motorcycle_left.png", "motorcycle"),
    ("skimage", "retina.jpg", "retina"),
    ("skimage", "ihc.png", "tissue"),
    ("sklearn", "china.jpg", "temple"),
    ("sklearn", "flower.jpg", "flower"),
)

#: greyscale photos shipped by scikit-image (more distinct images for tests)
GREY_PHOTOS = (
    "camera.png", "coins.png", "moon.png", "page.png", "text.png",
    "brick.png", "grass.png", "gravel.png", "cell.png", "clock_motion.png",
)


def _package_dir(name):
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"The package {name} is not installed; it ships the demo photos"
        )
    return spec.submodule_search_locations[0]


def sample_photo_path(package, filename):
    """The path of a photo shipped inside an installed package.

    Args:
        package: ``"skimage"`` or ``"sklearn"``
        filename: the file name

    Returns:
        an absolute path
    """
    if package == "skimage":
        return os.path.join(_package_dir("skimage"), "data", filename)
    return os.path.join(_package_dir("sklearn"), "datasets", "images", filename)


def sample_photos(grey=False):
    """Real photos shipped by installed packages, as ``(path, subject)``.

    Args:
        grey (False): also include the greyscale photos

    Returns:
        a list of ``(path, subject)`` tuples
    """
    out = [(sample_photo_path(pkg, f), subject) for pkg, f, subject in PHOTOS]
    if grey:
        out += [
            (sample_photo_path("skimage", f), os.path.splitext(f)[0])
            for f in GREY_PHOTOS
        ]
    return out


def _variants(img):
    w, h = img.size
    return {
        "resized": img.resize((w // 2, h // 2), Image.LANCZOS),
        "brighter": ImageEnhance.Brightness(img).enhance(1.2),
        "cropped": img.crop((w // 25, h // 25, w - w // 25, h - h // 25)),
        "copy": img,
    }


# which variants each photo gets: a mix of groups of 2 and 3, and singles
_PLAN = {
    "person": ("resized", "copy"),
    "cat": ("brighter",),
    "cup": ("cropped",),
    "rocket": ("copy",),
    "temple": ("resized",),
}


def make_demo_dataset(directory):
    """Writes the demo dataset: ``data/`` images and a COCO ``labels.json``.

    Args:
        directory: the folder to create; an existing folder is only replaced
            if the demo wrote it

    Returns:
        a dict ``{"dir", "num_images", "planted": [(original, copy)]}``

    Raises:
        ValueError: if the folder exists and was not written by the demo
    """
    directory = os.path.abspath(directory)
    if os.path.exists(directory):
        if not os.path.exists(os.path.join(directory, MARKER)):
            raise ValueError(
                f"{directory} exists and was not made by the demo; choose "
                "another --dir (nothing was changed)"
            )
        shutil.rmtree(directory)
    data = os.path.join(directory, "data")
    os.makedirs(os.path.join(data, "more"), exist_ok=True)
    with open(os.path.join(directory, MARKER), "w") as f:
        f.write("written by fiftyone-dedup demo; safe to delete\n")

    images, annotations, categories, planted = [], [], {}, []

    def add(img, relpath, subject):
        path = os.path.join(data, relpath)
        img.convert("RGB").save(path, quality=90)
        image_id = len(images) + 1
        w, h = img.size
        images.append({"id": image_id, "file_name": relpath, "width": w, "height": h})
        cat = categories.setdefault(subject, len(categories) + 1)
        # one object box over the central part of the picture
        box = [round(w * 0.2, 1), round(h * 0.2, 1), round(w * 0.6, 1), round(h * 0.6, 1)]
        annotations.append(
            {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": cat,
                "bbox": box,
                "area": round(box[2] * box[3], 1),
                "iscrowd": 0,
            }
        )
        return relpath

    originals = []
    for path, subject in sample_photos():
        img = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
        original = add(img, f"{subject}.jpg", subject)
        originals.append(original)
        variants = _variants(img)
        for i, name in enumerate(_PLAN.get(subject, ())):
            folder = "more/" if name == "copy" else ""
            copy = add(variants[name], f"{folder}{subject}_{name}.jpg", subject)
            planted.append((original, copy))

    # the originals were there first: an hour older than their copies, so
    # that the demo's keep policy ("oldest") keeps them
    now = time.time()
    for relpath in originals:
        os.utime(os.path.join(data, relpath), (now - 3600, now - 3600))

    coco = {
        "info": {"description": "fiftyone-dedup demo"},
        "licenses": [],
        "categories": [
            {"id": i, "name": n, "supercategory": "demo"} for n, i in categories.items()
        ],
        "images": images,
        "annotations": annotations,
    }
    with open(os.path.join(directory, "labels.json"), "w") as f:
        json.dump(coco, f, indent=1)
    return {"dir": directory, "num_images": len(images), "planted": planted}


def _earlier_demo_dataset(name):
    # a dataset of that name that fiftyone-dedup made, not one made by hand
    import fiftyone as fo

    from fiftyone_dedup.engine import folders

    return fo.dataset_exists(name) and folders.INFO_KEY in (fo.load_dataset(name).info or {})


def run(args):
    """Builds the demo dataset and runs the command-line flow on it.

    Returns:
        the report dict
    """
    from fiftyone_dedup.cli import find
    from fiftyone_dedup.cli import parser

    made = make_demo_dataset(args.dir)
    print(
        f"Demo dataset: {made['dir']} ({made['num_images']} images, COCO "
        f"labels, {len(made['planted'])} planted near-duplicates)"
    )
    report_path = os.path.join(made["dir"], "report.json")
    argv = [
        "-d", made["dir"],
        "--encoder", args.encoder,
        "--dataset", "fiftyone-dedup-demo",
        "--report", report_path,
        "--duplicates_dir", os.path.join(made["dir"], "duplicates"),
        "--keep", "oldest",
    ]
    if args.quiet:
        argv.append("--quiet")
    if _earlier_demo_dataset("fiftyone-dedup-demo"):
        argv.append("--overwrite_dataset")  # an earlier demo's, in another folder
    rep = find.run(parser.build_parser().parse_args(argv))
    data = os.path.join(made["dir"], "data")
    group_of = {}
    for i, g in enumerate(rep["groups"]):
        for path in [g["keep"]] + g["duplicates"]:
            group_of[os.path.relpath(path, data)] = i
    hits = sum(
        1
        for a, b in made["planted"]
        if a in group_of and group_of.get(a) == group_of.get(b)
    )
    originals = {a for a, _ in made["planted"]}
    kept = {os.path.relpath(g["keep"], data) for g in rep["groups"]}
    print(
        f"\nPlanted near-duplicates found: {hits} of {len(made['planted'])}; "
        f"originals kept (--keep oldest): {len(originals & kept)} of "
        f"{len(originals)}"
    )
    return rep
