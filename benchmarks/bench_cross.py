"""Cross-dataset search and invariance costs, side by side, in one run.

1. Query vs reference: time of ``search.hamming_cross`` as the query and the
   reference grow (it must grow with ``query x reference``, not with the
   square of the reference), against the anchor: imagededup, which has no
   query-vs-reference search, so a user runs ``find_duplicates`` on the
   union and keeps the cross pairs.
2. Flip / rotation invariance: encode and search time with ``invariance``
   off, ``"flip"`` and ``"dihedral"`` on the same full-HD JPEGs, as ratios
   to invariance off, for DHash and for CNN embeddings (on fewer images).

Usage::

    python benchmarks/bench_cross.py [--photos ../shared/photos] [--n-images 1000]

Writes ``benchmarks/results/cross.json`` and prints a Markdown table.
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import datasets  # noqa: E402


def _time(fn, repeat=1):
    best, out = None, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return best, out


def bench_scaling(threshold=10):
    from imagededup.methods import DHash

    from fiftyone_dedup.algorithms import hashing
    from fiftyone_dedup.algorithms import search

    rows = []
    ref_all = datasets.synthetic_hashes(400_000, seed=11)
    q_all = datasets.synthetic_hashes(8_000, seed=12)
    # plant copies of reference hashes in the query
    q_all[::10] = ref_all[: len(q_all[::10])] ^ np.uint64(0b101)
    for nr in (100_000, 200_000, 400_000):
        for nq in (2_000, 4_000, 8_000):
            t, (qi, rj, d) = _time(
                lambda: search.hamming_cross(q_all[:nq], ref_all[:nr], threshold), 2
            )
            rows.append({"reference": nr, "query": nq, "seconds": t, "pairs": int(len(qi))})

    # the anchor: imagededup on the union, at a size it can do in a minute
    nr, nq = 20_000, 1_000
    ref, q = ref_all[:nr], q_all[:nq]
    names = [f"r{i}" for i in range(nr)] + [f"q{i}" for i in range(nq)]
    enc = dict(zip(names, hashing.codes_to_hex(np.r_[ref, q])))
    t_ref, res = _time(
        lambda: DHash(verbose=False).find_duplicates(
            encoding_map=enc, max_distance_threshold=threshold
        )
    )
    theirs = {
        (k, v) for k, vs in res.items() if k.startswith("q") for v in vs if v.startswith("r")
    }
    t_ours, (qi, rj, _) = _time(lambda: search.hamming_cross(q, ref, threshold), 3)
    ours = {(f"q{a}", f"r{b}") for a, b in zip(qi, rj)}
    anchor = {
        "reference": nr, "query": nq, "imagededup_union_s": t_ref,
        "ours_query_vs_reference_s": t_ours, "ratio": t_ref / t_ours,
        "same_cross_pairs": ours == theirs, "cross_pairs": len(ours),
    }
    return {"grid": rows, "anchor": anchor}


def bench_invariance(paths):
    from fiftyone_dedup.algorithms import grouping
    from fiftyone_dedup.algorithms import hashing
    from fiftyone_dedup.algorithms import search

    out = {}
    for inv in (None, "flip", "dihedral"):
        t_enc, res = _time(lambda: list(hashing.hash_files(paths, invariance=inv)))
        codes = hashing.hex_to_codes([r[0] for r in res])

        def run_search():
            uniq, keys = search.unique_rows(codes)
            a, b, s = search.hamming_pairs(uniq, 10)
            if inv:
                variants = np.concatenate([hashing.hex_to_codes(r[1]) for r in res])
                search.hamming_cross(variants, uniq, 10)
            return grouping.star_groups(keys, a, b, s)

        t_search, _ = _time(run_search, 3)
        out[inv or "none"] = {"encode_s": t_enc, "search_s": t_search}
    base = out["none"]
    for inv in ("flip", "dihedral"):
        out[inv]["encode_ratio"] = out[inv]["encode_s"] / base["encode_s"]
        out[inv]["search_ratio"] = out[inv]["search_s"] / base["search_s"]
    out["images"] = len(paths)
    return out


def bench_cnn_invariance(paths, threshold=0.85):
    """The same for CNN embeddings (the default model, on the CPU)."""
    from fiftyone_dedup.algorithms import embeddings
    from fiftyone_dedup.algorithms import grouping
    from fiftyone_dedup.algorithms import search

    out = {}
    for inv in (None, "flip", "dihedral"):
        t_enc, res = _time(lambda: list(embeddings.embed_files(paths, invariance=inv)))
        vectors = search.normalize(np.stack([r[0] for r in res]))

        def run_search():
            uniq, keys = search.unique_rows(vectors)
            a, b, s = search.cosine_pairs(uniq, threshold, normalized=True)
            if inv:
                variants = search.normalize(
                    np.asarray([v for r in res for v in r[1]], dtype=np.float32)
                )
                search.cosine_cross(variants, uniq, threshold, normalized=True)
            return grouping.star_groups(keys, a, b, s, similarity=True)

        t_search, _ = _time(run_search, 3)
        out[inv or "none"] = {"encode_s": t_enc, "search_s": t_search}
    base = out["none"]
    for inv in ("flip", "dihedral"):
        out[inv]["encode_ratio"] = out[inv]["encode_s"] / base["encode_s"]
        out[inv]["search_ratio"] = out[inv]["search_s"] / base["search_s"]
    out["images"] = len(paths)
    return out


def markdown(res):
    a = res["scaling"]["anchor"]
    lines = [
        "| measure | anchor | fiftyone_dedup | ratio |",
        "|---|---|---|---|",
        f"| query vs reference, {a['query']:,} queries x {a['reference']:,} reference hashes "
        f"| imagededup on the union: {a['imagededup_union_s']:.1f} s "
        f"| {a['ours_query_vs_reference_s']:.3f} s "
        f"| **{a['ratio']:.0f}x** (same cross pairs: {a['same_cross_pairs']}) |",
    ]
    grid = res["scaling"]["grid"]
    base = grid[0]
    for r in grid:
        work = (r["query"] * r["reference"]) / (base["query"] * base["reference"])
        lines.append(
            f"| query vs reference, {r['query']:,} x {r['reference']:,} | - | {r['seconds']:.2f} s "
            f"| {r['seconds'] / base['seconds']:.1f}x the smallest for {work:.0f}x the pairs |"
        )
    for key, label in (("invariance", "DHash"), ("cnn_invariance", "CNN")):
        inv = res.get(key)
        if not inv:
            continue
        for name in ("flip", "dihedral"):
            lines.append(
                f"| {label} invariance `{name}`, {inv['images']} full-HD JPEGs | invariance off: "
                f"{inv['none']['encode_s']:.1f} s encode, {inv['none']['search_s']:.3f} s search "
                f"| {inv[name]['encode_s']:.1f} s, {inv[name]['search_s']:.3f} s "
                f"| encode {inv[name]['encode_ratio']:.2f}x, "
                f"search {inv[name]['search_ratio']:.1f}x |"
            )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", default=datasets.DEFAULT_PHOTOS)
    parser.add_argument("--work", default="/tmp/fiftyone-dedup-bench")
    parser.add_argument("--n-images", type=int, default=1000)
    parser.add_argument("--n-cnn-images", type=int, default=200,
                        help="images for the CNN invariance costs (inference is slow on a CPU)")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "cross.json"))
    args = parser.parse_args()
    datasets.compile_package()

    res = {"command": " ".join(["python"] + sys.argv), "cpus": os.cpu_count()}
    print("Query vs reference scaling ...", flush=True)
    res["scaling"] = bench_scaling()
    folder = os.path.join(args.work, f"fullhd-{args.n_images}")
    paths = datasets.fullhd_folder(folder, n=args.n_images, photos_dir=args.photos)
    print("Invariance costs ...", flush=True)
    res["invariance"] = bench_invariance(paths)
    print("CNN invariance costs ...", flush=True)
    res["cnn_invariance"] = bench_cnn_invariance(paths[: args.n_cnn_images])
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
    print()
    print(markdown(res))
    print(f"\nResults: {args.out}")


if __name__ == "__main__":
    main()
