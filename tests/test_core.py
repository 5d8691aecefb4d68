"""The engine on a real database: fields, groups, tags, run records."""

import json
import os
import time

import pytest

import fiftyone as fo
from fiftyone import ViewField as F

import fiftyone_dedup as fod
from fiftyone_dedup.algorithms import hashing

import helpers


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("images"))
    made = helpers.make_folder(d)
    made["bad"] = helpers.write_bad_files(os.path.join(d, "bad"))
    made["dir"] = d
    return made


def _dataset(paths):
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=p) for p in paths])
    return ds


def _all_paths(folder):
    paths = list(folder["originals"]) + [c for _, c in folder["planted"]]
    return sorted(paths) + sorted(folder["bad"].values())


def test_compute_hashes_stores_values_errors_and_reuses(folder, fresh_dataset):
    ds = fresh_dataset
    ds.add_samples([fo.Sample(filepath=p) for p in _all_paths(folder)])
    report = fod.compute_hashes(ds)
    assert report.num_computed == len(ds) and report.num_reused == 0
    assert report.num_failed == len(folder["bad"])

    paths, hashes, errors = ds.values(["filepath", "dhash", "dhash_error"])
    for path, h, err in zip(paths, hashes, errors):
        expected, expected_err = hashing.hash_file(path)
        assert h == expected and err == expected_err
    failed = {f["filepath"] for f in report.failures}
    assert failed == set(folder["bad"].values())

    again = fod.compute_hashes(ds)
    assert again.num_computed == 0 and again.num_reused == len(ds)
    assert {f["filepath"] for f in again.failures} == failed

    # a changed file is hashed again, the others reused
    target = folder["originals"][0]
    helpers.save(helpers.texture(4242), target)
    os.utime(target, (time.time() + 5, time.time() + 5))
    third = fod.compute_hashes(ds)
    assert third.num_computed == 1
    assert ds.one(F("filepath") == target)["dhash"] == hashing.hash_file(target)[0]
    helpers.save(helpers.photo(0), target)  # restore for other tests
    os.utime(target, (time.time() + 10, time.time() + 10))


def test_find_duplicates_groups_planted_pairs(folder, fresh_dataset):
    ds = fresh_dataset
    ds.add_samples([fo.Sample(filepath=p) for p in _all_paths(folder)])
    results = fod.find_duplicates(ds, threshold=10)
    s = results.summary
    assert s["num_failed"] == len(folder["bad"])
    assert s["num_groups"] == len(folder["planted"])
    assert s["num_duplicates"] == len(folder["planted"])

    by_path = {
        p: (g, r, k, d)
        for p, g, r, k, d in zip(
            *ds.values(["filepath", "dedup_group", "dedup_role", "dedup_kept_id", "dedup_distance"])
        )
    }
    ids = dict(zip(*ds.values(["filepath", "id"])))
    for orig, copy in folder["planted"]:
        g1, r1, _, _ = by_path[orig]
        g2, r2, k2, d2 = by_path[copy]
        assert g1 == g2 is not None
        # "first" keeps the earlier sample: originals were added before copies
        assert {r1, r2} == {"kept", "duplicate"}
        kept_path, dup_path = (orig, copy) if r1 == "kept" else (copy, orig)
        assert by_path[dup_path][2] == ids[kept_path]
        assert 0 <= by_path[dup_path][3] <= 10
    tagged = set(ds.match_tags("duplicate").values("filepath"))
    assert len(tagged) == len(folder["planted"])
    assert all(by_path[p][1] == "duplicate" for p in tagged)

    view = results.view()
    roles = view.values("dedup_role")
    groups = view.values("dedup_group")
    assert len(view) == 2 * len(folder["planted"])
    assert groups == sorted(groups)
    assert all(roles[i] == "kept" for i in range(0, len(roles), 2))
    assert len(results.view(role="duplicate")) == len(folder["planted"])
    assert len(fod.duplicates_view(ds, dynamic=True)) == len(folder["planted"])


def _hash_dataset(hexes):
    ds = fo.Dataset()
    ds.add_samples(
        [fo.Sample(filepath=f"/nowhere/{i}.jpg", dhash=h) for i, h in enumerate(hexes)]
    )
    return ds


def test_chain_of_near_matches_keeps_both_ends():
    a = 0
    b = (1 << 8) - 1  # 8 bits from a
    c = ((1 << 16) - 1)  # 8 bits from b, 16 from a
    ds = _hash_dataset(hashing.codes_to_hex([a, b, c]))
    try:
        fod.find_duplicates(ds, threshold=10, compute=False, verify="none")
        roles = ds.values("dedup_role")
        assert roles == ["kept", "duplicate", None]
        assert ds.values("dedup_distance") == [0, 8, None]
        # the far end is untouched: no tag, no group
        assert ds.values("tags")[2] == []
    finally:
        ds.delete()


def test_identical_hashes_group_in_linear_memory():
    n = 5000
    ds = _hash_dataset(["00ff00ff00ff00ff"] * n + ["ffffffffffffffff"])
    try:
        r = fod.find_duplicates(ds, threshold=4, compute=False, verify="none")
        assert r.summary["num_groups"] == 1
        assert r.summary["num_duplicates"] == n - 1
        assert r.summary["num_pairs"] == n * (n - 1) // 2
        assert ds.count_values("dedup_role") == {"kept": 1, "duplicate": n - 1, None: 1}
    finally:
        ds.delete()


def test_run_record_loads_in_a_fresh_process(folder):
    ds = _dataset(folder["originals"] + [c for _, c in folder["planted"]])
    ds.persistent = True
    try:
        fod.find_duplicates(ds, threshold=8, run_key="dd", verify="none")
        code = f"""
import json, fiftyone as fo, fiftyone_dedup as fod
ds = fo.load_dataset({ds.name!r})
r = fod.load_run(ds, "dd")
info = ds.get_run_info("dd")
print(json.dumps({{"runs": fod.list_runs(ds), "cls": type(r).__name__,
    "cfg": type(info.config).__name__, "threshold": info.config.threshold,
    "fields": info.config.output_fields, "summary": r.summary,
    "groups": len(r.groups())}}))
"""
        out = helpers.run_python(code)
        assert out.returncode == 0, out.stderr
        got = json.loads(out.stdout.strip().splitlines()[-1])
        assert got["runs"] == ["dd"]
        assert got["cls"] == "DedupRunResults" and got["cfg"] == "DedupRunConfig"
        assert got["threshold"] == 8
        assert got["fields"] == ["dd_group", "dd_role", "dd_kept_id", "dd_distance"]
        assert got["summary"]["num_groups"] == len(folder["planted"])
        assert got["groups"] == len(folder["planted"])
    finally:
        ds.delete()


def test_rerun_replaces_and_delete_cleans_up(folder):
    ds = _dataset(folder["originals"] + [c for _, c in folder["planted"]])
    try:
        fod.find_duplicates(ds, threshold=10, verify="none")
        n_dups = len(ds.match_tags("duplicate"))
        assert n_dups == len(folder["planted"])
        # the same key with another threshold replaces the run
        r = fod.find_duplicates(ds, threshold=0, verify="none")
        assert ds.get_run_info("dedup").config.threshold == 0
        assert len(ds.match_tags("duplicate")) == r.summary["num_duplicates"] < n_dups
        assert len(ds.exists("dedup_group")) == r.summary["num_groups"] * 2
        # a second key adds a run; its duplicates keep their tag when the
        # first run is deleted
        fod.find_duplicates(ds, threshold=10, run_key="loose", verify="none")
        assert fod.list_runs(ds) == ["dedup", "loose"]
        fod.delete_run(ds, "dedup")
        assert fod.list_runs(ds) == ["loose"]
        assert not ds.has_sample_field("dedup_group")
        assert len(ds.match_tags("duplicate")) == n_dups
        fod.delete_run(ds, "loose")
        assert len(ds.match_tags("duplicate")) == 0
        assert not any(f.startswith("loose_") for f in ds.get_field_schema())
        assert ds.has_sample_field("dhash")  # encodings stay
    finally:
        ds.delete()


def test_find_on_a_view_writes_only_the_view(folder):
    ds = _dataset(folder["originals"] + [c for _, c in folder["planted"]])
    try:
        first_copy = folder["planted"][0][1]
        view = ds.match(F("filepath") != first_copy)
        r = fod.find_duplicates(view, threshold=10)
        assert r.summary["num_samples"] == len(ds) - 1
        assert r.summary["num_groups"] == len(folder["planted"]) - 1
        assert ds.one(F("filepath") == first_copy)["dedup_group"] is None
        assert ds.one(F("filepath") == first_copy)["dhash"] is None
    finally:
        ds.delete()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(threshold=65), "between 0 and 64"),
        (dict(threshold=-1), "between 0 and 64"),
        (dict(threshold=2.5), "whole number of bits"),
        (dict(encoder="cnn", threshold=1.5), "between -1 and 1"),
        (dict(encoder="md5"), "Unknown encoder 'md5'"),
        (dict(run_key="bad key"), "Invalid run key"),
        (dict(run_key="filepath"), "reserved"),
        (dict(keep="biggest"), "Unknown keep policy"),
        (dict(field="9x"), "Invalid field"),
        (dict(tag=""), "tag must be"),
    ],
)
def test_bad_parameters_change_nothing(folder, kwargs, message):
    ds = _dataset(folder["originals"][:3])
    try:
        before = set(ds.get_field_schema())
        with pytest.raises(ValueError, match=message):
            fod.find_duplicates(ds, **kwargs)
        assert set(ds.get_field_schema()) == before
        assert ds.list_runs() == []
    finally:
        ds.delete()


def test_collection_problems_are_explained(fresh_dataset):
    with pytest.raises(ValueError, match="is empty"):
        fod.find_duplicates(fresh_dataset)
    with pytest.raises(ValueError, match="dataset or view"):
        fod.find_duplicates(["a.jpg"])
    video = fo.Dataset()
    try:
        video.add_sample(fo.Sample(filepath="/x/clip.mp4"))
        with pytest.raises(ValueError, match="media type 'video'"):
            fod.compute_hashes(video)
    finally:
        video.delete()


def test_field_conflicts_are_refused(folder, fresh_dataset):
    ds = fresh_dataset
    ds.add_samples([fo.Sample(filepath=p, dhash=1) for p in folder["originals"][:2]])
    with pytest.raises(ValueError, match="Field 'dhash' already exists with type IntField"):
        fod.compute_hashes(ds)
    ds.add_sample_field("mine_group", fo.IntField)
    with pytest.raises(ValueError, match="mine_group"):
        fod.find_duplicates(ds, field="other", run_key="mine")
    with pytest.raises(ValueError, match="does not exist"):
        fod.find_duplicates(ds, field="nothing_here", compute=False)


def test_skip_failures_false_raises_after_storing(folder, fresh_dataset):
    ds = fresh_dataset
    ds.add_samples(
        [fo.Sample(filepath=p) for p in folder["originals"][:3] + [folder["bad"]["empty"]]]
    )
    with pytest.raises(ValueError, match="empty.jpg: empty file"):
        fod.compute_hashes(ds, skip_failures=False)
    assert len(ds.exists("dhash")) == 3


def test_fields_added_together_are_fiftyones_own():
    """``ensure_fields`` adds several fields with one reload; the schema and
    the samples are as ``add_sample_field`` one by one leaves them."""
    from fiftyone_dedup.engine import samples

    types = {"r_group": fo.IntField, "r_role": fo.StringField,
             "r_score": fo.FloatField, "r_list": fo.ListField}

    def made(add):
        ds = fo.Dataset()
        ds.add_samples([fo.Sample(filepath=f"/x/{i}.jpg") for i in range(3)], progress=False)
        ds.add_sample_field("r_group", fo.IntField)  # one there already
        add(ds)
        fields = []
        for doc in ds._doc.sample_fields:
            d = doc.to_dict()
            d.pop("created_at", None)
            for sub in d.get("fields") or []:
                sub.pop("created_at", None)
            fields.append(d)
        schema = {k: type(v).__name__ for k, v in ds.get_field_schema().items()}
        ds.set_values("r_role", ["x", None, "y"])
        docs = [{k: v for k, v in s.to_dict().items() if k in types} for s in ds]
        ds.delete()
        return fields, schema, docs

    def one_by_one(ds):
        for f, t in types.items():
            if not ds.has_sample_field(f):
                ds.add_sample_field(f, t)

    got = made(lambda ds: samples.ensure_fields(ds, types))
    assert got == made(one_by_one)
    assert list(got[1])[-4:] == list(types)
