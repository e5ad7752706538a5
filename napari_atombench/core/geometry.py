"""Geometry of (row, col) positions and image frames: neighbour distances, borders, resampling.

Pixel centres sit at integer coordinates. Two frames of the same field of
view (an image and its resampled copy) map pixel centres as
``to = (from + 0.5) * to_shape / from_shape - 0.5``; :func:`resample` and
:func:`positions_to_frame` both follow it. This module imports neither Qt nor
napari (and not torch).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ._validate import as_positions

__all__ = ["filter_border", "nearest_neighbour_distances_px", "positions_to_frame", "resample"]


def nearest_neighbour_distances_px(positions_rc) -> np.ndarray:
    """Distance (px) from each position to its nearest other one (0 for a duplicate);
    empty with fewer than two positions."""
    positions = as_positions(positions_rc)
    if len(positions) < 2:
        return np.zeros(0)
    distance, _ = cKDTree(positions).query(positions, k=2)
    return distance[:, 1]


def filter_border(positions_rc, image_shape: tuple[int, int], margin_px: float) -> np.ndarray:
    """Boolean mask of positions at least ``margin_px`` inside the image.

    A position at row r is kept when ``margin_px <= r <= rows - 1 - margin_px``
    (pixel centres at integers), and likewise for columns.
    """
    positions = as_positions(positions_rc)
    rows, cols = image_shape
    r, c = positions[:, 0], positions[:, 1]
    return (r >= margin_px) & (r <= rows - 1 - margin_px) & (c >= margin_px) & (c <= cols - 1 - margin_px)


def positions_to_frame(positions_rc: np.ndarray, from_shape, to_shape) -> np.ndarray:
    """Map (row, col) pixel centres between two resized frames of the same field of view
    (``to = (from + 0.5) · to_shape / from_shape − 0.5``)."""
    positions_rc = np.asarray(positions_rc, dtype=np.float64).reshape(-1, 2)
    ratio = np.array([to_shape[0] / from_shape[0], to_shape[1] / from_shape[1]], dtype=np.float64)
    return (positions_rc + 0.5) * ratio - 0.5


def _axis_weights(n_in: int, n_out: int, antialias: bool):
    """Sparse (n_out, n_in) matrix of one axis's resampling weights.

    Output pixel ``i`` sits at input coordinate ``(i + 0.5) * scale - 0.5``
    (``scale = n_in / n_out``) and takes the triangle (linear) filter of
    half-width ``support`` around it, normalised over the input pixels it
    reaches: ``support = 1`` is bilinear interpolation with the edge pixels
    repeated; ``support = scale`` when shrinking with ``antialias`` averages
    every input pixel the output pixel covers (the same weights as PIL's and
    torch's antialiased bilinear resize).
    """
    from scipy.sparse import csr_matrix

    scale = n_in / n_out
    support = scale if (antialias and scale > 1.0) else 1.0
    centre = (np.arange(n_out) + 0.5) * scale  # in input pixel-edge coordinates
    lo = np.maximum(np.floor(centre - support + 0.5).astype(np.int64), 0)
    width = int(np.ceil(2 * support)) + 2
    cols = lo[:, None] + np.arange(width)[None, :]
    weight = np.maximum(0.0, 1.0 - np.abs(cols + 0.5 - centre[:, None]) / support)
    weight[cols >= n_in] = 0.0
    # never all zero: the nearest input pixel centre is less than one pixel (<= support) away
    weight /= weight.sum(axis=1, keepdims=True)
    keep = weight > 0
    rows = np.broadcast_to(np.arange(n_out)[:, None], cols.shape)
    return csr_matrix((weight[keep], (rows[keep], np.minimum(cols[keep], n_in - 1))), shape=(n_out, n_in))


def resample(image: np.ndarray, shape: tuple[int, int], *, antialias: bool | None = None) -> np.ndarray:
    """Resize a float image to ``shape`` (rows, cols): bilinear, pixel-centre aligned.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    shape : (rows, cols)
    antialias : bool, optional
        When shrinking, average every input pixel an output pixel covers
        (triangle filter as wide as the scale) instead of interpolating
        between the nearest two. Default: antialias when shrinking.

    Returns
    -------
    ndarray of float32, shape ``shape``
        Pixel centres map as ``src = (dst + 0.5) * in / out - 0.5`` (see
        :func:`positions_to_frame`); beyond the outermost input centres the
        edge pixels are repeated. A copy when the shape is unchanged.
    """
    image = np.asarray(image, dtype=np.float32)
    shape = (int(shape[0]), int(shape[1]))
    if image.ndim != 2:
        raise ValueError(f"resample needs a 2D image, got shape {image.shape}")
    if min(shape) < 1:
        raise ValueError(f"cannot resample to shape {shape}")
    if shape == image.shape:
        return image.copy()
    if antialias is None:
        antialias = True
    rows = _axis_weights(image.shape[0], shape[0], antialias)
    cols = _axis_weights(image.shape[1], shape[1], antialias)
    out = rows @ image.astype(np.float64)
    out = (cols @ out.T).T
    return np.ascontiguousarray(out, dtype=np.float32)
