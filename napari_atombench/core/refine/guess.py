"""Starting values for the Gaussian fits and unpacking of fitted parameters."""

from __future__ import annotations

import numpy as np

from ._lm import _ellipse_from_quadratic
from ._result import _MIN_SIGMA_PX

# ----------------------------------------------------------------------------
# Initial guesses
# ----------------------------------------------------------------------------


def _initial_guess(win, pos_rel, sigma_px):
    """Background, amplitude and sigma guesses for windows (flattened)."""
    n = len(pos_rel)
    values = np.where(win.valid, win.values, np.inf).reshape(n, -1)
    # mean of the darkest tenth (a window is at least a quarter inside the image,
    # so the k darkest are valid pixels)
    k = max(1, values.shape[1] // 10)
    background = np.partition(values, k - 1, axis=1)[:, :k].mean(axis=1, dtype=np.float64)
    # amplitude: brightest valid pixel within 1.5 px of the start
    half = win.half
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    dy = offsets[None, :, None] - pos_rel[:, 0, None, None]
    dx = offsets[None, None, :] - pos_rel[:, 1, None, None]
    near = (dy**2 + dx**2 <= 2.25) & win.valid
    peak = np.where(near, win.values, -np.inf).max(axis=(1, 2))
    peak = np.where(np.isfinite(peak), peak, win.values[:, half, half])
    amplitude = np.maximum(peak - background, 1e-12)
    if sigma_px is None:
        radius2 = (0.5 * half) ** 2 + 1.0
        disk = (dy**2 + dx**2 <= radius2) & win.valid
        volume = np.where(disk, win.values - background[:, None, None], 0.0).sum(axis=(1, 2))
        sigma = _sigma_from_disk_volume(np.maximum(volume, 0.0) / (2.0 * np.pi * amplitude), radius2)
        good = np.isfinite(sigma) & (sigma > _MIN_SIGMA_PX)
        typical = float(np.median(sigma[good])) if good.any() else 0.25 * half
        sigma = np.full(n, np.clip(typical, 0.5, max(0.5, 0.6 * half)))
    else:
        sigma = np.full(n, float(sigma_px))
    return background, amplitude, sigma


def _sigma_from_disk_volume(q, radius2):
    """Sigma of Gaussians whose volume inside a disk of radius**2 ``radius2`` is ``2 pi A q``.

    The disk holds the fraction ``1 - exp(-R**2 / (2 s**2))`` of a Gaussian's
    volume ``2 pi A s**2``, so ``q = s**2 (1 - exp(-u))`` with
    ``u = R**2 / (2 s**2)``, i.e. ``(1 - exp(-u)) / u = 2 q / R**2``. Reading
    ``q`` as ``s**2`` (the whole volume) is only right for ``R >~ 2.5 s``;
    for a disk of about half the window and columns of about a quarter of the
    column spacing it underestimated sigma by a factor up to ~3 (Si dumbbells).
    The left side falls from 1 to 0 as ``u`` grows, so ``u`` is found by
    bisection (in log ``u``); ``2 q / R**2 >= 1`` (all the disk is column) gives
    ``inf``.
    """
    target = 2.0 * np.asarray(q, dtype=np.float64) / radius2
    lo = np.full(target.shape, np.log(1e-8))  # sigma = 7000 R
    hi = np.full(target.shape, np.log(1e6))  # sigma = R / 1400
    for _ in range(48):  # 48 halvings of a log-range of 32: u to 1e-13 relative
        mid = 0.5 * (lo + hi)
        u = np.exp(mid)
        too_small_u = -np.expm1(-u) / u > target  # g(u) still above the target: u must grow
        lo = np.where(too_small_u, mid, lo)
        hi = np.where(too_small_u, hi, mid)
    u = np.exp(0.5 * (lo + hi))
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.sqrt(radius2 / (2.0 * u))
    return np.where(target >= 1.0, np.inf, np.where(target > 0, sigma, 0.0))


def _unpack(p, cov, converged, anchor, m, elliptical, half):
    """Per-member arrays (flattened over groups x members) from group parameters."""
    per = 6 if elliptical else 4
    groups = len(p)
    o = np.arange(m) * per
    rows = p[:, o] + anchor[:, :, 0]
    cols = p[:, o + 1] + anchor[:, :, 1]
    amplitude = p[:, o + 2]
    var_r = cov[:, o, o]
    var_c = cov[:, o + 1, o + 1]
    with np.errstate(invalid="ignore"):
        uncertainty = np.sqrt(0.5 * (var_r + var_c))
        amplitude_uncertainty = np.sqrt(cov[:, o + 2, o + 2])
    background = np.repeat(p[:, -1:], m, axis=1)
    if elliptical:
        major, minor, rotation = _ellipse_from_quadratic(p[:, o + 3], p[:, o + 4], p[:, o + 5])
        with np.errstate(invalid="ignore"):
            sigma = np.sqrt(major * minor)
    else:
        sigma = np.abs(p[:, o + 3])
        major = minor = rotation = None
    flat = lambda a: None if a is None else a.reshape(groups * m)  # noqa: E731
    return dict(
        positions=np.column_stack([flat(rows), flat(cols)]),
        amplitude=flat(amplitude),
        amplitude_uncertainty=flat(amplitude_uncertainty),
        sigma=flat(sigma),
        background=flat(background),
        uncertainty=flat(uncertainty),
        converged=np.repeat(converged, m),
        major=flat(major),
        minor=flat(minor),
        rotation=flat(rotation),
    )


