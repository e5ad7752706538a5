"""Paper-compatible scoring on hand-made cases: the authors' counting, edge rule and pass test."""

import math

import numpy as np
import pytest

from napari_atombench.core.metrics import PAPER_EDGE_FRACTION, compare_positions, score_positions

SHAPE = (200, 300)  # 1 % band: rows < 2 or > 198, cols < 3 or > 297


def _paper(pred, truth, pixel_size_A=0.1, shape=SHAPE, **kw):
    return score_positions(pred, truth, pixel_size_A=pixel_size_A, paper_compatible=True, image_shape=shape, **kw)


def test_all_pairs_count_and_recall_precision_count_matched_points():
    # labels L0, L1 1 px apart; P0 between them pairs with both; P1 pairs with L2; P2 far; L3 alone
    truth = np.array([[50.0, 50.0], [50.0, 51.0], [100.0, 100.0], [150.0, 150.0]])
    pred = np.array([[50.0, 50.5], [101.0, 101.0], [20.0, 250.0]])
    score = _paper(pred, truth)
    squared = [0.25, 0.25, 2.0]  # the three pairs in range
    assert score.n_tp == 3  # pairs, not points
    assert (score.n_fp, score.n_fn, score.n_pred, score.n_truth) == (1, 1, 3, 4)
    assert score.recall == pytest.approx(3 / 4)  # L0, L1, L2 have a partner
    assert score.precision == pytest.approx(2 / 3)  # P0, P1 have a partner
    assert score.rmse_px == pytest.approx(math.sqrt(np.mean(squared)))
    assert score.rmse_A == pytest.approx(0.1 * math.sqrt(np.mean(squared)))
    comparison = compare_positions(pred, truth, pixel_size_A=0.1, paper_compatible=True, image_shape=SHAPE)
    assert comparison.tp_pred_index.tolist() == [0, 1]
    assert comparison.fp_index.tolist() == [2] and comparison.fn_index.tolist() == [3]


def test_squared_distance_cut_is_strict_and_ignores_max_distance():
    truth = np.array([[60.0, 60.0], [120.0, 120.0]])
    pred = truth + [[1.0, 2.0], [0.0, 2.2]]  # 5 px² exactly: out; 4.84 px²: in
    for radius in (None, 0.5, 100.0):
        score = _paper(pred, truth, max_distance_px=radius)
        assert (score.n_tp, score.n_fp, score.n_fn) == (1, 1, 1)
        assert score.rmse_px == pytest.approx(2.2)


def test_one_percent_edge_rule_drops_predictions_only():
    rows, cols = SHAPE
    band_r, band_c = PAPER_EDGE_FRACTION * rows, PAPER_EDGE_FRACTION * cols  # 2 px, 3 px
    # labels on each edge band and one inside; a prediction exactly on each label
    truth = np.array([[1.0, 150.0], [rows - 1.5, 150.0], [100.0, 2.5], [100.0, cols - 2.0], [100.0, 150.0]])
    score = _paper(truth.copy(), truth)
    # every prediction but the central one lies within 1 % of an edge: dropped; labels stay
    assert (score.n_pred, score.n_truth, score.n_tp, score.n_fn) == (1, 5, 1, 4)
    assert score.recall == pytest.approx(1 / 5) and score.precision == pytest.approx(1.0)
    # just inside the band limits a prediction is kept; exactly on the limit it is dropped
    inside = np.array([[band_r + 0.01, 150.0], [100.0, cols - band_c - 0.01]])
    on_limit = np.array([[band_r, 150.0], [100.0, cols - band_c]])
    assert _paper(inside, inside).n_pred == 2
    assert _paper(on_limit, on_limit).n_pred == 0
    # the band scales with the image: in a 10× larger one the points near the far edges are
    # well inside; those near row 0 / col 0 are still within 20 / 30 px of it
    assert _paper(truth, truth, shape=(2000, 3000)).n_pred == 3


def test_edge_rule_needs_the_image_shape():
    with pytest.raises(ValueError, match="image_shape"):
        score_positions([[5.0, 5.0]], [[5.0, 5.0]], paper_compatible=True)


def _pass_case(n_truth, n_found, n_false, offset_px, pixel_size_A):
    """Labels on a grid; the first n_found get a prediction offset_px away; n_false far predictions."""
    grid = np.stack(np.meshgrid(np.arange(n_truth // 10), np.arange(10), indexing="ij"), -1).reshape(-1, 2)
    truth = 20.0 + 10.0 * grid.astype(float)
    pred = truth[:n_found] + [0.0, offset_px]
    false = 5.0 + np.stack([np.full(n_false, 190.0), 20.0 + 3.0 * np.arange(n_false)], -1)
    return np.vstack([pred, false]), truth


@pytest.mark.parametrize(
    "n_found, n_false, offset_px, passes",
    [
        (100, 0, 1.0, True),  # recall 1, precision 1, RMSE 0.1 Å
        (90, 0, 1.0, False),  # recall exactly 0.90: not > 0.90
        (91, 0, 1.0, True),
        (100, 5, 1.0, True),  # precision 100/105 = 0.952 > 0.95
        (95, 5, 1.0, False),  # recall 0.95 but precision 95/100 = 0.95: not > 0.95
        (100, 0, 2.0, True),  # RMSE 2 px × 0.1 = 0.2 Å
    ],
)
def test_pass_uses_strict_inequalities(n_found, n_false, offset_px, passes):
    pred, truth = _pass_case(100, n_found, n_false, offset_px, 0.1)
    score = _paper(pred, truth)
    assert score.recall == pytest.approx(n_found / 100)
    assert score.precision == pytest.approx(n_found / (n_found + n_false))
    assert score.passes is passes


def test_rmse_criterion_is_strict():
    pred, truth = _pass_case(100, 100, 0, 2.0, 0.15)  # RMSE 2 px × 0.15 Å = 0.30 Å: not < 0.30
    assert _paper(pred, truth, pixel_size_A=0.15).passes is False
    assert _paper(pred, truth, pixel_size_A=0.1499).passes is True
    # the one-to-one default's criteria are inclusive: the same input passes there
    assert score_positions(pred, truth, pixel_size_A=0.15, max_distance_A=0.5).passes is True
