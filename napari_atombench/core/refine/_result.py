"""Result type, statuses and input checks shared by the refinement methods."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..._types import Cancelled
from .._windows import outside_image
from ..geometry import nearest_neighbour_distances_px

STATUS_CONVERGED = "converged"
STATUS_FELL_BACK = "fell back"
STATUS_REJECTED = "rejected"

_MIN_SIGMA_PX = 0.3


@dataclass
class RefineResult:
    """Refined columns, one entry per input position, in input order.

    Attributes
    ----------
    positions_rc : ndarray of float64, shape (N, 2)
    amplitude : ndarray, shape (N,)
        Peak height above the background (image units; NaN when rejected).
    sigma_px : ndarray, shape (N,)
        Gaussian sigma; for an elliptical fit the geometric mean of the two
        principal sigmas; for centre of mass the second-moment estimate.
    background : ndarray, shape (N,)
    position_uncertainty_px : ndarray, shape (N,)
        One-sigma position uncertainty per axis, ``sqrt((var_row + var_col) / 2)``:
        from the fit covariance (inverse Fisher information scaled by the
        reduced chi-square) for Gaussian fits, from Poisson propagation for
        centre of mass.
    status : ndarray of str, shape (N,)
        ``"converged"``, ``"fell back"`` or ``"rejected"``.
    reason : ndarray of str, shape (N,)
        Why a column fell back or was rejected (empty when converged).
    method : str
    sigma_major_px, sigma_minor_px, rotation_rad : ndarray or None
        Elliptical fits only; rotation of the major axis from the column axis
        towards the row axis.
    group : ndarray of int, shape (N,)
        Joint-fit group id (-1 for columns fitted alone).
    parameters : dict
        Window, iterations and options used.
    """

    positions_rc: np.ndarray
    amplitude: np.ndarray
    sigma_px: np.ndarray
    background: np.ndarray
    position_uncertainty_px: np.ndarray
    status: np.ndarray
    reason: np.ndarray
    method: str
    sigma_major_px: np.ndarray | None = None
    sigma_minor_px: np.ndarray | None = None
    rotation_rad: np.ndarray | None = None
    group: np.ndarray | None = None
    parameters: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.positions_rc)

    def counts(self) -> dict[str, int]:
        """Number of columns per status."""
        return {s: int(np.count_nonzero(self.status == s)) for s in (STATUS_CONVERGED, STATUS_FELL_BACK, STATUS_REJECTED)}

    def features(self) -> pd.DataFrame:
        """Per-column table (for Points layer features and CSV files)."""
        table = pd.DataFrame(
            {
                "amplitude": self.amplitude,
                "sigma_px": self.sigma_px,
                "background": self.background,
                "uncertainty_px": self.position_uncertainty_px,
                "status": self.status.astype(object),
                # why a column fell back or was rejected, so a user can see it in the layer and the CSV
                "reason": self.reason.astype(object),
            }
        )
        return table


# ----------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------


def _positions_and_usable(positions_rc, shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positions float64 (N,2), usable mask, reason array)."""
    positions = np.asarray(positions_rc, dtype=np.float64)
    if positions.size == 0:
        positions = np.zeros((0, 2))
    if positions.ndim != 2 or positions.shape[1] != 2:
        raise ValueError(f"positions_rc must have shape (N, 2) as (row, col); got {positions.shape}")
    reason = np.full(len(positions), "", dtype=object)
    finite = np.isfinite(positions).all(axis=1)
    reason[~finite] = "position not finite"
    inside = ~outside_image(positions, shape)
    reason[finite & ~inside] = "outside the image"
    return positions, finite & inside, reason


def _check_half(half: int, shape, what: str) -> int:
    half = int(half)
    if half < 1:
        raise ValueError(f"{what} must be at least 3 px wide, got {2 * half + 1}")
    if 2 * half + 1 > min(shape):
        raise ValueError(
            f"{what} of {2 * half + 1} px is larger than the {shape[0]}x{shape[1]} image; "
            "use a smaller window"
        )
    return half


def _nearest_distance_px(positions: np.ndarray) -> float | None:
    d = nearest_neighbour_distances_px(positions)
    d = d[d > 0]
    return float(np.median(d)) if len(d) else None


def default_window_px(positions_rc, image_shape, *, sigma_px: float | None = None) -> int:
    """Default fit window width (odd, px): about the median nearest-column distance.

    At least ``6 * sigma_px + 1`` when ``sigma_px`` is given, 5 px at minimum,
    and never wider than the image.
    """
    positions = np.asarray(positions_rc, dtype=np.float64).reshape(-1, 2)
    positions = positions[np.isfinite(positions).all(axis=1)]
    nearest = _nearest_distance_px(positions)
    half = 5 if nearest is None else int(round(0.5 * nearest))
    if sigma_px is not None and np.isfinite(sigma_px):
        half = max(half, int(np.ceil(3.0 * sigma_px)))
    half = int(np.clip(half, 2, 40))
    half = min(half, (min(image_shape) - 1) // 2)
    return 2 * half + 1


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(n, start + size)


def _report(progress, cancelled, done, total):
    if progress is not None:
        progress(int(done), int(total))
    if cancelled is not None and cancelled():
        raise Cancelled("refinement cancelled")


def _empty_result(positions, reason, method) -> RefineResult:
    n = len(positions)
    nan = np.full(n, np.nan)
    status = np.full(n, STATUS_REJECTED, dtype=object)
    return RefineResult(
        positions_rc=positions.copy(),
        amplitude=nan.copy(),
        sigma_px=nan.copy(),
        background=nan.copy(),
        position_uncertainty_px=nan.copy(),
        status=status,
        reason=reason.copy(),
        method=method,
        group=np.full(n, -1, dtype=np.int64),
    )


def _store(result, idx, pos, amp, sig, bg, unc, status, reason=""):
    result.positions_rc[idx] = pos
    result.amplitude[idx] = amp
    result.sigma_px[idx] = sig
    result.background[idx] = bg
    result.position_uncertainty_px[idx] = unc
    result.status[idx] = status
    result.reason[idx] = reason


