"""Sub-pixel refinement of many atom columns at once.

* :func:`refine_center_of_mass` - iterated, background-subtracted centre of
  mass in a disk around each column.
* :func:`refine_gaussian` - 2D Gaussian (isotropic, or elliptical with
  rotation) plus a flat background per column, fitted by a batched
  Levenberg-Marquardt over all windows at once. With ``overlapping=True``,
  columns whose windows overlap are grouped (closest pairs first, at most
  ``max_group_size`` per group) and each group is fitted as a sum of
  Gaussians over one shared background, so a close pair (dumbbell) is not
  pulled together by its partner's tail.
* :func:`cramer_rao_bound_px` - the best possible position precision of an
  isolated column with Poisson noise, for judging the fits.

The hot path has no Python loop per column: windows are cut with fancy
indexing into ``(N, w, w)`` stacks and the ``N`` small normal-equation systems
are solved as one ``(N, k, k)`` batch. Work runs in chunks; between chunks
``progress(done, total)`` is called and ``cancelled()`` checked.

Every column gets a status:

``"converged"``
    the fit converged with a sane result;
``"fell back"``
    the Gaussian fit failed (NaN, singular, centre left its window, sigma or
    amplitude absurd, or it converged onto the same peak as another column:
    an unresolved close pair fitted independently) and the centre-of-mass
    result is used instead;
``"rejected"``
    the input is unusable (not finite, outside the image) or even the
    centre of mass failed; the input position is returned unchanged.

``reason`` says why for the last two. This module imports neither Qt nor
napari.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from .._types import Cancelled, ProgressCallback
from ._windows import extract_windows, outside_image
from .io import as_image_2d
from .match import nearest_neighbour_distances_px

__all__ = [
    "STATUS_CONVERGED",
    "STATUS_FELL_BACK",
    "STATUS_REJECTED",
    "RefineResult",
    "cramer_rao_bound_px",
    "default_window_px",
    "refine_center_of_mass",
    "refine_gaussian",
    "refine_positions",
    "REFINE_METHODS",
]

STATUS_CONVERGED = "converged"
STATUS_FELL_BACK = "fell back"
STATUS_REJECTED = "rejected"

_MIN_SIGMA_PX = 0.3


@dataclass
class RefineResult:
    """Refined columns, one entry per input position, in input order.

    Attributes
    ----------
    positions_rc : ndarray of float64, shape (N, 2)
    amplitude : ndarray, shape (N,)
        Peak height above the background (image units; NaN when rejected).
    sigma_px : ndarray, shape (N,)
        Gaussian sigma; for an elliptical fit the geometric mean of the two
        principal sigmas; for centre of mass the second-moment estimate.
    background : ndarray, shape (N,)
    position_uncertainty_px : ndarray, shape (N,)
        One-sigma position uncertainty per axis, ``sqrt((var_row + var_col) / 2)``:
        from the fit covariance (inverse Fisher information scaled by the
        reduced chi-square) for Gaussian fits, from Poisson propagation for
        centre of mass.
    status : ndarray of str, shape (N,)
        ``"converged"``, ``"fell back"`` or ``"rejected"``.
    reason : ndarray of str, shape (N,)
        Why a column fell back or was rejected (empty when converged).
    method : str
    sigma_major_px, sigma_minor_px, rotation_rad : ndarray or None
        Elliptical fits only; rotation of the major axis from the column axis
        towards the row axis.
    group : ndarray of int, shape (N,)
        Joint-fit group id (-1 for columns fitted alone).
    parameters : dict
        Window, iterations and options used.
    """

    positions_rc: np.ndarray
    amplitude: np.ndarray
    sigma_px: np.ndarray
    background: np.ndarray
    position_uncertainty_px: np.ndarray
    status: np.ndarray
    reason: np.ndarray
    method: str
    sigma_major_px: np.ndarray | None = None
    sigma_minor_px: np.ndarray | None = None
    rotation_rad: np.ndarray | None = None
    group: np.ndarray | None = None
    parameters: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.positions_rc)

    def counts(self) -> dict[str, int]:
        """Number of columns per status."""
        return {s: int(np.count_nonzero(self.status == s)) for s in (STATUS_CONVERGED, STATUS_FELL_BACK, STATUS_REJECTED)}

    def features(self) -> pd.DataFrame:
        """Per-column table (for Points layer features and CSV files)."""
        table = pd.DataFrame(
            {
                "amplitude": self.amplitude,
                "sigma_px": self.sigma_px,
                "background": self.background,
                "uncertainty_px": self.position_uncertainty_px,
                "status": self.status.astype(object),
                # why a column fell back or was rejected, so a user can see it in the layer and the CSV
                "reason": self.reason.astype(object),
            }
        )
        return table


# ----------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------


def _positions_and_usable(positions_rc, shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positions float64 (N,2), usable mask, reason array)."""
    positions = np.asarray(positions_rc, dtype=np.float64)
    if positions.size == 0:
        positions = np.zeros((0, 2))
    if positions.ndim != 2 or positions.shape[1] != 2:
        raise ValueError(f"positions_rc must have shape (N, 2) as (row, col); got {positions.shape}")
    reason = np.full(len(positions), "", dtype=object)
    finite = np.isfinite(positions).all(axis=1)
    reason[~finite] = "position not finite"
    inside = ~outside_image(positions, shape)
    reason[finite & ~inside] = "outside the image"
    return positions, finite & inside, reason


def _check_half(half: int, shape, what: str) -> int:
    half = int(half)
    if half < 1:
        raise ValueError(f"{what} must be at least 3 px wide, got {2 * half + 1}")
    if 2 * half + 1 > min(shape):
        raise ValueError(
            f"{what} of {2 * half + 1} px is larger than the {shape[0]}x{shape[1]} image; "
            "use a smaller window"
        )
    return half


def _nearest_distance_px(positions: np.ndarray) -> float | None:
    d = nearest_neighbour_distances_px(positions)
    d = d[d > 0]
    return float(np.median(d)) if len(d) else None


def default_window_px(positions_rc, image_shape, *, sigma_px: float | None = None) -> int:
    """Default fit window width (odd, px): about the median nearest-column distance.

    At least ``6 * sigma_px + 1`` when ``sigma_px`` is given, 5 px at minimum,
    and never wider than the image.
    """
    positions = np.asarray(positions_rc, dtype=np.float64).reshape(-1, 2)
    positions = positions[np.isfinite(positions).all(axis=1)]
    nearest = _nearest_distance_px(positions)
    half = 5 if nearest is None else int(round(0.5 * nearest))
    if sigma_px is not None and np.isfinite(sigma_px):
        half = max(half, int(np.ceil(3.0 * sigma_px)))
    half = int(np.clip(half, 2, 40))
    half = min(half, (min(image_shape) - 1) // 2)
    return 2 * half + 1


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(n, start + size)


def _report(progress, cancelled, done, total):
    if progress is not None:
        progress(int(done), int(total))
    if cancelled is not None and cancelled():
        raise Cancelled("refinement cancelled")


# ----------------------------------------------------------------------------
# Centre of mass
# ----------------------------------------------------------------------------


def _disk_weights(img, pos, radius, half):
    """Windows around ``pos``, the disk of ``radius`` in them, and background-subtracted weights."""
    win = extract_windows(img, np.rint(pos), half, dtype=np.float32)
    dy = win.rows[:, :, None] - pos[:, 0, None, None]
    dx = win.cols[:, None, :] - pos[:, 1, None, None]
    inside = (dy**2 + dx**2 <= radius**2) & win.valid
    background = np.where(inside, win.values, np.inf).min(axis=(1, 2))
    weight = np.where(inside, win.values - background[:, None, None], 0.0)
    return win, dy, dx, inside, background, weight, weight.sum(axis=(1, 2))


def _com_batch(img, positions, radius, n_iter):
    """Iterated centre of mass for a batch of usable positions.

    Returns (positions, amplitude, sigma, background, uncertainty, ok, reason).
    """
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
    return pos, amplitude, sigma, background, uncertainty, ok, reason


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
        pos, amp, sig, bg, unc, ok, why = _com_batch(img, positions[idx], float(radius_px), n_iter)
        _store(result, idx[ok], pos[ok], amp[ok], sig[ok], bg[ok], unc[ok], STATUS_CONVERGED)
        result.reason[idx[~ok]] = why[~ok]
        _report(progress, cancelled, hi, total)
    return result


def _empty_result(positions, reason, method) -> RefineResult:
    n = len(positions)
    nan = np.full(n, np.nan)
    status = np.full(n, STATUS_REJECTED, dtype=object)
    return RefineResult(
        positions_rc=positions.copy(),
        amplitude=nan.copy(),
        sigma_px=nan.copy(),
        background=nan.copy(),
        position_uncertainty_px=nan.copy(),
        status=status,
        reason=reason.copy(),
        method=method,
        group=np.full(n, -1, dtype=np.int64),
    )


def _store(result, idx, pos, amp, sig, bg, unc, status, reason=""):
    result.positions_rc[idx] = pos
    result.amplitude[idx] = amp
    result.sigma_px[idx] = sig
    result.background[idx] = bg
    result.position_uncertainty_px[idx] = unc
    result.status[idx] = status
    result.reason[idx] = reason


# ----------------------------------------------------------------------------
# Batched Levenberg-Marquardt for sums of Gaussians
# ----------------------------------------------------------------------------
#
# Parameters per group: for each of m members [row, col, A, s] (isotropic) or
# [row, col, A, a, b, c] (elliptical: exp(-(a dy^2 + 2 b dy dx + c dx^2) / 2)),
# then one shared background B. Coordinates are relative to an anchor pixel.


def _model(p, ry, cx, m, elliptical, need_jac, dtype=np.float32):
    """Sum of ``m`` Gaussians plus background on each group's pixel grid.

    ``ry`` (G, H) and ``cx`` (G, W) are the rows and columns of each group's
    grid; returns ``mu`` (G, H*W) and, when asked, the Jacobian (G, K, H*W).
    Isotropic Gaussians are evaluated separably (exp on H + W values, not H*W).
    """
    per = 6 if elliptical else 4
    groups, height = ry.shape
    width = cx.shape[1]
    n_par = p.shape[1]
    mu = np.empty((groups, height, width), dtype=dtype)
    mu[...] = p[:, -1, None, None]
    jac = np.empty((groups, n_par, height, width), dtype=dtype) if need_jac else None
    if need_jac:
        jac[:, -1] = 1.0
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        for j in range(m):  # members of a group (m is small), never a loop over columns
            o = j * per
            dy = (ry - p[:, o, None]).astype(dtype)  # (G, H)
            dx = (cx - p[:, o + 1, None]).astype(dtype)  # (G, W)
            amp = p[:, o + 2].astype(dtype)
            if elliptical:
                a = p[:, o + 3, None, None].astype(dtype)
                b = p[:, o + 4, None, None].astype(dtype)
                c = p[:, o + 5, None, None].astype(dtype)
                dyy, dxx = dy[:, :, None], dx[:, None, :]
                q = a * dyy * dyy + 2.0 * b * dyy * dxx + c * dxx * dxx
                g = np.exp(-0.5 * np.minimum(q, 80.0))
                ag = amp[:, None, None] * g
                mu += ag
                if need_jac:
                    jac[:, o] = ag * (a * dyy + b * dxx)
                    jac[:, o + 1] = ag * (b * dyy + c * dxx)
                    jac[:, o + 2] = g
                    jac[:, o + 3] = -0.5 * ag * dyy * dyy
                    jac[:, o + 4] = -ag * dyy * dxx
                    jac[:, o + 5] = -0.5 * ag * dxx * dxx
            else:
                s = p[:, o + 3].astype(dtype)
                inv_s2 = (1.0 / (s * s))[:, None]
                ey = np.exp(-0.5 * np.minimum(dy * dy * inv_s2, 80.0))  # (G, H)
                ex = np.exp(-0.5 * np.minimum(dx * dx * inv_s2, 80.0))  # (G, W)
                aey = amp[:, None] * ey
                if not need_jac:
                    mu += aey[:, :, None] * ex[:, None, :]
                    continue
                ag = jac[:, o + 2]  # reuse the slot: fill with A*g first, then g
                np.multiply(aey[:, :, None], ex[:, None, :], out=ag)
                mu += ag
                k = aey * inv_s2  # A / s^2 * ey
                np.multiply((k * dy)[:, :, None], ex[:, None, :], out=jac[:, o])
                np.multiply(k[:, :, None], (ex * dx)[:, None, :], out=jac[:, o + 1])
                ks = k / s[:, None]  # A / s^3 * ey
                np.multiply((ks * dy * dy)[:, :, None], ex[:, None, :], out=jac[:, o + 3])
                jac[:, o + 3] += ks[:, :, None] * (ex * dx * dx)[:, None, :]
                np.multiply(ey[:, :, None], ex[:, None, :], out=jac[:, o + 2])
    mu = mu.reshape(groups, -1)
    if need_jac:
        jac = jac.reshape(groups, n_par, -1)
    return mu, jac


def _params_valid(p, m, elliptical):
    per = 6 if elliptical else 4
    ok = np.isfinite(p).all(axis=1)
    for j in range(m):
        o = j * per
        if elliptical:
            a, b, c = p[:, o + 3], p[:, o + 4], p[:, o + 5]
            ok &= (a > 0) & (c > 0) & (a * c - b * b > 0)
        else:
            ok &= p[:, o + 3] > 0
    return ok


def _solve(h, g):
    try:
        return np.linalg.solve(h, g[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return (np.linalg.pinv(h) @ g[..., None])[..., 0]


def _normal_equations(jac, w, resid):
    """J^T W J (G, K, K) and J^T W r (G, K) in float64."""
    jw = jac * w[:, None, :]
    h = np.matmul(jw, jac.transpose(0, 2, 1)).astype(np.float64)
    grad = np.matmul(jw, resid[:, :, None])[:, :, 0].astype(np.float64)
    return h, grad


def _lm_fit(values, ry, cx, mask, p0, m, elliptical, n_iter, poisson, tol_px=5e-3):
    """Fit G groups at once by Levenberg-Marquardt.

    ``values`` and ``mask`` are (G, H*W) (float32), ``ry`` (G, H) and ``cx``
    (G, W) the pixel coordinates, ``p0`` (G, K) the starting parameters.
    Returns ``(p, cov, converged, chi2_reduced)``.
    """
    per = 6 if elliptical else 4
    pos_index = np.array([j * per + k for j in range(m) for k in (0, 1)])
    p = p0.astype(np.float64).copy()
    groups, n_par = p.shape
    amp_index = np.arange(m) * per + 2
    floor = (1e-3 * np.maximum(np.abs(p0[:, amp_index]).max(axis=1) + np.abs(p0[:, -1]), 1e-12)).astype(np.float32)

    def weights(mu, rows):
        if poisson:
            return mask[rows] / np.maximum(mu, floor[rows, None])
        return mask[rows]

    lam = np.full(groups, 1e-3)
    active = np.ones(groups, dtype=bool)
    converged = np.zeros(groups, dtype=bool)
    eye = np.eye(n_par)
    for _ in range(n_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        rows = slice(None) if idx.size == groups else idx
        pa = p[rows]
        mu, jac = _model(pa, ry[rows], cx[rows], m, elliptical, True)
        w = weights(mu, rows)
        resid = values[rows] - mu
        cost = np.einsum("gp,gp->g", w, resid * resid, dtype=np.float64)
        h, grad = _normal_equations(jac, w, resid)
        diag = np.diagonal(h, axis1=1, axis2=2)
        scale = diag.mean(axis=1) * 1e-10 + 1e-300
        h_damped = h + (lam[idx, None] * diag + scale[:, None])[:, :, None] * eye
        delta = _solve(h_damped, grad)
        trial = pa + delta
        mu_t, _ = _model(trial, ry[rows], cx[rows], m, elliptical, False)
        resid_t = values[rows] - mu_t
        cost_t = np.einsum("gp,gp->g", w, resid_t * resid_t, dtype=np.float64)
        cost_t[~_params_valid(trial, m, elliptical) | ~np.isfinite(cost_t)] = np.inf
        accept = cost_t <= cost
        p[idx[accept]] = trial[accept]
        lam[idx] = np.where(accept, np.maximum(lam[idx] * 0.3, 1e-9), lam[idx] * 10.0)
        step = np.abs(delta[:, pos_index]).max(axis=1)
        done_now = np.isfinite(step) & (step < tol_px)
        converged[idx[done_now]] = True
        active[idx[done_now | (lam[idx] > 1e8)]] = False
    # covariance at the solution: inverse of the undamped weighted normal matrix
    # (the Fisher information for Poisson weights), scaled by the reduced
    # chi-square so that images in scaled counts are handled
    mu, jac = _model(p, ry, cx, m, elliptical, True)
    w = weights(mu, slice(None))
    resid = values - mu
    h, _ = _normal_equations(jac, w, resid)
    cost = np.einsum("gp,gp->g", w, resid * resid, dtype=np.float64)
    dof = np.maximum(mask.sum(axis=1, dtype=np.float64) - n_par, 1.0)
    chi2 = cost / dof
    h = h + (np.diagonal(h, axis1=1, axis2=2).mean(axis=1) * 1e-12 + 1e-300)[:, None, None] * eye
    try:
        cov = np.linalg.inv(h)
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(h)
    cov = cov * chi2[:, None, None]
    return p, cov, converged, chi2


def _ellipse_from_quadratic(a, b, c):
    """Principal sigmas and rotation of exp(-(a dy^2 + 2 b dy dx + c dx^2) / 2)."""
    det = a * c - b * b
    # covariance = inverse of [[a, b], [b, c]] in (dy, dx) order
    var_yy, var_xx, var_xy = c / det, a / det, -b / det
    mean = 0.5 * (var_yy + var_xx)
    spread = np.sqrt(np.maximum((0.5 * (var_yy - var_xx)) ** 2 + var_xy**2, 0.0))
    major = np.sqrt(np.maximum(mean + spread, 0.0))
    minor = np.sqrt(np.maximum(mean - spread, 0.0))
    rotation = 0.5 * np.arctan2(2.0 * var_xy, var_xx - var_yy)
    return major, minor, rotation


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
        # volume of a Gaussian = 2 pi A s^2, within a disk of ~2.5 s around the column
        r2 = dy**2 + dx**2
        disk = (r2 <= (0.5 * half) ** 2 + 1.0) & win.valid
        volume = np.where(disk, win.values - background[:, None, None], 0.0).sum(axis=(1, 2))
        sigma = np.sqrt(np.maximum(volume, 0.0) / (2.0 * np.pi * amplitude))
        good = np.isfinite(sigma) & (sigma > _MIN_SIGMA_PX)
        typical = float(np.median(sigma[good])) if good.any() else 0.25 * half
        sigma = np.full(n, np.clip(typical, 0.5, max(0.5, 0.6 * half)))
    else:
        sigma = np.full(n, float(sigma_px))
    return background, amplitude, sigma


# ----------------------------------------------------------------------------
# Gaussian refinement
# ----------------------------------------------------------------------------


def _fit_windows(img, pos, half, sigma_px, elliptical, n_iter, poisson):
    """Independent fits of one Gaussian per window. Returns arrays per column."""
    n = len(pos)
    anchor = np.rint(pos).astype(np.int64)
    win = extract_windows(img, anchor, half)
    rel = pos - anchor
    background, amplitude, sigma = _initial_guess(win, rel, sigma_px)
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    w = 2 * half + 1
    ry = np.broadcast_to(offsets, (n, w))
    cx = ry
    values = win.values.reshape(n, -1).astype(np.float32)
    mask = win.valid.reshape(n, -1).astype(np.float32)
    if elliptical:
        inv = 1.0 / sigma**2
        p0 = np.column_stack([rel[:, 0], rel[:, 1], amplitude, inv, np.zeros(n), inv, background])
    else:
        p0 = np.column_stack([rel[:, 0], rel[:, 1], amplitude, sigma, background])
    p, cov, converged, _ = _lm_fit(values, ry, cx, mask, p0, 1, elliptical, n_iter, poisson)
    return _unpack(p, cov, converged, anchor[:, None, :], 1, elliptical, half)


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


def _check_fit(fit, start, half, image_shape):
    """Status reasons ('' when the fit is sane) for fitted columns."""
    pos = fit["positions"]
    n = len(pos)
    reason = np.full(n, "", dtype=object)
    finite = np.isfinite(pos).all(axis=1) & np.isfinite(fit["amplitude"]) & np.isfinite(fit["sigma"])
    with np.errstate(invalid="ignore"):
        left = np.abs(pos - start).max(axis=1) > half
        sigma = fit["sigma"]
        absurd_sigma = (sigma < _MIN_SIGMA_PX) | (sigma > half)
        if fit["minor"] is not None:
            absurd_sigma |= (fit["minor"] < _MIN_SIGMA_PX) | (fit["major"] > half)
        amplitude = fit["amplitude"]
        non_positive = amplitude <= 0
        # a column must stand out of the noise (3 sigma) and of the background
        weak = ~(amplitude > 3.0 * fit["amplitude_uncertainty"]) | ~(amplitude > 1e-6 * np.abs(fit["background"]))
        outside = outside_image(pos, image_shape)
    reason[~fit["converged"]] = "fit did not converge"
    reason[weak] = "amplitude not significant"
    reason[non_positive] = "amplitude not positive"
    reason[absurd_sigma] = "sigma absurd"
    reason[outside] = "centre outside the image"
    reason[left] = "centre left its window"
    reason[~finite] = "fit gave NaN"
    return reason


def _group_columns(positions, link_px, max_group_size):
    """Group columns closer than ``link_px``, closest pairs first, at most ``max_group_size`` per group.

    Returns an int array of group labels (one label per column; singletons
    get their own label).
    """
    from scipy.spatial import cKDTree

    n = len(positions)
    parent = np.arange(n)
    size = np.ones(n, dtype=np.int64)
    if n < 2 or max_group_size < 2:
        return parent
    pairs = cKDTree(positions).query_pairs(link_px, output_type="ndarray")
    if len(pairs) == 0:
        return parent
    lengths = np.hypot(*(positions[pairs[:, 0]] - positions[pairs[:, 1]]).T)
    pairs = pairs[np.argsort(lengths, kind="stable")]

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # union-find over the (few) overlapping pairs; preprocessing, not the fit
    for i, j in pairs.tolist():
        ri, rj = find(i), find(j)
        if ri != rj and size[ri] + size[rj] <= max_group_size:
            parent[rj] = ri
            size[ri] += size[rj]
    return np.array([find(i) for i in range(n)])


def _fit_groups(img, pos, members, half, sigma_px, elliptical, n_iter, poisson):
    """Joint fits for groups of equal size m: ``members`` is (G, m) indices into ``pos``."""
    groups, m = members.shape
    start = pos[members]  # (G, m, 2)
    anchor_int = np.rint(start).astype(np.int64)
    # per-member guesses from each member's own window
    flat_anchor = anchor_int.reshape(-1, 2)
    win = extract_windows(img, flat_anchor, half)
    background, amplitude, sigma = _initial_guess(win, start.reshape(-1, 2) - flat_anchor, sigma_px)
    # one box per group: bounding box of the members' windows, padded to the batch's largest
    lo = anchor_int.min(axis=1) - half  # (G, 2)
    hi = anchor_int.max(axis=1) + half
    extent = (hi - lo).max(axis=0) + 1  # (2,)
    height, width = img.shape
    rr = lo[:, 0, None] + np.arange(extent[0])  # (G, H')
    cc = lo[:, 1, None] + np.arange(extent[1])
    in_box = (rr <= hi[:, 0, None])[:, :, None] & (cc <= hi[:, 1, None])[:, None, :]
    in_image = ((rr >= 0) & (rr < height))[:, :, None] & ((cc >= 0) & (cc < width))[:, None, :]
    values = img[np.clip(rr, 0, height - 1)[:, :, None], np.clip(cc, 0, width - 1)[:, None, :]].astype(np.float64)
    mask = (in_box & in_image).reshape(groups, -1).astype(np.float32)
    anchor = lo.astype(np.float64)  # coordinates relative to the box corner
    ry = (rr - lo[:, :1]).astype(np.float64)
    cx = (cc - lo[:, 1:]).astype(np.float64)
    values = values.reshape(groups, -1).astype(np.float32)
    per = 6 if elliptical else 4
    p0 = np.empty((groups, m * per + 1))
    rel = start - anchor[:, None, :]
    amp = amplitude.reshape(groups, m)
    sig = sigma.reshape(groups, m)
    for j in range(m):
        o = j * per
        p0[:, o] = rel[:, j, 0]
        p0[:, o + 1] = rel[:, j, 1]
        p0[:, o + 2] = amp[:, j]
        if elliptical:
            p0[:, o + 3] = 1.0 / sig[:, j] ** 2
            p0[:, o + 4] = 0.0
            p0[:, o + 5] = 1.0 / sig[:, j] ** 2
        else:
            p0[:, o + 3] = sig[:, j]
    p0[:, -1] = background.reshape(groups, m).min(axis=1)
    p, cov, converged, _ = _lm_fit(values, ry, cx, mask, p0, m, elliptical, n_iter, poisson)
    return _unpack(p, cov, converged, np.repeat(anchor[:, None, :], m, axis=1), m, elliptical, half)


def refine_gaussian(
    image,
    positions_rc,
    window_px: int | None = None,
    *,
    sigma_px: float | None = None,
    elliptical: bool = False,
    overlapping: bool = False,
    max_group_size: int = 4,
    n_iter: int = 20,
    weighting: str = "auto",
    dark: bool = False,
    progress: ProgressCallback | None = None,
    cancelled: Callable[[], bool] | None = None,
    chunk_size: int = 4096,
) -> RefineResult:
    """Fit a 2D Gaussian plus background to every column, all columns at once.

    The model in a square window around each column is
    ``B + A * exp(-((y - r)**2 + (x - c)**2) / (2 * s**2))`` sampled at pixel
    centres, or with ``elliptical=True``
    ``B + A * exp(-(a dy**2 + 2 b dy dx + c dx**2) / 2)`` (reported as major
    and minor sigma and a rotation). Starting values: position from a short
    centre of mass, background from the darkest tenth of the window,
    amplitude from the brightest pixel near the start, sigma from the
    integrated intensity (the median over all columns, or ``sigma_px``).
    The fit is a batched Levenberg-Marquardt; with Poisson weighting each
    step is a Fisher-scoring step of the Poisson likelihood, so the estimate
    is the maximum-likelihood one and reaches the Cramér-Rao bound.

    Parameters
    ----------
    image : array_like, shape (H, W)
    positions_rc : array_like, shape (N, 2)
        Starting (row, col) positions (seeds, hand clicks, model output).
    window_px : int, optional
        Window width in pixels (made odd). Default: the median nearest-column
        distance (see :func:`default_window_px`), narrowed to ``7 sigma + 1``
        for columns narrower than that, and at least ``6 sigma + 1`` with
        ``overlapping=True`` (sigma estimated from the image unless given).
    sigma_px : float, optional
        Starting sigma; estimated from the image when omitted.
    elliptical : bool
        Fit an elliptical Gaussian with rotation.
    overlapping : bool
        Fit close columns jointly: columns whose (circular) windows overlap,
        i.e. closer than ``0.95 * window_px``, are grouped, closest pairs
        first and at most ``max_group_size`` per group, and each group is
        fitted as a sum of Gaussians on one background over the union box of
        the members' windows. Groups of equal size are fitted as one batch.
        On a dense lattice where every window overlaps its neighbours the
        groups are small clusters of neighbours: slower, not less accurate.
    max_group_size : int
    n_iter : int
        Maximum Levenberg-Marquardt iterations (5-10 are usually enough).
    weighting : {"auto", "poisson", "uniform"}
        ``"poisson"`` weights pixels by the inverse model (variance = mean:
        counts, or counts times a gain); ``"uniform"`` is ordinary least
        squares. ``"auto"`` uses Poisson when the image has no negative pixel.
    dark : bool
        Dark columns on a bright background: fits the inverted image
        (``max - image``) with uniform weighting.
    progress : callable(done, total), optional
        Called after each chunk with the number of columns done.
    cancelled : callable() -> bool, optional
        Checked between chunks; raises :class:`~napari_atombench.models.base.Cancelled`.
    chunk_size : int
        Columns per batch (bounds the memory: about ``chunk_size * window**2 * 60``
        bytes).

    Returns
    -------
    RefineResult
        In input order. Columns whose fit fails fall back to the centre of
        mass (``status == "fell back"``); unusable inputs are ``"rejected"``.

    Raises
    ------
    ValueError
        For an invalid image, positions not shaped (N, 2), a window larger than
        the image, or an unknown ``weighting``.
    """
    img = as_image_2d(image, name="image")
    if dark:
        img = img.max() - img
    if weighting not in ("auto", "poisson", "uniform"):
        raise ValueError(f"weighting must be 'auto', 'poisson' or 'uniform', not {weighting!r}")
    poisson = weighting == "poisson" or (weighting == "auto" and not dark and float(img.min()) >= 0.0)
    positions, usable, reason = _positions_and_usable(positions_rc, img.shape)
    if sigma_px is not None and not (np.isfinite(sigma_px) and sigma_px > 0):
        raise ValueError(f"sigma_px must be a positive number, not {sigma_px!r}")
    auto_window = window_px is None
    if auto_window:
        window_px = default_window_px(positions[usable], img.shape, sigma_px=sigma_px)
    half = _check_half(int(window_px) // 2, img.shape, "the fit window")
    method = "gaussian_joint" if overlapping else "gaussian"
    result = _empty_result(positions, reason, method)
    if elliptical:
        result.sigma_major_px = np.full(len(positions), np.nan)
        result.sigma_minor_px = np.full(len(positions), np.nan)
        result.rotation_rad = np.full(len(positions), np.nan)
    index = np.flatnonzero(usable)
    total = len(index)
    result.parameters = dict(
        window_px=2 * half + 1, sigma_px=sigma_px, elliptical=elliptical, overlapping=overlapping,
        max_group_size=max_group_size, n_iter=n_iter, weighting="poisson" if poisson else "uniform", dark=dark,
    )
    _report(progress, cancelled, 0, total)
    if total == 0:
        return result
    # start from a short centre of mass (robust to clicks a pixel or two off)
    radius = max(1.0, min(0.5 * half + 1.0, float(half)))
    com = _com_batch(img, positions[index], radius, 3)
    start = np.where(com[5][:, None], com[0], positions[index])
    if auto_window or overlapping:
        typical_sigma = sigma_px
        if typical_sigma is None:  # from a subsample of up to ~512 columns
            typical_sigma = _estimate_sigma(img, start[:: max(1, total // 512)], half)
        if overlapping:  # a window must hold +-3 sigma of its column
            half = _check_half(max(half, int(np.ceil(3.0 * typical_sigma))), img.shape, "the fit window")
        else:  # narrow columns: +-3.5 sigma is plenty, and a smaller window is faster
            half = min(half, max(2, int(np.ceil(3.5 * typical_sigma))))
        result.parameters["window_px"] = 2 * half + 1
    if overlapping:
        labels = _group_columns(start, 0.95 * (2 * half + 1), max_group_size)
    else:
        labels = np.arange(total)
    # bucket the groups by size; singletons go through the plain window fit
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    group_size = counts[inverse]
    done = 0
    fits = []  # (local indices, fit dict)
    singles = np.flatnonzero(group_size == 1)
    for lo, hi in _chunks(len(singles), chunk_size):
        local = singles[lo:hi]
        fit = _fit_windows(img, start[local], half, sigma_px, elliptical, n_iter, poisson)
        fits.append((local, fit, start[local]))
        done += len(local)
        _report(progress, cancelled, done, total)
    group_id = np.full(total, -1, dtype=np.int64)
    for m in np.unique(group_size[group_size > 1]):
        local = np.flatnonzero(group_size == m)
        order = np.argsort(inverse[local], kind="stable")
        members = local[order].reshape(-1, m)
        group_id[members] = inverse[members]
        step = max(1, chunk_size // m)
        for lo, hi in _chunks(len(members), step):
            batch = members[lo:hi]
            fit = _fit_groups(img, start, batch, half, sigma_px, elliptical, n_iter, poisson)
            flat = batch.reshape(-1)
            fits.append((flat, fit, start[flat]))
            done += len(flat)
            _report(progress, cancelled, done, total)
    result.group[index] = group_id
    # statuses, fallbacks
    reasons = [_check_fit(fit, begin, half, img.shape) for local, fit, begin in fits]
    _flag_merged(fits, reasons, positions[index])
    for (local, fit, begin), why in zip(fits, reasons):
        good = why == ""
        cols = index[local]
        _store(result, cols[good], fit["positions"][good], fit["amplitude"][good], fit["sigma"][good],
               fit["background"][good], fit["uncertainty"][good], STATUS_CONVERGED)
        if elliptical:
            result.sigma_major_px[cols[good]] = fit["major"][good]
            result.sigma_minor_px[cols[good]] = fit["minor"][good]
            result.rotation_rad[cols[good]] = fit["rotation"][good]
        bad = ~good
        if bad.any():
            com_pos, amp, sig, bg, unc, ok, com_why = (a[local[bad]] for a in com)
            back = cols[bad]
            _store(result, back[ok], com_pos[ok], amp[ok], sig[ok], bg[ok], unc[ok], STATUS_FELL_BACK,
                   reason=[f"Gaussian fit failed ({r}); centre of mass used" for r in why[bad][ok]])
            result.reason[back[~ok]] = [f"Gaussian fit failed ({r}); {c}" for r, c in zip(why[bad][~ok], com_why[~ok])]
    return result


#: Method names accepted by :func:`refine_positions` (CLI and widget).
REFINE_METHODS = ("gaussian", "joint", "com")


def refine_positions(image, positions_rc, method: str = "gaussian", **options) -> RefineResult:
    """Refine with a method named as on the command line.

    Parameters
    ----------
    image, positions_rc
        As for :func:`refine_gaussian`.
    method : {"gaussian", "joint", "com"}
        Gaussian fit; Gaussian fit with overlapping columns fitted jointly;
        centre of mass.
    **options
        Passed on (``dark``, ``progress``, ``cancelled``, ``window_px`` or
        ``radius_px``...).

    Returns
    -------
    RefineResult
    """
    if method == "com":
        return refine_center_of_mass(image, positions_rc, **options)
    if method in ("gaussian", "joint"):
        return refine_gaussian(image, positions_rc, overlapping=(method == "joint"), **options)
    raise ValueError(f"unknown refinement method {method!r}; use one of {', '.join(REFINE_METHODS)}")


#: Two fits closer than this (px) that started farther apart than twice it have
#: converged onto one peak: an unresolved close pair fitted independently.
_MERGED_PX = 1.0


def _flag_merged(fits, reasons, start) -> None:
    """Mark fits that collapsed onto another column's peak (in ``reasons``, in place)."""
    from scipy.spatial import cKDTree

    local = np.concatenate([f[0] for f in fits]) if fits else np.zeros(0, dtype=int)
    if len(local) < 2:
        return
    fitted = np.concatenate([f[1]["positions"] for f in fits])
    ok = np.concatenate(reasons) == ""
    candidates = np.flatnonzero(ok)
    if len(candidates) < 2:
        return
    pairs = cKDTree(fitted[candidates]).query_pairs(_MERGED_PX, output_type="ndarray")
    if not len(pairs):
        return
    a, b = candidates[pairs[:, 0]], candidates[pairs[:, 1]]
    apart = np.hypot(*(start[local[a]] - start[local[b]]).T) > 2 * _MERGED_PX
    merged = np.zeros(len(local), dtype=bool)
    merged[a[apart]] = True
    merged[b[apart]] = True
    offset = 0
    for reason in reasons:
        flags = merged[offset : offset + len(reason)]
        reason[flags] = "converged onto the same peak as another column; fit close pairs with overlapping=True"
        offset += len(reason)


def _estimate_sigma(img, positions, half) -> float:
    anchor = np.rint(positions).astype(np.int64)
    win = extract_windows(img, anchor, half)
    _, _, sigma = _initial_guess(win, positions - anchor, None)
    return float(sigma[0]) if len(sigma) else 0.25 * half


# ----------------------------------------------------------------------------
# Cramér-Rao lower bound
# ----------------------------------------------------------------------------


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
