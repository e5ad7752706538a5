"""napari reader: microscope images and atom-position CSV files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ..core.io import IMAGE_SUFFIXES, POSITION_SUFFIXES, has_position_header, read_image, read_positions
from .layers import image_layer_kwargs, labels_layer_kwargs


def get_reader(path: str | list[str]) -> Callable | None:
    """Return a reader function when every path is an image or positions file we read."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        return None
    for p in paths:
        suffix = Path(p).suffix.lower()
        if suffix not in IMAGE_SUFFIXES + POSITION_SUFFIXES:
            return None
        if suffix in POSITION_SUFFIXES and not has_position_header(p):
            return None
    return read_layers


def read_layers(path: str | list[str]) -> list[tuple]:
    """Read one or more files into napari layer data tuples."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    layers = []
    for p in paths:
        p = Path(p)
        if p.suffix.lower() in POSITION_SUFFIXES:
            table = read_positions(p)
            metadata = {"source_path": str(p), "role": "labels"}
            if p.stem.endswith("_labels"):  # <image>_labels.csv: the Label dock pairs it with <image>
                metadata["image"] = p.stem[: -len("_labels")]
            kwargs = labels_layer_kwargs(
                p.stem,
                table.positions_rc,
                pixel_size_A=table.pixel_size_A,
                features=table.features,
                metadata=metadata,
            )
            layers.append((table.positions_rc, kwargs, "points"))
        else:
            # A viewer should still show a partly masked image: fill NaN/Inf with the
            # median (warned and counted in metadata) instead of refusing to open it.
            image, pixel_size_A, metadata = read_image(p, allow_stack=True, nan_policy="replace")
            layers.append((image, image_layer_kwargs(p.stem, pixel_size_A, metadata), "image"))
    return layers
