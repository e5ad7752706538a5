"""ID-recall, ID-precision, F1 and position RMSE of predicted atom columns.

Definitions (Wei, Blaiszik, Morgan & Voyles' benchmark):

* recall = TP / N_labels, precision = TP / N_predicted, F1 = their harmonic mean;
* RMSE = root mean square distance of the matched pairs, in px and in Å;
* an image **passes** when recall >= 0.90, precision >= 0.95 and RMSE <= 0.3 Å.

Two ways of counting TP:

* **default, one-to-one**: :func:`~napari_atombench.core.match.match_positions`
  pairs each prediction with at most one label within ``max_distance`` (0.5 Å
  when the pixel size is known, 3 px otherwise). Every number then means what
  it says: precision cannot exceed 1 and a prediction sitting between two
  labels is one TP, not two.
* ``paper_compatible=True`` reproduces the benchmark authors' scoring so our
  numbers can be set beside theirs: predictions closer than 1 % of the image
  width/height to an edge are dropped first (labels are never filtered);
  **every** (prediction, label) pair with squared distance < 5 px² is a match
  (many-to-many, ``n_tp`` counts the pairs); recall = labels with a match /
  labels, precision = predictions with a match / predictions; RMSE =
  sqrt(mean squared distance over all matched pairs); pass = recall > 0.90,
  precision > 0.95 and RMSE < 0.30 Å (strict). ``max_distance`` is ignored.
  FP counts predictions with no label in range, FN labels with no prediction
  in range. See docs/compare.md for where this differs from one-to-one.

:func:`compare_positions` also says which points were counted as TP, FP and
FN (for overlays); :func:`score_positions` returns only its :class:`Score`.

Empty inputs have defined values, never NaN:

* recall = 1 when there are no labels (nothing was missed); precision = 1 when
  there are no predictions (nothing false was claimed); F1 = 0 when both
  recall and precision are 0.
* ``rmse_px``/``rmse_A`` are ``None`` when no pair matched (there is no
  distance to average) and ``rmse_A`` also when the pixel size is unknown.
* ``passes`` is ``None`` when the pixel size is unknown (the RMSE criterion is
  in Å); with no matched pair the RMSE criterion counts as met, so recall and
  precision decide (an empty image with no predictions passes).

This module imports neither Qt nor napari.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from ._validate import as_positions
from .geometry import filter_border
from .match import MatchResult, candidate_pairs, match_positions

__all__ = [
    "PASS_CRITERIA",
    "Comparison",
    "Score",
    "aggregate_scores",
    "ScoringOptions",
    "compare_positions",
    "filter_border",
    "resolve_max_distance_px",
    "score_match",
    "score_positions",
    "scores_table",
]

#: The paper's criteria for an image to pass.
PASS_CRITERIA = {"min_recall": 0.90, "min_precision": 0.95, "max_rmse_A": 0.3}
#: Matching radius without a pixel size (DESIGN.md).
DEFAULT_MAX_DISTANCE_PX = 3.0
#: The notebooks' TP rule: squared distance below 5 px².
PAPER_MAX_SQUARED_DISTANCE_PX2 = 5.0
#: The notebooks' edge rule: predictions closer than this fraction of the width/height to an edge are dropped.
PAPER_EDGE_FRACTION = 0.01


@dataclass
class Score:
    """Scores of one prediction set against one label set.

    Attributes
    ----------
    n_tp, n_fp, n_fn : int
    recall, precision, f1 : float
    rmse_px : float or None
    rmse_A : float or None
    passes : bool or None
    n_truth, n_pred : int
        Counts after the border filter.
    max_distance_px : float
        The matching radius used (5**0.5 in paper-compatible mode).
    paper_compatible : bool
    """

    n_tp: int
    n_fp: int
    n_fn: int
    recall: float
    precision: float
    f1: float
    rmse_px: float | None
    rmse_A: float | None
    passes: bool | None
    n_truth: int = 0
    n_pred: int = 0
    max_distance_px: float = DEFAULT_MAX_DISTANCE_PX
    paper_compatible: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ScoringOptions:
    """How predictions are scored against labels: everything but the positions.

    One object for the options that every scoring call chain (metrics,
    benchmark, widgets, CLI) passes on; :func:`score_positions` and
    :func:`compare_positions` take it, or the same names as keywords.

    Attributes
    ----------
    pixel_size_A : float or None
        Å per pixel; needed for ``rmse_A``, ``passes`` and ``max_distance_A``.
    max_distance_A : float or None
        Matching radius in Å (default 0.5 Å), used when ``pixel_size_A`` is known.
    max_distance_px : float or None
        Matching radius in px; overrides ``max_distance_A``. Without either
        usable radius, 3 px.
    paper_compatible : bool
        Count TPs the benchmark authors' way (see the module docstring).
    border_margin_px : float
        Leave labels closer than this to the image border out of the score,
        with the predictions matched to them, and unmatched predictions there
        (an ignore region: matching runs on all points first, so a pair
        straddling the band's edge is neither an FN nor an FP). Paper-compatible
        scoring drops the predictions there (never the labels) besides its
        own 1 % edge rule. Needs ``image_shape``. Must be finite, >= 0 and
        less than half the shorter image side (else ValueError: a band
        covering the whole image would score nothing as recall = precision = 1).
    image_shape : (rows, cols) or None
        Needed by ``border_margin_px`` and by paper-compatible scoring.
    """

    pixel_size_A: float | None = None
    max_distance_A: float | None = 0.5
    max_distance_px: float | None = None
    paper_compatible: bool = False
    border_margin_px: float = 0.0
    image_shape: tuple[int, int] | None = None

    def replace(self, **changes) -> "ScoringOptions":
        """A copy with ``changes`` (option names as keywords); an unknown name is a TypeError."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(f"unknown scoring option(s) {', '.join(unknown)}; "
                            f"use {', '.join(f.name for f in fields(self))}")
        return replace(self, **changes)

    def radius_px(self) -> float:
        """The matching radius in pixels (see :func:`resolve_max_distance_px`)."""
        return resolve_max_distance_px(self.pixel_size_A, self.max_distance_A, self.max_distance_px)


def resolve_max_distance_px(
    pixel_size_A: float | None, max_distance_A: float | None = 0.5, max_distance_px: float | None = None
) -> float:
    """The matching radius in pixels: explicit px, else Å converted, else 3 px."""
    if max_distance_px is not None:
        value = float(max_distance_px)
    elif pixel_size_A is not None and max_distance_A is not None:
        if not (math.isfinite(pixel_size_A) and pixel_size_A > 0):
            raise ValueError(f"pixel_size_A must be a positive number, not {pixel_size_A!r}")
        value = float(max_distance_A) / float(pixel_size_A)
    else:
        value = DEFAULT_MAX_DISTANCE_PX
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"the matching radius must be a positive number of pixels, not {value!r}")
    return value


def _check_border_margin(margin_px: float, image_shape: tuple[int, int] | None) -> None:
    """Reject a margin that is not a finite number >= 0, or that leaves nothing to score
    (every point dropped would read as recall = precision = 1)."""
    try:
        margin = float(margin_px)
    except (TypeError, ValueError):
        raise ValueError(f"border_margin_px must be a number of pixels, not {margin_px!r}") from None
    if not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"border_margin_px must be a finite number >= 0, not {margin_px!r}")
    if margin == 0:
        return
    if image_shape is None:
        raise ValueError("border_margin_px needs image_shape to know where the border is")
    rows, cols = (int(n) for n in image_shape)
    if 2 * margin >= min(rows, cols) - 1:
        raise ValueError(f"border_margin_px={margin:g} leaves nothing of the {rows}x{cols} image to score "
                         f"(it must be less than half the image side, {(min(rows, cols) - 1) / 2:g} px)")


def _ratio(numerator: int, denominator: int) -> float:
    return 1.0 if denominator == 0 else numerator / denominator


def _passes(recall: float, precision: float, rmse_A: float | None, pixel_size_A, n_tp: int, paper: bool) -> bool | None:
    if pixel_size_A is None:
        return None
    if paper:  # the authors' code: strict inequalities
        rmse_ok = True if n_tp == 0 else rmse_A < PASS_CRITERIA["max_rmse_A"]
        return bool(recall > PASS_CRITERIA["min_recall"] and precision > PASS_CRITERIA["min_precision"] and rmse_ok)
    rmse_ok = True if n_tp == 0 else rmse_A <= PASS_CRITERIA["max_rmse_A"]
    return bool(
        recall >= PASS_CRITERIA["min_recall"] and precision >= PASS_CRITERIA["min_precision"] and rmse_ok
    )


def _score(n_tp, n_fp, n_fn, n_truth, n_pred, squared_sum_px2, pixel_size_A, max_distance_px, paper) -> Score:
    # one-to-one: TP = matched labels = matched predictions; paper: n_tp counts pairs, and
    # recall / precision count the labels / predictions with at least one partner
    recall = _ratio(n_truth - n_fn if paper else n_tp, n_truth)
    precision = _ratio(n_pred - n_fp if paper else n_tp, n_pred)
    f1 = 0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)
    rmse_px = math.sqrt(squared_sum_px2 / n_tp) if n_tp else None
    rmse_A = rmse_px * pixel_size_A if (rmse_px is not None and pixel_size_A is not None) else None
    return Score(
        n_tp=int(n_tp),
        n_fp=int(n_fp),
        n_fn=int(n_fn),
        recall=float(recall),
        precision=float(precision),
        f1=float(f1),
        rmse_px=rmse_px,
        rmse_A=rmse_A,
        passes=_passes(recall, precision, rmse_A, pixel_size_A, n_tp, paper),
        n_truth=int(n_truth),
        n_pred=int(n_pred),
        max_distance_px=float(max_distance_px),
        paper_compatible=paper,
    )


def score_match(match: MatchResult, pixel_size_A: float | None = None) -> Score:
    """Scores from an existing one-to-one :class:`MatchResult` (no re-matching)."""
    return _score(
        match.n_tp,
        match.n_fp,
        match.n_fn,
        match.n_tp + match.n_fn,
        match.n_tp + match.n_fp,
        float(np.sum(match.distance_px**2)),
        pixel_size_A,
        match.max_distance_px,
        False,
    )


@dataclass
class Comparison:
    """A :class:`Score` plus which points it counted as TP, FP and FN.

    All indices refer to the arrays given to :func:`compare_positions` (before
    any border filtering), ascending; points dropped by the border filter
    appear in none of them.

    Attributes
    ----------
    score : Score
    tp_pred_index : ndarray of int64
        Predictions counted as true positives. One-to-one: the matched ones.
        Paper-compatible: those with at least one label in range (a prediction
        counted twice in ``score.n_tp`` appears once here).
    fp_index : ndarray of int64
        Predictions counted as false positives (no label matched / in range).
    fn_index : ndarray of int64
        Labels counted as false negatives (no prediction matched / in range).
    """

    score: Score
    tp_pred_index: np.ndarray
    fp_index: np.ndarray
    fn_index: np.ndarray


def compare_positions(predicted_rc, truth_rc, options: ScoringOptions | None = None, **scoring) -> Comparison:
    """Score predictions against labels and say which points are TP, FP and FN.

    Takes the same arguments as :func:`score_positions`, which returns only
    the ``score`` of this result.

    Returns
    -------
    Comparison
    """
    options = (options or ScoringOptions()).replace(**scoring)
    predicted = as_positions(predicted_rc, "predicted_rc")
    truth = as_positions(truth_rc, "truth_rc")
    image_shape, border_margin_px = options.image_shape, options.border_margin_px
    pixel_size_A = options.pixel_size_A
    _check_border_margin(border_margin_px, image_shape)
    if border_margin_px and not options.paper_compatible:
        return _compare_with_ignored_border(predicted, truth, image_shape, border_margin_px,
                                            options.radius_px(), pixel_size_A)
    pred_kept = np.arange(len(predicted))
    truth_kept = np.arange(len(truth))
    if options.paper_compatible:
        if image_shape is None:
            raise ValueError("paper-compatible scoring drops predictions within 1 % of each image edge: "
                             "it needs image_shape")
        pred_kept = np.flatnonzero(_paper_edge_mask(predicted, image_shape, border_margin_px))
        predicted = predicted[pred_kept]  # labels are never filtered
        pred_index, truth_index, squared = _paper_pairs(predicted, truth)
        # FP / FN here: predictions / labels with no partner in range at all
        # (boolean masks: np.unique is ~1 s per call at 10^6 points)
        pred_paired = np.zeros(len(predicted), bool)
        pred_paired[pred_index] = True
        truth_paired = np.zeros(len(truth), bool)
        truth_paired[truth_index] = True
        tp_pred, fp, fn = np.flatnonzero(pred_paired), np.flatnonzero(~pred_paired), np.flatnonzero(~truth_paired)
        score = _score(len(squared), len(fp), len(fn), len(truth), len(predicted),
                       float(np.sum(squared)), pixel_size_A, math.sqrt(PAPER_MAX_SQUARED_DISTANCE_PX2), True)
    else:
        match = match_positions(predicted, truth, options.radius_px())
        score = score_match(match, pixel_size_A)
        tp_pred, fp, fn = np.sort(match.pred_index), match.unmatched_pred, match.unmatched_truth
    return Comparison(
        score=score,
        tp_pred_index=pred_kept[tp_pred].astype(np.int64),
        fp_index=pred_kept[fp].astype(np.int64),
        fn_index=truth_kept[fn].astype(np.int64),
    )


def _paper_edge_mask(predicted, image_shape, border_margin_px: float) -> np.ndarray:
    """Predictions the notebooks keep: strictly inside 1 % of the height/width from each edge
    (and, when a border margin is given too, at least that far inside)."""
    rows, cols = image_shape
    r, c = predicted[:, 0], predicted[:, 1]
    keep = (r > PAPER_EDGE_FRACTION * rows) & (r < (1 - PAPER_EDGE_FRACTION) * rows)
    keep &= (c > PAPER_EDGE_FRACTION * cols) & (c < (1 - PAPER_EDGE_FRACTION) * cols)
    if border_margin_px:
        keep &= filter_border(predicted, image_shape, border_margin_px)
    return keep


def _paper_pairs(predicted, truth) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (prediction, label) pair with squared distance < 5 px², the cut taken on the squared
    distance itself (as the notebooks do) so that 1² + 2² = 5 px² is out exactly."""
    pred_index, truth_index, _ = candidate_pairs(predicted, truth, math.sqrt(PAPER_MAX_SQUARED_DISTANCE_PX2) * (1 + 1e-9))
    squared = np.sum((predicted[pred_index] - truth[truth_index]) ** 2, axis=1)
    inside = squared < PAPER_MAX_SQUARED_DISTANCE_PX2
    return pred_index[inside], truth_index[inside], squared[inside]


def _compare_with_ignored_border(predicted, truth, image_shape, margin_px, radius_px, pixel_size_A) -> Comparison:
    """One-to-one scoring with the border band as an ignore region: match everything,
    then leave out each pair whose label lies in the band and each unmatched point
    that does (so a label just outside the band and its prediction just inside it
    are neither an FN nor an FP)."""
    match = match_positions(predicted, truth, radius_px)
    truth_inside = filter_border(truth, image_shape, margin_px)
    pred_inside = filter_border(predicted, image_shape, margin_px)
    kept_pairs = truth_inside[match.truth_index]
    tp_pred = match.pred_index[kept_pairs]
    fp = match.unmatched_pred[pred_inside[match.unmatched_pred]]
    fn = match.unmatched_truth[truth_inside[match.unmatched_truth]]
    distance = match.distance_px[kept_pairs]
    score = _score(len(tp_pred), len(fp), len(fn), len(tp_pred) + len(fn), len(tp_pred) + len(fp),
                   float(np.sum(distance**2)), pixel_size_A, match.max_distance_px, False)
    return Comparison(score=score, tp_pred_index=np.sort(tp_pred).astype(np.int64),
                      fp_index=np.sort(fp).astype(np.int64), fn_index=np.sort(fn).astype(np.int64))


def score_positions(predicted_rc, truth_rc, options: ScoringOptions | None = None, **scoring) -> Score:
    """Score predicted column positions against labels.

    Parameters
    ----------
    predicted_rc, truth_rc : array_like, shape (N, 2) and (M, 2)
        (row, col) in pixels.
    options : ScoringOptions, optional
        How to score (defaults: 0.5 Å radius, or 3 px without a pixel size).
    **scoring
        The fields of :class:`ScoringOptions` as keywords (``pixel_size_A``,
        ``max_distance_A``, ``max_distance_px``, ``paper_compatible``,
        ``border_margin_px``, ``image_shape``); they override ``options``.
        An unknown name is a TypeError.

    Returns
    -------
    Score
    """
    return compare_positions(predicted_rc, truth_rc, options, **scoring).score


def scores_table(scores: Mapping[str, Score] | Iterable[tuple[str, Score]], key: str = "name") -> pd.DataFrame:
    """One row per scored prediction set, columns named after :class:`Score` fields."""
    items = scores.items() if isinstance(scores, Mapping) else scores
    rows = [{key: name, **score.as_dict()} for name, score in items]
    columns = [key] + list(Score.__dataclass_fields__)
    return pd.DataFrame(rows, columns=columns)


def aggregate_scores(table: pd.DataFrame, by: str | list[str] | None = None) -> pd.DataFrame:
    """Mean and median of recall, precision, F1 and RMSE, plus pass counts.

    Parameters
    ----------
    table : DataFrame
        From :func:`scores_table` or a benchmark run (needs the score columns).
    by : str or list of str, optional
        Group first (e.g. by ``"model"``).

    Returns
    -------
    DataFrame
        Columns ``n_images``, ``n_passed``, ``<metric>_mean``, ``<metric>_median``.
    """
    metrics = ["recall", "precision", "f1", "rmse_px", "rmse_A"]

    def summarise(group: pd.DataFrame) -> pd.Series:
        out = {"n_images": len(group), "n_passed": int((group["passes"] == True).sum())}  # noqa: E712
        for metric in metrics:
            values = pd.to_numeric(group[metric], errors="coerce")
            out[f"{metric}_mean"] = values.mean()
            out[f"{metric}_median"] = values.median()
        return pd.Series(out)

    if by is None:
        result = summarise(table).to_frame().T
    else:
        result = table.groupby(by, sort=False).apply(summarise, include_groups=False).reset_index()
    return result.astype({"n_images": int, "n_passed": int})
