"""The shortcuts that cut the fixed costs of a search give what the plain
way gives: vectors read in threads, results written one update per sample
(candidate thresholding and identical rows: test_products.py,
test_unique.py)."""

import numpy as np
import pytest

import fiftyone as fo

import fiftyone_dedup as fod
from fiftyone_dedup.engine import stored_vectors

torch = pytest.importorskip("torch")


def test_vectors_read_in_threads_equal_fiftyones():
    n = 2 * stored_vectors._MIN_PER_THREAD + 37  # enough for threads
    vectors = np.random.default_rng(5).standard_normal((n, 16)).astype(np.float32)
    ds = fo.Dataset()
    try:
        ds.add_samples([fo.Sample(filepath=f"/x/{i}.jpg") for i in range(n)])
        ds.add_sample_field("emb", fo.VectorField)
        ds.set_values("emb", list(vectors))
        ours = stored_vectors.read_values(ds, ["id", "emb"], "emb")
        theirs = ds.values(["id", "emb"])
        assert ours[0] == theirs[0]
        assert np.array_equal(np.stack(ours[1]), np.stack(theirs[1]))
    finally:
        ds.delete()


@pytest.mark.parametrize("view", [False, True])
def test_vectors_loaded_for_a_search_equal_fiftyones(view):
    """Chunks through one cursor, joined per part in threads, or value by
    value where a part mixes layouts; samples without a vector left out."""
    rng = np.random.default_rng(3)
    n = 1500
    vectors = [rng.standard_normal(12).astype(np.float32) for _ in range(n)]
    for k in range(0, n, 97):
        vectors[k] = None
    for k in range(700, 760):  # a run of float64 vectors among float32 ones
        vectors[k] = rng.standard_normal(12)
    ds = fo.Dataset()
    try:
        ds.add_samples([fo.Sample(filepath=f"/x/{i}.jpg") for i in range(n)])
        ds.add_sample_field("emb", fo.VectorField)
        ds.set_values("emb", vectors)
        samples = ds.skip(11).match(fo.ViewField("filepath") != "/x/20.jpg") if view else ds
        ids, x, paths = stored_vectors.load_vectors(samples, "emb", with_paths=True,
                                                    chunk_size=300)
        want = [(i, p, v) for i, p, v in zip(*samples.values(["id", "filepath", "emb"]))
                if v is not None]
        assert ids == [i for i, _, _ in want] and paths == [p for _, p, _ in want]
        assert x.dtype == np.float32
        assert np.array_equal(x, np.stack([v for _, _, v in want]).astype(np.float32))
    finally:
        ds.delete()


@pytest.mark.parametrize("mixed", [False, True])
def test_a_bad_vector_is_named_by_its_sample(mixed):
    rng = np.random.default_rng(4)
    vectors = [rng.standard_normal(8).astype(np.float32) for _ in range(900)]
    vectors[650] = np.full(8, np.nan, dtype=np.float32)
    if mixed:  # the part is read value by value
        vectors[640] = rng.standard_normal(8)
    ds = fo.Dataset()
    try:
        ds.add_samples([fo.Sample(filepath=f"/x/{i}.jpg") for i in range(len(vectors))])
        ds.add_sample_field("emb", fo.VectorField)
        ds.set_values("emb", vectors)
        bad = ds.values("id")[650]
        with pytest.raises(ValueError, match=f"1 embedding.*NaN.*first: sample {bad}"):
            stored_vectors.load_vectors(ds, "emb", chunk_size=512)
    finally:
        ds.delete()


@pytest.mark.parametrize("at", [5, 700])
def test_vectors_of_another_size_are_named_in_any_chunk(at):
    """A vector of another size in the first chunk or a later one (whose
    layout is then the other) is refused, naming its sample."""
    rng = np.random.default_rng(6)
    vectors = [rng.standard_normal(8).astype(np.float32) for _ in range(900)]
    vectors[at] = rng.standard_normal(6).astype(np.float32)
    if at == 700:
        vectors[600:] = [rng.standard_normal(6).astype(np.float32) for _ in range(300)]
    ds = fo.Dataset()
    try:
        ds.add_samples([fo.Sample(filepath=f"/x/{i}.jpg") for i in range(len(vectors))])
        ds.add_sample_field("emb", fo.VectorField)
        ds.set_values("emb", vectors)
        ids = ds.values("id")
        first_other = ids[600] if at == 700 else ids[at]
        with pytest.raises(ValueError, match=f"different sizes.*sample {first_other} has"):
            stored_vectors.load_vectors(ds, "emb", chunk_size=600)
    finally:
        ds.delete()


def test_result_fields_written_in_one_update_per_sample_read_back():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((40, 32)).astype(np.float32)
    x[30] = x[3] + 0.01 * rng.standard_normal(32).astype(np.float32)
    x[31] = x[3]
    ds = fo.Dataset()
    try:
        ds.add_samples([fo.Sample(filepath=f"/x/{i}.jpg") for i in range(len(x))])
        ds.add_sample_field("emb", fo.VectorField)
        ds.set_values("emb", list(x))
        fod.find_duplicates(
            ds, encoder="cnn", field="emb", threshold=0.9, compute=False,
            tag=None, verify="none",
        )
        ids = ds.values("id")
        role, kept, score, group = ds.values(
            ["dedup_role", "dedup_kept_id", "dedup_similarity", "dedup_group"]
        )
        assert [k for k, r in enumerate(role) if r == "duplicate"] == [30, 31]
        assert role[3] == "kept" and kept[30] == kept[31] == ids[3]
        assert score[31] == pytest.approx(1.0) and 0.9 <= score[30] < 1.0
        assert group[3] == group[30] == group[31] is not None
        assert sum(r is not None for r in role) == 3
        assert all(d is not None for d in ds.values("last_modified_at"))
    finally:
        ds.delete()
