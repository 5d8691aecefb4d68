"""DHash side by side with imagededup, in one run, on the same files.

Measures, as ratios to the anchor measured in the same run:

1. hash throughput on full-HD JPEGs (imagededup ``DHash.encode_images`` with
   its own process pool vs ``fiftyone_dedup.algorithms.hashing.hash_files``), and our
   ``compute_hashes`` into a FiftyOne dataset;
2. end-to-end find on that folder (imagededup ``find_duplicates(image_dir)``
   vs dataset + ``fiftyone_dedup.find_duplicates``);
3. hash search at 10k synthetic hashes (imagededup's brute-force Cython
   search vs ours), with the pairs checked equal, and ours at 1M hashes
   (multi-index hashing, as ``hamming_pairs`` chooses it, against the flat
   brute-force index: time, peak memory, each in its own process, the
   pairs checked equal);
4. detection quality on real photos with made near-duplicates: the CLI's
   report vs imagededup ``find_duplicates`` at the same threshold.

Usage::

    python benchmarks/bench_dhash.py [--photos ../shared/photos] [--n-images 1000]

Writes ``benchmarks/results/dhash.json`` and prints a Markdown table.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import datasets  # noqa: E402


def _warm(paths):
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 20):
                pass


def _best(fn, repeat=2):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def bench_encode(paths, folder, repeat):
    from imagededup.methods import DHash

    from fiftyone_dedup.algorithms import hashing

    _warm(paths)
    n = len(paths)
    t_ref, ref = _best(lambda: DHash(verbose=False).encode_images(folder), repeat)
    t_ours, ours = _best(lambda: list(hashing.hash_files(paths)), repeat)
    t_exact, exact = _best(lambda: list(hashing.hash_files(paths, exact=True)), 1)
    names = [os.path.basename(p) for p in paths]
    dists = [hashing.hamming(ref[nm], h) for nm, (h, _) in zip(names, ours)]
    exact_equal = sum(ref[nm] == h for nm, (h, _) in zip(names, exact))
    return {
        "images": n,
        "imagededup_s": t_ref,
        "ours_s": t_ours,
        "ours_exact_s": t_exact,
        "imagededup_img_per_s": n / t_ref,
        "ours_img_per_s": n / t_ours,
        "ours_exact_img_per_s": n / t_exact,
        "ratio": t_ref / t_ours,
        "ratio_exact": t_ref / t_exact,
        "draft_vs_imagededup_mean_bits": float(np.mean(dists)),
        "draft_vs_imagededup_max_bits": int(np.max(dists)),
        "draft_identical_fraction": float(np.mean(np.array(dists) == 0)),
        "exact_identical_fraction": exact_equal / n,
    }


def bench_find_end_to_end(paths, folder, repeat):
    import fiftyone as fo
    from imagededup.methods import DHash

    import fiftyone_dedup as fod

    _warm(paths)

    def ref():
        return DHash(verbose=False).find_duplicates(image_dir=folder, max_distance_threshold=10)

    def ours():
        ds = fo.Dataset()
        ds.add_samples([fo.Sample(filepath=p) for p in paths], progress=False)
        r = fod.find_duplicates(ds, threshold=10, progress=False)
        ds.delete()
        return r.summary

    t_ref, _ = _best(ref, repeat)
    t_ours, summary = _best(ours, repeat)

    def compute_only():
        ds = fo.Dataset()
        ds.add_samples([fo.Sample(filepath=p) for p in paths], progress=False)
        t = time.perf_counter()
        fod.compute_hashes(ds, progress=False)
        dt = time.perf_counter() - t
        ds.delete()
        return dt

    t_compute = min(compute_only() for _ in range(repeat))
    return {
        "imagededup_s": t_ref,
        "ours_s": t_ours,
        "ratio": t_ref / t_ours,
        "ours_compute_hashes_s": t_compute,
        "ours_compute_hashes_img_per_s": len(paths) / t_compute,
        "groups": summary["num_groups"],
    }


def _imagededup_pairs(result):
    pairs = set()
    for k, vs in result.items():
        for v in vs:
            name = v[0] if isinstance(v, tuple) else v
            pairs.add(frozenset((k, name)))
    return pairs


def bench_search_10k(n=10_000, threshold=10):
    from imagededup.methods import DHash

    from fiftyone_dedup.algorithms import grouping
    from fiftyone_dedup.algorithms import hashing
    from fiftyone_dedup.algorithms import search

    codes = datasets.synthetic_hashes(n, seed=1)
    hexes = hashing.codes_to_hex(codes)
    names = [f"h{i}" for i in range(n)]
    enc = dict(zip(names, hexes))
    t = time.perf_counter()
    ref = DHash(verbose=False).find_duplicates(
        encoding_map=enc, max_distance_threshold=threshold
    )
    t_ref = time.perf_counter() - t

    t_ours, (i, j, d) = _best(lambda: search.hamming_pairs(codes, threshold), 3)
    t = time.perf_counter()
    uniq, keys = search.unique_rows(codes)
    a, b, s = search.hamming_pairs(uniq, threshold)
    grouping.star_groups(keys, a, b, s)
    t_full = time.perf_counter() - t

    ours = {frozenset((names[x], names[y])) for x, y in zip(i, j)}
    theirs = _imagededup_pairs(ref)
    return {
        "hashes": n,
        "threshold": threshold,
        "imagededup_s": t_ref,
        "ours_search_s": t_ours,
        "ours_search_and_group_s": t_full,
        "ratio": t_ref / t_ours,
        "pairs": len(ours),
        "same_pairs": ours == theirs,
    }


# Peak memory is the kernel's high-water mark of this process (VmHWM), which
# unlike ru_maxrss is not inherited from the parent across fork/exec
_MILLION = r"""
import json, sys, time
sys.path[:0] = {paths!r}
import numpy as np
import datasets
from fiftyone_dedup.algorithms import grouping
from fiftyone_dedup.algorithms import search
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
codes = datasets.synthetic_hashes({n}, seed=2)
base = hwm()
t = time.perf_counter()
i, j, d = search.hamming_pairs(codes, {threshold}, method={method!r})
t_search = time.perf_counter() - t
uniq, keys = search.unique_rows(codes)
if len(uniq) < len(codes):
    a, b, s = search.hamming_pairs(uniq, {threshold}, method={method!r})
else:
    a, b, s = i, j, d
g = grouping.star_groups(keys, a, b, s)
t_all = time.perf_counter() - t
peak = hwm()
np.savez({out!r}, i=i, j=j, d=d)
print(json.dumps(dict(search_s=t_search, search_and_group_s=t_all, pairs=int(len(i)),
    groups=int(g.num_groups), peak_rss_mb=peak / 1024, rss_before_search_mb=base / 1024)))
"""


def _million(n, threshold, method, out):
    code = _MILLION.format(paths=[REPO, HERE], n=n, threshold=threshold, method=method, out=out)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(run.stderr)
    return json.loads(run.stdout.strip().splitlines()[-1])


def bench_search_million(n=1_000_000, threshold=10, work="/tmp", flat=True):
    """Ours at 1M hashes, each way in its own process: ``search.hamming_pairs``
    as it chooses (multi-index hashing on such spread-out codes), and forced
    to the flat (brute-force) index, with the pairs compared."""
    os.makedirs(work, exist_ok=True)
    out = {m: os.path.join(work, f"million-{m}.npz") for m in ("auto", "flat")}
    res = _million(n, threshold, "auto", out["auto"])
    res.update(hashes=n, threshold=threshold, method="auto (multi-index hashing)")
    if flat:
        res["flat"] = _million(n, threshold, "flat", out["flat"])
        ours, theirs = np.load(out["auto"]), np.load(out["flat"])
        res["same_pairs_as_flat"] = all(
            np.array_equal(ours[k], theirs[k]) for k in ("i", "j", "d")
        )
        res["ratio_vs_flat"] = res["flat"]["search_s"] / res["search_s"]
    for path in out.values():
        if os.path.exists(path):
            os.remove(path)
    return res


def bench_quality(photos, work, threshold=10):
    from imagededup.methods import DHash

    truth = datasets.nearduplicate_set(os.path.join(work, "nearduplicates"), photos)
    folder = os.path.dirname(truth["files"][0])
    report = os.path.join(work, "dhash-report.json")
    cmd = [
        sys.executable, "-m", "fiftyone_dedup", "-d", folder, "--no_data_dir",
        "--no_annot", "--encoder", "DHash", "--threshold", str(threshold),
        "--report", report, "--dataset", "bench-dhash-quality", "--quiet",
        "--dry_run",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    rep = json.load(open(report))
    groups = [[g["keep"]] + g["duplicates"] for g in rep["groups"]]
    removed = {d for g in rep["groups"] for d in g["duplicates"]}
    ours = datasets.pair_metrics(groups, truth)
    ours["lost_photos"] = datasets.lost_photos(set(truth["files"]) - removed, truth)
    ours["removed"] = len(removed)

    enc = DHash(verbose=False)
    res = enc.find_duplicates(image_dir=folder, max_distance_threshold=threshold)
    pairs = [[os.path.join(folder, a) for a in p] for p in _imagededup_pairs(res)]
    theirs = datasets.pair_metrics(pairs, truth)
    to_remove = {
        os.path.join(folder, f)
        for f in enc.find_duplicates_to_remove(image_dir=folder, max_distance_threshold=threshold)
    }
    theirs["lost_photos"] = datasets.lost_photos(set(truth["files"]) - to_remove, truth)
    theirs["removed"] = len(to_remove)
    return {
        "images": len(truth["files"]), "threshold": threshold, "ours": ours, "imagededup": theirs,
    }


def markdown(res):
    e, f, s = res["encode"], res["find"], res["search_10k"]
    lines = [
        "| measure | imagededup | fiftyone_dedup | ratio |",
        "|---|---|---|---|",
        f"| DHash encode, {e['images']} full-HD JPEGs | {e['imagededup_img_per_s']:.1f} img/s | "
        f"{e['ours_img_per_s']:.1f} img/s | **{e['ratio']:.1f}x** |",
        f"| the same, `exact=True` (no draft) | {e['imagededup_img_per_s']:.1f} img/s | "
        f"{e['ours_exact_img_per_s']:.1f} img/s | {e['ratio_exact']:.1f}x |",
        f"| end-to-end find (encode + search + group + write) | {f['imagededup_s']:.1f} s | "
        f"{f['ours_s']:.1f} s | **{f['ratio']:.1f}x** |",
        f"| hash search, {s['hashes']} hashes, threshold {s['threshold']} "
        f"| {s['imagededup_s']:.2f} s | "
        f"{s['ours_search_s']:.3f} s | **{s['ratio']:.0f}x** (same pairs: {s['same_pairs']}) |",
    ]
    if "search_1m" in res:
        m = res["search_1m"]
        if "flat" in m:
            f1 = m["flat"]
            lines.append(
                f"| hash search, {m['hashes']:,} hashes, threshold {m['threshold']}: "
                f"flat (brute-force) index vs ours (multi-index hashing) | "
                f"{f1['search_s']:.0f} s, peak {f1['peak_rss_mb']:.0f} MB | "
                f"{m['search_s']:.1f} s ({m['search_and_group_s']:.1f} s with grouping), "
                f"peak {m['peak_rss_mb']:.0f} MB | **{m['ratio_vs_flat']:.0f}x** "
                f"(same pairs: {m['same_pairs_as_flat']}) |"
            )
        else:
            lines.append(
                f"| hash search, {m['hashes']:,} hashes, threshold {m['threshold']} | - | "
                f"{m['search_s']:.1f} s ({m['search_and_group_s']:.1f} s with grouping), "
                f"peak {m['peak_rss_mb']:.0f} MB | - |"
            )
    if "quality" in res:
        q = res["quality"]
        for name in ("imagededup", "ours"):
            r = q[name]
            lines.append(
                f"| pairs on {q['images']} real photos + near-duplicates, {name} | "
                f"P {r['precision']:.3f} / R {r['recall']:.3f} / F1 {r['f1']:.3f} | "
                f"{r['true_pairs_found']} true pairs | lost photos: {len(r['lost_photos'])} |"
            )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", default=datasets.DEFAULT_PHOTOS)
    parser.add_argument("--work", default="/tmp/fiftyone-dedup-bench")
    parser.add_argument("--n-images", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip-1m", action="store_true")
    parser.add_argument("--skip-1m-flat", action="store_true",
                        help="the flat index at 1M takes minutes")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "dhash.json"))
    args = parser.parse_args()
    datasets.compile_package()

    import dbserver

    dbserver.start()
    os.environ["FIFTYONE_SHOW_PROGRESS_BARS"] = "false"

    folder = os.path.join(args.work, f"fullhd-{args.n_images}")
    print(f"Building {args.n_images} full-HD JPEGs in {folder} ...", flush=True)
    paths = datasets.fullhd_folder(folder, n=args.n_images, photos_dir=args.photos)

    res = {
        "machine": datasets.machine(),
        "command": " ".join(["python"] + sys.argv),
    }
    print("Encoding ...", flush=True)
    res["encode"] = bench_encode(paths, folder, args.repeat)
    print("End-to-end find ...", flush=True)
    res["find"] = bench_find_end_to_end(paths, folder, args.repeat)
    print("Search at 10k ...", flush=True)
    res["search_10k"] = bench_search_10k()
    if not args.skip_1m:
        print("Search at 1M (the flat index: a few minutes) ...", flush=True)
        res["search_1m"] = bench_search_million(
            work=args.work, flat=not args.skip_1m_flat
        )
    if not args.skip_quality:
        print("Quality on near-duplicates ...", flush=True)
        res["quality"] = bench_quality(args.photos, args.work)

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
    print()
    print(markdown(res))
    print(f"\nResults: {args.out}")


if __name__ == "__main__":
    main()
