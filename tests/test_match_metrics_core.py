"""Core matching correctness against an exhaustive solver (the scoring helper adds hand cases)."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from napari_atombench.core.match import match_positions


def _brute_force(pred, truth, radius):
    distance = np.hypot(*(pred[:, None, :] - truth[None, :, :]).transpose(2, 0, 1))
    big = 1e6
    cost = np.where(distance <= radius, distance, big)
    rows, cols = linear_sum_assignment(cost)
    ok = cost[rows, cols] <= radius
    return int(ok.sum()), float(cost[rows, cols][ok].sum())


@pytest.mark.parametrize("seed", range(5))
def test_matching_is_max_cardinality_then_min_distance(seed):
    rng = np.random.default_rng(seed)
    for _ in range(200):
        pred = rng.random((rng.integers(1, 9), 2)) * 6
        truth = rng.random((rng.integers(1, 9), 2)) * 6
        radius = rng.uniform(0.5, 3.0)
        result = match_positions(pred, truth, radius)
        n, total = _brute_force(pred, truth, radius)
        assert result.n_tp == n
        assert result.distance_px.sum() == pytest.approx(total, abs=1e-9)
        assert result.n_tp + result.n_fp == len(pred) and result.n_tp + result.n_fn == len(truth)
