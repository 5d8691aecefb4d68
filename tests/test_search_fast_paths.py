"""The shortcuts that cut the fixed costs of a search give what the plain
way gives: candidate thresholding on bfloat16 bits, the diagonal left out,
identical rows found by hash, vectors read in threads, results written one
update per sample."""

import numpy as np
import pytest

import fiftyone as fo

import fiftyone_dedup as fod
from fiftyone_dedup.algorithms import search
from fiftyone_dedup.engine import stored_vectors

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("cutoff", [0.88, 0.9, 0.5, 1e-3, 0.8984375])
def test_bf16_thresholding_finds_every_entry_above_the_cutoff(cutoff):
    rng = np.random.default_rng(7)
    block = torch.from_numpy(rng.uniform(-1.2, 1.2, (300, 700)).astype(np.float32))
    block[5, :] = float("-inf")
    block[7, 3] = cutoff  # exactly at the cutoff (0.8984375 is a bfloat16)
    block = block.bfloat16()
    qi, kj = search._above(block, cutoff)
    found = set(zip(qi.tolist(), kj.tolist()))
    values = block.float().numpy()
    want = set(zip(*[a.tolist() for a in np.nonzero(values >= cutoff)]))
    assert want <= found
    # a superset only by what bfloat16 cannot tell from the cutoff
    extra = [values[i, j] for i, j in found - want]
    assert all(v >= cutoff - 2**-7 for v in extra)


def test_the_diagonal_is_left_out_of_self_search_candidates():
    x = search.normalize(np.random.default_rng(1).standard_normal((300, 64)))
    x[200] = x[10]  # a pair at similarity 1 (distinct rows: no unique_rows here)
    for method in ("numpy", "fp32", "bf16"):
        if method == "numpy":
            products = search._Products(x, x, "fp32", use_torch=False)
        else:
            products = search._products(x, x, method)
        qi, kj = products.candidates(0, 300, 0, 300, 0.95, upper=True)
        assert not np.any(qi == kj)
        assert (10, 200) in set(zip(qi.tolist(), kj.tolist()))
        if method != "numpy":
            i, j, s = search.cosine_pairs(x, 0.95, normalized=True, method=method)
            assert list(zip(i.tolist(), j.tolist())) == [(10, 200)]


def test_unique_rows_by_hash_match_numpy_with_many_copies():
    rng = np.random.default_rng(3)
    base = rng.standard_normal((50, 9)).astype(np.float32)  # 36 bytes: padded
    x = base[rng.integers(0, 50, size=3000)]
    uniq, inv = search.unique_rows(x)
    assert np.array_equal(uniq[inv], x)
    assert len(uniq) == len(np.unique(x, axis=0))
    firsts = [int(np.flatnonzero((x == u).all(axis=1))[0]) for u in uniq]
    assert firsts == sorted(firsts)


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
