"""Synthetic "predictions" made from labels: jitter, misses and spurious points.

For tests, benchmarks and demos of the scoring: a prediction whose errors are
known by construction. This module imports neither Qt nor napari.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import as_positions

__all__ = ["PerturbedPositions", "perturb_positions"]


@dataclass
class PerturbedPositions:
    """Outcome of :func:`perturb_positions`.

    Attributes
    ----------
    positions_rc : ndarray, shape (K, 2)
        The kept labels, jittered, followed by the spurious points.
    kept_index : ndarray of int64
        Which labels were kept (the first ``len(kept_index)`` rows come from them, in order).
    missed_index : ndarray of int64
        Which labels were left out.
    n_spurious : int
        How many points at the end are spurious.
    """

    positions_rc: np.ndarray
    kept_index: np.ndarray
    missed_index: np.ndarray
    n_spurious: int


def perturb_positions(
    truth_rc,
    *,
    jitter_px: float = 0.3,
    miss_fraction: float = 0.0,
    spurious_fraction: float = 0.0,
    shape: tuple[float, float] | None = None,
    seed: int | None = 0,
) -> PerturbedPositions:
    """Jitter labels, drop some, and add spurious points.

    Parameters
    ----------
    truth_rc : array_like, shape (N, 2)
    jitter_px : float
        Standard deviation of the Gaussian jitter, per axis, in pixels.
    miss_fraction : float
        Fraction of labels left out (rounded to a whole number).
    spurious_fraction : float
        Number of spurious points as a fraction of N (rounded), placed
        uniformly at random in ``shape`` (default: the labels' bounding box).
    shape : (rows, cols), optional
    seed : int, optional

    Returns
    -------
    PerturbedPositions
    """
    truth = as_positions(truth_rc, "truth_rc")
    rng = np.random.default_rng(seed)
    n = len(truth)
    n_miss = int(round(miss_fraction * n))
    missed = np.sort(rng.choice(n, size=n_miss, replace=False)) if n_miss else np.zeros(0, np.int64)
    kept = np.setdiff1d(np.arange(n), missed)
    jittered = truth[kept] + rng.normal(0.0, jitter_px, size=(len(kept), 2))
    n_spurious = int(round(spurious_fraction * n))
    if shape is not None:
        low, high = np.zeros(2), np.asarray(shape, dtype=float) - 1
    elif n:
        low, high = truth.min(axis=0), truth.max(axis=0)
    else:
        low, high = np.zeros(2), np.ones(2)
    spurious = low + rng.random((n_spurious, 2)) * (high - low)
    return PerturbedPositions(
        positions_rc=np.vstack([jittered, spurious]),
        kept_index=kept.astype(np.int64),
        missed_index=missed.astype(np.int64),
        n_spurious=n_spurious,
    )
