"""Across datasets, grouping choices and chain guards, on a real database."""

import os

import numpy as np
import pytest
from PIL import ImageOps
from sklearn.cluster import DBSCAN

import fiftyone as fo
from fiftyone import ViewField as F

import fiftyone_dedup as fod
from fiftyone_dedup.algorithms import hashing
from fiftyone_dedup.engine import review

import helpers


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """Photos and textures split over a reference and a query folder.

    Planted: cross pairs (query copies of reference images), pairs within
    the reference, pairs within the query.
    """
    d = tmp_path_factory.mktemp("split")
    ref, query, cross, ref_pairs, query_pairs = [], [], [], [], []
    for i in range(helpers.num_photos()):
        img = helpers.photo(i)
        r = helpers.save(img, str(d / "ref" / f"photo_{i}.jpg"))
        ref.append(r)
        if i < 4:
            q = helpers.save(helpers.jpeg(helpers.resized(img)), str(d / "query" / f"copy_{i}.jpg"))
            query.append(q)
            cross.append((q, r))
        elif i < 6:
            r2 = helpers.save(helpers.brighter(img), str(d / "ref" / f"photo_{i}_b.jpg"))
            ref.append(r2)
            ref_pairs.append((r, r2))
    for s in range(6):
        t = helpers.texture(500 + s)
        q = helpers.save(t, str(d / "query" / f"texture_{s}.png"))
        query.append(q)
        if s < 2:
            q2 = helpers.save(helpers.tinted(t), str(d / "query" / f"texture_{s}_t.png"))
            query.append(q2)
            query_pairs.append((q, q2))
    return dict(ref=ref, query=query, cross=cross, ref_pairs=ref_pairs, query_pairs=query_pairs)


def _ds(paths, name=None):
    ds = fo.Dataset(name)
    ds.add_samples([fo.Sample(filepath=p) for p in paths])
    return ds


@pytest.fixture
def two(split):
    ref, query = _ds(split["ref"]), _ds(split["query"])
    yield ref, query
    ref.delete()
    query.delete()


def test_query_vs_reference_finds_cross_pairs_only(split, two):
    ref, query = two
    r = fod.find_cross_duplicates(query, ref, threshold=10)
    q_rows = dict(zip(query.values("filepath"), zip(*query.values(
        ["dedup_role", "dedup_kept_dataset", "dedup_kept_id", "dedup_kept_filepath",
         "dedup_distance"]
    ))))
    ref_ids = dict(zip(ref.values("filepath"), ref.values("id")))
    for q, rpath in split["cross"]:
        role, kds, kid, kfp, dist = q_rows[q]
        assert role == "duplicate" and kds == ref.name
        assert kid == ref_ids[rpath] and kfp == rpath and dist <= 10
    # nothing else in the query is a duplicate: queries are not compared
    # with each other, and the reference not with itself
    dups = set(query.match(F("dedup_role") == "duplicate").values("filepath"))
    assert dups == {q for q, _ in split["cross"]}
    assert len(ref.match(F("dedup_role") == "duplicate")) == 0
    kept = set(ref.match(F("dedup_role") == "kept").values("filepath"))
    assert kept == {r for _, r in split["cross"]}
    assert r.summary["num_cross"] == len(split["cross"])
    assert r.summary["datasets"][query.name]["duplicates"] == len(split["cross"])
    # each dataset taking part has its own record
    assert fod.list_runs(ref) == ["dedup"] and fod.list_runs(query) == ["dedup"]
    assert ref.get_run_info("dedup").config.role == "reference"
    assert query.get_run_info("dedup").config.cross_datasets == [ref.name]
    assert len(query.match_tags("duplicate")) == len(split["cross"])
    assert len(ref.match_tags("duplicate")) == 0
    # the review views
    assert set(query.list_saved_views()) == {
        "dedup-groups", "dedup-kept", "dedup-duplicates", "dedup-cross"
    }
    assert len(query.load_saved_view("dedup-cross")) == len(split["cross"])


def test_reference_can_stay_untouched(split, two):
    ref, query = two
    fod.compute_hashes(ref)
    before = set(ref.get_field_schema())
    fod.find_cross_duplicates(query, ref, write_reference=False)
    assert set(ref.get_field_schema()) == before
    assert ref.list_runs() == [] and ref.list_saved_views() == []
    assert len(query.match(F("dedup_role") == "duplicate")) == len(split["cross"])


def test_union_finds_within_and_across(split, two):
    ref, query = two
    r = fod.find_duplicates([ref, query], threshold=10, run_key="both")
    roles = {}
    for ds in (ref, query):
        roles.update(zip(ds.values("filepath"), ds.values("both_role")))
    for a, b in split["cross"] + split["ref_pairs"] + split["query_pairs"]:
        assert {roles[a], roles[b]} == {"kept", "duplicate"}, (a, b)
    assert r.summary["num_duplicates"] == (
        len(split["cross"]) + len(split["ref_pairs"]) + len(split["query_pairs"])
    )
    assert r.summary["num_cross"] == len(split["cross"])
    crossed = set(query.match(F("both_cross") == True).values("filepath"))  # noqa: E712
    assert crossed == {q for q, _ in split["cross"]}
    # reference listed first: its copies are kept
    assert all(roles[rp] == "kept" for _, rp in split["cross"])


def test_leak_between_views_of_one_dataset(split):
    ds = _ds(split["ref"] + split["query"])
    try:
        ds.match(F("filepath").is_in(split["ref"])).tag_samples("train")
        ds.match(F("filepath").is_in(split["query"])).tag_samples("test")
        train, test = ds.match_tags("train"), ds.match_tags("test")
        r = fod.find_cross_duplicates(test, train, run_key="leak")
        leaked = set(ds.match(F("leak_role") == "duplicate").values("filepath"))
        assert leaked == {q for q, _ in split["cross"]}
        assert fod.list_runs(ds) == ["leak"]
        assert r.summary["num_cross"] == len(split["cross"])
    finally:
        ds.delete()


def test_bad_cross_arguments_change_nothing(split, two):
    ref, query = two
    from fiftyone_dedup.engine import find
    from fiftyone_dedup.options import FindOptions

    with pytest.raises(ValueError, match="grouping='near' only"):
        find.find(query, reference=ref, options=FindOptions(grouping="dbscan"))
    with pytest.raises(ValueError, match="reference must be"):
        fod.find_cross_duplicates(query, [])
    assert query.list_runs() == [] and ref.list_runs() == []


def _codes_dataset(codes):
    ds = fo.Dataset()
    ds.add_samples(
        [
            fo.Sample(filepath=f"/nowhere/{i}.jpg", dhash=h)
            for i, h in enumerate(hashing.codes_to_hex(codes))
        ]
    )
    return ds


def _planted_codes(n_clusters=25, per=(1, 5), seed=0):
    rng = np.random.default_rng(seed)
    codes = []
    for _ in range(n_clusters):
        base = int(rng.integers(0, 2**63)) | (int(rng.integers(0, 2)) << 63)
        codes.append(base)
        # a chain of small steps: members can drift apart beyond the threshold
        cur = base
        for _ in range(int(rng.integers(*per))):
            for b in rng.choice(64, size=int(rng.integers(2, 7)), replace=False):
                cur ^= 1 << int(b)
            codes.append(cur)
        if rng.random() < 0.3:
            codes.append(cur)  # an exact duplicate
    return np.array(codes, dtype=np.uint64)


def _dist_matrix(codes):
    x = codes[:, None] ^ codes[None, :]
    return np.vectorize(lambda v: bin(int(v)).count("1"))(x)


def _same_partition(a, b):
    a, b = np.asarray(a), np.asarray(b)
    pairs = {}
    for x, y in zip(a, b):
        if pairs.setdefault(("a", x), y) != y or pairs.setdefault(("b", y), x) != x:
            return False
    return True


@pytest.mark.parametrize("min_samples", [1, 2, 3])
def test_dbscan_grouping_equals_scikit_learn(min_samples):
    codes = _planted_codes(seed=min_samples)
    ds = _codes_dataset(codes)
    try:
        fod.find_duplicates(
            ds, threshold=8, compute=False, grouping="dbscan", min_samples=min_samples,
            verify="none",
        )
        ours = [-1 if c is None else c for c in ds.values("dedup_cluster")]
        dist = _dist_matrix(codes)
        theirs = DBSCAN(eps=8, min_samples=min_samples, metric="precomputed").fit(dist).labels_
        assert _same_partition(ours, theirs)
        assert (np.array(ours) == -1).sum() == (theirs == -1).sum()
        assert len(set(theirs) - {-1}) > 5
    finally:
        ds.delete()


@pytest.mark.parametrize("grouping", ["near", "components", "dbscan"])
@pytest.mark.parametrize("guard", ["kept", "complete"])
def test_guards_bound_group_spread(grouping, guard):
    codes = _planted_codes(seed=7, per=(3, 8))
    ds = _codes_dataset(codes)
    try:
        threshold = 10
        fod.find_duplicates(
            ds, threshold=threshold, compute=False, grouping=grouping, guard=guard,
            verify="none",
        )
        dist = _dist_matrix(codes)
        groups = np.array([-1 if g is None else g for g in ds.values("dedup_group")])
        roles = ds.values("dedup_role")
        spread_seen = 0
        for g in set(groups) - {-1}:
            members = np.flatnonzero(groups == g)
            kept = [m for m in members if roles[m] == "kept"]
            assert len(kept) == 1
            within = dist[np.ix_(members, members)]
            spread_seen = max(spread_seen, within.max())
            if guard == "complete":
                assert within.max() <= threshold
            else:
                assert dist[kept[0], members].max() <= threshold
                assert within.max() <= 2 * threshold
        if grouping != "near":
            clusters = [c for c in ds.values("dedup_cluster") if c is not None]
            assert clusters  # the raw clusters are recorded too
        assert spread_seen > 0
    finally:
        ds.delete()


def test_guard_threshold_cannot_be_looser(split, two):
    ref, _ = two
    with pytest.raises(ValueError, match="must not be looser"):
        fod.find_duplicates(ref, threshold=8, guard_threshold=12)
    with pytest.raises(ValueError, match="Unknown guard"):
        fod.find_duplicates(ref, guard=None)
    with pytest.raises(ValueError, match="Unknown grouping"):
        fod.find_duplicates(ref, grouping="kmeans")
    assert ref.list_runs() == []


def test_histogram_counts_pairs_near_the_threshold(tmp_path):
    codes = _planted_codes(seed=3)
    ds = _codes_dataset(codes)
    try:
        r = fod.find_duplicates(ds, threshold=8, compute=False, verify="none")
        h = r.histogram
        assert h["metric"] == "hamming" and h["threshold"] == 8
        dist = _dist_matrix(codes)
        iu = np.triu_indices(len(codes), 1)
        d = dist[iu]
        centers = [(a + b) / 2 for a, b in zip(h["edges"][:-1], h["edges"][1:])]
        for c, count in zip(centers, h["counts"]):
            assert count == np.count_nonzero(d == round(c)), c
        assert max(centers) == 12  # a margin past the threshold
        png = review.save_histogram_png(h, str(tmp_path / "h.png"))
        with open(png, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        fig = review.histogram_figure(h)
        assert fig["data"][0]["y"] == h["counts"]
    finally:
        ds.delete()


def test_flip_invariance_matches_mirrored_copies(tmp_path):
    paths, mirrored = [], []
    for i in range(4):
        img = helpers.photo(i)
        paths.append(helpers.save(img, str(tmp_path / f"p{i}.jpg")))
        m = helpers.save(ImageOps.mirror(img), str(tmp_path / f"p{i}_mirror.jpg"))
        paths.append(m)
        mirrored.append(m)
    rot = helpers.save(helpers.photo(5).rotate(90, expand=True), str(tmp_path / "rot.jpg"))
    paths += [helpers.save(helpers.photo(5), str(tmp_path / "p5.jpg")), rot]
    ds = _ds(paths)
    try:
        plain = fod.find_duplicates(ds, run_key="plain", verify="none")
        assert plain.summary["num_duplicates"] == 0
        fod.find_duplicates(ds, run_key="flip", invariance="flip", verify="none")
        assert set(ds.match(F("flip_role") == "duplicate").values("filepath")) == set(mirrored)
        assert ds.get_run_info("flip").config.invariance == "flip"
        assert ds.has_sample_field("dhash_variants")
        both = fod.find_duplicates(
            ds, run_key="dihedral", invariance="dihedral", verify="none"
        )
        assert both.summary["num_duplicates"] == len(mirrored) + 1
        assert ds.one(F("filepath") == rot)["dihedral_role"] == "duplicate"
    finally:
        ds.delete()


def test_cross_operator_query_and_union(split, two):
    import fiftyone.operators as foo

    ref, query = two
    op = foo.get_operator("@fiftyone_dedup/dedup/find_cross_duplicates")
    summary = op(query, [ref.name], mode="query", threshold=10)
    assert summary["num_cross"] == len(split["cross"])
    assert len(query.match(F("dedup_role") == "duplicate")) == len(split["cross"])
    assert len(ref.match(F("dedup_role") == "duplicate")) == 0
    summary = op(query, [ref.name], mode="union", run_key="all")
    expected = len(split["cross"]) + len(split["ref_pairs"]) + len(split["query_pairs"])
    assert summary["num_duplicates"] == expected
    with pytest.raises(Exception, match="Unknown dataset"):
        op(query, ["no-such-dataset"])


def test_cross_operator_delegated_keeps_its_summary(split, two):
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionRunState

    ref, query = two
    uri = "@fiftyone_dedup/dedup/find_cross_duplicates"
    queued = foo.get_operator(uri)(query, [ref.name], threshold=10, delegate=True)
    assert queued.error is None
    assert fod.list_runs(query) == []  # only queued so far
    dos = DelegatedOperationService()
    dos.execute_queued_operations(dataset_name=query.name, operator=uri)
    (op,) = dos.list_operations(dataset_name=query.name, operator=uri)
    assert op.run_state == ExecutionRunState.COMPLETED
    assert op.result.result["num_cross"] == len(split["cross"])
    assert op.status.label  # the stage last reported
    query.reload()
    assert fod.load_run(query, "dedup").summary["num_cross"] == len(split["cross"])


def test_histogram_operator_returns_the_plot_data(split, two):
    import fiftyone.operators as foo

    ref, _ = two
    r = fod.find_duplicates(ref, threshold=10)
    result = foo.execute_operator(
        "@fiftyone_dedup/dedup/show_distance_histogram", dict(dataset=ref),
        params={"run_key": "dedup"},
    )
    assert result.result["histogram"] == r.histogram
    assert "duplicate(s)" in result.result["summary"]


def test_cli_grouping_guard_and_histogram(split, tmp_path):
    import json

    report, png = tmp_path / "r.json", tmp_path / "h.png"
    ref_dir = os.path.dirname(split["ref"][0])
    query_dir = os.path.dirname(split["query"][0])
    out = helpers.run_cli(
        "-d", ref_dir, query_dir, "--no_data_dir", "--no_annot", "--grouping",
        "dbscan", "--guard", "complete", "--histogram", png, "--report", report,
        "--dataset", "cli-grouping", "--dry_run", "--encoder", "DHash",
    )
    assert out.returncode == 0, out.stderr
    rep = json.loads(report.read_text())
    assert rep["histogram_png"] == str(png)
    with open(png, "rb") as f:
        assert f.read(4) == b"\x89PNG"
    pairs = {frozenset([g["keep"], d]) for g in rep["groups"] for d in g["duplicates"]}
    for a, b in split["cross"] + split["ref_pairs"] + split["query_pairs"]:
        assert frozenset([a, b]) in pairs
    assert rep["summary"]["num_cross"] == len(split["cross"])
    ds = fo.load_dataset("cli-grouping")
    assert ds.get_run_info("dedup").config.grouping == "dbscan"
    ds.delete()
    bad = helpers.run_cli("-d", ref_dir, "--no_data_dir", "--no_annot", "--guard_threshold", "30",
                           "--encoder", "DHash")
    assert bad.returncode == 2 and "must not be looser" in bad.stderr
