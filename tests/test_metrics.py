"""Scoring on hand-computed cases: every expected number below is worked out in the comments."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from napari_atombench.core.match import match_positions
from napari_atombench.core.metrics import (
    aggregate_scores,
    compare_positions,
    filter_border,
    resolve_max_distance_px,
    score_positions,
    scores_table,
)


def test_prediction_between_two_labels_is_one_tp_not_two():
    # labels 2 px apart, the prediction halfway: 1 px from each, both within 1.5 px
    truth = [[10.0, 10.0], [10.0, 12.0]]
    pred = [[10.0, 11.0]]
    score = score_positions(pred, truth, max_distance_px=1.5)
    assert (score.n_tp, score.n_fp, score.n_fn) == (1, 0, 1)
    assert score.recall == pytest.approx(1 / 2)
    assert score.precision == pytest.approx(1.0)
    assert score.f1 == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert score.rmse_px == pytest.approx(1.0)
    # the tie is broken the same way every time
    first = match_positions(pred, truth, 1.5)
    for _ in range(5):
        again = match_positions(pred, truth, 1.5)
        np.testing.assert_array_equal(again.truth_index, first.truth_index)
        np.testing.assert_array_equal(again.unmatched_truth, first.unmatched_truth)
    assert set(first.truth_index) | set(first.unmatched_truth) == {0, 1}


def test_two_predictions_on_one_label_the_closer_one_matches():
    truth = [[5.0, 5.0]]
    pred = [[5.0, 5.4], [5.0, 4.7]]  # 0.4 px and 0.3 px away
    result = match_positions(pred, truth, 1.0)
    assert result.pred_index.tolist() == [1] and result.unmatched_pred.tolist() == [0]
    score = score_positions(pred, truth, max_distance_px=1.0)
    assert (score.n_tp, score.n_fp, score.n_fn) == (1, 1, 0)
    assert (score.recall, score.precision) == (pytest.approx(1.0), pytest.approx(0.5))
    assert score.rmse_px == pytest.approx(0.3)


def test_duplicated_predictions_are_one_tp_and_one_fp_deterministically():
    truth = [[3.0, 3.0]]
    pred = [[3.2, 3.0], [3.2, 3.0]]
    results = [match_positions(pred, truth, 1.0) for _ in range(3)]
    assert all(r.n_tp == 1 and r.n_fp == 1 for r in results)
    assert len({(int(r.pred_index[0]), int(r.unmatched_pred[0])) for r in results}) == 1


def test_max_cardinality_beats_a_closer_single_pair():
    # p0 is 0.1 from t0; p1 reaches only t0 (0.9). Pairing p0-t0 alone leaves p1 and t1
    # unmatched; pairing p0-t1 (0.8) and p1-t0 (0.9) gives 2 TPs, which the matching must prefer.
    truth = [[0.0, 0.0], [0.0, 0.9]]
    pred = [[0.0, 0.1], [0.0, -0.9]]
    score = score_positions(pred, truth, max_distance_px=1.0)
    assert score.n_tp == 2
    assert score.rmse_px == pytest.approx(math.sqrt((0.8**2 + 0.9**2) / 2))


def test_all_miss():
    truth = [[0.0, 0.0], [0.0, 10.0], [10.0, 0.0]]
    pred = [[50.0, 50.0], [60.0, 60.0]]
    score = score_positions(pred, truth, pixel_size_A=0.1)  # 0.5 Å = 5 px radius
    assert (score.n_tp, score.n_fp, score.n_fn) == (0, 2, 3)
    assert (score.recall, score.precision, score.f1) == (0.0, 0.0, 0.0)
    assert score.rmse_px is None and score.rmse_A is None
    assert score.passes is False


@pytest.mark.parametrize(
    "n_pred, n_truth, recall, precision, f1, passes",
    [
        (0, 0, 1.0, 1.0, 1.0, True),  # nothing to find, nothing claimed
        (0, 3, 0.0, 1.0, 0.0, False),  # everything missed, nothing false claimed
        (2, 0, 1.0, 0.0, 0.0, False),  # nothing to find, two false claims
    ],
)
def test_empty_sets_have_defined_values(n_pred, n_truth, recall, precision, f1, passes):
    pred = np.arange(2 * n_pred, dtype=float).reshape(n_pred, 2) * 10
    truth = np.arange(2 * n_truth, dtype=float).reshape(n_truth, 2) * 10 + 500
    for paper in (False, True):  # inside the paper's 1 % edge band of a 1000 px image
        score = score_positions(pred + 100, truth + 100, pixel_size_A=0.2, paper_compatible=paper, image_shape=(1000, 1000))
        assert (score.n_tp, score.n_fp, score.n_fn) == (0, n_pred, n_truth)
        assert (score.recall, score.precision, score.f1) == (recall, precision, f1)
        assert score.rmse_px is None and score.rmse_A is None
        assert score.passes is passes
        assert not any(isinstance(v, float) and math.isnan(v) for v in score.as_dict().values())
    # also plain empty lists, and no pixel size: passes is unknown, not False
    score = score_positions([], [])
    assert score.passes is None and score.recall == 1.0


def test_border_margin_filters_both_sets_the_same_way():
    shape = (100, 100)  # kept rows/cols with margin 5: 5 <= r <= 94
    truth = [[2.0, 50.0], [50.0, 50.0], [50.0, 96.0]]
    pred = [[2.3, 50.0], [50.0, 50.4], [97.0, 50.0]]
    # without margin: (2,50)-(2.3,50) 0.3 px and (50,50)-(50,50.4) 0.4 px match;
    # (97,50) is a FP and (50,96) a FN
    full = score_positions(pred, truth, max_distance_px=1.0)
    assert (full.n_tp, full.n_fp, full.n_fn) == (2, 1, 1)
    # with a 5 px margin only the central pair is left
    inner = score_positions(pred, truth, max_distance_px=1.0, border_margin_px=5, image_shape=shape)
    assert (inner.n_tp, inner.n_fp, inner.n_fn, inner.n_truth, inner.n_pred) == (1, 0, 0, 1, 1)
    assert inner.rmse_px == pytest.approx(0.4)
    assert filter_border(truth, shape, 5).tolist() == [False, True, False]
    # the overlay indices refer to the unfiltered inputs
    comparison = compare_positions(pred, truth, max_distance_px=1.0, border_margin_px=5, image_shape=shape)
    assert comparison.tp_pred_index.tolist() == [1]
    assert comparison.fp_index.tolist() == [] and comparison.fn_index.tolist() == []
    with pytest.raises(ValueError, match="image_shape"):
        score_positions(pred, truth, border_margin_px=5)


def test_border_band_is_an_ignore_region_for_pairs_straddling_its_edge():
    shape = (100, 100)
    truth = [[4.8, 30.0], [5.2, 60.0], [50.0, 50.0]]  # the first label is in the 5 px band
    pred = [[5.2, 30.0], [4.8, 60.0], [50.0, 50.0]]  # ... its prediction just inside, and vice versa
    score = score_positions(pred, truth, max_distance_px=1.0, border_margin_px=5, image_shape=shape)
    # the pair whose label is in the band is ignored (not an FP); the one whose label is inside is a TP
    assert (score.n_tp, score.n_fp, score.n_fn, score.n_truth, score.n_pred) == (2, 0, 0, 2, 2)
    comparison = compare_positions(pred, truth, max_distance_px=1.0, border_margin_px=5, image_shape=shape)
    assert comparison.tp_pred_index.tolist() == [1, 2]
    # the notebooks' way drops predictions in the band (never labels): the label inside whose
    # prediction is in the band becomes an FN, the other straddling pair still matches
    paper = compare_positions(pred, truth, border_margin_px=5, image_shape=shape, paper_compatible=True)
    assert paper.fp_index.tolist() == [] and paper.fn_index.tolist() == [1]


def test_paper_compatible_and_one_to_one_give_the_known_different_numbers():
    # two labels 3 px apart; prediction p0 halfway (1.5 px from each: 2.25 px² < 5 px²);
    # p1 far from everything
    truth = np.array([[0.0, 0.0], [0.0, 3.0]]) + 50
    pred = np.array([[0.0, 1.5], [20.0, 20.0]]) + 50
    paper = score_positions(pred, truth, pixel_size_A=0.1, paper_compatible=True, image_shape=(100, 100))
    # paper: p0 pairs with both labels -> 2 pairs; recall 2/2 labels matched, precision 1/2
    # predictions matched; RMSE = sqrt((2.25 + 2.25) / 2) = 1.5 px
    assert paper.n_tp == 2 and paper.n_fp == 1 and paper.n_fn == 0
    assert (paper.recall, paper.precision) == (pytest.approx(1.0), pytest.approx(0.5))
    assert paper.rmse_px == pytest.approx(1.5) and paper.rmse_A == pytest.approx(0.15)
    assert paper.paper_compatible and paper.max_distance_px == pytest.approx(math.sqrt(5))
    # one-to-one with a 2 px radius: p0 takes one label -> TP 1, FP 1, FN 1
    one = score_positions(pred, truth, pixel_size_A=0.1, max_distance_px=2.0)
    assert (one.n_tp, one.n_fp, one.n_fn) == (1, 1, 1)
    assert (one.recall, one.precision) == (pytest.approx(0.5), pytest.approx(0.5))
    assert one.rmse_px == pytest.approx(1.5)
    assert paper.passes is False and one.passes is False
    # a single prediction between two labels: both labels found, the one prediction matched
    lone = score_positions([[50.0, 51.5]], truth, pixel_size_A=0.1, paper_compatible=True, image_shape=(100, 100))
    assert (lone.n_tp, lone.recall, lone.precision) == (2, pytest.approx(1.0), pytest.approx(1.0))
    assert lone.passes is True and score_positions([[50.0, 51.5]], truth, pixel_size_A=0.1).passes is False


def test_paper_compatible_cut_is_strictly_below_5_px2():
    truth = np.array([[0.0, 0.0], [10.0, 10.0]]) + 50
    pred = np.array([[1.0, 2.0], [10.0, 12.2]]) + 50  # 1² + 2² = 5 px² (out); 2.2² = 4.84 px² (in)
    score = score_positions(pred, truth, paper_compatible=True, max_distance_px=100, image_shape=(100, 100))
    assert (score.n_tp, score.n_fp, score.n_fn) == (1, 1, 1)
    assert score.rmse_px == pytest.approx(2.2)


def test_rmse_in_angstrom_with_a_pixel_size():
    truth = [[10.0, 10.0], [20.0, 20.0]]
    pred = [[10.6, 10.8], [21.2, 21.6]]  # 3-4-5 offsets: 1 px and 2 px
    # rmse = sqrt((1 + 4) / 2) = sqrt(2.5) = 1.5811 px
    at_02 = score_positions(pred, truth, pixel_size_A=0.2)  # radius 0.5 Å = 2.5 px
    assert at_02.n_tp == 2
    assert at_02.rmse_px == pytest.approx(math.sqrt(2.5))
    assert at_02.rmse_A == pytest.approx(0.2 * math.sqrt(2.5))  # 0.316 Å > 0.3 Å
    assert at_02.passes is False
    at_015 = score_positions(pred, truth, pixel_size_A=0.15, max_distance_A=0.5)  # 3.33 px
    assert at_015.rmse_A == pytest.approx(0.15 * math.sqrt(2.5))  # 0.237 Å
    assert at_015.passes is True
    no_size = score_positions(pred, truth)  # 3 px default radius, no Å
    assert no_size.rmse_A is None and no_size.passes is None and no_size.n_tp == 2


def test_matching_radius_from_angstrom_px_and_default():
    assert resolve_max_distance_px(0.1, 0.5) == pytest.approx(5.0)
    assert resolve_max_distance_px(0.1, 0.5, max_distance_px=2.0) == 2.0  # px overrides Å
    assert resolve_max_distance_px(None, 0.5) == 3.0
    truth = [[0.0, 0.0], [50.0, 50.0]]
    pred = [[0.0, 4.9], [50.0, 55.1]]
    assert score_positions(pred, truth, pixel_size_A=0.1).n_tp == 1  # 4.9 in, 5.1 out
    with pytest.raises(ValueError):
        resolve_max_distance_px(-0.1, 0.5)
    with pytest.raises(ValueError):
        score_positions(pred, truth, max_distance_px=0)


def test_pass_thresholds_are_inclusive():
    truth = np.stack([np.zeros(10), np.arange(10) * 10.0], axis=1)
    pred = truth[:9]  # recall 9/10 = 0.90 exactly, precision 1
    assert score_positions(pred, truth, pixel_size_A=0.1).passes is True
    # 19 TPs and 1 FP: precision 19/20 = 0.95 exactly
    truth = np.stack([np.zeros(19), np.arange(19) * 10.0], axis=1)
    pred = np.vstack([truth, [[500.0, 500.0]]])
    score = score_positions(pred, truth, pixel_size_A=0.1)
    assert score.precision == pytest.approx(0.95) and score.passes is True
    worse = score_positions(truth[:17], truth, pixel_size_A=0.1)  # recall 17/19 = 0.895 < 0.9
    assert worse.recall == pytest.approx(17 / 19) and worse.passes is False


def test_bad_positions_are_clear_errors():
    with pytest.raises(ValueError, match="not finite"):
        score_positions([[np.nan, 1.0]], [[0.0, 0.0]])
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        score_positions([[1.0, 2.0, 3.0]], [[0.0, 0.0]])


def test_table_and_aggregate():
    truth = [[0.0, 0.0], [0.0, 10.0]]
    scores = {
        "good": score_positions([[0.0, 0.1], [0.0, 10.1]], truth, pixel_size_A=0.1),  # r 1, p 1, rmse .1 px
        "half": score_positions([[0.0, 0.3], [40.0, 40.0]], truth, pixel_size_A=0.1),  # r .5, p .5, rmse .3
        "none": score_positions([], truth, pixel_size_A=0.1),  # r 0, p 1, rmse None
    }
    table = scores_table(scores, key="prediction")
    assert table["prediction"].tolist() == ["good", "half", "none"]
    assert table["n_tp"].tolist() == [2, 1, 0]
    assert table["passes"].tolist() == [True, False, False]
    agg = aggregate_scores(table)
    assert agg.loc[0, "n_images"] == 3 and agg.loc[0, "n_passed"] == 1
    assert agg.loc[0, "recall_mean"] == pytest.approx(0.5)  # (1 + 0.5 + 0) / 3
    assert agg.loc[0, "recall_median"] == pytest.approx(0.5)
    assert agg.loc[0, "precision_median"] == pytest.approx(1.0)  # median of 1, 0.5, 1
    assert agg.loc[0, "rmse_px_mean"] == pytest.approx(0.2)  # None is left out: (0.1 + 0.3) / 2
    # grouped
    table["model"] = ["a", "b", "b"]
    grouped = aggregate_scores(table, by="model")
    assert grouped.set_index("model").loc["b", "n_images"] == 2
    assert isinstance(grouped, pd.DataFrame)


def test_scoring_options_object_and_keywords_score_alike():
    from napari_atombench.core.metrics import ScoringOptions, compare_positions

    rng = np.random.default_rng(3)
    truth = rng.uniform(0, 100, (200, 2))
    predicted = truth + rng.normal(0, 1.0, truth.shape)
    keywords = dict(pixel_size_A=0.2, max_distance_A=0.3, border_margin_px=5.0, image_shape=(100, 100))
    options = ScoringOptions(**keywords)
    by_object = score_positions(predicted, truth, options)
    assert by_object == score_positions(predicted, truth, **keywords)
    # keywords override the object's fields, and every field is applied
    wider = score_positions(predicted, truth, options, max_distance_A=1.0)
    assert wider == score_positions(predicted, truth, **{**keywords, "max_distance_A": 1.0})
    assert wider.n_tp > by_object.n_tp
    assert by_object.max_distance_px == pytest.approx(options.radius_px()) == pytest.approx(1.5)
    comparison = compare_positions(predicted, truth, options.replace(paper_compatible=True))
    assert comparison.score.paper_compatible
    with pytest.raises(TypeError, match="unknown scoring option.*max_distance_nm"):
        score_positions(predicted, truth, options, max_distance_nm=0.1)
    with pytest.raises(Exception):  # frozen: one options object can be shared by every task
        options.pixel_size_A = 1.0  # type: ignore[misc]
