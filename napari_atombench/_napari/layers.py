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


# ---------------------------------------------------------------- one place that reads a layer

#: metadata key that marks the overlay layers the Compare dock made (value: "TP", "FP" or "FN")
OVERLAY_KEY = "atombench_overlay"
ROLES = ("image", "labels", "prediction", "overlay", "points", "other")


def layer_role(layer) -> str:
    """What a layer is to the plugin: image, labels, prediction, overlay, points (unknown) or other.

    Metadata written by our readers and docks decide; a Points layer named
    ``… labels`` / ``…_labels`` (a labels CSV opened by any reader) counts as labels.
    """
    meta = getattr(layer, "metadata", {}) or {}
    kind = getattr(layer, "_type_string", "")
    if OVERLAY_KEY in meta:
        return "overlay"
    if kind == "image":
        return "image"
    if kind != "points":
        return "other"
    role = meta.get("role")
    if role in ("labels", "ground truth"):
        return "labels"
    if role == "prediction" or "model" in meta:
        return "prediction"
    if layer.name.endswith((" labels", "_labels")):
        return "labels"
    return "points"


def layer_pixel_size_A(layer) -> float | None:
    """The layer's pixel size in Å (``metadata["pixel_size_A"]``), or None when unknown or invalid."""
    if layer is None:
        return None
    try:
        value = float(layer.metadata.get("pixel_size_A"))
    except (AttributeError, TypeError, ValueError):
        return None
    return value if np.isfinite(value) and value > 0 else None


def set_layer_pixel_size_A(layer, value: float | None) -> None:
    """Write a user-given pixel size (None or <= 0: unknown) into the layer's metadata."""
    if layer is None:
        return
    value = None if value is None or not np.isfinite(value) or value <= 0 else float(value)
    if layer.metadata.get("pixel_size_A") != value:
        layer.metadata = {**layer.metadata, "pixel_size_A": value}


def layer_display_name(layer) -> str:
    """Short row name: a prediction's model name (five models of one image stay apart), else the layer name."""
    model = (getattr(layer, "metadata", {}) or {}).get("model")
    if layer_role(layer) == "prediction" and model:
        name = str(model)
        return name if not layer.name.endswith("]") else f"{name} {layer.name.rsplit(' ', 1)[-1]}"
    return layer.name


def unproxied(viewer):
    """The viewer itself, not napari's ``PublicOnlyProxy`` that plugin docks are handed.

    Through the proxy every layer read from ``viewer.layers[...]`` is a new wrapper,
    so ``layer is other`` and ``id(layer)`` fail for the same layer (a snapped click
    was never snapped, a ticked prediction never compared). Our docks keep the
    real viewer and compare layers as themselves.
    """
    return getattr(viewer, "__wrapped__", viewer)
