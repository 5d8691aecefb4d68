"""Keep policies: each picks the member it promises, the same every time."""

import os
import time

import pytest

import fiftyone as fo
from fiftyone import ViewField as F

import fiftyone_dedup as fod
from fiftyone_dedup.engine import keep

import helpers

DAY = 86400.0


def build_group(directory):
    """Eight near-duplicates of one photo, each best by one policy.

    Returns:
        ``(paths, expected)``: paths in sample order, and the path each
        policy must keep
    """
    img = helpers.photo(2)  # 512x512
    d = str(directory)
    members = {
        "m0": (helpers.resized(img, 0.5), "other/m0.jpg", dict(quality=90)),
        "m1": (img, "other/m1.jpg", dict(quality=30)),  # most pixels, small file
        "m2": (helpers.resized(img, 0.75), "other/m2.png", {}),  # PNG: biggest file
        "m3": (helpers.resized(img, 0.5), "other/m3.jpg", dict(quality=85)),
        "m4": (helpers.resized(img, 0.5), "other/m4.jpg", dict(quality=80)),
        "m5": (helpers.resized(img, 0.5), "other/m5.jpg", dict(quality=75)),
        "m6": (helpers.resized(img, 0.5), "preferred/m6.jpg", dict(quality=70)),
        "m7": (helpers.resized(img, 0.5), "other/m7.jpg", dict(quality=65)),
    }
    paths = {}
    now = time.time()
    for name, (im, rel, kw) in members.items():
        path = os.path.join(d, rel)
        helpers.save(im, path, **kw)
        paths[name] = path
        os.utime(path, (now - 30 * DAY, now - 30 * DAY))
    os.utime(paths["m4"], (now - 3000 * DAY, now - 3000 * DAY))  # oldest
    os.utime(paths["m5"], (now - 1 * DAY, now - 1 * DAY))  # newest
    expected = {
        "first": paths["m0"],
        "largest_resolution": paths["m1"],
        "largest_file": paths["m2"],
        "most_labels": paths["m3"],
        "oldest": paths["m4"],
        "newest": paths["m5"],
        "priority": paths["m6"],
        "max:score": paths["m7"],
        "min:score": paths["m6"],
    }
    return [paths[f"m{i}"] for i in range(8)], expected


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    d = tmp_path_factory.mktemp("keep")
    paths, expected = build_group(d)
    return dict(dir=str(d), paths=paths, expected=expected)


def make_dataset(group):
    ds = fo.Dataset()
    samples = []
    for i, p in enumerate(group["paths"]):
        n_boxes = 3 if p.endswith("m3.jpg") else 1
        dets = [
            fo.Detection(label="cup", bounding_box=[0.1 * k, 0.1, 0.2, 0.2])
            for k in range(n_boxes)
        ]
        score = {6: -5.0, 7: 9.0}.get(i, float(i))
        samples.append(
            fo.Sample(filepath=p, ground_truth=fo.Detections(detections=dets), score=score)
        )
    ds.add_samples(samples)
    return ds


POLICIES = [
    "first", "largest_resolution", "largest_file", "most_labels", "oldest",
    "newest", "priority", "max:score", "min:score",
]


def _kept(ds, key):
    return ds.match(F(f"{key}_role") == "kept").values("filepath")


@pytest.mark.parametrize("policy", POLICIES)
def test_python_keep_policy_chooses_expected(group, policy):
    ds = make_dataset(group)
    try:
        priority = [os.path.join(group["dir"], "preferred")] if policy == "priority" else None
        r = fod.find_duplicates(ds, threshold=10, keep=policy, priority=priority)
        assert r.summary["num_groups"] == 1
        assert r.summary["num_duplicates"] == len(group["paths"]) - 1
        assert _kept(ds, "dedup") == [group["expected"][policy]]
        # the same inputs always give the same choice
        fod.find_duplicates(ds, threshold=10, keep=policy, priority=priority, run_key="again")
        assert _kept(ds, "again") == _kept(ds, "dedup")
    finally:
        ds.delete()


def test_expression_and_dataset_priority(group):
    ds = make_dataset(group)
    other = fo.Dataset()
    try:
        other.add_samples([fo.Sample(filepath=group["paths"][5])])
        fod.find_duplicates(ds, keep=(F("score") * -1, "max"), run_key="expr")
        assert _kept(ds, "expr") == [group["expected"]["min:score"]]
        fod.find_duplicates(ds, keep=F("score"), run_key="expr2")
        assert _kept(ds, "expr2") == [group["expected"]["max:score"]]
        # keep what is already in the reference dataset: its name first
        fod.find_duplicates([ds, other], keep="priority", priority=[other.name], run_key="prio")
        assert other.values("prio_role") == ["kept"]
        assert len(ds.match(F("prio_role") == "kept")) == 0
    finally:
        ds.delete()
        other.delete()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(keep="priority"), "needs priority"),
        (dict(keep="max:nope"), "field 'nope' not found"),
        (dict(keep="best"), "Unknown keep policy"),
        (dict(keep=("score", "up")), "direction must be"),
    ],
)
def test_bad_keep_policies(group, kwargs, message):
    ds = make_dataset(group)
    try:
        with pytest.raises(ValueError, match=message):
            fod.find_duplicates(ds, **kwargs)
        assert ds.list_runs() == []
    finally:
        ds.delete()


@pytest.mark.parametrize("policy", ["largest_resolution", "max:score", "priority"])
def test_operator_keep_policy_chooses_expected(group, policy):
    import fiftyone.operators as foo

    ds = make_dataset(group)
    try:
        op = foo.get_operator("@fiftyone_dedup/dedup/find_duplicates")
        priority = [os.path.join(group["dir"], "preferred")] if policy == "priority" else None
        summary = op(ds, threshold=10, keep=policy, priority=priority)
        assert summary["num_groups"] == 1
        assert _kept(ds, "dedup") == [group["expected"][policy]]
    finally:
        ds.delete()


@pytest.mark.parametrize(
    "args, policy",
    [
        ([], "first"),
        (["--keep", "largest_resolution"], "largest_resolution"),
        (["--keep", "largest_file"], "largest_file"),
        (["--keep", "oldest"], "oldest"),
        (["--keep", "newest"], "newest"),
        (["--priority", "preferred"], "priority"),
    ],
)
def test_cli_keep_policy_chooses_expected(group, tmp_path, args, policy):
    import json

    report = tmp_path / "r.json"
    # --priority folders are relative to --root, like --dirs
    out = helpers.run_cli(
        "-r", group["dir"], "-d", ".", "--no_data_dir", "--no_annot",
        "--report", report, "--dataset", "cli-keep", "--dry_run", *args,
    )
    assert out.returncode == 0, out.stderr
    rep = json.loads(report.read_text())
    assert [g["keep"] for g in rep["groups"]] == [group["expected"][policy]]
    assert len(rep["groups"][0]["duplicates"]) == len(group["paths"]) - 1


def test_first_never_keeps_a_copy_from_an_earlier_duplicates_folder(tmp_path):
    """Issue 13, break 2: a copy moved out earlier sorted first and was kept,
    while the original moved out. The default prefers files outside a
    folder holding move manifests; with only such files it keeps the first."""
    img = helpers.photo(2)
    dup = tmp_path / "a_duplicates"
    (dup / "manifest-0123.jsonl").parent.mkdir(parents=True)
    (dup / "manifest-0123.jsonl").write_text("")
    copy = helpers.save(helpers.resized(img), str(dup / "ds" / "p0_half.jpg"))
    other_copy = helpers.save(helpers.jpeg(img), str(dup / "ds" / "p0_jpeg.jpg"))
    orig = helpers.save(img, str(tmp_path / "p0.jpg"))
    ds = fo.Dataset()
    try:
        ds.add_samples([fo.Sample(filepath=p) for p in (copy, other_copy, orig)])
        r = fod.find_duplicates(ds, threshold=10)
        assert r.summary["num_groups"] == 1
        assert _kept(ds, "dedup") == [orig]
        # the original gone: the first copy is kept, never both moved
        ds.delete_samples(ds.match(F("filepath") == orig))
        fod.find_duplicates(ds, threshold=10)
        assert _kept(ds, "dedup") == [copy]
    finally:
        ds.delete()


def test_first_puts_files_the_caller_marks_as_moved_out_last():
    # pure: filepaths given, so "first" reads no collection
    paths = ["/data/a.jpg", "/dups/ds/b.jpg", "/data/c.jpg", "/dups/ds/d.jpg", "/x/e.jpg"]
    asked = []

    def in_output_folder(folder):
        asked.append(folder)
        return folder.startswith("/dups")

    ids = list(range(len(paths)))
    order = keep.keep_order(None, ids, "first", filepaths=paths, in_output_folder=in_output_folder)
    assert order.tolist() == [0, 2, 4, 1, 3]
    assert sorted(asked) == ["/data", "/dups/ds", "/x"]  # once per folder
    pref = keep.preference(None, ids, "first", filepaths=paths, in_output_folder=in_output_folder)
    assert pref.tolist() == [0, 1, 0, 1, 0]
    # no predicate: nothing is moved out, the order is the samples' own
    assert keep.keep_order(None, ids, "first", filepaths=paths).tolist() == ids
    assert keep.preference(None, [], "first").tolist() == []


def test_keep_policies_are_validated_and_described():
    assert keep.validate_keep("first") == ("first", None)
    assert keep.validate_keep("max:quality") == ("expr", ("quality", "max"))
    assert keep.validate_keep(("score", "min")) == ("expr", ("score", "min"))
    assert keep.validate_keep("priority", ["b", "a"]) == ("priority", ["b", "a"])
    assert keep.describe(("score", "min")) == "min:score"
    with pytest.raises(ValueError, match="needs priority"):
        keep.validate_keep("priority")
    with pytest.raises(ValueError, match="Unknown keep policy"):
        keep.validate_keep("best")
