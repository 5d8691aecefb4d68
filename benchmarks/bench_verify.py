"""Verification of candidate pairs (issue 15): quality and cost, verification
on and off, side by side with imagededup, in one run, on the same files.

Sets (built in the work folder, never in the repository):

-   ``natural``: each photo of ``--photos`` and one copy per near-duplicate
    kind of ``tests/verify_sets.TRANSFORMS`` (colour, brightness, crops of
    10% and 25%, rotations of 5 and 90 degrees, resize, JPEG quality 30,
    flip, blur 2 px, text stamp, greyscale, PNG, the next frame of a pan, a
    shifted viewpoint);
-   ``hard``: the same folder plus ``--hard`` different images of one
    homogeneous domain per kind (pages of text in one layout, tiles of one
    texture, crops of different regions of skimage's astronaut, coffee and
    chelsea upscaled, frames of a synthetic star field): none of them is a
    duplicate of another.

Each configuration runs the command line (``fiftyone-dedup -d DIR
--no_data_dir --no_annot --dry_run --report R``: the default, CNN 0.85 with
verification; ``--verify none``; ``--encoder DHash --threshold 10`` with and
without verification) in its own process, timed end to end; imagededup runs
DHash at 10 on the files and CNN at 0.85 on the embeddings our run stored
(the same model). Measured: pair precision, recall, F1, recall per kind,
lost photos (photos none of whose images would stay), false pairs among the
hard negatives, seconds, and the cost of verification as a ratio to the
unverified run.

Usage::

    python benchmarks/bench_verify.py [--photos ../shared/photos] [--n-photos 135] [--hard 100]

Writes ``benchmarks/results/verify.json`` and prints Markdown tables.
"""

import argparse
import glob
import json
import logging
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import numpy as np  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

import datasets  # noqa: E402
import verify_sets  # noqa: E402

CONFIGS = (
    ("cnn", []),
    ("cnn-noverify", ["--verify", "none"]),
    ("dhash", ["--encoder", "DHash", "--threshold", "10"]),
    ("dhash-noverify", ["--encoder", "DHash", "--threshold", "10", "--verify", "none"]),
)


def build_natural(folder, photos):
    """Writes the photos and their copies; returns ``{path: (photo, kind)}``."""
    marker = os.path.join(folder, ".truth.json")
    spec = {"photos": len(photos), "kinds": list(verify_sets.TRANSFORMS)}
    if os.path.exists(marker):
        saved = json.load(open(marker))
        if saved["spec"] == spec:
            return {k: tuple(v) for k, v in saved["truth"].items()}
    os.makedirs(folder, exist_ok=True)
    truth = {}
    for k, src in enumerate(photos):
        img = ImageOps.exif_transpose(Image.open(src)).convert("RGB")
        truth[verify_sets.write(img, os.path.join(folder, f"p{k:03d}"))] = (k, None)
        for name, (fn, fmt) in verify_sets.TRANSFORMS.items():
            path = verify_sets.write(fn(img), os.path.join(folder, f"p{k:03d}_{name}"), fmt)
            truth[path] = (k, name)
    json.dump({"spec": spec, "truth": truth}, open(marker, "w"))
    return truth


def build_hard(folder, n, natural):
    """Writes ``n`` hard negatives of each kind into a folder that also holds
    the natural set (hard links); returns ``({path: kind}, {path: (photo,
    kind)})``."""
    import skimage.data as sd

    marker = os.path.join(folder, ".hard.json")
    linked = {os.path.join(folder, os.path.basename(p)): v for p, v in natural.items()}
    if os.path.exists(marker) and json.load(open(marker))["n"] == n:
        return json.load(open(marker))["kinds"], linked
    os.makedirs(folder, exist_ok=True)
    for src, dst in zip(natural, linked):
        if not os.path.exists(dst):
            os.link(src, dst)
    regions = []
    for name in ("astronaut", "coffee", "chelsea"):
        regions += verify_sets.photo_regions(
            (n + 2) // 3, Image.fromarray(getattr(sd, name)()), size=200, upscale=4
        )
    sets = {
        "text": verify_sets.text_pages(n),
        "texture": verify_sets.texture_tiles(n),
        "regions": regions[:n],
        "stars": verify_sets.star_fields(n),
    }
    kinds = {}
    for kind, imgs in sets.items():
        for i, img in enumerate(imgs):
            kinds[verify_sets.write(img, os.path.join(folder, f"hard_{kind}_{i:04d}"))] = kind
    json.dump({"n": n, "kinds": kinds}, open(marker, "w"))
    return kinds, linked


def rep_files(folders):
    return [
        p for f in folders for p in glob.glob(os.path.join(f, "*")) if p[-4:] in (".jpg", ".png")
    ]


def run_cli(folders, extra, report, dataset):
    cmd = [sys.executable, "-m", "fiftyone_dedup"]
    for f in folders:
        cmd += ["-d", f]
    cmd += [
        "--no_data_dir", "--no_annot", "--dry_run", "--report", report, "--quiet",
    ] + extra
    t = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    # CPU time of the run and its workers: steadier than the clock on a
    # shared machine
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return time.perf_counter() - t, cpu, json.load(open(report))


def _drop_dataset(name):
    import fiftyone as fo

    if name.endswith("-cnn-noverify"):
        return  # imagededup searches its embeddings
    if fo.dataset_exists(name):
        fo.delete_dataset(name)


def metrics(groups, truth, hard):
    """Pair precision/recall/F1, recall per kind, lost photos, false pairs
    among the hard negatives; ``groups`` is a list of lists of paths."""
    # each hard negative is a photo of its own
    t = {
        "files": list(truth) + list(hard),
        "source": {
            **{p: f"photo:{k}" for p, (k, _) in truth.items()}, **{p: f"hard:{p}" for p in hard},
        },
        "transform": {**{p: kind for p, (_, kind) in truth.items()}, **{p: None for p in hard}},
    }
    m = datasets.pair_metrics(groups, t)
    removed = {d for g in groups for d in g[1:]}
    lost = datasets.lost_photos(set(t["files"]) - removed, t) if t["files"] else []
    m["recall_per_kind"] = m.pop("recall_per_transform")
    m["lost_photos"] = len(lost)
    m["lost_hard_negatives"] = sum(1 for s in lost if str(s).startswith("hard:"))
    m["false_pairs_among_hard"] = sum(
        1 for g in groups for i in range(len(g)) for j in range(i + 1, len(g))
        if g[i] in hard and g[j] in hard
    )
    return m


def imagededup_runs(folders, truth, hard, cnn_dataset):
    """imagededup's DHash at 10 on the files, and its CNN search at 0.85 on
    the embeddings our CNN run stored (the same model)."""
    res = {}
    try:
        from imagededup.methods import DHash
    except ImportError as e:  # pragma: no cover
        return {"error": f"imagededup not installed: {e}"}
    paths = [
        p for f in folders for p in sorted(glob.glob(os.path.join(f, "*")))
        if p[-4:] in (".jpg", ".png")
    ]
    t = time.perf_counter()
    enc = DHash(verbose=False)
    encodings = {p: enc.encode_image(image_file=p) for p in paths}
    dup = enc.find_duplicates(encoding_map=encodings, max_distance_threshold=10)
    res["dhash_seconds"] = time.perf_counter() - t
    res["dhash"] = metrics(_groups_from_map(dup, paths), truth, hard)

    import fiftyone as fo
    from imagededup.methods import CNN

    ds = fo.load_dataset(cnn_dataset)
    files, vectors = ds.values(["filepath", "cnn_embedding"])
    emap = {f: np.asarray(v, dtype=np.float32) for f, v in zip(files, vectors) if v is not None}
    cnn = CNN.__new__(CNN)  # only its search: no model to load (offline)
    cnn.verbose = False
    cnn.logger = logging.getLogger("imagededup")
    t = time.perf_counter()
    dup = cnn._find_duplicates_dict(
        encoding_map=emap, min_similarity_threshold=0.85, scores=False, num_sim_workers=0
    )
    res["cnn_search_seconds"] = time.perf_counter() - t
    res["cnn"] = metrics(_groups_from_map(dup, list(emap)), truth, hard)
    return res


def _groups_from_map(dup, paths):
    # imagededup's duplicate map -> groups as its own remove list would
    # leave them: each removed file joins a kept one it duplicates
    import imagededup.utils.general_utils as gu

    names = {os.path.basename(p): p for p in paths}
    full = {
        names.get(k, k): [
            names.get(v if isinstance(v, str) else v[0], v if isinstance(v, str) else v[0])
            for v in vs
        ]
        for k, vs in dup.items()
    }
    removed = set(gu.get_files_to_remove(full))
    groups = {}
    for k, vs in full.items():
        if k in removed:
            continue
        for v in vs:
            if v in removed and not any(v in g for g in groups.values()):
                groups.setdefault(k, [k]).append(v)
    return list(groups.values())


def linear(work, sizes):
    """The default find (CNN, verified) on N different pages of text in one
    layout: candidates stay capped per image, so the time per image stays
    flat as N grows."""
    out = {}
    pages = verify_sets.text_pages(max(sizes), seed=1)
    for n in sizes:
        folder = os.path.join(work, f"verify-pages-{n}")
        if not os.path.isdir(folder):
            os.makedirs(folder)
            for i, page in enumerate(pages[:n]):
                verify_sets.write(page, os.path.join(folder, f"page{i:04d}"))
        dataset = f"bench-verify-pages-{n}"
        print(f"linear: {n} pages ...", flush=True)
        seconds, cpu, rep = run_cli(
            [folder], ["--dataset", dataset], os.path.join(work, dataset + ".json"), dataset
        )
        _drop_dataset(dataset)
        out[str(n)] = {
            "seconds": seconds, "cpu_seconds": cpu,
            "cpu_ms_per_image": 1000 * cpu / n,
            "candidates_per_image": rep["summary"].get("num_candidates", 0) / n,
            "duplicates": rep["summary"].get("num_duplicates"),
        }
    # the cost of each image added: flat when the cost is linear (the
    # start-up, imports and database, is paid once)
    prev = None
    for n in sizes:
        r = out[str(n)]
        if prev is not None:
            r["added_cpu_ms_per_image"] = 1000 * (r["cpu_seconds"] - prev[1]) / (n - prev[0])
        prev = (n, r["cpu_seconds"])
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", default=datasets.DEFAULT_PHOTOS)
    parser.add_argument("--n-photos", type=int, default=135)
    parser.add_argument("--hard", type=int, default=100, help="hard negatives per kind (4 kinds)")
    parser.add_argument("--work", default="/tmp/fiftyone-dedup-bench")
    parser.add_argument("--configs", default=",".join(c for c, _ in CONFIGS))
    parser.add_argument("--skip-imagededup", action="store_true")
    parser.add_argument("--linear", default="100,300,1000",
                        help="sizes of text-page sets for the linear-cost check ('' to skip)")
    parser.add_argument("--only-linear", action="store_true",
                        help="run the linear-cost check only, merged into --out")
    parser.add_argument("--merge", action="store_true",
                        help="replace only the configurations run now in --out")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "verify.json"))
    args = parser.parse_args()
    datasets.compile_package()

    import dbserver

    dbserver.start()
    os.environ["FIFTYONE_SHOW_PROGRESS_BARS"] = "false"
    photos = datasets.photo_paths(args.photos)[: args.n_photos]
    natural = os.path.join(args.work, f"verify-natural-{len(photos)}")
    hard_dir = os.path.join(args.work, f"verify-hard-{len(photos)}-{args.hard}")
    print(f"Building {natural} and {hard_dir} ...", flush=True)
    truth = build_natural(natural, photos)
    hard, hard_truth = build_hard(hard_dir, args.hard, truth)
    res = {
        "machine": datasets.machine(),
        "command": " ".join(["python"] + sys.argv),
        "natural_images": len(truth), "photos": len(photos),
        "kinds": list(verify_sets.TRANSFORMS), "hard_negatives": len(hard),
    }
    wanted = [] if args.only_linear else args.configs.split(",")
    if (args.only_linear or args.merge) and os.path.exists(args.out):
        # keep the other figures of the last run; this command is noted
        res = dict(json.load(open(args.out)), rerun_command=res["command"])
    for set_name, folders, hard_set, set_truth in (
        ("natural", [natural], {}, truth), ("hard", [hard_dir], hard, hard_truth),
    ):
        out = res.setdefault(set_name, {})
        for name, extra in CONFIGS:
            if name not in wanted:
                continue
            dataset = f"bench-verify-{set_name}-{name}"
            report = os.path.join(args.work, f"{dataset}.json")
            print(f"{set_name}: {name} ...", flush=True)
            seconds, cpu, rep = run_cli(folders, extra + ["--dataset", dataset], report, dataset)
            _drop_dataset(dataset)
            groups = [[g["keep"]] + g["duplicates"] for g in rep["groups"]]
            m = metrics(groups, set_truth, hard_set)
            m["seconds"] = seconds
            m["cpu_seconds"] = cpu
            m["candidates_per_image"] = (
                rep["summary"].get("num_candidates", 0) / max(1, len(rep_files(folders)))
            )
            m["summary"] = {k: v for k, v in rep["summary"].items() if k != "datasets"}
            out[name] = m
            print(f"  P {m['precision']:.3f} R {m['recall']:.3f} F1 {m['f1']:.3f} "
                  f"lost {m['lost_photos']} {seconds:.1f}s", flush=True)
        for enc in ("cnn", "dhash"):
            if enc in out and f"{enc}-noverify" in out:
                out[f"{enc}_verify_cost_ratio"] = (
                    out[enc]["seconds"] / out[f"{enc}-noverify"]["seconds"]
                )
                if "cpu_seconds" in out[enc] and "cpu_seconds" in out[f"{enc}-noverify"]:
                    out[f"{enc}_verify_cpu_ratio"] = (
                        out[enc]["cpu_seconds"] / out[f"{enc}-noverify"]["cpu_seconds"]
                    )
        if not args.skip_imagededup and "cnn-noverify" in wanted:
            out["imagededup"] = imagededup_runs(
                folders, set_truth, hard_set, f"bench-verify-{set_name}-cnn-noverify"
            )
    if args.linear:
        res["linear"] = linear(args.work, [int(n) for n in args.linear.split(",")])
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    print(markdown(res))


def markdown(res):
    """The README tables of a result."""
    lines = []
    for set_name, title in (
        ("natural", "natural photos"), ("hard", "natural photos + hard negatives"),
    ):
        out = res.get(set_name) or {}
        lines += [
            f"\n{title}: " + (
                f"{res['natural_images']} images ({res['photos']} photos x "
                f"{len(res['kinds']) + 1})"
                + (f" + {res['hard_negatives']} hard negatives" if set_name == "hard" else "")
            ),
            "",
            "| run | precision | recall | F1 | lost photos | seconds | CPU seconds |",
            "|---|---|---|---|---|---|---|",
        ]
        rows = [(n, out[n]) for n, _ in CONFIGS if n in out]
        idd = out.get("imagededup") or {}
        for k in ("dhash", "cnn"):
            if k in idd:
                rows.append((
                    f"imagededup {k}" + (" (search only)" if k == "cnn" else ""),
                    dict(
                        idd[k],
                        seconds=idd.get(f"{k}_seconds", idd.get(f"{k}_search_seconds")),
                    ),
                ))
        for n, m in rows:
            lines.append(
                f"| {n} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | "
                f"{m['lost_photos']} | {m['seconds']:.1f} | "
                + (f"{m['cpu_seconds']:.1f} |" if "cpu_seconds" in m else "- |")
            )
        for enc in ("cnn", "dhash"):
            r = out.get(f"{enc}_verify_cost_ratio")
            if r:
                cpu = out.get(f"{enc}_verify_cpu_ratio")
                lines.append(
                    f"\n{enc}: verified / unverified, wall clock {r:.2f}x"
                    + (f", CPU time {cpu:.2f}x" if cpu else "")
                )
    lin = res.get("linear") or {}
    if lin:
        lines += [
            "",
            "| pages of text (one layout) | seconds | CPU ms per image "
            "| CPU ms per image added | candidates per image | duplicates |",
            "|---|---|---|---|---|---|",
        ]
        for n, r in lin.items():
            added = r.get("added_cpu_ms_per_image")
            lines.append(
                f"| {n} | {r['seconds']:.1f} | {r['cpu_ms_per_image']:.0f} "
                f"| {'-' if added is None else f'{added:.0f}'} "
                f"| {r['candidates_per_image']:.1f} | {r['duplicates']} |"
            )
    nat = res.get("natural") or {}
    kinds = res.get("kinds") or []
    if nat:
        names = [n for n, _ in CONFIGS if n in nat]
        lines += ["", "| kind | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for k in kinds:
            lines.append(
                f"| {k} | "
                + " | ".join(f"{nat[n]['recall_per_kind'].get(k, 0):.2f}" for n in names)
                + " |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
