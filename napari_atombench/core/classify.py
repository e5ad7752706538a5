"""Sort atom columns into sublattices by their intensity.

:func:`classify_columns` measures one or two features per column (integrated
intensity in an aperture, peak height, or the width and amplitude of a Gaussian
fit) and fits a Gaussian mixture to them; with ``n_classes="auto"`` the number
of classes is the one with the lowest Bayesian information criterion (BIC).
Classes are numbered by increasing mean feature (class 0: the dimmest columns).

The mixture is a small expectation-maximisation fit in NumPy (full covariance,
k-means++ starts, several restarts), so no scikit-learn is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .contrast import check_contrast, estimate_polarity, to_bright
from .geometry import nearest_neighbour_distances_px

FEATURES = ("integrated_intensity", "peak", "sigma")

#: covariance floor relative to each feature's variance (keeps EM away from
#: degenerate one-point components)
_REG = 1e-4


@dataclass
class ClassifyResult:
    """Classes of columns and what they were found from.

    Attributes
    ----------
    classes : ndarray of int, shape (N,)
        Class per column, 0 = lowest mean feature.
    n_classes : int
    feature : str
    features : ndarray, shape (N, D)
        The measured features (D = 1, or 2 for ``sigma``: sigma_px and amplitude).
    means, stds : ndarray, shape (n_classes, D)
        Per-class mean and standard deviation of the features.
    counts : ndarray of int, shape (n_classes,)
    bic : dict of int -> float
        BIC of every class count tried.
    aperture_radius_px : float or None
    contrast_used : {"bright", "dark"}
        The polarity the image was read with (dark: mirrored to bright first).
    """

    classes: np.ndarray
    n_classes: int
    feature: str
    features: np.ndarray
    means: np.ndarray
    stds: np.ndarray
    counts: np.ndarray
    bic: dict = field(default_factory=dict)
    aperture_radius_px: float | None = None
    contrast_used: str = "bright"


# ------------------------------------------------------------------------- features


def aperture_sums(image: np.ndarray, positions_rc: np.ndarray, radius_px: float) -> np.ndarray:
    """Sum of ``image`` over a disk of ``radius_px`` around each position (sub-pixel
    centres). Pixels of a disk cut by the image border take the value of the pixel
    mirrored through the column centre (columns are point-symmetric), so border
    columns are not mistaken for weaker ones."""
    image = np.asarray(image, dtype=np.float64)
    positions_rc = np.asarray(positions_rc, dtype=np.float64).reshape(-1, 2)
    h = int(np.ceil(radius_px))
    off = np.arange(-h, h + 1)
    rows = np.round(positions_rc[:, 0]).astype(int)[:, None, None] + off[None, :, None] + 0 * off[None, None, :]
    cols = np.round(positions_rc[:, 1]).astype(int)[:, None, None] + 0 * off[None, :, None] + off[None, None, :]
    disk = (rows - positions_rc[:, 0, None, None]) ** 2 + (cols - positions_rc[:, 1, None, None]) ** 2 <= radius_px**2
    outside = (rows < 0) | (rows >= image.shape[0]) | (cols < 0) | (cols >= image.shape[1])
    rows = np.where(outside, np.round(2 * positions_rc[:, 0, None, None] - rows).astype(int), rows)
    cols = np.where(outside, np.round(2 * positions_rc[:, 1, None, None] - cols).astype(int), cols)
    values = image[np.clip(rows, 0, image.shape[0] - 1), np.clip(cols, 0, image.shape[1] - 1)]
    return np.where(disk, values, 0.0).sum(axis=(1, 2))


def column_features(image, positions_rc, feature: str = "integrated_intensity", *,
                    aperture_radius_px: float | None = None) -> tuple[np.ndarray, float | None]:
    """Per-column features, shape (N, D), and the aperture radius used (or None).

    ``integrated_intensity``: aperture sum above the image's 1st-percentile level,
    radius 0.4 × the median nearest-column distance unless given; ``peak``: the
    image smoothed by a 1 px Gaussian at the nearest pixel; ``sigma``: sigma and
    amplitude of a Gaussian fit (:func:`~napari_atombench.core.refine.refine_gaussian`).
    """
    from scipy.ndimage import gaussian_filter

    image = np.asarray(image, dtype=np.float64)
    positions = np.asarray(positions_rc, dtype=np.float64).reshape(-1, 2)
    if feature == "integrated_intensity":
        radius = aperture_radius_px
        if radius is None:
            radius = 0.4 * float(np.median(nearest_neighbour_distances_px(positions)))
        if not np.isfinite(radius) or radius <= 0:
            raise ValueError(f"aperture_radius_px must be > 0, got {radius}")
        level = float(np.percentile(image, 1))
        return aperture_sums(image - level, positions, radius)[:, None], float(radius)
    if aperture_radius_px is not None:
        raise ValueError(f"aperture_radius_px applies to feature 'integrated_intensity', not {feature!r}")
    if feature == "peak":
        smooth = gaussian_filter(image, 1.0)
        r = np.clip(np.round(positions[:, 0]).astype(int), 0, image.shape[0] - 1)
        c = np.clip(np.round(positions[:, 1]).astype(int), 0, image.shape[1] - 1)
        return smooth[r, c][:, None], None
    if feature == "sigma":
        from .refine import refine_gaussian

        fit = refine_gaussian(image, positions)
        sig = np.where(np.isfinite(fit.sigma_px), fit.sigma_px, np.nanmedian(fit.sigma_px))
        amp = np.where(np.isfinite(fit.amplitude), fit.amplitude, np.nanmedian(fit.amplitude))
        return np.column_stack([sig, amp]), None
    raise ValueError(f"feature must be one of {', '.join(FEATURES)}; got {feature!r}")


# --------------------------------------------------------------------- mixture model


def _log_gauss(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    d = x.shape[1]
    chol = np.linalg.cholesky(cov)
    z = np.linalg.solve(chol, (x - mean).T)
    return -0.5 * (z**2).sum(0) - np.log(np.diag(chol)).sum() - 0.5 * d * np.log(2 * np.pi)


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d2 = np.min([((x - c) ** 2).sum(1) for c in centres], axis=0)
        p = d2 / d2.sum() if d2.sum() > 0 else None
        centres.append(x[rng.choice(len(x), p=p)])
    return np.array(centres)


def fit_gmm(x: np.ndarray, k: int, *, n_init: int = 5, n_iter: int = 200, seed: int = 0) -> dict:
    """Fit a ``k``-component full-covariance Gaussian mixture to ``x`` (N, D) by EM.

    Returns a dict with ``weights`` (k,), ``means`` (k, D), ``covs`` (k, D, D),
    ``log_likelihood`` (total), ``resp`` (N, k) and ``bic``.
    """
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    if k < 1 or k > n:
        raise ValueError(f"n_classes must be between 1 and the number of columns ({n}); got {k}")
    floor = _REG * np.diag(np.var(x, axis=0) + 1e-12)
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(n_init if k > 1 else 1):
        means = _kmeans_pp(x, k, rng)
        labels = np.argmin(((x[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
        resp = np.eye(k)[labels]
        prev = -np.inf
        for _ in range(n_iter):
            nk = resp.sum(0) + 1e-10
            weights = nk / n
            means = resp.T @ x / nk[:, None]
            covs = np.stack([(resp[:, j, None] * (x - means[j])).T @ (x - means[j]) / nk[j] + floor for j in range(k)])
            logp = np.column_stack([np.log(weights[j]) + _log_gauss(x, means[j], covs[j]) for j in range(k)])
            top = logp.max(1, keepdims=True)
            norm = top[:, 0] + np.log(np.exp(logp - top).sum(1))
            resp = np.exp(logp - norm[:, None])
            ll = float(norm.sum())
            if ll - prev < 1e-8 * abs(ll) + 1e-10:
                break
            prev = ll
        if best is None or ll > best["log_likelihood"]:
            best = dict(weights=weights, means=means, covs=covs, log_likelihood=ll, resp=resp)
    n_params = (k - 1) + k * d + k * d * (d + 1) / 2
    best["bic"] = float(-2.0 * best["log_likelihood"] + n_params * np.log(n))
    return best


# --------------------------------------------------------------------------- public


def _interior(positions: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Columns at least half a median nearest-column distance from the border."""
    margin = 0.5 * float(np.median(nearest_neighbour_distances_px(positions)))
    lo = positions.min(axis=1) >= margin
    hi = (positions[:, 0] <= shape[0] - 1 - margin) & (positions[:, 1] <= shape[1] - 1 - margin)
    return lo & hi


def classify_columns(image, positions_rc, n_classes: int | str = "auto", feature: str = "integrated_intensity", *,
                     max_classes: int = 5, aperture_radius_px: float | None = None, contrast: str = "auto",
                     seed: int = 0) -> ClassifyResult:
    """Sort columns into classes (sublattices / species) by a Gaussian mixture of a feature.

    Parameters
    ----------
    image : array_like, shape (H, W)
        The image the columns were found in.
    positions_rc : array_like, shape (N, 2)
        Column centres (row, col) in pixels.
    n_classes : int or "auto"
        Number of classes, or ``"auto"``: the count in 1..``max_classes`` with the lowest BIC.
    feature : {"integrated_intensity", "peak", "sigma"}
    max_classes : int
        Largest count tried by ``"auto"``.
    aperture_radius_px : float, optional
        Aperture radius for ``integrated_intensity`` (default 0.4 × median nearest-column distance).
    contrast : {"auto", "bright", "dark"}
        Column polarity. Features are measured on bright columns, so a dark-column
        (ABF/BF) image is mirrored in its range first; "auto" decides from the
        image at the columns' own spacing (:func:`~.contrast.estimate_polarity`).
    seed : int
        Seed of the mixture fit's starts.

    Returns
    -------
    ClassifyResult
    """
    positions = np.asarray(positions_rc, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != 2 or len(positions) < 2:
        raise ValueError(f"positions_rc must be an (N, 2) array with N >= 2; got shape {positions.shape}")
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D; got shape {image.shape}")
    if n_classes != "auto" and (isinstance(n_classes, str) or int(n_classes) < 1):
        raise ValueError(f"n_classes must be 'auto' or an integer >= 1; got {n_classes!r}")
    contrast = check_contrast(contrast)
    if contrast == "auto":
        contrast = estimate_polarity(image, float(np.median(nearest_neighbour_distances_px(positions)))).contrast
    image = to_bright(image, contrast)
    features, radius = column_features(image, positions, feature, aperture_radius_px=aperture_radius_px)
    # standardised so the covariance floor and k-means++ see every feature alike
    scale = np.where(features.std(0) > 0, features.std(0), 1.0)
    z = (features - features.mean(0)) / scale
    # columns on the border lack their neighbours' tails (and half their own profile
    # for peak/sigma): fitted on the interior ones, they would form classes of their own
    interior = _interior(positions, image.shape)
    fit_z = z[interior] if interior.sum() >= max(10, 2 * (max_classes if n_classes == "auto" else int(n_classes))) else z
    counts = range(1, min(int(max_classes), len(fit_z)) + 1) if n_classes == "auto" else [int(n_classes)]
    fits = {k: fit_gmm(fit_z, k, seed=seed) for k in counts}
    bic = {k: f["bic"] for k, f in fits.items()}
    k = min(bic, key=bic.get)
    fit = fits[k]
    order = np.argsort(fit["means"][:, 0])
    rank = np.empty(k, dtype=int)
    rank[order] = np.arange(k)
    logp = np.column_stack([np.log(fit["weights"][j]) + _log_gauss(z, fit["means"][j], fit["covs"][j]) for j in range(k)])
    classes = rank[np.argmax(logp, axis=1)]
    means = np.array([features[classes == j].mean(0) if np.any(classes == j) else np.full(features.shape[1], np.nan)
                      for j in range(k)])
    stds = np.array([features[classes == j].std(0) if np.any(classes == j) else np.full(features.shape[1], np.nan)
                     for j in range(k)])
    return ClassifyResult(classes=classes, n_classes=k, feature=feature, features=features, means=means, stds=stds,
                          counts=np.bincount(classes, minlength=k), bic=bic, aperture_radius_px=radius,
                          contrast_used=contrast)
