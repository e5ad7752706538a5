"""Cramér-Rao lower bound on the position precision of an isolated column."""

from __future__ import annotations

import numpy as np

from ._lm import _model



def cramer_rao_bound_px(
    amplitude: float,
    sigma_px: float,
    background: float,
    *,
    window_px: int | None = None,
    n_offsets: int = 16,
    seed: int = 0,
) -> float:
    """Cramér-Rao lower bound on the position error of an isolated Gaussian column.

    Model (counts per pixel ``k``, sampled at pixel centres, as the simulator
    renders): ``mu_k = B + A exp(-((y_k - r)^2 + (x_k - c)^2) / (2 s^2))`` with
    independent Poisson noise. With all five parameters
    ``theta = (r, c, A, s, B)`` unknown, the Fisher information is

    ``I_ij = sum_k (1 / mu_k) (d mu_k / d theta_i) (d mu_k / d theta_j)``

    over the pixels of the fit window, and any unbiased estimator has
    ``var(r) >= (I^-1)_rr``. The bound depends slightly on where the centre
    falls within a pixel, so ``(I^-1)_rr`` and ``(I^-1)_cc`` are averaged over
    ``n_offsets`` random sub-pixel offsets and the square root of the mean is
    returned (the per-axis RMS error of an efficient estimator). For ``B -> 0``,
    a large window and ``s`` much larger than a pixel it tends to
    ``s / sqrt(N)`` with ``N = 2 pi A s^2`` the column's total counts.

    Assumptions: an isolated column (no neighbour in the window), pure
    Poisson noise in counts (no detector noise, no scan distortion), the
    model is exact, the estimator is unbiased.

    Parameters
    ----------
    amplitude : float
        Peak counts above background.
    sigma_px : float
    background : float
        Background counts per pixel.
    window_px : int, optional
        Fit window width; the information of pixels outside it is not used.
        Default ``2 * ceil(4 sigma) + 1``.
    n_offsets : int
    seed : int

    Returns
    -------
    float
        Bound on the per-axis RMS position error, in pixels.
    """
    if not (amplitude > 0 and sigma_px > 0 and background >= 0):
        raise ValueError("need amplitude > 0, sigma_px > 0 and background >= 0")
    half = int(np.ceil(4 * sigma_px)) if window_px is None else int(window_px) // 2
    rng = np.random.default_rng(seed)
    offsets = rng.uniform(-0.5, 0.5, size=(n_offsets, 2))
    grid = np.arange(-half, half + 1, dtype=np.float64)
    w = grid.size
    ry = np.broadcast_to(grid, (n_offsets, w))
    p = np.column_stack(
        [offsets, np.full(n_offsets, float(amplitude)), np.full(n_offsets, float(sigma_px)), np.full(n_offsets, float(background))]
    )
    mu, jac = _model(p, ry, ry, 1, False, True, dtype=np.float64)
    mu = np.maximum(mu, 1e-12)
    fisher = (jac / mu[:, None, :]) @ jac.transpose(0, 2, 1)
    inverse = np.linalg.inv(fisher)
    variance = 0.5 * (inverse[:, 0, 0] + inverse[:, 1, 1])
    return float(np.sqrt(variance.mean()))
