"""Checks of in-memory inputs shared by the core modules: images and (row, col) positions.

:func:`as_image_2d` is the one image check (stacks, RGB, non-finite pixels);
:func:`as_positions` the one ``(N, 2)`` position check. Both give one-line
``ValueError`` messages that name the argument and what is wrong.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

__all__ = ["as_image_2d", "as_positions", "rgb_to_luminance"]

logger = logging.getLogger("napari_atombench.core.io")

_REC709_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)

def rgb_to_luminance(rgb: np.ndarray) -> np.ndarray:
    """Convert an ``(H, W, 3)`` or ``(H, W, 4)`` array to luminance.

    Uses Rec. 709 weights; an alpha channel is dropped.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3 or 4)

    Returns
    -------
    ndarray of float32, shape (H, W)
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) or (H, W, 4) RGB(A) array, got shape {rgb.shape}")
    return rgb[..., :3].astype(np.float32) @ _REC709_WEIGHTS


def _looks_like_rgb(array: np.ndarray) -> bool:
    return array.ndim == 3 and array.shape[-1] in (3, 4) and min(array.shape[:2]) > 4


def as_image_2d(
    image: Any,
    *,
    name: str = "image",
    nan_policy: str = "raise",
) -> np.ndarray:
    """Validate an image for atom-column analysis and return it as 2D float32.

    Parameters
    ----------
    image : array_like
        A 2D image; an ``(H, W, 3|4)`` RGB(A) array is converted to luminance
        with a warning.
    name : str
        What to call the image in error messages.
    nan_policy : {"raise", "replace"}
        What to do with NaN or infinite pixels: raise a ``ValueError``, or
        replace them by the median of the finite pixels (with a warning).

    Returns
    -------
    ndarray of float32, shape (H, W)

    Raises
    ------
    ValueError
        For stacks, empty images, complex data, images without a finite pixel
        and, with ``nan_policy="raise"``, any non-finite pixel.
    """
    return _checked_image_2d(image, name, nan_policy)[0]


def _checked_image_2d(image: Any, name: str, nan_policy: str) -> tuple[np.ndarray, dict]:
    """:func:`as_image_2d`, also returning what it changed (for file metadata)."""
    if nan_policy not in ("raise", "replace"):
        raise ValueError(f"nan_policy must be 'raise' or 'replace', not {nan_policy!r}")
    changes: dict[str, Any] = {}
    array = np.asarray(image)
    if np.iscomplexobj(array):
        raise ValueError(
            f"{name} holds complex numbers (shape {array.shape}); take its modulus or "
            "real part first"
        )
    if array.dtype == bool:
        array = array.astype(np.float32)
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} is not numeric (dtype {array.dtype})")
    if _looks_like_rgb(array):
        warnings.warn(
            f"{name} is RGB(A) with shape {array.shape}; converted to luminance "
            "(Rec. 709 weights). Export single-channel data from the microscope "
            "software for quantitative work.",
            UserWarning,
            stacklevel=3,
        )
        array = rgb_to_luminance(array)
        changes["rgb_converted"] = True
    if array.ndim != 2:
        if array.ndim == 3:
            hint = (
                f"it looks like a stack of {array.shape[0]} frames: pick one frame "
                "(image[0]) or average aligned frames (image.mean(axis=0)) first"
            )
        else:
            hint = "atom-column analysis needs a single 2D image"
        raise ValueError(f"{name} has shape {array.shape}, not 2D: {hint}")
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    array = array.astype(np.float32, copy=False)
    finite = np.isfinite(array)
    if not finite.all():
        n_bad = int(array.size - np.count_nonzero(finite))
        if n_bad == array.size:
            raise ValueError(f"{name} has no finite pixel: all {array.size} are NaN or Inf")
        first = np.unravel_index(int(np.argmin(finite)), array.shape)
        where = f"first at row {first[0]}, col {first[1]}"
        if nan_policy == "raise":
            raise ValueError(
                f"{name} has {n_bad} NaN/Inf pixel(s) ({where}); mask or fill them "
                "before analysis (read_image(..., nan_policy='replace') fills them "
                "with the median)"
            )
        fill = float(np.median(array[finite]))
        array = np.where(finite, array, np.float32(fill))
        message = f"{name}: replaced {n_bad} NaN/Inf pixel(s) ({where}) by the median {fill:.6g}"
        logger.warning(message)
        warnings.warn(message, UserWarning, stacklevel=3)
        changes["n_nonfinite_replaced"] = n_bad
    return np.ascontiguousarray(array), changes


def as_positions(positions_rc: Any, what: str = "positions_rc") -> np.ndarray:
    """Validate (row, col) positions and return them as float64 ``(N, 2)``.

    Parameters
    ----------
    positions_rc : array_like, shape (N, 2)
    what : str
        What to call the positions in error messages.

    Returns
    -------
    ndarray of float64, shape (N, 2)
        ``(0, 2)`` for an empty input.

    Raises
    ------
    ValueError
        For a wrong shape or a non-finite row (named by its index).
    """
    array = np.asarray(positions_rc, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 2), dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{what} must have shape (N, 2) as (row, col); got {array.shape}")
    if not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
        raise ValueError(f"{what} row {bad} is not finite: {array[bad].tolist()}")
    return array
