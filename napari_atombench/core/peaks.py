"""Column spacing, seed points and click snapping for hand labelling.

* :func:`estimate_separation` - nearest-column distance from the image's
  autocorrelation (no positions needed).
* :func:`find_seeds` - smoothed local maxima (or minima for dark, ABF-like
  columns) at least about half a separation apart.
* :func:`snap_to_peak` - the sub-pixel peak near a click.

Positions are ``(N, 2)`` float arrays of (row, col) pixels. This module
imports neither Qt nor napari.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._windows import extract_windows, outside_image
from .geometry import resample
from .io import as_image_2d

__all__ = ["estimate_separation", "find_seeds", "one_per_plateau", "snap_to_peak"]

# The autocorrelation is computed on a central crop at most this wide: a few
# hundred pixels hold tens of unit cells, enough for a stable spacing.
_MAX_ACF_CROP_PX = 512
# The seed spacing needs a crop holding a few hundred columns, not more: this many
# trial separations across (clipped to the autocorrelation crop).
_SEED_CROP_SEPARATIONS = 16


def one_per_plateau(is_max: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of one pixel per connected patch of a local-maximum mask.

    A flat plateau (or two pixels that tie exactly, as a column centred between
    pixels gives) yields several equal maxima; each patch counts once, at the
    pixel nearest its centre. Patches are in the order of their first pixel
    (row-major), so a mask of isolated pixels comes back as ``np.nonzero`` gives it.
    """
    labels, n = ndimage.label(is_max)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    centres = np.rint(np.asarray(ndimage.center_of_mass(is_max, labels, np.arange(1, n + 1)))).astype(np.int64)
    return centres[:, 0], centres[:, 1]


def _parabolic_offset(minus: np.ndarray, centre: np.ndarray, plus: np.ndarray) -> np.ndarray:
    """Vertex of the parabola through three equally spaced samples, in [-0.5, 0.5]."""
    denominator = minus - 2.0 * centre + plus
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = 0.5 * (minus - plus) / denominator
    offset = np.where(np.isfinite(offset) & (denominator < 0), offset, 0.0)
    return np.clip(offset, -0.5, 0.5)


def estimate_separation(image, *, dark: bool = False, min_separation_px: float = 2.0) -> float:
    """Estimate the nearest-neighbour distance between atom columns, in pixels.

    Two estimates are combined. The autocorrelation (below) is precise on
    lattices but misses neighbours whose peaks merge with its central peak
    (Si [110] dumbbells: it finds the dumbbell-to-dumbbell distance) and has
    no nearest-neighbour peak at all on sparse, non-periodic images (single
    atoms). The seed spacing (:func:`_seed_separation`) finds the nearest
    distance directly: it is used when it is clearly shorter than the
    autocorrelation's, or when the autocorrelation finds nothing. It looks at
    a central crop 16 trial separations across (a few hundred columns).

    The image (a central crop of at most 512 x 512 pixels) is flattened by
    subtracting a broad Gaussian blur, lightly smoothed against shot noise and
    autocorrelated (zero-padded FFT, so the correlation is not circular).
    Every column pair contributes a peak at its separation vector, so the
    nearest significant off-centre maximum of the autocorrelation is the
    nearest column distance, whatever the lattice (square, rectangular,
    hexagonal, with columns of different brightness). "Significant" means at
    least 5 % of the strongest off-centre peak above the
    autocorrelation's floor, which keeps weak
    cross-sublattice peaks (e.g. W-S2 in WS2) and rejects noise ripples.
    The peak is refined to sub-pixel precision with a parabola per axis.

    Parameters
    ----------
    image : array_like, shape (H, W)
    dark : bool
        Columns are dark on a bright background (annular bright field). The
        autocorrelation is the same for an inverted image; the flag is
        accepted for symmetry with :func:`find_seeds`.
    min_separation_px : float
        Peaks closer to the origin than this are ignored (the tail of the
        central peak).

    Returns
    -------
    float
        Separation in pixels.

    Raises
    ------
    ValueError
        For an invalid image, or when no periodic structure is found.
    """
    img = as_image_2d(image, name="image").astype(np.float64)
    if dark:
        img = -img
    height, width = img.shape
    if min(height, width) < 8:
        raise ValueError(f"image of shape {img.shape} is too small to estimate a column separation")
    crop = central_crop(img, _MAX_ACF_CROP_PX)
    try:
        from_acf = _acf_separation(crop, min_separation_px)
    except ValueError:
        if not np.any(np.abs(crop - crop.mean()) > 1e-9 * (np.abs(crop).max() + 1e-30)):
            raise
        from_acf = None
    upper = min(crop.shape) / 4.0 if from_acf is None else 1.25 * from_acf
    from_seeds = _seed_separation(central_crop(crop, _SEED_CROP_SEPARATIONS * upper),
                                  max(2.0 * min_separation_px, 4.0), upper)
    if from_seeds is not None and (from_acf is None or from_seeds < _SEED_OVERRIDES_ACF * from_acf):
        return from_seeds
    if from_acf is None:
        raise ValueError("no periodic structure found in the image; give the separation by hand")
    return from_acf


#: a seed spacing / trial separation ratio this high means the maxima are columns, not noise
_CLEAR_RISE = 1.2
#: the seed spacing replaces the autocorrelation's distance when shorter than this fraction of it
_SEED_OVERRIDES_ACF = 0.8


def _seed_spacing_px(img: np.ndarray, separation_px: float, threshold: float) -> float:
    """Median nearest-neighbour distance of the local maxima found for a trial separation."""
    smooth = ndimage.gaussian_filter(img, _smoothing_sigma(separation_px))
    # a square footprint (separable, fast) is enough for a spacing estimate
    size = 2 * int(0.45 * separation_px) + 1
    is_max = smooth == ndimage.maximum_filter(smooth, size=size, mode="nearest")
    background = np.percentile(smooth, 5)
    is_max &= smooth > background + threshold * (smooth.max() - background)
    peaks = np.argwhere(is_max).astype(np.float64)
    if len(peaks) < 3:
        return float("nan")
    from scipy.spatial import cKDTree

    distance, _ = cKDTree(peaks).query(peaks, k=2)
    return float(np.median(distance[:, 1]))


def _seed_separation(img: np.ndarray, lower: float, upper: float, steps: int = 14) -> float | None:
    """The self-consistent seed spacing: the trial separation d where the maxima found are d apart.

    Below the columns' scale, noise maxima lie closer than the trial separation
    (spacing / d < 1); at the columns' scale the maxima are the columns and
    lie at least d apart (clearly above 1: at least :data:`_CLEAR_RISE`, as
    noise makes the ratio flicker around 1); past the nearest distance, neighbours are
    suppressed and the ratio falls below 1 again. The first fall after a rise
    is the nearest column distance (interpolated in log d). Sparse images
    (single atoms) never rise clearly above 1: :func:`_sparse_separation`.
    """
    if not upper > lower:
        return None
    trials = np.geomspace(lower, upper, steps)
    ratio = np.array([_seed_spacing_px(img, d, 0.1) / d for d in trials])
    above = np.flatnonzero(ratio >= _CLEAR_RISE)
    if len(above):
        after = np.flatnonzero((np.arange(len(ratio)) > above[0]) & (ratio < 1.0))
        if len(after):
            j = after[0]
            r0, r1 = np.log(ratio[j - 1]), np.log(ratio[j])
            t = r0 / (r0 - r1)
            return float(np.exp((1 - t) * np.log(trials[j - 1]) + t * np.log(trials[j])))
        return None
    return _sparse_separation(img)


#: significance of a single atom over the background, in robust standard deviations
_SPARSE_SIGMAS = 6.0


def _sparse_separation(img: np.ndarray) -> float | None:
    """Median nearest-neighbour distance of the significant maxima of a sparse image.

    A lightly smoothed (1 px), background-flattened image's local maxima
    (5 x 5) that stand :data:`_SPARSE_SIGMAS` robust standard deviations
    (1.4826 MAD, dominated by the background when atoms are few) above its
    median.
    """
    high_pass = ndimage.gaussian_filter(img, 1.0) - ndimage.gaussian_filter(img, 8.0)
    centre = np.median(high_pass)
    sigma = 1.4826 * np.median(np.abs(high_pass - centre))
    if not sigma > 0:
        return None
    is_max = (high_pass == ndimage.maximum_filter(high_pass, size=5)) & (high_pass > centre + _SPARSE_SIGMAS * sigma)
    peaks = np.argwhere(is_max).astype(np.float64)
    if len(peaks) < 3:
        return None
    from scipy.spatial import cKDTree

    distance, _ = cKDTree(peaks).query(peaks, k=2)
    return float(np.median(distance[:, 1]))


def _acf_separation(crop: np.ndarray, min_separation_px: float) -> float:
    """Nearest significant off-centre autocorrelation peak of a (cropped) image, in pixels."""
    crop_h, crop_w = crop.shape
    flat = ndimage.gaussian_filter(crop, 1.0) - _broad_blur(crop, max(crop.shape) / 8.0)
    flat -= flat.mean()
    if not np.any(np.abs(flat) > 1e-9 * (np.abs(crop).max() + 1e-30)):
        raise ValueError("the image has no contrast; give the separation by hand")
    spectrum = np.fft.rfft2(flat, s=(2 * crop_h, 2 * crop_w))
    acf = np.fft.irfft2(np.abs(spectrum) ** 2, s=(2 * crop_h, 2 * crop_w))
    # normalise by the overlap area so long lags are not penalised
    acf = np.fft.fftshift(acf)
    centre = np.array([crop_h, crop_w])
    # only lags up to half the crop are trustworthy
    half_h, half_w = crop_h // 2, crop_w // 2
    acf = acf[centre[0] - half_h : centre[0] + half_h + 1, centre[1] - half_w : centre[1] + half_w + 1]
    lag_r = np.arange(-half_h, half_h + 1)[:, None]
    lag_c = np.arange(-half_w, half_w + 1)[None, :]
    overlap = (crop_h - np.abs(lag_r)) * (crop_w - np.abs(lag_c))
    acf = acf / overlap
    distance = np.hypot(lag_r, lag_c)
    is_max = (acf == ndimage.maximum_filter(acf, size=3)) & (distance >= min_separation_px)
    # drop the border row/column where the 3x3 test is incomplete
    is_max[[0, -1], :] = False
    is_max[:, [0, -1]] = False
    rows, cols = np.nonzero(is_max)
    if len(rows) == 0:
        raise ValueError("no periodic structure found in the image; give the separation by hand")
    # heights above the autocorrelation's floor (a zero-mean image has negative lags)
    heights = acf[rows, cols] - acf.min()
    if not heights.max() > 0:
        raise ValueError("no periodic structure found in the image; give the separation by hand")
    strong = heights >= 0.05 * heights.max()
    rows, cols = rows[strong], cols[strong]
    nearest = int(np.argmin(distance[rows, cols]))
    r, c = rows[nearest], cols[nearest]
    dr = _parabolic_offset(acf[r - 1, c], acf[r, c], acf[r + 1, c])
    dc = _parabolic_offset(acf[r, c - 1], acf[r, c], acf[r, c + 1])
    return float(np.hypot(lag_r[r, 0] + dr, lag_c[0, c] + dc))


def central_crop(image: np.ndarray, side_px: float, min_side_px: int = 128) -> np.ndarray:
    """The central part of ``image``, at most ``side_px`` (but not under ``min_side_px``) on each side."""
    side = max(int(np.ceil(side_px)), int(min_side_px))
    height, width = image.shape
    crop_h, crop_w = min(height, side), min(width, side)
    r0, c0 = (height - crop_h) // 2, (width - crop_w) // 2
    return image[r0 : r0 + crop_h, c0 : c0 + crop_w]


#: a broad blur is computed on a grid this many times coarser than its sigma
_BROAD_BLUR_SAMPLES_PER_SIGMA = 8


def _broad_blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of ``img`` at a scale of tens of pixels, for background removal.

    A direct filter costs O(sigma) per pixel (0.1 s for sigma 64 on 512²). The
    blurred image varies on the scale of sigma, so it is computed on a grid
    sigma/8 coarser (area-averaged by the one resampler, whose triangle filter
    adds under 1 % to sigma) and interpolated back.
    """
    factor = int(sigma_px // _BROAD_BLUR_SAMPLES_PER_SIGMA)
    if factor < 2:
        return ndimage.gaussian_filter(img, sigma_px)
    coarse_shape = tuple(max(1, int(np.ceil(n / factor))) for n in img.shape)
    coarse = ndimage.gaussian_filter(resample(img, coarse_shape), sigma_px / factor)
    return resample(coarse, img.shape).astype(img.dtype)


def _smoothing_sigma(separation_px: float) -> float:
    # A column's probe sigma is typically 1/8 to 1/5 of the separation; smoothing
    # at about that scale is the matched filter for it.
    return float(np.clip(separation_px / 8.0, 0.7, 4.0))


def find_seeds(
    image,
    separation_px: float | None = None,
    threshold: float = 0.1,
    *,
    dark: bool = False,
    smooth_sigma_px: float | None = None,
    exclude_border_px: int = 0,
) -> np.ndarray:
    """Seed points for atom columns: local maxima of the smoothed image.

    Parameters
    ----------
    image : array_like, shape (H, W)
    separation_px : float, optional
        Nearest column distance; :func:`estimate_separation` when omitted.
        Two seeds are at least ``0.45 * separation_px`` apart.
    threshold : float
        Keep maxima brighter than ``background + threshold * (max - background)``
        of the smoothed image, with the background its 5th percentile.
    dark : bool
        Look for dark columns on a bright background (annular bright field):
        the image is inverted first.
    smooth_sigma_px : float, optional
        Gaussian smoothing before the search; ``separation_px / 8`` (clipped
        to 0.7-4 px) when omitted.
    exclude_border_px : int
        Drop seeds closer than this to the image border.

    Returns
    -------
    ndarray of float64, shape (N, 2)
        (row, col) seeds with a sub-pixel parabolic correction, sorted by row
        then column.
    """
    img = as_image_2d(image, name="image").astype(np.float64)
    if dark:
        img = -img
    if separation_px is None:
        separation_px = estimate_separation(img)
    if not (np.isfinite(separation_px) and separation_px > 0):
        raise ValueError(f"separation_px must be a positive number, not {separation_px!r}")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), not {threshold!r}")
    sigma = _smoothing_sigma(separation_px) if smooth_sigma_px is None else float(smooth_sigma_px)
    smooth = ndimage.gaussian_filter(img, sigma) if sigma > 0 else img
    # a disk (not a square) footprint: its corners would reach into the tails
    # of the neighbours of a weak column (S2 next to W)
    radius = max(1.0, 0.45 * separation_px)
    reach = int(np.floor(radius))
    yy, xx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    footprint = yy**2 + xx**2 <= radius**2
    local_max = smooth == ndimage.maximum_filter(smooth, footprint=footprint, mode="nearest")
    background = np.percentile(smooth, 5)
    level = background + threshold * (smooth.max() - background)
    local_max &= smooth > level
    r, c = one_per_plateau(local_max)
    if len(r) == 0:
        return np.zeros((0, 2), dtype=np.float64)
    height, width = smooth.shape
    rm, rp = np.clip(r - 1, 0, height - 1), np.clip(r + 1, 0, height - 1)
    cm, cp = np.clip(c - 1, 0, width - 1), np.clip(c + 1, 0, width - 1)
    centre = smooth[r, c]
    dr = _parabolic_offset(smooth[rm, c], centre, smooth[rp, c])
    dc = _parabolic_offset(smooth[r, cm], centre, smooth[r, cp])
    seeds = np.column_stack([r + dr, c + dc])
    if exclude_border_px > 0:
        b = exclude_border_px
        keep = (seeds[:, 0] >= b) & (seeds[:, 0] <= height - 1 - b) & (seeds[:, 1] >= b) & (seeds[:, 1] <= width - 1 - b)
        seeds = seeds[keep]
    order = np.lexsort((seeds[:, 1], seeds[:, 0]))
    return seeds[order]


def snap_to_peak(
    image,
    point_rc,
    radius_px: float,
    *,
    dark: bool = False,
    smooth_sigma_px: float = 1.0,
) -> np.ndarray:
    """Move clicked points onto the brightest (or darkest) column within ``radius_px``.

    Each point's neighbourhood is smoothed (Gaussian, ``smooth_sigma_px``),
    its maximum within the disk of ``radius_px`` is found and refined to
    sub-pixel precision with a parabola per axis.

    Parameters
    ----------
    image : array_like, shape (H, W)
    point_rc : array_like, shape (2,) or (N, 2)
        (row, col) clicks; they must lie inside the image.
    radius_px : float
        Search radius (about half the column separation).
    dark : bool
        Snap to the darkest point instead (annular bright field).
    smooth_sigma_px : float

    Returns
    -------
    ndarray of float64, shape (2,) or (N, 2)
        Same shape as ``point_rc``.

    Raises
    ------
    ValueError
        For a point outside the image or not finite, or a radius below 0.5 px.
    """
    img = as_image_2d(image, name="image")
    points = np.asarray(point_rc, dtype=np.float64)
    single = points.ndim == 1
    points = points.reshape(-1, 2)
    if len(points) == 0:
        return points.copy()
    if not np.isfinite(points).all():
        raise ValueError("snap_to_peak: a point is not finite")
    height, width = img.shape
    outside = outside_image(points, img.shape)
    if outside.any():
        raise ValueError(
            f"snap_to_peak: point {points[np.argmax(outside)].tolist()} is outside the {height}x{width} image"
        )
    if not radius_px >= 0.5:
        raise ValueError(f"radius_px must be at least 0.5, not {radius_px!r}")
    half = int(np.ceil(radius_px)) + 1
    centre = np.rint(points).astype(np.int64)
    margin = half + int(np.ceil(3 * smooth_sigma_px))
    win = extract_windows(img, centre, margin)
    values = -win.values if dark else win.values
    if smooth_sigma_px > 0:
        values = ndimage.gaussian_filter(values, (0, smooth_sigma_px, smooth_sigma_px), mode="nearest")
    dy = win.rows[:, :, None] - points[:, 0, None, None]
    dx = win.cols[:, None, :] - points[:, 1, None, None]
    inside = (dy**2 + dx**2 <= radius_px**2) & win.valid
    masked = np.where(inside, values, -np.inf)
    flat = masked.reshape(len(points), -1).argmax(axis=1)
    size = 2 * margin + 1
    ir, ic = np.divmod(flat, size)
    n = np.arange(len(points))
    irm, irp = np.clip(ir - 1, 0, size - 1), np.clip(ir + 1, 0, size - 1)
    icm, icp = np.clip(ic - 1, 0, size - 1), np.clip(ic + 1, 0, size - 1)
    peak = values[n, ir, ic]
    dr = _parabolic_offset(values[n, irm, ic], peak, values[n, irp, ic])
    dc = _parabolic_offset(values[n, ir, icm], peak, values[n, ir, icp])
    snapped = np.column_stack([win.rows[n, ir] + dr, win.cols[n, ic] + dc])
    snapped[:, 0] = np.clip(snapped[:, 0], 0, height - 1)
    snapped[:, 1] = np.clip(snapped[:, 1], 0, width - 1)
    return snapped[0] if single else snapped
