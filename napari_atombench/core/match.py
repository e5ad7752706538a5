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

This module imports neither Qt nor napari.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import min_weight_full_bipartite_matching
from scipy.spatial import cKDTree

from .io import _as_positions

__all__ = ["MatchResult", "candidate_pairs", "match_positions", "nearest_neighbour_distances_px"]


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


def nearest_neighbour_distances_px(positions_rc) -> np.ndarray:
    """Distance (px) from each position to its nearest other one (0 for a duplicate);
    empty with fewer than two positions."""
    positions = _as_positions(positions_rc)
    if len(positions) < 2:
        return np.zeros(0)
    distance, _ = cKDTree(positions).query(positions, k=2)
    return distance[:, 1]


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
    """
    if not (np.isfinite(max_distance_px) and max_distance_px > 0):
        raise ValueError(f"max_distance_px must be a positive number, not {max_distance_px!r}")
    predicted = _as_positions(predicted_rc, "predicted_rc")
    truth = _as_positions(truth_rc, "truth_rc")
    p_idx, t_idx, dist = candidate_pairs(predicted, truth, max_distance_px)
    n_pred, n_truth = len(predicted), len(truth)

    # Candidate pairs whose prediction and label have no other candidate are settled at once.
    p_degree = np.bincount(p_idx, minlength=n_pred)
    t_degree = np.bincount(t_idx, minlength=n_truth)
    lonely = (p_degree[p_idx] == 1) & (t_degree[t_idx] == 1)
    chosen = [np.flatnonzero(lonely)]
    rest = np.flatnonzero(~lonely)
    if len(rest):
        chosen.append(rest[_assign(p_idx[rest], t_idx[rest], dist[rest])])
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


def _assign(p_idx: np.ndarray, t_idx: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Indices into the given edges of the optimal one-to-one subset (see module docstring)."""
    # compact the node numbering to the nodes that appear
    p_nodes, p_local = np.unique(p_idx, return_inverse=True)
    t_nodes, t_local = np.unique(t_idx, return_inverse=True)
    n_p, n_t, n_e = len(p_nodes), len(t_nodes), len(p_idx)
    big = float(dist.sum()) + 1.0  # M: more than any total distance
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

