"""Square pixel windows around many points at once (fancy indexing, no loop per point).

Private helper shared by :mod:`.peaks` and :mod:`.refine`. Pixels of a window
that fall outside the image are marked invalid (``valid`` is False) and hold
the nearest edge pixel's value, so callers can simply weight them by zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Windows:
    """``N`` windows of ``(2 * half + 1)**2`` pixels.

    Attributes
    ----------
    values : ndarray of float64, shape (N, w, w)
    rows, cols : ndarray of float64, shape (N, w)
        Absolute pixel coordinates of each window's rows and columns.
    valid : ndarray of bool, shape (N, w, w)
        False where the window sticks out of the image.
    centre_rc : ndarray of int64, shape (N, 2)
        The integer pixel each window is centred on.
    half : int
    """

    values: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    valid: np.ndarray
    centre_rc: np.ndarray
    half: int


def extract_windows(image: np.ndarray, centre_rc: np.ndarray, half: int, dtype=np.float64) -> Windows:
    """Cut ``(2 * half + 1)``-pixel square windows centred on integer pixels.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    centre_rc : array_like of int, shape (N, 2)
    half : int
        Half width; the window is ``2 * half + 1`` pixels wide.
    dtype : numpy dtype
        Of the returned values.

    Returns
    -------
    Windows
    """
    height, width = image.shape
    centre = np.asarray(centre_rc, dtype=np.int64).reshape(-1, 2)
    offsets = np.arange(-half, half + 1)
    rr = centre[:, :1] + offsets  # (N, w)
    cc = centre[:, 1:] + offsets
    ok_r = (rr >= 0) & (rr < height)
    ok_c = (cc >= 0) & (cc < width)
    rr_c = np.clip(rr, 0, height - 1)
    cc_c = np.clip(cc, 0, width - 1)
    values = image[rr_c[:, :, None], cc_c[:, None, :]].astype(dtype, copy=False)
    valid = ok_r[:, :, None] & ok_c[:, None, :]
    return Windows(values, rr.astype(np.float64), cc.astype(np.float64), valid, centre, int(half))


def outside_image(positions_rc: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """True for (row, col) positions beyond the image's outer pixel edges (NaN counts as outside)."""
    height, width = shape
    rows, cols = positions_rc[:, 0], positions_rc[:, 1]
    with np.errstate(invalid="ignore"):
        inside = (rows >= -0.5) & (rows <= height - 0.5) & (cols >= -0.5) & (cols <= width - 0.5)
    return ~inside
