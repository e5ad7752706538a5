"""Iterated, background-subtracted centre of mass (:func:`refine_center_of_mass`)."""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from ..._types import ProgressCallback
from .._windows import extract_windows, outside_image
from .._validate import as_image_2d
from ._result import (
    STATUS_CONVERGED,
    RefineResult,
    _check_half,
    _chunks,
    _empty_result,
    _positions_and_usable,
    _report,
    _store,
    default_window_px,
)



def _disk_weights(img, pos, radius, half):
    """Windows around ``pos``, the disk of ``radius`` in them, and background-subtracted weights."""
    win = extract_windows(img, np.rint(pos), half, dtype=np.float32)
    dy = win.rows[:, :, None] - pos[:, 0, None, None]
    dx = win.cols[:, None, :] - pos[:, 1, None, None]
    inside = (dy**2 + dx**2 <= radius**2) & win.valid
    background = np.where(inside, win.values, np.inf).min(axis=(1, 2))
    weight = np.where(inside, win.values - background[:, None, None], 0.0)
    return win, dy, dx, inside, background, weight, weight.sum(axis=(1, 2))


class ComBatch(NamedTuple):
    """Centre-of-mass results for a batch of columns (arrays of length N)."""

    positions: np.ndarray
    amplitude: np.ndarray
    sigma: np.ndarray
    background: np.ndarray
    uncertainty: np.ndarray
    ok: np.ndarray
    reason: np.ndarray

    def take(self, index) -> "ComBatch":
        """The same results for ``index`` (an index or mask into the batch)."""
        return ComBatch(*(a[index] for a in self))


def _com_batch(img, positions, radius, n_iter) -> ComBatch:
    """Iterated centre of mass for a batch of usable positions."""
    half = int(np.ceil(radius))
    start = positions.copy()
    pos = positions.copy()
    n = len(pos)
    total = np.zeros(n)
    for _ in range(max(1, n_iter)):
        win, dy, dx, inside, background, weight, total = _disk_weights(img, pos, radius, half)
        with np.errstate(invalid="ignore", divide="ignore"):
            new_r = (weight * win.rows[:, :, None]).sum(axis=(1, 2)) / total
            new_c = (weight * win.cols[:, None, :]).sum(axis=(1, 2)) / total
        new = np.column_stack([new_r, new_c])
        good = np.isfinite(new).all(axis=1) & (total > 0)
        shift = np.where(good, np.abs(new - pos).max(axis=1), 0.0)
        pos = np.where(good[:, None], new, pos)
        if shift.max(initial=0.0) < 1e-3:
            break
    # final statistics at the final position
    win, dy, dx, inside, background, weight, total = _disk_weights(img, pos, radius, half)
    peak = np.where(inside, win.values, -np.inf).max(axis=(1, 2))
    amplitude = peak - background
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = np.sqrt(0.5 * (weight * (dy**2 + dx**2)).sum(axis=(1, 2)) / total)
        # Poisson propagation: var(I) = I for each pixel (counts assumed)
        variance = np.where(inside, np.abs(win.values), 0.0)
        var_r = (variance * dy**2).sum(axis=(1, 2)) / total**2
        var_c = (variance * dx**2).sum(axis=(1, 2)) / total**2
        uncertainty = np.sqrt(0.5 * (var_r + var_c))
    moved = np.hypot(*(pos - start).T)
    ok = np.isfinite(pos).all(axis=1) & (total > 0)
    reason = np.full(n, "", dtype=object)
    reason[~ok] = "centre of mass undefined (flat window)"
    left = ok & (moved > radius)
    reason[left] = "centre of mass left its window"
    outside = ok & outside_image(pos, img.shape)
    reason[outside] = "centre of mass outside the image"
    ok &= ~left & ~outside
    return ComBatch(pos, amplitude, sigma, background, uncertainty, ok, reason)


def refine_center_of_mass(
    image,
    positions_rc,
    radius_px: float | None = None,
    n_iter: int = 10,
    *,
    dark: bool = False,
    progress: ProgressCallback | None = None,
    cancelled: Callable[[], bool] | None = None,
    chunk_size: int = 8192,
) -> RefineResult:
    """Refine column centres by iterated, background-subtracted centre of mass.

    In each iteration a disk of ``radius_px`` around the current centre is
    taken, its minimum subtracted as background, and the centre moved to the
    intensity-weighted mean; iterations stop when no centre moves more than
    0.001 px. At the fixed point the residual background is symmetric about
    the centre, so it does not bias the result.

    Parameters
    ----------
    image : array_like, shape (H, W)
    positions_rc : array_like, shape (N, 2)
        Starting (row, col) positions.
    radius_px : float, optional
        Disk radius; half the median nearest-column distance when omitted.
    n_iter : int
        Maximum number of iterations.
    dark : bool
        Dark columns on a bright background (annular bright field): the image
        is inverted first.
    progress : callable(done, total), optional
    cancelled : callable() -> bool, optional
        Checked between chunks; raises :class:`~napari_atombench.models.base.Cancelled`.
    chunk_size : int
        Columns per batch.

    Returns
    -------
    RefineResult
        ``position_uncertainty_px`` assumes the image is in (scaled) counts.

    Raises
    ------
    ValueError
        For an invalid image, positions not shaped (N, 2), or a radius whose
        window does not fit in the image.
    """
    img = as_image_2d(image, name="image")
    if dark:
        img = img.max() - img
    positions, usable, reason = _positions_and_usable(positions_rc, img.shape)
    if radius_px is None:
        radius_px = 0.5 * (default_window_px(positions[usable], img.shape) - 1)
    if not (np.isfinite(radius_px) and radius_px >= 1.0):
        raise ValueError(f"radius_px must be at least 1, not {radius_px!r}")
    _check_half(int(np.ceil(radius_px)), img.shape, "the centre-of-mass window")
    result = _empty_result(positions, reason, "center_of_mass")
    result.parameters = {"radius_px": float(radius_px), "n_iter": int(n_iter), "dark": bool(dark)}
    index = np.flatnonzero(usable)
    total = len(index)
    _report(progress, cancelled, 0, total)
    for lo, hi in _chunks(total, chunk_size):
        idx = index[lo:hi]
        com = _com_batch(img, positions[idx], float(radius_px), n_iter)
        ok = com.ok
        _store(result, idx[ok], com.positions[ok], com.amplitude[ok], com.sigma[ok], com.background[ok],
               com.uncertainty[ok], STATUS_CONVERGED)
        result.reason[idx[~ok]] = com.reason[~ok]
        _report(progress, cancelled, hi, total)
    return result


