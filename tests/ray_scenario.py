"""Local against Ray on a real 2-node Ray cluster; run by tests/test_ray.py.

Must run inside a network namespace with only loopback (``unshare -n -p -f
--mount-proc``, see test_ray.py): it starts its own ``mongod`` and two Ray
nodes (``ray start --head`` and ``ray start --address``), all on
127.0.0.1, and every one of them ends with the namespace. Prints one JSON
line per check (``{"check": ..., "ok": ..., ...}``) and exits non-zero if
any check fails.

Usage: python tests/ray_scenario.py WORKDIR PORT
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, HERE]

import dbserver  # noqa: E402

WORK, PORT = sys.argv[1], int(sys.argv[2])
SERVER = dbserver.start(os.path.join(WORK, "mongo"))
os.environ["PYTHONPATH"] = REPO + os.pathsep + os.environ.get("PYTHONPATH", "")
os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")
os.environ.setdefault("FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS", "true")
if "FIFTYONE_PLUGINS_DIR" not in os.environ:  # run by hand: the plugin is this repo
    os.makedirs(os.path.join(WORK, "plugins"), exist_ok=True)
    os.symlink(REPO, os.path.join(WORK, "plugins", "fiftyone_dedup"))
    os.environ["FIFTYONE_PLUGINS_DIR"] = os.path.join(WORK, "plugins")
RAY = os.path.join(os.path.dirname(sys.executable), "ray")
TEMP = os.path.join(WORK, "ray")


def ray_start(*args):
    subprocess.run(
        [RAY, "start", "--node-ip-address=127.0.0.1", "--num-cpus=1",
         "--disable-usage-stats", f"--temp-dir={TEMP}", *args],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


ray_start("--head", f"--port={PORT}", "--include-dashboard=false")
ray_start(f"--address=127.0.0.1:{PORT}")

import fiftyone as fo  # noqa: E402
import numpy as np  # noqa: E402

import helpers  # noqa: E402
import fiftyone_dedup as fod  # noqa: E402
from fiftyone_dedup.engine import encodings as engine_encodings  # noqa: E402
from fiftyone_dedup.engine import field_names  # noqa: E402
from fiftyone_dedup.engine import ray_encode  # noqa: E402
from fiftyone_dedup.engine import ray_search  # noqa: E402
from fiftyone_dedup.algorithms import encoders  # noqa: E402
from fiftyone_dedup.algorithms import search  # noqa: E402

ray_encode.CHUNK_SIZE = 4  # many chunks and tiles on a small set
TILE = 7
FAILED = []


def check(name, ok, **info):
    print(json.dumps({"check": name, "ok": bool(ok), **info}), flush=True)
    if not ok:
        FAILED.append(name)


def dataset(name, paths):
    ds = fo.Dataset(name)
    ds.add_samples([fo.Sample(filepath=p) for p in paths])
    return ds


def encodings(ds, field):
    # per file: the stored value, error and stamp
    paths, values, errors, stamps = ds.values(
        ["filepath", field, field_names.error_field(field), field_names.stamp_field(field)]
    )
    out = {}
    for p, v, e, s in zip(paths, values, errors, stamps):
        if isinstance(v, np.ndarray):
            v = v.tolist()
        out[p] = (v, e, s)
    return out


def outcome(ds, key):
    # per file: group, role, the kept file, the score, and the tags
    sim = f"{key}_similarity" if ds.has_sample_field(f"{key}_similarity") else f"{key}_distance"
    ids, paths = ds.values(["id", "filepath"])
    by_id = dict(zip(ids, paths))
    fields = ["filepath", f"{key}_group", f"{key}_role", f"{key}_kept_id", sim, "tags"]
    rows = {}
    for p, g, r, k, s, t in zip(*ds.values(fields)):
        rows[p] = (g, r, by_id.get(k, k if k is None else "other:" + str(k)), s, sorted(t))
    return rows


def _plain(summary):
    # a summary without its timing, datasets by role
    out = {k: v for k, v in summary.items() if k not in ("seconds", "datasets", "search")}
    out["datasets"] = sorted(
        (k.split("-")[0], tuple(sorted(v.items())))
        for k, v in summary.get("datasets", {}).items()
    )
    return out


def kill_when_running(prefix):
    """Kills (SIGKILL) the first Ray worker seen running ``prefix``."""
    killed = []

    def watch():
        deadline = time.time() + 300
        while not killed and time.time() < deadline:
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        cmd = f.read().decode(errors="replace")
                except OSError:
                    continue
                if cmd.startswith(prefix):
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                        killed.append(int(pid))
                    except OSError:
                        pass
                    return
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return killed, thread


def main():
    import ray

    ray.init(address=f"127.0.0.1:{PORT}", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"],
                                       "FIFTYONE_DATABASE_URI": SERVER.uri}})
    nodes = [n for n in ray.nodes() if n["Alive"]]
    check("two nodes on loopback", len(nodes) == 2
          and all(n["NodeManagerAddress"] == "127.0.0.1" for n in nodes),
          nodes=[n["NodeManagerAddress"] for n in nodes])

    folder = os.path.join(WORK, "images")
    made = helpers.make_folder(folder, num_textures=4,
                               edits=("resized", "jpeg", "brighter", "cropped"))
    bad = helpers.write_bad_files(os.path.join(WORK, "bad"))
    bad_paths = list(bad.values()) if isinstance(bad, dict) else list(bad)
    copies = [c for _, c in made["planted"]]
    paths = made["originals"] + copies + bad_paths + [os.path.join(WORK, "gone.jpg")]
    check("images", len(paths) > 20, num=len(paths))

    for encoder in ("dhash", "cnn"):
        field = "dhash" if encoder == "dhash" else "cnn_embedding"
        loc, ray_ds = dataset(f"local-{encoder}", paths), dataset(f"ray-{encoder}", paths)
        killed, thread = kill_when_running(
            "ray::_encode_chunk_task" if encoder == "dhash" else "ray::_Embedder.run"
        )
        rl = fod.find_duplicates(loc, encoder=encoder)
        rr = fod.find_duplicates(ray_ds, encoder=encoder, executor="ray")
        thread.join(timeout=1)
        check(f"{encoder}: a worker was killed mid-run", killed, pids=killed)
        el, er = encodings(loc, field), encodings(ray_ds, field)
        check(f"{encoder}: identical encodings", el == er and len(el) == len(paths),
              differ=[p for p in el if el[p] != er.get(p)][:3])
        check(f"{encoder}: failures reported alike",
              [f["filepath"] for f in fod.get_failures(loc, field)]
              == [f["filepath"] for f in fod.get_failures(ray_ds, field)]
              and len(fod.get_failures(loc, field)) >= len(bad_paths))
        ol, orr = outcome(loc, "dedup"), outcome(ray_ds, "dedup")
        check(f"{encoder}: identical groups and kept samples", ol == orr,
              summary_local=rl.summary, summary_ray=rr.summary,
              differ=[p for p in ol if ol[p] != orr.get(p)][:3])
        check(f"{encoder}: duplicates found", rl.summary["num_duplicates"] >= 4,
              num=rl.summary["num_duplicates"])

        # the pairs themselves, tile by tile against the local search
        spec = encoders.get_encoder(encoder)
        _, codes = engine_encodings.load_encodings(loc, spec, field)
        thr = 12 if encoder == "dhash" else 0.8
        if encoder == "dhash":
            local = search.hamming_pairs(codes, thr)
        else:
            codes = search.normalize(codes)
            local = search.cosine_pairs(codes, thr, normalized=True)
        searcher = ray_search.Searcher(tile_size=TILE)
        remote = searcher.pairs(spec, codes, thr)
        check(f"{encoder}: identical pairs ({searcher.num_tiles} tiles)",
              all(np.array_equal(x, y) for x, y in zip(local, remote)),
              num_pairs=len(local[0]))
        q, r = codes[: len(codes) // 2], codes[len(codes) // 2 :]
        cross = search.hamming_cross if spec.is_hash else search.cosine_cross
        lq = cross(q, r, thr) if spec.is_hash else cross(q, r, thr, normalized=True)
        rq = searcher.cross(spec, q, r, thr)
        check(f"{encoder}: identical cross pairs",
              all(np.array_equal(x, y) for x, y in zip(lq, rq)), num_pairs=len(lq[0]))

        if not spec.is_hash:
            # IVF: probing every list is exact; one list finds a subset,
            # whose measured recall (all queries sampled) is the true one
            full = ray_search.ivf_cosine_pairs(codes, thr, nprobe=3, nlist=3)
            check("cnn: IVF probing every list gives the exact pairs",
                  all(np.array_equal(x, y) for x, y in zip(local, full[:3]))
                  and full[3]["recall"] == 1.0, stats=full[3])
            one = ray_search.ivf_cosine_pairs(
                codes, thr, nprobe=1, nlist=3, recall_sample=len(codes)
            )
            exact = set(zip(local[0].tolist(), local[1].tolist()))
            got = set(zip(one[0].tolist(), one[1].tolist()))
            check("cnn: IVF recall is measured right",
                  got <= exact and abs(one[3]["recall"] - len(got) / max(1, len(exact))) < 1e-6,
                  stats=one[3], found=len(got), exact=len(exact))
            ivf = fod.find_duplicates(ray_ds, encoder=encoder, executor="ray",
                                      ivf_nprobe=2, run_key="ivf", verify="none")
            rec = fod.load_run(ray_ds, "ivf").summary.get("search", {})
            check("cnn: IVF recall recorded in the run",
                  rec.get("method") == "ivf" and rec.get("nprobe") == 1
                  and rec.get("recall") == 1.0 and ivf.summary["search"] == rec, search=rec)

        # a rerun reuses every stored encoding; cleared ones are redone
        def rerun(ds, **kw):
            if encoder == "dhash":
                return fod.compute_hashes(ds, **kw)
            return fod.compute_embeddings(ds, **kw)

        again, again_l = rerun(ray_ds, executor="ray"), rerun(loc)
        check(f"{encoder}: rerun skips finished chunks",
              (again.num_reused, again.num_computed)
              == (again_l.num_reused, again_l.num_computed)
              and again.num_computed <= 1,  # the missing file is retried
              reused=again.num_reused, computed=again.num_computed)
        for ds in (ray_ds, loc):
            ds.limit(5).set_values(field_names.stamp_field(field), [None] * 5)
        again, again_l = rerun(ray_ds, executor="ray"), rerun(loc)
        check(f"{encoder}: rerun redoes only what is missing",
              again.num_computed == again_l.num_computed <= 6
              and encodings(ray_ds, field) == el,
              computed=again.num_computed)

        # across datasets: query (the copies) against reference (originals)
        n_orig = len(made["originals"])
        ql = dataset(f"q-local-{encoder}", copies)
        rl_ = dataset(f"r-local-{encoder}", paths[:n_orig])
        qr, rr_ = dataset(f"q-ray-{encoder}", copies), dataset(f"r-ray-{encoder}", paths[:n_orig])
        xl = fod.find_cross_duplicates(ql, rl_, encoder=encoder)
        xr = fod.find_cross_duplicates(qr, rr_, encoder=encoder, executor="ray")
        same = _plain(xl.summary) == _plain(xr.summary)
        kl = dict(zip(*ql.values(["filepath", "dedup_kept_filepath"])))
        kr = dict(zip(*qr.values(["filepath", "dedup_kept_filepath"])))
        check(f"{encoder}: identical cross-dataset results", same and kl == kr,
              summary=xl.summary, found=sum(v is not None for v in kl.values()))

    # a scheduled (delegated) operator run on Ray, as a local one
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    from fiftyone_dedup.app.operators import PLUGIN_NAME

    results = {}
    for executor in ("local", "ray"):
        ds = dataset(f"op-{executor}", paths)
        op_uri = f"{PLUGIN_NAME}/find_duplicates"
        params = {"encoder": "dhash", "threshold": 10, "run_key": "sched",
                  "open_view": False, "executor": executor}
        queued = foo.execute_operator(op_uri, dict(dataset=ds), params=params,
                                      request_delegation=True)
        DelegatedOperationService().execute_queued_operations(
            dataset_name=ds.name, operator=op_uri
        )
        results[executor] = (queued.error, outcome(ds, "sched"),
                             ds.values(field_names.stamp_field("dhash")))
    check("delegated operator run on Ray", results["local"] == results["ray"]
          and results["ray"][0] is None and any(v for v in results["ray"][2]),
          error=results["ray"][0])

    # the command line, against the same cluster
    reports = {}
    for executor in ("local", "ray"):
        out = os.path.join(WORK, f"cli-{executor}.json")
        proc = subprocess.run(
            [sys.executable, "-m", "fiftyone_dedup", "--dirs", folder, "--dry_run",
             "--no_data_dir", "--no_annot",
             "--encoder", "dhash", "--dataset", f"cli-{executor}", "--report", out,
             "-q", "--executor", executor]
            + (["--ray_address", f"127.0.0.1:{PORT}"] if executor == "ray" else []),
            capture_output=True, text=True, cwd=WORK, timeout=600,
        )
        with open(out) if os.path.exists(out) else open(os.devnull) as f:
            text = f.read()
        reports[executor] = (proc.returncode, _cli_groups(json.loads(text)) if text else None)
        if proc.returncode:
            print(proc.stderr[-2000:], file=sys.stderr)
    check("command line --executor ray", reports["local"] == reports["ray"]
          and reports["ray"][0] == 0 and reports["ray"][1], groups=len(reports["ray"][1] or []))

    sys.exit(1 if FAILED else 0)


def _cli_groups(rep):
    # the report's groups as (kept, duplicates) filepaths
    out = []
    for g in rep.get("groups", []):
        keep = g.get("keep") or g.get("kept") or {}
        dups = g.get("duplicates") or []
        out.append((keep.get("filepath") if isinstance(keep, dict) else keep,
                    sorted(d.get("filepath") if isinstance(d, dict) else d for d in dups)))
    return sorted(out)


if __name__ == "__main__":
    main()
