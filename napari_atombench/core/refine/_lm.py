"""Batched Levenberg-Marquardt for sums of Gaussians plus a flat background."""

from __future__ import annotations

import numpy as np

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


