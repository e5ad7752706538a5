"""napari writer: a Points layer to our labels CSV (x_px, y_px[, x_A, y_A], features)."""

from __future__ import annotations

from typing import Any

from ..core.io import write_positions


def write_points_csv(path: str, data: Any, attributes: dict) -> list[str]:
    """Write a Points layer to CSV; returns the written path (napari's writer contract)."""
    metadata = attributes.get("metadata") or {}
    features = attributes.get("features")
    write_positions(path, data, pixel_size_A=metadata.get("pixel_size_A"), features=features)
    return [str(path)]
