"""Grouping: stars in priority order, the chain rule, nearest kept."""

import numpy as np
import pytest

from fiftyone_dedup.algorithms import grouping
from fiftyone_dedup.algorithms.grouping import DUPLICATE, KEPT, NONE


def _star(n, pairs, order=None, keys=None, **kwargs):
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    s = np.array([p[2] for p in pairs], dtype=np.float64)
    keys = np.arange(n) if keys is None else np.asarray(keys)
    return grouping.star_groups(keys, a, b, s, order=order, **kwargs)


def _check_invariant(groups, dist, threshold, similarity=False):
    # every duplicate is within the threshold of the kept item it points to,
    # and that kept item is kept
    for d in np.flatnonzero(groups.role == DUPLICATE):
        k = groups.kept[d]
        assert groups.role[k] == KEPT
        assert groups.group[k] == groups.group[d]
        if similarity:
            assert dist(d, k) >= threshold
        else:
            assert dist(d, k) <= threshold


def test_chain_never_removes_the_far_end():
    # A~B (8), B~C (8), A and C far apart: keep A and C, remove B only
    g = _star(3, [(0, 1, 8), (1, 2, 8)])
    assert g.role.tolist() == [KEPT, DUPLICATE, NONE]
    assert g.kept.tolist() == [-1, 0, -1]
    assert g.num_groups == 1 and g.num_duplicates == 1


def test_first_in_order_is_kept():
    pairs = [(0, 1, 2), (1, 2, 3), (0, 2, 4)]
    g = _star(3, pairs)
    assert g.role.tolist() == [KEPT, DUPLICATE, DUPLICATE]
    g = _star(3, pairs, order=[2, 0, 1])
    assert g.role.tolist() == [DUPLICATE, DUPLICATE, KEPT]
    assert g.kept.tolist() == [2, 2, -1]
    assert g.score.tolist()[:2] == [4, 3]


def test_identical_keys_are_duplicates_at_zero():
    # items 0, 2, 3 share an encoding; 1 is unrelated
    g = _star(4, [], keys=[0, 1, 0, 0])
    assert g.role.tolist() == [KEPT, NONE, DUPLICATE, DUPLICATE]
    assert g.score[2] == 0 and g.score[3] == 0
    g = _star(4, [], keys=[0, 1, 0, 0], similarity=True)
    assert g.score[2] == 1.0


def test_identical_keys_join_their_near_matches():
    # items 0 and 1 share key 0; key 0 ~ key 1 (item 2) at distance 5
    g = _star(3, [(0, 1, 5)], keys=[0, 0, 1])
    assert g.role.tolist() == [KEPT, DUPLICATE, DUPLICATE]
    assert g.score.tolist()[1:] == [0, 5]


def test_duplicate_points_to_nearest_preceding_kept():
    # 0 and 2 are both kept (far apart); 1 is near both, nearer to 2;
    # 3 is near only 2, and 4 near only 0
    pairs = [(0, 1, 9), (1, 2, 2), (2, 3, 1), (0, 4, 3)]
    g = _star(5, pairs, order=[0, 2, 1, 3, 4])
    assert g.role.tolist() == [KEPT, DUPLICATE, KEPT, DUPLICATE, DUPLICATE]
    assert g.kept[1] == 2 and g.score[1] == 2
    assert g.kept[3] == 2 and g.kept[4] == 0
    # kept 0 lost its only duplicate to a nearer kept: it is alone again
    g = _star(4, [(0, 1, 9), (1, 2, 2), (2, 3, 1)], order=[0, 2, 1, 3])
    assert g.role.tolist() == [NONE, DUPLICATE, KEPT, DUPLICATE]
    # an item whose only near match is already taken keeps its own photo
    g = _star(3, [(0, 1, 9), (1, 2, 2)], order=[0, 2, 1])
    assert g.role.tolist() == [KEPT, DUPLICATE, NONE]


def test_similarity_prefers_higher_scores():
    pairs = [(0, 1, 0.91), (1, 2, 0.99), (2, 3, 0.95), (0, 4, 0.97)]
    g = _star(5, pairs, order=[0, 2, 1, 3, 4], similarity=True)
    assert g.kept[1] == 2 and g.score[1] == pytest.approx(0.99)


def test_cross_only_keeps_references_and_never_groups_queries():
    # items 0, 1 are references; 2, 3, 4 queries; 3 and 4 identical
    pairs = [(0, 2, 3), (1, 2, 1), (1, 3, 4)]
    is_ref = np.array([True, True, False, False, False])
    g = _star(5, pairs, keys=[0, 1, 2, 3, 3], cross_only=is_ref)
    assert g.role[0] in (NONE, KEPT) and g.role[1] == KEPT
    assert g.role[2] == DUPLICATE and g.kept[2] == 1  # nearest reference
    assert g.role[3] == DUPLICATE and g.role[4] == DUPLICATE
    assert g.kept[3] == 1 and g.kept[4] == 1
    assert not np.any((g.role == KEPT) & ~is_ref)


def test_random_graphs_keep_the_invariant():
    rng = np.random.default_rng(0)
    for trial in range(30):
        n = 80
        pts = rng.uniform(0, 30, size=(n, 2))
        d = np.linalg.norm(pts[:, None] - pts[None], axis=2)
        threshold = 6.0
        i, j = np.nonzero(np.triu(d <= threshold, k=1))
        pairs = [(a, b, d[a, b]) for a, b in zip(i, j)]
        order = rng.permutation(n)
        g = _star(n, pairs, order=order)
        _check_invariant(g, lambda x, y: d[x, y], threshold)
        # a kept item precedes its duplicates in the order
        rank = np.argsort(order)
        for x in np.flatnonzero(g.role == DUPLICATE):
            assert rank[g.kept[x]] < rank[x]
        # kept items are never near each other
        kept = np.flatnonzero(g.role == KEPT)
        assert np.all(d[np.ix_(kept, kept)][np.triu_indices(len(kept), 1)] > threshold)
        # an item in no group is near no kept item: nothing was lost
        # and nothing that could be grouped was left out
        for x in np.flatnonzero(g.role == NONE):
            assert not np.any(d[x, kept] <= threshold)
        # group ids are 0..k-1 in order of the kept items
        assert sorted(set(g.group[g.group >= 0].tolist())) == list(range(g.num_groups))


def test_members_lists_groups():
    g = _star(4, [(0, 1, 2), (0, 2, 1)])
    assert g.members() == [(0, [1, 2], [2.0, 1.0])]


def test_order_must_be_a_permutation():
    with pytest.raises(ValueError, match="permutation"):
        _star(3, [], order=[0, 0, 1])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("similarity, cross", [(False, False), (True, False), (False, True)])
def test_checked_candidates_group_as_the_true_pairs_alone(seed, similarity, cross):
    # groups from candidates checked on demand are those of the pairs that
    # pass, and fewer pairs are checked than there are candidates
    rng = np.random.default_rng(seed)
    n = 300
    # clusters of near copies, and far pairs between them
    cluster = rng.integers(0, 60, n)
    a, b = np.triu_indices(n, 1)
    near = cluster[a] == cluster[b]
    pick = near | (rng.random(len(a)) < 0.01)
    a, b = a[pick], b[pick]
    s = rng.integers(0, 20, len(a)).astype(np.float64)
    if similarity:
        s = 1.0 - s / 40
    truth = (rng.random(len(a)) < 0.8) & near[pick]
    true_of = {(int(i), int(j)): bool(t) for i, j, t in zip(a, b, truth)}
    is_ref = rng.random(n) < 0.3 if cross else None
    if cross:
        across = is_ref[a] != is_ref[b]
        a, b, s, truth = a[across], b[across], s[across], truth[across]
    checked = []

    def check(x, y):
        checked.extend(zip(x.tolist(), y.tolist()))
        return np.array([true_of[(min(i, j), max(i, j))] for i, j in zip(x, y)], dtype=bool)

    order = rng.permutation(n)
    keys = np.arange(n)
    eager = grouping.star_groups(
        keys, a[truth], b[truth], s[truth], order, similarity=similarity, cross_only=is_ref
    )
    lazy = grouping.star_groups(
        keys, a, b, s, order, similarity=similarity, cross_only=is_ref, check=check
    )
    for name in ("group", "role", "kept"):
        assert getattr(lazy, name).tolist() == getattr(eager, name).tolist(), name
    assert 0 < len(checked) < len(a)
    assert eager.num_duplicates > 0
