"""Heatmap models' input and output: standardisation in, local maxima with weighted centroids out."""

from __future__ import annotations

import numpy as np

from ..core.peaks import one_per_plateau


def heatmap_peaks(prob: np.ndarray, threshold: float = 0.3, min_distance_px: int = 2) -> np.ndarray:
    """Local maxima of a heatmap above ``threshold`` (not on the outermost pixels),
    refined by a probability-weighted centroid in a (2·min_distance_px + 1)² window.
    Returns (N, 2) (row, col)."""
    from scipy.ndimage import maximum_filter

    prob = np.asarray(prob, dtype=np.float32)
    size = 2 * int(min_distance_px) + 1
    peaks = (prob == maximum_filter(prob, size=size, mode="constant", cval=-np.inf)) & (prob > threshold)
    # a maximum on the outermost pixels is a column cut by the border (its centre
    # is outside, or within half a pixel of the edge): not a located column
    peaks[[0, -1], :] = False
    peaks[:, [0, -1]] = False
    r, c = one_per_plateau(peaks)  # two pixels that tie exactly are one column
    if len(r) == 0:
        return np.zeros((0, 2))
    h = int(min_distance_px)
    padded = np.pad(prob, h, mode="constant")
    offs = np.arange(-h, h + 1)
    win = padded[(r + h)[:, None, None] + offs[None, :, None], (c + h)[:, None, None] + offs[None, None, :]]
    win = np.clip(win - 0.5 * threshold, 0, None)
    total = np.maximum(win.sum(axis=(1, 2)), 1e-12)
    dr = (win.sum(axis=2) * offs).sum(1) / total
    dc = (win.sum(axis=1) * offs).sum(1) / total
    return np.column_stack([r + dr, c + dc]).astype(np.float64)


def standardize(image: np.ndarray, window_px: int | None = None) -> np.ndarray:
    """Zero mean, unit standard deviation: over the whole image (``window_px`` None)
    or in a sliding ``window_px`` square, as training standardised each crop of that
    size (so a thickness gradient across a large image does not shift the input)."""
    image = np.asarray(image, dtype=np.float32)
    if window_px is None or window_px >= max(image.shape):
        return (image - image.mean()) / max(float(image.std()), 1e-6)
    from scipy.ndimage import uniform_filter

    x = image.astype(np.float64)
    mean = uniform_filter(x, int(window_px), mode="reflect")
    var = np.clip(uniform_filter(x * x, int(window_px), mode="reflect") - mean**2, 0, None)
    floor = 1e-6 + 1e-3 * float(x.std())  # flat areas (vacuum) must not blow up
    return ((x - mean) / np.maximum(np.sqrt(var), floor)).astype(np.float32)
