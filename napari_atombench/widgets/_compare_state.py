"""Qt-free state of the Compare dock: comparisons kept while their inputs are unchanged.

Editing one of five prediction layers must not re-score the other four (issue 14
item 14): each layer's :class:`~napari_atombench.core.metrics.Comparison` is kept
with copies of the exact inputs it was computed from and reused only when the
prediction, the labels and every option are equal, so a reused result is the
full recompute by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.metrics import Comparison, compare_positions

KINDS = ("TP", "FP", "FN")
#: overlay colours; the colour-blind-safe set is from Okabe & Ito's palette
PALETTES = {
    "standard": {"TP": "#22c322", "FP": "#ff2020", "FN": "#2a6bff"},
    "colour-blind safe": {"TP": "#0072b2", "FP": "#e69f00", "FN": "#cc79a7"},
}
#: (header, Score field, format) of the metric table
#: the pass criteria first, so they are visible in a narrow dock without scrolling
COLUMNS = [
    ("recall", "recall", ".3f"),
    ("precision", "precision", ".3f"),
    ("RMSE Å", "rmse_A", ".3f"),
    ("pass", "passes", ""),
    ("F1", "f1", ".3f"),
    ("RMSE px", "rmse_px", ".3f"),
    ("TP", "n_tp", "d"),
    ("FP", "n_fp", "d"),
    ("FN", "n_fn", "d"),
    ("labels", "n_truth", "d"),
    ("predicted", "n_pred", "d"),
]
#: recall, precision, RMSE Å, pass: always visible
KEY_COLUMNS = 4
HEADER_TIPS = [
    "ID-recall = TP / N labels",
    "ID-precision = TP / N predicted",
    "RMSE of matched pairs, Å",
    "pass: recall ≥ 0.90, precision ≥ 0.95, RMSE ≤ 0.3 Å",
    "F1 = harmonic mean of recall and precision",
    "RMSE of matched pairs, pixels",
    "true positives",
    "false positives: predictions with no label",
    "false negatives: labels with no prediction",
    "N labels (after the border filter)",
    "N predicted (after the border filter)",
]
NONE = "(none)"

#: failure cases listed per kind (a hopeless prediction must not make every edit slow)
MAX_CASES = 1000


def layer_positions(layer) -> np.ndarray:
    data = np.asarray(layer.data, dtype=np.float64)
    if data.ndim != 2 or (len(data) and data.shape[1] != 2):
        raise ValueError(f"layer {layer.name!r} has {layer.ndim}D points; comparing needs 2D (row, col) points")
    return data.reshape(-1, 2)



@dataclass
class ComparisonCache:
    """Per prediction layer (by name): the inputs and result of its last comparison."""

    _entries: dict[str, tuple[np.ndarray, np.ndarray, tuple, Comparison]] = field(default_factory=dict)
    computed: int = 0  # full comparisons run (for tests and the benchmark)
    reused: int = 0

    def compare(self, name: str, predicted_rc: np.ndarray, truth_rc: np.ndarray, **options) -> Comparison:
        """:func:`~napari_atombench.core.metrics.compare_positions`, reused when nothing changed."""
        key = tuple(sorted(options.items()))
        entry = self._entries.get(name)
        if entry is not None and entry[2] == key and _same(entry[0], predicted_rc) and _same(entry[1], truth_rc):
            self.reused += 1
            return entry[3]
        comparison = compare_positions(predicted_rc, truth_rc, **options)
        self._entries[name] = (np.array(predicted_rc, copy=True), np.array(truth_rc, copy=True), key, comparison)
        self.computed += 1
        return comparison

    def keep_only(self, names) -> None:
        """Forget the layers that are no longer compared."""
        names = set(names)
        for name in [n for n in self._entries if n not in names]:
            del self._entries[name]


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)
