"""Radar and score-vs-knob plots of robustness results (matplotlib, no pyplot state).

Figures are :class:`matplotlib.figure.Figure` objects made without pyplot, so
they can be saved headless (:func:`save_figure`) or put into a Qt canvas.

**Radar**: one axis per series (material × knob). A model's point on an axis
is how far along the tested range it keeps passing: 0 = fails at the first
(best) value, 1 = "none in range" (never fails; drawn at the rim with a
hollow marker). So a bigger polygon is a more robust model whatever the
direction of each knob. Axis labels give the knob, its range and each
model's cutoff in the knob's units.

This module imports neither Qt nor napari.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["radar_figure", "recall_precision_figure", "save_figure", "score_vs_knob_figure", "tolerance_fraction"]

_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
_KNOB_LABELS = {
    "pixel_size_pm": "pixel size (pm)",
    "contrast": "contrast",
    "psnr_db": "PSNR (dB)",
    "resolution_pm": "resolution (pm)",
    "random_drift": "drift",
    "flyback_error": "flyback",
    "dose_e_per_A2": "dose (e⁻/Å²)",
    "peak_counts": "peak counts",
}


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def tolerance_fraction(row) -> float:
    """0..1: how far along the series' range a model keeps passing."""
    if row["status"] == "none in range" or row["cutoff"] is None or pd.isna(row["cutoff"]):
        return 1.0
    start, end = float(row["range_start"]), float(row["range_end"])
    if end == start:
        return 0.0
    return float(np.clip((float(row["cutoff"]) - start) / (end - start), 0.0, 1.0))


def radar_figure(cutoffs: pd.DataFrame, title: str = "Where each model first fails", figure=None):
    """Radar plot of cutoffs (from :func:`~napari_atombench.core.benchmark.cutoffs_table`)."""
    fig = figure or _figure(6.5, 6.0)
    fig.clear()
    series = list(dict.fromkeys(cutoffs["series"]))
    if len(series) < 1:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no cutoffs to draw", ha="center", va="center")
        ax.set_axis_off()
        return fig
    ax = fig.add_subplot(projection="polar")
    angles = np.linspace(0, 2 * math.pi, len(series), endpoint=False)
    labels = []
    for s in series:
        group = cutoffs[cutoffs["series"] == s]
        first = group.iloc[0]
        knob = _KNOB_LABELS.get(first["knob"], first["knob"])
        labels.append(f"{first['material']} {knob}\n{first['range_start']:.3g} → {first['range_end']:.3g}")
    for k, model in enumerate(dict.fromkeys(cutoffs["model"])):
        colour = _COLOURS[k % len(_COLOURS)]
        rows = [cutoffs[(cutoffs["series"] == s) & (cutoffs["model"] == model)] for s in series]
        radii = np.array([tolerance_fraction(r.iloc[0]) if len(r) else 0.0 for r in rows])
        never = np.array([bool(len(r)) and r.iloc[0]["status"] == "none in range" for r in rows])
        closed_a, closed_r = np.append(angles, angles[0]), np.append(radii, radii[0])
        ax.plot(closed_a, closed_r, color=colour, lw=2, label=model)
        ax.fill(closed_a, closed_r, color=colour, alpha=0.12)
        ax.scatter(angles[~never], radii[~never], color=colour, zorder=3)
        ax.scatter(angles[never], radii[never], facecolors="white", edgecolors=colour, zorder=3, s=50)
    small = fig.get_figwidth() < 6.0 or fig.get_figheight() < 5.0
    ax.set_xticks(angles)
    ax.set_xticklabels(labels, fontsize=6 if small else 8)
    ax.set_ylim(0, 1.05)
    ax.set_yticks([0.25, 0.5, 0.75, 1.0])
    ax.set_yticklabels(["25%", "50%", "75%", "never"], fontsize=6, color="grey")
    fig.legend(loc="lower left", fontsize=6 if small else 8, frameon=False)
    ax.set_title(title + "\n(fraction of the tested range passed; hollow = none in range)",
                 fontsize=7 if small else 10)
    return fig


def score_vs_knob_figure(series_table: pd.DataFrame, cutoffs: pd.DataFrame | None = None, series: str | None = None,
                         figure=None):
    """Recall, precision and RMSE (Å) against the knob, one line per model, criteria dashed."""
    from .metrics import PASS_CRITERIA

    fig = figure or _figure(10.0, 3.2)
    fig.clear()
    names = list(dict.fromkeys(series_table["series"])) if series is None else [series]
    axes = fig.subplots(len(names), 3, squeeze=False)
    for i, name in enumerate(names):
        part = series_table[series_table["series"] == name].sort_values("order")
        knob = part["knob"].iloc[0]
        for j, (column, limit, label) in enumerate((("recall", PASS_CRITERIA["min_recall"], "recall"),
                                                     ("precision", PASS_CRITERIA["min_precision"], "precision"),
                                                     ("rmse_A", PASS_CRITERIA["max_rmse_A"], "RMSE (Å)"))):
            ax = axes[i, j]
            for k, model in enumerate(dict.fromkeys(part["model"])):
                rows = part[part["model"] == model]
                colour = _COLOURS[k % len(_COLOURS)]
                ax.plot(rows["value"], pd.to_numeric(rows[column], errors="coerce"), "o-", color=colour, ms=3,
                        label=model)
                if cutoffs is not None:
                    hit = cutoffs[(cutoffs["series"] == name) & (cutoffs["model"] == model)]
                    if len(hit) and hit.iloc[0]["cutoff"] is not None and not pd.isna(hit.iloc[0]["cutoff"]):
                        ax.axvline(float(hit.iloc[0]["cutoff"]), color=colour, ls=":", lw=1)
            ax.axhline(limit, color="grey", ls="--", lw=1)
            values = part["value"].to_numpy(dtype=float)
            if len(values) > 1 and values[-1] < values[0]:
                ax.invert_xaxis()  # worse quality to the right
            ax.set_xlabel(_KNOB_LABELS.get(knob, knob))
            ax.set_ylabel(label)
            if j == 0:
                ax.set_title(name, fontsize=9, loc="left")
        axes[i, 0].legend(fontsize=7)
    if figure is None:
        fig.set_size_inches(10.0, 3.0 * len(names))
    return fig


def recall_precision_figure(table: pd.DataFrame, figure=None):
    """Recall against precision per (case, model), the pass region shaded; labels name the cases."""
    from .metrics import PASS_CRITERIA

    fig = figure or _figure(5.0, 4.0)
    fig.clear()
    ax = fig.add_subplot()
    ax.axvspan(PASS_CRITERIA["min_recall"], 1.02, ymin=0, ymax=1, color="#009E73", alpha=0.08)
    ax.axvline(PASS_CRITERIA["min_recall"], color="grey", ls="--", lw=1)
    ax.axhline(PASS_CRITERIA["min_precision"], color="grey", ls="--", lw=1)
    ok = table[table["error"].fillna("") == ""] if "error" in table else table
    for k, model in enumerate(dict.fromkeys(ok["model"])):
        part = ok[ok["model"] == model]
        recall = pd.to_numeric(part["recall"], errors="coerce")
        precision = pd.to_numeric(part["precision"], errors="coerce")
        passes = part["passes"].astype(str) == "True"
        colour = _COLOURS[k % len(_COLOURS)]
        ax.scatter(recall[passes], precision[passes], color=colour, label=f"{model} (pass)", zorder=3)
        ax.scatter(recall[~passes], precision[~passes], facecolors="white", edgecolors=colour,
                   label=f"{model} (fail)", zorder=3)
        for x, y, name in zip(recall, precision, part["case"]):
            ax.annotate(str(name), (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("per case; pass needs recall ≥ 0.9, precision ≥ 0.95, RMSE ≤ 0.3 Å", fontsize=8)
    ax.legend(fontsize=7, loc="lower left")
    return fig


def save_figure(fig, path) -> Path:
    """Save as PNG or SVG (by suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110 if path.suffix.lower() == ".png" else None)
    return path
