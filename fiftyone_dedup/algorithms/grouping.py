"""Duplicate groups and the copy each group keeps; pure numpy/scipy.

The input is a sparse graph of near matches between encodings (the pairs a
search returned) and a keep-priority order of the items. The output gives each
item a group, a role (kept / duplicate / none), the kept item it duplicates
and its distance (or similarity) to that kept item.

The rule that protects users' photos: **every duplicate is itself within the
threshold of the kept item it points to**. Groups are stars grown greedily in
priority order: the highest-priority item that still has unassigned near
matches is kept, and those near matches become its duplicates. A chain of
near matches A~B~C with C far from A keeps A and C and removes only B, so
no photo loses its last copy. Each duplicate then points to the nearest kept
item that precedes it in the order.
"""

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)

#: role codes in :class:`Groups`
NONE, KEPT, DUPLICATE = 0, 1, 2


@dataclass
class Groups:
    """Grouping of ``n`` items.

    Attributes:
        group: ``(n,)`` int array, the group index or -1 for items in no group
        role: ``(n,)`` int8 array of :data:`NONE`, :data:`KEPT`,
            :data:`DUPLICATE`
        kept: ``(n,)`` int array, for duplicates the kept item, else -1
        score: ``(n,)`` float array, for duplicates the distance (or
            similarity) to the kept item, else NaN
    """

    group: np.ndarray
    role: np.ndarray
    kept: np.ndarray
    score: np.ndarray

    @property
    def num_groups(self):
        """The number of groups."""
        return int(self.group.max()) + 1 if len(self.group) else 0

    @property
    def num_duplicates(self):
        """The number of items marked duplicate."""
        return int(np.count_nonzero(self.role == DUPLICATE))

    def members(self):
        """Lists the groups.

        Returns:
            a list with one ``(kept, duplicates, scores)`` tuple per group,
            in group order; ``duplicates`` sorted by closeness
        """
        out = [None] * self.num_groups
        kept_items = np.flatnonzero(self.role == KEPT)
        for k in kept_items:
            out[self.group[k]] = (int(k), [], [])
        for d in np.flatnonzero(self.role == DUPLICATE):
            _, dups, scores = out[self.group[d]]
            dups.append(int(d))
            scores.append(float(self.score[d]))
        return out


def _csr(n_rows, rows, cols, vals):
    m = sp.csr_matrix(
        (vals, (rows, cols)), shape=(n_rows, max(n_rows, 1)), dtype=np.float64
    )
    m.sum_duplicates()
    return m


def star_groups(
    keys,
    pair_a,
    pair_b,
    pair_score,
    order=None,
    similarity=False,
    cross_only=None,
    check=None,
):
    """Greedy star grouping in keep-priority order.

    Args:
        keys: ``(n,)`` int array mapping each item to its encoding index;
            items sharing a key are identical (distance 0, similarity 1)
        pair_a: int array of encoding indices
        pair_b: int array of encoding indices, the other end of each pair
        pair_score: the distance (or similarity) of each pair; every pair is
            a near match
        order (None): the items in keep-priority order, most wanted first;
            ``None`` for ``0..n-1``
        similarity (False): whether scores are similarities (higher is
            closer) rather than distances
        cross_only (None): an optional ``(n,)`` bool array marking reference
            items: they are always kept, and only reference-query matches
            count (two queries, or two references, never group together)
        check (None): an optional callable ``check(keys_a, keys_b)`` that
            returns a bool array: whether each pair is a near match after
            all. Pairs are then candidates, and only those the grouping
            needs are checked (a kept item's pairs with unassigned items,
            and a duplicate's with nearer kept items): the groups are those
            of the checked-true pairs alone

    Returns:
        a :class:`Groups`
    """
    keys = np.asarray(keys, dtype=np.int64)
    n = len(keys)
    n_keys = int(keys.max()) + 1 if n else 0
    if order is None:
        order = np.arange(n)
    order = np.asarray(order, dtype=np.int64)
    if len(order) != n or (n and not np.array_equal(np.sort(order), np.arange(n))):
        raise ValueError("order must be a permutation of the items")

    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    same = 1.0 if similarity else 0.0

    a = np.asarray(pair_a, dtype=np.int64)
    b = np.asarray(pair_b, dtype=np.int64)
    s = np.asarray(pair_score, dtype=np.float64)
    nz = a != b
    a, b, s = a[nz], b[nz], s[nz]
    # Store scores shifted by 1 so that a distance of 0 is not an implicit 0
    adj = _csr(n_keys, np.r_[a, b], np.r_[b, a], np.r_[s, s] + 2.0)
    adj_indptr, adj_indices = adj.indptr, adj.indices
    adj_scores = adj.data - 2.0

    by_key = np.argsort(keys, kind="stable")
    key_starts = np.searchsorted(keys[by_key], np.arange(n_keys + 1))
    key_sizes = np.diff(key_starts)

    is_ref = None if cross_only is None else np.asarray(cross_only, bool)

    group = np.full(n, -1, dtype=np.int64)
    role = np.zeros(n, dtype=np.int8)
    kept = np.full(n, -1, dtype=np.int64)
    score = np.full(n, np.nan, dtype=np.float64)
    assigned = np.zeros(n, dtype=bool)
    kept_of_key = np.full(n_keys, -1, dtype=np.int64)

    degree = np.diff(adj_indptr)
    connected = (key_sizes[keys] > 1) | (degree[keys] > 0) if n else keys
    candidates_order = order[connected[order]] if n else order
    if is_ref is not None:
        # References first (they are always kept), each side in its order
        candidates_order = np.r_[
            candidates_order[is_ref[candidates_order]],
            candidates_order[~is_ref[candidates_order]],
        ]

    num_groups = 0
    for item in candidates_order:
        if assigned[item]:
            continue
        if is_ref is not None and not is_ref[item]:
            continue  # queries never keep anything in cross mode
        k = keys[item]
        lo, hi = adj_indptr[k], adj_indptr[k + 1]
        nbr_keys = adj_indices[lo:hi]
        nbr_scores = adj_scores[lo:hi]

        cand = [by_key[key_starts[k] : key_starts[k + 1]]]
        cand_scores = [np.full(key_sizes[k], same)]
        for nk, ns in zip(nbr_keys, nbr_scores):
            members = by_key[key_starts[nk] : key_starts[nk + 1]]
            cand.append(members)
            cand_scores.append(np.full(len(members), ns))
        cand = np.concatenate(cand)
        cand_scores = np.concatenate(cand_scores)
        ok = ~assigned[cand] & (cand != item)
        if is_ref is not None:
            ok &= ~is_ref[cand]
        cand, cand_scores = cand[ok], cand_scores[ok]
        if check is not None and len(cand):
            other = keys[cand] != k
            if other.any():
                ok = np.ones(len(cand), dtype=bool)
                ok[other] = check(np.full(int(other.sum()), k), keys[cand[other]])
                cand, cand_scores = cand[ok], cand_scores[ok]
        if len(cand) == 0:
            continue

        g = num_groups
        num_groups += 1
        assigned[item] = True
        group[item] = g
        role[item] = KEPT
        kept_of_key[k] = item
        assigned[cand] = True
        group[cand] = g
        role[cand] = DUPLICATE
        kept[cand] = item
        score[cand] = cand_scores

    if check is not None:
        adj_scores = _checked_to_kept(
            keys, rank, role, kept, score, kept_of_key, adj_indptr, adj_indices, adj_scores,
            similarity, check,
        )
    _point_to_nearest_kept(
        keys, rank, role, kept, group, score, kept_of_key,
        adj_indptr, adj_indices, adj_scores, similarity, same,
    )
    return _renumber(Groups(group=group, role=role, kept=kept, score=score), order)


def _checked_to_kept(
    keys, rank, role, kept, score, kept_of_key, adj_indptr, adj_indices, adj_scores,
    similarity, check,
):
    # the pairs of duplicates with kept items that could be nearer than
    # their own, checked at once; the scores with the failed ones at NaN
    # (never nearer)
    rows, edges = [], []
    for d in np.flatnonzero(role == DUPLICATE):
        k = keys[d]
        if kept_of_key[k] >= 0:
            continue
        lo, hi = adj_indptr[k], adj_indptr[k + 1]
        for e in range(lo, hi):
            c = kept_of_key[adj_indices[e]]
            if c < 0 or c == kept[d] or rank[c] > rank[d]:
                continue
            ns = adj_scores[e]
            if (ns >= score[d]) if similarity else (ns <= score[d]):
                rows.append(k)
                edges.append(e)
    if not edges:
        return adj_scores
    edges = np.array(edges, dtype=np.int64)
    ok = check(np.array(rows, dtype=np.int64), adj_indices[edges])
    adj_scores = adj_scores.copy()
    adj_scores[edges[~ok]] = np.nan
    return adj_scores


def _point_to_nearest_kept(
    keys, rank, role, kept, group, score, kept_of_key,
    adj_indptr, adj_indices, adj_scores, similarity, same,
):
    # A duplicate may be near several kept items; point it to the nearest
    # one that precedes it in the order (ties: the earliest)
    for d in np.flatnonzero(role == DUPLICATE):
        k = keys[d]
        if kept_of_key[k] >= 0:
            best, best_score = kept_of_key[k], same
        else:
            best, best_score = kept[d], score[d]
            lo, hi = adj_indptr[k], adj_indptr[k + 1]
            for nk, ns in zip(adj_indices[lo:hi], adj_scores[lo:hi]):
                c = kept_of_key[nk]
                if c < 0 or c == best or rank[c] > rank[d]:
                    continue
                closer = ns > best_score if similarity else ns < best_score
                if closer or (ns == best_score and rank[c] < rank[best]):
                    best, best_score = c, ns
        if best != kept[d]:
            kept[d] = best
            group[d] = group[best]
            score[d] = best_score

    # A kept item whose duplicates all moved to nearer kept items is alone
    has_dups = np.zeros(len(role), dtype=bool)
    has_dups[kept[role == DUPLICATE]] = True
    lone = (role == KEPT) & ~has_dups
    role[lone] = NONE
    group[lone] = -1


def _renumber(groups, order):
    # Group ids follow the order of the kept items: group 0 keeps the
    # highest-priority item
    kept_items = order[groups.role[order] == KEPT]
    new_id = np.full(max(int(groups.group.max()) + 1, 0) if len(groups.group) else 0, -1)
    new_id[groups.group[kept_items]] = np.arange(len(kept_items))
    in_group = groups.group >= 0
    groups.group[in_group] = new_id[groups.group[in_group]]
    return groups


#: the grouping methods
METHODS = ("near", "components", "dbscan")

#: the guards against chaining
GUARDS = ("kept", "complete")


def restrict_pairs(keys, pair_a, pair_b, pair_score, clusters, guard_score, similarity=False):
    """The pairs inside one cluster and within a guard.

    Args:
        keys: ``(n,)`` item -> encoding index
        pair_a: encoding indices
        pair_b: encoding indices
        pair_score: scores of the pairs
        clusters: ``(n,)`` item cluster labels (-1: in no cluster)
        guard_score: the loosest score a pair may have
        similarity (False): whether scores are similarities

    Returns:
        the kept ``(a, b, score)`` arrays
    """
    a = np.asarray(pair_a, dtype=np.int64)
    b = np.asarray(pair_b, dtype=np.int64)
    s = np.asarray(pair_score, dtype=np.float64)
    key_cluster = np.full(int(np.max(keys)) + 1 if len(keys) else 0, -1, dtype=np.int64)
    key_cluster[keys] = clusters
    ok = (key_cluster[a] == key_cluster[b]) & (key_cluster[a] >= 0)
    ok &= (s >= guard_score) if similarity else (s <= guard_score)
    return a[ok], b[ok], s[ok]


def dbscan_labels(keys, pair_a, pair_b, pair_score, eps, min_samples=1, similarity=False):
    """scikit-learn's DBSCAN on the encodings, fed the sparse near-match graph.

    Identical encodings are one point weighted by their count, which is
    exactly DBSCAN on every item; no dense matrix is built.

    Args:
        keys: ``(n,)`` item -> encoding index
        pair_a: encoding indices
        pair_b: encoding indices
        pair_score: distances (or similarities) of the pairs; every pair
            within ``eps`` must be listed
        eps: the neighbourhood radius, as a distance (bits, or ``1 -
            similarity`` for cosine)
        min_samples (1): DBSCAN's ``min_samples``; 1 makes every point core,
            so clusters are the connected components of the eps-graph
        similarity (False): whether scores are similarities

    Returns:
        ``(n,)`` int array of cluster labels, -1 for noise
    """
    from sklearn.cluster import DBSCAN

    keys = np.asarray(keys, dtype=np.int64)
    n_keys = int(keys.max()) + 1 if len(keys) else 0
    if n_keys == 0:
        return np.zeros(0, dtype=np.int64)
    s = np.asarray(pair_score, dtype=np.float64)
    dist = 1.0 - s if similarity else s
    a = np.asarray(pair_a, dtype=np.int64)
    b = np.asarray(pair_b, dtype=np.int64)
    ok = dist <= eps
    a, b, dist = a[ok], b[ok], np.maximum(dist[ok], 0.0)
    # explicit zeros are kept: identical-but-distinct encodings are neighbours
    graph = sp.csr_matrix(
        (np.r_[dist, dist], (np.r_[a, b], np.r_[b, a])), shape=(n_keys, n_keys)
    )
    weights = np.bincount(keys, minlength=n_keys).astype(np.float64)
    labels = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit(
        graph, sample_weight=weights
    ).labels_
    return labels[keys]


def complete_groups(keys, pair_a, pair_b, pair_score, order=None, similarity=False):
    """Greedy complete-link groups in keep-priority order.

    Like :func:`star_groups`, but a member joins a group only if it is a near
    match of every member already in it, so no two members of a group are
    farther apart than the pairs allow.

    Args:
        keys: ``(n,)`` item -> encoding index
        pair_a: encoding indices
        pair_b: encoding indices
        pair_score: scores of the pairs (all within the guard)
        order (None): items in keep-priority order
        similarity (False): whether scores are similarities

    Returns:
        a :class:`Groups`
    """
    keys = np.asarray(keys, dtype=np.int64)
    n = len(keys)
    order = np.arange(n) if order is None else np.asarray(order, dtype=np.int64)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    same = 1.0 if similarity else 0.0
    edges = {}
    for a, b, sc in zip(np.asarray(pair_a).tolist(), np.asarray(pair_b).tolist(),
                        np.asarray(pair_score, dtype=float).tolist()):
        if a != b:
            edges[(min(a, b), max(a, b))] = sc
    neighbours = {}
    for (a, b), sc in edges.items():
        neighbours.setdefault(a, []).append((b, sc))
        neighbours.setdefault(b, []).append((a, sc))
    members = {}
    for item in np.argsort(keys, kind="stable").tolist():
        members.setdefault(int(keys[item]), []).append(item)

    group = np.full(n, -1, dtype=np.int64)
    role = np.zeros(n, dtype=np.int8)
    kept = np.full(n, -1, dtype=np.int64)
    score = np.full(n, np.nan)
    assigned = np.zeros(n, dtype=bool)
    num_groups = 0
    for item in order.tolist():
        if assigned[item]:
            continue
        k = int(keys[item])
        cand = [(c, same) for c in members[k] if c != item and not assigned[c]]
        for nk, sc in neighbours.get(k, ()):
            cand += [(c, sc) for c in members[nk] if not assigned[c]]
        if not cand:
            continue
        # closest first, then by priority
        cand.sort(key=lambda cs: ((-cs[1] if similarity else cs[1]), rank[cs[0]]))
        in_group = {k}
        chosen = []
        for c, sc in cand:
            kc = int(keys[c])
            if all(kc == g or (min(kc, g), max(kc, g)) in edges for g in in_group):
                chosen.append((c, sc))
                in_group.add(kc)
        if not chosen:
            continue
        g = num_groups
        num_groups += 1
        assigned[item], group[item], role[item] = True, g, KEPT
        for c, sc in chosen:
            assigned[c], group[c], role[c], kept[c], score[c] = True, g, DUPLICATE, item, sc
    return _renumber(Groups(group=group, role=role, kept=kept, score=score), order)


def connected_components(n, pair_a, pair_b):
    """Connected components of the near-match graph.

    Args:
        n: the number of items
        pair_a: int array
        pair_b: int array

    Returns:
        an ``(n,)`` int array of component labels
    """
    from scipy.sparse.csgraph import connected_components as _cc

    m = sp.coo_matrix(
        (np.ones(len(pair_a)), (pair_a, pair_b)), shape=(n, n)
    ).tocsr()
    _, labels = _cc(m, directed=False)
    return labels
