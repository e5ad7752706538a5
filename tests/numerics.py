"""Tolerances for comparing fp32 network outputs across CPUs, and positions by matching.

Why results differ between x86-64 CPUs: oneDNN picks convolution kernels by the
instruction set (AVX2, AVX-512, AMX) and blocks the K-term sums of a convolution
differently, so the same network gives fp32 results that differ in the last bits.
Rounding error of a K-term fp32 sum is bounded by K·eps32·Σ|terms| in the worst
case and behaves like a random walk, √K·eps32·Σ|terms|, in practice (Higham,
*Accuracy and Stability of Numerical Algorithms*, §4.2); BatchNorm keeps
activations of order one, so Σ|terms| is of order one per output (we allow 1.5×).
The errors of the L convolution layers are independent and add in quadrature,
√(Σ_l K_l). Two evaluations (ours and the reference) each carry that error:

    tol = 2 · 1.5 · eps32 · √(Σ_l K_l)

(values are compared with ``rtol = atol = tol``: logits of magnitude > 1 carry
proportionally larger errors). BatchNorm's batch statistics (NestedUNet's
train-mode BN) are cascade sums over the image, whose error grows like
log2(N)·eps32: negligible next to the convolutions. For the published networks
this gives 3.2e-5 (AtomNet 3-class) to 7.8e-5 (NestedUNet): 3× above the
differences measured between CPUs (AVX-512 vs AVX2 kernels: up to 1.08e-5 for
the UNet, 2.4e-5 for NestedUNet), and still far below what a wrong layer, order
or constant does (≥ 1e-3, checked by
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
    """``3 · eps32 · √(Σ_l K_l)`` over a network's convolutions (see the module doc)."""
    import torch

    convs = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    if not convs:
        raise ValueError("network has no convolutions")
    terms = sum(m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1] for m in convs)
    tol = 3.0 * EPS32 * math.sqrt(terms)
    assert tol < CEILING, f"tolerance {tol:.2e} would hide real errors"
    return tol


def near_uint8_step(map_: np.ndarray, tol: float) -> np.ndarray:
    """Pixels whose ``trunc(255 · (m - lo) / (hi - lo))`` can change when every value of
    ``m`` (and so ``lo`` and ``hi``) moves by up to ``tol``."""
    m = np.asarray(map_, dtype=np.float64)
    lo, hi = m.min(), m.max()
    scaled = (m - lo) / (hi - lo) * 255
    slack = 3 * 255 * tol / (hi - lo)  # the pixel, lo and hi each move by tol
    return np.abs(scaled - np.round(scaled)) <= slack


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
