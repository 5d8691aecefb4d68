"""Local against Ray on 1 and 2 nodes, in one run, on the same files.

Measures per-node costs for the scale-out plan (README "Scale-out"):

1. decode + DHash and CNN embedding, images per second per CPU: local
   (one worker process) against ``executor="ray"`` on a 1-node and then a
   2-node cluster (1 CPU each); Ray's overhead as the ratio of its per-CPU
   rate to the local one;
2. bytes written to MongoDB per image (the sample collection's size before
   and after, per encoding);
3. search seconds per tile (hash and embedding tiles of ``--tile`` codes a
   side, Ray against the local search on the same codes);
4. the IVF search's recall and speed against the exact tiled search, on
   embeddings of the photos with planted near-duplicates.

Every Ray process runs inside a loopback-only network namespace (the
script re-runs itself under ``unshare -n -p -f --mount-proc``, as root),
with its own ``mongod``; nothing is left running.

Usage::

    python benchmarks/bench_ray.py [--photos /work/shared/photos] [--repeat 2]

Writes ``benchmarks/results/ray.json`` and prints a Markdown table.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, os.path.join(REPO, "tests"), HERE]
PORT = 6395


def _outer(argv):
    work = tempfile.mkdtemp(prefix="bench-ray-")
    inner = (
        f"ip link set lo up && exec {sys.executable} {os.path.abspath(__file__)} "
        f"--inner {work} " + " ".join(argv)
    )
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rc = subprocess.run(
        ["unshare", "-n", "-p", "-f", "--mount-proc", "bash", "-c", inner], env=env
    ).returncode
    subprocess.run(["rm", "-rf", work])
    sys.exit(rc)


def _ray_node(*args):
    ray = os.path.join(os.path.dirname(sys.executable), "ray")
    subprocess.run(
        [ray, "start", "--node-ip-address=127.0.0.1", "--num-cpus=1",
         "--disable-usage-stats", *args],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def _coll_size(ds):
    db = ds._sample_collection.database
    return db.command("collStats", ds._sample_collection_name)["size"]


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _inner(work, args):
    import dbserver

    dbserver.start(os.path.join(work, "mongo"))
    os.environ["FIFTYONE_SHOW_PROGRESS_BARS"] = "false"
    _ray_node("--head", f"--port={PORT}", "--include-dashboard=false",
              f"--temp-dir={work}/ray")

    import numpy as np
    import fiftyone as fo
    import ray

    import datasets
    import fiftyone_dedup as fod
    from fiftyone_dedup.algorithms import encoders
    from fiftyone_dedup.engine import ray_encode
    from fiftyone_dedup.engine import ray_search
    from fiftyone_dedup.engine import stored_vectors
    from fiftyone_dedup.algorithms import search

    env = {"PYTHONPATH": os.environ["PYTHONPATH"],
           "FIFTYONE_DATABASE_URI": os.environ["FIFTYONE_DATABASE_URI"]}
    ray.init(address=f"127.0.0.1:{PORT}", log_to_driver=False,
             runtime_env={"env_vars": env})
    ray_encode.CHUNK_SIZE = args.chunk  # enough chunks to spread a small set
    paths = datasets.photo_paths(args.photos)
    paths = (paths * args.copies)[: args.n_images or None]
    n = len(paths)
    out = {"machine": datasets.machine(), "num_images": n, "distinct_files": len(set(paths)),
           "chunk": args.chunk, "load_average_at_start": os.getloadavg()[0]}

    def encode(kind, executor, cpus):
        ds = fo.Dataset()
        ds.add_samples([fo.Sample(filepath=p) for p in paths])
        before = _coll_size(ds)
        kw = dict(executor="ray") if executor == "ray" else dict(num_workers=0)
        if kind == "dhash":
            fn = lambda: fod.compute_hashes(ds, overwrite=True, **kw)  # noqa: E731
        else:
            fn = lambda: fod.compute_embeddings(ds, overwrite=True, device="cpu", **kw)  # noqa: E731
        if executor == "ray":
            fn()  # warm: workers import the package, actors load the model
        best = min(_timed(fn)[0] for _ in range(args.repeat))
        size = _coll_size(ds)
        ds.delete()
        return {"seconds": round(best, 3), "images_per_s_per_cpu": round(n / best / cpus, 2),
                "bytes_per_image": round((size - before) / n, 1)}

    rows = {}
    for kind in ("dhash", "cnn"):
        rows[(kind, "local")] = encode(kind, "local", 1)
        rows[(kind, "ray-1node")] = encode(kind, "ray", 1)
    _ray_node(f"--address=127.0.0.1:{PORT}", f"--temp-dir={work}/ray")
    deadline = time.time() + 60
    while len([x for x in ray.nodes() if x["Alive"]]) < 2 and time.time() < deadline:
        time.sleep(0.5)
    for kind in ("dhash", "cnn"):
        rows[(kind, "ray-2nodes")] = encode(kind, "ray", 2)
    for (kind, where), r in rows.items():
        if where != "local":
            r["overhead_per_cpu"] = round(
                rows[(kind, "local")]["images_per_s_per_cpu"] / r["images_per_s_per_cpu"], 3
            )
    out["encode"] = {f"{k}/{w}": r for (k, w), r in rows.items()}

    # search: seconds per tile, local vs Ray (2 nodes), same codes
    rng = np.random.default_rng(0)
    t = args.tile
    codes = rng.integers(0, 2**63, size=4 * t, dtype=np.uint64)
    vecs = search.normalize(rng.standard_normal((2 * t, 1280)).astype(np.float32))
    res = {}
    for name, data, local_fn, spec, thr in (
        ("hash", codes, lambda x: search.hamming_pairs(x, 10), encoders.ENCODERS["dhash"], 10),
        ("cnn", vecs, lambda x: search.cosine_pairs(x, 0.85, normalized=True),
         encoders.ENCODERS["cnn"], 0.85),
    ):
        k = len(data) // t
        tiles = k * (k + 1) // 2
        tl, lp = _timed(lambda: local_fn(data))
        s = ray_search.Searcher(tile_size=t)
        s.pairs(spec, data[:t], thr)  # warm the workers
        tr, rp = _timed(lambda: s.pairs(spec, data, thr))
        same = all(np.array_equal(a, b) for a, b in zip(lp, rp))
        res[name] = {"codes": len(data), "tile": t, "tiles": tiles,
                     "local_s": round(tl, 3), "ray_2nodes_s": round(tr, 3),
                     "ray_s_per_tile_cpu": round(tr * 2 / tiles, 4),
                     "local_s_per_tile": round(tl / tiles, 4), "pairs_equal": same}
    out["search"] = res

    # IVF against exact, on real embeddings with near-duplicates of the photos
    files = datasets.fullhd_folder(
        os.path.join(work, "ivf"), n=args.ivf_images, photos_dir=args.photos
    )  # random crops of the photos: crops of one photo are near-duplicates
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=p) for p in files])
    fod.compute_embeddings(ds, executor="ray", device="cpu")
    _, x = stored_vectors.load_vectors(ds, "cnn_embedding")
    x = search.normalize(x)
    cnn = encoders.ENCODERS["cnn"]
    te, exact = _timed(lambda: ray_search.Searcher(tile_size=256).pairs(cnn, x, 0.85))
    ivf = {"vectors": len(x), "exact_s": round(te, 3), "exact_pairs": int(len(exact[0])),
           "runs": []}
    truth = set(zip(exact[0].tolist(), exact[1].tolist()))
    for nprobe in (1, 2, 4):
        ti, got = _timed(lambda: ray_search.ivf_cosine_pairs(
            x, 0.85, nprobe, nlist=max(2, len(x) // 64)))
        found = set(zip(got[0].tolist(), got[1].tolist()))
        ivf["runs"].append({**got[3], "seconds": round(ti, 3),
                            "true_recall": round(len(found & truth) / max(1, len(truth)), 4)})
    out["ivf"] = ivf

    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "ray.json"), "w") as f:
        json.dump(out, f, indent=2)
    print(table(out))


def table(out):
    lines = ["| step | where | s | images/s/CPU | overhead/CPU | bytes/image |",
             "|---|---|---|---|---|---|"]
    for key, r in out["encode"].items():
        kind, where = key.split("/")
        lines.append(f"| {kind} | {where} | {r['seconds']} | {r['images_per_s_per_cpu']} | "
                     f"{r.get('overhead_per_cpu', 1.0)} | {r['bytes_per_image']} |")
    lines += ["",
              "| search | codes | tile | tiles | local s | Ray 2 nodes s | Ray s/tile/CPU "
              "| equal |",
              "|---|---|---|---|---|---|---|---|"]
    for name, r in out["search"].items():
        lines.append(f"| {name} | {r['codes']} | {r['tile']} | {r['tiles']} | {r['local_s']} | "
                     f"{r['ray_2nodes_s']} | {r['ray_s_per_tile_cpu']} | {r['pairs_equal']} |")
    iv = out["ivf"]
    lines += ["", f"IVF on {iv['vectors']} embeddings (exact: {iv['exact_s']} s, "
              f"{iv['exact_pairs']} pairs)", "",
              "| nlist | nprobe | s | measured recall | true recall |", "|---|---|---|---|---|"]
    for r in iv["runs"]:
        lines.append(f"| {r['nlist']} | {r['nprobe']} | {r['seconds']} | {r['recall']} | "
                     f"{r['true_recall']} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--inner", metavar="WORKDIR")
    p.add_argument("--photos", default="/work/shared/photos")
    p.add_argument("--copies", type=int, default=2, help="samples per photo file")
    p.add_argument("--n-images", type=int, default=0)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--tile", type=int, default=8192)
    p.add_argument("--chunk", type=int, default=32, help="samples per Ray chunk")
    p.add_argument("--ivf-images", type=int, default=300)
    args, rest = p.parse_known_args()
    import datasets

    datasets.compile_package()
    if args.inner:
        return _inner(args.inner, args)
    return _outer(sys.argv[1:])


if __name__ == "__main__":
    main()
