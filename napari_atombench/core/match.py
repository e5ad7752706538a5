"""One-to-one matching of predicted atom columns to labelled ones.

A prediction and a label match when they are paired in a **maximum-cardinality,
minimum-total-distance** one-to-one assignment restricted to pairs closer than
``max_distance_px``. "Maximum cardinality first" matters: minimising distance
alone would prefer fewer, closer pairs, and one good pair must never cost a
second pair its match.

The assignment is solved once on the sparse candidate graph (a KD-tree finds the
candidates) with the usual augmentation that lets any point stay unmatched:

* every prediction p may pair with its own "unmatched" slot at cost ``M``,
* every label t may pair with its own "unmatched" slot at cost ``M``,
* the two slots of a candidate pair (p, t) pair with each other at cost 0, so
  matching p with t frees both slots to pair with each other.

A perfect matching of that graph always exists, and with ``M`` larger than the
sum of all candidate distances, the cheapest one has the most real pairs and,
among those, the smallest total distance. Isolated one-to-one candidate pairs
(the vast majority on real data) are settled without the solver.

Ties (equal distances, duplicated points) are broken deterministically: inputs
are processed in index order and the solver is deterministic.

**Bounded candidate graph.** All pairs within the radius would be quadratic
when points coincide or the radius is huge (3,000 identical points: 9·10⁶
pairs; 20,000 points with a 10⁵ px radius: 4·10⁸). :func:`match_positions`
therefore keeps, for every prediction, its candidates at the
:data:`MAX_CANDIDATES_PER_POINT` (k = 16) nearest distinct label *locations*
within the radius, and for every label likewise its predictions; the graph is
the union of both, at most about 2·k·(N + M) pairs, and memory and time stay
near-linear. Copies of one location are interchangeable, so a point links to
at most k of them, spread by rotation (the i-th copy of a prediction links to
copies i, i+1, ... of the label location), which keeps a perfect pairing of
two coincident groups in the graph.

The result is unchanged whenever no point has more than k partner locations
within the radius and no location more than k copies: then every in-range
pair is kept and the matching is the exact optimum above. A lattice of spacing
a has about π(r/a)² points within r, so the bound needs r > ~2.2 a. At the
default radius (0.5 Å) that means 17 distinct labels within 0.5 Å of one
prediction, while real columns are ≥ ~0.8 Å apart (the closest projected
pairs, e.g. Si [110] dumbbells, are 1.36 Å), and the 3 px radius used without
a pixel size needs columns closer than ~1.4 px; so the bound only acts on
inputs that are not resolved atom columns (duplicates, a radius of many column
spacings). In a
connected group of candidates where it acted, the exact solver can take
minutes (and the exact answer is unknowable without the dropped pairs anyway),
so that group is matched greedily, nearest pair first: still one-to-one within
the radius, and every copy of a duplicated point pairs with a copy of its
twin, but neither maximum nor minimum-distance in general.

This module imports neither Qt nor napari.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components, min_weight_full_bipartite_matching
from scipy.spatial import cKDTree

from ._validate import as_positions
from .geometry import nearest_neighbour_distances_px

__all__ = ["MAX_CANDIDATES_PER_POINT", "MatchResult", "bounded_candidate_pairs", "candidate_pairs", "match_positions",
           "nearest_neighbour_distances_px"]

#: k of the bounded candidate graph (module docstring): partner locations kept per point.
MAX_CANDIDATES_PER_POINT = 16


@dataclass
class MatchResult:
    """Outcome of :func:`match_positions`.

    Attributes
    ----------
    pred_index, truth_index : ndarray of int64, shape (K,)
        Matched pairs (true positives), sorted by ``truth_index``.
    distance_px : ndarray of float64, shape (K,)
        Distance of each matched pair in pixels.
    unmatched_pred : ndarray of int64
        Indices of predictions without a label (false positives), ascending.
    unmatched_truth : ndarray of int64
        Indices of labels without a prediction (false negatives), ascending.
    max_distance_px : float
    """

    pred_index: np.ndarray
    truth_index: np.ndarray
    distance_px: np.ndarray
    unmatched_pred: np.ndarray
    unmatched_truth: np.ndarray
    max_distance_px: float

    @property
    def n_tp(self) -> int:
        return int(len(self.pred_index))

    @property
    def n_fp(self) -> int:
        return int(len(self.unmatched_pred))

    @property
    def n_fn(self) -> int:
        return int(len(self.unmatched_truth))


def candidate_pairs(
    predicted_rc: np.ndarray, truth_rc: np.ndarray, max_distance_px: float, *, strict: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (prediction, label) pairs within ``max_distance_px``.

    Parameters
    ----------
    predicted_rc, truth_rc : ndarray, shape (N, 2) and (M, 2)
    max_distance_px : float
    strict : bool
        Use ``distance < max_distance_px`` instead of ``<=``.

    Returns
    -------
    pred_index, truth_index : ndarray of int64
        Sorted by prediction, then label.
    distance_px : ndarray of float64
    """
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
    if len(predicted_rc) == 0 or len(truth_rc) == 0:
        return empty
    tree = cKDTree(truth_rc)
    k = min(4, len(truth_rc))
    pred_all = np.arange(len(predicted_rc))
    todo = pred_all
    parts = []
    while len(todo):
        distance, index = tree.query(
            predicted_rc[todo], k=k, distance_upper_bound=np.nextafter(max_distance_px, np.inf), workers=-1
        )
        distance, index = distance.reshape(len(todo), k), index.reshape(len(todo), k)
        found = np.isfinite(distance)
        if k < len(truth_rc):
            saturated = found[:, -1]  # there may be more labels in range than k
        else:
            saturated = np.zeros(len(todo), bool)
        keep = found & ~saturated[:, None]
        rows = np.repeat(todo, k).reshape(len(todo), k)
        parts.append((rows[keep], index[keep], distance[keep]))
        todo = todo[saturated]
        k = min(k * 4, len(truth_rc))
    pred_index = np.concatenate([p[0] for p in parts]).astype(np.int64)
    truth_index = np.concatenate([p[1] for p in parts]).astype(np.int64)
    distance_px = np.concatenate([p[2] for p in parts]).astype(np.float64)
    # recompute exactly (the tree's distances are fine, but keep one definition)
    distance_px = np.hypot(*(predicted_rc[pred_index] - truth_rc[truth_index]).T)
    keep = distance_px < max_distance_px if strict else distance_px <= max_distance_px
    order = np.lexsort((truth_index[keep], pred_index[keep]))
    return pred_index[keep][order], truth_index[keep][order], distance_px[keep][order]


def _unique_rows(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(points, axis=0, return_inverse=True, return_counts=True)`` for (N >= 1, 2)
    floats, by one stable lexsort: the same rows in the same order, ~10x faster (``axis=0``
    sorts a structured copy; it was most of the time of scoring 10^4 points)."""
    order = np.lexsort((points[:, 1], points[:, 0]))
    ordered = points[order]
    new = np.ones(len(points), bool)
    new[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    group = np.cumsum(new) - 1
    inverse = np.empty(len(points), np.int64)
    inverse[order] = group
    return ordered[new], inverse, np.bincount(group)


def _k_nearest_in_range(tree, points: np.ndarray, k: int, bound: float) -> np.ndarray:
    """``tree.query(points, k, distance_upper_bound=bound)[1]`` as an (N, k) array (misses:
    ``tree.n``), asking for k only where two are in range: most columns have one partner
    within the radius, and a k = 16 query for all of them cost most of the matching."""
    first = min(2, k)
    loc = tree.query(points, k=first, distance_upper_bound=bound)[1].reshape(len(points), first)
    if k == first:
        return loc
    full = np.full((len(points), k), tree.n, dtype=loc.dtype)
    full[:, :first] = loc
    crowded = loc[:, -1] < tree.n  # fewer than two in range: the first query found them all
    if crowded.any():
        full[crowded] = tree.query(points[crowded], k=k, distance_upper_bound=bound)[1].reshape(-1, k)
    return full


def _nearest_locations(source: np.ndarray, target: np.ndarray, radius_px: float, k: int):
    """Pairs (source index, target index): each source point's k nearest distinct target
    locations within ``radius_px``, at most k coincident copies of each, by rotation."""
    locations, t_inverse, t_counts = _unique_rows(target)
    members = np.argsort(t_inverse, kind="stable")  # target indices grouped by location, in index order
    t_starts = np.cumsum(t_counts) - t_counts
    s_locations, s_inverse, s_counts = _unique_rows(source)
    s_order = np.argsort(s_inverse, kind="stable")
    rank = np.empty(len(source), np.int64)  # which copy of its location each source point is
    rank[s_order] = np.arange(len(source)) - np.repeat(np.cumsum(s_counts) - s_counts, s_counts)
    kk = min(k, len(locations))
    loc = _k_nearest_in_range(cKDTree(locations), s_locations, kk, np.nextafter(radius_px, np.inf))[s_inverse]
    found = loc < len(locations)
    # the bound acted on a point whose k-th location is in range (there may be more) or
    # that saw a location with more than k copies
    truncated = found[:, -1] & (kk < len(locations))
    truncated |= (np.where(found, t_counts[np.minimum(loc, len(locations) - 1)], 0) > k).any(axis=1)
    point = np.repeat(np.arange(len(source)), kk).reshape(-1, kk)[found]
    loc = loc[found]
    copies = np.minimum(k, t_counts[loc])
    point, loc = np.repeat(point, copies), np.repeat(loc, copies)
    j = np.arange(len(point)) - np.repeat(np.cumsum(copies) - copies, copies)
    target_index = members[t_starts[loc] + (rank[point] + j) % t_counts[loc]]
    return point, target_index, truncated


def bounded_candidate_pairs(
    predicted_rc: np.ndarray, truth_rc: np.ndarray, max_distance_px: float, k: int = MAX_CANDIDATES_PER_POINT
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bounded candidate graph of :func:`match_positions` (module docstring).

    Like :func:`candidate_pairs`, but each point keeps only its partners at the
    ``k`` nearest distinct locations of the other set (at most ``k`` copies of
    each); the union over both sets has at most ``2 * k**2 * (N + M)`` pairs
    (about ``2 * k * (N + M)`` without coincident points).

    Returns
    -------
    pred_index, truth_index : ndarray of int64
        Sorted by prediction, then label.
    distance_px : ndarray of float64
    """
    return _bounded_graph(np.asarray(predicted_rc, float), np.asarray(truth_rc, float), max_distance_px, k)[:3]


def _bounded_graph(predicted_rc, truth_rc, max_distance_px, k):
    """:func:`bounded_candidate_pairs` plus, per prediction and per label, whether the bound acted."""
    if len(predicted_rc) == 0 or len(truth_rc) == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0), np.zeros(len(predicted_rc), bool), np.zeros(len(truth_rc), bool)
    p_a, t_a, p_truncated = _nearest_locations(predicted_rc, truth_rc, max_distance_px, k)
    t_b, p_b, t_truncated = _nearest_locations(truth_rc, predicted_rc, max_distance_px, k)
    key = np.unique(np.concatenate([p_a, p_b]).astype(np.int64) * len(truth_rc) + np.concatenate([t_a, t_b]))
    pred_index, truth_index = key // len(truth_rc), key % len(truth_rc)
    distance_px = np.hypot(*(predicted_rc[pred_index] - truth_rc[truth_index]).T)
    keep = distance_px <= max_distance_px
    return pred_index[keep], truth_index[keep], distance_px[keep], p_truncated, t_truncated


def match_positions(predicted_rc, truth_rc, max_distance_px: float) -> MatchResult:
    """Match predictions to labels one-to-one within a radius.

    Parameters
    ----------
    predicted_rc : array_like, shape (N, 2)
        Predicted column centres (row, col) in pixels.
    truth_rc : array_like, shape (M, 2)
        Labelled column centres (row, col) in pixels.
    max_distance_px : float
        Pairs farther apart than this never match.

    Returns
    -------
    MatchResult

    Notes
    -----
    Candidates come from :func:`bounded_candidate_pairs`: near-linear time and
    memory on any input, and the exact optimum on atom-column data (see the
    module docstring for when the bound can act).
    """
    if not (np.isfinite(max_distance_px) and max_distance_px > 0):
        raise ValueError(f"max_distance_px must be a positive number, not {max_distance_px!r}")
    predicted = as_positions(predicted_rc, "predicted_rc")
    truth = as_positions(truth_rc, "truth_rc")
    p_idx, t_idx, dist, p_truncated, t_truncated = _bounded_graph(
        predicted, truth, max_distance_px, MAX_CANDIDATES_PER_POINT)
    n_pred, n_truth = len(predicted), len(truth)

    # Candidate pairs whose prediction and label have no other candidate are settled at once.
    p_degree = np.bincount(p_idx, minlength=n_pred)
    t_degree = np.bincount(t_idx, minlength=n_truth)
    lonely = (p_degree[p_idx] == 1) & (t_degree[t_idx] == 1)
    chosen = [np.flatnonzero(lonely)]
    rest = np.flatnonzero(~lonely)
    if len(rest):
        bounded = _groups_where_bound_acted(p_idx[rest], t_idx[rest], p_truncated, t_truncated)
        exact, greedy = rest[~bounded], rest[bounded]
        if len(exact):
            chosen.append(exact[_assign(p_idx[exact], t_idx[exact], dist[exact])])
        if len(greedy):
            chosen.append(greedy[_greedy(p_idx[greedy], t_idx[greedy], dist[greedy])])
    chosen_edges = np.sort(np.concatenate(chosen))

    pred_index, truth_index, distance_px = p_idx[chosen_edges], t_idx[chosen_edges], dist[chosen_edges]
    order = np.argsort(truth_index, kind="stable")
    pred_index, truth_index, distance_px = pred_index[order], truth_index[order], distance_px[order]
    matched_pred = np.zeros(n_pred, bool)
    matched_pred[pred_index] = True
    matched_truth = np.zeros(n_truth, bool)
    matched_truth[truth_index] = True
    return MatchResult(
        pred_index=pred_index,
        truth_index=truth_index,
        distance_px=distance_px,
        unmatched_pred=np.flatnonzero(~matched_pred).astype(np.int64),
        unmatched_truth=np.flatnonzero(~matched_truth).astype(np.int64),
        max_distance_px=float(max_distance_px),
    )


def _groups_where_bound_acted(p_idx, t_idx, p_truncated, t_truncated) -> np.ndarray:
    """Per edge: whether its connected group of candidates holds a point the bound truncated."""
    if not (p_truncated.any() or t_truncated.any()):
        return np.zeros(len(p_idx), bool)
    n_p = len(p_truncated)
    nodes = len(p_truncated) + len(t_truncated)
    graph = sparse.coo_matrix((np.ones(len(p_idx)), (p_idx, n_p + t_idx)), shape=(nodes, nodes))
    _, label = connected_components(graph, directed=False)
    acted = np.zeros(label.max() + 1, bool)
    acted[label[np.flatnonzero(np.concatenate([p_truncated, t_truncated]))]] = True
    return acted[label[p_idx]]


def _greedy(p_idx: np.ndarray, t_idx: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Indices of the edges a nearest-first greedy one-to-one matching takes (ties in index order)."""
    order = np.lexsort((t_idx, p_idx, dist))
    p_used, t_used, taken = set(), set(), []
    for edge, p, t in zip(order.tolist(), p_idx[order].tolist(), t_idx[order].tolist()):
        if p not in p_used and t not in t_used:
            p_used.add(p)
            t_used.add(t)
            taken.append(edge)
    return np.asarray(taken, np.int64)


#: assignment costs are rounded to multiples of 1/COST_GRID px (see :func:`_assign`)
COST_GRID = 2.0**20


def _assign(p_idx: np.ndarray, t_idx: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Indices into the given edges of the optimal one-to-one subset (see module docstring)."""
    # compact the node numbering to the nodes that appear
    p_nodes, p_local = np.unique(p_idx, return_inverse=True)
    t_nodes, t_local = np.unique(t_idx, return_inverse=True)
    n_p, n_t, n_e = len(p_nodes), len(t_nodes), len(p_idx)
    # Costs on a grid of 2^-20 px: every sum the solver forms is then exact in float64.
    # With raw float distances SciPy's LAPJVsp can cycle forever on near-ties (seen with 15
    # coincident predictions among 59 labels); totals closer than ~1e-6 px are ties anyway.
    dist = np.round(dist * COST_GRID) / COST_GRID
    big = float(np.ceil(dist.sum())) + 1.0  # M: more than any total distance
    # Left nodes: predictions [0, n_p) then label slots [n_p, n_p + n_t).
    # Right nodes: labels [0, n_t) then prediction slots [n_t, n_t + n_p).
    rows = np.concatenate([p_local, np.arange(n_p), n_p + np.arange(n_t), n_p + t_local])
    cols = np.concatenate([t_local, n_t + np.arange(n_p), np.arange(n_t), n_t + p_local])
    # Every perfect matching has n_p + n_t edges, so adding 1 to all costs changes no
    # choice, and keeps zero-distance pairs from looking like missing entries.
    cost = np.concatenate([dist, np.full(n_p, big), np.full(n_t, big), np.zeros(n_e)]) + 1.0
    size = n_p + n_t
    graph = sparse.csr_matrix((cost, (rows, cols)), shape=(size, size))
    graph.sum_duplicates()
    left, right = min_weight_full_bipartite_matching(graph)
    right_of_left = np.empty(size, np.int64)
    right_of_left[left] = right
    # edge e is chosen when its prediction's left node matched its label's right node
    return np.flatnonzero(right_of_left[p_local] == t_local)

