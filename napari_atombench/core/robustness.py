"""Robustness along degradation series: the series, and where a model first fails along one.

A :class:`DegradationSeries` is data: a knob name, its values in the order of
worsening quality, and one (image, truth_rc, pixel_size_A) per value.
:func:`find_cutoff` finds where a model first fails the pass criteria along it
(recall < 0.90, precision < 0.95, RMSE > 0.3 Å), interpolated linearly
(default) or with a PCHIP fit of each criterion's margin; ``None`` with status
``"none in range"`` when it never fails. :func:`simulated_series` is the one
place that asks the simulator for series. Running the models along series is
:func:`~napari_atombench.core.benchmark.run_robustness`. This module imports
neither Qt nor napari.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from .metrics import PASS_CRITERIA

__all__ = [
    "COLUMN_SPACING_PM",
    "CRITERIA",
    "DEFAULT_KNOBS",
    "Cutoff",
    "DegradationSeries",
    "build_series",
    "cutoffs_table",
    "find_cutoff",
    "parse_knob",
    "simulated_series",
]

#: Pass criteria as (column, threshold, "min" | "max").
CRITERIA = (
    ("recall", PASS_CRITERIA["min_recall"], "min"),
    ("precision", PASS_CRITERIA["min_precision"], "min"),
    ("rmse_A", PASS_CRITERIA["max_rmse_A"], "max"),
)



@dataclass
class DegradationSeries:
    """Images along one quality knob, best quality first.

    Attributes
    ----------
    name : str
        e.g. ``"srtio3_resolution_pm"``.
    knob : str
        e.g. ``"resolution_pm"``.
    values : sequence of float
        Knob values, in the order of worsening quality.
    images : list of (image, truth_rc, pixel_size_A)
    material : str
    """

    name: str
    knob: str
    values: Sequence[float]
    images: list[tuple[np.ndarray, np.ndarray, float | None]]
    material: str = ""

    def __post_init__(self):
        if len(self.values) != len(self.images):
            raise ValueError(f"series {self.name}: {len(self.values)} values for {len(self.images)} images")


@dataclass
class Cutoff:
    """Where a model first fails along a series.

    Attributes
    ----------
    value : float or None
        The interpolated knob value; None when it never fails.
    status : {"crossed", "none in range", "fails at start"}
    criterion : str or None
        The criterion that failed first (``recall``, ``precision``, ``rmse_A``).
    """

    value: float | None
    status: str
    criterion: str | None = None

    @property
    def label(self) -> str:
        if self.value is None:
            return self.status
        text = f"{self.value:.3g}"
        return text + (" (fails at start)" if self.status == "fails at start" else "")


def _margins(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per criterion, how far each point is inside (+) or outside (−) the pass region."""
    error = table["error"].fillna("").astype(str).to_numpy() != "" if "error" in table else np.zeros(len(table), bool)
    margins = {}
    for column, threshold, sense in CRITERIA:
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
        margin = values - threshold if sense == "min" else threshold - values
        if sense == "min":
            margin[error] = -1.0  # a locator that raised found nothing: recall and precision fail
        margins[column] = margin
    return margins


def _first_crossing(values: np.ndarray, margin: np.ndarray, method: str) -> tuple[float | None, str]:
    keep = np.isfinite(margin)
    values, margin = values[keep], margin[keep]
    if not len(values):
        return None, "none in range"
    if margin[0] < 0:
        return float(values[0]), "fails at start"
    failing = np.flatnonzero(margin < 0)
    if not len(failing):
        return None, "none in range"
    i = int(failing[0])
    v0, v1, m0, m1 = values[i - 1], values[i], margin[i - 1], margin[i]
    linear = float(v0 + (v1 - v0) * m0 / (m0 - m1))
    if method == "linear" or len(values) < 3:
        return linear, "crossed"
    if method != "pchip":
        raise ValueError(f"unknown cutoff method {method!r}; use 'linear' or 'pchip'")
    from scipy.interpolate import PchipInterpolator
    from scipy.optimize import brentq

    order = np.argsort(values)
    x, y = values[order], margin[order]
    if np.any(np.diff(x) == 0):
        return linear, "crossed"
    curve = PchipInterpolator(x, y)
    low, high = sorted((v0, v1))
    if curve(low) * curve(high) > 0:
        return linear, "crossed"
    return float(brentq(curve, low, high)), "crossed"


def find_cutoff(values: Sequence[float], scores: pd.DataFrame | dict, method: str = "linear") -> Cutoff:
    """The knob value where the pass criteria first fail along a series.

    Parameters
    ----------
    values : sequence of float
        Knob values in the order of worsening quality (increasing or decreasing).
    scores : DataFrame or dict of column -> sequence
        ``recall``, ``precision``, ``rmse_A`` (and optionally ``error``) per value.
    method : {"linear", "pchip"}
        Linear interpolation between the last passing and the first failing
        point, or the root of a PCHIP fit of the criterion's margin there.

    Returns
    -------
    Cutoff
        The earliest crossing over the three criteria. Failing at the first
        value gives that value with status ``"fails at start"``; never failing
        gives ``Cutoff(None, "none in range")``. An RMSE of None (no match) is
        skipped for the RMSE criterion: recall decides there. A row with an
        error counts as failing recall and precision.
    """
    table = pd.DataFrame(scores)
    values = np.asarray(values, dtype=float)
    if len(values) != len(table):
        raise ValueError(f"{len(values)} knob values for {len(table)} score rows")
    if len(values) > 1:
        steps = np.diff(values)
        if not (np.all(steps > 0) or np.all(steps < 0)):
            raise ValueError("knob values must be strictly monotonic along a series")
    span = values[-1] - values[0] if len(values) > 1 else 1.0
    best: tuple[float, float, str, str] | None = None
    for criterion, margin in _margins(table).items():
        value, status = _first_crossing(values, margin, method)
        if value is None:
            continue
        along = (value - values[0]) / span  # 0 at the start, 1 at the end, whatever the direction
        if best is None or along < best[0]:
            best = (along, value, status, criterion)
    if best is None:
        return Cutoff(None, "none in range")
    return Cutoff(best[1], best[2], best[3])


def cutoffs_table(series_table: pd.DataFrame, method: str = "linear") -> pd.DataFrame:
    """One row per (series, model): ``cutoff`` (None when none in range), ``status``, ``criterion``.

    A pixel-size cutoff is also given on the paper's radar axis, ``atoms_per_100px`` =
    100 × cutoff / projected column spacing (:data:`COLUMN_SPACING_PM`).
    """
    rows = []
    for (series, model), group in series_table.groupby(["series", "model"], sort=False):
        group = group.sort_values("order")
        cutoff = find_cutoff(group["value"].to_numpy(), group, method)
        material, knob = group["material"].iloc[0], group["knob"].iloc[0]
        spacing_pm = COLUMN_SPACING_PM.get(str(material).lower())
        atoms = (100.0 * cutoff.value / spacing_pm
                 if knob == "pixel_size_pm" and spacing_pm and cutoff.value is not None else None)
        rows.append({
            "series": series, "material": material, "knob": knob,
            "model": model, "cutoff": cutoff.value, "status": cutoff.status, "criterion": cutoff.criterion,
            "label": cutoff.label, "range_start": group["value"].iloc[0], "range_end": group["value"].iloc[-1],
            "atoms_per_100px": atoms,
        })
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- simulated series

#: Default degradation ranges (best first) of the simulated radar axes.
DEFAULT_KNOBS: dict[str, tuple[float, float]] = {
    "pixel_size_pm": (8.0, 40.0),
    "contrast": (1.0, 0.05),
    "psnr_db": (30.0, 0.0),
    "resolution_pm": (80.0, 300.0),
    "random_drift": (0.0, 0.5),
    "flyback_error": (0.0, 5.0),
}
#: Nearest projected column spacing (pm) of the simulated crystals, to turn a pixel-size
#: cutoff into atoms / 100 px: SrTiO3 [100] a/2 (Sr to O), WS2 a/sqrt(3) (W to S2).
COLUMN_SPACING_PM = {"srtio3": 195.25, "ws2": 183.6}


def simulated_series(material: str, knob: str, values: Sequence[float], *, base: dict | None = None,
                     seed: int = 0) -> DegradationSeries:
    """A degradation series from the simulator.

    Uses ``core.simulate.degradation_series(base, knob, values)`` when the
    simulator has it; otherwise the basic :func:`~napari_atombench.core.simulate.simulate_crystal`
    covers ``pixel_size_pm``, ``resolution_pm`` and ``peak_counts`` only.

    Parameters
    ----------
    material : {"srtio3", "ws2"}
    knob : str
    values : sequence of float, best quality first
    base : dict, optional
        Base simulation parameters.
    """
    from . import simulate

    crystals = {"srtio3": simulate.SRTIO3_100, "ws2": simulate.WS2_MONOLAYER}
    key = material.lower()
    if key not in crystals:
        raise ValueError(f"unknown material {material!r}; use one of {', '.join(crystals)}")
    base = {"crystal": crystals[key], "seed": seed, **(base or {})}
    if hasattr(simulate, "degradation_series"):
        images = simulate.degradation_series(base, knob, list(values))
    else:
        fallback = {"pixel_size_pm": ("pixel_size_A", 0.01), "resolution_pm": ("resolution_A", 0.01),
                    "peak_counts": ("peak_counts", 1.0)}
        if knob not in fallback:
            raise ValueError(f"this simulator has no knob {knob!r} (available: {', '.join(fallback)})")
        name, factor = fallback[knob]
        kwargs = {k: v for k, v in base.items() if k != "crystal"}
        images = [simulate.simulate_crystal(base["crystal"], **{**kwargs, name: float(v) * factor}) for v in values]
    return DegradationSeries(
        name=f"{key}_{knob}", knob=knob, values=[float(v) for v in values],
        images=[(s.image, s.positions_rc, s.pixel_size_A) for s in images], material=key,
    )


def parse_knob(text: str) -> tuple[str, tuple[float, float]]:
    """``"name"`` (default range) or ``"name=start:end"`` -> (name, (start, end))."""
    name, _, span = text.partition("=")
    if span:
        try:
            start, end = (float(v) for v in span.split(":"))
        except ValueError:
            raise ValueError(f"knob {text!r}: write NAME=START:END, e.g. resolution_pm=80:300") from None
        return name, (start, end)
    if name not in DEFAULT_KNOBS:
        raise ValueError(f"knob {name!r} has no default range; give NAME=START:END")
    return name, DEFAULT_KNOBS[name]


def build_series(materials: Sequence[str], knobs, points: int, seed: int = 0) -> list[DegradationSeries]:
    """One simulated series per (material, (knob, (start, end))), ``points`` values each."""
    if points < 2:
        raise ValueError("points must be at least 2")
    series = []
    for material in materials:
        for knob, (start, end) in knobs:
            series.append(simulated_series(material, knob, np.linspace(start, end, points), seed=seed))
    return series
