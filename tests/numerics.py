"""Tolerances for comparing fp32 network outputs across CPUs, and positions by matching.

Why results differ between x86-64 CPUs: oneDNN picks convolution kernels by the
instruction set (AVX2, AVX-512, AMX) and blocks the K-term sums of a convolution
differently, so the same network gives fp32 results that differ in the last bits.
Rounding error of a K-term fp32 sum is bounded by K·eps32·Σ|terms| in the worst
case and behaves like a random walk, √K·eps32·Σ|terms|, in practice (Higham,
*Accuracy and Stability of Numerical Algorithms*, §4.2); with activations of
order one (BatchNorm keeps them there) Σ|terms| is of order one per output. The
errors of L convolution layers add like independent random terms, √L. Two
evaluations (ours and the reference) each carry that error, hence the factor 2:

    tol = 2 · √(K_max · L) · eps32

For the published networks (K_max 1152–2304, L 13–25) this is 3.5e-5–5.2e-5:
above the differences seen between CPUs (up to 1.04e-5), and still far below
what a wrong layer, order or constant does (≥ 1e-3; checked by
``test_fidelity_tolerance_still_catches_a_wrong_constant``).
"""

from __future__ import annotations

import math

import numpy as np

from napari_atombench.core.match import match_positions

EPS32 = float(np.finfo(np.float32).eps)
#: what the tolerance may never exceed: a wrong constant moves values by more
CEILING = 1e-4


def fp32_network_tolerance(net) -> float:
    """``2 · √(K_max · L) · eps32`` for a network's convolutions (see the module doc)."""
    import torch

    convs = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    if not convs:
        raise ValueError("network has no convolutions")
    k_max = max(m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1] for m in convs)
    tol = 2.0 * math.sqrt(k_max * len(convs)) * EPS32
    assert tol < CEILING, f"tolerance {tol:.2e} would hide real errors"
    return tol


def assert_positions_agree(a, b, *, max_moved: int, max_shift_px: float, moved_px: float = 1e-3,
                           max_unmatched: int = 0) -> None:
    """Two runs' positions agree after one-to-one matching.

    A peak whose map values move by ~1e-5 can tip a tie in the local-maximum or
    centroid rule: it moves by a fraction of a pixel, or (at the threshold)
    appears in one run only. Allow ``max_moved`` positions to move by more than
    ``moved_px`` but never beyond ``max_shift_px``, and ``max_unmatched`` on each side.
    """
    a, b = np.asarray(a, float).reshape(-1, 2), np.asarray(b, float).reshape(-1, 2)
    match = match_positions(a, b, max_shift_px)
    unmatched = max(len(match.unmatched_pred), len(match.unmatched_truth))
    assert unmatched <= max_unmatched, f"{unmatched} positions of {len(a)}/{len(b)} have no partner"
    moved = int(np.count_nonzero(np.asarray(match.distance_px) > moved_px))
    assert moved <= max_moved, f"{moved} of {len(a)} positions moved by more than {moved_px} px"
