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
