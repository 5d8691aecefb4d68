"""Fast products: their candidates hold every pair at the threshold (int8
margins, bfloat16 bits, the diagonal left out)."""

import numpy as np
import pytest

from fiftyone_dedup.algorithms import search
from fiftyone_dedup.algorithms.search import products as fast
from test_cosine import _near_threshold_pairs

torch = pytest.importorskip("torch")



@pytest.mark.parametrize("shape", ["non-negative", "spiky", "sign", "zero rows"])
def test_int8_margins_hold_on_hard_vectors(shape):
    # The int8 margin is proven per query from the quantisation steps: on
    # vectors that stress it (all non-negative as CNN features are, a few
    # huge components, every component at full scale, zero vectors) every
    # pair at the threshold is a candidate, and the pairs are exactly those
    # of float64 products
    rng = np.random.default_rng(len(shape))
    x = _near_threshold_pairs(600, 512, 0.8, seed=3)
    if shape == "non-negative":
        x = np.abs(x)
    elif shape == "spiky":  # some with margins too loose for int8
        x[:, :2] *= rng.uniform(1, 8, size=(len(x), 1)).astype(np.float32)
    elif shape == "sign":
        x = np.sign(x) + 0.01 * x
    else:
        x[::50] = 0
    x = search.normalize(x)
    xd = x.astype(np.float64)
    sims = xd @ xd.T
    products = fast.make_products(x, x, "int8")
    if products.method != "int8":
        pytest.skip("int8 products need FBGEMM (x86)")
    for k0, k1 in products.key_blocks(0):
        qi, kj = products.candidates(0, 600, k0, k1, 0.8)
        exact = sims[:600, k0:k1]
        assert set(zip(*np.nonzero(exact >= 0.8))) <= set(zip(qi.tolist(), kj.tolist()))
    for threshold in (0.8, 0.95):
        i, j, s = search.cosine_pairs(x, threshold, block_size=256, method="int8")
        expected = set(zip(*np.nonzero(np.triu(sims >= threshold, k=1))))
        assert set(zip(i.tolist(), j.tolist())) == expected


def test_similarity_method_is_validated():
    assert search.resolve_similarity_method("fp32") == "fp32"
    assert search.resolve_similarity_method() in ("bf16", "int8", "fp32")
    with pytest.raises(ValueError, match="method must be one of"):
        search.cosine_pairs(np.ones((2, 3)), 0.9, method="int4")


@pytest.mark.parametrize("cutoff", [0.88, 0.9, 0.5, 1e-3, 0.8984375])
def test_bf16_thresholding_finds_every_entry_above_the_cutoff(cutoff):
    rng = np.random.default_rng(7)
    block = torch.from_numpy(rng.uniform(-1.2, 1.2, (300, 700)).astype(np.float32))
    block[5, :] = float("-inf")
    block[7, 3] = cutoff  # exactly at the cutoff (0.8984375 is a bfloat16)
    block = block.bfloat16()
    qi, kj = fast.above(block, cutoff)
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
            products = fast.Products(x, x, "fp32", use_torch=False)
        else:
            products = fast.make_products(x, x, method)
        qi, kj = products.candidates(0, 300, 0, 300, 0.95, upper=True)
        assert not np.any(qi == kj)
        assert (10, 200) in set(zip(qi.tolist(), kj.tolist()))
        if method != "numpy":
            i, j, s = search.cosine_pairs(x, 0.95, normalized=True, method=method)
            assert list(zip(i.tolist(), j.tolist())) == [(10, 200)]
