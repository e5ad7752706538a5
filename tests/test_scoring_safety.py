"""Scoring never reports a perfect score for nothing, and stays near-linear on any input."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from napari_atombench.core import match
from napari_atombench.core.match import MAX_CANDIDATES_PER_POINT, bounded_candidate_pairs, candidate_pairs, match_positions
from napari_atombench.core.metrics import compare_positions, score_positions


def _points(n, size=100.0, seed=0):
    return np.random.default_rng(seed).uniform(0, size, (n, 2))


@pytest.mark.parametrize("margin", [np.nan, np.inf, -1.0, 50.0, 60.0, 1e9])
@pytest.mark.parametrize("paper", [False, True])
def test_border_margin_that_leaves_nothing_or_is_not_a_number_is_rejected(margin, paper):
    """Before: NaN or a band wider than half the image dropped every point and
    reported recall = precision = 1 (passes=True)."""
    truth = _points(50)
    with pytest.raises(ValueError, match="border_margin_px"):
        score_positions(truth + 5, truth, pixel_size_A=0.1, border_margin_px=margin, image_shape=(101, 101),
                        paper_compatible=paper)


def test_a_valid_border_margin_still_scores():
    truth = _points(200)
    predicted = truth[:150] + 0.1
    score = score_positions(predicted, truth, pixel_size_A=0.1, border_margin_px=10, image_shape=(101, 101))
    inside = ((truth >= 10) & (truth <= 90)).all(axis=1)
    assert score.n_truth == inside.sum() and score.recall < 1.0


def test_bounded_graph_keeps_every_pair_when_no_point_has_more_than_k_partners():
    """Ordinary inputs: the bounded candidate set equals the full one, so the matching is unchanged."""
    rng = np.random.default_rng(1)
    for _ in range(30):
        truth = _points(int(rng.integers(1, 400)), seed=int(rng.integers(1 << 30)))
        predicted = truth + rng.normal(0, 0.4, truth.shape)
        radius = float(rng.uniform(0.5, 3.0))
        full = candidate_pairs(predicted, truth, radius)
        most = max(np.bincount(full[0]).max(initial=0), np.bincount(full[1]).max(initial=0))
        if most > MAX_CANDIDATES_PER_POINT:
            continue
        bounded = bounded_candidate_pairs(predicted, truth, radius)
        for a, b in zip(full, bounded):
            np.testing.assert_array_equal(a, b)


def test_matching_unchanged_against_the_full_graph_on_dense_random_scenes():
    """Where the bound does not act the exact optimum is computed on every in-range pair."""
    rng = np.random.default_rng(2)
    for _ in range(40):
        truth = _points(int(rng.integers(1, 300)), seed=int(rng.integers(1 << 30)))
        predicted = np.concatenate([truth + rng.normal(0, 1.0, truth.shape), _points(30, seed=int(rng.integers(9)))])
        radius = float(rng.uniform(0.5, 5.0))
        result = match_positions(predicted, truth, radius)
        p, t, d = candidate_pairs(predicted, truth, radius)
        if len(p) == 0:
            assert result.n_tp == 0
            continue
        chosen = match._assign(p, t, d)
        assert sorted(zip(result.pred_index.tolist(), result.truth_index.tolist())) == sorted(
            zip(p[chosen].tolist(), t[chosen].tolist()))


@pytest.mark.parametrize("offset", [0.0, 1.0])
def test_identical_points_candidate_set_is_linear_and_all_pair(offset):
    """3,000 copies of one point (before: 9·10^6 candidate pairs, 1.6 GB, MemoryError at 10^4)."""
    n = 3000
    truth = np.full((n, 2), 5.0)
    predicted = truth + offset
    pairs = bounded_candidate_pairs(predicted, truth, 3.0)
    assert len(pairs[0]) <= 2 * MAX_CANDIDATES_PER_POINT * 2 * n
    tracemalloc.start()
    try:
        score = score_positions(predicted, truth, max_distance_px=3.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert score.n_tp == n and score.recall == 1.0 and score.precision == 1.0
    assert peak < 100e6  # the full graph alone was 9·10^6 pairs × 3 arrays × 8 bytes = 216 MB


def test_huge_radius_candidate_set_is_linear():
    """20k points with a 10^5 px radius (before: every one of 4·10^8 pairs, MemoryError)."""
    truth, predicted = _points(20_000, 1000, seed=3), _points(20_000, 1000, seed=4)
    pairs = bounded_candidate_pairs(predicted, truth, 1e5)
    assert len(pairs[0]) <= 2 * MAX_CANDIDATES_PER_POINT * 40_000
    tracemalloc.start()
    try:
        comparison = compare_positions(predicted, truth, max_distance_px=1e5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    score = comparison.score
    assert peak < 300e6
    # still a one-to-one matching within the radius
    assert score.n_tp + score.n_fp == 20_000 and score.n_tp + score.n_fn == 20_000
    assert len(np.unique(comparison.tp_pred_index)) == score.n_tp
    assert score.n_tp > 0.8 * 20_000
