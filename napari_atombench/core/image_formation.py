"""Image formation for the simulator: Gaussian probe images of columns, scan distortions, smooth noise."""

from __future__ import annotations

import numpy as np

__all__ = ["FWHM_PER_SIGMA", "render_columns"]

#: FWHM of a Gaussian = this many sigma.
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


# over 80 lines only by its numpydoc docstring (the code is under 80)
def render_columns(
    shape: tuple[int, int],
    positions_rc: np.ndarray,
    amplitudes: np.ndarray,
    sigma_px: float | np.ndarray,
    *,
    background: float = 0.0,
    dx: np.ndarray | None = None,
    dy: np.ndarray | None = None,
    return_centroids: bool = False,
):
    """Sum of isotropic 2D Gaussians sampled at (optionally distorted) pixel centres.

    Each Gaussian is evaluated in a window of ±5 sigma (plus the largest
    distortion) around its centre, so the cost grows with the number of
    columns, not the image area squared.

    Parameters
    ----------
    shape : (rows, cols)
    positions_rc : ndarray, shape (N, 2)
        Specimen positions (row, col) in pixels.
    amplitudes : ndarray, shape (N,)
        Peak heights.
    sigma_px : float or ndarray, shape (N,)
        One sigma for all columns, or one per column.
    background : float
    dx : ndarray, shape (rows, cols), optional
        Fast-scan (column) offset of the beam at each pixel, in pixels.
    dy : ndarray, shape (rows,), optional
        Slow-scan (row) offset of the beam for each scan line, in pixels.
    return_centroids : bool
        Also return the centroid of each Gaussian's own rendered contribution
        (its apparent position in the distorted image; the window is not
        clipped at the image border for this).

    Returns
    -------
    image : ndarray of float32, shape ``shape``
    centroids_rc : ndarray of float64, shape (N, 2)
        Only with ``return_centroids=True``.
    """
    rows, cols = shape
    image = np.full(shape, background, dtype=np.float64)
    positions_rc = np.asarray(positions_rc, dtype=float).reshape(-1, 2)
    amplitudes = np.broadcast_to(np.asarray(amplitudes, dtype=float), (len(positions_rc),))
    distorted = dx is not None or dy is not None
    if dx is None:
        dx = np.zeros(shape)
    if dy is None:
        dy = np.zeros(rows)
    if np.ndim(sigma_px):  # one sigma per column: broadcast along the window axes
        sigma_px = np.asarray(sigma_px, dtype=float).reshape(-1, 1)
        if len(sigma_px) != len(positions_rc):
            raise ValueError(f"sigma_px has {len(sigma_px)} values for {len(positions_rc)} columns")
    base_half = int(np.ceil(5.0 * np.max(sigma_px, initial=0.0)))
    spread = 0.0
    if distorted:
        # the window is centred on the distorted position, so it only has to cover
        # how much the offsets vary within it (bounded by their full range)
        full_range = float(np.ptp(dx)) + float(np.ptp(dy))
        local = base_half * (
            float(np.max(np.abs(np.diff(dy)), initial=0.0))
            + float(np.max(np.abs(np.diff(dx, axis=0)), initial=0.0))
            + float(np.max(np.abs(np.diff(dx, axis=1)), initial=0.0))
        )
        spread = min(full_range, local) + 1.0
    half = int(np.ceil(base_half + spread))
    offsets = np.arange(-half, half + 1)
    inv2s2 = 0.5 / sigma_px**2
    n = len(positions_rc)
    if n == 0:
        out = image.astype(np.float32)
        return (out, positions_rc.copy()) if return_centroids else out
    r, c = positions_rc[:, 0], positions_rc[:, 1]
    # all windows at once: (N, w) row/col indices, (N, w, w) values
    if distorted:
        r_guess = r - dy[np.clip(np.round(r).astype(int), 0, rows - 1)]
    else:
        r_guess = r
    rr = np.round(r_guess).astype(int)[:, None] + offsets[None, :]
    rr_field = np.clip(rr, 0, rows - 1)
    if distorted:
        c_idx = np.clip(np.round(c).astype(int), 0, cols - 1)
        c_guess = c - dx[rr_field[:, half], c_idx]
    else:
        c_guess = c
    cc = np.round(c_guess).astype(int)[:, None] + offsets[None, :]
    if distorted:
        cc_field = np.clip(cc, 0, cols - 1)
        gr = np.exp(-inv2s2 * (rr + dy[rr_field] - r[:, None]) ** 2)
        shifted = cc[:, None, :] + dx[rr_field[:, :, None], cc_field[:, None, :]]
        inv2s2_3d = inv2s2[:, :, None] if np.ndim(inv2s2) else inv2s2
        window = gr[:, :, None] * np.exp(-inv2s2_3d * (shifted - c[:, None, None]) ** 2)
    else:
        gr = np.exp(-inv2s2 * (rr - r[:, None]) ** 2)
        gc = np.exp(-inv2s2 * (cc - c[:, None]) ** 2)
        window = gr[:, :, None] * gc[:, None, :]
    # accumulate on a canvas padded so that every window fits, then crop
    lo_r, hi_r = min(int(rr.min()), 0), max(int(rr.max()) + 1, rows)
    lo_c, hi_c = min(int(cc.min()), 0), max(int(cc.max()) + 1, cols)
    width = hi_c - lo_c
    flat = ((rr - lo_r) * width)[:, :, None] + (cc - lo_c)[:, None, :]
    values = window * np.asarray(amplitudes, dtype=float)[:, None, None]
    canvas = np.bincount(flat.ravel(), weights=values.ravel(), minlength=(hi_r - lo_r) * width)
    image += canvas.reshape(hi_r - lo_r, width)[-lo_r : -lo_r + rows, -lo_c : -lo_c + cols]
    if not return_centroids:
        return image.astype(np.float32)
    if distorted:
        total = np.maximum(window.sum(axis=(1, 2)), 1e-300)
        centroids = np.column_stack(
            [(window.sum(axis=2) * rr).sum(1) / total, (window.sum(axis=1) * cc).sum(1) / total]
        )
    else:
        centroids = positions_rc.copy()
    return image.astype(np.float32), centroids



def _scan_distortion(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    random_drift: float,
    flyback_error: float,
    line_jitter: float,
    flyback_decay_fraction: float = 0.125,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Beam offsets ``dx`` (rows, cols) and ``dy`` (rows,) in pixels, or None, None."""
    rows, cols = shape
    if random_drift <= 0 and flyback_error <= 0 and line_jitter <= 0:
        return None, None
    dx = np.zeros(shape)
    dy = np.zeros(rows)
    if random_drift > 0:
        # a smoothed random walk over scan lines (slow, correlated specimen drift), scaled
        # so that its standard deviation over the frame is ``random_drift`` px
        from scipy.ndimage import gaussian_filter1d

        walk = np.cumsum(rng.normal(size=(rows, 2)), axis=0)
        # specimen drift is slow: smooth out line-to-line roughness (that is line jitter)
        walk = gaussian_filter1d(walk, max(rows / 10.0, 1.0), axis=0, mode="nearest")
        walk -= walk.mean(axis=0)
        walk /= np.maximum(walk.std(axis=0), 1e-12)
        dx += random_drift * walk[:, 1:2]
        dy += random_drift * walk[:, 0]
    if line_jitter > 0:
        # independent offset of each scan line along the fast-scan direction
        dx += rng.normal(0.0, line_jitter, size=(rows, 1))
    if flyback_error > 0:
        # the beam has not settled after the flyback: an offset at the start of
        # each line that decays exponentially along the line
        amplitude = rng.normal(0.0, flyback_error, size=(rows, 1))
        decay = np.exp(-np.arange(cols) / max(flyback_decay_fraction * cols, 1.0))
        dx += amplitude * decay[None, :]
    return dx, dy


def _smooth_noise(shape: tuple[int, int], sigma_px: float, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    field_ = gaussian_filter(rng.normal(size=shape), max(sigma_px, 0.5), mode="wrap")
    return field_ / max(field_.std(), 1e-12)


