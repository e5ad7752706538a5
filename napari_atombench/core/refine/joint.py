"""Joint fits of close columns (dumbbells): grouping and the sum-of-Gaussians fit."""

from __future__ import annotations

import numpy as np

from .._windows import extract_windows
from ._lm import _lm_fit
from .guess import _initial_guess, _unpack

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


def _fit_groups(img, pos, members, *, half, sigma_px, elliptical, n_iter, poisson):
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


