"""How the plugin's layers look and what metadata they carry: one place for all widgets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..core.match import nearest_neighbour_distances_px

#: Points style of hand labels / ground truth.
LABELS_STYLE = dict(face_color="#ffd400", border_color="black", border_width=0.1, symbol="disc")


def image_layer_kwargs(name: str, pixel_size_A: float | None, metadata: dict | None = None) -> dict:
    """Image layer kwargs: scale stays in pixels, the pixel size goes into metadata."""
    meta = dict(metadata or {})
    meta["pixel_size_A"] = pixel_size_A
    return {"name": name, "metadata": meta, "colormap": "gray"}


def points_size_px(positions_rc: np.ndarray) -> float:
    """A marker diameter that suits the column spacing: a quarter of the median neighbour distance, so the column stays visible around it."""
    if len(positions_rc) < 2:
        return 5.0
    return float(np.clip(0.25 * np.median(nearest_neighbour_distances_px(positions_rc)), 2.0, 30.0))


def labels_layer_kwargs(
    name: str,
    positions_rc: np.ndarray,
    *,
    pixel_size_A: float | None = None,
    features: pd.DataFrame | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict:
    """Points layer kwargs for a set of atom-column labels."""
    meta = dict(metadata or {})
    meta["pixel_size_A"] = pixel_size_A
    kwargs = dict(LABELS_STYLE, name=name, size=points_size_px(positions_rc), metadata=meta)
    if features is not None and len(features.columns):
        kwargs["features"] = features
    return kwargs
