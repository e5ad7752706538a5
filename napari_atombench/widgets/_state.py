"""Qt-free state and rules of the docks (testable without a viewer)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


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

    ``"590 converged; 328 fell back: sigma absurd"``, or with several reasons
    ``"...; 30 fell back: 28 sigma absurd, 2 centre left its window"`` (most frequent first).
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
    return "; ".join(parts)
