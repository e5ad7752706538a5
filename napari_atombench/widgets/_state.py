"""Qt-free state and rules of the docks (testable without a viewer)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.refine import STATUS_CONVERGED, STATUS_FELL_BACK, STATUS_REJECTED

#: Status of a point that has not been refined (seeded or clicked).
STATUS_UNREFINED = "unrefined"
STATUS_COLOURS = {
    STATUS_UNREFINED: "#ffd400",
    STATUS_CONVERGED: "#2ecc40",
    STATUS_FELL_BACK: "#ff851b",
    STATUS_REJECTED: "#ff2020",
}
FIT_FEATURES = ("amplitude", "sigma_px", "background", "uncertainty_px")


@dataclass
class EditHistory:
    """Snapshots of a Points layer before each edit, newest last (the Label dock's Undo).

    Every edit - seed, refine, load, restore, and each hand add, move or delete -
    pushes the state before it, so Undo walks back through all of them in order.
    """

    limit: int = 50
    _stack: list[tuple[str, np.ndarray, pd.DataFrame]] = field(default_factory=list)

    def push(self, name: str, data, features: pd.DataFrame) -> None:
        data = np.array(data, dtype=float, copy=True).reshape(-1, 2)
        if self._stack and self._stack[-1][0] == name and np.array_equal(self._stack[-1][1], data) \
                and self._stack[-1][2].equals(features):
            return  # an event that changed nothing (e.g. a click-select before a drag)
        self._stack.append((name, data, features.copy()))
        del self._stack[: -self.limit]

    def pop(self) -> tuple[str, np.ndarray, pd.DataFrame]:
        if not self._stack:
            raise IndexError("nothing to undo")
        return self._stack.pop()

    def __len__(self) -> int:
        return len(self._stack)


def snap_radius_px(click_rc, seeds_rc, separation_px: float) -> float:
    """Search radius for snapping a click: never far enough to reach a neighbour column.

    ``0.4 * separation_px``, bounded by half the local nearest-column distance
    (the distance from the seed nearest the click to its own nearest seed), so
    on a dumbbell or a crowded patch the click stays on the column it was meant for.
    """
    radius = 0.4 * float(separation_px)
    seeds = np.asarray(seeds_rc, dtype=float).reshape(-1, 2)
    if len(seeds) < 2:
        return radius
    from scipy.spatial import cKDTree

    tree = cKDTree(seeds)
    _, nearest = tree.query(np.asarray(click_rc, dtype=float).reshape(2))
    local, _ = tree.query(seeds[nearest], k=2)
    return float(max(0.5, min(radius, 0.5 * local[1])))


def refine_summary(status, reason) -> str:
    """One line per refinement: how many columns per status, and why they did not converge.

    ``"590 converged | 328 fell back: sigma absurd"``, or with several reasons
    ``"... | 30 fell back: 28 sigma absurd, 2 centre left its window"`` (most frequent first;
    ``|`` because a reason may itself hold a semicolon).
    """
    status = pd.Series(np.asarray(status, dtype=object)).astype(str)
    reason = pd.Series(np.asarray(reason, dtype=object)).fillna("").astype(str)
    parts = []
    for name, n in status.value_counts(sort=False).items():
        why = reason[(status == name).to_numpy()]
        why = why[why != ""].value_counts()
        if why.empty:
            parts.append(f"{n} {name}")
        elif len(why) == 1 and why.iloc[0] == n:
            parts.append(f"{n} {name}: {why.index[0]}")
        else:
            parts.append(f"{n} {name}: " + ", ".join(f"{k} {r}" for r, k in why.items()))
    return " | ".join(parts)


#: reasons that say a column's window holds too much of its neighbours for a one-Gaussian fit
_OVERLAP_REASONS = ("sigma absurd", "centre left its window")
#: fraction of such fall-backs above which the dock suggests fitting overlapping columns together
OVERLAP_HINT_FRACTION = 0.1


def refine_hint(method: str, status, reason) -> str:
    """A suggestion after an independent Gaussian refinement in which many columns fell back
    because their neighbours share the fit window (dumbbells, close columns), else ""."""
    if method != "gaussian" or len(status) == 0:
        return ""
    reason = pd.Series(np.asarray(reason, dtype=object)).fillna("").astype(str)
    overlapping = reason.str.contains("|".join(_OVERLAP_REASONS), regex=True).to_numpy()
    if overlapping.mean() <= OVERLAP_HINT_FRACTION:
        return ""
    return (f"{overlapping.sum()} of {len(status)} columns share their fit window with a neighbour: "
            "try 'Gaussian with overlaps', which fits close columns together")


def status_legend(mode: str = "status") -> str:
    """What the label colours mean, for the dock (rich text)."""
    if mode == "uncertainty_px":
        return "colour: position uncertainty (px), viridis: dark purple low → yellow high"
    if mode != "status":
        return ""
    return "  ".join(f"<span style='color:{colour}'>●</span> {status}" for status, colour in STATUS_COLOURS.items())


def file_features(features: pd.DataFrame, n_points: int) -> pd.DataFrame | None:
    """The per-point features to write beside ``n_points`` positions (categories as plain values)."""
    if not len(features.columns) or len(features) != n_points:
        return None
    features = features.reset_index(drop=True).copy()
    for column in features.columns:
        if features[column].dtype.name == "category":
            features[column] = features[column].astype(object)
    return features


def doubtful_mask(features: pd.DataFrame, n_points: int, low_amplitude_fraction: float) -> np.ndarray:
    """Points to review: fell back, rejected, or amplitude below ``low_amplitude_fraction`` x the median."""
    mask = np.zeros(n_points, dtype=bool)
    if "status" in features.columns:
        status = features["status"].astype(str).to_numpy()
        mask |= np.isin(status, [STATUS_FELL_BACK, STATUS_REJECTED])
    if "amplitude" in features.columns:
        amplitude = pd.to_numeric(features["amplitude"], errors="coerce").to_numpy(dtype=float)
        if np.isfinite(amplitude).any():
            level = low_amplitude_fraction * np.nanmedian(amplitude)
            with np.errstate(invalid="ignore"):
                mask |= amplitude < level
    return mask
