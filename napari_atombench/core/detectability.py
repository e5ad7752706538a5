"""Whether a simulated column can be seen at all: its matched-filter signal-to-noise ratio.

A column is *detectable* when an ideal observer who knows its shape could tell it
from the noise around it. Rose's criterion asks for a signal-to-noise ratio of
about 5 over the object's area; here that ratio is the one of a matched filter:
the column's own Gaussian profile ``g`` minus its mean over a disk of radius
3 σ (``h``, so a flat offset gives no response and the column is compared with
its surroundings), applied to

* the column itself: ``amplitude * Σ h g`` (the signal);
* shot noise (the Poisson variance of the clean image, in counts), read noise and
  any added Gaussian noise: variance ``Σ h² var`` around the column;
* the texture of an amorphous support, which the observer does not know: the
  variance of ``h`` correlated with the texture field over the image (clutter).

Neighbouring columns are part of the known structure and are not noise; whether
two columns are resolved is a separate question (the training sampler caps the
probe for it).

Seen is not yet placed: a benchmark scores a detection as a hit only within a
matching radius of its column. For a Gaussian column of width σ in white noise
the Cramér–Rao bound on its position is a per-axis standard deviation of
√2 σ / SNR, so the distance of even an efficient estimate from the true centre
exceeds ``R`` with probability ``exp(-R² SNR² / (4 σ²))``.
:func:`localisation_snr` turns that into the SNR a column needs to be placed
within ``R`` at a given confidence: 6.9 σ/Å (ideal filter; 5.2 σ/Å in
:func:`column_snr`'s terms) for 0.5 Å at 95 %, above Rose's 5 only for probes
broader than about 225 pm FWHM.

This module imports neither Qt nor napari.
"""

from __future__ import annotations

import numpy as np

from .geometry import nearest_neighbour_distances_px

__all__ = ["ROSE_SNR", "column_snr", "localisation_snr", "matched_filter", "recorded_column_snr", "unresolved"]

#: Rose's criterion: an object is seen reliably at a signal-to-noise ratio of about 5
ROSE_SNR = 5.0


def matched_filter(sigma_px: float) -> tuple[np.ndarray, np.ndarray]:
    """(g, h): a unit-peak Gaussian of ``sigma_px`` and its zero-mean matched filter,
    both on a square of side ``2 * ceil(3 sigma) + 1`` (h is zero outside the 3 σ disk)."""
    sigma_px = max(float(sigma_px), 0.3)
    half = int(np.ceil(3.0 * sigma_px))
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    d2 = offsets[:, None] ** 2 + offsets[None, :] ** 2
    g = np.exp(-0.5 * d2 / sigma_px**2)
    disk = d2 <= (3.0 * sigma_px) ** 2
    h = np.where(disk, g - g[disk].mean(), 0.0)
    return g, h


def column_snr(positions_rc: np.ndarray, amplitudes: np.ndarray, sigma_px: float, variance: np.ndarray,
               texture: np.ndarray | None = None) -> np.ndarray:
    """Matched-filter signal-to-noise ratio of each column.

    Parameters
    ----------
    positions_rc : ndarray, shape (N, 2)
        Column centres (row, col) in pixels; those outside the image use the
        variance at the nearest pixel inside it.
    amplitudes : ndarray, shape (N,)
        Peak height of each column above its surroundings, in the image's units
        (the sign does not matter: dark columns count as bright ones).
    sigma_px : float
        Gaussian sigma of the probe image of a column.
    variance : ndarray, shape (H, W)
        Per-pixel noise variance in the image's units squared (Poisson: the clean
        counts; plus read noise squared).
    texture : ndarray, shape (H, W), optional
        A random background the observer does not know (an amorphous support), in
        the image's units; its correlation with ``h`` is added to the noise.

    Returns
    -------
    ndarray of float64, shape (N,)
        ``inf`` where there is no noise at all.
    """
    from scipy.signal import fftconvolve

    positions_rc = np.asarray(positions_rc, dtype=float).reshape(-1, 2)
    amplitudes = np.abs(np.broadcast_to(np.asarray(amplitudes, dtype=float), (len(positions_rc),)))
    g, h = matched_filter(sigma_px)
    gain, h2 = float((h * g).sum()), float((h**2).sum())
    local = fftconvolve(np.asarray(variance, dtype=np.float64), h**2 / h2, mode="same")
    rows, cols = local.shape
    r = np.clip(np.round(positions_rc[:, 0]).astype(int), 0, rows - 1)
    c = np.clip(np.round(positions_rc[:, 1]).astype(int), 0, cols - 1)
    noise2 = h2 * np.maximum(local[r, c], 0.0)
    if texture is not None and np.any(texture):
        response = fftconvolve(np.asarray(texture, dtype=np.float64), h[::-1, ::-1], mode="same")
        half = h.shape[0] // 2
        inner = response[half:-half, half:-half] if min(rows, cols) > 4 * half else response
        noise2 = noise2 + float(inner.var())
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(noise2 > 0, amplitudes * gain / np.sqrt(noise2), np.inf)


def recorded_column_snr(clean: np.ndarray, texture: np.ndarray | None, positions_rc: np.ndarray,
                        amplitudes: np.ndarray, sigma_px: float, pixel_size_A: float, *,
                        dose_e_per_A2: float | None, psnr_db: float | None, read_noise: float) -> np.ndarray:
    """:func:`column_snr` of the columns of a :func:`~napari_atombench.core.simulate.simulate` scene,
    with the noise it records: ``clean`` already in recorded units (counts with a dose), ``amplitudes``
    and ``texture`` in relative units (1 = the brightest column's height)."""
    scale = 1.0 if dose_e_per_A2 is None else dose_e_per_A2 * pixel_size_A**2
    variance = np.array(clean, dtype=np.float64) if dose_e_per_A2 is not None else np.zeros(np.shape(clean))
    if psnr_db is not None:  # as the simulator adds it: sigma = peak / 10^(PSNR/20)
        variance += ((float(clean.max()) or 1.0) / 10.0 ** (psnr_db / 20.0)) ** 2
    variance += float(read_noise) ** 2
    return column_snr(positions_rc, np.asarray(amplitudes) * scale, sigma_px, variance,
                      None if texture is None else texture * scale)


def localisation_snr(sigma_px: float, pixel_size_A: float, radius_A: float, confidence: float = 0.95) -> float:
    """The :func:`column_snr` at which an efficient estimate of a Gaussian column's centre falls
    within ``radius_A`` of it with probability ``confidence`` (Cramér–Rao bound, white noise).

    The bound is set by the ideal matched filter ``g``; :func:`column_snr` uses ``h``, which
    also compares the column with its surroundings, and in white noise reaches the fraction
    ``Σhg / sqrt(Σh² Σg²)`` (0.75) of it. A flat offset carries no information on the position,
    so it is the ideal filter's SNR that counts: the result is scaled by that fraction.

    Parameters
    ----------
    sigma_px : float
        Gaussian sigma of the probe image of a column, in pixels.
    pixel_size_A : float
    radius_A : float
        The matching radius a detection must fall within (Å).
    confidence : float
        Probability in (0, 1).

    Returns
    -------
    float
        ``efficiency * 2 σ sqrt(-ln(1 - confidence)) / radius_A`` with σ in Å.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), not {confidence}")
    if radius_A <= 0 or sigma_px <= 0 or pixel_size_A <= 0:
        raise ValueError("sigma_px, pixel_size_A and radius_A must be positive")
    g, h = matched_filter(sigma_px)
    efficiency = float((h * g).sum() / np.sqrt((h**2).sum() * (g**2).sum()))
    ideal = 2.0 * sigma_px * pixel_size_A * float(np.sqrt(-np.log1p(-confidence))) / radius_A
    return efficiency * ideal


def unresolved(positions_rc: np.ndarray, counted: np.ndarray, sigma_px: float) -> np.ndarray:
    """Which columns lie closer to another ``counted`` one than Sparrow's limit for two equal
    Gaussians of ``sigma_px`` (2 sigma = 0.85 FWHM: the pair shows a single maximum)."""
    positions_rc = np.asarray(positions_rc, dtype=float).reshape(-1, 2)
    counted = np.asarray(counted, dtype=bool)
    out = np.zeros(len(positions_rc), dtype=bool)
    if counted.sum() >= 2:
        out[counted] = nearest_neighbour_distances_px(positions_rc[counted]) < 2.0 * sigma_px
    return out
