"""Contrast polarity of an atomic-resolution image: bright columns (HAADF, MADF,
iDPC) or dark columns on a bright background (ABF, BF).

Columns are compact features on a lattice; the space between them is broad. A
band-pass at the lattice scale therefore has a skewed intensity distribution: a
few strongly positive pixels (the column tops) when columns are bright, a few
strongly negative ones when they are dark. The sign of that skewness is the
polarity. It is ambiguous — and reported as such — when columns are not resolved
from each other (e.g. a honeycomb at a probe broader than the bond length, where
the holes become the compact features).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .io import as_image_2d
from .peaks import central_crop

CONTRASTS = ("auto", "bright", "dark")

#: |skewness| below this is too weak to decide (simulated unresolved lattices sit
#: within ±0.15; resolved HAADF/ABF lattices and the dev images at |s| >= 0.25)
AMBIGUOUS_SKEWNESS = 0.15


#: the polarity is measured on a central crop this many separations across
POLARITY_CROP_SEPARATIONS = 24


@dataclass(frozen=True)
class Polarity:
    """Result of :func:`estimate_polarity`.

    Attributes
    ----------
    contrast : {"bright", "dark"}
        Polarity of the columns ("bright" when ambiguous).
    skewness : float
        Skewness of the band-passed image (> 0: bright columns).
    confident : bool
        ``|skewness| >= AMBIGUOUS_SKEWNESS``.
    separation_px : float
        Lattice scale the band-pass was set from.
    """

    contrast: str
    skewness: float
    confident: bool
    separation_px: float

    def as_metadata(self) -> dict:
        return {
            "contrast_used": self.contrast,
            "contrast_skewness": round(float(self.skewness), 4),
            "contrast_confident": bool(self.confident),
        }


def check_contrast(contrast: str, name: str = "contrast") -> str:
    """Validated contrast option (one of :data:`CONTRASTS`)."""
    value = str(contrast).lower() if contrast is not None else ""
    if value not in CONTRASTS:
        raise ValueError(f"{name} must be one of {', '.join(CONTRASTS)}, not {contrast!r}")
    return value


def estimate_polarity(image, separation_px: float) -> Polarity:
    """Decide whether the columns of ``image`` are bright or dark.

    Parameters
    ----------
    image : array_like, shape (H, W)
    separation_px : float
        Nearest column separation in pixels (e.g. from
        :func:`napari_atombench.core.peaks.estimate_separation`); sets the
        band-pass (σ from separation/8 to separation), and the central crop it
        is measured on (:data:`POLARITY_CROP_SEPARATIONS` separations across).

    Returns
    -------
    Polarity
    """
    sep = float(separation_px)
    if not np.isfinite(sep) or sep <= 0:
        raise ValueError(f"separation_px must be a positive number, not {separation_px!r}")
    # the skewness of a few hundred columns decides as well as that of the whole image
    img = central_crop(as_image_2d(image, name="image"), POLARITY_CROP_SEPARATIONS * sep).astype(np.float64)
    band = ndimage.gaussian_filter(img, max(sep / 8.0, 0.7)) - ndimage.gaussian_filter(img, sep)
    margin = int(np.ceil(sep))
    if min(band.shape) > 4 * margin:  # the blur's edge handling is not the image
        band = band[margin:-margin, margin:-margin]
    band = band - band.mean()
    std = float(band.std())
    skew = float(np.mean(band**3) / std**3) if std > 0 else 0.0
    confident = abs(skew) >= AMBIGUOUS_SKEWNESS
    contrast = "dark" if (confident and skew < 0) else "bright"
    return Polarity(contrast=contrast, skewness=skew, confident=confident, separation_px=sep)


def to_bright(image: np.ndarray, contrast: str) -> np.ndarray:
    """The image with bright columns: unchanged for "bright", mirrored in its own
    range (``max + min - image``) for "dark", so its values stay in range."""
    image = np.asarray(image)
    if check_contrast(contrast) == "auto":
        raise ValueError("to_bright needs a decided contrast ('bright' or 'dark'), not 'auto'")
    if contrast == "bright":
        return image
    lo, hi = float(np.min(image)), float(np.max(image))
    return (hi + lo - image.astype(np.float32)).astype(np.float32)
