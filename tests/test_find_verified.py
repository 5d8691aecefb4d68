"""Verified finds: verification on by default, ``verify="none"`` gives the
unverified results, each duplicate carries its evidence, the run records
the settings, and the candidate histogram has both colours (the verifier
itself: test_verify.py)."""

import json
import os

import pytest

import helpers
import verify_sets
from fiftyone_dedup.algorithms import search
from fiftyone_dedup.algorithms import verify
from test_verify import _photos


def _folder(tmp_path):
    """Real photos, a few near-duplicates of them (flip, 90-degree turn,
    25% crop) and text pages in one layout."""
    truth = {}
    photos = _photos()[:4]
    for k, img in enumerate(photos):
        truth[verify_sets.write(img, str(tmp_path / f"p{k}"))] = k
        for kind in ("flip", "rotate90", "crop25"):
            fn, fmt = verify_sets.TRANSFORMS[kind]
            truth[verify_sets.write(fn(img), str(tmp_path / f"p{k}_{kind}"), fmt)] = k
    for i, page in enumerate(verify_sets.text_pages(12)):
        truth[verify_sets.write(page, str(tmp_path / f"page{i:02d}"))] = f"page{i}"
    return truth


def _dataset(paths, name):
    import fiftyone as fo

    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name)
    ds.add_samples([fo.Sample(filepath=p) for p in sorted(paths)])
    return ds


def _groups(ds, run_key="dedup"):
    import fiftyone_dedup as fod

    return [
        [g["keep"]["filepath"]] + [d["filepath"] for d in g["duplicates"]]
        for g in fod.get_groups(ds, run_key)
    ]


@pytest.mark.parametrize("encoder, threshold", [("dhash", 10), ("dhash", 24)])
def test_find_verified_hashes(tmp_path, encoder, threshold):
    import fiftyone_dedup as fod
    from fiftyone_dedup.engine import runs

    truth = _folder(tmp_path)
    ds = _dataset(truth, f"verify-{encoder}-{threshold}")
    res = fod.find_duplicates(ds, encoder=encoder, threshold=threshold)
    groups = _groups(ds)
    # no pair of different pictures
    for g in groups:
        assert len({truth[p] for p in g}) == 1, g
    # the turned and mirrored copies are found (dihedral candidates)
    together = {frozenset((g[0], d)) for g in groups for d in g[1:]}
    for p, k in truth.items():
        if isinstance(k, int) and ("flip" in p or "rotate90" in p):
            orig = str(tmp_path / f"p{k}.jpg")
            assert frozenset((orig, p)) in together, p
    # evidence per duplicate, settings on the run
    inl = runs.output_field("dedup", runs.VERIFY_SUFFIX)
    dups = ds.match({"dedup_role": "duplicate"})
    assert len(dups) > 0
    assert min(dups.values(inl)) >= verify.MIN_WEAK_INLIERS
    cfg = ds.get_run_info("dedup").config
    assert cfg.verify == "orb"
    assert cfg.verify_settings["candidates_per_sample"] > 0
    assert res.summary["num_candidates"] >= res.summary["num_verified"] > 0
    hist = res.histogram
    assert sum(hist["verified"]) + hist["verified_beyond"] == res.summary["num_verified"]
    assert sum(hist["rejected"]) + hist["rejected_beyond"] > 0
    assert [v + r for v, r in zip(hist["verified"], hist["rejected"])] == hist["counts"]


def test_verify_none_is_the_unverified_search(tmp_path):
    import fiftyone_dedup as fod

    truth = _folder(tmp_path)
    ds = _dataset(truth, "verify-none")
    fod.find_duplicates(ds, encoder="dhash", threshold=24, verify="none", run_key="plain")
    plain = _groups(ds, "plain")
    # at 24 bits the text pages are called duplicates of each other
    assert any(len({truth[p] for p in g}) > 1 for g in plain)
    assert ds.get_run_info("plain").config.verify == "none"
    assert "plain_inliers" not in ds.get_field_schema()
    # the same search through the search module, unverified
    from fiftyone_dedup.algorithms import grouping
    from fiftyone_dedup.algorithms import hashing

    files, hashes = ds.values(["filepath", "dhash"])
    codes = hashing.hex_to_codes(hashes)
    uniq, keys = search.unique_rows(codes)
    a, b, d = search.hamming_pairs(uniq, 24)
    g = grouping.star_groups(keys, a, b, d)
    expected = sorted(
        sorted(files[k] for k in [kept] + list(dups)) for kept, dups, _ in g.members()
    )
    assert sorted(sorted(x) for x in plain) == expected


def test_find_cross_verified(tmp_path):
    import fiftyone_dedup as fod

    truth = _folder(tmp_path)
    originals = [
        p for p, k in truth.items() if isinstance(k, int) and "_" not in os.path.basename(p)
    ]
    others = [p for p in truth if p not in originals]
    ref = _dataset(originals, "verify-ref")
    query = _dataset(others, "verify-query")
    fod.find_cross_duplicates(query, ref, encoder="dhash", threshold=10)
    ids, paths, kept = query.values(["id", "filepath", "dedup_kept_filepath"])
    found = {p: k for p, k in zip(paths, kept) if k}
    for p, k in found.items():
        assert truth[p] == truth[k]
    # every turned/mirrored copy finds its original; no text page matches
    for p in others:
        if "flip" in p or "rotate90" in p:
            assert p in found, p
        if "page" in p:
            assert p not in found


def _cropped(tmp_path):
    """Photos and copies cropped by 25% (centred, in a corner) and by 10%:
    ``({original: [its crops]})``."""
    out = {}
    for k, img in enumerate(_photos()[:5]):
        w, h = img.size
        boxes = {
            "centre": (w // 8, h // 8, w - w // 8, h - h // 8),
            "corner": (w // 4, 0, w, 3 * h // 4),
            "tenth": (w // 10, h // 20, w, h - h // 20),
        }
        orig = verify_sets.write(img, str(tmp_path / f"p{k}"))
        out[orig] = [
            verify_sets.write(img.crop(box), str(tmp_path / f"p{k}_{name}"))
            for name, box in boxes.items()
        ]
    return out


def test_hash_runs_find_cropped_copies(tmp_path):
    # a crop moves a DHash far from the whole image's; the DHashes of the
    # image's own crops are candidates, verified like the rest
    import fiftyone_dedup as fod

    crops = _cropped(tmp_path)
    ds = _dataset([p for o, cs in crops.items() for p in [o] + cs], "verify-crops")
    fod.find_duplicates(ds, encoder="dhash", threshold=10)
    fod.find_duplicates(ds, encoder="dhash", threshold=10, verify="none", run_key="plain")
    together = {p: set(g) for g in _groups(ds) for p in g}
    for orig, cs in crops.items():
        assert together.get(orig) == {orig, *cs}, orig
    plain = {p for g in _groups(ds, "plain") for p in g[1:]}
    assert sum(p not in plain for cs in crops.values() for p in cs) >= 5
    cfg = ds.get_run_info("dedup").config
    assert cfg.verify_settings["crop_bits"] == 16


@pytest.mark.parametrize("crops_in", ["query", "reference"])
def test_cross_hash_runs_find_cropped_copies_either_way(tmp_path, crops_in):
    import fiftyone_dedup as fod

    crops = _cropped(tmp_path)
    originals = _dataset(list(crops), f"verify-crops-orig-{crops_in}")
    copies = _dataset([p for cs in crops.values() for p in cs], f"verify-crops-{crops_in}")
    query, ref = (copies, originals) if crops_in == "query" else (originals, copies)
    fod.find_cross_duplicates(query, ref, encoder="dhash", threshold=10)
    paths, kept = query.values(["filepath", "dedup_kept_filepath"])
    found = {p: k for p, k in zip(paths, kept) if k}
    for orig, cs in crops.items():
        if crops_in == "query":
            assert all(found.get(c) == orig for c in cs), orig
        else:
            assert found.get(orig) in cs, orig


def test_cli_verify_flag_and_histogram(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    truth = _folder(folder)
    report = tmp_path / "r.json"
    png = tmp_path / "h.png"
    out = helpers.run_cli(
        "-d", str(folder), "--no_data_dir", "--no_annot", "--dry_run", "--encoder", "DHash",
        "--threshold", "16", "--report", str(report), "--histogram", str(png), "--quiet",
    )
    assert out.returncode == 0, out.stderr
    rep = json.load(open(report))
    assert rep["verify"] == "orb"
    s = rep["summary"]
    assert s["num_candidates"] >= s["num_checked"] >= s["num_verified"] > 0
    assert f"{s['num_verified']} of {s['num_checked']} checked" in out.stdout
    for g in rep["groups"]:
        assert len({truth[p] for p in [g["keep"]] + g["duplicates"]}) == 1
        assert all(d["inliers"] >= verify.MIN_WEAK_INLIERS for d in g["details"])
    assert png.exists() and png.stat().st_size > 0
    out = helpers.run_cli(
        "-d", str(folder), "--no_data_dir", "--no_annot", "--dry_run", "--encoder", "DHash",
        "--threshold", "16", "--report", str(report), "--verify", "none", "--quiet",
        "--dataset", "verify-cli-none",
    )
    assert out.returncode == 0, out.stderr
    rep = json.load(open(report))
    assert rep["verify"] == "none"
    assert "verified pairs" not in out.stdout
    assert all("inliers" not in d for g in rep["groups"] for d in g["details"])
