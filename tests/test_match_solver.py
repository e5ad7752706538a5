"""core.match internals: the fast paths build the very same candidate graph, and the
assignment terminates on degenerate near-ties (coincident predictions)."""

import threading

import numpy as np
from scipy.spatial import cKDTree

from napari_atombench.core.match import _k_nearest_in_range, _unique_rows, match_positions


def _random_cloud(rng, n):
    points = np.round(rng.random((n, 2)) * rng.integers(2, 40), int(rng.integers(0, 3)))
    points[rng.integers(n, size=n // 3)] = points[0]  # coincident copies
    return points


def test_unique_rows_equals_numpy_unique_axis0():
    rng = np.random.default_rng(3)
    for _ in range(200):
        points = _random_cloud(rng, int(rng.integers(1, 200)))
        expected = np.unique(points, axis=0, return_inverse=True, return_counts=True)
        got = _unique_rows(points)
        for e, g in zip(expected, got):
            np.testing.assert_array_equal(np.asarray(e).reshape(g.shape), g)


def test_k_nearest_asks_for_k_only_where_needed_but_answers_the_same():
    rng = np.random.default_rng(4)
    for _ in range(100):
        locations = np.unique(_random_cloud(rng, int(rng.integers(3, 150))), axis=0)
        points = rng.random((int(rng.integers(1, 100)), 2)) * 40
        k, bound = int(min(16, len(locations))), float(rng.choice([0.5, 2.0, 6.0, 100.0]))
        tree = cKDTree(locations)
        expected = tree.query(points, k=k, distance_upper_bound=bound)[1].reshape(len(points), k)
        np.testing.assert_array_equal(_k_nearest_in_range(tree, points, k, bound), expected)


def _regression_scene():
    """The 333rd scene of a randomised sweep on which SciPy's sparse assignment looped
    forever with raw float costs: 45 predictions (15 of them coincident) near 59 labels."""
    rng = np.random.default_rng(1)
    for trial in range(333):
        n, m = int(rng.integers(1, 150)), int(rng.integers(1, 150))
        truth = np.round(rng.random((m, 2)) * rng.integers(5, 60), int(rng.integers(0, 3)))
        predicted = truth[rng.integers(m, size=n)] + rng.normal(0, rng.choice([0.1, 1, 3]), (n, 2))
        if trial % 4 == 0:
            predicted[: n // 3] = predicted[0]
        radius = float(rng.choice([0.5, 2, 5, 12]))
    return predicted, truth, radius


def test_assignment_terminates_on_coincident_predictions():
    predicted, truth, radius = _regression_scene()
    assert len(predicted) == 45 and len(truth) == 59 and (predicted == predicted[0]).all(axis=1).sum() >= 15
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("m", match_positions(predicted, truth, radius)),
                              daemon=True)
    worker.start()
    worker.join(60)  # it takes milliseconds; before the fix it never returned
    assert "m" in result, "match_positions did not return"
    match = result["m"]
    assert len(np.unique(match.pred_index)) == len(match.pred_index)  # one-to-one
    assert len(np.unique(match.truth_index)) == len(match.truth_index)
    assert (match.distance_px <= radius).all()
    # the 15 coincident predictions can take at most one label each, and no label twice
    assert len(match.pred_index) <= min(len(predicted), len(truth))
